//! Trimtab's adapter layer: every AWS call the control plane makes goes through here.
//!
//! Architecture Invariant: this is the only library crate that depends on `aws-sdk-*`. It turns
//! AWS answers into the plain structs of `trimtab-core` and back; it holds no policy. Clients come
//! from the standard configuration chain (`AWS_ENDPOINT_URL`, `AWS_REGION`, credentials, profiles):
//! nothing about any endpoint is hard-coded.

pub mod changes;
pub mod costs;
pub mod decisions;
pub mod dynamodb;
pub mod inventory;
pub mod logs;
pub mod metrics;
pub mod monitoring;

use std::collections::BTreeMap;
use std::sync::Mutex;

pub use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// A failed AWS call: which operation, on what, and AWS's own words.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed for {resource}: {message}")]
pub struct AwsError {
    pub operation: &'static str,
    pub resource: String,
    pub message: String,
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
        let message = match &err {
            SdkError::ServiceError(_) => match (err.code(), err.message()) {
                (Some(code), Some(msg)) => format!("{code}: {msg}"),
                (Some(code), None) => code.to_owned(),
                _ => format!("HTTP {}", status.unwrap_or_default()),
            },
            SdkError::ResponseError(_) => {
                format!("unreadable response (HTTP {})", status.unwrap_or_default())
            }
            SdkError::TimeoutError(_) => "timed out".to_owned(),
            SdkError::DispatchFailure(_) => {
                format!("could not send the request: {}", DisplayErrorContext(&err))
            }
            _ => format!("{}", DisplayErrorContext(&err)),
        };
        Self {
            operation,
            resource: resource.into(),
            message,
        }
    }
}

/// Loads the SDK configuration from the standard chain.
pub async fn load_config() -> SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// The service clients a job needs, built once per process, and a count of the calls made
/// through them, so every report can say what it cost to produce.
#[derive(Debug)]
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
    pub region: Option<String>,
    calls: Mutex<BTreeMap<&'static str, u64>>,
}

impl Clients {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            lambda: aws_sdk_lambda::Client::new(config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(config),
            logs: aws_sdk_cloudwatchlogs::Client::new(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            autoscaling: aws_sdk_applicationautoscaling::Client::new(config),
            costexplorer: aws_sdk_costexplorer::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            apigateway: aws_sdk_apigateway::Client::new(config),
            apigatewayv2: aws_sdk_apigatewayv2::Client::new(config),
            region: config.region().map(ToString::to_string),
            calls: Mutex::new(BTreeMap::new()),
        }
    }

    /// Replaces the Lambda client (tests use one built on the SDK's mock interceptor).
    pub fn with_lambda(mut self, lambda: aws_sdk_lambda::Client) -> Self {
        self.lambda = lambda;
        self
    }

    /// Replaces the CloudWatch client.
    pub fn with_cloudwatch(mut self, cloudwatch: aws_sdk_cloudwatch::Client) -> Self {
        self.cloudwatch = cloudwatch;
        self
    }

    /// Replaces the Application Auto Scaling client.
    pub fn with_autoscaling(mut self, autoscaling: aws_sdk_applicationautoscaling::Client) -> Self {
        self.autoscaling = autoscaling;
        self
    }

    /// Counts one request to `operation` (`service:Operation`).
    pub(crate) fn record(&self, operation: &'static str) {
        if let Ok(mut calls) = self.calls.lock() {
            *calls.entry(operation).or_default() += 1;
        }
    }

    /// Requests made so far, per operation.
    pub fn calls(&self) -> BTreeMap<&'static str, u64> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}
