//! Encryption of Secrets at rest, as kube-apiserver's `aesgcm` provider does it.
//!
//! The key file (`--encryption-key-file`) names one or more 32-byte keys, newest first:
//!
//! ```yaml
//! keys:
//!   - name: key2
//!     secret: <base64 of 32 random bytes>
//!   - name: key1
//!     secret: <base64>
//! ```
//!
//! (kube-apiserver's `EncryptionConfiguration` with an `aesgcm` provider is read too.) The
//! first key encrypts every Secret written; every key decrypts. A stored Secret is
//! `k8s:enc:aesgcm:v1:<key name>:` followed by a random 12-byte nonce and the AES-256-GCM
//! ciphertext with its tag; the object's storage key is the additional authenticated data, so
//! a ciphertext moved to another row does not decrypt. Key material never appears in errors,
//! logs or `Debug` output: only key names do.

use std::{fmt, path::Path};

use base64::Engine;
use ring::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};
use serde_json::Value;

/// What every encrypted value starts with.
pub const PREFIX: &[u8] = b"k8s:enc:aesgcm:v1:";

/// The flag that names the key file, for messages.
pub const FLAG: &str = "--encryption-key-file";

/// Why keys cannot be loaded or stored data cannot be read with them.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    /// The key file is unreadable or malformed.
    #[error("{FLAG} {path}: {why}")]
    KeyFile {
        /// The file.
        path: String,
        /// What is wrong (never the key material).
        why: String,
    },
    /// Stored data was encrypted with a key that was not given.
    #[error(
        "the data dir holds Secrets encrypted with key {name:?}, which is not in the keys given: start with {FLAG} naming a key {name:?} (the plane refuses to start rather than serve data it cannot read)"
    )]
    MissingKey {
        /// The key's name.
        name: String,
    },
    /// A key of that name was given, but the data does not decrypt with it.
    #[error(
        "a stored Secret does not decrypt with key {name:?} of {FLAG}: the key material of that name differs from the one it was written with"
    )]
    WrongKey {
        /// The key's name.
        name: String,
    },
    /// A stored value has the encryption prefix but no well-formed body.
    #[error("a stored Secret has a malformed encrypted value")]
    Malformed,
    /// The system random source failed.
    #[error("no random nonce could be generated for encrypting a Secret")]
    Random,
}

impl EncryptionError {
    /// Whether retrying may help (never: keys and stored data do not change by themselves).
    pub fn is_transient(&self) -> bool {
        false
    }
}

/// The configured keys, newest (the one that encrypts) first.
pub struct Keys {
    keys: Vec<(String, LessSafeKey)>,
    rng: SystemRandom,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("names", &self.names())
            .finish()
    }
}

impl Keys {
    /// Reads a key file.
    pub fn load(path: &Path) -> Result<Self, EncryptionError> {
        let text = std::fs::read_to_string(path).map_err(|e| EncryptionError::KeyFile {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses a key file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Self, EncryptionError> {
        let bad = |why: String| EncryptionError::KeyFile {
            path: path.to_string(),
            why,
        };
        // The parser's message may quote the offending line, which may hold a key: not kept.
        let doc: Value = serde_saphyr::from_str(text)
            .map_err(|_| bad("not a YAML document with a `keys` list".into()))?;
        let list = match doc.get("keys") {
            Some(k) => k.clone(),
            None => doc
                .get("resources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|r| r["providers"].as_array().cloned().unwrap_or_default())
                .find_map(|p| p.pointer("/aesgcm/keys").cloned())
                .ok_or_else(|| {
                    bad(
                        "no `keys` list (nor an EncryptionConfiguration with an aesgcm provider)"
                            .into(),
                    )
                })?,
        };
        let list = list
            .as_array()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| bad("`keys` must be a non-empty list of {name, secret}".into()))?;
        let mut keys: Vec<(String, LessSafeKey)> = Vec::new();
        for (i, k) in list.iter().enumerate() {
            let name = k["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| bad(format!("keys[{i}].name is required")))?;
            if name.contains(':') {
                return Err(bad(format!("keys[{i}].name {name:?} must not contain ':'")));
            }
            if keys.iter().any(|(n, _)| n == name) {
                return Err(bad(format!("keys[{i}].name {name:?} is given twice")));
            }
            let secret = k["secret"]
                .as_str()
                .ok_or_else(|| bad(format!("keys[{i}].secret (key {name:?}) is required")))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(secret.trim())
                .map_err(|_| bad(format!("keys[{i}].secret (key {name:?}) is not base64")))?;
            if bytes.len() != 32 {
                return Err(bad(format!(
                    "keys[{i}].secret (key {name:?}) must be 32 bytes, base64-encoded (it is {} bytes)",
                    bytes.len()
                )));
            }
            let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| {
                bad(format!(
                    "keys[{i}].secret (key {name:?}) is not a usable key"
                ))
            })?;
            keys.push((name.to_string(), LessSafeKey::new(key)));
        }
        Ok(Self {
            keys,
            rng: SystemRandom::new(),
        })
    }

    /// The key names, newest first.
    pub fn names(&self) -> Vec<&str> {
        self.keys.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The name of the key that encrypts.
    pub fn newest(&self) -> &str {
        &self.keys[0].0
    }

    /// `plain` encrypted with the newest key; `aad` binds it to its storage key.
    pub fn encrypt(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, EncryptionError> {
        let (name, key) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| EncryptionError::Random)?;
        let mut sealed = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut sealed,
        )
        .map_err(|_| EncryptionError::Random)?;
        let mut out = Vec::with_capacity(PREFIX.len() + name.len() + 1 + NONCE_LEN + sealed.len());
        out.extend_from_slice(PREFIX);
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }
}

/// The name of the key `stored` was encrypted with, or `None` when it is not encrypted.
pub fn key_name(stored: &[u8]) -> Option<&str> {
    let rest = stored.strip_prefix(PREFIX)?;
    let end = rest.iter().position(|b| *b == b':')?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// `stored` as plain bytes: decrypted when it is encrypted (with whichever key of `keys` it
/// names), as is otherwise.
pub fn decrypt(keys: Option<&Keys>, stored: &[u8], aad: &[u8]) -> Result<Vec<u8>, EncryptionError> {
    if !stored.starts_with(PREFIX) {
        return Ok(stored.to_vec());
    }
    let name = key_name(stored).ok_or(EncryptionError::Malformed)?;
    let key = keys
        .and_then(|k| k.keys.iter().find(|(n, _)| n == name))
        .map(|(_, k)| k)
        .ok_or_else(|| EncryptionError::MissingKey {
            name: name.to_string(),
        })?;
    let body = &stored[PREFIX.len() + name.len() + 1..];
    if body.len() < NONCE_LEN {
        return Err(EncryptionError::Malformed);
    }
    let (nonce, sealed) = body.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| EncryptionError::Malformed)?;
    let mut buf = sealed.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| EncryptionError::WrongKey {
            name: name.to_string(),
        })?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_b64(byte: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([byte; 32])
    }

    #[test]
    fn round_trip_and_rotation() {
        let old = Keys::parse(
            &format!("keys:\n- name: k1\n  secret: {}\n", key_b64(1)),
            "f",
        )
        .unwrap();
        let sealed = old.encrypt(b"hello", b"/secrets/ns/a").unwrap();
        assert_eq!(key_name(&sealed), Some("k1"));
        assert!(!sealed.windows(5).any(|w| w == b"hello"));
        assert_eq!(
            decrypt(Some(&old), &sealed, b"/secrets/ns/a").unwrap(),
            b"hello"
        );
        // Another row's key does not open it.
        assert!(matches!(
            decrypt(Some(&old), &sealed, b"/secrets/ns/b"),
            Err(EncryptionError::WrongKey { .. })
        ));
        let new = Keys::parse(
            &format!(
                "keys:\n- name: k2\n  secret: {}\n- name: k1\n  secret: {}\n",
                key_b64(2),
                key_b64(1)
            ),
            "f",
        )
        .unwrap();
        assert_eq!(new.newest(), "k2");
        assert_eq!(
            decrypt(Some(&new), &sealed, b"/secrets/ns/a").unwrap(),
            b"hello"
        );
        let e = decrypt(None, &sealed, b"/secrets/ns/a").unwrap_err();
        assert!(
            e.to_string().contains("\"k1\"") && e.to_string().contains(FLAG),
            "{e}"
        );
        // Same name, other material.
        let wrong = Keys::parse(
            &format!("keys:\n- name: k1\n  secret: {}\n", key_b64(9)),
            "f",
        )
        .unwrap();
        assert!(matches!(
            decrypt(Some(&wrong), &sealed, b"/secrets/ns/a"),
            Err(EncryptionError::WrongKey { .. })
        ));
        assert_eq!(
            decrypt(None, b"{\"plain\":1}", b"x").unwrap(),
            b"{\"plain\":1}"
        );
        assert!(!format!("{new:?}").contains(&key_b64(2)));
    }

    #[test]
    fn key_file_errors_name_the_key_and_never_its_material() {
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
        let e = Keys::parse(
            &format!("keys:\n- name: k1\n  secret: {short}\n"),
            "/etc/k.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("/etc/k.yaml") && e.contains("\"k1\"") && e.contains("32 bytes"),
            "{e}"
        );
        assert!(!e.contains(&short), "{e}");
        for bad in [
            "keys: []",
            "other: 1",
            "keys:\n- secret: abc\n",
            "keys:\n- name: a:b\n  secret: x\n",
        ] {
            assert!(Keys::parse(bad, "f").is_err(), "{bad}");
        }
        let config = format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aesgcm:\n      keys:\n      - name: upstream\n        secret: {}\n  - identity: {{}}\n",
            key_b64(3)
        );
        assert_eq!(Keys::parse(&config, "f").unwrap().names(), ["upstream"]);
    }
}
