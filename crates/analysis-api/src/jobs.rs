//! The registry of jobs: every job configured once, run by kind. The API and `trimtab invoke`
//! both go through it; each Lambda's `main.rs` runs its one job through `serve_job`. Adding a
//! job is its crate, one `Kind`, and one line in [`each_job!`].

use serde_json::Value;
use trimtab_aws::Clients;
use trimtab_lambda::{FailureKind, Invocation, Job, JobFailure};

use crate::router::Kind;

/// Every job's configuration, read once (a cold start, or a CLI run).
#[derive(Debug)]
pub struct Jobs {
    pub rightsizing: rightsizing::JobConfig,
    pub dynamodb: dynamodb_scaling::JobConfig,
    pub cost: cost_analysis::JobConfig,
    pub performance: performance_monitor::JobConfig,
    /// The decision table they share (`TRIMTAB_TABLE`).
    pub table: Option<String>,
}

/// Runs `$body` with `$J` the job type of `$kind` (and `$config` its configuration in `$jobs`).
/// The registry: one line per job.
macro_rules! each_job {
    ($kind:expr, |$J:ident| $body:expr) => {
        match $kind {
            Kind::Rightsizing => {
                type $J = rightsizing::RightSizing;
                $body
            }
            Kind::Dynamodb => {
                type $J = dynamodb_scaling::DynamoDbScaling;
                $body
            }
            Kind::Cost => {
                type $J = cost_analysis::CostAnalysis;
                $body
            }
            Kind::Performance => {
                type $J = performance_monitor::PerformanceMonitor;
                $body
            }
        }
    };
    ($kind:expr, $jobs:expr, |$J:ident, $config:ident| $body:expr) => {
        match $kind {
            Kind::Rightsizing => {
                type $J = rightsizing::RightSizing;
                let $config = &$jobs.rightsizing;
                $body
            }
            Kind::Dynamodb => {
                type $J = dynamodb_scaling::DynamoDbScaling;
                let $config = &$jobs.dynamodb;
                $body
            }
            Kind::Cost => {
                type $J = cost_analysis::CostAnalysis;
                let $config = &$jobs.cost;
                $body
            }
            Kind::Performance => {
                type $J = performance_monitor::PerformanceMonitor;
                let $config = &$jobs.performance;
                $body
            }
        }
    };
}

/// A job's failure, kind and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl<E: JobFailure> From<E> for Failure {
    fn from(e: E) -> Self {
        Self {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

impl Jobs {
    /// Each job's configuration from the environment; `table` overrides `TRIMTAB_TABLE`.
    pub fn from_env(region: Option<&str>, table: Option<String>) -> Result<Self, String> {
        let mut jobs = Self {
            rightsizing: rightsizing::RightSizing::configure(region)?,
            dynamodb: dynamodb_scaling::DynamoDbScaling::configure(region)?,
            cost: cost_analysis::CostAnalysis::configure(region)?,
            performance: performance_monitor::PerformanceMonitor::configure(region)?,
            table: table.or_else(|| trimtab_lambda::setting("TRIMTAB_TABLE")),
        };
        jobs.rightsizing.table_name = jobs.table.clone();
        jobs.dynamodb.table_name = jobs.table.clone();
        jobs.cost.table_name = jobs.table.clone();
        jobs.performance.table_name = jobs.table.clone();
        Ok(jobs)
    }

    /// The kind of the function with this logical ID in `template.yaml`.
    pub fn kind_of(logical_id: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| each_job!(*k, |J| J::LOGICAL_ID) == logical_id)
    }

    /// The logical ID in `template.yaml` of the function that runs `kind`.
    pub fn logical_id(kind: Kind) -> &'static str {
        each_job!(kind, |J| J::LOGICAL_ID)
    }

    /// The function's `Timeout` in `template.yaml`.
    pub fn timeout(kind: Kind) -> std::time::Duration {
        each_job!(kind, |J| J::TIMEOUT)
    }

    /// Checks an event for `kind` without running it.
    pub fn validate(&self, kind: Kind, payload: &Value) -> Result<(), Failure> {
        each_job!(kind, self, |J, config| J::validate(config, payload)
            .map_err(|e| Failure {
                kind: FailureKind::InvalidEvent,
                message: e.to_string(),
            }))
    }

    /// One invocation of `kind`'s job: its own event, or the async run `payload` carries.
    pub async fn invoke(
        &self,
        kind: Kind,
        clients: &Clients,
        invocation: Invocation,
        payload: Value,
    ) -> Result<Value, Failure> {
        let table = self.table.as_deref();
        each_job!(kind, self, |J, config| {
            Box::pin(trimtab_lambda::invoke::<J>(
                clients, config, table, invocation, payload,
            ))
            .await
            .map_err(Failure::from)
        })
    }
}
