//! Request routing: which resource, namespace, name and subresource a path addresses, and the
//! query parameters the verbs take.

use std::collections::HashMap;

use crate::error::ApiError;

/// What a resource path addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// API group ("" for core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Namespace in the path.
    pub namespace: Option<String>,
    /// Resource plural.
    pub plural: String,
    /// Object name.
    pub name: Option<String>,
    /// Subresource (`status`, `scale`).
    pub sub: Option<String>,
}

/// Parses `/api/v1/...` and `/apis/{group}/{version}/...` resource paths.
pub fn parse(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return None,
    };
    let t = |namespace: Option<&str>, plural: &str, name: Option<&str>, sub: Option<&str>| {
        Some(Target {
            group: group.clone(),
            version: version.clone(),
            namespace: namespace.map(str::to_string),
            plural: plural.to_string(),
            name: name.map(str::to_string),
            sub: sub.map(str::to_string),
        })
    };
    match rest {
        // The Namespace objects themselves (core only).
        ["namespaces"] => t(None, "namespaces", None, None),
        ["namespaces", name] if group.is_empty() => t(None, "namespaces", Some(name), None),
        ["namespaces", name, sub @ ("status" | "finalize")] if group.is_empty() => {
            t(None, "namespaces", Some(name), Some(sub))
        }
        ["namespaces", ns, plural] => t(Some(ns), plural, None, None),
        ["namespaces", ns, plural, name] => t(Some(ns), plural, Some(name), None),
        ["namespaces", ns, plural, name, sub] => t(Some(ns), plural, Some(name), Some(sub)),
        [plural] => t(None, plural, None, None),
        [plural, name] => t(None, plural, Some(name), None),
        [plural, name, sub] => t(None, plural, Some(name), Some(sub)),
        _ => None,
    }
}

/// Query parameters.
#[derive(Clone, Debug, Default)]
pub struct Query(pub HashMap<String, String>);

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        let mut map = HashMap::new();
        for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(decode(k), decode(v));
        }
        Self(map)
    }

    /// A parameter.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// A boolean parameter (`true` / `1`).
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }

    /// `dryRun=All`.
    pub fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }

    /// `fieldValidation`: `Strict`, `Warn` (the default) or `Ignore`.
    pub fn field_validation(&self) -> FieldValidation {
        match self.get("fieldValidation") {
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            _ => FieldValidation::Warn,
        }
    }

    /// Refuses, as kube-apiserver does with 400, parameters whose values cannot be what they
    /// name: `dryRun` other than `All`, an unknown `fieldValidation`, a `limit`,
    /// `timeoutSeconds` or `resourceVersion` that is not a number, and an unparsable
    /// `labelSelector` (field selectors are checked per resource, by the verbs).
    pub fn validate(&self) -> Result<(), ApiError> {
        if let Some(v) = self.get("dryRun")
            && v != "All"
        {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {v:?}: supported values: \"All\""
            )));
        }
        if let Some(v) = self.get("fieldValidation")
            && !matches!(v, "Strict" | "Warn" | "Ignore")
        {
            return Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: {v:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            )));
        }
        for k in ["limit", "timeoutSeconds"] {
            if let Some(v) = self.get(k)
                && v.parse::<i64>().is_err()
            {
                return Err(ApiError::bad_request(format!(
                    "{k}: invalid value {v:?}: strconv.ParseInt: parsing {v:?}: invalid syntax"
                )));
            }
        }
        if let Some(v) = self.get("resourceVersion")
            && v.parse::<u64>().is_err()
        {
            return Err(ApiError::bad_request(format!(
                "invalid resource version: {v:?}: a resourceVersion is a number"
            )));
        }
        crate::selector::LabelSelector::parse(self.get("labelSelector").unwrap_or(""))?;
        Ok(())
    }
}

/// How unknown and duplicate fields in a body are handled (`fieldValidation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    /// Dropped silently.
    Ignore,
    /// Dropped, with a `Warning` header each (the default).
    Warn,
    /// Refused with 400.
    Strict,
}

/// A request path with its `%XX` escapes decoded (kube-apiserver decodes each segment; an
/// escaped `/` becomes a separator here, which addresses nothing a valid name could).
pub fn decode_path(path: &str) -> String {
    if !path.contains('%') {
        return path.to_string();
    }
    decode_with(path, false)
}

fn decode(s: &str) -> String {
    decode_with(s, true)
}

fn decode_with(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(ns: Option<&str>, plural: &str, name: Option<&str>, sub: Option<&str>) -> Target {
        Target {
            group: "g".into(),
            version: "v1".into(),
            namespace: ns.map(Into::into),
            plural: plural.into(),
            name: name.map(Into::into),
            sub: sub.map(Into::into),
        }
    }

    #[test]
    fn parses_core_group_namespaced_and_cluster_paths() {
        assert_eq!(
            parse("/apis/g/v1/namespaces/ns/things/a/status"),
            Some(target(Some("ns"), "things", Some("a"), Some("status")))
        );
        assert_eq!(
            parse("/apis/g/v1/things"),
            Some(target(None, "things", None, None))
        );
        assert_eq!(
            parse("/apis/g/v1/namespaces/ns/things"),
            Some(target(Some("ns"), "things", None, None))
        );
        let ns = parse("/api/v1/namespaces/kube-system").unwrap();
        assert_eq!(
            (ns.plural.as_str(), ns.name.as_deref(), ns.namespace),
            ("namespaces", Some("kube-system"), None)
        );
        let secrets = parse("/api/v1/namespaces/default/secrets/s").unwrap();
        assert_eq!(
            (secrets.plural.as_str(), secrets.namespace.as_deref()),
            ("secrets", Some("default"))
        );
        assert_eq!(parse("/healthz"), None);
    }

    #[test]
    fn decodes_query_parameters() {
        let q = Query::parse(Some(
            "labelSelector=a%3Db%2Cc+in+%28x%29&watch=true&limit=5&dryRun=All",
        ));
        assert_eq!(q.get("labelSelector"), Some("a=b,c in (x)"));
        assert!(q.flag("watch") && q.dry_run());
        assert_eq!(q.get("missing"), None);
        assert_eq!(
            decode_path("/api/v1/namespaces/default/configmaps/a%2Db+c"),
            "/api/v1/namespaces/default/configmaps/a-b+c"
        );
    }

    #[test]
    fn garbage_parameters_are_refused() {
        for bad in [
            "labelSelector=a%3D%3D%3Db",
            "limit=abc",
            "resourceVersion=garbage",
            "timeoutSeconds=abc",
            "dryRun=Some",
            "fieldValidation=Loose",
        ] {
            let e = Query::parse(Some(bad)).validate().unwrap_err();
            assert_eq!(e.code, 400, "{bad}: {}", e.message);
        }
        for good in [
            "limit=5&resourceVersion=0&timeoutSeconds=3",
            "dryRun=All&fieldValidation=Strict",
            "labelSelector=a%3Db",
        ] {
            Query::parse(Some(good)).validate().unwrap();
        }
    }
}
