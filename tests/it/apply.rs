//! Apply mode through the AWS fidelity layer (moto answering as AWS documents): changes made
//! although `ListFunctions` carries no `LastUpdateStatus`, conditional on the fresh `RevisionId`,
//! marked applied only once Lambda reports the update `Successful`; lost answers, conflicts,
//! denied rollbacks, deleted functions and out-of-band changes each settled honestly; the lease.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use serde_json::{Value, json};
use trimtab_aws::Clients;
use trimtab_aws::decisions::DecisionTable;
use trimtab_core::records::{DecisionRecord, FunctionSettings, Health, RecordState};
use trimtab_core::scaling_plan::ScheduledAction;
use trimtab_lambda::{Invocation, Mode};
use trimtab_tests::fidelity::{Fault, FaultKind};
use trimtab_tests::fleet;
use trimtab_tests::moto::Moto;
use trimtab_tests::seed::{Layout, Seeder, Workload, create_decision_table, put_traffic};

const TABLE: &str = "trimtab-decisions-test";

struct Account {
    moto: Moto,
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
    // What the runs call from here on is held against the role (tests check it).
    moto.fidelity.clear_seen();
    Account {
        moto,
        sdk,
        seeder,
        now,
    }
}

fn config() -> rightsizing::JobConfig {
    rightsizing::JobConfig::with_table(Some(TABLE.into()))
}

fn plan(request: rightsizing::Request) -> rightsizing::Plan {
    rightsizing::Request {
        mode: Some(Mode::Apply),
        ..request
    }
    .plan(Mode::Apply)
    .expect("plan")
}

async fn run_plan(
    a: &Account,
    plan: &rightsizing::Plan,
    at: SystemTime,
) -> Result<Value, rightsizing::JobError> {
    let clients = Clients::new(&a.sdk);
    let invocation = Invocation {
        requested_by: Some("arn:aws:iam::123456789012:role/platform-operator".into()),
        ..Invocation::default()
    };
    let report =
        crate::invoke(rightsizing::run(&clients, &config(), &invocation, plan, at)).await?;
    Ok(serde_json::to_value(report).expect("json"))
}

async fn run_at(a: &Account, at: SystemTime) -> Value {
    run_plan(a, &plan(rightsizing::Request::default()), at)
        .await
        .expect("apply run")
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

async fn history(a: &Account, function: &str) -> Vec<DecisionRecord> {
    DecisionTable::new(TABLE)
        .history(&Clients::new(&a.sdk), function)
        .await
        .expect("history")
}

fn row<'a>(report: &'a Value, function: &str) -> &'a Value {
    crate::row(report, function)
}

fn epoch_s(t: SystemTime) -> i64 {
    trimtab_act::epoch_s(t)
}

/// Traffic after a change, as the function at `memory_mb` would record it.
async fn traffic_after(a: &Account, w: &Workload, memory_mb: u32, r: &DecisionRecord, errors: f64) {
    let at = r.applied_at_epoch_s.unwrap_or(r.created_at_epoch_s) + 1800;
    put_traffic(&a.seeder.cloudwatch, w, memory_mb, at, 20_000.0, errors)
        .await
        .expect("traffic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_changes_functions_although_list_functions_has_no_last_update_status() {
    let io = fleet::io_bound_over_provisioned("orders-api");
    let a = account(std::slice::from_ref(&io)).await;
    let fidelity = &a.moto.fidelity;
    fidelity.set_update_duration(Duration::from_secs(2));

    let started = Instant::now();
    let report = run_at(&a, a.now).await;
    crate::assert_role_allows(&a.moto, "RightSizingFunction");
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
    assert_eq!(rec.after.memory_mb, 768);
    assert!(rec.evidence.invocations > 1_000_000.0, "{:?}", rec.evidence);
    assert!(rec.reason.contains("step bounded"), "{}", rec.reason);
    assert_eq!(rec.run_id, report["run_id"].as_str().unwrap_or_default());
    assert_eq!(
        rec.requested_by.as_deref(),
        Some("arn:aws:iam::123456789012:role/platform-operator")
    );
    // The update carried the RevisionId read just before it; the record keeps the one read
    // once Lambda had finished (it changes again on completion).
    let updates = fidelity.seen("lambda:UpdateFunctionConfiguration");
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].revision_id, rec.revision_before);
    assert!(rec.revision_before.is_some());
    assert_eq!(
        rec.revision_after.as_deref(),
        Some(fidelity.revision_id(&io.name).as_str())
    );
    // Applied only after Lambda said Successful: the run read the function before the change,
    // polled it while the update was in progress, and read it once more after.
    assert!(fidelity.seen("lambda:GetFunctionConfiguration").len() >= 3);
    assert!(started.elapsed() >= Duration::from_secs(2));

    // After the change the function starts failing: the next run rolls it back, conditional
    // on the revision it reads then.
    traffic_after(&a, &io, 768, rec, 900.0).await;
    fidelity.clear_seen();
    let report = run_at(&a, a.now + Duration::from_secs(2 * 3600)).await;
    crate::assert_role_allows(&a.moto, "RightSizingFunction");
    let v = &report["verifications"][0];
    assert_eq!(v["verification"]["outcome"], "regressed", "{v:#}");
    assert_eq!(memory_and_timeout(&a, &io.name).await, (1536, 30));
    let records = history(&a, &io.name).await;
    assert_eq!(records.len(), 2);
    let undo = &records[0];
    assert_eq!(undo.rollback_of.as_deref(), Some(rec.record_id.as_str()));
    assert_eq!(undo.state, RecordState::Verified);
    assert_eq!(records[1].state, RecordState::RolledBack);
    let updates = fidelity.seen("lambda:UpdateFunctionConfiguration");
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].revision_id, rec.revision_after);
    // Not retried in the same run, and the row says why.
    // Judged on the metrics since the rollback: too few yet, and held either way.
    assert_ne!(row(&report, &io.name)["status"], "applied");
    assert!(
        row(&report, &io.name)["reasons"]
            .to_string()
            .contains("rolled back by this run")
    );

    // Nor by the next run, within the lookback window.
    fidelity.clear_seen();
    let report = run_at(&a, a.now + Duration::from_secs(26 * 3600)).await;
    assert!(
        fidelity
            .seen("lambda:UpdateFunctionConfiguration")
            .is_empty()
    );
    assert!(
        row(&report, &io.name)["reasons"]
            .to_string()
            .contains("rolled back recently"),
        "{:#}",
        row(&report, &io.name)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_response_then_409_on_the_retry_ends_applied_and_the_next_run_leaves_it() {
    let io = fleet::io_bound_over_provisioned("basket-api");
    let a = account(std::slice::from_ref(&io)).await;
    let fidelity = &a.moto.fidelity;
    // The update lands, its answer never arrives; the SDK retries into the update in progress.
    fidelity.inject(
        Fault::new(
            "lambda:UpdateFunctionConfiguration",
            FaultKind::LoseResponse,
        )
        .on(&io.name),
    );
    let one_step = plan(rightsizing::Request {
        max_step_factor: Some(10.0),
        ..Default::default()
    });
    let report = run_plan(&a, &one_step, a.now).await.expect("run");
    let updates = fidelity.seen("lambda:UpdateFunctionConfiguration");
    let statuses: Vec<u16> = updates.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [0, 409], "{updates:?}");
    assert_eq!(row(&report, &io.name)["status"], "applied", "{report:#}");
    let records = history(&a, &io.name).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].state, RecordState::Applied, "{:?}", records[0]);
    let memory = memory_and_timeout(&a, &io.name).await.0;
    assert_eq!(memory as u32, records[0].after.memory_mb);

    // The next run verifies the change (traffic as healthy as before it).
    traffic_after(&a, &io, 1536, &records[0], 2.0).await;
    fidelity.clear_seen();
    let report = run_plan(&a, &one_step, a.now + Duration::from_secs(2 * 3600))
        .await
        .expect("next run");
    assert_eq!(
        report["verifications"][0]["verification"]["outcome"], "healthy",
        "{report:#}"
    );
    // The change is not made again: its record is verified, and no other record repeats it.
    let first = records[0].clone();
    let records = history(&a, &io.name).await;
    let same: Vec<&DecisionRecord> = records
        .iter()
        .filter(|r| r.record_id == first.record_id || r.after == first.after)
        .collect();
    assert_eq!(same.len(), 1, "{records:#?}");
    assert_eq!(same[0].state, RecordState::Verified);
}

/// A function whose cold starts break its latency objective, with the alias provisioned
/// concurrency goes on.
async fn cold_start_account(name: &str) -> (Account, Workload) {
    let w = fleet::cold_starts_past_objective(name);
    let a = account(std::slice::from_ref(&w)).await;
    trimtab_tests::seed::publish_alias(&a.sdk, name, "live")
        .await
        .expect("alias");
    (a, w)
}

async fn provisioned(a: &Account, function: &str) -> Option<i32> {
    aws_sdk_lambda::Client::new(&a.sdk)
        .get_provisioned_concurrency_config()
        .function_name(function)
        .qualifier("live")
        .send()
        .await
        .ok()
        .and_then(|o| o.requested_provisioned_concurrent_executions())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioned_concurrency_is_applied_whole_once_allocated() {
    let (a, w) = cold_start_account("checkout-api").await;
    a.moto.fidelity.clear_seen();
    let report = run_at(&a, a.now).await;
    crate::assert_role_allows(&a.moto, "RightSizingFunction");
    let r = row(&report, &w.name);
    let pc = &r["concurrency"]["provisioned"];
    assert!(
        pc["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("cold starts"),
        "{r:#}"
    );
    let records = history(&a, &w.name).await;
    let rec = records
        .iter()
        .find(|r| r.provisioned.is_some())
        .expect("recorded first");
    assert_eq!(rec.state, RecordState::Applied, "{rec:?}");
    let min = pc["min_capacity"].as_i64().unwrap_or_default();
    assert_eq!(provisioned(&a, &w.name).await, i32::try_from(min).ok());
    // A second run leaves it as it is.
    a.moto.fidelity.clear_seen();
    run_at(&a, a.now + Duration::from_secs(3600)).await;
    assert!(
        a.moto
            .fidelity
            .seen("lambda:PutProvisionedConcurrencyConfig")
            .is_empty()
    );
}

/// Three weeks of hourly peak concurrency ending at `now`: 4 at night and at weekends, 40 from
/// 09:00 to 17:00 UTC on weekdays.
async fn put_office_concurrency(a: &Account, function: &str) {
    let end = a.now.duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64;
    trimtab_tests::seed::put_series(
        &a.seeder.cloudwatch,
        "AWS/Lambda",
        "ConcurrentExecutions",
        &[("FunctionName", function)],
        &trimtab_tests::seed::office_hourly(end, 21, (4.0, 40.0, 0.0)),
    )
    .await
    .expect("hourly peaks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioned_concurrency_follows_the_forecast_with_its_scheduled_actions() {
    let (a, w) = cold_start_account("office-checkout").await;
    put_office_concurrency(&a, &w.name).await;
    a.moto.fidelity.clear_seen();
    let report = run_at(&a, a.now).await;
    crate::assert_role_allows(&a.moto, "RightSizingFunction");
    let c = &row(&report, &w.name)["concurrency"];
    assert_ne!(c["forecast"]["method"], "none", "{c:#}");
    assert_eq!(c["predictive"]["chosen"], "predictive", "{c:#}");
    assert!(
        c["predictive"]["predictive_cold_starts"].as_f64()
            < c["predictive"]["reactive_cold_starts"].as_f64(),
        "{c:#}"
    );
    let wanted = c["recommended_scheduled_actions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        wanted.first().is_some_and(|x| x["name"]
            .as_str()
            .unwrap_or_default()
            .starts_with("trimtab-weekdays-08")),
        "{c:#}"
    );
    assert_eq!(
        c["provisioned"]["schedule"],
        c["recommended_scheduled_actions"]
    );
    // Application Auto Scaling holds exactly the row's actions on the alias, with their time zone.
    let described = aws_sdk_applicationautoscaling::Client::new(&a.sdk)
        .describe_scheduled_actions()
        .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Lambda)
        .resource_id(format!("function:{}:live", w.name))
        .send()
        .await
        .expect("described");
    let mut held: Vec<Value> = described
        .scheduled_actions()
        .iter()
        .map(|x| {
            let r = x.scalable_target_action();
            json!({
                "name": x.scheduled_action_name(),
                "schedule": x.schedule(),
                "timezone": x.timezone(),
                "min_capacity": r.and_then(|r| r.min_capacity()).map(f64::from),
                "max_capacity": r.and_then(|r| r.max_capacity()).map(f64::from),
            })
        })
        .collect();
    held.sort_by_key(|x| x["name"].to_string());
    let mut wanted = wanted;
    wanted.sort_by_key(|x| x["name"].to_string());
    assert_eq!(held, wanted);
    let rec = history(&a, &w.name)
        .await
        .into_iter()
        .find(|r| r.provisioned.is_some())
        .expect("recorded first");
    assert_eq!(rec.state, RecordState::Applied, "{rec:?}");
    assert_eq!(
        rec.provisioned.map(|p| p.scheduled_actions),
        Some(wanted.len())
    );
    // A second run writes nothing.
    a.moto.fidelity.clear_seen();
    run_at(&a, a.now + Duration::from_secs(3600)).await;
    for op in [
        "lambda:PutProvisionedConcurrencyConfig",
        "application-autoscaling:PutScheduledAction",
        "application-autoscaling:DeleteScheduledAction",
    ] {
        assert!(a.moto.fidelity.seen(op).is_empty(), "{op}");
    }

    // The schedule drifts from the forecast (a Trimtab action no longer wanted, the raise's
    // minimum moved): the next run brings Trimtab's own actions back, one record each.
    let clients = Clients::new(&a.sdk);
    let resource = format!("function:{}:live", w.name);
    let dim = "lambda:function:ProvisionedConcurrency";
    let stale = ScheduledAction {
        name: "trimtab-daily-0300".into(),
        schedule: "cron(0 3 * * ? *)".into(),
        timezone: "UTC".into(),
        min_capacity: 1.0,
        max_capacity: 10.0,
    };
    let mut moved: ScheduledAction = serde_json::from_value(wanted[0].clone()).expect("action");
    moved.min_capacity += 3.0;
    for action in [&stale, &moved] {
        trimtab_aws::dynamodb::put_scheduled_action(&clients, &resource, dim, action)
            .await
            .expect("drift");
    }
    a.moto.fidelity.clear_seen();
    let report = run_at(&a, a.now + Duration::from_secs(7200)).await;
    crate::assert_role_allows(&a.moto, "RightSizingFunction");
    let fidelity = &a.moto.fidelity;
    assert_eq!(
        fidelity
            .seen("application-autoscaling:PutScheduledAction")
            .len(),
        1
    );
    assert_eq!(
        fidelity
            .seen("application-autoscaling:DeleteScheduledAction")
            .len(),
        1
    );
    let reasons = row(&report, &w.name)["reasons"].to_string();
    assert_eq!(
        reasons.matches("brought to the forecast").count(),
        2,
        "{reasons}"
    );
    let changes = DecisionTable::new(TABLE)
        .changes(&clients, &format!("{resource} {dim}"))
        .await
        .expect("records");
    assert!(
        changes.len() >= 2 && changes.iter().all(|r| r.state == RecordState::Applied),
        "{changes:#?}"
    );
    // Someone else schedules the alias too: Trimtab's schedule is then left as it is.
    let theirs = ScheduledAction {
        name: "black-friday".into(),
        ..stale
    };
    trimtab_aws::dynamodb::put_scheduled_action(&clients, &resource, dim, &theirs)
        .await
        .expect("theirs");
    a.moto.fidelity.clear_seen();
    let report = run_at(&a, a.now + Duration::from_secs(10_800)).await;
    assert!(
        a.moto
            .fidelity
            .seen("application-autoscaling:PutScheduledAction")
            .is_empty()
    );
    let reasons = row(&report, &w.name)["reasons"].to_string();
    assert!(reasons.contains("someone else's"), "{reasons}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_with_someone_elses_autoscaling_is_left_alone() {
    let (a, w) = cold_start_account("team-scaled-api").await;
    // The team scales the alias themselves.
    let clients = Clients::new(&a.sdk);
    let advice = trimtab_core::concurrency::ProvisionedAdvice {
        min_capacity: 1,
        max_capacity: 4,
        target_utilization_fraction: 0.5,
        on_demand_monthly_usd: 0.0,
        provisioned_monthly_usd: 0.0,
        schedule: vec![],
        reason: String::new(),
    };
    trimtab_aws::changes::provision_step(
        &clients,
        &w.name,
        "live",
        &advice,
        trimtab_aws::changes::ProvisionStep::Target,
    )
    .await
    .expect("team's target");
    a.moto.fidelity.clear_seen();
    let report = run_at(&a, a.now).await;
    for op in [
        "lambda:PutProvisionedConcurrencyConfig",
        "application-autoscaling:RegisterScalableTarget",
        "application-autoscaling:DeregisterScalableTarget",
    ] {
        assert!(a.moto.fidelity.seen(op).is_empty(), "{op}");
    }
    assert!(
        row(&report, &w.name)["reasons"]
            .to_string()
            .contains("already has provisioned concurrency or autoscaling"),
        "{:#}",
        row(&report, &w.name)
    );
    assert!(
        history(&a, &w.name)
            .await
            .iter()
            .all(|r| r.provisioned.is_none())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_scalable_target_failing_after_put_provisioned_concurrency_leaves_nothing_billing()
{
    let (a, w) = cold_start_account("payment-api").await;
    a.moto.fidelity.inject(Fault::new(
        "application-autoscaling:RegisterScalableTarget",
        FaultKind::Fail {
            status: 400,
            code: "ValidationException".into(),
            message: "Unable to register the scalable target".into(),
        },
    ));
    a.moto.fidelity.clear_seen();
    let report = run_at(&a, a.now).await;
    crate::assert_role_allows(&a.moto, "RightSizingFunction");
    assert_eq!(
        a.moto
            .fidelity
            .seen("lambda:PutProvisionedConcurrencyConfig")
            .len(),
        1
    );
    // Nothing provisioned is left, and the record says what happened.
    assert_eq!(provisioned(&a, &w.name).await, None);
    let records = history(&a, &w.name).await;
    let rec = records
        .iter()
        .find(|r| r.provisioned.is_some())
        .expect("recorded first");
    assert_eq!(rec.state, RecordState::NotApplied, "{rec:?}");
    let why = rec.state_reason.as_deref().unwrap_or_default();
    assert!(
        why.contains("RegisterScalableTarget") && why.contains("removed"),
        "{why}"
    );
    assert!(
        row(&report, &w.name)["reasons"]
            .to_string()
            .contains("provisioned concurrency not applied")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_band_timeout_change_then_a_regression_supersedes_the_record_without_a_write() {
    let io = fleet::io_bound_over_provisioned("profile-api");
    let a = account(std::slice::from_ref(&io)).await;
    run_at(&a, a.now).await;
    let rec = history(&a, &io.name).await.remove(0);
    assert_eq!(rec.state, RecordState::Applied);
    // A team's deploy moves the timeout.
    let lambda = aws_sdk_lambda::Client::new(&a.sdk);
    lambda
        .update_function_configuration()
        .function_name(&io.name)
        .timeout(45)
        .send()
        .await
        .expect("team's change");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    traffic_after(&a, &io, 768, &rec, 900.0).await;
    a.moto.fidelity.clear_seen();
    let report = run_at(&a, a.now + Duration::from_secs(2 * 3600)).await;
    assert!(
        a.moto
            .fidelity
            .seen("lambda:UpdateFunctionConfiguration")
            .is_empty(),
        "wrote to a function someone else changed"
    );
    assert_eq!(memory_and_timeout(&a, &io.name).await, (768, 45));
    let v = &report["verifications"][0];
    assert_eq!(v["verification"]["outcome"], "superseded", "{v:#}");
    let records = history(&a, &io.name).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].state, RecordState::Superseded);
    assert!(
        records[0]
            .state_reason
            .as_deref()
            .unwrap_or_default()
            .contains("768 MB / 45 s")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_rollback_and_a_pending_record_of_a_deleted_function_do_not_stop_the_run() {
    let locked_later = fleet::io_bound_over_provisioned("search-api");
    let fresh = fleet::io_bound_over_provisioned("catalog-api");
    let a = account(std::slice::from_ref(&locked_later)).await;
    run_at(&a, a.now).await;
    let rec = history(&a, &locked_later.name).await.remove(0);
    assert_eq!(rec.state, RecordState::Applied);

    // Since then: the function was locked (the template's deny now refuses Trimtab's writes),
    // it regressed, a new function arrived, and a pending record names a function since deleted.
    let lambda = aws_sdk_lambda::Client::new(&a.sdk);
    let arn = format!(
        "arn:aws:lambda:us-east-1:123456789012:function:{}",
        locked_later.name
    );
    lambda
        .tag_resource()
        .resource(&arn)
        .tags("trimtab:lock", "true")
        .send()
        .await
        .expect("tag");
    traffic_after(&a, &locked_later, 768, &rec, 900.0).await;
    a.seeder
        .seed(&fresh, Layout::fourteen_days(a.now))
        .await
        .expect("seed");
    let settings = FunctionSettings {
        memory_mb: 1024,
        timeout_s: 30,
    };
    let orphan = DecisionRecord {
        record_id: DecisionRecord::id(epoch_s(a.now), "crashed-run"),
        function_name: "deleted-fn".into(),
        run_id: "crashed-run".into(),
        created_at_epoch_s: epoch_s(a.now),
        before: settings,
        after: FunctionSettings {
            memory_mb: 512,
            ..settings
        },
        evidence: Health::default(),
        predicted_duration_ms: None,
        monthly_savings_usd: 3.0,
        confidence: 0.9,
        reason: "saves".into(),
        state: RecordState::Pending,
        state_reason: None,
        applied_at_epoch_s: None,
        updated_at_epoch_s: epoch_s(a.now),
        rollback_of: None,
        provisioned: None,
        revision_before: None,
        revision_after: None,
        requested_by: None,
        archived: false,
        walk_start: None,
        prediction_error_pct: None,
        canary: None,
    };
    DecisionTable::new(TABLE)
        .create(&Clients::new(&a.sdk), &orphan)
        .await
        .expect("orphan");

    let report = run_at(&a, a.now + Duration::from_secs(2 * 3600)).await;
    // The rollback was refused: reported on its row, the change still in force.
    let v = &report["verifications"][0];
    assert_eq!(v["verification"]["outcome"], "regressed", "{v:#}");
    assert!(
        v["rollback_not_made"]
            .as_str()
            .unwrap_or_default()
            .contains("AccessDenied"),
        "{v:#}"
    );
    assert_eq!(memory_and_timeout(&a, &locked_later.name).await.0, 768);
    let records = history(&a, &locked_later.name).await;
    assert_eq!(records[0].state, RecordState::NotApplied);
    assert_eq!(records[1].state, RecordState::Applied);
    // The deleted function's record is settled, not left pending.
    let orphan = history(&a, "deleted-fn").await.remove(0);
    assert_eq!(orphan.state, RecordState::Superseded, "{orphan:?}");
    // And everything else went ahead.
    assert_eq!(row(&report, &fresh.name)["status"], "applied", "{report:#}");
    assert_eq!(memory_and_timeout(&a, &fresh.name).await.0, 768);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_function_is_never_touched_and_an_operator_can_roll_back() {
    let locked = Workload {
        tags: vec![("trimtab:lock".into(), "true".into())],
        ..fleet::io_bound_over_provisioned("payments-locked")
    };
    let free = fleet::io_bound_over_provisioned("catalog-api");
    let a = account(&[locked.clone(), free.clone()]).await;
    let report = run_at(&a, a.now).await;
    assert_eq!(memory_and_timeout(&a, &locked.name).await, (1536, 30));
    assert!(history(&a, &locked.name).await.is_empty());
    // The advice stands; a guard held it back.
    assert_eq!(row(&report, &locked.name)["status"], "skipped");
    assert!(
        row(&report, &locked.name)["reasons"]
            .to_string()
            .contains("trimtab:lock")
    );
    assert_eq!(row(&report, &free.name)["status"], "applied");

    // The operator's rollback, through the handler's direct-invoke event.
    let clients = Clients::new(&a.sdk);
    let handle = |event: Value| {
        let (clients, config) = (clients.clone(), config());
        async move { rightsizing::handle(&clients, &config, &Invocation::default(), event).await }
    };
    let out = handle(json!({"action": "rollback", "function_name": free.name}))
        .await
        .expect("rollback");
    assert_eq!(out["record"]["state"], "verified");
    assert_eq!(memory_and_timeout(&a, &free.name).await, (1536, 30));
    let listed = handle(json!({"action": "history", "function_name": free.name}))
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
    let err = handle(json!({"action": "rollback", "function_name": free.name}))
        .await
        .expect_err("nothing in force");
    assert_eq!(err.error_type(), "NotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_rollback_refuses_a_function_changed_since_unless_forced_and_takes_the_lease() {
    let io = fleet::io_bound_over_provisioned("ledger-api");
    let a = account(std::slice::from_ref(&io)).await;
    run_at(&a, a.now).await;
    let rec = history(&a, &io.name).await.remove(0);
    let lambda = aws_sdk_lambda::Client::new(&a.sdk);
    lambda
        .update_function_configuration()
        .function_name(&io.name)
        .memory_size(900)
        .send()
        .await
        .expect("team's change");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let clients = Clients::new(&a.sdk);
    let rollback = |force: bool| {
        let (clients, config, name) = (clients.clone(), config(), io.name.clone());
        async move {
            rightsizing::handle(
                &clients,
                &config,
                &Invocation::default(),
                json!({"action": "rollback", "function_name": name, "force": force}),
            )
            .await
        }
    };
    let err = rollback(false).await.expect_err("refused");
    assert_eq!(err.error_type(), "Refused");
    assert!(err.to_string().contains("force"), "{err}");
    assert_eq!(memory_and_timeout(&a, &io.name).await.0, 900);
    assert_eq!(
        history(&a, &io.name).await[0].state,
        RecordState::Superseded
    );

    // While another run holds the lease, even a forced rollback waits its turn.
    let table = DecisionTable::new(TABLE);
    let now_s = epoch_s(SystemTime::now());
    table
        .acquire_lease(&clients, "rightsizing", "other-run", now_s, now_s + 300)
        .await
        .expect("lease")
        .expect("free");
    let err = rollback(true).await.expect_err("lease held");
    assert!(err.to_string().contains("lease"), "{err}");
    table
        .release_lease(&clients, "rightsizing", "other-run")
        .await
        .expect("release");

    let out = rollback(true).await.expect("forced");
    assert_eq!(out["record"]["state"], "verified");
    assert_eq!(
        memory_and_timeout(&a, &io.name).await,
        (
            i32::try_from(rec.before.memory_mb).unwrap_or(0),
            i32::try_from(rec.before.timeout_s).unwrap_or(0)
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_skips_a_second_run_and_recognises_its_own_retried_acquire() {
    let io = fleet::io_bound_over_provisioned("search-api");
    let a = account(std::slice::from_ref(&io)).await;
    let clients = Clients::new(&a.sdk);
    let now_s = epoch_s(a.now);
    let table = DecisionTable::new(TABLE);
    table
        .acquire_lease(&clients, "rightsizing", "other-run", now_s, now_s + 300)
        .await
        .expect("lease")
        .expect("free");

    let report = run_at(&a, a.now + Duration::from_secs(60)).await;
    assert!(
        report["skipped"]
            .as_str()
            .unwrap_or_default()
            .contains("other-run"),
        "{report:#}"
    );
    assert_eq!(report["functions"].as_array().map(Vec::len), Some(0));
    assert_eq!(memory_and_timeout(&a, &io.name).await, (1536, 30));

    // Once the lease has expired a run goes ahead, although the answer to its own lease write
    // was lost and the SDK's retry found the lease taken (by itself).
    a.moto
        .fidelity
        .inject(Fault::new("dynamodb:PutItem", FaultKind::LoseResponse).on("lease#rightsizing"));
    let report = run_at(&a, a.now + Duration::from_secs(400)).await;
    assert!(report["skipped"].is_null(), "{report:#}");
    assert_eq!(row(&report, &io.name)["status"], "applied");
    let lease_writes: Vec<u16> = a
        .moto
        .fidelity
        .seen("dynamodb:PutItem")
        .iter()
        .map(|s| s.status)
        .collect();
    assert!(lease_writes.contains(&0), "{lease_writes:?}");
    // And it gave the lease back.
    assert_eq!(
        table.lease(&clients, "rightsizing").await.expect("read"),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_insights_a_measured_step_then_a_fit_on_both_sizes() {
    // No CPU time: the first run takes the step that is safe even if the run were all computing;
    // the next one has measured the function at two sizes and fits the model on them.
    let io = Workload {
        insights: false,
        ..fleet::io_bound_over_provisioned("quiet-api")
    };
    let a = account(std::slice::from_ref(&io)).await;
    let first = run_at(&a, a.now).await;
    let m1 = memory_and_timeout(&a, &io.name).await.0;
    let r1 = row(&first, &io.name);
    assert!(m1 < 1536, "{r1:#}");
    assert!(
        r1["reasons"].to_string().contains("a measured step"),
        "{r1:#}"
    );
    assert!(
        r1["best_case_monthly_savings_usd"]
            .as_f64()
            .is_some_and(|u| u >= 1.0)
    );
    let rec = history(&a, &io.name).await.remove(0);
    traffic_after(&a, &io, m1 as u32, &rec, 2.0).await;
    let second = run_at(&a, a.now + Duration::from_secs(2 * 3600)).await;
    let r = row(&second, &io.name);
    assert_eq!(r["cpu_evidence"], "fitted", "{r:#}");
    let sizes: Vec<u64> = r["operating_points"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["memory_mb"].as_u64())
        .collect();
    assert_eq!(sizes, [m1 as u64, 1536], "{r:#}");
    assert!(r["prediction_error_pct"].as_f64().is_some(), "{r:#}");
    assert!(memory_and_timeout(&a, &io.name).await.0 < m1, "{r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_change_is_verified_and_the_next_step_follows() {
    let io = fleet::io_bound_over_provisioned("profile-api");
    let a = account(std::slice::from_ref(&io)).await;
    run_at(&a, a.now).await;
    assert_eq!(memory_and_timeout(&a, &io.name).await.0, 768);
    let rec = history(&a, &io.name).await.remove(0);
    // Traffic as the model predicted: no more errors, ~4% slower.
    traffic_after(&a, &io, 768, &rec, 2.0).await;
    let report = run_at(&a, a.now + Duration::from_secs(2 * 3600)).await;
    assert_eq!(
        report["verifications"][0]["verification"]["outcome"], "healthy",
        "{report:#}"
    );
    // The next step, guarded against the function as it ran before the first one: 4% already
    // spent, so it goes only as far as the rest of the 10% allows (a halving would be 384 MB).
    let m2 = memory_and_timeout(&a, &io.name).await.0;
    assert!((385..768).contains(&m2), "{m2} MB");
    let states: Vec<RecordState> = history(&a, &io.name)
        .await
        .iter()
        .map(|r| r.state)
        .collect();
    assert_eq!(states, [RecordState::Applied, RecordState::Verified]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_size_changed_outside_trimtab_in_the_window_gives_a_two_point_fit() {
    // No Lambda Insights; someone halved its memory by hand a while ago. The run splits the
    // metrics at the change (LastModified) and learns the size before from the REPORT lines.
    let io = Workload {
        insights: false,
        ..fleet::io_bound_over_provisioned("legacy-api")
    };
    let a = account(std::slice::from_ref(&io)).await;
    let lambda = aws_sdk_lambda::Client::new(&a.sdk);
    let changed = lambda
        .update_function_configuration()
        .function_name(&io.name)
        .memory_size(768)
        .send()
        .await
        .expect("update");
    let at = changed
        .last_modified()
        .and_then(trimtab_core::calendar::parse_instant)
        .expect("LastModified");
    for hour in 0..4 {
        put_traffic(
            &a.seeder.cloudwatch,
            &io,
            768,
            at + 600 + hour * 3600,
            20_000.0,
            0.0,
        )
        .await
        .expect("traffic");
    }
    let recommend = rightsizing::Request {
        mode: Some(Mode::Recommend),
        ..rightsizing::Request::default()
    }
    .plan(Mode::Recommend)
    .expect("plan");
    let later = UNIX_EPOCH + Duration::from_secs((at + 5 * 3600) as u64);
    let report = run_plan(&a, &recommend, later).await.expect("run");
    let r = row(&report, &io.name);
    assert_eq!(r["cpu_evidence"], "fitted", "{r:#}");
    let points: Vec<(u64, String)> = r["operating_points"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["memory_mb"].as_u64().unwrap_or_default(),
                p["source"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        points,
        [
            (768, "current".to_owned()),
            (1536, "before_outside_change".to_owned())
        ],
        "{r:#}"
    );
    // Judged on the traffic since the change only.
    assert_eq!(r["invocations"].as_f64(), Some(80_000.0), "{r:#}");
    // Nothing was changed: a recommend run.
    assert_eq!(memory_and_timeout(&a, &io.name).await.0, 768);
}

/// Puts one instant of per-version traffic behind `function:alias`, as Lambda records alias
/// invocations (`FunctionName`, `Resource`, `ExecutedVersion`).
async fn put_version_traffic(
    a: &Account,
    function: &str,
    alias: &str,
    version: &str,
    at_epoch_s: i64,
    (invocations, errors, duration_ms): (f64, f64, f64),
) {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit, StatisticSet};
    let dims = [
        ("FunctionName", function.to_owned()),
        ("Resource", format!("{function}:{alias}")),
        ("ExecutedVersion", version.to_owned()),
    ];
    let datum = |name: &str, unit: StandardUnit, n: f64, sum: f64| {
        let mut d = MetricDatum::builder()
            .metric_name(name)
            .timestamp(DateTime::from_secs(at_epoch_s))
            .unit(unit)
            .statistic_values(
                StatisticSet::builder()
                    .sample_count(n)
                    .sum(sum)
                    .minimum(sum / n)
                    .maximum(sum / n)
                    .build(),
            );
        for (k, v) in &dims {
            d = d.dimensions(Dimension::builder().name(*k).value(v).build());
        }
        d.build()
    };
    a.seeder
        .cloudwatch
        .put_metric_data()
        .namespace("AWS/Lambda")
        .metric_data(datum("Invocations", StandardUnit::Count, 1.0, invocations))
        .metric_data(datum("Errors", StandardUnit::Count, 1.0, errors))
        .metric_data(datum(
            "Duration",
            StandardUnit::Milliseconds,
            invocations,
            invocations * duration_ms,
        ))
        .send()
        .await
        .expect("version traffic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_takes_live_traffic_then_is_promoted_and_a_quiet_run_writes_nothing() {
    let io = Workload {
        tags: vec![
            ("trimtab:canary".into(), "true".into()),
            ("trimtab:alias".into(), "live".into()),
        ],
        ..fleet::io_bound_over_provisioned("checkout-api")
    };
    let a = account(std::slice::from_ref(&io)).await;
    let lambda = aws_sdk_lambda::Client::new(&a.sdk);
    let primary = live_alias(&lambda, &io.name).await;
    a.moto.fidelity.clear_seen();

    // Run 1: the canary is made (a version at the candidate size, 5% of the alias's traffic);
    // $LATEST keeps its size, and the function itself is not stepped.
    let first = run_at(&a, a.now).await;
    crate::assert_role_allows(&a.moto, "RightSizingFunction");
    let c = &row(&first, &io.name)["canary"];
    assert_eq!(c["state"], "started", "{first:#}");
    let size = c["memory_mb"].as_u64().unwrap_or_default() as u32;
    assert!((768..1536).contains(&size), "{c:#}");
    let version = c["version"].as_str().unwrap_or_default().to_owned();
    let (at, weights) = live_routing(&lambda, &io.name).await;
    assert_eq!(at, primary);
    assert_eq!(weights.get(&version), Some(&0.05), "{weights:?}");
    let canary_cfg = lambda
        .get_function_configuration()
        .function_name(&io.name)
        .qualifier(&version)
        .send()
        .await
        .expect("version");
    assert_eq!(canary_cfg.memory_size(), Some(size as i32));
    assert_eq!(memory_and_timeout(&a, &io.name).await.0, 1536);

    // Live traffic through the alias: the canary's share runs about as fast. An hour in, too
    // few canary invocations to judge: the run writes nothing.
    let at = history(&a, &io.name).await[0]
        .applied_at_epoch_s
        .expect("applied");
    let (d_primary, d_canary) = (io.duration_ms(1536), io.duration_ms(size));
    let traffic = |version: String, at_s: i64, n: f64, d: f64| {
        let (a, name) = (&a, io.name.clone());
        async move { put_version_traffic(a, &name, "live", &version, at_s, (n, 0.0, d)).await }
    };
    traffic(primary.clone(), at + 300, 1_900.0, d_primary).await;
    traffic(version.clone(), at + 300, 100.0, d_canary).await;
    let started = history(&a, &io.name).await;
    a.moto.fidelity.clear_seen();
    let waiting = run_at(&a, a.now + Duration::from_secs(3600)).await;
    let c = &row(&waiting, &io.name)["canary"];
    assert_eq!(c["state"], "running", "{waiting:#}");
    assert_eq!(c["invocations"].as_f64(), Some(100.0), "{c:#}");
    assert_no_lambda_writes(&a);
    assert_eq!(history(&a, &io.name).await, started);
    traffic(primary.clone(), at + 600, 17_100.0, d_primary).await;
    traffic(version.clone(), at + 600, 900.0, d_canary).await;

    // Run 2: judged on the per-version metrics and promoted; the record says so.
    let second = run_at(&a, a.now + Duration::from_secs(2 * 3600)).await;
    let c = &row(&second, &io.name)["canary"];
    assert_eq!(c["state"], "promoted", "{second:#}");
    assert_eq!(c["invocations"].as_f64(), Some(1_000.0), "{c:#}");
    assert!(c["cost_usd"].as_f64().is_some_and(|u| u < 0.0), "{c:#}");
    let (at, weights) = live_routing(&lambda, &io.name).await;
    assert_eq!(at, version);
    assert!(weights.is_empty(), "{weights:?}");
    assert_eq!(memory_and_timeout(&a, &io.name).await.0, size as i32);
    let records = history(&a, &io.name).await;
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].state, RecordState::Verified);
    let kept = records[0]
        .canary
        .as_ref()
        .and_then(|c| c.canary)
        .expect("stats");
    assert_eq!(kept.invocations, 1_000.0);

    // Run 3, nothing new: no Lambda write, no record written.
    a.moto.fidelity.clear_seen();
    run_at(&a, a.now + Duration::from_secs(2 * 3600 + 120)).await;
    assert_no_lambda_writes(&a);
    assert_eq!(history(&a, &io.name).await, records);
}

/// Publishes version 1 of `function` and points the alias `live` at it; returns the version.
async fn live_alias(lambda: &aws_sdk_lambda::Client, function: &str) -> String {
    let v1 = lambda
        .publish_version()
        .function_name(function)
        .send()
        .await
        .expect("publish");
    let primary = v1.version().unwrap_or_default().to_owned();
    lambda
        .create_alias()
        .function_name(function)
        .name("live")
        .function_version(&primary)
        .send()
        .await
        .expect("alias");
    primary
}

/// The version the alias `live` points at, and the weights it routes to others.
async fn live_routing(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
) -> (String, std::collections::HashMap<String, f64>) {
    let alias = lambda
        .get_alias()
        .function_name(function)
        .name("live")
        .send()
        .await
        .expect("alias");
    let weights = alias
        .routing_config()
        .and_then(|r| r.additional_version_weights())
        .cloned()
        .unwrap_or_default();
    (
        alias.function_version().unwrap_or_default().to_owned(),
        weights,
    )
}

fn assert_no_lambda_writes(a: &Account) {
    let ops = a.moto.fidelity.operations();
    for write in [
        "lambda:PublishVersion",
        "lambda:UpdateAlias",
        "lambda:UpdateFunctionConfiguration",
    ] {
        assert!(!ops.iter().any(|o| o == write), "{write} in {ops:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_whose_function_no_longer_asks_is_dropped_and_leaves_the_alias_as_it_was() {
    let io = Workload {
        tags: vec![
            ("trimtab:canary".into(), "true".into()),
            ("trimtab:alias".into(), "live".into()),
        ],
        ..fleet::io_bound_over_provisioned("search-api")
    };
    let a = account(std::slice::from_ref(&io)).await;
    let lambda = aws_sdk_lambda::Client::new(&a.sdk);
    let primary = live_alias(&lambda, &io.name).await;
    let first = run_at(&a, a.now).await;
    assert_eq!(
        row(&first, &io.name)["canary"]["state"],
        "started",
        "{first:#}"
    );
    // The team takes the tag off: the next run drops the canary whatever it measured.
    let arn = lambda
        .get_function_configuration()
        .function_name(&io.name)
        .send()
        .await
        .expect("config")
        .function_arn()
        .unwrap_or_default()
        .to_owned();
    lambda
        .untag_resource()
        .resource(&arn)
        .tag_keys("trimtab:canary")
        .send()
        .await
        .expect("untag");
    let second = run_at(&a, a.now + Duration::from_secs(3600)).await;
    let c = &row(&second, &io.name)["canary"];
    assert_eq!(c["state"], "dropped", "{second:#}");
    let (at, weights) = live_routing(&lambda, &io.name).await;
    assert_eq!(at, primary);
    assert!(weights.is_empty(), "{weights:?}");
    assert_eq!(memory_and_timeout(&a, &io.name).await.0, 1536);
    let records = history(&a, &io.name).await;
    assert_eq!(records[0].state, RecordState::RolledBack, "{records:#?}");
    assert_eq!(
        records[0].canary.as_ref().and_then(|c| c.intent.as_deref()),
        Some("drop")
    );
}
