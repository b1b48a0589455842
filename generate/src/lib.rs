//! `slipway generate cluster`: renders a complete set of manifests for one cluster, from a
//! provider's flavor (its tera templates, after this crate's kubeadm template where the
//! provider bootstraps with kubeadm) or a clusterctl-style `--from` template with `${VAR}`
//! references.
//!
//! Contract: either every variable resolves and checks, and the output is parseable YAML with
//! one object per document, or nothing is produced and the error names every missing variable
//! (or the first invalid value, flag or label). Built-in templates pass every scalar through
//! `json_encode`, so no value can break the YAML; `--from` output is parsed back before it is
//! returned.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod clusterctl;
pub mod envsubst;
pub mod flavors;
pub mod vars;

use std::{collections::BTreeMap, fmt::Write as _, path::PathBuf};

use serde_json::{Value, json};

pub use flavors::Infrastructure;
use vars::{Check, Sources, VarSpec};

/// Errors of `generate`.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// Variables without a value or default.
    #[error("missing variables: {}; set them as environment variables or in the config file ({})", .names.join(", "), .config_hint)]
    MissingVariables {
        /// Every missing name.
        names: Vec<String>,
        /// Where the config file is looked for.
        config_hint: String,
    },
    /// A variable has a value its check rejects.
    #[error("{name}={value:?}: {reason}")]
    InvalidValue {
        /// Variable name.
        name: String,
        /// The rejected value.
        value: String,
        /// Why.
        reason: String,
    },
    /// A `--label` is malformed.
    #[error("--label {label:?}: {reason}")]
    InvalidLabel {
        /// The label as given.
        label: String,
        /// Why.
        reason: String,
    },
    /// No such flavor.
    #[error("--flavor {flavor:?}: the {infrastructure} provider has no such flavor; available: {}", .available.join(", "))]
    UnknownFlavor {
        /// Provider name.
        infrastructure: String,
        /// Requested flavor.
        flavor: String,
        /// Flavors it has.
        available: Vec<String>,
    },
    /// The config file cannot be read or parsed.
    #[error("config file {}: {reason}", .path.display())]
    Config {
        /// Path of the file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The `--from` template rendered to something that is not a set of objects.
    #[error("--from template: {0}")]
    BrokenTemplate(String),
    /// A built-in template failed to render (a bug in slipway).
    #[error("rendering built-in template {name}: {reason}")]
    Render {
        /// Template name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// Why a YAML stream is not a set of Kubernetes objects (see [`objects`]).
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    /// The stream does not parse as YAML.
    #[error("not valid YAML: {0}")]
    Yaml(#[source] Box<serde_saphyr::Error>),
    /// The stream holds no document.
    #[error("no objects")]
    Empty,
    /// A document (1-based) lacks a string apiVersion, kind or metadata.name.
    #[error("document {document} is not an object with apiVersion, kind and metadata.name")]
    NotAnObject {
        /// 1-based position of the document in the stream.
        document: usize,
    },
}

impl GenerateError {
    /// Generation errors are all caused by input or a bug; none goes away by retrying.
    pub fn is_transient(&self) -> bool {
        false
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct Request {
    /// A provider's entry (ignored with `from`).
    pub infrastructure: Infrastructure,
    /// Flavor; `None` is the provider's default.
    pub flavor: Option<String>,
    /// A clusterctl-style template's text, replacing the built-in flavor.
    pub from: Option<String>,
    /// `--label` values as given (`key=value`).
    pub labels: Vec<String>,
    /// Variable values.
    pub sources: Sources,
    /// Shown in the missing-variables error.
    pub config_hint: String,
}

/// Renders the manifests.
pub fn generate(req: &Request) -> Result<String, GenerateError> {
    let labels = parse_labels(&req.labels)?;
    match &req.from {
        Some(template) => generate_from(req, template, &labels),
        None => generate_builtin(req, &labels),
    }
}

/// The `--list-variables` text: required variables, then optional ones with their defaults.
pub fn list_variables(req: &Request) -> Result<String, GenerateError> {
    let specs: Vec<(String, Option<String>)> = match &req.from {
        Some(t) => envsubst::references(t)
            .into_iter()
            .map(|r| {
                let default = r
                    .default
                    .or_else(|| clusterctl::default(&r.name, &req.sources.env));
                (r.name, default)
            })
            .collect(),
        None => {
            let flavor = flavor_of(req)?;
            flavors::variables(&req.infrastructure, flavor)
                .into_iter()
                .map(|s| (s.name.to_string(), s.default.map(str::to_string)))
                .collect()
        }
    };
    let mut out = String::from("Required Variables:\n");
    for (name, _) in specs.iter().filter(|(_, d)| d.is_none()) {
        let _ = writeln!(out, "  - {name}");
    }
    out.push_str("\nOptional Variables:\n");
    let width = specs.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, default) in specs.iter().filter(|(_, d)| d.is_some()) {
        let _ = writeln!(
            out,
            "  - {name:width$} (defaults to {:?})",
            default.as_deref().unwrap_or_default()
        );
    }
    Ok(out)
}

fn parse_labels(raw: &[String]) -> Result<BTreeMap<String, String>, GenerateError> {
    raw.iter().map(|l| vars::parse_label(l)).collect()
}

fn flavor_of(req: &Request) -> Result<&str, GenerateError> {
    let available = req.infrastructure.flavors;
    match req.flavor.as_deref() {
        None => Ok(available[0]),
        Some(f) if available.contains(&f) => Ok(f),
        Some(f) => Err(GenerateError::UnknownFlavor {
            infrastructure: req.infrastructure.name.into(),
            flavor: f.into(),
            available: available.iter().map(|s| s.to_string()).collect(),
        }),
    }
}

/// Resolves every variable (value or default), listing all missing ones at once, then checks
/// each value.
fn resolve(
    specs: &[VarSpec],
    req: &Request,
) -> Result<BTreeMap<&'static str, String>, GenerateError> {
    let mut values = BTreeMap::new();
    let mut missing = Vec::new();
    for spec in specs {
        match req
            .sources
            .get(spec.name)
            .map(str::to_string)
            .or(spec.default.map(str::to_string))
        {
            Some(v) => {
                values.insert(spec.name, v);
            }
            None => missing.push(spec.name.to_string()),
        }
    }
    if !missing.is_empty() {
        return Err(GenerateError::MissingVariables {
            names: missing,
            config_hint: req.config_hint.clone(),
        });
    }
    for spec in specs {
        vars::check(spec, &values[spec.name])?;
    }
    Ok(values)
}

fn generate_builtin(
    req: &Request,
    labels: &BTreeMap<String, String>,
) -> Result<String, GenerateError> {
    let flavor = flavor_of(req)?;
    let specs = flavors::variables(&req.infrastructure, flavor);
    let values = resolve(&specs, req)?;
    let mut typed = serde_json::Map::new();
    for spec in &specs {
        let raw = &values[spec.name];
        let v = match spec.check {
            Check::Count | Check::OddCount => json!(raw.parse::<u64>().unwrap_or_default()),
            Check::Seconds => json!(raw.parse::<f64>().unwrap_or_default()),
            _ => json!(raw),
        };
        typed.insert(spec.name.to_string(), v);
    }
    let infra = &req.infrastructure;
    let version = &values["KUBERNETES_VERSION"];
    let context = json!({
        "vars": typed,
        "labels": labels,
        "flavor": flavor,
        "infrastructure": infra.name,
        "external_cloud_provider": infra.external_cloud_provider,
        "infra_cluster_kind": infra.cluster_kind,
        "machine_template_kind": infra.machine_template_kind,
        "eks_version": version.split('.').take(2).collect::<Vec<_>>().join("."),
    });
    let mut context = tera::Context::from_value(context).map_err(|e| render_error("context", e))?;

    let mut tera = tera::Tera::default();
    let shared = if flavor == flavors::TOPOLOGY {
        flavors::TOPOLOGY_TEMPLATE
    } else {
        flavors::KUBEADM_TEMPLATE
    };
    let all: Vec<(&str, &str)> = infra
        .kubeadm
        .then_some(shared)
        .into_iter()
        .chain(infra.templates.iter().copied())
        .collect();
    tera.add_raw_templates(all.iter().copied())
        .map_err(|e| render_error("templates", e))?;
    // Partials (`_name`) are only included by other templates.
    let render = |names: &mut dyn Iterator<Item = &str>, context: &tera::Context| {
        let mut out = String::new();
        for name in names.filter(|n| !n.starts_with('_')) {
            let rendered = tera
                .render(name, context)
                .map_err(|e| render_error(name, e))?;
            out.push_str(&rendered);
        }
        Ok::<_, GenerateError>(out)
    };
    let own = render(&mut infra.templates.iter().map(|(n, _)| *n), &context)?;
    let out = if !infra.kubeadm {
        own
    } else if flavor == flavors::TOPOLOGY {
        // The class names the provider's templates at the version the provider renders them.
        let kind = format!("{}Template", infra.cluster_kind);
        let docs = objects(&own).map_err(|e| GenerateError::Render {
            name: infra.name.into(),
            reason: e.to_string(),
        })?;
        let api_version = docs
            .iter()
            .find(|d| d["kind"] == kind.as_str())
            .and_then(|d| d["apiVersion"].as_str())
            .ok_or_else(|| GenerateError::Render {
                name: infra.name.into(),
                reason: format!("flavor topology renders no {kind}"),
            })?;
        context.insert("infra_api_version", api_version);
        render(&mut std::iter::once(shared.0), &context)? + &own
    } else {
        render(&mut std::iter::once(shared.0), &context)? + &own
    };
    // Parse back: a built-in template that renders broken YAML is a bug we refuse to print.
    objects(&out).map_err(|e| GenerateError::Render {
        name: infra.name.into(),
        reason: e.to_string(),
    })?;
    Ok(out)
}

fn render_error(name: &str, e: impl std::error::Error) -> GenerateError {
    let mut reason = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(reason, ": {s}");
        source = s.source();
    }
    GenerateError::Render {
        name: name.into(),
        reason,
    }
}

fn generate_from(
    req: &Request,
    template: &str,
    labels: &BTreeMap<String, String>,
) -> Result<String, GenerateError> {
    for name in ["CLUSTER_NAME", "NAMESPACE"] {
        if let Some(value) = req.sources.get(name) {
            let spec = VarSpec {
                name,
                default: None,
                description: "",
                check: Check::DnsLabel,
            };
            vars::check(&spec, value)?;
        }
    }
    let rendered = envsubst::substitute(template, |n| {
        req.sources
            .get(n)
            .map(str::to_string)
            .or_else(|| clusterctl::default(n, &req.sources.env))
    })
    .map_err(|names| GenerateError::MissingVariables {
        names,
        config_hint: req.config_hint.clone(),
    })?;
    let mut docs = objects(&rendered).map_err(|e| GenerateError::BrokenTemplate(e.to_string()))?;
    if labels.is_empty() {
        return Ok(rendered);
    }
    // Labels land on the Cluster; the documents are re-serialized (comments are not kept).
    for doc in docs.iter_mut().filter(|d| d["kind"] == "Cluster") {
        let meta = doc["metadata"]
            .as_object_mut()
            .expect("checked by objects()");
        let entry = meta.entry("labels").or_insert_with(|| json!({}));
        let map = entry.as_object_mut().ok_or_else(|| {
            GenerateError::BrokenTemplate("Cluster metadata.labels is not a map".into())
        })?;
        for (k, v) in labels {
            map.insert(k.clone(), json!(v));
        }
    }
    let mut out = String::new();
    for doc in &docs {
        out.push_str("---\n");
        out.push_str(
            &serde_saphyr::to_string(doc)
                .map_err(|e| GenerateError::BrokenTemplate(e.to_string()))?,
        );
    }
    Ok(out)
}

/// Parses a multi-document YAML stream and checks each document is an object with apiVersion,
/// kind and metadata.name.
pub fn objects(yaml: &str) -> Result<Vec<Value>, ObjectsError> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(yaml).map_err(|e| ObjectsError::Yaml(Box::new(e)))?;
    if docs.is_empty() {
        return Err(ObjectsError::Empty);
    }
    for (i, doc) in docs.iter().enumerate() {
        let ok = doc.get("apiVersion").is_some_and(Value::is_string)
            && doc.get("kind").is_some_and(Value::is_string)
            && doc.pointer("/metadata/name").is_some_and(Value::is_string);
        if !ok {
            return Err(ObjectsError::NotAnObject { document: i + 1 });
        }
    }
    Ok(docs)
}
