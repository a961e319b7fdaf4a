//! Tidy test: the layering ARCHITECTURE.md promises, read from the Cargo.toml files.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `[dependencies]` (not dev-dependencies) names of one manifest.
fn dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).expect("manifest");
    let mut in_deps = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if !in_deps || line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((name, _)) = line.split_once(['=', '.']) {
            out.push(name.trim().to_owned());
        }
    }
    out
}

fn crates() -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root().join("crates")).expect("crates/") {
        let dir = entry.expect("entry").path();
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        out.push((name, dependencies(&dir.join("Cargo.toml"))));
    }
    out
}

#[test]
fn core_has_no_io_no_async_no_sdk() {
    let deps = dependencies(&root().join("crates/trimtab-core/Cargo.toml"));
    for banned in [
        "tokio",
        "futures",
        "aws-config",
        "aws-smithy-types",
        "lambda_runtime",
    ] {
        assert!(
            !deps.contains(&banned.to_owned()),
            "trimtab-core depends on {banned}"
        );
    }
    assert!(
        deps.iter().all(|d| !d.starts_with("aws-sdk-")),
        "trimtab-core depends on the SDK"
    );
    assert!(
        deps.iter()
            .all(|d| !d.starts_with("trimtab-") && d != "rightsizing"),
        "core depends on a crate above it"
    );
}

#[test]
fn only_the_adapter_crate_depends_on_the_sdk() {
    for (name, deps) in crates() {
        if name == "trimtab-aws" {
            continue;
        }
        let sdk: Vec<_> = deps
            .iter()
            .filter(|d| d.starts_with("aws-sdk-") || *d == "aws-config")
            .collect();
        assert!(
            sdk.is_empty(),
            "{name} depends on {sdk:?}; AWS calls belong in trimtab-aws"
        );
    }
}

#[test]
fn crate_folders_are_package_names() {
    for (name, _) in crates() {
        let text = std::fs::read_to_string(root().join("crates").join(&name).join("Cargo.toml"))
            .expect("manifest");
        assert!(
            text.contains(&format!("name = \"{name}\"")),
            "crates/{name} is not package {name}"
        );
        assert!(
            text.contains("version = \"0.0.0\""),
            "crates/{name} is not version 0.0.0"
        );
    }
}
