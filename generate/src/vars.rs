//! Template variables: where values come from (flags, then the environment, then the config
//! file) and how each built-in variable is checked before it reaches a template.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use super::GenerateError;

/// A source of variable values, highest precedence first.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// Values given by command-line flags.
    pub flags: BTreeMap<String, String>,
    /// The process environment (or a test's stand-in).
    pub env: BTreeMap<String, String>,
    /// Values from the config file.
    pub config: BTreeMap<String, String>,
}

impl Sources {
    /// The value of `name`: a flag, else the environment, else the config file.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.flags
            .get(name)
            .or_else(|| self.env.get(name))
            .or_else(|| self.config.get(name))
            .map(String::as_str)
    }
}

/// Default config file: `$XDG_CONFIG_HOME/slipway/config.yaml`, else `~/.config/slipway/config.yaml`.
pub fn default_config_path(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    if let Some(x) = env.get("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return Some(Path::new(x).join("slipway/config.yaml"));
    }
    env.get("HOME")
        .map(|h| Path::new(h).join(".config/slipway/config.yaml"))
}

/// Reads a flat `NAME: value` YAML map, as clusterctl's config file. A missing file at the
/// default path is an empty map; a missing file named explicitly is an error.
pub fn read_config(path: &Path, explicit: bool) -> Result<BTreeMap<String, String>, GenerateError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            return Ok(BTreeMap::new());
        }
        Err(e) => {
            return Err(GenerateError::Config {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
    };
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let value: serde_json::Value =
        serde_saphyr::from_str(&text).map_err(|e| GenerateError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let map = value.as_object().ok_or_else(|| GenerateError::Config {
        path: path.to_path_buf(),
        reason: "expected a map of NAME: value at the top level".into(),
    })?;
    map.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k.clone(), s.clone())),
            serde_json::Value::Number(n) => Ok((k.clone(), n.to_string())),
            serde_json::Value::Bool(b) => Ok((k.clone(), b.to_string())),
            _ => Err(GenerateError::Config {
                path: path.to_path_buf(),
                reason: format!("{k}: only scalar values are supported"),
            }),
        })
        .collect()
}

pub use slipway_providers::flavor::{Check, VarSpec};

/// Checks one value; the error names the variable and, where set by a flag, the flag.
pub fn check(spec: &VarSpec, value: &str) -> Result<(), GenerateError> {
    let invalid = |reason: &str| GenerateError::InvalidValue {
        name: spec.name.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    match spec.check {
        Check::Any => Ok(()),
        Check::DnsLabel => {
            if is_dns_label(value) {
                Ok(())
            } else {
                Err(invalid(
                    "must be a DNS label: 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit",
                ))
            }
        }
        Check::Version => {
            let re = regex::Regex::new(r"^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$")
                .expect("valid regex");
            if re.is_match(value) {
                Ok(())
            } else {
                Err(invalid("must be a Kubernetes version such as v1.31.0"))
            }
        }
        Check::Cidr => value
            .parse::<ipnet::IpNet>()
            .map(|_| ())
            .map_err(|_| invalid("must be a CIDR block such as 192.168.0.0/16")),
        Check::Count => value
            .parse::<u32>()
            .map(|_| ())
            .map_err(|_| invalid("must be a whole number >= 0")),
        Check::OddCount => match value.parse::<u32>() {
            Ok(n) if n % 2 == 1 => Ok(()),
            Ok(_) => Err(invalid(
                "must be odd (1, 3, 5, ...): the control plane runs stacked etcd, which needs a majority",
            )),
            Err(_) => Err(invalid("must be a whole number >= 1")),
        },
        Check::Seconds => match value.parse::<f64>() {
            Ok(n) if n >= 0.0 && n.is_finite() => Ok(()),
            _ => Err(invalid("must be a number of seconds >= 0")),
        },
    }
}

/// RFC 1123 DNS label.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Parses and checks one `--label key=value`.
pub fn parse_label(s: &str) -> Result<(String, String), GenerateError> {
    let invalid = |reason: &str| GenerateError::InvalidLabel {
        label: s.to_string(),
        reason: reason.to_string(),
    };
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| invalid("expected key=value"))?;
    let name_re =
        regex::Regex::new(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$").expect("valid regex");
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > 253 || !p.split('.').all(is_dns_label))
    {
        return Err(invalid(
            "the key prefix must be a DNS subdomain, e.g. topology.kubernetes.io",
        ));
    }
    if name.is_empty() || name.len() > 63 || !name_re.is_match(name) {
        return Err(invalid(
            "the key name must be 1-63 characters: letters, digits, '-', '_' or '.', starting and ending alphanumeric",
        ));
    }
    if value.len() > 63 || !(value.is_empty() || name_re.is_match(value)) {
        return Err(invalid(
            "the value must be at most 63 characters: letters, digits, '-', '_' or '.', starting and ending alphanumeric",
        ));
    }
    Ok((key.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(check: Check) -> VarSpec {
        VarSpec {
            name: "X",
            default: None,
            description: "",
            check,
        }
    }

    #[test]
    fn flags_beat_env_beat_config() {
        let mut s = Sources::default();
        s.config.insert("A".into(), "config".into());
        assert_eq!(s.get("A"), Some("config"));
        s.env.insert("A".into(), "env".into());
        assert_eq!(s.get("A"), Some("env"));
        s.flags.insert("A".into(), "flag".into());
        assert_eq!(s.get("A"), Some("flag"));
        assert_eq!(s.get("B"), None);
    }

    #[test]
    fn checks_accept_good_and_name_the_variable_on_bad_values() {
        let table = [
            (Check::DnsLabel, "demo-1", true),
            (Check::DnsLabel, "Demo", false),
            (Check::DnsLabel, "-a", false),
            (Check::DnsLabel, &"a".repeat(64), false),
            (Check::Version, "v1.31.0", true),
            (Check::Version, "v1.31.0-rc.1", true),
            (Check::Version, "1.31.0", false),
            (Check::Cidr, "10.0.0.0/16", true),
            (Check::Cidr, "fd00::/108", true),
            (Check::Cidr, "10.0.0.0/40", false),
            (Check::Count, "0", true),
            (Check::Count, "-1", false),
            (Check::OddCount, "3", true),
            (Check::OddCount, "2", false),
            (Check::OddCount, "0", false),
            (Check::Seconds, "1.5", true),
            (Check::Seconds, "-1", false),
        ];
        for (c, v, ok) in table {
            let got = check(&spec(c), v);
            assert_eq!(got.is_ok(), ok, "{c:?} {v:?}: {got:?}");
            if let Err(e) = got {
                assert!(e.to_string().starts_with("X="), "{e}");
            }
        }
    }

    #[test]
    fn labels_follow_kubernetes_syntax() {
        assert_eq!(
            parse_label("environment=prod").unwrap(),
            ("environment".into(), "prod".into())
        );
        assert_eq!(
            parse_label("topology.kubernetes.io/region=eu-west-1")
                .unwrap()
                .0,
            "topology.kubernetes.io/region"
        );
        assert!(parse_label("empty=").is_ok());
        for bad in [
            "novalue",
            "=x",
            "a b=c",
            "k=has space",
            "Bad_Prefix/x=y",
            "k=\"quoted\"",
            "k=a\nb",
        ] {
            let err = parse_label(bad).unwrap_err().to_string();
            assert!(err.contains("--label"), "{bad}: {err}");
        }
    }

    #[test]
    fn config_file_is_a_flat_map_and_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("slipway-vars-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.yaml");
        std::fs::write(&good, "AWS_REGION: eu-west-1\nCOUNT: 3\nFLAG: true\n").unwrap();
        let m = read_config(&good, true).unwrap();
        assert_eq!(m["AWS_REGION"], "eu-west-1");
        assert_eq!(m["COUNT"], "3");
        let bad = dir.join("bad.yaml");
        std::fs::write(&bad, "NESTED:\n  a: b\n").unwrap();
        let err = read_config(&bad, true).unwrap_err().to_string();
        assert!(err.contains("bad.yaml") && err.contains("NESTED"), "{err}");
        assert!(
            read_config(&dir.join("absent.yaml"), false)
                .unwrap()
                .is_empty()
        );
        assert!(read_config(&dir.join("absent.yaml"), true).is_err());
    }
}
