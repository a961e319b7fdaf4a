//! The `trimtab invoke` contract (docs/reports.md), through the real binary and the standard
//! configuration chain, against a seeded demo account in moto.

use std::path::Path;
use std::process::{Command, Output};
use std::time::SystemTime;

use trimtab_tests::moto::{Moto, workspace_root};

const TABLE: &str = "trimtab-decisions-cli";

fn invoke(moto: &Moto, logical_id: &str, event: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trimtab"))
        .args(["invoke", logical_id, "--event"])
        .arg(event)
        .envs(moto.env())
        .env("TRIMTAB_TABLE", TABLE)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running trimtab")
}

async fn demo_account() -> Moto {
    let moto = Moto::start().expect("moto");
    let sdk = moto.sdk_config().await;
    trimtab_tests::demo::seed(&sdk, &moto.endpoint, 14, TABLE, SystemTime::now())
        .await
        .expect("demo account");
    moto
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_file_runs_and_returns_a_report() {
    let moto = demo_account().await;
    let events = workspace_root().join("events");
    let mut paths: Vec<_> = std::fs::read_dir(&events)
        .expect("events/")
        .map(|e| e.expect("entry").path())
        .collect();
    paths.sort();
    let mut ran = 0;
    for path in paths {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let logical_id = if name.starts_with("rightsizing-") {
            "RightSizingFunction"
        } else if name.starts_with("dynamodb-") {
            "DynamoDBScalingFunction"
        } else if name.starts_with("cost-") {
            "CostAnalysisFunction"
        } else if name.starts_with("performance-") {
            "PerformanceMonitorFunction"
        } else if name.starts_with("api-") {
            "ApiFunction"
        } else {
            panic!("events/{name}: no function for this event; name it after its function")
        };
        let out = invoke(&moto, logical_id, &path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{name}: exit {:?}\n{stderr}",
            out.status
        );
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("stdout is the JSON report");
        // Sorted, the apply sample runs before these two, so there is a change to show and undo.
        if report["action"] == "history" {
            assert_eq!(report["records"][0]["state"], "applied", "{name}: {report}");
            ran += 1;
            continue;
        }
        // API samples: the function answers; bad requests get their 4xx with a JSON error.
        if let Some(status) = report["statusCode"].as_i64() {
            let body: serde_json::Value =
                serde_json::from_str(report["body"].as_str().unwrap_or("{}")).expect("JSON body");
            if status == 200 {
                assert!(body.is_object(), "{name}: {body}");
            } else if status == 202 {
                // An analysis that takes longer than the synchronous budget (25 s: a loaded
                // machine) goes on as a run, as the API documents.
                assert!(body["run_id"].is_string(), "{name}: {body}");
                assert!(body["status_url"].is_string(), "{name}: {body}");
            } else {
                assert!((400..500).contains(&status), "{name}: {status} {body}");
                assert!(body["error"]["message"].is_string(), "{name}: {body}");
            }
            ran += 1;
            continue;
        }
        if report["job"] == "performance" {
            assert!(
                !report["subjects"].as_array().expect("subjects").is_empty(),
                "{name}"
            );
            ran += 1;
            continue;
        }
        if report["job"] == "cost" {
            assert!(
                report["total_usd"].as_f64().unwrap_or(0.0) > 0.0,
                "{name}: {report}"
            );
            ran += 1;
            continue;
        }
        if report["job"] == "dynamodb-scaling" {
            assert!(
                !report["resources"]
                    .as_array()
                    .expect("resources")
                    .is_empty(),
                "{name}"
            );
            ran += 1;
            continue;
        }
        if report["action"] == "rollback" {
            assert_eq!(report["record"]["state"], "verified", "{name}: {report}");
            ran += 1;
            continue;
        }
        let functions = report["functions"].as_array().expect("functions list");
        assert!(!functions.is_empty(), "{name}: empty report");
        for f in functions {
            for key in [
                "function_name",
                "architecture",
                "current_memory_mb",
                "recommended_memory_mb",
                "current_timeout_s",
                "recommended_timeout_s",
                "predicted_duration_ms",
                "current_monthly_cost_usd",
                "projected_monthly_cost_usd",
                "monthly_savings_usd",
                "confidence",
                "reasons",
                "status",
            ] {
                assert!(f.get(key).is_some(), "{name}: {key} missing in {f}");
            }
        }
        ran += 1;
    }
    assert!(
        ran >= 2,
        "events/ should hold a scheduled and a direct sample"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_event_prints_the_lambda_error_shape_and_exits_1() {
    let moto = Moto::start().expect("moto");
    let dir = std::env::temp_dir().join(format!("trimtab-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (body, field) in [
        (r#"{"strategy": "cheapest"}"#, "strategy"),
        (r#"{"lookback_days": -1}"#, "lookback_days"),
        (r#"{"lookback_days": "two weeks"}"#, "lookback_days"),
    ] {
        let path = dir.join("bad.json");
        std::fs::write(&path, body).expect("write");
        let out = invoke(&moto, "RightSizingFunction", &path);
        assert_eq!(out.status.code(), Some(1), "{body}");
        assert!(out.stdout.is_empty(), "{body}: nothing on stdout");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        let err: serde_json::Value = serde_json::from_str(last).expect("error JSON on stderr");
        assert_eq!(err["errorType"], "InvalidEvent");
        assert!(
            err["errorMessage"]
                .as_str()
                .unwrap_or_default()
                .contains(field),
            "{body}: {err}"
        );
    }
    let event = workspace_root().join("events/rightsizing-direct.json");
    let out = invoke(&moto, "NoSuchFunction", &event);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("UnknownFunction"));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_rollback_commands_use_the_decision_table() {
    let moto = demo_account().await;
    let apply = workspace_root().join("events/rightsizing-apply-shop.json");
    let out = invoke(&moto, "RightSizingFunction", &apply);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    let applied = report["functions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["status"] == "applied")
        .unwrap_or_else(|| panic!("the demo applies at least one change: {report:#}"));
    let name = applied["function_name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_trimtab"))
            .args(args)
            .envs(moto.env())
            .env("TRIMTAB_TABLE", TABLE)
            .env("RUST_LOG", "warn")
            .output()
            .expect("trimtab")
    };
    let out = cli(&["history", &name]);
    assert!(out.status.success());
    let h: serde_json::Value = serde_json::from_slice(&out.stdout).expect("history");
    assert_eq!(h["records"][0]["state"], "applied");
    let id = h["records"][0]["record_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let out = cli(&["rollback", &name, "--to", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("rollback");
    assert_eq!(r["record"]["rollback_of"], id.as_str());
    let out = cli(&["rollback", &name, "--to", "no-such-record"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
}
