//! The right-sizing job: which functions, what they measured, what memory, timeout and
//! concurrency each should have, and (in apply mode) carrying that out safely. `handle` is the
//! Lambda handler; `trimtab invoke RightSizingFunction` calls the same function in-process.

mod act;
mod analysis;
mod canary;
mod job;
mod protocol;
mod provision;
mod request;
mod undo;

use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;
use trimtab_act::Invocation;
use trimtab_aws::calls::OwnRequests;
use trimtab_aws::{AwsError, Clients};
use trimtab_core::pricing::PriceTable;
use trimtab_core::records::DecisionRecord;
use trimtab_core::rightsizing::{FleetTotals, Recommendation, Strategy};
use trimtab_lambda::{EventError, FailureKind, Job, Mode, Trigger, parse_trigger};

pub use act::VerificationRow;
pub use job::run;
pub use request::{Action, Command, Plan, Request};
pub use trimtab_core::tags::ALIAS_TAG;
pub use trimtab_core::tags::LOCK_TAG;
pub use undo::{RollbackReport, history, rollback};

/// The right-sizing job, as `main.rs`, `trimtab invoke` and the API run it.
#[derive(Debug, Clone, Copy)]
pub struct RightSizing;

impl Job for RightSizing {
    const KIND: &'static str = "rightsizing";
    const LOGICAL_ID: &'static str = "RightSizingFunction";
    const TIMEOUT: Duration = Duration::from_secs(900);
    type Config = JobConfig;
    type Error = JobError;

    fn configure(region: Option<&str>) -> Result<JobConfig, String> {
        JobConfig::from_env(region)
    }

    fn validate(_config: &JobConfig, payload: &Value) -> Result<(), EventError> {
        let trigger: Trigger<Request> = parse_trigger(payload.clone())?;
        let mode = trigger.request().mode.unwrap_or_default();
        trigger.request().command(mode).map(|_| ())
    }

    async fn handle(
        clients: &Clients,
        config: &JobConfig,
        invocation: &Invocation,
        payload: Value,
    ) -> Result<Value, JobError> {
        // Boxed: the protocol's futures nest deep enough to strain layout computation.
        Box::pin(handle(clients, config, invocation, payload)).await
    }
}

/// Per-process configuration, read once at start from the function's environment.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// The mode scheduled runs use (`TRIMTAB_MODE`).
    pub configured_mode: Mode,
    pub prices: PriceTable,
    /// Said in every report when the price table is not the region's own.
    pub price_note: Option<String>,
    /// The decision table (`TRIMTAB_TABLE`): audit records and the run lease. Apply, rollback
    /// and history need it.
    pub table_name: Option<String>,
    /// The functions apply mode may change (`TRIMTAB_MANAGED_PATTERN`, IAM wildcards; the
    /// template's `ManagedFunctionPattern`, which its role's permissions also name).
    pub managed_pattern: String,
}

impl JobConfig {
    /// `TRIMTAB_MODE`, `TRIMTAB_TABLE`; `TRIMTAB_PRICE_TABLE` (JSON, a [`PriceTable`]) overrides
    /// the built-in prices of the region.
    pub fn from_env(region: Option<&str>) -> Result<Self, String> {
        let configured_mode = Mode::configured();
        let region = region.unwrap_or("us-east-1");
        let (prices, price_note) = match trimtab_lambda::setting("TRIMTAB_PRICE_TABLE") {
            Some(json) => (
                serde_json::from_str(&json)
                    .map_err(|e| format!("TRIMTAB_PRICE_TABLE is not a price table: {e}"))?,
                None,
            ),
            None => match PriceTable::for_region(region) {
                Some(p) => (p, None),
                None => (
                    PriceTable::us_east_1(),
                    Some(format!(
                        "no built-in price table for {region}: us-east-1 list prices used; set TRIMTAB_PRICE_TABLE"
                    )),
                ),
            },
        };
        let table_name = trimtab_lambda::setting("TRIMTAB_TABLE");
        Ok(Self {
            configured_mode,
            prices,
            price_note,
            table_name,
            managed_pattern: trimtab_lambda::setting("TRIMTAB_MANAGED_PATTERN")
                .unwrap_or_else(|| "*".to_owned()),
        })
    }

    /// A configuration for tests and tools: recommend mode, us-east-1 prices.
    pub fn with_table(table_name: Option<String>) -> Self {
        Self {
            configured_mode: Mode::Recommend,
            prices: PriceTable::us_east_1(),
            price_note: None,
            table_name,
            managed_pattern: "*".to_owned(),
        }
    }
}

/// Why a run failed as a whole (one function failing is reported in its row instead).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    InvalidEvent(#[from] EventError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("{0} needs the decision table: set TRIMTAB_TABLE")]
    NoDecisionTable(&'static str),
    #[error("{0}")]
    NotFound(String),
    /// Refused in the present state (another run holds the lease; a superseded record).
    #[error("{0}")]
    Refused(String),
}

impl JobError {
    /// The `errorType` of the Lambda error shape.
    pub fn error_type(&self) -> &'static str {
        trimtab_lambda::JobFailure::error_type(self)
    }
}

impl trimtab_lambda::JobFailure for JobError {
    fn kind(&self) -> FailureKind {
        match self {
            Self::InvalidEvent(_) => FailureKind::InvalidEvent,
            Self::Aws(_) => FailureKind::Aws,
            Self::NoDecisionTable(_) => FailureKind::Configuration,
            Self::NotFound(_) => FailureKind::NotFound,
            Self::Refused(_) => FailureKind::Refused,
        }
    }
}

/// The whole report of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub job: &'static str,
    pub run_id: String,
    pub mode: Mode,
    pub strategy: Strategy,
    pub lookback_days: u32,
    pub window_start_epoch_s: i64,
    pub window_end_epoch_s: i64,
    pub region: Option<String>,
    /// Who asked for the run: the schedule, an API caller, an operator.
    pub requested_by: Option<String>,
    /// Set when the run did nothing because another run held the lease.
    pub skipped: Option<String>,
    pub functions: Vec<Recommendation>,
    pub totals: FleetTotals,
    /// Earlier changes judged by this run.
    pub verifications: Vec<VerificationRow>,
    /// Records left pending by an interrupted run, and what they turned out to be.
    pub reconciled: Vec<DecisionRecord>,
    /// The requests this run made (retries included) and what they cost: `api_calls`,
    /// `own_cost_usd`, `own_cost`.
    #[serde(flatten)]
    pub requests: OwnRequests,
    pub metric_queries: usize,
    pub notes: Vec<String>,
    /// The account's concurrency quota (`GetAccountSettings`) against the trend of its daily
    /// peak concurrency: the day it is forecast to reach 80%, if within 90 days.
    pub capacity_risk: Option<trimtab_core::quota::CapacityRisk>,
}

/// The Lambda handler: parses the trigger, runs the command, returns its result as JSON.
pub async fn handle(
    clients: &Clients,
    config: &JobConfig,
    invocation: &Invocation,
    payload: Value,
) -> Result<Value, JobError> {
    let trigger: Trigger<Request> = parse_trigger(payload)?;
    let mut notes = Vec::new();
    // A schedule runs in the configured mode; a direct invoke (which IAM authorised) may ask.
    if let Trigger::Scheduled { request, .. } = &trigger
        && request.mode.is_some_and(|m| m != config.configured_mode)
    {
        notes.push("mode in the scheduled event ignored: schedules use TRIMTAB_MODE".to_owned());
    }
    let mode = trigger.mode(config.configured_mode, |r| r.mode);
    let invocation = Invocation {
        requested_by: Some(trigger.requested_by(invocation.requested_by.as_deref())),
        ..invocation.clone()
    };
    let now = SystemTime::now();
    let value = match trigger.request().command(mode)? {
        Command::Run(plan) => {
            let mut report = run(clients, config, &invocation, &plan, now).await?;
            report.notes.splice(0..0, notes);
            serde_json::to_value(report)
        }
        Command::Rollback {
            function_name,
            record_id,
            force,
        } => {
            let report = rollback(
                clients,
                config,
                &invocation,
                &function_name,
                record_id.as_deref(),
                force,
                now,
            )
            .await?;
            serde_json::to_value(report)
        }
        Command::History { function_name } => {
            let records = history(clients, config, &function_name).await?;
            serde_json::to_value(serde_json::json!({
                "job": "rightsizing", "action": "history", "function_name": function_name, "records": records
            }))
        }
    };
    Ok(value.unwrap_or(Value::Null))
}
