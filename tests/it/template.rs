//! `template.yaml` passes cfn-lint (installed into .venv by scripts/emulator.sh).

use std::process::Command;

use trimtab_tests::moto::{ensure_venv, workspace_root};

#[test]
fn template_passes_cfn_lint() {
    let bin = ensure_venv().expect("venv");
    let out = Command::new(bin.join("cfn-lint"))
        .arg("template.yaml")
        .current_dir(workspace_root())
        .output()
        .expect("running cfn-lint");
    assert!(
        out.status.success(),
        "cfn-lint found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
