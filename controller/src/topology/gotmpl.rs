//! Go text/template rendering for ClusterClass patches (`enabledIf`, `valueFrom.template`) and
//! naming templates, through the `gtmpl` crate, plus the sprig functions Cluster API's examples
//! use (`replace`, `semverCompare`, `default`, `coalesce`, `trimPrefix`, `trimSuffix`, `lower`,
//! `upper`, `quote`, `contains`, `hasPrefix`, `hasSuffix`, `toString`).

use gtmpl::{Context, Template};
use gtmpl_value::{FuncError, Number, Value as G};
use serde_json::Value;

/// Renders `text` with `data` as dot; the error names what failed to parse or execute.
pub fn render(text: &str, data: &Value) -> Result<String, String> {
    let mut t = Template::default();
    t.add_funcs(&[
        ("replace", replace as gtmpl_value::Func),
        ("semverCompare", semver_compare),
        ("default", default),
        ("coalesce", coalesce),
        ("trimPrefix", trim_prefix),
        ("trimSuffix", trim_suffix),
        ("lower", lower),
        ("upper", upper),
        ("quote", quote),
        ("contains", contains),
        ("hasPrefix", has_prefix),
        ("hasSuffix", has_suffix),
        ("toString", to_string),
    ]);
    check_delimiters(text).map_err(|e| format!("parsing template: {e}"))?;
    t.parse(text)
        .map_err(|e| format!("parsing template: {e}"))?;
    t.render(&Context::from(to_gtmpl(data)))
        .map_err(|e| format!("executing template: {e}"))
}

/// gtmpl's lexer does not stop on an unclosed action or string: refuse those before parsing.
fn check_delimiters(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("unclosed action at {:?}", &rest[open..]))?;
        let action = &after[..close];
        let mut quotes = 0;
        let mut escaped = false;
        for ch in action.chars() {
            match ch {
                '\\' if !escaped => {
                    escaped = true;
                    continue;
                }
                '"' if !escaped => quotes += 1,
                _ => {}
            }
            escaped = false;
        }
        if quotes % 2 == 1 || action.matches('`').count() % 2 == 1 {
            return Err(format!("unterminated string in {{{{{action}}}}}"));
        }
        rest = &after[close + 2..];
    }
    Ok(())
}

/// A JSON value as a template value (objects become maps: a missing key is `<no value>`, as
/// Go's maps of `interface{}` behave).
pub fn to_gtmpl(v: &Value) -> G {
    match v {
        Value::Null => G::Nil,
        Value::Bool(b) => G::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => G::Number(Number::from(i)),
            (None, Some(u)) => G::Number(Number::from(u)),
            _ => G::Number(Number::from(n.as_f64().unwrap_or_default())),
        },
        Value::String(s) => G::String(s.clone()),
        Value::Array(a) => G::Array(a.iter().map(to_gtmpl).collect()),
        Value::Object(m) => G::Map(m.iter().map(|(k, v)| (k.clone(), to_gtmpl(v))).collect()),
    }
}

fn string_arg(name: &str, args: &[G], i: usize) -> Result<String, FuncError> {
    match args.get(i) {
        Some(G::String(s)) => Ok(s.clone()),
        Some(G::NoValue) | Some(G::Nil) | None => Ok(String::new()),
        Some(other) => match other {
            G::Number(n) => Ok(n.to_string()),
            G::Bool(b) => Ok(b.to_string()),
            _ => Err(FuncError::Generic(format!(
                "{name}: argument {} must be a string",
                i + 1
            ))),
        },
    }
}

fn exactly(name: &str, args: &[G], n: usize) -> Result<(), FuncError> {
    if args.len() == n {
        Ok(())
    } else {
        Err(FuncError::ExactlyXArgs(name.into(), n))
    }
}

/// sprig `replace OLD NEW STRING`.
fn replace(args: &[G]) -> Result<G, FuncError> {
    exactly("replace", args, 3)?;
    let (old, new, s) = (
        string_arg("replace", args, 0)?,
        string_arg("replace", args, 1)?,
        string_arg("replace", args, 2)?,
    );
    Ok(G::String(s.replace(&old, &new)))
}

/// sprig `semverCompare CONSTRAINT VERSION`: whether VERSION satisfies CONSTRAINT.
fn semver_compare(args: &[G]) -> Result<G, FuncError> {
    exactly("semverCompare", args, 2)?;
    let constraint = string_arg("semverCompare", args, 0)?;
    let version = string_arg("semverCompare", args, 1)?;
    Ok(G::Bool(
        semver_satisfies(&constraint, &version).map_err(FuncError::Generic)?,
    ))
}

/// Masterminds-semver style check: `v` prefixes are dropped, `-0` pre-release markers mean
/// "including pre-releases", comma or space separated constraints must all hold.
pub fn semver_satisfies(constraint: &str, version: &str) -> Result<bool, String> {
    let parse_v = |s: &str| {
        let s = s.trim().trim_start_matches('v');
        semver::Version::parse(s).map_err(|e| format!("semverCompare: version {s:?}: {e}"))
    };
    let mut v = parse_v(version)?;
    // Masterminds treats a constraint with a pre-release as admitting pre-releases; a plain one
    // compares the release only.
    let admits_pre = constraint.contains('-');
    if !admits_pre {
        v.pre = semver::Prerelease::EMPTY;
    }
    v.build = semver::BuildMetadata::EMPTY;
    let normalized = normalize_constraint(constraint);
    let req = semver::VersionReq::parse(&normalized)
        .map_err(|e| format!("semverCompare: constraint {constraint:?}: {e}"))?;
    if req.matches(&v) {
        return Ok(true);
    }
    // The semver crate only lets pre-releases match comparators of the same release; compare
    // against the release too so `< v1.25-0` holds for `v1.24.3-rc.1`.
    if admits_pre && !v.pre.is_empty() {
        let mut release = v.clone();
        release.pre = semver::Prerelease::EMPTY;
        return Ok(req.comparators.iter().all(|c| {
            semver::VersionReq {
                comparators: vec![c.clone()],
            }
            .matches(&release)
                && !(c.op == semver::Op::Less
                    && c.major == release.major
                    && c.minor.is_none_or(|m| m == release.minor)
                    && c.patch.is_none_or(|p| p == release.patch)
                    && c.pre.is_empty())
        }));
    }
    Ok(false)
}

fn normalize_constraint(c: &str) -> String {
    // "< v1.25" -> "<1.25"; Masterminds defaults a bare version to "=".
    let mut parts = Vec::new();
    let mut op = String::new();
    for token in c.split([',', ' ']).filter(|t| !t.is_empty()) {
        let t = token.trim();
        let split = t
            .find(|ch: char| ch.is_ascii_digit() || ch == 'v')
            .unwrap_or(t.len());
        let (o, rest) = t.split_at(split);
        if rest.is_empty() {
            op = o.to_string();
            continue;
        }
        let o = if o.is_empty() { op.as_str() } else { o };
        let o = if o.is_empty() { "=" } else { o };
        let v = rest.trim_start_matches('v');
        // `1.25-0`: the semver crate needs all three numbers before a pre-release.
        let v = match v.split_once('-') {
            Some((num, pre)) if num.split('.').count() < 3 => {
                let pad = ".0".repeat(3 - num.split('.').count());
                format!("{num}{pad}-{pre}")
            }
            _ => v.to_string(),
        };
        parts.push(format!("{o}{v}"));
        op.clear();
    }
    parts.join(", ")
}

fn empty(v: &G) -> bool {
    match v {
        G::NoValue | G::Nil => true,
        G::Bool(b) => !b,
        G::String(s) => s.is_empty(),
        G::Array(a) => a.is_empty(),
        G::Map(m) | G::Object(m) => m.is_empty(),
        G::Number(n) => n.as_f64() == Some(0.0),
        G::Function(_) => false,
    }
}

/// sprig `default DEFAULT VALUE`: VALUE unless empty.
fn default(args: &[G]) -> Result<G, FuncError> {
    match args {
        [d] => Ok(d.clone()),
        [d, v] => Ok(if empty(v) { d.clone() } else { v.clone() }),
        _ => Err(FuncError::AtLeastXArgs("default".into(), 1)),
    }
}

/// sprig `coalesce A B ...`: the first non-empty value.
fn coalesce(args: &[G]) -> Result<G, FuncError> {
    Ok(args.iter().find(|v| !empty(v)).cloned().unwrap_or(G::Nil))
}

fn trim_prefix(args: &[G]) -> Result<G, FuncError> {
    exactly("trimPrefix", args, 2)?;
    let (p, s) = (
        string_arg("trimPrefix", args, 0)?,
        string_arg("trimPrefix", args, 1)?,
    );
    Ok(G::String(s.strip_prefix(&p).unwrap_or(&s).to_string()))
}

fn trim_suffix(args: &[G]) -> Result<G, FuncError> {
    exactly("trimSuffix", args, 2)?;
    let (p, s) = (
        string_arg("trimSuffix", args, 0)?,
        string_arg("trimSuffix", args, 1)?,
    );
    Ok(G::String(s.strip_suffix(&p).unwrap_or(&s).to_string()))
}

fn lower(args: &[G]) -> Result<G, FuncError> {
    exactly("lower", args, 1)?;
    Ok(G::String(string_arg("lower", args, 0)?.to_lowercase()))
}

fn upper(args: &[G]) -> Result<G, FuncError> {
    exactly("upper", args, 1)?;
    Ok(G::String(string_arg("upper", args, 0)?.to_uppercase()))
}

fn quote(args: &[G]) -> Result<G, FuncError> {
    let quoted: Vec<String> = args
        .iter()
        .enumerate()
        .map(|(i, _)| string_arg("quote", args, i).map(|s| format!("{s:?}")))
        .collect::<Result<_, _>>()?;
    Ok(G::String(quoted.join(" ")))
}

fn contains(args: &[G]) -> Result<G, FuncError> {
    exactly("contains", args, 2)?;
    let (sub, s) = (
        string_arg("contains", args, 0)?,
        string_arg("contains", args, 1)?,
    );
    Ok(G::Bool(s.contains(&sub)))
}

fn has_prefix(args: &[G]) -> Result<G, FuncError> {
    exactly("hasPrefix", args, 2)?;
    let (p, s) = (
        string_arg("hasPrefix", args, 0)?,
        string_arg("hasPrefix", args, 1)?,
    );
    Ok(G::Bool(s.starts_with(&p)))
}

fn has_suffix(args: &[G]) -> Result<G, FuncError> {
    exactly("hasSuffix", args, 2)?;
    let (p, s) = (
        string_arg("hasSuffix", args, 0)?,
        string_arg("hasSuffix", args, 1)?,
    );
    Ok(G::Bool(s.ends_with(&p)))
}

fn to_string(args: &[G]) -> Result<G, FuncError> {
    exactly("toString", args, 1)?;
    Ok(G::String(args[0].to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_fields_and_sprig_functions() {
        let data = json!({"builtin": {"controlPlane": {"version": "v1.31.0+k3s1"}}, "name": "x", "empty": ""});
        let cases = [
            ("{{ .name }}", "x"),
            (
                r#"{{ .builtin.controlPlane.version | replace "+" "_" }}"#,
                "v1.31.0_k3s1",
            ),
            (
                r#"{{ if semverCompare "< v1.25" .builtin.controlPlane.version }}old{{ else }}new{{ end }}"#,
                "new",
            ),
            (r#"{{ default "d" .empty }}"#, "d"),
            (r#"{{ default "d" .name }}"#, "x"),
            (r#"{{ ne .name "" }}"#, "true"),
            (r#"{{ coalesce .empty .name }}"#, "x"),
            (r#"{{ trimPrefix "v" "v1.2.3" }}"#, "1.2.3"),
        ];
        for (tpl, want) in cases {
            assert_eq!(render(tpl, &data).unwrap(), want, "{tpl}");
        }
    }

    #[test]
    fn semver_constraints_as_masterminds() {
        let cases = [
            ("< v1.25", "v1.24.3", true),
            ("< v1.25", "v1.25.0", false),
            (">= 1.22.0", "v1.31.0", true),
            ("1.21.1", "v1.21.1", true),
            ("1.21.1", "v1.21.2", false),
            ("^1.22.0", "v1.30.0", true),
            (">= 1.20, < 1.30", "1.29.9", true),
            (">= 1.20, < 1.30", "1.30.0", false),
            ("< v1.25-0", "v1.24.3-rc.1", true),
        ];
        for (c, v, want) in cases {
            assert_eq!(semver_satisfies(c, v).unwrap(), want, "{c} {v}");
        }
    }

    #[test]
    fn errors_name_the_problem() {
        for bad in ["{{ .a ", "{{ \"a }}", "{{ if .a }}x"] {
            let e = render(bad, &json!({})).unwrap_err();
            assert!(
                e.starts_with("parsing template") || e.starts_with("executing"),
                "{e}"
            );
        }
        let e = render(r#"{{ semverCompare "<1" "banana" }}"#, &json!({})).unwrap_err();
        assert!(e.contains("banana"), "{e}");
    }
}
