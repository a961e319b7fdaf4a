//! Trimtab's adapter layer: every AWS call the control plane makes goes through here.
//!
//! Architecture Invariant: this is the only library crate that depends on `aws-sdk-*`. It turns
//! AWS answers into the plain structs of `trimtab-core` and back; it holds no policy. Clients come
//! from the standard configuration chain (`AWS_ENDPOINT_URL`, `AWS_REGION`, credentials, profiles):
//! nothing about any endpoint is hard-coded.

pub mod calls;
pub mod canary;
pub mod changes;
pub mod costs;
pub mod decisions;
pub mod dynamodb;
pub mod inventory;
pub mod invoke;
pub mod logs;
pub mod metrics;
pub mod monitoring;
pub mod schema;

use std::time::Duration;

pub use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;

pub use calls::{CallCounts, counted};

/// What kind of failure an AWS call met: what the caller may conclude about the state of the
/// resource, and whether trying again later can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Throttled after the SDK's own retries (`Throttling`, `ThrottlingException`,
    /// `TooManyRequestsException`, HTTP 429, ...). Nothing changed.
    Throttled,
    /// The resource does not exist (`ResourceNotFoundException`, `ObjectNotFoundException`, 404).
    NotFound,
    /// IAM said no (`AccessDenied*`, 403): for Trimtab, usually the `trimtab:lock` deny.
    AccessDenied,
    /// Another change is in progress (`ResourceConflictException` 409,
    /// `ConcurrentUpdateException`).
    Conflict,
    /// A `RevisionId` precondition failed (`PreconditionFailedException`, 412): the resource
    /// changed since it was read.
    PreconditionFailed,
    /// A DynamoDB condition expression was false.
    ConditionFailed,
    /// No answer: timed out, or the connection failed or broke. A write may or may not have
    /// happened.
    NoAnswer,
    /// Anything else AWS refused (validation, limits, server errors after retries).
    Other,
}

/// A failed AWS call: which operation, on what, and AWS's own words.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} failed for {resource}: {message}")]
pub struct AwsError {
    pub operation: &'static str,
    pub resource: String,
    pub message: String,
    /// AWS's error code (`ResourceConflictException`), when the service answered with one.
    pub code: Option<String>,
    pub kind: ErrorKind,
}

/// Error codes the SDK treats as throttling (aws-runtime's list), and Lambda's 429.
const THROTTLING_CODES: [&str; 10] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
];

pub(crate) fn classify(code: Option<&str>, status: Option<u16>) -> ErrorKind {
    match (code.unwrap_or_default(), status.unwrap_or_default()) {
        (c, s) if THROTTLING_CODES.contains(&c) || s == 429 => ErrorKind::Throttled,
        ("ConditionalCheckFailedException", _) => ErrorKind::ConditionFailed,
        ("PreconditionFailedException", _) | (_, 412) => ErrorKind::PreconditionFailed,
        ("ResourceConflictException" | "ConcurrentUpdateException", _) | (_, 409) => {
            ErrorKind::Conflict
        }
        (c, s) if c.starts_with("AccessDenied") || c == "UnauthorizedOperation" || s == 403 => {
            ErrorKind::AccessDenied
        }
        (c, s) if c.ends_with("NotFoundException") || c == "ResourceNotFound" || s == 404 => {
            ErrorKind::NotFound
        }
        _ => ErrorKind::Other,
    }
}

impl AwsError {
    /// Condenses an SDK error into AWS's code and message, or what went wrong on the way there.
    pub fn new<E>(
        operation: &'static str,
        resource: impl Into<String>,
        err: SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().map(ToOwned::to_owned);
        let (message, kind) = match &err {
            SdkError::ServiceError(_) => (
                match (err.code(), err.message()) {
                    (Some(code), Some(msg)) => format!("{code}: {msg}"),
                    (Some(code), None) => code.to_owned(),
                    _ => format!("HTTP {}", status.unwrap_or_default()),
                },
                classify(err.code(), status),
            ),
            SdkError::ResponseError(_) => (
                format!("unreadable response (HTTP {})", status.unwrap_or_default()),
                ErrorKind::NoAnswer,
            ),
            SdkError::TimeoutError(_) => ("timed out".to_owned(), ErrorKind::NoAnswer),
            SdkError::DispatchFailure(_) => (
                format!("could not send the request: {}", DisplayErrorContext(&err)),
                ErrorKind::NoAnswer,
            ),
            _ => (format!("{}", DisplayErrorContext(&err)), ErrorKind::Other),
        };
        Self {
            operation,
            resource: resource.into(),
            message,
            code,
            kind,
        }
    }

    /// An error found in an answer rather than raised by the SDK (a field missing, say).
    pub fn invalid(
        operation: &'static str,
        resource: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            operation,
            resource: resource.into(),
            message: message.into(),
            code: None,
            kind: ErrorKind::Other,
        }
    }

    pub fn is(&self, kind: ErrorKind) -> bool {
        self.kind == kind
    }
}

/// Who the credentials belong to (STS `GetCallerIdentity`, which needs no permission): the
/// `requested_by` of an operator's run.
pub async fn caller_identity(c: &Clients) -> Result<String, AwsError> {
    let out = c
        .sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| AwsError::new("sts:GetCallerIdentity", "caller", e))?;
    Ok(out.arn().unwrap_or("unknown").to_owned())
}

/// Loads the SDK configuration from the standard chain.
pub async fn load_config() -> SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Retries: adaptive mode (standard retries plus client-side rate limiting once AWS throttles),
/// up to 5 attempts per call. Control-plane rate limits are per account and shared with everyone
/// else's tooling, so backing off is the polite and the effective answer.
pub fn retry_config() -> RetryConfig {
    RetryConfig::adaptive()
        .with_max_attempts(5)
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(10))
}

/// Timeouts: the SDK sets none but the connect timeout by default, so a hung connection would
/// hang a run until Lambda kills it mid-protocol. A control-plane call may take 30 s an attempt,
/// 90 s with its retries.
pub fn timeout_config() -> TimeoutConfig {
    timeouts(Duration::from_secs(30), Duration::from_secs(90))
}

/// CloudWatch's: one `GetMetricData` carries up to 500 queries and 100,800 datapoints, and a
/// retry of it costs as much again, so an attempt may take 2 minutes.
pub fn metrics_timeout_config() -> TimeoutConfig {
    timeouts(Duration::from_secs(120), Duration::from_secs(300))
}

fn timeouts(attempt: Duration, operation: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(3100))
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation)
        .build()
}

/// Builds a service client from `sdk` with Trimtab's retries, timeouts and request counting.
macro_rules! client {
    ($krate:ident, $sdk:expr) => {
        client!($krate, $sdk, timeout_config())
    };
    ($krate:ident, $sdk:expr, $timeouts:expr) => {
        $krate::Client::from_conf(
            $krate::config::Builder::from($sdk)
                .retry_config(retry_config())
                .timeout_config($timeouts)
                .interceptor(calls::CountCalls)
                .build(),
        )
    };
}

/// Adds request counting to a client built elsewhere (tests build theirs on the SDK's mocks).
macro_rules! counting {
    ($krate:ident, $client:expr) => {
        $krate::Client::from_conf(
            $client
                .config()
                .to_builder()
                .interceptor(calls::CountCalls)
                .build(),
        )
    };
}

/// The service clients a job needs, built once per process (cheap to clone: each is a handle).
/// Every request made through them is counted per invocation (see [`calls`]).
#[derive(Debug, Clone)]
pub struct Clients {
    pub lambda: aws_sdk_lambda::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub autoscaling: aws_sdk_applicationautoscaling::Client,
    pub costexplorer: aws_sdk_costexplorer::Client,
    pub sns: aws_sdk_sns::Client,
    pub apigateway: aws_sdk_apigateway::Client,
    pub apigatewayv2: aws_sdk_apigatewayv2::Client,
    pub sts: aws_sdk_sts::Client,
    pub region: Option<String>,
}

impl Clients {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            lambda: client!(aws_sdk_lambda, config),
            cloudwatch: client!(aws_sdk_cloudwatch, config, metrics_timeout_config()),
            logs: client!(aws_sdk_cloudwatchlogs, config),
            dynamodb: client!(aws_sdk_dynamodb, config),
            autoscaling: client!(aws_sdk_applicationautoscaling, config),
            costexplorer: client!(aws_sdk_costexplorer, config),
            sns: client!(aws_sdk_sns, config),
            apigateway: client!(aws_sdk_apigateway, config),
            apigatewayv2: client!(aws_sdk_apigatewayv2, config),
            sts: client!(aws_sdk_sts, config),
            region: config.region().map(ToString::to_string),
        }
    }

    /// Replaces the Lambda client (tests use one built on the SDK's mock interceptor).
    pub fn with_lambda(mut self, lambda: aws_sdk_lambda::Client) -> Self {
        self.lambda = counting!(aws_sdk_lambda, lambda);
        self
    }

    /// Replaces the CloudWatch client.
    pub fn with_cloudwatch(mut self, cloudwatch: aws_sdk_cloudwatch::Client) -> Self {
        self.cloudwatch = counting!(aws_sdk_cloudwatch, cloudwatch);
        self
    }

    /// Replaces the Application Auto Scaling client.
    pub fn with_autoscaling(mut self, autoscaling: aws_sdk_applicationautoscaling::Client) -> Self {
        self.autoscaling = counting!(aws_sdk_applicationautoscaling, autoscaling);
        self
    }

    /// Replaces the Cost Explorer client.
    pub fn with_costexplorer(mut self, costexplorer: aws_sdk_costexplorer::Client) -> Self {
        self.costexplorer = counting!(aws_sdk_costexplorer, costexplorer);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_classified_as_the_caller_needs() {
        let k = |code: &str, status: u16| classify(Some(code), Some(status));
        assert_eq!(k("TooManyRequestsException", 429), ErrorKind::Throttled);
        assert_eq!(k("Throttling", 400), ErrorKind::Throttled);
        assert_eq!(k("ResourceConflictException", 409), ErrorKind::Conflict);
        assert_eq!(
            k("PreconditionFailedException", 412),
            ErrorKind::PreconditionFailed
        );
        assert_eq!(k("AccessDeniedException", 403), ErrorKind::AccessDenied);
        assert_eq!(k("ResourceNotFoundException", 404), ErrorKind::NotFound);
        assert_eq!(
            k("ProvisionedConcurrencyConfigNotFoundException", 404),
            ErrorKind::NotFound
        );
        assert_eq!(k("ObjectNotFoundException", 400), ErrorKind::NotFound);
        assert_eq!(
            k("ConditionalCheckFailedException", 400),
            ErrorKind::ConditionFailed
        );
        assert_eq!(k("ValidationException", 400), ErrorKind::Other);
        assert_eq!(classify(None, Some(500)), ErrorKind::Other);
    }
}
