//! Cluster PKI as Cluster API keeps it: `<cluster>-ca`, `-etcd`, `-proxy` (CA certificate and
//! key in `tls.crt` / `tls.key`), `-sa` (service-account key pair: public key in `tls.crt`), and
//! the admin kubeconfig `<cluster>-kubeconfig` (key `value`) with a client certificate signed by
//! the cluster CA (CN `kubernetes-admin`, O `kubeadm:cluster-admins`).
//!
//! Generated once per cluster; callers must never regenerate what a Secret already holds.

use std::collections::BTreeMap;

use base64::Engine;
use slipway_api::names::secrets;
use slipway_pki::{self as tls, CertKey};

use super::BootstrapError;

/// The certificates and keys of one cluster.
#[derive(Clone, Debug)]
pub struct ClusterPki {
    /// Cluster CA (`kubernetes`).
    pub ca: CertKey,
    /// etcd CA.
    pub etcd: CertKey,
    /// Front-proxy CA.
    pub proxy: CertKey,
    /// Service-account signing key: `cert_pem` holds the public key, `key_pem` the private key.
    pub sa: CertKey,
}

impl ClusterPki {
    /// Generates a new PKI.
    pub fn generate() -> Result<Self, BootstrapError> {
        let (sa_private, sa_public) = tls::new_key_pair()?;
        Ok(Self {
            ca: tls::new_ca("kubernetes")?,
            etcd: tls::new_ca("etcd-ca")?,
            proxy: tls::new_ca("front-proxy-ca")?,
            sa: CertKey {
                cert_pem: sa_public,
                key_pem: sa_private,
            },
        })
    }

    /// The Secrets, by suffix (`ca`, `etcd`, `proxy`, `sa`), each `tls.crt` + `tls.key`.
    pub fn secrets(&self) -> BTreeMap<&'static str, BTreeMap<String, String>> {
        let data = |ck: &CertKey| {
            BTreeMap::from([
                (secrets::TLS_CRT.to_string(), ck.cert_pem.clone()),
                (secrets::TLS_KEY.to_string(), ck.key_pem.clone()),
            ])
        };
        BTreeMap::from([
            (secrets::CA_SUFFIX, data(&self.ca)),
            (secrets::ETCD_SUFFIX, data(&self.etcd)),
            (secrets::PROXY_SUFFIX, data(&self.proxy)),
            (secrets::SA_SUFFIX, data(&self.sa)),
        ])
    }

    /// kubeadm's `caCertHashes` entry for the cluster CA.
    pub fn ca_cert_hash(&self) -> Result<String, BootstrapError> {
        Ok(tls::spki_sha256(&self.ca.cert_pem)?)
    }
}

/// An admin kubeconfig for `server` (`https://host:port`) with a fresh client certificate
/// signed by the cluster CA.
pub fn admin_kubeconfig(
    cluster: &str,
    server: &str,
    ca: &CertKey,
) -> Result<String, BootstrapError> {
    let client = tls::client_cert(ca, "kubernetes-admin", &["kubeadm:cluster-admins"])?;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let user = format!("{cluster}-admin");
    Ok(format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {cluster}\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: {user}@{cluster}\n  context:\n    cluster: {cluster}\n    user: {user}\ncurrent-context: {user}@{cluster}\n",
        b64(&ca.cert_pem),
        b64(&client.cert_pem),
        b64(&client.key_pem),
    ))
}
