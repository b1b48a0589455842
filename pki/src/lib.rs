//! PKI of the server: a CA, a serving certificate for the listen addresses, client
//! certificates signed by a CA (CN = user, O = groups), and the rustls configuration that
//! accepts either a client certificate or none (then a bearer token is needed).

use std::{path::Path, sync::Arc};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::{
    RootCertStore, ServerConfig, pki_types::CertificateDer, server::WebPkiClientVerifier,
};
use time::{Duration, OffsetDateTime};

/// PKI failures.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate generation failed.
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls refused the material.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// A PEM file is unreadable or malformed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl TlsError {
    /// PKI errors do not go away by retrying.
    pub fn is_transient(&self) -> bool {
        false
    }
}

/// A certificate and its private key, PEM.
#[derive(Clone)]
pub struct CertKey {
    /// Certificate PEM.
    pub cert_pem: String,
    /// Private key PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for CertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertKey")
            .field("cert_pem", &self.cert_pem.len())
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
}

/// A new self-signed CA (10 years).
pub fn new_ca(common_name: &str) -> Result<CertKey, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    validity(&mut params, 3650);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(CertKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn issuer(ca: &CertKey) -> Result<Issuer<'static, KeyPair>, TlsError> {
    let key = KeyPair::from_pem(&ca.key_pem)?;
    Ok(Issuer::from_ca_cert_pem(&ca.cert_pem, key)?)
}

/// A serving certificate for `hosts` (DNS names or IPs), signed by `ca` (1 year).
pub fn serving_cert(ca: &CertKey, hosts: &[String]) -> Result<CertKey, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = hosts
        .iter()
        .map(|h| match h.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(h.clone().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "kube-apiserver");
    params.distinguished_name = dn;
    leaf(ca, params, ExtendedKeyUsagePurpose::ServerAuth)
}

/// A client certificate: CN = user, O = groups (1 year).
pub fn client_cert(ca: &CertKey, user: &str, groups: &[&str]) -> Result<CertKey, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, user);
    for g in groups {
        dn.push(DnType::OrganizationName, *g);
    }
    params.distinguished_name = dn;
    leaf(ca, params, ExtendedKeyUsagePurpose::ClientAuth)
}

/// Signs a one-year leaf certificate for `usage` with a fresh key.
fn leaf(
    ca: &CertKey,
    mut params: CertificateParams,
    usage: ExtendedKeyUsagePurpose,
) -> Result<CertKey, TlsError> {
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    validity(&mut params, 365);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer(ca)?)?;
    Ok(CertKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Loads `dir/<name>.crt` + `.key`, or creates them with `make` and writes them (key 0600).
pub fn load_or_create(
    dir: &Path,
    name: &str,
    make: impl FnOnce() -> Result<CertKey, TlsError>,
) -> Result<CertKey, TlsError> {
    let (crt, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let file_err = |p: &Path, e: std::io::Error| TlsError::File {
        path: p.display().to_string(),
        reason: e.to_string(),
    };
    if crt.exists() && key.exists() {
        return Ok(CertKey {
            cert_pem: std::fs::read_to_string(&crt).map_err(|e| file_err(&crt, e))?,
            key_pem: std::fs::read_to_string(&key).map_err(|e| file_err(&key, e))?,
        });
    }
    let ck = make()?;
    std::fs::write(&crt, &ck.cert_pem).map_err(|e| file_err(&crt, e))?;
    write_private(&key, ck.key_pem.as_bytes()).map_err(|e| file_err(&key, e))?;
    Ok(ck)
}

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut f, data)
}

fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::File {
            path: "certificate".into(),
            reason: e.to_string(),
        })
}

/// rustls server config: serve `serving`, verify client certificates against `client_ca`
/// when one is presented (clients without one authenticate by token).
pub fn server_config(serving: &CertKey, client_ca: &str) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in certs(client_ca)? {
        roots.add(c)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
    let key = rustls_pemfile::private_key(&mut serving.key_pem.as_bytes())
        .map_err(|e| TlsError::File {
            path: "serving key".into(),
            reason: e.to_string(),
        })?
        .ok_or_else(|| TlsError::File {
            path: "serving key".into(),
            reason: "no private key".into(),
        })?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&serving.cert_pem)?, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A new key pair (ECDSA P-256) as PEM: (private PKCS#8, public SPKI), e.g. the
/// service-account signing key.
pub fn new_key_pair() -> Result<(String, String), TlsError> {
    let key = KeyPair::generate()?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

/// `sha256:<hex>` of a certificate's SubjectPublicKeyInfo: kubeadm's `caCertHashes` form.
pub fn spki_sha256(cert_pem: &str) -> Result<String, TlsError> {
    let der = first_cert(cert_pem)?;
    let cert = parse(&der)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.tbs_certificate.subject_pki.raw);
    Ok(format!(
        "sha256:{}",
        digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ))
}

/// The notAfter of the first certificate in `cert_pem`, as Unix seconds.
pub fn not_after(cert_pem: &str) -> Result<i64, TlsError> {
    let der = first_cert(cert_pem)?;
    Ok(parse(&der)?.validity().not_after.timestamp())
}

/// The notBefore of the first certificate in `cert_pem`, as Unix seconds.
pub fn not_before(cert_pem: &str) -> Result<i64, TlsError> {
    let der = first_cert(cert_pem)?;
    Ok(parse(&der)?.validity().not_before.timestamp())
}

fn first_cert(pem: &str) -> Result<CertificateDer<'static>, TlsError> {
    certs(pem)?
        .into_iter()
        .next()
        .ok_or_else(|| TlsError::File {
            path: "certificate".into(),
            reason: "no certificate in PEM".into(),
        })
}

fn parse<'a>(der: &'a [u8]) -> Result<x509_parser::certificate::X509Certificate<'a>, TlsError> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c)
        .map_err(|e| TlsError::File {
            path: "certificate".into(),
            reason: e.to_string(),
        })
}

/// User and groups of a client certificate (CN and O).
pub fn identity_of(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some((cn, groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_certificate_carries_user_and_groups() {
        let ca = new_ca("test-ca").unwrap();
        let client = client_cert(&ca, "kubernetes-admin", &["kubeadm:cluster-admins"]).unwrap();
        let der = certs(&client.cert_pem).unwrap().remove(0);
        assert_eq!(
            identity_of(&der),
            Some((
                "kubernetes-admin".into(),
                vec!["kubeadm:cluster-admins".into()]
            ))
        );
        let serving = serving_cert(&ca, &["127.0.0.1".into(), "localhost".into()]).unwrap();
        assert!(server_config(&serving, &ca.cert_pem).is_ok());
        assert!(!format!("{client:?}").contains("PRIVATE"));
    }
}
