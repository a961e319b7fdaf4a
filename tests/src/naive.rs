//! The per-function script Trimtab is measured against: what a right-sizing script written the
//! obvious way asks AWS for each function (its configuration, its reserved concurrency and tags,
//! one `GetMetricStatistics` per statistic, a page of its REPORT lines). Only its request count
//! matters; it judges nothing.

use aws_config::SdkConfig;
use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use aws_smithy_types::DateTime;

/// Statistics the script asks CloudWatch for, one call each per function.
const STATISTICS: [(&str, Statistic); 6] = [
    ("Invocations", Statistic::Sum),
    ("Duration", Statistic::Average),
    ("Duration", Statistic::Maximum),
    ("Errors", Statistic::Sum),
    ("Throttles", Statistic::Sum),
    ("ConcurrentExecutions", Statistic::Maximum),
];

/// Runs the script over every function over `[start, end)` (epoch seconds); errors are ignored
/// (a request refused is a request made).
pub async fn per_function_script(sdk: &SdkConfig, start: i64, end: i64) {
    let lambda = aws_sdk_lambda::Client::new(sdk);
    let cw = aws_sdk_cloudwatch::Client::new(sdk);
    let logs = aws_sdk_cloudwatchlogs::Client::new(sdk);
    let mut names = Vec::new();
    let mut pages = lambda.list_functions().into_paginator().send();
    while let Some(Ok(page)) = pages.next().await {
        for f in page.functions() {
            names.extend(f.function_name().map(ToOwned::to_owned));
        }
    }
    for name in &names {
        let arn = lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .ok()
            .and_then(|c| c.function_arn().map(ToOwned::to_owned))
            .unwrap_or_default();
        let _ = lambda
            .get_function_concurrency()
            .function_name(name)
            .send()
            .await;
        let _ = lambda.list_tags().resource(arn).send().await;
        for (metric, stat) in STATISTICS {
            let _ = cw
                .get_metric_statistics()
                .namespace("AWS/Lambda")
                .metric_name(metric)
                .dimensions(
                    Dimension::builder()
                        .name("FunctionName")
                        .value(name)
                        .build(),
                )
                .start_time(DateTime::from_secs(start))
                .end_time(DateTime::from_secs(end))
                .period(86_400)
                .statistics(stat)
                .send()
                .await;
        }
        let _ = logs
            .filter_log_events()
            .log_group_name(format!("/aws/lambda/{name}"))
            .filter_pattern("REPORT")
            .start_time(start * 1000)
            .end_time(end * 1000)
            .send()
            .await;
    }
}
