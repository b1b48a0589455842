//! clusterctl-style variable substitution for `--from` templates: `${VAR}`, `${VAR:=default}`,
//! `${VAR:-default}` (default when unset or empty) and `${VAR=default}` / `${VAR-default}`
//! (default when unset). Only the braced form is recognised, so a literal `$` in a manifest is
//! left alone.

use std::collections::BTreeMap;

/// One `${...}` reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// Variable name.
    pub name: String,
    /// Default, if the reference has one.
    pub default: Option<String>,
    /// Whether an empty value also takes the default (`:=` / `:-`).
    pub default_if_empty: bool,
}

/// A template split into literal text and references.
#[derive(Debug)]
enum Piece<'a> {
    Text(&'a str),
    Var(Reference),
}

fn parse(template: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let inner = &after[..end];
        let name_len = inner
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(inner.len());
        let name = &inner[..name_len];
        let op = &inner[name_len..];
        let form: Option<(Option<&str>, bool)> =
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                None
            } else if op.is_empty() {
                Some((None, false))
            } else if let Some(d) = op.strip_prefix(":=").or_else(|| op.strip_prefix(":-")) {
                Some((Some(d), true))
            } else {
                op.strip_prefix('=')
                    .or_else(|| op.strip_prefix('-'))
                    .map(|d| (Some(d), false))
            };
        let reference = form.map(|(default, default_if_empty)| Reference {
            name: name.into(),
            default: default.map(Into::into),
            default_if_empty,
        });
        match reference {
            Some(r) => {
                pieces.push(Piece::Text(&rest[..start]));
                pieces.push(Piece::Var(r));
            }
            // Not a variable reference: keep it verbatim.
            None => pieces.push(Piece::Text(&rest[..start + 2 + end + 1])),
        }
        rest = &after[end + 1..];
    }
    pieces.push(Piece::Text(rest));
    pieces
}

/// Every reference in order of first appearance, one per name (the first default wins).
pub fn references(template: &str) -> Vec<Reference> {
    let mut seen = BTreeMap::new();
    let mut out = Vec::new();
    for p in parse(template) {
        if let Piece::Var(r) = p
            && seen.insert(r.name.clone(), ()).is_none()
        {
            out.push(r);
        }
    }
    out
}

/// Substitutes every reference; `Err` lists every variable that has neither a value nor a default.
pub fn substitute(
    template: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(template.len());
    let mut missing: Vec<String> = Vec::new();
    for p in parse(template) {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Var(r) => {
                let value = match (lookup(&r.name), &r.default) {
                    (Some(v), Some(d)) if v.is_empty() && r.default_if_empty => Some(d.clone()),
                    (Some(v), _) => Some(v),
                    (None, Some(d)) => Some(d.clone()),
                    (None, None) => None,
                };
                match value {
                    Some(v) => out.push_str(&v),
                    None if !missing.contains(&r.name) => missing.push(r.name.clone()),
                    None => {}
                }
            }
        }
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn substitutes_each_default_form_as_envsubst_does() {
        let t = "a=${A} b=${B:=bd} c=${C:-cd} d=${D=dd} e=${E-ed}";
        let set = lookup(&[("A", "1"), ("B", ""), ("C", ""), ("D", ""), ("E", "5")]);
        assert_eq!(substitute(t, set).unwrap(), "a=1 b=bd c=cd d= e=5");
        let unset = lookup(&[("A", "1")]);
        assert_eq!(substitute(t, unset).unwrap(), "a=1 b=bd c=cd d=dd e=ed");
    }

    #[test]
    fn lists_every_missing_variable_once() {
        let err = substitute("${X} ${Y:=y} ${Z} ${X}", lookup(&[])).unwrap_err();
        assert_eq!(err, vec!["X", "Z"]);
    }

    #[test]
    fn leaves_non_references_alone() {
        let t = "cost: $5 ${1BAD} ${} ${A!x} $HOME ${unterminated";
        assert_eq!(substitute(t, lookup(&[])).unwrap(), t);
    }

    #[test]
    fn references_keep_first_appearance_and_defaults() {
        let refs = references("${B:=x} ${A} ${B}");
        assert_eq!(refs.len(), 2);
        assert_eq!(
            refs[0],
            Reference {
                name: "B".into(),
                default: Some("x".into()),
                default_if_empty: true
            }
        );
        assert_eq!(refs[1].name, "A");
        assert_eq!(refs[1].default, None);
    }
}
