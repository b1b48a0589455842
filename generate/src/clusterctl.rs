//! The values clusterctl gives a `--from` template's variables when nobody set them:
//! `CONTROL_PLANE_MACHINE_COUNT` 1 and `WORKER_MACHINE_COUNT` 0 (its flag defaults), and
//! `NAMESPACE` the current kubeconfig context's namespace, else `default`.

use std::{collections::BTreeMap, path::PathBuf};

use serde_json::Value;

/// clusterctl's default for `name`, if it has one. `env` supplies `KUBECONFIG` and `HOME`.
pub fn default(name: &str, env: &BTreeMap<String, String>) -> Option<String> {
    match name {
        "CONTROL_PLANE_MACHINE_COUNT" => Some("1".into()),
        "WORKER_MACHINE_COUNT" => Some("0".into()),
        "NAMESPACE" => Some(kubeconfig_namespace(env).unwrap_or_else(|| "default".into())),
        _ => None,
    }
}

/// The kubeconfig files kubectl would read: `$KUBECONFIG` (colon-separated), else
/// `~/.kube/config`.
fn kubeconfig_paths(env: &BTreeMap<String, String>) -> Vec<PathBuf> {
    match env.get("KUBECONFIG").filter(|k| !k.is_empty()) {
        Some(list) => std::env::split_paths(list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        None => env
            .get("HOME")
            .map(|h| PathBuf::from(h).join(".kube/config"))
            .into_iter()
            .collect(),
    }
}

/// The namespace of the current context, merging files as kubectl does (the first file to
/// set `current-context` or define a context wins). Unreadable files count as absent, as for
/// kubectl.
fn kubeconfig_namespace(env: &BTreeMap<String, String>) -> Option<String> {
    let docs: Vec<Value> = kubeconfig_paths(env)
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|text| serde_saphyr::from_str::<Value>(&text).ok())
        .collect();
    let current = docs
        .iter()
        .find_map(|d| d["current-context"].as_str().filter(|c| !c.is_empty()))?;
    docs.iter()
        .filter_map(|d| d["contexts"].as_array())
        .flatten()
        .find(|c| c["name"] == current)
        .and_then(|c| c["context"]["namespace"].as_str())
        .filter(|ns| !ns.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with(config: Option<&str>) -> (BTreeMap<String, String>, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "slipway-gen-kubeconfig-{}-{}",
            std::process::id(),
            config.map_or(0, str::len)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut env = BTreeMap::new();
        env.insert("HOME".to_string(), dir.display().to_string());
        if let Some(c) = config {
            let path = dir.join("kc.yaml");
            std::fs::write(&path, c).unwrap();
            env.insert("KUBECONFIG".to_string(), path.display().to_string());
        }
        (env, dir)
    }

    #[test]
    fn counts_default_as_clusterctl_flags_do() {
        let env = BTreeMap::new();
        assert_eq!(
            default("CONTROL_PLANE_MACHINE_COUNT", &env).as_deref(),
            Some("1")
        );
        assert_eq!(default("WORKER_MACHINE_COUNT", &env).as_deref(), Some("0"));
        assert_eq!(default("KUBERNETES_VERSION", &env), None);
    }

    #[test]
    fn namespace_comes_from_the_current_context_else_default() {
        let (env, dir) = env_with(Some(
            "apiVersion: v1\nkind: Config\ncurrent-context: b\ncontexts:\n- name: a\n  context: {cluster: c, namespace: wrong}\n- name: b\n  context: {cluster: c, namespace: team-b}\n",
        ));
        assert_eq!(default("NAMESPACE", &env).as_deref(), Some("team-b"));
        let _ = std::fs::remove_dir_all(dir);

        let (env, dir) = env_with(Some(
            "apiVersion: v1\nkind: Config\ncurrent-context: a\ncontexts:\n- name: a\n  context: {cluster: c}\n",
        ));
        assert_eq!(default("NAMESPACE", &env).as_deref(), Some("default"));
        let _ = std::fs::remove_dir_all(dir);

        let (env, dir) = env_with(None);
        assert_eq!(default("NAMESPACE", &env).as_deref(), Some("default"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
