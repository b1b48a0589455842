//! `slipway up --encryption-key-file`: Secrets written through kubectl are not on disk in
//! plain text, and a restart without the key file refuses to start, naming the key and the
//! flag. (Rotation and wrong keys are covered in-process by the plane_hostile suite.)

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

use slipway_testsupport::{slipway_bin, temp_dir, text};

fn up(dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(slipway_bin());
    cmd.args(["up", "--port", "0", "--no-controller", "--data-dir"])
        .arg(dir)
        .args(extra)
        .env("RUST_LOG", "warn");
    cmd
}

/// Starts `slipway up`; returns it and its kubeconfig once it serves.
fn start(dir: &Path, extra: &[&str]) -> (Child, String) {
    let mut child = up(dir, extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("slipway up starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let kc = line
        .trim()
        .strip_prefix("export KUBECONFIG=")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, kc)
}

fn kubectl(kubeconfig: &str, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("kubectl on PATH");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn secrets_are_encrypted_with_the_key_file_and_a_start_without_it_is_refused() {
    let dir = temp_dir("up-encryption");
    let keys = temp_dir("up-encryption-keys");
    let key_file = keys.join("keys.yaml");
    // base64 of 32 bytes of 0x07.
    std::fs::write(
        &key_file,
        "keys:\n- name: first\n  secret: BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
    )
    .unwrap();
    let flag = ["--encryption-key-file", key_file.to_str().unwrap()];

    let (mut child, kc) = start(&dir, &flag);
    kubectl(
        &kc,
        &[
            "create",
            "secret",
            "generic",
            "db",
            "--from-literal=password=correct-horse-battery",
        ],
    );
    let got = kubectl(
        &kc,
        &["get", "secret", "db", "-o", "jsonpath={.data.password}"],
    );
    assert_eq!(got, "Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5");
    let _ = child.kill();
    let _ = child.wait();

    let mut disk = std::fs::read(dir.join("state.db")).unwrap();
    disk.extend(std::fs::read(dir.join("state.db-wal")).unwrap_or_default());
    let has = |s: &str| disk.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(!has("Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5") && !has("correct-horse-battery"));
    assert!(has("k8s:enc:aesgcm:v1:first:"));

    let out = up(&dir, &[]).output().unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("\"first\"") && err.contains("--encryption-key-file"),
        "{err}"
    );
    assert!(
        !err.contains("BwcHBwcH"),
        "key material in the error: {err}"
    );

    let (mut child, kc) = start(&dir, &flag);
    let got = kubectl(
        &kc,
        &["get", "secret", "db", "-o", "jsonpath={.data.password}"],
    );
    assert_eq!(got, "Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&keys);
}
