//! Cost analysis against moto with canned Cost Explorer answers: totals to the cent, the
//! planted anomaly, the forecast, budget alerts once, and a repeat run that fetches only the
//! estimated days.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use trimtab_aws::Clients;
use trimtab_core::cost::format_date;
use trimtab_tests::costs::{dataset, demo_answers, queue};
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

    let clients = Clients::new(&sdk);
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
    moto.fidelity.clear_seen();
    let report = crate::invoke(cost_analysis::handle(&clients, &config, event.clone()))
        .await
        .expect("report");
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
        alerts.iter().any(|a| a.starts_with("anomaly#")),
        "{alerts:?}"
    );

    // The same day again: one request for the estimated days, same numbers, no repeated alerts.
    let again = crate::invoke(cost_analysis::handle(&Clients::new(&sdk), &config, event))
        .await
        .expect("again");
    assert_eq!(again["cost_explorer_requests"], 1);
    assert!((again["total_usd"].as_f64().unwrap_or(0.0) - total).abs() < 0.005);
    assert_eq!(again["alerts_sent"].as_array().map(Vec::len), Some(0));
    assert_eq!(again["estimated_days"].as_array().map(Vec::len), Some(2));
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
