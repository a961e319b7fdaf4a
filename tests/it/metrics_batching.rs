//! The control plane's own bill: metrics for a fleet of 300 functions take ceil(queries / 500)
//! GetMetricData calls, counted by moto's request recorder, not by the code under test.

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
    let queries: u64 = 300 * 12;
    assert_eq!(report["metric_queries"], queries);
    let expected = queries.div_ceil(500);
    assert_eq!(recorded_get_metric_data_calls(&moto), expected);
    assert_eq!(report["api_calls"]["cloudwatch:GetMetricData"], expected);
    // Every function found (moto answers ListFunctions in one page; paging is covered with the
    // SDK's mocks in trimtab-aws).
    assert_eq!(report["functions"].as_array().map(Vec::len), Some(300));
    assert_eq!(f64_of(&report["functions"][7], "invocations"), 1007.0);

    // With percentiles asked for: 15 queries a function, still ceil(queries / 500) calls. (moto
    // answers percentile queries only when no datapoint matches them, as here.)
    let report = run_rightsizing(&moto, json!({})).await.expect("report");
    assert_eq!(report["metric_queries"], 300 * 15);
    let calls = report["api_calls"]["cloudwatch:GetMetricData"].as_u64();
    assert_eq!(calls, Some((300 * 15_u64).div_ceil(500)));
}
