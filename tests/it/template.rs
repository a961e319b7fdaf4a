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

#[test]
fn each_jobs_budget_is_its_functions_timeout_in_the_template() {
    let template = trimtab_tests::template::load().expect("template");
    for kind in analysis_api::Kind::ALL {
        let id = analysis_api::Jobs::logical_id(kind);
        let timeout = template["Resources"][id]["Properties"]["Timeout"].as_u64();
        assert_eq!(
            timeout,
            Some(analysis_api::Jobs::timeout(kind).as_secs()),
            "{id}: the CLI's budget must be the function's Timeout"
        );
    }
}

#[test]
fn the_apply_api_may_only_start_runs_and_record_them() {
    let template = trimtab_tests::template::load().expect("template");
    let mut actions = trimtab_tests::template::allowed_actions(&template, "ApiApplyFunction");
    actions.sort();
    assert_eq!(actions, ["dynamodb:PutItem", "lambda:InvokeFunction"]);
}
