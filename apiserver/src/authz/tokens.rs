//! Bearer tokens: the static token file (kube-apiserver's `--token-auth-file`), and
//! service-account tokens as kube-apiserver issues them: JWTs (ES256) signed with the plane's
//! key (`sa-signing.key`, 0600), handed out by the TokenRequest subresource
//! (`kubectl create token SA`) and accepted while the service account (and the object the
//! token is bound to) still exists with the same uid.

use std::path::Path;

use base64::Engine;
use ring::{
    rand::SystemRandom,
    signature::{self, EcdsaKeyPair, KeyPair},
};
use serde_json::{Value, json};

use super::{AUTHENTICATED, AuthError, Identity};
use crate::{
    api::Api,
    error::ApiError,
    meta,
    schema::{ErrorType, FieldError},
    store::ObjKey,
};

/// The issuer (and default audience) of service-account tokens, kubeadm's default.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Lifetime of a requested token when the request names none.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime a TokenRequest may ask for.
pub const MIN_EXPIRATION_SECONDS: i64 = 600;

/// One user of the token file (or the admin).
#[derive(Clone, Debug)]
pub struct StaticToken {
    /// The token.
    pub token: String,
    /// Who it stands for.
    pub identity: Identity,
}

/// Splits one CSV record (double quotes around fields, `""` inside them).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => out.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    out.push(field);
    Ok(out)
}

/// Parses a token file: `token,user,uid[,"group1,group2"]` per line.
pub fn parse_token_file(text: &str) -> Result<Vec<StaticToken>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let f = csv_fields(line).map_err(|e| format!("line {n}: {e}"))?;
        if f.len() < 3 {
            return Err(format!(
                "line {n}: must have at least 3 columns (token, user name, user uid), found {}",
                f.len()
            ));
        }
        if f[0].is_empty() {
            return Err(format!("line {n}: empty token"));
        }
        if f[1].is_empty() {
            return Err(format!("line {n}: empty user name"));
        }
        let groups = f
            .get(3)
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let mut identity = Identity::new(f[1].clone(), groups);
        identity.uid = f[2].clone();
        out.push(StaticToken {
            token: f[0].clone(),
            identity,
        });
    }
    Ok(out)
}

/// Reads `--token-auth-file`.
pub fn read_token_file(path: &Path) -> Result<Vec<StaticToken>, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_token_file(&text).map_err(|message| AuthError::Invalid {
        path: path.to_path_buf(),
        message,
    })
}

fn same(a: &[u8], b: &[u8]) -> bool {
    // Every byte is compared so the time taken does not reveal a matching prefix.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The identity of a static token.
pub fn find_static(tokens: &[StaticToken], token: &str) -> Option<Identity> {
    let mut found = None;
    for t in tokens {
        if same(t.token.as_bytes(), token.as_bytes()) {
            found = Some(t.identity.clone());
        }
    }
    found
}

/// A service account's identity: `system:serviceaccount:<ns>:<name>` in
/// `system:serviceaccounts` and `system:serviceaccounts:<ns>`.
pub fn service_account_identity(user: &str, uid: &str, jti: Option<&str>) -> Identity {
    let ns = user
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'))
        .map(|(ns, _)| ns)
        .unwrap_or_default();
    let mut i = Identity::new(
        user,
        vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            AUTHENTICATED.into(),
        ],
    );
    i.uid = uid.to_string();
    if let Some(jti) = jti {
        i.extra.insert(
            "authentication.kubernetes.io/credential-id".into(),
            vec![format!("JTI={jti}")],
        );
    }
    i
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn unb64url(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}

/// The key that signs and verifies service-account tokens.
pub struct Signer {
    key: EcdsaKeyPair,
    kid: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).finish()
    }
}

const PEM_LABEL: &str = "PRIVATE KEY";

impl Signer {
    /// Loads the PKCS#8 P-256 key at `path`, or creates it (0600).
    pub fn load_or_create(path: &Path) -> Result<Self, AuthError> {
        let invalid = |message: String| AuthError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let io = |source| AuthError::Io {
            path: path.to_path_buf(),
            source,
        };
        let der = match std::fs::read_to_string(path) {
            Ok(pem) => {
                let body: String = pem
                    .lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect::<Vec<_>>()
                    .concat();
                base64::engine::general_purpose::STANDARD
                    .decode(body.trim())
                    .map_err(|_| invalid(format!("not a PEM {PEM_LABEL}")))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let doc = EcdsaKeyPair::generate_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &SystemRandom::new(),
                )
                .map_err(|_| invalid("generating a P-256 key failed".into()))?;
                let b64 = base64::engine::general_purpose::STANDARD.encode(doc.as_ref());
                let lines: Vec<&str> = b64
                    .as_bytes()
                    .chunks(64)
                    .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
                    .collect();
                let pem = format!(
                    "-----BEGIN {PEM_LABEL}-----\n{}\n-----END {PEM_LABEL}-----\n",
                    lines.join("\n")
                );
                crate::tls::write_private(path, pem.as_bytes()).map_err(io)?;
                doc.as_ref().to_vec()
            }
            Err(e) => return Err(io(e)),
        };
        let key = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &der,
            &SystemRandom::new(),
        )
        .map_err(|e| invalid(format!("not a PKCS#8 P-256 key: {e}")))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        let kid = b64url(digest.as_ref());
        Ok(Self { key, kid })
    }

    /// A signed JWT with these claims.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"});
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let sig = self
            .key
            .sign(&SystemRandom::new(), input.as_bytes())
            .expect("ECDSA signing with a valid key");
        format!("{input}.{}", b64url(sig.as_ref()))
    }

    /// The claims of a token this key signed, if the signature holds.
    pub fn claims(&self, token: &str) -> Option<Value> {
        let mut parts = token.split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&unb64url(h)?).ok()?;
        if header["alg"] != "ES256" {
            return None;
        }
        let public = signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            self.key.public_key().as_ref(),
        );
        public
            .verify(format!("{h}.{c}").as_bytes(), &unb64url(s)?)
            .ok()?;
        serde_json::from_slice(&unb64url(c)?).ok()
    }

    /// The identity of a valid service-account token: signed here, for this issuer and
    /// audience, not expired, and its service account (and bound object) still there with
    /// the uid it was issued for.
    pub fn verify(&self, api: &Api, token: &str) -> Option<Identity> {
        let claims = self.claims(token)?;
        let now = jiff::Timestamp::now().as_second();
        if claims["iss"] != ISSUER
            || claims["exp"].as_i64()? <= now
            || claims["nbf"].as_i64().unwrap_or(0) > now + 60
        {
            return None;
        }
        let aud_ok = match &claims["aud"] {
            Value::String(a) => a == ISSUER,
            Value::Array(a) => a.iter().any(|x| x == ISSUER),
            _ => false,
        };
        if !aud_ok {
            return None;
        }
        let k = &claims["kubernetes.io"];
        let ns = k["namespace"].as_str()?;
        let sa = k["serviceaccount"]["name"].as_str()?;
        let uid = k["serviceaccount"]["uid"].as_str()?;
        let live = |gr: &str, ns: &str, name: &str, uid: &str| {
            api.store
                .get(&ObjKey::new(gr, ns, name))
                .is_some_and(|e| e.meta.uid == uid && !e.meta.deleting)
        };
        if !live("/serviceaccounts", ns, sa, uid) {
            return None;
        }
        if let Some(secret) = k.get("secret")
            && !live(
                "/secrets",
                ns,
                secret["name"].as_str()?,
                secret["uid"].as_str()?,
            )
        {
            return None;
        }
        if let Some(node) = k.get("node")
            && !live("/nodes", "", node["name"].as_str()?, node["uid"].as_str()?)
        {
            return None;
        }
        Some(service_account_identity(
            &format!("system:serviceaccount:{ns}:{sa}"),
            uid,
            claims["jti"].as_str(),
        ))
    }
}

fn invalid(name: &str, field: &str, value: Value, detail: &str) -> ApiError {
    ApiError::invalid(
        "TokenRequest",
        "authentication.k8s.io",
        name,
        &[FieldError {
            field: field.into(),
            error_type: ErrorType::Invalid,
            bad_value: Some(value),
            detail: detail.into(),
        }],
    )
}

/// `POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token`: a TokenRequest answered
/// with a signed token in `status.token`.
pub fn token_request(
    api: &Api,
    signer: &Signer,
    ns: &str,
    name: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let sa = api
        .store
        .get(&ObjKey::new("/serviceaccounts", ns, name))
        .ok_or_else(|| ApiError::not_found("serviceaccounts", "", name))?;
    let req: Value = if body.is_empty() {
        json!({})
    } else {
        super::body_json(body)?
    };
    if let Some(kind) = req["kind"].as_str()
        && kind != "TokenRequest"
    {
        return Err(ApiError::bad_request(format!(
            "the body is a {kind}, not a TokenRequest"
        )));
    }
    let spec = &req["spec"];
    let expiration = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION_SECONDS,
        v => v.as_i64().ok_or_else(|| {
            invalid(
                name,
                "spec.expirationSeconds",
                v.clone(),
                "must be an integer",
            )
        })?,
    };
    if expiration < MIN_EXPIRATION_SECONDS {
        return Err(invalid(
            name,
            "spec.expirationSeconds",
            json!(expiration),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > 1 << 32 {
        return Err(invalid(
            name,
            "spec.expirationSeconds",
            json!(expiration),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let audiences: Vec<Value> = match spec["audiences"].as_array() {
        Some(a) if !a.is_empty() => a.clone(),
        _ => vec![json!(ISSUER)],
    };
    let now = jiff::Timestamp::now().as_second();
    let jti = meta::uid();
    let mut k8s = json!({"namespace": ns, "serviceaccount": {"name": name, "uid": sa.meta.uid}});
    let bound = &spec["boundObjectRef"];
    if let Some(kind) = bound["kind"].as_str() {
        let (gr, obj_ns, key) = match kind {
            "Secret" => ("/secrets", ns, "secret"),
            "Node" => ("/nodes", "", "node"),
            other => {
                return Err(ApiError::bad_request(format!(
                    "spec.boundObjectRef.kind: {other:?} is not supported by this plane (supported: Secret, Node)"
                )));
            }
        };
        let bname = bound["name"].as_str().unwrap_or_default();
        let obj = api
            .store
            .get(&ObjKey::new(gr, obj_ns, bname))
            .ok_or_else(|| ApiError::not_found(gr.trim_start_matches('/'), "", bname))?;
        if let Some(uid) = bound["uid"].as_str()
            && !uid.is_empty()
            && uid != obj.meta.uid
        {
            return Err(ApiError::conflict(
                gr.trim_start_matches('/'),
                "",
                bname,
                &format!(
                    "the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            ));
        }
        k8s[key] = json!({"name": bname, "uid": obj.meta.uid});
    }
    let claims = json!({
        "aud": audiences, "exp": now + expiration, "iat": now, "nbf": now, "iss": ISSUER,
        "jti": jti, "kubernetes.io": k8s, "sub": format!("system:serviceaccount:{ns}:{name}"),
    });
    let token = signer.sign(&claims);
    let expires = jiff::Timestamp::from_second(now + expiration)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let mut out_spec = json!({"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": Value::Null});
    if bound.is_object() {
        out_spec["boundObjectRef"] = bound.clone();
    }
    Ok(json!({
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": meta::now()},
        "spec": out_spec,
        "status": {"token": token, "expirationTimestamp": expires},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_lines_give_users_uids_and_groups() {
        let t = parse_token_file(
            "# comment\nt1,alice,u1,\"team-a,devs\"\nt2,bob,u2\n\n\"t,3\",carol,u3,ops\n",
        )
        .unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].identity.user, "alice");
        assert_eq!(t[0].identity.uid, "u1");
        assert_eq!(
            t[0].identity.groups,
            ["team-a", "devs", "system:authenticated"]
        );
        assert_eq!(t[1].identity.groups, ["system:authenticated"]);
        assert_eq!(t[2].token, "t,3");
        assert_eq!(find_static(&t, "t2").unwrap().user, "bob");
        assert!(find_static(&t, "t").is_none());
    }

    #[test]
    fn malformed_token_files_name_the_line() {
        let e = parse_token_file("ok,a,1\nonly,two\n").unwrap_err();
        assert!(
            e.contains("line 2") && e.contains("at least 3 columns"),
            "{e}"
        );
        assert!(
            parse_token_file(",a,1")
                .unwrap_err()
                .contains("empty token")
        );
        assert!(
            parse_token_file("\"open,a,1")
                .unwrap_err()
                .contains("unterminated")
        );
    }

    #[test]
    fn a_signed_token_verifies_and_a_tampered_one_does_not() {
        let dir = std::env::temp_dir().join(format!("slipway-signer-{}", meta::uid()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sa-signing.key");
        let s = Signer::load_or_create(&path).unwrap();
        let token = s.sign(&json!({"sub": "x"}));
        assert_eq!(s.claims(&token).unwrap()["sub"], "x");
        // The key is kept: a second load verifies what the first signed.
        let again = Signer::load_or_create(&path).unwrap();
        assert_eq!(again.claims(&token).unwrap()["sub"], "x");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = b64url(br#"{"sub":"admin"}"#);
        parts[1] = &forged;
        assert!(s.claims(&parts.join(".")).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
