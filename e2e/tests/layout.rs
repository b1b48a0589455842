//! With `autotests = false` in both manifests that build files of `e2e/tests/`, a suite that
//! neither lists would silently never run: every `e2e/tests/*.rs` is a `[[test]]` of exactly
//! one of them.

use std::path::Path;

#[test]
fn every_suite_in_e2e_tests_is_a_test_target_of_exactly_one_package() {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = std::fs::read_to_string(e2e.join("../Cargo.toml")).unwrap();
    let own = std::fs::read_to_string(e2e.join("Cargo.toml")).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(e2e.join("tests"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rs"))
        .collect();
    names.sort();
    assert!(names.len() > 1, "{names:?}");
    for n in names {
        let in_root = root.contains(&format!("path = \"e2e/tests/{n}\""));
        let in_own = own.contains(&format!("path = \"tests/{n}\""));
        assert!(
            in_root != in_own,
            "e2e/tests/{n} must be a [[test]] of exactly one of Cargo.toml (root) and \
             e2e/Cargo.toml (root: {in_root}, e2e: {in_own})"
        );
    }
}
