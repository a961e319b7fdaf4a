//! The control plane's own bill: metrics for a fleet of 300 functions take ceil(queries / 500)
//! GetMetricData calls (plus one hourly call for the account's peak concurrency), counted by moto's request recorder, not by the code under test; and a
//! read-only run over 200 functions side by side with the per-function script.

use std::time::SystemTime;

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_smithy_types::DateTime;
use serde_json::json;
use trimtab_aws::metrics::Window;
use trimtab_tests::fleet;
use trimtab_tests::moto::Moto;
use trimtab_tests::seed::Seeder;

use crate::{f64_of, run_rightsizing};

fn recorded_get_metric_data_calls(moto: &Moto) -> u64 {
    let log = moto
        .read("/moto-api/recorder/download-recording")
        .expect("recording");
    // moto stores request bodies base64-encoded; "Action=GetMetricData&" is 21 bytes, so its
    // encoding at the start of a body is exactly this.
    const ENCODED: &str = "\"body\": \"QWN0aW9uPUdldE1ldHJpY0RhdGEm";
    log.lines()
        .filter(|l| l.contains("Action=GetMetricData") || l.contains(ENCODED))
        .count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_functions_take_ceil_queries_over_500_calls() {
    let moto = Moto::start().expect("moto");
    let config = moto.sdk_config().await;
    let seeder = Seeder::new(&config).await.expect("seeder");
    let cw = aws_sdk_cloudwatch::Client::new(&config);
    let end = Window::last_days(SystemTime::now(), 1).end_epoch_s;
    let mut data = Vec::new();
    for i in 0..300 {
        let name = format!("fleet-{i:03}");
        seeder
            .create_function(&fleet::io_bound_over_provisioned(&name))
            .await
            .expect("create");
        data.push(
            MetricDatum::builder()
                .metric_name("Invocations")
                .dimensions(
                    Dimension::builder()
                        .name("FunctionName")
                        .value(&name)
                        .build(),
                )
                .timestamp(DateTime::from_secs(end - 3600))
                .unit(StandardUnit::Count)
                .value(1000.0 + f64::from(i))
                .build(),
        );
    }
    for chunk in data.chunks(500) {
        cw.put_metric_data()
            .namespace("AWS/Lambda")
            .set_metric_data(Some(chunk.to_vec()))
            .send()
            .await
            .expect("put");
    }

    moto.control("/moto-api/recorder/start-recording", "")
        .expect("recorder on");
    let report = run_rightsizing(&moto, json!({"percentiles": false}))
        .await
        .expect("report");
    // 12 statistics a function, 500 a call; and one hourly call for the account's peak
    // concurrency (the quota's capacity risk).
    let queries: u64 = 300 * 12;
    assert_eq!(report["metric_queries"], queries + 1);
    let expected = queries.div_ceil(500) + 1;
    assert_eq!(recorded_get_metric_data_calls(&moto), expected);
    assert_eq!(report["api_calls"]["cloudwatch:GetMetricData"], expected);
    // Every function found, 50 a page as AWS pages.
    assert_eq!(report["functions"].as_array().map(Vec::len), Some(300));
    assert_eq!(f64_of(&report["functions"][7], "invocations"), 1007.0);

    // With percentiles asked for: 15 queries a function, still ceil(queries / 500) calls. (moto
    // answers percentile queries only when no datapoint matches them, as here.)
    let report = run_rightsizing(&moto, json!({})).await.expect("report");
    assert_eq!(report["metric_queries"], 300 * 15 + 1);
    let calls = report["api_calls"]["cloudwatch:GetMetricData"].as_u64();
    assert_eq!(calls, Some((300 * 15_u64).div_ceil(500) + 1));
}

/// A read-only run over 200 functions makes no call per function besides batched metrics: the
/// listing pages, ceil(queries / 500) `GetMetricData` (and one hourly call for the account's
/// peak concurrency, with one `GetAccountSettings` for its quota), the reserved cap of the 5 functions that
/// throttled, REPORT lines of at most `log_scan_functions` (the costliest without Insights). The
/// per-function script asks 2,004 times for the same fleet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_functions_side_by_side_with_the_per_function_script() {
    let moto = Moto::start().expect("moto");
    let config = moto.sdk_config().await;
    let seeder = Seeder::new(&config).await.expect("seeder");
    let cw = aws_sdk_cloudwatch::Client::new(&config);
    let window = Window::last_days(SystemTime::now(), 14);
    let at = DateTime::from_secs(window.end_epoch_s - 3600);
    let datum = |metric: &str, name: &str, value: f64, unit: StandardUnit| {
        MetricDatum::builder()
            .metric_name(metric)
            .dimensions(
                Dimension::builder()
                    .name("FunctionName")
                    .value(name)
                    .build(),
            )
            .timestamp(at)
            .unit(unit)
            .value(value)
            .build()
    };
    let mut data = Vec::new();
    for i in 0..200 {
        let name = format!("side-{i:03}");
        seeder
            .create_function(&fleet::io_bound_over_provisioned(&name))
            .await
            .expect("create");
        data.push(datum(
            "Invocations",
            &name,
            5000.0 + f64::from(i),
            StandardUnit::Count,
        ));
        data.push(datum("Duration", &name, 120.0, StandardUnit::Milliseconds));
        data.push(datum(
            "ConcurrentExecutions",
            &name,
            3.0,
            StandardUnit::Count,
        ));
        if i % 40 == 0 {
            data.push(datum("Throttles", &name, 7.0, StandardUnit::Count));
        }
    }
    for chunk in data.chunks(500) {
        cw.put_metric_data()
            .namespace("AWS/Lambda")
            .set_metric_data(Some(chunk.to_vec()))
            .send()
            .await
            .expect("put");
    }

    moto.fidelity.clear_seen();
    let report = run_rightsizing(&moto, json!({"percentiles": false}))
        .await
        .expect("report");
    let ours = moto.fidelity.counts();
    assert_eq!(report["functions"].as_array().map(Vec::len), Some(200));
    let n = |op: &str| ours.get(op).copied().unwrap_or(0);
    assert_eq!(n("lambda:ListFunctions"), 4, "{ours:?}");
    // And one hourly call for the account's peak concurrency.
    assert_eq!(
        n("cloudwatch:GetMetricData"),
        (200_u64 * 12).div_ceil(500) + 1
    );
    assert_eq!(
        n("lambda:GetFunctionConcurrency"),
        5,
        "only the throttled: {ours:?}"
    );
    assert_eq!(
        n("logs:FilterLogEvents"),
        25,
        "the log-read budget: {ours:?}"
    );
    assert_eq!(
        n("lambda:GetAccountSettings"),
        1,
        "the quota, once: {ours:?}"
    );
    let known = [
        "lambda:ListFunctions",
        "cloudwatch:GetMetricData",
        "lambda:GetFunctionConcurrency",
        "lambda:GetAccountSettings",
        "logs:FilterLogEvents",
    ];
    assert!(
        ours.keys().all(|op| known.contains(&op.as_str())),
        "a call kind beyond listing, batched metrics and the bounded reads: {ours:?}"
    );
    // The report counts what the fidelity layer saw.
    for (op, count) in &ours {
        assert_eq!(report["api_calls"][op].as_u64(), Some(*count), "{op}");
    }
    let ours_total: u64 = ours.values().sum();

    moto.fidelity.clear_seen();
    trimtab_tests::naive::per_function_script(&config, window.start_epoch_s, window.end_epoch_s)
        .await;
    let script_total: u64 = moto.fidelity.counts().values().sum();
    assert_eq!(script_total, 4 + 200 * 10);
    assert!(
        script_total >= 20 * ours_total,
        "{script_total} calls for the script, {ours_total} for Trimtab"
    );
}
