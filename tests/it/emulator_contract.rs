//! The day the SDK and the emulator stop speaking the same protocol, this fails first, with a
//! message that says so (see the aws-sdk-cloudwatch pin in Cargo.toml).

use std::time::SystemTime;

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_smithy_types::DateTime;
use trimtab_aws::Clients;
use trimtab_aws::metrics::{Fold, Query, Window, fetch, fold};
use trimtab_tests::moto::Moto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudwatch_put_and_get_metric_data_round_trip_through_moto() {
    let moto = Moto::start().expect("moto");
    let config = moto.sdk_config().await;
    let window = Window::last_days(SystemTime::now(), 1);
    let datum = MetricDatum::builder()
        .metric_name("Invocations")
        .dimensions(
            Dimension::builder()
                .name("FunctionName")
                .value("contract")
                .build(),
        )
        .timestamp(DateTime::from_secs(window.end_epoch_s - 1800))
        .unit(StandardUnit::Count)
        .value(42.0)
        .build();
    aws_sdk_cloudwatch::Client::new(&config)
        .put_metric_data()
        .namespace("AWS/Lambda")
        .metric_data(datum)
        .send()
        .await
        .expect("PutMetricData: has aws-sdk-cloudwatch moved to a protocol moto cannot parse?");
    let clients = Clients::new(&config);
    let query = Query {
        id: "q".into(),
        namespace: "AWS/Lambda",
        metric_name: "Invocations",
        dimensions: vec![("FunctionName".into(), "contract".into())],
        stat: "Sum",
    };
    let (series, report) = fetch(&clients, vec![query], window)
        .await
        .expect("GetMetricData: has aws-sdk-cloudwatch moved to a protocol moto cannot parse?");
    assert_eq!(report.calls, 1);
    assert_eq!(fold(&series, "q", Fold::Sum, None), Some(42.0));
}
