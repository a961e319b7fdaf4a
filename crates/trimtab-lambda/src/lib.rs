//! What every Trimtab Lambda shares: the closed set of triggers a job accepts, run modes, the
//! error a bad event gets, JSON logging, and the runtime loop of a job's binary.
//!
//! Architecture Invariant: only the Lambda crates (this one and the function crates) know event
//! JSON. Nothing here calls AWS: `serve_job` only builds the adapter's clients for the job.

pub mod zone;

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
pub use trimtab_act::{Deadline, Invocation};
pub use trimtab_core::environment::Environment;

/// Whether a run may change anything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Read-only: analyse and report.
    #[default]
    Recommend,
    /// Carry out the recommendations that pass every guard.
    Apply,
}

impl Mode {
    /// Reads the mode a function is configured with (`TRIMTAB_MODE`); anything but `apply` is
    /// `recommend`, so a typo can only make a run safer.
    pub fn from_configuration(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            Some("apply") => Self::Apply,
            _ => Self::Recommend,
        }
    }

    /// The mode as events and reports spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Recommend => "recommend",
            Self::Apply => "apply",
        }
    }

    /// The mode this function is configured with.
    pub fn configured() -> Self {
        Self::from_configuration(setting("TRIMTAB_MODE").as_deref())
    }
}

/// A setting from the function's environment (set by `template.yaml`); unset and empty are the
/// same.
pub fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The environment whose defaults apply when a resource does not say (`TRIMTAB_ENVIRONMENT`,
/// `prod` when unset; the template allows only dev, staging and prod, and anything else is
/// read as prod, the most careful defaults).
pub fn configured_environment() -> Environment {
    setting("TRIMTAB_ENVIRONMENT")
        .and_then(|v| Environment::parse(&v))
        .unwrap_or(Environment::Prod)
}

/// How a job was started.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger<R> {
    /// An EventBridge event (the schedule). Its `detail`, when an object, is the request.
    Scheduled { request: R, rule: Option<String> },
    /// A direct invocation whose payload is the request.
    Direct(R),
}

impl<R> Trigger<R> {
    pub fn request(&self) -> &R {
        match self {
            Self::Scheduled { request, .. } | Self::Direct(request) => request,
        }
    }

    /// The mode this run may use: a schedule's is the function's configuration, never the
    /// event's; a direct invoke (which IAM authorised) may ask, and defaults to recommend.
    pub fn mode(&self, configured: Mode, asked: impl Fn(&R) -> Option<Mode>) -> Mode {
        match self {
            Self::Scheduled { .. } => configured,
            Self::Direct(request) => asked(request).unwrap_or_default(),
        }
    }

    /// Who asked for this run, for its records: the schedule's rule; for a direct invoke the
    /// identity the envelope carried (the API's caller, the CLI's STS identity), else a plain
    /// "direct invoke" (Lambda does not tell a function who invoked it; CloudTrail does).
    pub fn requested_by(&self, carried: Option<&str>) -> String {
        match self {
            Self::Scheduled { rule, .. } => {
                format!("schedule {}", rule.as_deref().unwrap_or("(unnamed rule)"))
            }
            Self::Direct(_) => carried.map_or_else(
                || "direct invoke (caller in CloudTrail)".to_owned(),
                ToOwned::to_owned,
            ),
        }
    }
}

/// Whether runs in this process leave their headline result in the decision table for
/// `GET /status` and the other jobs (`TRIMTAB_RESULTS`, default on). The API's read side sets it
/// `off`: an analysis anyone may request must not stand in for the scheduled runs' results.
pub fn results_kept() -> bool {
    setting("TRIMTAB_RESULTS").as_deref() != Some("off")
}

/// Leaves a job's headline in the decision table (`result#<job>`) for the other jobs and the
/// API, unless there is no table or results are off. A failure costs only the headline: it is
/// returned as a note for the report.
pub async fn leave_headline(
    clients: &trimtab_aws::Clients,
    table: Option<&String>,
    job: &str,
    headline: &Value,
) -> Option<String> {
    let table = table.filter(|_| results_kept())?;
    trimtab_aws::costs::store_result(clients, table, job, headline)
        .await
        .err()
        .map(|e| format!("result not stored for other jobs: {e}"))
}

/// A request's environment (`field` names where it came from), or `configured` when it names
/// none.
pub fn environment(
    field: &str,
    value: Option<&str>,
    configured: Environment,
) -> Result<Environment, EventError> {
    match value {
        None => Ok(configured),
        Some(v) => Environment::parse(v).ok_or_else(|| {
            EventError::new(field, format!("must be dev, staging or prod, got {v:?}"))
        }),
    }
}

/// A bad event: which field, and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid event: {field}: {message}")]
pub struct EventError {
    /// Dotted path of the offending field (`.` for the whole event).
    pub field: String,
    pub message: String,
}

impl EventError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Parses a request body, naming the field on any error.
pub fn parse_request<R: DeserializeOwned>(value: Value) -> Result<R, EventError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        EventError::new(path, e.into_inner().to_string())
    })
}

/// Parses a payload into a trigger: an EventBridge envelope (recognised by `detail-type` and
/// `source`) or the request itself. An empty or missing `detail` means every default.
pub fn parse_trigger<R: DeserializeOwned + Default>(
    payload: Value,
) -> Result<Trigger<R>, EventError> {
    let is_eventbridge = payload.get("detail-type").is_some() && payload.get("source").is_some();
    if !is_eventbridge {
        if !payload.is_object() {
            return Err(EventError::new(
                ".",
                format!("expected a JSON object, got {}", kind(&payload)),
            ));
        }
        return parse_request(payload).map(Trigger::Direct);
    }
    let event: EventBridgeEvent<Value> = serde_json::from_value(payload)
        .map_err(|e| EventError::new(".", format!("not a valid EventBridge event: {e}")))?;
    let rule = event.resources.as_ref().and_then(|r| r.first().cloned());
    let request = match event.detail {
        Value::Null => R::default(),
        Value::Object(ref m) if m.is_empty() => R::default(),
        Value::Object(_) => parse_request(event.detail).map_err(|e| EventError {
            field: format!("detail.{}", e.field),
            message: e.message,
        })?,
        other => {
            return Err(EventError::new(
                "detail",
                format!("expected an object, got {}", kind(&other)),
            ));
        }
    };
    Ok(Trigger::Scheduled { request, rule })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// How a job failed, as callers need to tell: the API's status code, the CLI's `errorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The event is malformed or asks for something invalid (names the field).
    InvalidEvent,
    /// What the event names does not exist (a function, a record).
    NotFound,
    /// Refused in the present state: another run holds the lease, a record was superseded.
    Refused,
    /// The function is not configured for what was asked (no decision table, say).
    Configuration,
    /// AWS refused a call the run cannot do without.
    Aws,
    /// A test's injected fault.
    Injected,
}

impl FailureKind {
    /// The `errorType` of the Lambda error shape.
    pub fn error_type(self) -> &'static str {
        match self {
            Self::InvalidEvent => "InvalidEvent",
            Self::NotFound => "NotFound",
            Self::Refused => "Refused",
            Self::Configuration => "Configuration",
            Self::Aws => "AwsError",
            Self::Injected => "InjectedFault",
        }
    }
}

/// A job's failure as Lambda reports it: `errorType` and `errorMessage`.
pub trait JobFailure: std::fmt::Display {
    fn kind(&self) -> FailureKind;
    fn error_type(&self) -> &'static str {
        self.kind().error_type()
    }
}

/// Why a job failed as a whole: a bad event, or AWS refusing a call the run cannot do without
/// (one resource failing is reported in its row instead). Jobs with more ways to fail have
/// their own enum.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    InvalidEvent(#[from] EventError),
    #[error(transparent)]
    Aws(#[from] trimtab_aws::AwsError),
    #[error("{0}")]
    Refused(String),
}

impl JobError {
    /// The `errorType` of the Lambda error shape.
    pub fn error_type(&self) -> &'static str {
        JobFailure::error_type(self)
    }
}

impl JobFailure for JobError {
    fn kind(&self) -> FailureKind {
        match self {
            Self::InvalidEvent(_) => FailureKind::InvalidEvent,
            Self::Aws(_) => FailureKind::Aws,
            Self::Refused(_) => FailureKind::Refused,
        }
    }
}

/// One of Trimtab's jobs: what `main.rs`, `trimtab invoke` and the API all run. Adding a job is
/// a crate with one `impl Job` and one line in the registry (`analysis_api::jobs`).
pub trait Job: 'static {
    /// Its name in the API (`/analyses/{kind}`) and in run records.
    const KIND: &'static str;
    /// Its logical ID in `template.yaml`.
    const LOGICAL_ID: &'static str;
    /// Its `Timeout` in `template.yaml`; under `trimtab invoke` the same budget stands in for
    /// Lambda's deadline.
    const TIMEOUT: Duration;
    /// Read once per process (a Lambda cold start) from the function's environment.
    type Config: Send + Sync + 'static;
    type Error: JobFailure + Send + 'static;

    /// `region`: the SDK's region (prices are per region).
    fn configure(region: Option<&str>) -> Result<Self::Config, String>;

    /// Checks an event without running it, so a caller that starts the job asynchronously (the
    /// API) can refuse bad input at once. The default accepts any object.
    fn validate(config: &Self::Config, payload: &Value) -> Result<(), EventError> {
        let _ = config;
        parse_trigger::<Value>(payload.clone()).map(|_| ())
    }

    /// Handles one event.
    fn handle(
        clients: &trimtab_aws::Clients,
        config: &Self::Config,
        invocation: &Invocation,
        payload: Value,
    ) -> impl Future<Output = Result<Value, Self::Error>> + Send;
}

/// A run the API started asynchronously: the job function is invoked with
/// `{"trimtab_run": {...}}` and keeps the run's status and report in the decision table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsyncRun {
    pub run_id: String,
    /// The job, where the function receiving it runs several (the API's own analyses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub requested_by: Option<String>,
    /// The job's own event.
    pub request: Value,
}

impl AsyncRun {
    /// The payload that starts it.
    pub fn payload(&self) -> Value {
        serde_json::json!({ "trimtab_run": self })
    }

    /// The async run in `payload`, if it is one.
    pub fn from_payload(payload: &Value) -> Option<Result<Self, EventError>> {
        let run = payload.as_object()?.get("trimtab_run")?;
        Some(parse_request::<Self>(run.clone()).map_err(|e| EventError {
            field: format!("trimtab_run.{}", e.field),
            message: e.message,
        }))
    }
}

/// Runs an [`AsyncRun`] of job `J`: marks it running, handles its request, and leaves the
/// outcome (report or error) in the decision table for `GET /runs/{id}`. The report is also
/// returned.
pub async fn run_async<J: Job>(
    clients: &trimtab_aws::Clients,
    config: &J::Config,
    table: Option<&str>,
    run: AsyncRun,
    deadline: Deadline,
) -> Result<Value, J::Error> {
    use trimtab_aws::decisions::{DecisionTable, RunState, RunStatus};
    let table = table.map(DecisionTable::new);
    let now = trimtab_act::epoch_s(std::time::SystemTime::now());
    let mut status = RunStatus {
        run_id: run.run_id.clone(),
        kind: J::KIND.to_owned(),
        mode: run.request["mode"]
            .as_str()
            .unwrap_or("recommend")
            .to_owned(),
        state: RunState::Running,
        requested_by: run.requested_by.clone(),
        created_at_epoch_s: now,
        updated_at_epoch_s: now,
        error: None,
    };
    if let Some(t) = &table {
        // A second delivery of the same event finds the run claimed and does nothing.
        let owner = trimtab_act::new_run_id(std::time::SystemTime::now());
        match t.claim_run(clients, &status, &owner).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(run_id = %run.run_id, "run already claimed: a repeated delivery");
                return Ok(serde_json::json!({
                    "run_id": run.run_id,
                    "skipped": "this run was already started by another invocation (a repeated delivery)"
                }));
            }
            Err(e) => tracing::warn!(error = %e, run_id = %run.run_id, "run status not written"),
        }
    }
    let invocation = Invocation {
        deadline,
        requested_by: run.requested_by.clone(),
        run_id: Some(run.run_id.clone()),
    };
    let result = J::handle(clients, config, &invocation, run.request).await;
    status.updated_at_epoch_s = trimtab_act::epoch_s(std::time::SystemTime::now());
    let report = match &result {
        Ok(v) => {
            status.state = RunState::Done;
            Some(v)
        }
        Err(e) => {
            status.state = RunState::Failed;
            status.error = Some(format!("{}: {e}", e.error_type()));
            None
        }
    };
    if let Some(t) = &table
        && let Err(e) = t.put_run(clients, &status, report).await
    {
        tracing::error!(error = %e, run_id = %run.run_id, "run outcome not written");
    }
    result
}

/// Runs one invocation of job `J`: the async run `payload` carries (see [`AsyncRun`]), or the
/// job's own event. What a Lambda does per event, and `trimtab invoke` once.
pub async fn invoke<J: Job>(
    clients: &trimtab_aws::Clients,
    config: &J::Config,
    table: Option<&str>,
    invocation: Invocation,
    payload: Value,
) -> Result<Value, InvokeError<J::Error>> {
    match AsyncRun::from_payload(&payload) {
        Some(Ok(run)) => run_async::<J>(clients, config, table, run, invocation.deadline)
            .await
            .map_err(InvokeError::Job),
        Some(Err(e)) => Err(InvokeError::Event(e)),
        None => J::handle(clients, config, &invocation, payload)
            .await
            .map_err(InvokeError::Job),
    }
}

/// A failed invocation: the job's own error, or an async-run envelope that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError<E: std::fmt::Display> {
    #[error("{0}")]
    Job(E),
    #[error(transparent)]
    Event(EventError),
}

impl<E: JobFailure> JobFailure for InvokeError<E> {
    fn kind(&self) -> FailureKind {
        match self {
            Self::Job(e) => e.kind(),
            Self::Event(_) => FailureKind::InvalidEvent,
        }
    }
}

/// The whole `main` of a job's binary: JSON logging, SDK clients from the standard chain, the
/// job's configuration from its environment (read once, at cold start), then [`invoke`] for
/// every event with its requests counted per invocation and failures in Lambda's error shape.
pub async fn serve_job<J: Job>() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let sdk = trimtab_aws::load_config().await;
    let clients = trimtab_aws::Clients::new(&sdk);
    let config = J::configure(clients.region.as_deref())?;
    let table = setting("TRIMTAB_TABLE");
    let (clients, config, table) = (&clients, &config, &table);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| async move {
            let invocation = Invocation {
                deadline: Deadline::at_epoch_ms(event.context.deadline),
                ..Invocation::default()
            };
            let work = invoke::<J>(clients, config, table.as_deref(), invocation, event.payload);
            trimtab_aws::counted(Box::pin(work))
                .await
                .0
                .map_err(|e| lambda_runtime::Diagnostic {
                    error_type: e.error_type().to_owned(),
                    error_message: e.to_string(),
                })
        },
    ))
    .await
}

/// The error body Lambda returns for a failed invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LambdaErrorBody {
    pub error_type: String,
    pub error_message: String,
}

/// JSON log lines on stderr (Lambda ships both streams to CloudWatch Logs; the CLI keeps stdout
/// for the result). Level from `RUST_LOG`, default `info`. Safe to call twice.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_current_span(false)
        .without_time()
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Req {
        #[serde(default)]
        days: Option<u32>,
    }

    #[test]
    fn direct_scheduled_and_detail_forms() {
        let t: Trigger<Req> = parse_trigger(serde_json::json!({"days": 3})).expect("direct");
        assert_eq!(t, Trigger::Direct(Req { days: Some(3) }));
        let sched = serde_json::json!({
            "version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-24T06:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/daily"], "detail": {}
        });
        let t: Trigger<Req> = parse_trigger(sched.clone()).expect("scheduled");
        assert_eq!(t.request(), &Req::default());
        let mut with_detail = sched;
        with_detail["detail"] = serde_json::json!({"days": "x"});
        let e = parse_trigger::<Req>(with_detail).expect_err("bad detail");
        assert_eq!(e.field, "detail.days");
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_trigger::<Req>(serde_json::json!({"dayz": 3})).expect_err("unknown field");
        assert!(e.message.contains("dayz"), "{e}");
        let e = parse_trigger::<Req>(serde_json::json!({"days": -3})).expect_err("negative");
        assert_eq!(e.field, "days");
        let e = parse_trigger::<Req>(serde_json::json!([1])).expect_err("array");
        assert!(e.message.contains("array"), "{e}");
    }

    #[test]
    fn configured_mode_defaults_to_recommend() {
        assert_eq!(Mode::from_configuration(Some("apply")), Mode::Apply);
        assert_eq!(Mode::from_configuration(Some("aply")), Mode::Recommend);
        assert_eq!(Mode::from_configuration(None), Mode::Recommend);
    }
}

/// CloudWatch Embedded Metric Format: one JSON log line that CloudWatch Logs turns into metrics,
/// for the price of the log line (no `PutMetricData` calls). Written to stderr, which Lambda
/// ships to the same log stream as stdout, so the CLI's stdout stays the handler's JSON.
/// Dimensions are low-cardinality (the job); everything else goes in as properties.
pub fn emf_line(
    namespace: &str,
    job: &str,
    timestamp_ms: u128,
    metrics: &[(&str, f64, &str)],
) -> String {
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|(name, _, unit)| serde_json::json!({"Name": name, "Unit": unit}))
        .collect();
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms as u64,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["Job"]],
                "Metrics": definitions,
            }],
        },
        "Job": job,
    });
    for (name, value, _) in metrics {
        line[*name] = serde_json::json!(value);
    }
    line.to_string()
}

/// Writes an EMF line (see [`emf_line`]) to stderr.
pub fn emit_metrics(namespace: &str, job: &str, metrics: &[(&str, f64, &str)]) {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    eprintln!("{}", emf_line(namespace, job, ms, metrics));
}

#[cfg(test)]
mod emf_tests {
    #[test]
    fn an_emf_line_declares_its_metrics_and_carries_their_values() {
        let line = super::emf_line(
            "Trimtab",
            "cost",
            1_700_000_000_000,
            &[("SpendToDateUsd", 12.5, "None")],
        );
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Trimtab");
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "SpendToDateUsd"
        );
        assert_eq!(v["SpendToDateUsd"], 12.5);
        assert_eq!(v["Job"], "cost");
    }
}
