//! DynamoDB scaling against moto: target tracking configured exactly where it belongs, a second
//! run that writes nothing, recommend mode that only prints the diff.

use std::collections::BTreeMap;

use aws_sdk_applicationautoscaling::types::ServiceNamespace;
use serde_json::{Value, json};
use trimtab_aws::Clients;
use trimtab_tests::moto::Moto;
use trimtab_tests::seed::create_table;

const DECISIONS: &str = "trimtab-decisions-ddb";

fn config(table: Option<&str>) -> dynamodb_scaling::JobConfig {
    dynamodb_scaling::JobConfig {
        configured_mode: trimtab_lambda::Mode::Recommend,
        prices: trimtab_core::capacity::CapacityPrices::us_east_1(),
        environment: trimtab_core::environment::Environment::Prod,
        table_name: table.map(Into::into),
    }
}

async fn run(moto: &Moto, event: Value) -> Value {
    let clients = Clients::new(&moto.sdk_config().await);
    crate::invoke(dynamodb_scaling::handle(
        &clients,
        &config(Some(DECISIONS)),
        &trimtab_lambda::Invocation::default(),
        event,
    ))
    .await
    .expect("report")
}

/// (resource id, dimension) -> (min, max, policy targets)
async fn scaling(moto: &Moto) -> BTreeMap<(String, String), (i32, i32, Vec<f64>)> {
    let aas = aws_sdk_applicationautoscaling::Client::new(&moto.sdk_config().await);
    let targets = aas
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Dynamodb)
        .send()
        .await
        .expect("targets");
    let policies = aas
        .describe_scaling_policies()
        .service_namespace(ServiceNamespace::Dynamodb)
        .send()
        .await
        .expect("policies");
    let mut out = BTreeMap::new();
    for t in targets.scalable_targets() {
        out.insert(
            (
                t.resource_id().to_owned(),
                t.scalable_dimension().as_str().to_owned(),
            ),
            (t.min_capacity(), t.max_capacity(), Vec::new()),
        );
    }
    for p in policies.scaling_policies() {
        let key = (
            p.resource_id().to_owned(),
            p.scalable_dimension().as_str().to_owned(),
        );
        if let (Some(e), Some(t)) = (
            out.get_mut(&key),
            p.target_tracking_scaling_policy_configuration(),
        ) {
            e.2.push(t.target_value());
        }
    }
    out
}

fn writes(report: &Value) -> u64 {
    [
        "application-autoscaling:RegisterScalableTarget",
        "application-autoscaling:PutScalingPolicy",
    ]
    .iter()
    .map(|op| report["api_calls"][op].as_u64().unwrap_or(0))
    .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configures_exactly_the_expected_targets_and_a_second_run_is_a_no_op() {
    let moto = Moto::start().expect("moto");
    let sdk = moto.sdk_config().await;
    create_table(
        &sdk,
        "orders",
        Some((10, 5)),
        &["by-customer"],
        &[("trimtab:target", "60")],
    )
    .await
    .expect("orders");
    create_table(
        &sdk,
        "sessions",
        Some((20, 20)),
        &[],
        &[("environment", "dev")],
    )
    .await
    .expect("sessions");
    create_table(&sdk, "audit", None, &[], &[])
        .await
        .expect("audit");
    trimtab_tests::seed::create_decision_table(&sdk, DECISIONS)
        .await
        .expect("decisions");
    create_table(
        &sdk,
        "ledger",
        Some((10, 10)),
        &[],
        &[("trimtab:lock", "true")],
    )
    .await
    .expect("ledger");
    // sessions already scales reads, by hand, at 50%: a policy Trimtab did not make.
    let clients = Clients::new(&sdk);
    trimtab_aws::dynamodb::register_target(
        &clients,
        "table/sessions",
        "dynamodb:table:ReadCapacityUnits",
        1.0,
        200.0,
    )
    .await
    .expect("register");
    trimtab_aws::dynamodb::put_policy(
        &clients,
        "table/sessions",
        "dynamodb:table:ReadCapacityUnits",
        trimtab_core::capacity::Dimension::Read,
        "legacy-read",
        50.0,
    )
    .await
    .expect("policy");

    // Recommend mode: the plan as a diff, nothing written; the hand-made policy is reported as
    // foreign and left out of the plan, the locked table too.
    let report = run(&moto, json!({"lookback_days": 1})).await;
    assert_eq!(writes(&report), 0);
    let plan: Vec<&str> = report["plan"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        plan.contains(
            &"+ table/orders dynamodb:table:ReadCapacityUnits: scalable target min 5, max 4000"
        ),
        "{plan:#?}"
    );
    assert!(
        !plan
            .iter()
            .any(|p| p.contains("table/sessions dynamodb:table:Read")),
        "{plan:#?}"
    );
    assert!(!plan.iter().any(|p| p.contains("ledger")), "{plan:#?}");
    assert_eq!(report["foreign"][0]["resource_id"], "table/sessions");
    assert_eq!(report["foreign"][0]["policies"], json!(["legacy-read"]));
    assert_eq!(report["locked"], json!(["ledger"]));
    assert_eq!(scaling(&moto).await.len(), 1);

    // Apply mode: exactly the expected targets and policies; the foreign one untouched.
    moto.fidelity.clear_seen();
    let report = run(&moto, json!({"lookback_days": 1, "mode": "apply"})).await;
    crate::assert_role_allows(&moto, "DynamoDBScalingFunction");
    assert_eq!(
        report["applied"].as_array().map(Vec::len),
        report["plan"].as_array().map(Vec::len)
    );
    let s = scaling(&moto).await;
    let key = |r: &str, d: &str| (r.to_owned(), format!("dynamodb:{d}CapacityUnits"));
    let mut expected = BTreeMap::from([
        (key("table/orders", "table:Read"), (5, 4000, vec![60.0])),
        (key("table/orders", "table:Write"), (5, 4000, vec![60.0])),
        (
            key("table/orders/index/by-customer", "index:Read"),
            (5, 4000, vec![60.0]),
        ),
        (
            key("table/orders/index/by-customer", "index:Write"),
            (5, 4000, vec![60.0]),
        ),
        (key("table/sessions", "table:Read"), (1, 200, vec![50.0])),
        (key("table/sessions", "table:Write"), (1, 200, vec![85.0])),
    ]);
    assert_eq!(s, expected);
    // The on-demand table has no targets; its rows say so.
    let audit: Vec<&Value> = report["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["table_name"] == "audit")
        .collect();
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0]["current_billing_mode"], "PAY_PER_REQUEST");
    assert!(audit[0]["configured"].is_null());

    // Each write was recorded first, with what it replaced.
    let table = trimtab_aws::decisions::DecisionTable::new(DECISIONS);
    let orders = table
        .changes(&clients, "table/orders dynamodb:table:ReadCapacityUnits")
        .await
        .expect("records");
    assert_eq!(orders.len(), 2);
    assert!(
        orders
            .iter()
            .all(|r| r.state == trimtab_core::records::RecordState::Applied)
    );

    // Second run, nothing changed: zero writes.
    let report = run(&moto, json!({"lookback_days": 1, "mode": "apply"})).await;
    assert_eq!(writes(&report), 0, "{:#}", report["plan"]);
    assert_eq!(report["plan"].as_array().map(Vec::len), Some(0));

    // Adopted, the hand-made policy is brought in step under its own name, recorded first.
    let report = run(
        &moto,
        json!({"lookback_days": 1, "mode": "apply", "adopt": true}),
    )
    .await;
    assert_eq!(writes(&report), 1, "{:#}", report["plan"]);
    expected.insert(key("table/sessions", "table:Read"), (1, 200, vec![85.0]));
    assert_eq!(scaling(&moto).await, expected);
    let drift = table
        .changes(&clients, "table/sessions dynamodb:table:ReadCapacityUnits")
        .await
        .expect("records");
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].state, trimtab_core::records::RecordState::Applied);
    assert_eq!(
        drift[0].before,
        json!({"policy_name": "legacy-read", "target_pct": 50.0})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_answer_was_lost_is_settled_applied_and_a_crashed_runs_records_reconciled() {
    let moto = Moto::start().expect("moto");
    let sdk = moto.sdk_config().await;
    create_table(&sdk, "orders", Some((10, 5)), &[], &[])
        .await
        .expect("orders");
    trimtab_tests::seed::create_decision_table(&sdk, DECISIONS)
        .await
        .expect("decisions");
    // The first policy write lands but its answer never arrives, and the retry is refused.
    moto.fidelity.inject(
        trimtab_tests::fidelity::Fault::new(
            "application-autoscaling:PutScalingPolicy",
            trimtab_tests::fidelity::FaultKind::LoseResponse,
        )
        .times(1),
    );
    moto.fidelity.inject(
        trimtab_tests::fidelity::Fault::new(
            "application-autoscaling:PutScalingPolicy",
            trimtab_tests::fidelity::FaultKind::Fail {
                status: 400,
                code: "ConcurrentUpdateException".into(),
                message: "pending update".into(),
            },
        )
        .times(1),
    );
    let report = run(&moto, json!({"lookback_days": 1, "mode": "apply"})).await;
    let clients = Clients::new(&sdk);
    let table = trimtab_aws::decisions::DecisionTable::new(DECISIONS);
    let records = table
        .changes(&clients, "table/orders dynamodb:table:ReadCapacityUnits")
        .await
        .expect("records");
    assert!(
        records
            .iter()
            .all(|r| r.state == trimtab_core::records::RecordState::Applied),
        "{records:#?}\n{report:#}"
    );

    // A crash after a write, before its record was marked: the next run settles it.
    let mut pending = records[0].clone();
    pending.record_id = "000000000001-crashed-0".into();
    pending.state = trimtab_core::records::RecordState::Pending;
    table.create(&clients, &pending).await.expect("pending");
    let report = run(&moto, json!({"lookback_days": 1, "mode": "apply"})).await;
    assert_eq!(report["reconciled"][0]["state"], "applied", "{report:#}");
    assert_eq!(writes(&report), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_and_bad_tags_are_named() {
    let moto = Moto::start().expect("moto");
    let clients = Clients::new(&moto.sdk_config().await);
    let config = config(None);
    for (event, field) in [
        (json!({"mode": "apply"}), "decision table"),
        (json!({"lookback_days": 0}), "lookback_days"),
        (json!({"throttle_budget_pct": 50}), "throttle_budget_pct"),
        (json!({"environment": "qa"}), "environment"),
        (json!({"table_prefix": "x"}), "table_prefix"),
    ] {
        let err = dynamodb_scaling::handle(
            &clients,
            &config,
            &trimtab_lambda::Invocation::default(),
            event.clone(),
        )
        .await
        .expect_err("refused");
        assert!(err.to_string().contains(field), "{event}: {err}");
    }
    create_table(
        &moto.sdk_config().await,
        "bad-tags",
        Some((5, 5)),
        &[],
        &[("trimtab:target", "95")],
    )
    .await
    .expect("table");
    let report = run(&moto, json!({"lookback_days": 1})).await;
    assert!(
        report["errors"][0]
            .as_str()
            .unwrap_or_default()
            .contains("trimtab:target=95"),
        "{report:#}"
    );
}

/// The scheduled actions of a target: name -> (schedule, timezone, min, max).
async fn scheduled(
    moto: &Moto,
    resource: &str,
    dimension: &str,
) -> BTreeMap<String, (String, String, i32, i32)> {
    let aas = aws_sdk_applicationautoscaling::Client::new(&moto.sdk_config().await);
    let out = aas
        .describe_scheduled_actions()
        .service_namespace(ServiceNamespace::Dynamodb)
        .resource_id(resource)
        .scalable_dimension(dimension.into())
        .send()
        .await
        .expect("scheduled actions");
    out.scheduled_actions()
        .iter()
        .map(|a| {
            let range = a.scalable_target_action();
            (
                a.scheduled_action_name().to_owned(),
                (
                    a.schedule().to_owned(),
                    a.timezone().unwrap_or_default().to_owned(),
                    range.and_then(|r| r.min_capacity()).unwrap_or(-1),
                    range.and_then(|r| r.max_capacity()).unwrap_or(-1),
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictive_scaling_registers_its_scheduled_actions_once_and_leaves_others_alone() {
    let moto = Moto::start().expect("moto");
    let sdk = moto.sdk_config().await;
    let clients = Clients::new(&sdk);
    // A fixed Wednesday evening, so the replayed days are always weekdays with their ramps.
    let end = trimtab_core::calendar::days_from_civil(2026, 11, 25) * 86_400 + 20 * 3600;
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(end as u64);
    // Its business keeps Berlin time (CET, UTC+1 in November): the ramp at 08:00 UTC is 09:00
    // there, and the schedule is written in that zone.
    let berlin = [("trimtab:timezone", "Europe/Berlin")];
    create_table(&sdk, "orders-api", Some((5, 100)), &[], &berlin)
        .await
        .expect("table");
    trimtab_tests::seed::create_decision_table(&sdk, DECISIONS)
        .await
        .expect("decisions");
    // Three weeks of office-hours writes, the last three days by the minute.
    let cw = aws_sdk_cloudwatch::Client::new(&sdk);
    trimtab_tests::seed::put_office_writes(&cw, "orders-api", end, (21, 4), (4.0, 300.0))
        .await
        .expect("writes");
    // Someone's own month-end scheduled action on the reads: never touched.
    let reads = "dynamodb:table:ReadCapacityUnits";
    trimtab_aws::dynamodb::register_target(&clients, "table/orders-api", reads, 1.0, 50.0)
        .await
        .expect("register");
    let theirs = trimtab_core::scaling_plan::ScheduledAction {
        name: "month-end-close".into(),
        schedule: "cron(0 6 L * ? *)".into(),
        timezone: "Europe/Berlin".into(),
        min_capacity: 20.0,
        max_capacity: 50.0,
    };
    trimtab_aws::dynamodb::put_scheduled_action(&clients, "table/orders-api", reads, &theirs)
        .await
        .expect("theirs");
    let before_theirs = scheduled(&moto, "table/orders-api", reads).await;

    let apply = |mode| {
        let clients = clients.clone();
        async move {
            let run = dynamodb_scaling::Run {
                mode,
                prefix: Some("orders-".into()),
                lookback_days: 4,
                throttle_budget_fraction: 0.01,
                environment: trimtab_core::environment::Environment::Prod,
                adopt: false,
            };
            let report = dynamodb_scaling::run_job(
                &clients,
                &config(Some(DECISIONS)),
                &trimtab_lambda::Invocation::default(),
                &run,
                now,
            )
            .await
            .expect("report");
            serde_json::to_value(report).expect("json")
        }
    };
    moto.fidelity.clear_seen();
    let report = apply(trimtab_lambda::Mode::Apply).await;
    let row = report["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["dimension"] == "write")
        .cloned()
        .expect("write row");
    assert_eq!(row["predictive"]["chosen"], "predictive", "{row:#}");
    assert!(
        row["forecast"]["backtest_wape_pct"].as_f64().is_some(),
        "{row:#}"
    );
    assert_eq!(row["forecast"]["horizon_hours"], 168);
    let (rc, pc) = (
        row["predictive"]["reactive_cost_usd"]
            .as_f64()
            .unwrap_or(0.0),
        row["predictive"]["predictive_cost_usd"]
            .as_f64()
            .unwrap_or(f64::MAX),
    );
    let (rt, pt) = (
        row["predictive"]["reactive_throttled_pct"]
            .as_f64()
            .unwrap_or(0.0),
        row["predictive"]["predictive_throttled_pct"]
            .as_f64()
            .unwrap_or(f64::MAX),
    );
    assert!((pc < rc && pt <= rt) || (pt < rt && pc <= rc), "{row:#}");
    let wanted = row["recommended_scheduled_actions"].clone();
    assert!(wanted.as_array().is_some_and(|a| !a.is_empty()), "{row:#}");
    let actions = wanted.as_array().cloned().unwrap_or_default();
    assert!(
        actions.iter().all(|a| a["timezone"] == "Europe/Berlin"),
        "{row:#}"
    );
    assert!(
        actions.iter().any(|a| a["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("trimtab-weekdays-08"))),
        "a raise ahead of 09:00 Berlin time: {row:#}"
    );

    // Exactly what the row recommends is registered, as PutScheduledAction takes it.
    let writes_dim = "dynamodb:table:WriteCapacityUnits";
    let live = scheduled(&moto, "table/orders-api", writes_dim).await;
    let expected: BTreeMap<String, (String, String, i32, i32)> = wanted
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["name"].as_str().unwrap_or_default().to_owned(),
                (
                    a["schedule"].as_str().unwrap_or_default().to_owned(),
                    a["timezone"].as_str().unwrap_or_default().to_owned(),
                    a["min_capacity"].as_f64().unwrap_or(0.0) as i32,
                    a["max_capacity"].as_f64().unwrap_or(0.0) as i32,
                ),
            )
        })
        .collect();
    assert_eq!(live, expected);
    assert!(live.keys().all(|n| n.starts_with("trimtab-")));
    assert!(
        live.values()
            .any(|(s, _, _, _)| s.ends_with("? * MON-FRI *)")),
        "{live:#?}"
    );
    // Each recorded first, applied.
    let table = trimtab_aws::decisions::DecisionTable::new(DECISIONS);
    let records = table
        .changes(&clients, &format!("table/orders-api {writes_dim}"))
        .await
        .expect("records");
    assert_eq!(records.len(), 2 + live.len(), "{records:#?}");
    assert!(
        records
            .iter()
            .all(|r| r.state == trimtab_core::records::RecordState::Applied)
    );
    // The other schedule is untouched and reported; Trimtab added none beside it.
    assert_eq!(
        scheduled(&moto, "table/orders-api", reads).await,
        before_theirs
    );
    assert!(
        report["foreign"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| f["scheduled_actions"] == json!(["month-end-close"])),
        "{:#}",
        report["foreign"]
    );

    // Second run: nothing to write.
    let again = apply(trimtab_lambda::Mode::Apply).await;
    assert_eq!(again["plan"], json!([]), "{:#}", again["plan"]);
    let scheduled_writes: u64 = [
        "application-autoscaling:PutScheduledAction",
        "application-autoscaling:DeleteScheduledAction",
    ]
    .iter()
    .map(|op| again["api_calls"][op].as_u64().unwrap_or(0))
    .sum();
    assert_eq!(writes(&again) + scheduled_writes, 0, "{again:#}");
    assert_eq!(scheduled(&moto, "table/orders-api", writes_dim).await, live);
    crate::assert_role_allows(&moto, "DynamoDBScalingFunction");
}
