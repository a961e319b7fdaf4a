//! The performance monitor against moto: an error burst pages and a quiet series does not; the
//! dashboard and SLO alarms exist after one run, a second run writes nothing, and a removed
//! function's alarms go.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use trimtab_aws::Clients;
use trimtab_tests::fidelity::{Fault, FaultKind};
use trimtab_tests::fleet;
use trimtab_tests::moto::Moto;
use trimtab_tests::seed::{Seeder, put_series};

/// One run with the clock at `now`, so that seeding and the run agree on the 5-minute buckets.
async fn run(moto: &Moto, event: Value, now: SystemTime) -> Value {
    let clients = Clients::new(&moto.sdk_config().await);
    let config = performance_monitor::JobConfig {
        configured_mode: trimtab_lambda::Mode::Recommend,
        environment: trimtab_core::environment::Environment::Prod,
        alarm_actions: vec![TOPIC.to_owned()],
        table_name: None,
        alarm_budget_usd: None,
        alarm_subjects: vec![],
    };
    crate::invoke(performance_monitor::handle_at(
        &clients, &config, event, now,
    ))
    .await
    .expect("report")
}

fn subject<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["subjects"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["id"] == id))
        .unwrap_or_else(|| panic!("no subject {id} in {report:#}"))
}

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:trimtab-alerts-prod";

/// Trimtab's SLO alarms in the account: (metric alarms, composite alarms).
async fn slo_alarms(
    sdk: &aws_config::SdkConfig,
) -> (
    Vec<aws_sdk_cloudwatch::types::MetricAlarm>,
    Vec<aws_sdk_cloudwatch::types::CompositeAlarm>,
) {
    let out = aws_sdk_cloudwatch::Client::new(sdk)
        .describe_alarms()
        .alarm_name_prefix("trimtab-slo-prod-")
        .alarm_types(aws_sdk_cloudwatch::types::AlarmType::MetricAlarm)
        .alarm_types(aws_sdk_cloudwatch::types::AlarmType::CompositeAlarm)
        .send()
        .await
        .expect("alarms");
    (
        out.metric_alarms().to_vec(),
        out.composite_alarms().to_vec(),
    )
}

fn writes(report: &Value) -> u64 {
    [
        "cloudwatch:PutDashboard",
        "cloudwatch:PutMetricAlarm",
        "cloudwatch:PutCompositeAlarm",
        "cloudwatch:DeleteAlarms",
    ]
    .iter()
    .map(|k| report["api_calls"][k].as_u64().unwrap_or(0))
    .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_pages_a_quiet_series_does_not_and_the_second_run_writes_nothing() {
    let moto = Moto::start().expect("moto");
    let sdk = moto.sdk_config().await;
    let seeder = Seeder::new(&sdk).await.expect("seeder");
    for name in ["checkout", "search"] {
        seeder
            .create_function(&fleet::io_bound_over_provisioned(name))
            .await
            .expect("function");
    }
    let api = aws_sdk_apigatewayv2::Client::new(&sdk)
        .create_api()
        .name("shop")
        .protocol_type(aws_sdk_apigatewayv2::types::ProtocolType::Http)
        .send()
        .await
        .expect("api");
    let api_id = api.api_id().unwrap_or_default().to_owned();
    aws_sdk_apigatewayv2::Client::new(&sdk)
        .create_stage()
        .api_id(&api_id)
        .stage_name("prod")
        .send()
        .await
        .expect("stage");

    // Three days of 5-minute traffic: 1,000 requests each, 0.02% errors; checkout's last hour at 3%.
    let clock = SystemTime::now();
    let now = clock
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
        / 300
        * 300;
    let steps: Vec<i64> = (1..=864).map(|k| now - k * 300 + 60).collect();
    let cw = &seeder.cloudwatch;
    for name in ["checkout", "search"] {
        let dims = [("FunctionName", name)];
        let inv: Vec<(i64, f64)> = steps.iter().map(|t| (*t, 1000.0)).collect();
        let errs: Vec<(i64, f64)> = steps
            .iter()
            .map(|t| {
                (
                    *t,
                    if name == "checkout" && *t > now - 3600 {
                        30.0
                    } else {
                        0.2
                    },
                )
            })
            .collect();
        put_series(cw, "AWS/Lambda", "Invocations", &dims, &inv)
            .await
            .expect("inv");
        put_series(cw, "AWS/Lambda", "Errors", &dims, &errs)
            .await
            .expect("err");
    }
    let dims = [("ApiId", api_id.as_str()), ("Stage", "prod")];
    let count: Vec<(i64, f64)> = steps.iter().map(|t| (*t, 1000.0)).collect();
    put_series(cw, "AWS/ApiGateway", "Count", &dims, &count)
        .await
        .expect("count");

    let four: Vec<(i64, f64)> = steps.iter().map(|t| (*t, 10.0)).collect();
    put_series(cw, "AWS/ApiGateway", "4xx", &dims, &four)
        .await
        .expect("4xx");
    // A table at half its provisioned reads.
    trimtab_tests::seed::create_table(&sdk, "orders", Some((100, 10)), &[], &[])
        .await
        .expect("table");
    let table = [("TableName", "orders")];
    let consumed: Vec<(i64, f64)> = steps.iter().map(|t| (*t, 50.0 * 300.0)).collect();
    let provisioned: Vec<(i64, f64)> = steps.iter().map(|t| (*t, 100.0)).collect();
    put_series(
        cw,
        "AWS/DynamoDB",
        "ConsumedReadCapacityUnits",
        &table,
        &consumed,
    )
    .await
    .expect("consumed");
    put_series(
        cw,
        "AWS/DynamoDB",
        "ProvisionedReadCapacityUnits",
        &table,
        &provisioned,
    )
    .await
    .expect("provisioned");

    moto.fidelity.clear_seen();
    let report = run(&moto, json!({"mode": "apply", "window_days": 3}), clock).await;
    crate::assert_role_allows(&moto, "PerformanceMonitorFunction");
    let api = subject(&report, "api-shop-prod");
    assert_eq!(api["evidence"]["client_errors"], 8640.0, "{api:#}");
    assert_eq!(api["evidence"]["client_error_rate_pct"], 1.0);
    let util = report["tables"][0]["read_utilization_pct"]
        .as_f64()
        .unwrap_or(0.0);
    assert!((util - 50.0).abs() < 1.0, "{:#}", report["tables"]);
    let checkout = subject(&report, "fn-checkout");
    let alerts = checkout["alerts"].as_array().cloned().unwrap_or_default();
    assert!(alerts.iter().any(|a| a["severity"] == "page" && a["rule"].as_str().unwrap_or("").starts_with("60m")), "{checkout:#}");
    assert!(
        subject(&report, "fn-search")["alerts"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    assert!(
        subject(&report, "api-shop-prod")["alerts"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    assert_eq!(report["pages"], 1);
    // Health: checkout's budget (3 days at 99.9%) is the most spent.
    let remaining = checkout["error_budget"]["remaining_pct"]
        .as_f64()
        .unwrap_or(100.0);
    assert_eq!(report["health_score"].as_f64(), Some(remaining));

    // Dashboard and 5 alarms a subject exist.
    let cwc = aws_sdk_cloudwatch::Client::new(&sdk);
    let board = cwc
        .get_dashboard()
        .dashboard_name("trimtab-prod")
        .send()
        .await
        .expect("dashboard");
    assert!(
        board
            .dashboard_body()
            .unwrap_or_default()
            .contains("fn-checkout")
    );
    // Per subject: latency and error-rate alarms, and per burn-rate rule two window children
    // and the composite that pages; the environment is in every name.
    let (metric, composite) = slo_alarms(&sdk).await;
    assert_eq!((metric.len(), composite.len()), (3 * 8, 3 * 3));
    // What they cost: $3.00 a subject a month, and the dashboard $3.00.
    assert_eq!(report["alarm_upkeep"]["alarms_monthly_usd"], 9.0);
    assert_eq!(report["alarm_upkeep"]["subjects_alarmed"], 3);
    assert!(
        board
            .dashboard_body()
            .unwrap_or_default()
            .contains("table orders")
    );
    let fast = composite
        .iter()
        .find(|a| a.alarm_name() == Some("trimtab-slo-prod-fn-checkout-burn-fast"))
        .expect("the fast-burn page");
    assert_eq!(
        fast.alarm_rule(),
        Some(
            "ALARM(\"trimtab-slo-prod-fn-checkout-burn-fast-long\") AND ALARM(\"trimtab-slo-prod-fn-checkout-burn-fast-short\")"
        )
    );
    assert_eq!(fast.alarm_actions(), [TOPIC]);
    let long = metric
        .iter()
        .find(|a| a.alarm_name() == Some("trimtab-slo-prod-fn-checkout-burn-fast-long"))
        .expect("child");
    assert!(long.alarm_actions().is_empty(), "only the composite pages");

    // Nothing changed: nothing written.
    let again = run(&moto, json!({"mode": "apply", "window_days": 3}), clock).await;
    assert_eq!(writes(&again), 0, "{:#}", again["api_calls"]);
    assert_eq!(again["alarms_unchanged"], 33);

    // A function goes. A run scoped to another function leaves its alarms alone; a run over
    // everything deletes them, composites first, and the dashboard follows.
    aws_sdk_lambda::Client::new(&sdk)
        .delete_function()
        .function_name("search")
        .send()
        .await
        .expect("delete");
    let scoped = run(
        &moto,
        json!({"mode": "apply", "window_days": 3, "function_name_prefix": "checkout"}),
        clock,
    )
    .await;
    assert_eq!(scoped["alarms_deleted"].as_array().map(Vec::len), Some(0));
    assert_eq!(slo_alarms(&sdk).await.0.len(), 3 * 8);
    let after = run(&moto, json!({"mode": "apply", "window_days": 3}), clock).await;
    assert_eq!(after["alarms_deleted"].as_array().map(Vec::len), Some(11));
    assert_eq!(after["dashboard_changed"], true);
    let (metric, composite) = slo_alarms(&sdk).await;
    assert_eq!((metric.len(), composite.len()), (2 * 8, 2 * 3));

    // The API's stages cannot be read (after GetRestApis and GetApis, GetStages is refused): the
    // run goes on, says so, deletes none of the API's alarms and leaves the dashboard for a
    // whole run.
    moto.fidelity.inject(
        Fault::new(
            "apigateway:GET",
            FaultKind::Fail {
                status: 403,
                code: "AccessDeniedException".into(),
                message: "not authorized".into(),
            },
        )
        .after(2),
    );
    let partial = run(&moto, json!({"mode": "apply", "window_days": 3}), clock).await;
    assert!(
        partial["notes"]
            .to_string()
            .contains("API stages unreadable"),
        "{:#}",
        partial["notes"]
    );
    assert_eq!(partial["alarms_deleted"].as_array().map(Vec::len), Some(0));
    assert_eq!(partial["dashboard_changed"], false);
    assert_eq!(slo_alarms(&sdk).await.0.len(), 2 * 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommend_mode_writes_nothing_and_bad_events_are_named() {
    let moto = Moto::start().expect("moto");
    let seeder = Seeder::new(&moto.sdk_config().await).await.expect("seeder");
    seeder
        .create_function(&fleet::io_bound_over_provisioned("quiet"))
        .await
        .expect("function");
    let report = run(&moto, json!({"window_days": 1}), SystemTime::now()).await;
    assert_eq!(writes(&report), 0);
    // No traffic: judged, but alarms would not pay (a 99.9% objective needs 1,000 requests).
    assert_eq!(report["alarms_put"].as_array().map(Vec::len), Some(0));
    let upkeep = &report["alarm_upkeep"];
    assert_eq!(upkeep["subjects_without_alarms"][0]["subject"], "fn-quiet");
    assert!(
        upkeep["subjects_without_alarms"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("needs 1000"),
        "{upkeep:#}"
    );
    assert_eq!(upkeep["per_subject_monthly_usd"], 3.0);
    assert_eq!(upkeep["dashboard_monthly_usd"], 3.0);
    // Pinned by name, it gets its 11 alarms ($3.00 a month) all the same; a ceiling below that
    // keeps it without.
    let clients = Clients::new(&moto.sdk_config().await);
    let mut config = performance_monitor::JobConfig::from_env();
    config.alarm_subjects = vec!["quiet".into()];
    let pinned = crate::invoke(performance_monitor::handle(
        &clients,
        &config,
        json!({"window_days": 1}),
    ))
    .await
    .expect("report");
    assert_eq!(pinned["alarms_put"].as_array().map(Vec::len), Some(11));
    assert_eq!(pinned["alarm_upkeep"]["alarms_monthly_usd"], 3.0);
    let capped = crate::invoke(performance_monitor::handle(
        &clients,
        &config,
        json!({"window_days": 1, "alarm_budget_usd": 2.5}),
    ))
    .await
    .expect("report");
    assert_eq!(capped["alarms_put"].as_array().map(Vec::len), Some(0));
    assert_eq!(capped["alarm_upkeep"]["alarms_monthly_usd"], 0.0);
    let config = performance_monitor::JobConfig::from_env();
    for (event, field) in [
        (json!({"window_days": 0}), "window_days"),
        (json!({"environment": "qa"}), "environment"),
        // Apply writes only the stack's own environment's alarms (prod here).
        (
            json!({"mode": "apply", "environment": "dev"}),
            "environment",
        ),
        (json!({"objectives": {"latency_p95_ms": 100}}), "objectives"),
        (json!({"alarm_budget_usd": -1}), "alarm_budget_usd"),
    ] {
        let err = performance_monitor::handle(&clients, &config, event.clone())
            .await
            .expect_err("refused");
        assert!(err.to_string().contains(field), "{event}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_stages_are_forecast_and_dated_against_their_throttle_limits() {
    let moto = Moto::start().expect("moto");
    let sdk = moto.sdk_config().await;
    trimtab_tests::seed::create_rest_stage(&sdk, ("orders", "prod"), Some(500.0))
        .await
        .expect("stage");
    // Three weeks by the hour: 5 requests a second at night and at weekends, 200 in weekday
    // office hours growing 4 a day.
    let clock = SystemTime::now();
    let now = clock.duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64;
    let hours: Vec<(i64, f64)> = trimtab_tests::seed::office_hourly(now, 21, (5.0, 200.0, 4.0))
        .into_iter()
        .map(|(t, rps)| (t, rps * 3600.0))
        .collect();
    let dims = [("ApiName", "orders"), ("Stage", "prod")];
    put_series(
        &Seeder::new(&sdk).await.expect("seeder").cloudwatch,
        "AWS/ApiGateway",
        "Count",
        &dims,
        &hours,
    )
    .await
    .expect("count");
    moto.fidelity.clear_seen();
    let report = run(
        &moto,
        json!({"api_name_prefix": "orders", "function_name_prefix": "none-", "capacity": true}),
        clock,
    )
    .await;
    crate::assert_role_allows(&moto, "PerformanceMonitorFunction");
    let c = &report["api_capacity"];
    assert_eq!(c["account_rate_limit_rps"], 10_000.0, "{c:#}");
    let stage = &c["stages"][0];
    assert_eq!(
        (stage["api"].as_str(), stage["stage"].as_str()),
        (Some("orders"), Some("prod"))
    );
    assert_eq!(stage["stage_rate_limit_rps"], 500.0, "{stage:#}");
    assert_ne!(stage["forecast"]["method"], "none", "{stage:#}");
    assert!(
        stage["forecast"]["backtest_wape_pct"].as_f64().is_some(),
        "{stage:#}"
    );
    // The stage's limit binds first: 80% of it (400) is reached within the 90 days.
    let risk = &stage["risk"];
    assert_eq!(
        risk["quota_name"], "apigateway_stage_rate_limit",
        "{risk:#}"
    );
    assert!(risk["crosses_on"].as_str().is_some(), "{risk:#}");
    // A run scoped by API name does not see every stage, so it judges no account-wide risk.
    assert!(c["account"].is_null(), "{c:#}");
    // A run that is not the day's first and does not ask leaves capacity out.
    let later = run(
        &moto,
        json!({"api_name_prefix": "orders", "function_name_prefix": "none-", "capacity": false}),
        clock,
    )
    .await;
    assert!(later["api_capacity"].is_null());
}
