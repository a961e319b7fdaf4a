//! The right-sizing job: which functions, what they measured, what memory and timeout each
//! should have. `handle` is the Lambda handler; `trimtab invoke RightSizingFunction` calls the
//! same function in-process.

use std::collections::BTreeMap;
use std::time::SystemTime;

use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use trimtab_aws::inventory::{FunctionConfig, FunctionFilter, list_functions};
use trimtab_aws::metrics::{self, Window};
use trimtab_aws::{AwsError, Clients, logs};
use trimtab_core::pricing::PriceTable;
use trimtab_core::rightsizing::{
    FleetTotals, FunctionObservation, MemoryEvidence, Recommendation, Settings, Strategy,
    recommend_fleet, totals,
};
use trimtab_lambda::{EventError, Mode, Trigger, parse_trigger};

/// The right-sizing event. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub mode: Option<Mode>,
    pub strategy: Option<Strategy>,
    /// Days of metrics to judge by (1..=90; default 14).
    pub lookback_days: Option<i64>,
    pub function_name_prefix: Option<String>,
    /// Only these functions.
    pub function_names: Option<Vec<String>>,
    /// Only functions with all of these tags.
    pub tags: Option<BTreeMap<String, String>>,
    /// Largest allowed p99 slowdown in percent (0..=1000; default 10).
    pub latency_guard_pct: Option<f64>,
    /// Memory kept free above peak use, percent of the peak (0..=400; default 20).
    pub memory_headroom_pct: Option<f64>,
    /// Fewest invocations in the window to judge a function (default 100).
    pub min_invocations: Option<u64>,
    /// Ask CloudWatch for p50/p95/p99 of Duration (default true).
    pub percentiles: Option<bool>,
    /// Page budget per function for reading REPORT lines when Lambda Insights is off
    /// (0..=20; default 3; 0 turns the scan off).
    pub log_scan_pages: Option<u32>,
}

/// A request with defaults filled in and ranges checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub mode: Mode,
    pub settings: Settings,
    pub lookback_days: u32,
    pub filter: FunctionFilter,
    pub percentiles: bool,
    pub log_scan_pages: u32,
}

fn range(field: &str, v: f64, lo: f64, hi: f64) -> Result<f64, EventError> {
    if v.is_finite() && (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(EventError::new(
            field,
            format!("must be between {lo} and {hi}, got {v}"),
        ))
    }
}

impl Request {
    /// Validates the request. `mode` is the mode this run is allowed (see [`handle`]).
    pub fn plan(&self, mode: Mode) -> Result<Plan, EventError> {
        let defaults = Settings::default();
        let lookback = self.lookback_days.unwrap_or(14);
        if !(1..=90).contains(&lookback) {
            return Err(EventError::new(
                "lookback_days",
                format!("must be a whole number of days from 1 to 90, got {lookback}"),
            ));
        }
        let pages = self.log_scan_pages.unwrap_or(3);
        if pages > 20 {
            return Err(EventError::new(
                "log_scan_pages",
                format!("must be 0..=20, got {pages}"),
            ));
        }
        if self.function_name_prefix.as_deref() == Some("") {
            return Err(EventError::new(
                "function_name_prefix",
                "must not be empty; omit it for all functions",
            ));
        }
        Ok(Plan {
            mode,
            settings: Settings {
                strategy: self.strategy.unwrap_or(defaults.strategy),
                latency_guard_pct: range(
                    "latency_guard_pct",
                    self.latency_guard_pct.unwrap_or(defaults.latency_guard_pct),
                    0.0,
                    1000.0,
                )?,
                memory_headroom_pct: range(
                    "memory_headroom_pct",
                    self.memory_headroom_pct
                        .unwrap_or(defaults.memory_headroom_pct),
                    0.0,
                    400.0,
                )?,
                min_invocations: self
                    .min_invocations
                    .map_or(defaults.min_invocations, |n| n as f64),
                ..defaults
            },
            lookback_days: lookback as u32,
            filter: FunctionFilter {
                name_prefix: self.function_name_prefix.clone(),
                names: self.function_names.clone().unwrap_or_default(),
                tags: self.tags.clone().unwrap_or_default(),
            },
            percentiles: self.percentiles.unwrap_or(true),
            log_scan_pages: pages,
        })
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
}

impl JobConfig {
    /// `TRIMTAB_MODE`; `TRIMTAB_PRICE_TABLE` (JSON, a [`PriceTable`]) overrides the built-in
    /// prices of the region.
    pub fn from_env(region: Option<&str>) -> Result<Self, String> {
        let configured_mode =
            Mode::from_configuration(std::env::var("TRIMTAB_MODE").ok().as_deref());
        let region = region.unwrap_or("us-east-1");
        let (prices, price_note) = match std::env::var("TRIMTAB_PRICE_TABLE") {
            Ok(json) => (
                serde_json::from_str(&json)
                    .map_err(|e| format!("TRIMTAB_PRICE_TABLE is not a price table: {e}"))?,
                None,
            ),
            Err(_) => match PriceTable::for_region(region) {
                Some(p) => (p, None),
                None => (
                    PriceTable::us_east_1(),
                    Some(format!(
                        "no built-in price table for {region}: us-east-1 list prices used; set TRIMTAB_PRICE_TABLE"
                    )),
                ),
            },
        };
        Ok(Self {
            configured_mode,
            prices,
            price_note,
        })
    }
}

/// Why a run failed as a whole (one function failing is reported in its row instead).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    InvalidEvent(#[from] EventError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("mode \"apply\" is not available yet: right-sizing only recommends")]
    ApplyUnavailable,
}

impl JobError {
    /// The `errorType` of the Lambda error shape.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidEvent(_) => "InvalidEvent",
            Self::Aws(_) => "AwsError",
            Self::ApplyUnavailable => "ApplyUnavailable",
        }
    }
}

/// The whole report of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub job: &'static str,
    pub mode: Mode,
    pub strategy: Strategy,
    pub lookback_days: u32,
    pub window_start_epoch_s: i64,
    pub window_end_epoch_s: i64,
    pub region: Option<String>,
    pub functions: Vec<Recommendation>,
    pub totals: FleetTotals,
    /// AWS requests this run made, per operation.
    pub api_calls: BTreeMap<&'static str, u64>,
    pub metric_queries: usize,
    pub notes: Vec<String>,
}

/// The Lambda handler: parses the trigger, runs the job, returns the report as JSON.
pub async fn handle(
    clients: &Clients,
    config: &JobConfig,
    payload: Value,
) -> Result<Value, JobError> {
    let trigger: Trigger<Request> = parse_trigger(payload)?;
    let mut notes = Vec::new();
    // A schedule runs in the configured mode; a direct invoke (which IAM authorised) may ask.
    let mode = match &trigger {
        Trigger::Scheduled { request, .. } => {
            if request.mode.is_some_and(|m| m != config.configured_mode) {
                notes.push(
                    "mode in the scheduled event ignored: schedules use TRIMTAB_MODE".to_owned(),
                );
            }
            config.configured_mode
        }
        Trigger::Direct(request) => request.mode.unwrap_or_default(),
    };
    let plan = trigger.request().plan(mode)?;
    if plan.mode == Mode::Apply {
        return Err(JobError::ApplyUnavailable);
    }
    let mut report = run(clients, config, &plan, SystemTime::now()).await?;
    report.notes.splice(0..0, notes);
    Ok(serde_json::to_value(report).unwrap_or(Value::Null))
}

/// Gathers, judges, reports. Reads nothing from the event: the plan says everything.
pub async fn run(
    clients: &Clients,
    config: &JobConfig,
    plan: &Plan,
    now: SystemTime,
) -> Result<Report, JobError> {
    let window = Window::last_days(now, plan.lookback_days);
    let functions = list_functions(clients, &plan.filter).await?;
    tracing::info!(
        functions = functions.len(),
        lookback_days = plan.lookback_days,
        "inventory read"
    );

    let queries = metrics::lambda_queries(&functions, plan.percentiles);
    let (series, fetched) = metrics::fetch(clients, queries, window).await?;
    tracing::info!(
        calls = fetched.calls,
        queries = fetched.queries,
        "metrics fetched"
    );

    let mut notes: Vec<String> = config.price_note.iter().cloned().collect();
    if let Some(why) = &fetched.percentiles_unavailable {
        notes.push(format!(
            "percentiles unavailable, maxima used instead: {why}"
        ));
    }
    let mut observations: Vec<FunctionObservation> = functions
        .iter()
        .enumerate()
        .map(|(i, f)| observation(f, metrics::lambda_metrics(&series, i, f.memory_mb), window))
        .collect();
    fill_memory_from_logs(clients, plan, window, &mut observations, &mut notes).await;

    let recommendations = recommend_fleet(&observations, &plan.settings, &config.prices);
    for r in &recommendations {
        tracing::info!(
            function = %r.function_name,
            status = ?r.status,
            memory_mb = r.current_memory_mb,
            recommended_memory_mb = r.recommended_memory_mb,
            monthly_savings_usd = r.monthly_savings_usd,
            "judged"
        );
    }
    Ok(Report {
        job: "rightsizing",
        mode: plan.mode,
        strategy: plan.settings.strategy,
        lookback_days: plan.lookback_days,
        window_start_epoch_s: window.start_epoch_s,
        window_end_epoch_s: window.end_epoch_s,
        region: clients.region.clone(),
        totals: totals(&recommendations),
        functions: recommendations,
        api_calls: clients.calls(),
        metric_queries: fetched.queries,
        notes,
    })
}

fn observation(
    f: &FunctionConfig,
    metrics: trimtab_core::rightsizing::FunctionMetrics,
    w: Window,
) -> FunctionObservation {
    FunctionObservation {
        function_name: f.name.clone(),
        architecture: f.architecture,
        memory_mb: f.memory_mb,
        timeout_s: f.timeout_s,
        ephemeral_storage_mb: f.ephemeral_storage_mb,
        window_s: w.seconds() as f64,
        metrics,
    }
}

/// For functions worth judging whose peak memory Lambda Insights did not report, reads it from
/// their REPORT lines, a few functions at a time. A failed scan is a note, not a failed run.
async fn fill_memory_from_logs(
    clients: &Clients,
    plan: &Plan,
    window: Window,
    observations: &mut [FunctionObservation],
    notes: &mut Vec<String>,
) {
    if plan.log_scan_pages == 0 {
        return;
    }
    let wanted: Vec<usize> = observations
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            o.metrics.used_memory_max_mb.is_none()
                && o.metrics.invocations >= plan.settings.min_invocations
        })
        .map(|(i, _)| i)
        .collect();
    let scans = stream::iter(wanted)
        .map(|i| {
            let name = observations[i].function_name.clone();
            async move {
                let ev = logs::report_evidence(
                    clients,
                    &name,
                    window.start_epoch_s * 1000,
                    window.end_epoch_s * 1000,
                    plan.log_scan_pages,
                )
                .await;
                (i, ev)
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    for (i, ev) in scans {
        let o = &mut observations[i];
        match ev {
            Ok(ev) => {
                if let Some(peak) = ev.max_memory_used_mb {
                    o.metrics.used_memory_max_mb = Some(peak);
                    o.metrics.memory_evidence = Some(MemoryEvidence::Logs);
                }
                if ev.truncated {
                    notes.push(format!(
                        "{}: REPORT scan stopped after {} pages; peak memory from a sample",
                        o.function_name, plan.log_scan_pages
                    ));
                }
            }
            Err(e) => notes.push(format!(
                "{}: could not read REPORT lines: {e}",
                o.function_name
            )),
        }
    }
}
