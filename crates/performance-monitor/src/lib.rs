//! The performance monitor: SLOs for every API stage and Lambda function in scope, their error
//! budgets and burn-rate alerts, bottlenecks ranked by the budget they spend, a health score,
//! and (apply mode) a dashboard and SLO alarms kept in step with the resources.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
mod capacity;

use trimtab_aws::Clients;
use trimtab_aws::calls::OwnRequests;
use trimtab_aws::dynamodb as ddb;
use trimtab_aws::inventory::{FunctionFilter, list_functions};
use trimtab_aws::metrics::{self, Fold, Query, Series, Window, fold};
use trimtab_aws::monitoring::{self, ApiStage, list_api_stages};
use trimtab_core::judge::{SubjectMetrics, TableMetrics, judge_subject, judge_table};
pub use trimtab_core::judge::{SubjectReport, TableReport};
use trimtab_core::monitor::{
    AlarmCandidate, AlarmPlan, AlarmPrices, ApiKind, MAX_DASHBOARD_WIDGETS, Subject, SubjectKind,
    WithoutAlarms, alarm_prefix, choose_alarmed, dashboard_body, desired_alarms, plan_alarms,
};
use trimtab_core::slo::{
    Bottleneck, Counts, Objectives, Severity, default_objectives, health_score, rank_bottlenecks,
};
use trimtab_core::stats::round2;
pub use trimtab_lambda::JobError;
use trimtab_lambda::{
    Environment, EventError, Invocation, Job, Mode, Trigger, parse_trigger, setting,
};

/// The performance monitor, as `main.rs`, `trimtab invoke` and the API run it.
#[derive(Debug, Clone, Copy)]
pub struct PerformanceMonitor;

impl Job for PerformanceMonitor {
    const KIND: &'static str = "performance";
    const LOGICAL_ID: &'static str = "PerformanceMonitorFunction";
    const TIMEOUT: Duration = Duration::from_secs(120);
    type Config = JobConfig;
    type Error = JobError;

    fn configure(_region: Option<&str>) -> Result<JobConfig, String> {
        Ok(JobConfig::from_env())
    }

    async fn handle(
        clients: &Clients,
        config: &JobConfig,
        _invocation: &Invocation,
        payload: Value,
    ) -> Result<Value, JobError> {
        Box::pin(handle(clients, config, payload)).await
    }
}

/// Prefix of every alarm the monitor owns.
/// Which of Trimtab's alarms a run may delete: those of subjects its filters admit (a run
/// scoped to some functions leaves every other subject's alarms alone).
struct AlarmScope {
    prefixes: Vec<String>,
}

impl AlarmScope {
    /// The alarm-name prefixes a run may delete under. Function names are alarm-name safe, so a
    /// function prefix maps exactly onto subject ids (`fn-<name>`). API ids replace characters
    /// API names may hold, so two APIs, one in scope and one not, can share an id prefix: a run
    /// filtered by API name deletes no API alarms (the next unfiltered run does).
    fn of(prefix: &str, r: &Request, whole: bool) -> Self {
        let exact = |p: &str| Subject::function(p).id == format!("fn-{p}");
        let mut prefixes = Vec::new();
        match r.function_name_prefix.as_deref() {
            None => prefixes.push(format!("{prefix}fn-")),
            Some(p) if exact(p) => prefixes.push(format!("{prefix}fn-{p}")),
            Some(_) => {}
        }
        // An API whose stages could not be read keeps its alarms until a run reads it.
        if r.api_name_prefix.is_none() && whole {
            prefixes.push(format!("{prefix}api-"));
        }
        Self { prefixes }
    }

    fn contains(&self, alarm: &str) -> bool {
        self.prefixes.iter().any(|p| alarm.starts_with(p))
    }
}

impl Request {
    /// Whether the run covers only part of the estate.
    fn is_scoped(&self) -> bool {
        self.api_name_prefix.is_some()
            || self.function_name_prefix.is_some()
            || self.table_name_prefix.is_some()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub mode: Option<Mode>,
    pub environment: Option<String>,
    /// Override of the environment's objectives.
    pub objectives: Option<Objectives>,
    /// Error-budget window, days (1..=30; default 30).
    pub window_days: Option<i64>,
    pub api_name_prefix: Option<String>,
    pub function_name_prefix: Option<String>,
    pub table_name_prefix: Option<String>,
    /// Monthly ceiling on what the SLO alarms cost, USD (default `TRIMTAB_ALARM_BUDGET_USD`).
    pub alarm_budget_usd: Option<f64>,
    /// Forecast each API stage's requests and date its throttle limits (`api_capacity`).
    /// Default: only in the day's first run (00:00 to 00:05 UTC).
    pub capacity: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct JobConfig {
    pub configured_mode: Mode,
    pub environment: Environment,
    /// Where alarms notify (`TRIMTAB_ALERT_TOPIC_ARN`).
    pub alarm_actions: Vec<String>,
    /// The decision table (`TRIMTAB_TABLE`), where the run's headline is left for the API.
    pub table_name: Option<String>,
    /// Monthly ceiling on the SLO alarms' cost, USD (`TRIMTAB_ALARM_BUDGET_USD`; none: no ceiling).
    pub alarm_budget_usd: Option<f64>,
    /// Subjects that get alarms whatever their traffic (`TRIMTAB_ALARM_SUBJECTS`: function names,
    /// API names or subject ids, comma-separated).
    pub alarm_subjects: Vec<String>,
}

impl JobConfig {
    pub fn from_env() -> Self {
        Self {
            configured_mode: Mode::configured(),
            environment: trimtab_lambda::configured_environment(),
            alarm_actions: setting("TRIMTAB_ALERT_TOPIC_ARN").into_iter().collect(),
            table_name: setting("TRIMTAB_TABLE"),
            alarm_budget_usd: setting("TRIMTAB_ALARM_BUDGET_USD")
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0),
            alarm_subjects: setting("TRIMTAB_ALARM_SUBJECTS")
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// What the monitor's own CloudWatch upkeep costs a month, and the subjects judged without
/// alarms.
#[derive(Debug, Clone, Serialize)]
pub struct AlarmUpkeep {
    /// The alarms this run keeps (list prices: $0.10 an alarm metric, $0.50 a composite).
    pub alarms_monthly_usd: f64,
    pub dashboard_monthly_usd: f64,
    pub per_subject_monthly_usd: f64,
    pub ceiling_usd: Option<f64>,
    pub subjects_alarmed: usize,
    pub subjects_without_alarms: Vec<WithoutAlarms>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub job: &'static str,
    pub mode: Mode,
    pub environment: Environment,
    pub objectives: Objectives,
    pub window_days: u32,
    pub subjects: Vec<SubjectReport>,
    pub health_score: f64,
    pub pages: usize,
    pub tickets: usize,
    pub bottlenecks: Vec<Bottleneck>,
    pub tables: Vec<TableReport>,
    pub dashboard: String,
    pub dashboard_changed: bool,
    pub alarms_put: Vec<String>,
    pub alarms_deleted: Vec<String>,
    /// Alarms (or the dashboard) whose write or delete failed this run; the notes say why.
    pub alarms_failed: Vec<String>,
    pub alarms_unchanged: usize,
    pub alarm_upkeep: AlarmUpkeep,
    /// API stage request forecasts against their throttle limits; null in the runs that do not
    /// judge capacity (see `Request::capacity`).
    pub api_capacity: Option<capacity::ApiCapacity>,
    /// The requests this run made (retries included) and what they cost: `api_calls`,
    /// `own_cost_usd`, `own_cost`.
    #[serde(flatten)]
    pub requests: OwnRequests,
    pub metric_queries: usize,
    pub notes: Vec<String>,
}

/// The Lambda handler.
pub async fn handle(
    clients: &Clients,
    config: &JobConfig,
    payload: Value,
) -> Result<Value, JobError> {
    handle_at(clients, config, payload, SystemTime::now()).await
}

/// The handler with the clock passed in: windows end at the last 5-minute boundary before `now`.
pub async fn handle_at(
    clients: &Clients,
    config: &JobConfig,
    payload: Value,
    now: SystemTime,
) -> Result<Value, JobError> {
    let trigger: Trigger<Request> = parse_trigger(payload)?;
    let mode = trigger.mode(config.configured_mode, |r| r.mode);
    let r = trigger.request().clone();
    // A request's environment chooses objectives only: the dashboard and alarms are always the
    // stack's own (its role may write no other environment's), so apply refuses another.
    let environment =
        trimtab_lambda::environment("environment", r.environment.as_deref(), config.environment)?;
    if mode == Mode::Apply && environment != config.environment {
        return Err(EventError::new(
            "environment",
            format!(
                "apply writes this stack's own dashboard and alarms ({}); judge {environment} objectives in recommend mode, or pass objectives",
                config.environment
            ),
        )
        .into());
    }
    let window_days = r.window_days.unwrap_or(30);
    if !(1..=30).contains(&window_days) {
        return Err(
            EventError::new("window_days", format!("must be 1..=30, got {window_days}")).into(),
        );
    }
    if r.alarm_budget_usd
        .is_some_and(|b| !(b.is_finite() && b >= 0.0))
    {
        return Err(
            EventError::new("alarm_budget_usd", "must be a number of dollars, 0 or more").into(),
        );
    }
    let objectives = r
        .objectives
        .unwrap_or_else(|| default_objectives(environment));
    if !(objectives.availability_pct > 0.0 && objectives.availability_pct < 100.0) {
        return Err(EventError::new(
            "objectives.availability_pct",
            "must be between 0 and 100 (exclusive)",
        )
        .into());
    }
    let report = run(
        clients,
        config,
        mode,
        environment,
        objectives,
        window_days as u32,
        &r,
        now,
    )
    .await?;
    Ok(serde_json::to_value(report).unwrap_or(Value::Null))
}
/// Subjects measured per batch. Each batch's datapoints (three days of five-minute counts, about
/// 40 KB a subject) are folded and dropped before the next is fetched, so memory does not grow
/// with the estate; 500 functions of nine window queries fill GetMetricData calls exactly.
const SUBJECTS_PER_BATCH: usize = 500;
/// Tables measured per batch (eight window queries each).
const TABLES_PER_BATCH: usize = 500;

/// The two windows a run reads: the SLO window (one datapoint a query) and the last three days
/// in five-minute steps (the burn-rate windows).
#[derive(Debug, Clone, Copy)]
struct Windows {
    slo: Window,
    recent: Window,
}

/// What the batches have measured and judged so far.
#[derive(Default)]
struct Measured {
    subjects: Vec<SubjectReport>,
    tables: Vec<(String, TableMetrics)>,
    bottlenecks: Vec<Bottleneck>,
    estate_failure_budget: f64,
    metric_queries: usize,
    /// Set when the backend refused percentile statistics: later batches do not ask again.
    percentiles_unavailable: Option<String>,
}

impl Measured {
    /// Fetches `queries` over `window` at `period_s`, leaving out percentiles once refused.
    async fn fetch(
        &mut self,
        clients: &Clients,
        mut queries: Vec<Query>,
        window: Window,
        period_s: i32,
    ) -> Result<Series, JobError> {
        if self.percentiles_unavailable.is_some() {
            queries.retain(|q| !q.is_percentile());
        }
        let (series, fetched) =
            metrics::fetch_with_period(clients, queries, window, period_s).await?;
        self.metric_queries += fetched.queries;
        if self.percentiles_unavailable.is_none() {
            self.percentiles_unavailable = fetched.percentiles_unavailable;
        }
        Ok(series)
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn run(
    clients: &Clients,
    config: &JobConfig,
    mode: Mode,
    environment: Environment,
    o: Objectives,
    window_days: u32,
    r: &Request,
    now: SystemTime,
) -> Result<Report, JobError> {
    let now_s = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
        / 300
        * 300;
    let windows = Windows {
        slo: Window {
            start_epoch_s: now_s - i64::from(window_days) * 86_400,
            end_epoch_s: now_s,
        },
        recent: Window {
            start_epoch_s: now_s - 3 * 86_400,
            end_epoch_s: now_s,
        },
    };
    let Discovered {
        subjects,
        stages,
        tables,
        notes: discovery_notes,
    } = discover(clients, r).await?;
    let whole = discovery_notes.is_empty();
    let mut m = Measured::default();
    for batch in subjects.chunks(SUBJECTS_PER_BATCH) {
        measure_subjects(clients, batch, windows, (&o, window_days), &mut m).await?;
    }
    for batch in tables.chunks(TABLES_PER_BATCH) {
        measure_tables(clients, batch, windows.slo, &mut m).await?;
    }
    let mut notes = discovery_notes;
    // Capacity is advice: its fetch failing is a note, never the run's alarms and dashboard.
    let api_capacity = if capacity::wanted(r.capacity, now_s) {
        let whole_region = r.api_name_prefix.is_none();
        let counters = (&mut m.metric_queries, &mut notes);
        match capacity::judge(clients, &stages, (now_s, whole_region), counters).await {
            Ok(c) => Some(c),
            Err(e) => {
                notes.push(format!("API capacity not judged this run: {e}"));
                None
            }
        }
    } else {
        None
    };
    if let Some(why) = &m.percentiles_unavailable {
        notes.push(format!(
            "p95 unavailable from the backend ({why}): mean latency judged instead"
        ));
    }
    let mut table_reports = Vec::with_capacity(m.tables.len());
    for (name, metrics) in &m.tables {
        let span = (windows.slo.seconds(), window_days);
        let (report, found) = judge_table(name, metrics, span, m.estate_failure_budget);
        table_reports.push(report);
        m.bottlenecks.extend(found);
    }
    let reports = m.subjects;
    let health = health_score(
        &reports
            .iter()
            .filter(|r| r.requests > 0.0)
            .map(|r| &r.error_budget)
            .collect::<Vec<_>>(),
    );
    let count = |sev: Severity| {
        reports
            .iter()
            .filter(|r| r.alerts.iter().any(|a| a.severity == sev))
            .count()
    };
    let (pages, tickets) = (count(Severity::Page), count(Severity::Ticket));
    let (alarmed, upkeep) = choose_subjects(config, r, &subjects, &reports, &o);
    let kept = keep(
        clients,
        config,
        (mode, r, whole),
        (&subjects, &reports, &alarmed, &tables),
        &o,
        &mut notes,
    )
    .await?;
    let headline = Headline {
        generated_at_epoch_s: now_s,
        mode,
        health_score: round2(health),
        pages,
        tickets,
        subjects: reports.len(),
        alarms_written: if mode == Mode::Apply {
            kept.put.len()
        } else {
            0
        },
    };
    // The estate's health for the API; a scoped run's is not the estate's.
    if !r.is_scoped() {
        let headline = serde_json::to_value(&headline).unwrap_or(Value::Null);
        let table = config.table_name.as_ref();
        let note = trimtab_lambda::leave_headline(clients, table, "performance", &headline);
        notes.extend(note.await);
    }
    trimtab_lambda::emit_metrics(
        "Trimtab",
        "performance",
        &[
            ("HealthScore", health, "None"),
            ("PageAlerts", pages as f64, "Count"),
            ("TicketAlerts", tickets as f64, "Count"),
        ],
    );
    Ok(Report {
        job: "performance",
        mode,
        environment,
        objectives: o,
        window_days,
        subjects: reports,
        health_score: round2(health),
        pages,
        tickets,
        bottlenecks: rank_bottlenecks(m.bottlenecks),
        tables: table_reports,
        dashboard: kept.dashboard,
        dashboard_changed: kept.dashboard_changed,
        alarms_put: kept.put,
        alarms_deleted: kept.deleted,
        alarms_failed: kept.failed,
        alarms_unchanged: kept.unchanged,
        alarm_upkeep: upkeep,
        api_capacity,
        requests: OwnRequests::so_far(),
        metric_queries: m.metric_queries,
        notes,
    })
}

/// What is in scope, from listings (never a hard-coded list): API stages and functions as SLO
/// subjects, and the tables. An API whose stages cannot be read is a note, not a failed run.
async fn discover(clients: &Clients, r: &Request) -> Result<Discovered, JobError> {
    let (apis, unreadable) = list_api_stages(clients, r.api_name_prefix.as_deref()).await?;
    let filter = FunctionFilter {
        name_prefix: r.function_name_prefix.clone(),
        ..FunctionFilter::default()
    };
    let functions = list_functions(clients, &filter).await?;
    let tables = ddb::list_tables(clients, r.table_name_prefix.as_deref()).await?;
    let mut subjects: Vec<Subject> = apis
        .iter()
        .map(|a| Subject::api(a.kind, &a.dimension_value, &a.name, &a.stage))
        .collect();
    subjects.extend(functions.iter().map(|f| Subject::function(&f.name)));
    Ok(Discovered {
        subjects,
        stages: apis,
        tables,
        notes: unreadable
            .iter()
            .map(|e| format!("API stages unreadable, judged on the next run: {e}"))
            .collect(),
    })
}

/// What is in scope, and what could not be read (notes).
struct Discovered {
    subjects: Vec<Subject>,
    /// The API stages among the subjects, with their throttle limits.
    stages: Vec<ApiStage>,
    tables: Vec<String>,
    notes: Vec<String>,
}

/// Fetches one batch of subjects (window totals and evidence, one datapoint a query; three days
/// of five-minute counts), judges each in the core and keeps only the judgements.
async fn measure_subjects(
    clients: &Clients,
    batch: &[Subject],
    windows: Windows,
    (o, window_days): (&Objectives, u32),
    m: &mut Measured,
) -> Result<(), JobError> {
    let (totals_q, series_q): (Vec<Vec<Query>>, Vec<Vec<Query>>) = batch
        .iter()
        .enumerate()
        .map(|(i, s)| subject_queries(s, i))
        .unzip();
    let slo_period = i32::try_from(windows.slo.seconds()).unwrap_or(i32::MAX);
    let totals = m
        .fetch(clients, totals_q.concat(), windows.slo, slo_period)
        .await?;
    let series = m
        .fetch(clients, series_q.concat(), windows.recent, 300)
        .await?;
    for (i, s) in batch.iter().enumerate() {
        let metrics = subject_metrics(&totals, &series, i, s.kind, windows.recent);
        let resource = match s.kind {
            SubjectKind::Function => s.name.as_str(),
            SubjectKind::RestApi | SubjectKind::HttpApi => s.id.as_str(),
        };
        let judged = judge_subject(&s.id, resource, s.kind, &metrics, o, window_days);
        m.estate_failure_budget += judged.failure_budget;
        m.bottlenecks.extend(judged.bottlenecks);
        m.subjects.push(judged.report);
    }
    Ok(())
}

/// The queries for subject `i` of a batch: (window totals and evidence, five-minute series).
fn subject_queries(s: &Subject, i: usize) -> (Vec<Query>, Vec<Query>) {
    let d = &s.dimensions;
    let q = |id: &str, namespace, metric, dims: &[(String, String)], stat| Query {
        id: format!("s{i}_{id}"),
        namespace,
        metric_name: metric,
        dimensions: dims.to_vec(),
        stat,
    };
    let mut totals = vec![
        q("req", s.namespace, s.requests_metric, d, "Sum"),
        q("err", s.namespace, s.errors_metric, d, "Sum"),
        q("lat", s.namespace, s.latency_metric, d, "p95"),
        q("lavg", s.namespace, s.latency_metric, d, "Average"),
    ];
    let mut series = vec![
        q("req", s.namespace, s.requests_metric, d, "Sum"),
        q("err", s.namespace, s.errors_metric, d, "Sum"),
    ];
    let insights = [("function_name".to_owned(), s.name.clone())];
    let api = "AWS/ApiGateway";
    match s.kind {
        SubjectKind::Function => {
            let lambda = "AWS/Lambda";
            totals.extend([
                q("thr", lambda, "Throttles", d, "Sum"),
                q("conc", lambda, "ConcurrentExecutions", d, "Maximum"),
                q(
                    "spill",
                    lambda,
                    "ProvisionedConcurrencySpilloverInvocations",
                    d,
                    "Sum",
                ),
                q(
                    "cold",
                    "LambdaInsights",
                    "init_duration",
                    &insights,
                    "SampleCount",
                ),
                q(
                    "init",
                    "LambdaInsights",
                    "init_duration",
                    &insights,
                    "Average",
                ),
            ]);
            series.push(q("thr", lambda, "Throttles", d, "Sum"));
        }
        SubjectKind::RestApi => totals.extend([
            q("int", api, "IntegrationLatency", d, "Average"),
            q("4xx", api, ApiKind::Rest.client_errors(), d, "Sum"),
            // Only REST APIs have a cache.
            q("hit", api, "CacheHitCount", d, "Sum"),
            q("miss", api, "CacheMissCount", d, "Sum"),
        ]),
        SubjectKind::HttpApi => totals.extend([
            q("int", api, "IntegrationLatency", d, "Average"),
            q("4xx", api, ApiKind::Http.client_errors(), d, "Sum"),
        ]),
    }
    (totals, series)
}

/// Folds subject `i`'s datapoints into the core's measurements.
fn subject_metrics(
    totals: &Series,
    series: &Series,
    i: usize,
    kind: SubjectKind,
    recent: Window,
) -> SubjectMetrics {
    let get = |id: &str, how: Fold| fold(totals, &format!("s{i}_{id}"), how, None);
    SubjectMetrics {
        requests: get("req", Fold::Sum).unwrap_or(0.0),
        errors: get("err", Fold::Sum).unwrap_or(0.0),
        throttles: get("thr", Fold::Sum).unwrap_or(0.0),
        latency_p95_ms: get("lat", Fold::Max),
        latency_mean_ms: get("lavg", Fold::Max),
        cold_starts: get("cold", Fold::Sum),
        init_mean_ms: get("init", Fold::Mean),
        provisioned_spillover: get("spill", Fold::Sum),
        peak_concurrency: get("conc", Fold::Max),
        integration_latency_ms: get("int", Fold::Max),
        client_errors: get("4xx", Fold::Sum),
        cache_hits: get("hit", Fold::Sum),
        cache_misses: get("miss", Fold::Sum),
        recent: counts_series(series, i, kind == SubjectKind::Function, recent),
    }
}

/// Fetches one batch of tables' window measurements; they are judged once every subject's
/// failure budget is known.
async fn measure_tables(
    clients: &Clients,
    batch: &[String],
    window: Window,
    m: &mut Measured,
) -> Result<(), JobError> {
    let mut queries = Vec::with_capacity(batch.len() * 10);
    for (k, t) in batch.iter().enumerate() {
        let d = vec![("TableName".to_owned(), t.clone())];
        let q = |id: &str, metric, dims: &[(String, String)], stat| Query {
            id: format!("t{k}_{id}"),
            namespace: "AWS/DynamoDB",
            metric_name: metric,
            dimensions: dims.to_vec(),
            stat,
        };
        let op = |name: &str| vec![d[0].clone(), ("Operation".to_owned(), name.to_owned())];
        queries.extend([
            q("rcon", "ConsumedReadCapacityUnits", &d, "Sum"),
            q("wcon", "ConsumedWriteCapacityUnits", &d, "Sum"),
            q("rprov", "ProvisionedReadCapacityUnits", &d, "Average"),
            q("wprov", "ProvisionedWriteCapacityUnits", &d, "Average"),
            q(
                "getlat",
                "SuccessfulRequestLatency",
                &op("GetItem"),
                "Average",
            ),
            q(
                "putlat",
                "SuccessfulRequestLatency",
                &op("PutItem"),
                "Average",
            ),
            q("rthr", "ReadThrottleEvents", &d, "Sum"),
            q("wthr", "WriteThrottleEvents", &d, "Sum"),
        ]);
    }
    let period = i32::try_from(window.seconds()).unwrap_or(i32::MAX);
    let totals = m.fetch(clients, queries, window, period).await?;
    for (k, t) in batch.iter().enumerate() {
        let get = |id: &str, how: Fold| fold(&totals, &format!("t{k}_{id}"), how, None);
        let metrics = TableMetrics {
            consumed_read_units: get("rcon", Fold::Sum).unwrap_or(0.0),
            consumed_write_units: get("wcon", Fold::Sum).unwrap_or(0.0),
            provisioned_read_units: get("rprov", Fold::Mean),
            provisioned_write_units: get("wprov", Fold::Mean),
            throttle_events: get("rthr", Fold::Sum).unwrap_or(0.0)
                + get("wthr", Fold::Sum).unwrap_or(0.0),
            get_item_latency_ms: get("getlat", Fold::Mean),
            put_item_latency_ms: get("putlat", Fold::Mean),
        };
        m.tables.push((t.clone(), metrics));
    }
    Ok(())
}

/// What a run did (or, recommending, would do) to the dashboard and alarms.
struct Kept {
    dashboard: String,
    dashboard_changed: bool,
    put: Vec<String>,
    deleted: Vec<String>,
    /// Alarms a write or delete failed for (each also a note); the next run tries again.
    failed: Vec<String>,
    unchanged: usize,
}

/// Keeps the dashboard and the alarms in step with the subjects: writes them in apply mode,
/// reports them otherwise. `whole` says the listing saw the whole estate in scope: when some
/// APIs could not be read, no API alarm is deleted and the dashboard is left as it is.
async fn keep(
    clients: &Clients,
    config: &JobConfig,
    (mode, r, whole): (Mode, &Request, bool),
    (subjects, reports, alarmed, tables): (&[Subject], &[SubjectReport], &[Subject], &[String]),
    o: &Objectives,
    notes: &mut Vec<String>,
) -> Result<Kept, JobError> {
    let dashboard = format!("trimtab-{}", config.environment.name());
    let region = clients.region.as_deref().unwrap_or("us-east-1");
    let requests: Vec<f64> = reports.iter().map(|r| r.requests).collect();
    let shown = dashboard_body(subjects, &requests, tables, region, o);
    if shown.subjects_shown < subjects.len() || shown.tables_shown < tables.len() {
        notes.push(format!(
            "the dashboard shows {} of {} subjects (the busiest) and {} of {} tables: CloudWatch allows {MAX_DASHBOARD_WIDGETS} widgets a dashboard",
            shown.subjects_shown,
            subjects.len(),
            shown.tables_shown,
            tables.len()
        ));
    }
    let prefix = alarm_prefix(config.environment.name());
    let desired = desired_alarms(&prefix, alarmed, o, &config.alarm_actions);
    let existing = monitoring::alarms(clients, &prefix).await?;
    let scope = AlarmScope::of(&prefix, r, whole);
    let plan = plan_alarms(&prefix, &desired, &existing, |name| scope.contains(name));
    // The dashboard shows the whole estate: only a run that saw all of it writes it.
    let dashboard_changed = if r.is_scoped() || !whole {
        notes.push(
            "scoped or partial run: the dashboard is left as the last whole run wrote it".into(),
        );
        false
    } else {
        match monitoring::get_dashboard(clients, &dashboard).await {
            Ok(current) => current.as_deref() != Some(shown.body.as_str()),
            Err(e) => {
                notes.push(format!(
                    "dashboard could not be read, so it is rewritten: {e}"
                ));
                true
            }
        }
    };
    let mut kept = Kept {
        dashboard,
        dashboard_changed,
        unchanged: desired.len() - plan.put.len(),
        put: Vec::new(),
        deleted: Vec::new(),
        failed: Vec::new(),
    };
    if mode == Mode::Apply {
        if config.alarm_actions.is_empty() {
            notes.push(
                "no alert topic configured (TRIMTAB_ALERT_TOPIC_ARN): alarms written without actions page nobody".into(),
            );
        }
        write(clients, (&shown.body, &plan), &mut kept, notes).await;
    } else {
        if dashboard_changed || !plan.put.is_empty() || !plan.delete.is_empty() {
            notes.push("recommend mode: dashboard and alarms reported, not written".into());
        }
        kept.put = plan.put.iter().map(|a| a.name.clone()).collect();
        kept.deleted = plan.delete;
    }
    Ok(kept)
}

/// Apply mode's writes. One alarm (or the dashboard) failing is a note and a `failed` name; the
/// others are still written, and the next run tries again.
async fn write(
    clients: &Clients,
    (body, plan): (&str, &AlarmPlan<'_>),
    kept: &mut Kept,
    notes: &mut Vec<String>,
) {
    if kept.dashboard_changed
        && let Err(e) = monitoring::put_dashboard(clients, &kept.dashboard, body).await
    {
        notes.push(format!("dashboard not written: {e}"));
        kept.failed.push(kept.dashboard.clone());
    }
    for a in &plan.put {
        match monitoring::put_alarm(clients, a).await {
            Ok(()) => kept.put.push(a.name.clone()),
            Err(e) => {
                notes.push(format!("alarm {} not written: {e}", a.name));
                kept.failed.push(a.name.clone());
            }
        }
    }
    for names in &plan.delete_calls {
        match monitoring::delete_alarms(clients, names).await {
            Ok(()) => kept.deleted.extend(names.iter().cloned()),
            Err(e) => {
                notes.push(format!("alarms {} not deleted: {e}", names.join(", ")));
                kept.failed.extend(names.iter().cloned());
            }
        }
    }
}

/// The run's headline, left in the decision table for the API.
#[derive(Serialize)]
struct Headline {
    generated_at_epoch_s: i64,
    mode: Mode,
    health_score: f64,
    pages: usize,
    tickets: usize,
    subjects: usize,
    alarms_written: usize,
}

/// The subjects whose alarms pay for themselves (core `choose_alarmed`), and what the upkeep
/// costs.
fn choose_subjects(
    config: &JobConfig,
    r: &Request,
    subjects: &[Subject],
    reports: &[SubjectReport],
    o: &Objectives,
) -> (Vec<Subject>, AlarmUpkeep) {
    let prices = AlarmPrices::us_east_1();
    let per_subject: f64 = desired_alarms("", &[Subject::function("x")], o, &[])
        .iter()
        .map(|a| a.monthly_usd(&prices))
        .sum();
    let pinned = |id: &str| {
        config
            .alarm_subjects
            .iter()
            .any(|n| id == n || id == format!("fn-{n}") || id.starts_with(&format!("api-{n}-")))
    };
    let candidates: Vec<AlarmCandidate> = reports
        .iter()
        .map(|s| AlarmCandidate {
            id: s.id.clone(),
            requests: s.requests,
            pinned: pinned(&s.id),
        })
        .collect();
    let ceiling = r.alarm_budget_usd.or(config.alarm_budget_usd);
    let choice = choose_alarmed(&candidates, o.availability_pct, per_subject, ceiling);
    let alarmed: Vec<Subject> = subjects
        .iter()
        .filter(|s| choice.alarmed.contains(&s.id))
        .cloned()
        .collect();
    let upkeep = AlarmUpkeep {
        alarms_monthly_usd: choice.monthly_usd,
        dashboard_monthly_usd: prices.per_dashboard_usd,
        per_subject_monthly_usd: round2(per_subject),
        ceiling_usd: ceiling,
        subjects_alarmed: alarmed.len(),
        subjects_without_alarms: choice.without,
    };
    (alarmed, upkeep)
}

/// Five-minute request and error counts of subject `i` over `w`, oldest first.
fn counts_series(series: &Series, i: usize, is_fn: bool, w: Window) -> Vec<Counts> {
    let n = (w.seconds() / 300) as usize;
    let mut out = vec![Counts::default(); n];
    let mut lay = |id: String, f: &dyn Fn(&mut Counts, f64)| {
        for &(t, v) in series.get(&id).map(Vec::as_slice).unwrap_or_default() {
            if let Some(c) = usize::try_from((t - w.start_epoch_s) / 300)
                .ok()
                .and_then(|k| out.get_mut(k))
            {
                f(c, v);
            }
        }
    };
    lay(format!("s{i}_req"), &|c, v| c.requests += v);
    lay(format!("s{i}_err"), &|c, v| c.errors += v);
    if is_fn {
        lay(format!("s{i}_thr"), &|c, v| {
            c.requests += v;
            c.errors += v;
        });
    }
    out
}

#[cfg(test)]
mod scope_tests {
    use super::*;

    #[test]
    fn a_scoped_run_deletes_only_what_its_filter_listed() {
        let p = "trimtab-slo-prod-";
        let by_function = AlarmScope::of(
            p,
            &Request {
                function_name_prefix: Some("fn-".into()),
                ..Request::default()
            },
            true,
        );
        // "fn-" is a name prefix like any other, not stripped: only functions named fn-*.
        assert!(by_function.contains("trimtab-slo-prod-fn-fn-a-error-rate"));
        assert!(!by_function.contains("trimtab-slo-prod-fn-checkout-error-rate"));
        // APIs were all listed (no API filter): theirs are in scope.
        assert!(by_function.contains("trimtab-slo-prod-api-shop-prod-error-rate"));
        let by_api = AlarmScope::of(
            p,
            &Request {
                api_name_prefix: Some("shop-".into()),
                ..Request::default()
            },
            true,
        );
        // `shop api` and `shop-api` share an id: an API-filtered run deletes no API alarms.
        assert!(!by_api.contains("trimtab-slo-prod-api-shop-api-prod-error-rate"));
        assert!(by_api.contains("trimtab-slo-prod-fn-checkout-error-rate"));
        let everything = AlarmScope::of(p, &Request::default(), true);
        assert!(everything.contains("trimtab-slo-prod-api-x-prod-latency-p95"));
        assert!(everything.contains("trimtab-slo-prod-fn-x-latency-p95"));
        // Some API could not be read: no API alarm is deleted, functions' still are.
        let partial = AlarmScope::of(p, &Request::default(), false);
        assert!(!partial.contains("trimtab-slo-prod-api-x-prod-latency-p95"));
        assert!(partial.contains("trimtab-slo-prod-fn-x-latency-p95"));
    }
}
