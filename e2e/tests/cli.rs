//! The `slipway` binary as a user runs it: exit codes, stdout and stderr.

use std::{
    io::Write,
    process::{Command, Output, Stdio},
};

fn slipway(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let home = std::env::temp_dir().join(format!("slipway-cli-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
    cmd.args(args)
        .env_clear()
        .env("HOME", &home)
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn kinds(yaml: &str) -> Vec<String> {
    yaml.lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .map(|k| k.trim_matches('"').to_string())
        .collect()
}

#[test]
fn generate_demo_prints_the_full_in_memory_set() {
    let out = slipway(
        &[
            "generate",
            "cluster",
            "demo",
            "--infrastructure",
            "in-memory",
            "--control-plane-machine-count",
            "3",
            "--worker-machine-count",
            "2",
            "--kubernetes-version",
            "v1.31.0",
        ],
        &[],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert_eq!(
        kinds(&yaml),
        [
            "Cluster",
            "KubeadmControlPlane",
            "MachineHealthCheck",
            "MachineDeployment",
            "KubeadmConfigTemplate",
            "MachineHealthCheck",
            "InMemoryCluster",
            "InMemoryMachineTemplate",
            "InMemoryMachineTemplate"
        ]
    );
    assert!(
        yaml.contains("replicas: 3")
            && yaml.contains("replicas: 2")
            && yaml.contains("\"v1.31.0\"")
    );
}

#[test]
fn aws_without_region_fails_naming_it_and_prints_no_manifest() {
    let out = slipway(
        &[
            "generate",
            "cluster",
            "prod",
            "--infrastructure",
            "aws",
            "--kubernetes-version",
            "v1.31.0",
        ],
        &[],
        None,
    );
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "no manifest on failure: {}",
        text(&out.stdout)
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("missing variables: AWS_REGION, AWS_SSH_KEY_NAME"),
        "{err}"
    );
    assert!(
        err.contains(".config/slipway/config.yaml"),
        "names the config file: {err}"
    );
}

#[test]
fn variables_come_from_flags_then_env_then_config_file() {
    let cfg_home = std::env::temp_dir().join(format!("slipway-cli-xdg-{}", std::process::id()));
    std::fs::create_dir_all(cfg_home.join("slipway")).unwrap();
    std::fs::write(
        cfg_home.join("slipway/config.yaml"),
        "AWS_REGION: from-config\nAWS_SSH_KEY_NAME: cfg-key\nKUBERNETES_VERSION: v1.30.1\n",
    )
    .unwrap();
    let xdg = cfg_home.to_str().unwrap();
    let args = ["generate", "cluster", "prod", "--infrastructure", "aws"];
    let out = slipway(&args, &[("XDG_CONFIG_HOME", xdg)], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(
        yaml.contains("region: \"from-config\"") && yaml.contains("version: \"v1.30.1\""),
        "{yaml}"
    );
    let out = slipway(
        &args,
        &[("XDG_CONFIG_HOME", xdg), ("AWS_REGION", "from-env")],
        None,
    );
    assert!(text(&out.stdout).contains("region: \"from-env\""));
    let mut with_flag = args.to_vec();
    with_flag.extend(["--kubernetes-version", "v1.32.0"]);
    let out = slipway(
        &with_flag,
        &[("XDG_CONFIG_HOME", xdg), ("KUBERNETES_VERSION", "v1.29.0")],
        None,
    );
    assert!(
        text(&out.stdout).contains("version: \"v1.32.0\""),
        "the flag wins"
    );
}

#[test]
fn from_stdin_write_to_and_list_variables() {
    let template = "apiVersion: cluster.x-k8s.io/v1beta2\nkind: Cluster\nmetadata:\n  name: ${CLUSTER_NAME}\n  namespace: ${NAMESPACE:=default}\nspec: {}\n";
    let out = slipway(
        &[
            "generate",
            "cluster",
            "x",
            "--from",
            "-",
            "--list-variables",
        ],
        &[],
        Some(template),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Required Variables:\n  - CLUSTER_NAME"));

    let dir = std::env::temp_dir().join(format!("slipway-cli-out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.yaml");
    let out = slipway(
        &[
            "generate",
            "cluster",
            "x",
            "--from",
            "-",
            "-n",
            "team-a",
            "--label",
            "environment=dev",
            "--write-to",
            file.to_str().unwrap(),
        ],
        &[],
        Some(template),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(
        written.contains("namespace: team-a") && written.contains("environment: dev"),
        "{written}"
    );
}

#[test]
fn bad_input_names_the_flag_or_variable() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["generate", "cluster", "Bad_Name"],
            "CLUSTER_NAME=\"Bad_Name\": must be a DNS label",
        ),
        (
            &["generate", "cluster", "c", "--infrastructure", "gcp"],
            "unknown infrastructure \"gcp\"; available: aws, aws-eks, kind, in-memory",
        ),
        (
            &[
                "generate",
                "cluster",
                "c",
                "--control-plane-machine-count",
                "2",
            ],
            "CONTROL_PLANE_MACHINE_COUNT=\"2\": must be odd",
        ),
        (
            &["generate", "cluster", "c", "--label", "no-equals"],
            "--label \"no-equals\": expected key=value",
        ),
        (
            &["generate", "cluster", "c", "--flavor", "huge"],
            "--flavor \"huge\"",
        ),
        (
            &["generate", "cluster", "c", "--from", "/nonexistent/t.yaml"],
            "--from /nonexistent/t.yaml",
        ),
        (
            &[
                "generate",
                "cluster",
                "c",
                "--config",
                "/nonexistent/c.yaml",
            ],
            "config file /nonexistent/c.yaml",
        ),
    ];
    for (args, want) in cases {
        let out = slipway(args, &[], None);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(out.stdout.is_empty(), "{args:?} printed a manifest");
        assert!(
            text(&out.stderr).contains(want),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn crds_prints_every_crd_and_matches_the_committed_files() {
    let out = slipway(&["crds"], &[], None);
    assert!(out.status.success());
    let all = text(&out.stdout);
    let committed_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/crd");
    let mut files: Vec<_> = std::fs::read_dir(&committed_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(
        all.matches("kind: CustomResourceDefinition").count(),
        files.len()
    );
    for f in files {
        let body = std::fs::read_to_string(&f).unwrap();
        assert!(
            all.contains(&body),
            "{} not in `slipway crds` output",
            f.display()
        );
    }
}
