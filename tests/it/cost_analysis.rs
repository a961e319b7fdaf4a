//! Cost analysis against moto with canned Cost Explorer answers: totals to the cent, the
//! planted anomaly, the forecast, budget alerts once (an alert SNS refused goes out on the next
//! run), a repeat run answered from the cache, a later one that reads only the estimated days
//! again, and the daily request budget.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use trimtab_aws::Clients;
use trimtab_core::calendar::format_date;
use trimtab_tests::costs::{dataset, demo_answers, queue};
use trimtab_tests::fidelity::{Fault, FaultKind};
use trimtab_tests::moto::Moto;
use trimtab_tests::seed::create_decision_table;

const TABLE: &str = "trimtab-decisions-cost";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_anomalies_forecast_budgets_and_a_cheap_second_run() {
    let moto = Moto::start().expect("moto");
    let sdk = moto.sdk_config().await;
    create_decision_table(&sdk, TABLE).await.expect("table");
    let topic = aws_sdk_sns::Client::new(&sdk)
        .create_topic()
        .name("cost-alerts")
        .send()
        .await
        .expect("topic");
    let topic_arn = topic.topic_arn().unwrap_or_default().to_owned();

    let today = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
        / 86_400;
    let d = dataset(today, 90);
    // Run 1 reads the window in two pages; run 2 only the two estimated days.
    queue(&moto.endpoint, demo_answers(&d, today)).expect("canned");

    let config = cost_analysis::JobConfig {
        table_name: Some(TABLE.into()),
        alert_topic_arn: Some(topic_arn),
        ..Default::default()
    };
    // A budget the month is well into: 50% crossed for sure.
    let mtd: f64 = d
        .rows
        .iter()
        .filter(|r| format_date(r.1)[..7] == format_date(today)[..7])
        .map(|r| r.2)
        .sum();
    let event = json!({"budgets": {"total": {"monthly_usd": (mtd * 1.5).max(100.0)}}});
    let run = |at: SystemTime| {
        let config = config.clone();
        let clients = Clients::new(&sdk);
        let event = event.clone();
        async move {
            crate::invoke(cost_analysis::handle_at(&clients, &config, event, at))
                .await
                .expect("report")
        }
    };
    // 01:00 UTC today: later runs stay within the day.
    let t0 = UNIX_EPOCH + Duration::from_secs(today as u64 * 86_400 + 3600);
    moto.fidelity.clear_seen();
    // SNS refuses the first alert (the anomaly's): the run goes on and the next one sends it.
    moto.fidelity.inject(Fault::new(
        "sns:Publish",
        FaultKind::Fail {
            status: 403,
            code: "AuthorizationError".into(),
            message: "not authorized to publish".into(),
        },
    ));
    let report = run(t0).await;
    crate::assert_role_allows(&moto, "CostAnalysisFunction");

    // Totals to the cent, per service too.
    let total: f64 = d.rows.iter().map(|r| r.2).sum();
    assert!(
        (report["total_usd"].as_f64().unwrap_or(0.0) - total).abs() < 0.005,
        "{} vs {total}",
        report["total_usd"]
    );
    let mut by_service: BTreeMap<String, f64> = BTreeMap::new();
    for r in &d.rows {
        *by_service.entry(r.0.clone()).or_default() += r.2;
    }
    for (s, usd) in &by_service {
        assert!(
            (report["by_service"][s].as_f64().unwrap_or(0.0) - usd).abs() < 0.005,
            "{s}"
        );
    }
    assert_eq!(report["cost_explorer_requests"], 2);

    // The planted anomaly, and nothing else.
    let anomalies = report["anomalies"].as_array().cloned().unwrap_or_default();
    assert_eq!(anomalies.len(), 1, "{anomalies:#?}");
    assert_eq!(anomalies[0]["date"], format_date(d.anomaly.1));
    assert_eq!(anomalies[0]["service"], "AWS Lambda");
    assert!((anomalies[0]["impact_usd"].as_f64().unwrap_or(0.0) - 150.0).abs() < 10.0);

    // Forecast: month-to-date to the cent; the interval holds the point; steady data, small error.
    let f = &report["forecast"];
    assert!((f["month_to_date_usd"].as_f64().unwrap_or(0.0) - mtd).abs() < 0.005);
    let (lo, mid, hi) = (
        f["low_usd"].as_f64().unwrap_or(0.0),
        f["month_end_usd"].as_f64().unwrap_or(0.0),
        f["high_usd"].as_f64().unwrap_or(0.0),
    );
    assert!(lo <= mid && mid <= hi && mid >= mtd, "{f:#}");
    assert!(
        f["backtest_mape_pct"].as_f64().unwrap_or(100.0) < 10.0,
        "{f:#}"
    );

    // Budget: 50% of a budget at 1.5x month-to-date is crossed when the month is a third gone.
    let b = &report["budgets"][0];
    let used = 100.0 * mtd / (mtd * 1.5).max(100.0);
    assert!(
        (b["used_pct"].as_f64().unwrap_or(0.0) - (used * 100.0).round() / 100.0).abs() < 0.01,
        "{b:#}"
    );
    let alerts: Vec<&str> = report["alerts_sent"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        alerts.iter().any(|a| a.starts_with("budget#"))
            && !alerts.iter().any(|a| a.starts_with("anomaly#")),
        "{alerts:?}"
    );
    assert!(
        report["notes"]
            .to_string()
            .contains("not sent, the next run retries")
    );

    assert_eq!(report["cost_explorer_budget"]["used_today"], 2);

    // An hour on: all from the cache, same numbers; only the alert SNS refused goes out.
    let again = run(t0 + Duration::from_secs(3600)).await;
    assert_eq!(again["cost_explorer_requests"], 0);
    assert!((again["total_usd"].as_f64().unwrap_or(0.0) - total).abs() < 0.005);
    let resent: Vec<&str> = again["alerts_sent"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(resent.len(), 1, "{resent:?}");
    assert!(resent[0].starts_with("anomaly#"), "{resent:?}");
    assert_eq!(again["estimated_days"].as_array().map(Vec::len), Some(2));

    // Seven hours on: the two estimated days are read again, in one request.
    let later = run(t0 + Duration::from_secs(7 * 3600)).await;
    assert_eq!(later["cost_explorer_requests"], 1);
    assert_eq!(later["cost_explorer_budget"]["used_today"], 3);
    assert_eq!(later["alerts_sent"].as_array().map(Vec::len), Some(0));
    assert!((later["total_usd"].as_f64().unwrap_or(0.0) - total).abs() < 0.005);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_daily_budget_the_cache_answers_without_a_cost_explorer_call() {
    let moto = Moto::start().expect("moto");
    let sdk = moto.sdk_config().await;
    create_decision_table(&sdk, TABLE).await.expect("table");
    let today = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
        / 86_400;
    let d = dataset(today, 90);
    queue(&moto.endpoint, demo_answers(&d, today)).expect("canned");
    let config = cost_analysis::JobConfig {
        table_name: Some(TABLE.into()),
        ce_daily_requests: 2,
        ..Default::default()
    };
    let t0 = UNIX_EPOCH + Duration::from_secs(today as u64 * 86_400 + 3600);
    let run = |at: SystemTime| {
        let clients = Clients::new(&sdk);
        let config = config.clone();
        async move {
            crate::invoke(cost_analysis::handle_at(&clients, &config, json!({}), at))
                .await
                .expect("report")
        }
    };
    // Two pages: the whole budget.
    let first = run(t0).await;
    assert_eq!(first["cost_explorer_requests"], 2);
    assert_eq!(first["cost_explorer_budget"]["exhausted"], false);

    // Seven hours on the estimated days are due again, but the budget is spent: no Cost
    // Explorer call, the cache answers, and the report says why.
    moto.fidelity.clear_seen();
    let spent = run(t0 + Duration::from_secs(7 * 3600)).await;
    assert!(
        !moto
            .fidelity
            .operations()
            .iter()
            .any(|op| op.starts_with("ce:")),
        "{:?}",
        moto.fidelity.operations()
    );
    assert_eq!(spent["cost_explorer_requests"], 0);
    assert_eq!(spent["cost_explorer_budget"]["exhausted"], true);
    let total: f64 = d.rows.iter().map(|r| r.2).sum();
    assert!((spent["total_usd"].as_f64().unwrap_or(0.0) - total).abs() < 0.005);
    let notes = spent["notes"].to_string();
    assert!(
        notes.contains("Cost Explorer budget spent") && notes.contains("TRIMTAB_CE_DAILY_REQUESTS"),
        "{notes}"
    );
    crate::assert_role_allows(&moto, "CostAnalysisFunction");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cost_events_are_named() {
    let moto = Moto::start().expect("moto");
    let clients = Clients::new(&moto.sdk_config().await);
    let config = cost_analysis::JobConfig::default();
    for (event, field) in [
        (json!({"lookback_days": 3}), "lookback_days"),
        (json!({"metric": "BlendedCostz"}), "metric"),
        (json!({"group_by": "REGION"}), "group_by"),
        (
            json!({"budgets": {"prod": {"monthly_usd": -5}}}),
            "budgets.prod.monthly_usd",
        ),
        (json!({"budgets": {"prod": {"monthly": 5}}}), "budgets.prod"),
    ] {
        let err = cost_analysis::handle(&clients, &config, event.clone())
            .await
            .expect_err("refused");
        assert!(err.to_string().contains(field), "{event}: {err}");
    }
}
