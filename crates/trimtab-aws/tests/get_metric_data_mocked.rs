//! `GetMetricData` paths moto cannot exercise (percentiles, `NextToken` pages), driven through the
//! SDK's own mock interceptor with responses shaped like AWS's.

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::config::retry::RetryConfig;
use aws_sdk_cloudwatch::operation::get_metric_data::{GetMetricDataInput, GetMetricDataOutput};
use aws_sdk_cloudwatch::types::{MetricDataResult, StatusCode};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::DateTime;
use trimtab_aws::Clients;
use trimtab_aws::inventory::FunctionConfig;
use trimtab_aws::metrics::{Window, fetch, lambda_metrics, lambda_queries};
use trimtab_core::pricing::Architecture;

/// Answers every query with a value derived from its statistic, like AWS with one datapoint.
fn answer(req: &GetMetricDataInput, ids: Option<&[&str]>) -> GetMetricDataOutput {
    let results = req
        .metric_data_queries()
        .iter()
        .filter(|q| ids.is_none_or(|ids| ids.contains(&q.id().unwrap_or_default())))
        .map(|q| {
            let stat = q.metric_stat().and_then(|s| s.stat()).unwrap_or_default();
            let value = match stat {
                "p50" => 80.0,
                "p95" => 240.0,
                "p99" => 610.0,
                "Average" => 100.0,
                "Maximum" => 900.0,
                "SampleCount" | "Sum" => 5000.0,
                _ => 0.0,
            };
            MetricDataResult::builder()
                .set_id(q.id().map(ToOwned::to_owned))
                .timestamps(DateTime::from_secs(1_700_000_000))
                .values(value)
                .status_code(StatusCode::Complete)
                .build()
        })
        .collect();
    GetMetricDataOutput::builder()
        .set_metric_data_results(Some(results))
        .build()
}

fn clients(cloudwatch: Client) -> Clients {
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build();
    Clients::new(&sdk).with_cloudwatch(cloudwatch)
}

fn function(name: &str) -> FunctionConfig {
    FunctionConfig {
        name: name.into(),
        arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{name}"),
        architecture: Architecture::Arm64,
        memory_mb: 1024,
        timeout_s: 30,
        ephemeral_storage_mb: 512,
        tags: Default::default(),
        last_modified_epoch_s: None,
    }
}

const WINDOW: Window = Window {
    start_epoch_s: 1_700_000_000 - 14 * 86_400,
    end_epoch_s: 1_700_000_000,
};

#[tokio::test]
async fn percentiles_are_read_when_the_backend_computes_them() {
    let rule = mock!(Client::get_metric_data).then_compute_output(|req| answer(req, None));
    let cw = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, &[&rule]);
    let c = clients(cw);
    let (series, report) = fetch(&c, lambda_queries(&[function("a")], true), WINDOW)
        .await
        .expect("fetch");
    assert_eq!(report.calls, 1);
    assert_eq!(report.percentiles_unavailable, None);
    let m = lambda_metrics(&series, 0, 1024);
    assert_eq!(m.duration_p99_ms, Some(610.0));
    assert_eq!(m.duration_p95_ms, Some(240.0));
    assert_eq!(m.duration_avg_ms, Some(100.0));
}

#[tokio::test]
async fn a_backend_that_refuses_percentiles_is_asked_again_without_them() {
    let rule = mock!(Client::get_metric_data)
        .sequence()
        .http_status(500, Some("<html>Internal Server Error</html>".into()))
        .build();
    let ok = mock!(Client::get_metric_data).then_compute_output(|req| answer(req, None));
    let cw = mock_client!(
        aws_sdk_cloudwatch,
        RuleMode::Sequential,
        &[&rule, &ok],
        |c| { c.retry_config(RetryConfig::disabled()) }
    );
    let c = clients(cw);
    let (series, report) = fetch(&c, lambda_queries(&[function("a")], true), WINDOW)
        .await
        .expect("fetch");
    assert_eq!(report.calls, 2);
    let why = report.percentiles_unavailable.expect("reason given");
    assert!(why.contains("500"), "{why}");
    assert_eq!(report.queries, 12);
    let m = lambda_metrics(&series, 0, 1024);
    assert_eq!(m.duration_p99_ms, None);
    assert_eq!(m.duration_max_ms, Some(900.0));
}

#[tokio::test]
async fn next_token_pages_are_followed_and_merged() {
    let first = mock!(Client::get_metric_data)
        .match_requests(|req| req.next_token().is_none())
        .then_compute_output(|req| {
            let mut out = answer(req, Some(&["f0_inv", "f0_davg"]));
            out.next_token = Some("page-2".into());
            out
        });
    let second = mock!(Client::get_metric_data)
        .match_requests(|req| req.next_token() == Some("page-2"))
        .then_compute_output(|req| answer(req, Some(&["f0_dmax", "f0_dn"])));
    let cw = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, &[&first, &second]);
    let c = clients(cw);
    let (fetched, calls) =
        trimtab_aws::counted(fetch(&c, lambda_queries(&[function("a")], false), WINDOW)).await;
    let (series, report) = fetched.expect("fetch");
    assert_eq!(report.calls, 2);
    let m = lambda_metrics(&series, 0, 1024);
    assert_eq!(m.invocations, 5000.0);
    assert_eq!(m.duration_max_ms, Some(900.0));
    assert_eq!(calls.get("cloudwatch:GetMetricData"), Some(&2));
}

/// The answer to every query of `queries`, as [`answer`] gives it.
fn answer_all(queries: &[trimtab_aws::metrics::Query]) -> GetMetricDataOutput {
    let results = queries
        .iter()
        .map(|q| {
            let value = match q.stat {
                "p99" => 610.0,
                "Maximum" => 900.0,
                "SampleCount" | "Sum" => 5000.0,
                _ => 100.0,
            };
            MetricDataResult::builder()
                .id(&q.id)
                .timestamps(DateTime::from_secs(1_700_000_000))
                .values(value)
                .status_code(StatusCode::Complete)
                .build()
        })
        .collect();
    GetMetricDataOutput::builder()
        .set_metric_data_results(Some(results))
        .build()
}

const THROTTLED: &str = "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>";

#[tokio::test]
async fn a_throttled_percentile_query_is_retried_not_taken_as_refused() {
    let queries = lambda_queries(&[function("a")], true);
    let all = queries.clone();
    let rule = mock!(Client::get_metric_data)
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .times(2)
        .output(move || answer_all(&all))
        .build();
    let retries = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(std::time::Duration::from_millis(1));
    let cw = mock_client!(aws_sdk_cloudwatch, RuleMode::Sequential, &[&rule], |c| {
        c.retry_config(retries.clone())
    });
    let (fetched, calls) = trimtab_aws::counted(fetch(&clients(cw), queries, WINDOW)).await;
    let (series, report) = fetched.expect("fetch after retries");
    assert_eq!(report.percentiles_unavailable, None);
    assert_eq!(
        lambda_metrics(&series, 0, 1024).duration_p99_ms,
        Some(610.0)
    );
    // Three attempts of one call, each counted.
    assert_eq!(calls.get("cloudwatch:GetMetricData"), Some(&3));

    // Throttled past the retries: an error that says so, not a silent fallback to maxima.
    let rule = mock!(Client::get_metric_data)
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .times(3)
        .build();
    let cw = mock_client!(aws_sdk_cloudwatch, RuleMode::Sequential, &[&rule], |c| {
        c.retry_config(retries.clone())
    });
    let err = fetch(&clients(cw), lambda_queries(&[function("a")], true), WINDOW)
        .await
        .expect_err("throttled");
    assert_eq!(err.kind, trimtab_aws::ErrorKind::Throttled);
}

#[tokio::test]
async fn other_failures_are_errors_that_name_the_operation() {
    let rule = mock!(Client::get_metric_data)
        .sequence()
        .http_status(403, Some("<ErrorResponse><Error><Code>AccessDenied</Code><Message>no</Message></Error></ErrorResponse>".into()))
        .build();
    let cw = mock_client!(aws_sdk_cloudwatch, RuleMode::Sequential, &[&rule], |c| {
        c.retry_config(RetryConfig::disabled())
    });
    let err = fetch(
        &clients(cw),
        lambda_queries(&[function("a")], false),
        WINDOW,
    )
    .await
    .expect_err("fails");
    assert_eq!(err.operation, "cloudwatch:GetMetricData");
    assert!(err.message.contains("AccessDenied"), "{}", err.message);
}
