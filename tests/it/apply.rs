//! Apply mode against moto: guarded changes with decision records, verification and rollback,
//! the lock tag, the run lease, and a crash between record and change.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use serde_json::{Value, json};
use trimtab_aws::Clients;
use trimtab_aws::decisions::DecisionTable;
use trimtab_core::apply::RecordState;
use trimtab_lambda::Mode;
use trimtab_tests::fleet;
use trimtab_tests::moto::Moto;
use trimtab_tests::seed::{Layout, Seeder, Workload, create_decision_table, put_traffic};

const TABLE: &str = "trimtab-decisions-test";

struct Account {
    _moto: Moto,
    sdk: SdkConfig,
    seeder: Seeder,
    now: SystemTime,
}

async fn account(workloads: &[Workload]) -> Account {
    let moto = Moto::start().expect("moto");
    let sdk = moto.sdk_config().await;
    create_decision_table(&sdk, TABLE).await.expect("table");
    let seeder = Seeder::new(&sdk).await.expect("seeder");
    let now = SystemTime::now();
    for w in workloads {
        seeder
            .seed(w, Layout::fourteen_days(now))
            .await
            .expect("seed");
    }
    Account {
        _moto: moto,
        sdk,
        seeder,
        now,
    }
}

fn config() -> rightsizing::JobConfig {
    rightsizing::JobConfig::with_table(Some(TABLE.into()))
}

fn apply_plan() -> rightsizing::Plan {
    let request = rightsizing::Request {
        mode: Some(Mode::Apply),
        ..Default::default()
    };
    request.plan(Mode::Apply).expect("plan")
}

async fn run_at(
    a: &Account,
    config: &rightsizing::JobConfig,
    at: SystemTime,
) -> Result<Value, rightsizing::JobError> {
    let clients = Clients::new(&a.sdk);
    let report = rightsizing::run(&clients, config, &apply_plan(), at).await?;
    Ok(serde_json::to_value(report).expect("json"))
}

async fn memory_and_timeout(a: &Account, function: &str) -> (i32, i32) {
    let c = aws_sdk_lambda::Client::new(&a.sdk);
    let f = c
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
        .expect("config");
    (
        f.memory_size().unwrap_or_default(),
        f.timeout().unwrap_or_default(),
    )
}

async fn history(a: &Account, function: &str) -> Vec<trimtab_core::apply::DecisionRecord> {
    DecisionTable::new(TABLE)
        .history(&Clients::new(&a.sdk), function)
        .await
        .expect("history")
}

fn row<'a>(report: &'a Value, function: &str) -> &'a Value {
    crate::row(report, function)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_changes_memory_and_writes_a_complete_record_then_rolls_back_a_regression() {
    let io = fleet::io_bound_over_provisioned("orders-api");
    let a = account(std::slice::from_ref(&io)).await;

    let report = run_at(&a, &config(), a.now).await.expect("apply run");
    let r = row(&report, &io.name);
    assert_eq!(r["status"], "applied", "{r:#}");
    // Recommended ~220 MB; one run moves at most by half.
    let (memory, timeout) = memory_and_timeout(&a, &io.name).await;
    assert_eq!(memory, 768);
    assert!(timeout < 30, "timeout {timeout}");
    let records = history(&a, &io.name).await;
    assert_eq!(records.len(), 1);
    let rec = &records[0];
    assert_eq!(rec.state, RecordState::Applied);
    assert_eq!((rec.before.memory_mb, rec.before.timeout_s), (1536, 30));
    assert_eq!(
        (
            rec.after.memory_mb,
            i32::try_from(rec.after.timeout_s).unwrap_or(0)
        ),
        (768, timeout)
    );
    assert!(rec.evidence.invocations > 1_000_000.0, "{:?}", rec.evidence);
    assert!(rec.monthly_savings_usd > 1.0 && rec.confidence > 0.5);
    assert!(rec.reason.contains("step bounded"), "{}", rec.reason);
    assert_eq!(rec.run_id, report["run_id"].as_str().unwrap_or_default());
    assert!(rec.applied_at_epoch_s.is_some());

    // After the change the function starts failing: the next run rolls it back.
    let applied_at = rec.applied_at_epoch_s.unwrap_or_default();
    put_traffic(
        &a.seeder.cloudwatch,
        &io,
        768,
        applied_at + 1800,
        5000.0,
        900.0,
    )
    .await
    .expect("traffic");
    let later = a.now + Duration::from_secs(2 * 3600);
    let report = run_at(&a, &config(), later).await.expect("verify run");
    let v = &report["verifications"][0];
    assert_eq!(v["verification"]["outcome"], "regressed", "{v:#}");
    assert!(
        v["verification"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("error rate")
    );
    assert_eq!(memory_and_timeout(&a, &io.name).await, (1536, 30));
    let records = history(&a, &io.name).await;
    assert_eq!(records.len(), 2);
    let undo = &records[0];
    assert_eq!(undo.rollback_of.as_deref(), Some(rec.record_id.as_str()));
    assert_eq!(undo.state, RecordState::Verified);
    assert_eq!(records[1].state, RecordState::RolledBack);
    // Not retried in the same run, and the row says why.
    assert_ne!(row(&report, &io.name)["status"], "applied");
    assert!(
        row(&report, &io.name)["reasons"]
            .to_string()
            .contains("rolled back by this run")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_function_is_never_touched_and_an_operator_can_roll_back() {
    let locked = Workload {
        tags: vec![("trimtab:lock".into(), "true".into())],
        ..fleet::io_bound_over_provisioned("payments-locked")
    };
    let free = fleet::io_bound_over_provisioned("catalog-api");
    let a = account(&[locked.clone(), free.clone()]).await;
    let report = run_at(&a, &config(), a.now).await.expect("apply run");
    assert_eq!(memory_and_timeout(&a, &locked.name).await, (1536, 30));
    assert!(history(&a, &locked.name).await.is_empty());
    assert!(
        row(&report, &locked.name)["reasons"]
            .to_string()
            .contains("trimtab:lock")
    );
    assert_eq!(row(&report, &free.name)["status"], "applied");

    // The operator's rollback, through the handler's direct-invoke event.
    let clients = Clients::new(&a.sdk);
    let out = rightsizing::handle(
        &clients,
        &config(),
        json!({"action": "rollback", "function_name": free.name}),
    )
    .await
    .expect("rollback");
    assert_eq!(out["record"]["state"], "verified");
    assert_eq!(memory_and_timeout(&a, &free.name).await, (1536, 30));
    let listed = rightsizing::handle(
        &clients,
        &config(),
        json!({"action": "history", "function_name": free.name}),
    )
    .await
    .expect("history");
    let states: Vec<&str> = listed["records"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(states, ["verified", "rolled_back"]);
    // Nothing left in force to roll back.
    let err = rightsizing::handle(
        &clients,
        &config(),
        json!({"action": "rollback", "function_name": free.name}),
    )
    .await
    .expect_err("nothing in force");
    assert_eq!(err.error_type(), "NotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_while_one_holds_the_lease_skips() {
    let io = fleet::io_bound_over_provisioned("search-api");
    let a = account(std::slice::from_ref(&io)).await;
    let clients = Clients::new(&a.sdk);
    let now_s = a
        .now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let table = DecisionTable::new(TABLE);
    assert!(
        table
            .acquire_lease(&clients, "rightsizing", "other-run", now_s, now_s + 960)
            .await
            .expect("lease")
    );

    let report = run_at(&a, &config(), a.now + Duration::from_secs(60))
        .await
        .expect("run");
    assert!(
        report["skipped"]
            .as_str()
            .unwrap_or_default()
            .contains("lease"),
        "{report:#}"
    );
    assert_eq!(report["functions"].as_array().map(Vec::len), Some(0));
    assert_eq!(memory_and_timeout(&a, &io.name).await, (1536, 30));

    // Once the lease has expired, a run goes ahead.
    let report = run_at(&a, &config(), a.now + Duration::from_secs(1200))
        .await
        .expect("run");
    assert!(report["skipped"].is_null());
    assert_eq!(row(&report, &io.name)["status"], "applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_record_and_change_leaves_a_pending_record_the_next_run_settles() {
    let io = fleet::io_bound_over_provisioned("cart-api");
    let a = account(std::slice::from_ref(&io)).await;
    let mut crashing = config();
    crashing.faults.crash_after_record = true;
    let err = run_at(&a, &crashing, a.now).await.expect_err("crashed");
    assert_eq!(err.error_type(), "InjectedFault");
    assert_eq!(memory_and_timeout(&a, &io.name).await, (1536, 30));
    let records = history(&a, &io.name).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].state, RecordState::Pending);

    // The crashed run never released its lease; the next run comes after it expires.
    let report = run_at(&a, &config(), a.now + Duration::from_secs(3600))
        .await
        .expect("next run");
    assert_eq!(
        report["reconciled"][0]["state"], "not_applied",
        "{report:#}"
    );
    assert!(
        report["reconciled"][0]["state_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("before the change")
    );
    let records = history(&a, &io.name).await;
    assert_eq!(records[0].state, RecordState::NotApplied);
    assert_eq!(memory_and_timeout(&a, &io.name).await, (1536, 30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioned_concurrency_moto_lacks_is_reported_not_fatal() {
    let slow_start = Workload {
        tags: vec![
            ("trimtab:alias".into(), "live".into()),
            ("trimtab:latency-objective-ms".into(), "150".into()),
        ],
        memory_mb: 512,
        peak_memory_mb: 400.0,
        wait_ms: 100.0,
        cpu_ms: 10.0,
        ..Workload::new("checkout-api", 512)
    };
    let a = account(std::slice::from_ref(&slow_start)).await;
    let report = run_at(&a, &config(), a.now).await.expect("run");
    let r = row(&report, &slow_start.name);
    let pc = &r["concurrency"]["provisioned"];
    assert!(
        pc["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("cold starts"),
        "{r:#}"
    );
    let reasons = r["reasons"].to_string();
    assert!(
        reasons.contains(
            "provisioned concurrency not applied: lambda:PutProvisionedConcurrencyConfig failed"
        ),
        "{reasons}"
    );
    let records = history(&a, &slow_start.name).await;
    let pc_record = records
        .iter()
        .find(|r| r.provisioned.is_some())
        .expect("recorded first");
    assert_eq!(pc_record.state, RecordState::NotApplied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_change_is_verified_and_the_next_step_follows() {
    let io = fleet::io_bound_over_provisioned("profile-api");
    let a = account(std::slice::from_ref(&io)).await;
    run_at(&a, &config(), a.now).await.expect("first run");
    assert_eq!(memory_and_timeout(&a, &io.name).await.0, 768);
    let applied_at = history(&a, &io.name).await[0]
        .applied_at_epoch_s
        .unwrap_or_default();
    // Traffic as the model predicted: no more errors, ~4% slower.
    put_traffic(
        &a.seeder.cloudwatch,
        &io,
        768,
        applied_at + 1800,
        20_000.0,
        2.0,
    )
    .await
    .expect("traffic");
    let report = run_at(&a, &config(), a.now + Duration::from_secs(2 * 3600))
        .await
        .expect("second run");
    assert_eq!(
        report["verifications"][0]["verification"]["outcome"], "healthy",
        "{report:#}"
    );
    assert_eq!(memory_and_timeout(&a, &io.name).await.0, 384);
    let states: Vec<RecordState> = history(&a, &io.name)
        .await
        .iter()
        .map(|r| r.state)
        .collect();
    assert_eq!(states, [RecordState::Applied, RecordState::Verified]);
}
