//! The performance monitor: SLOs for every API stage and Lambda function in scope, their error
//! budgets and burn-rate alerts, bottlenecks ranked by the budget they spend, a health score,
//! and (apply mode) a dashboard and SLO alarms kept in step with the resources.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use trimtab_aws::dynamodb as ddb;
use trimtab_aws::inventory::{FunctionFilter, list_functions};
use trimtab_aws::metrics::{self, Fold, Query, Series, Window, fold};
use trimtab_aws::monitoring::{self, list_api_stages};
use trimtab_aws::{CallCounts, Clients, calls};
use trimtab_core::monitor::{
    AlarmCandidate, AlarmPlan, AlarmPrices, Subject, WithoutAlarms, alarm_prefix, choose_alarmed,
    dashboard_body, desired_alarms, plan_alarms,
};
use trimtab_core::slo::{
    Bottleneck, BurnAlert, Counts, ErrorBudget, Objectives, Severity, burn_alerts, burn_rate,
    default_objectives, error_budget, failure_budget, health_score, rank_bottlenecks, slow_budget,
};
pub use trimtab_lambda::JobError;
use trimtab_lambda::{EventError, Invocation, Job, Mode, Trigger, parse_trigger, setting};

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
    fn of(prefix: &str, r: &Request) -> Self {
        let exact = |p: &str| Subject::function(p).id == format!("fn-{p}");
        let mut prefixes = Vec::new();
        match r.function_name_prefix.as_deref() {
            None => prefixes.push(format!("{prefix}fn-")),
            Some(p) if exact(p) => prefixes.push(format!("{prefix}fn-{p}")),
            Some(_) => {}
        }
        if r.api_name_prefix.is_none() {
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
}

#[derive(Debug, Clone)]
pub struct JobConfig {
    pub configured_mode: Mode,
    pub environment: String,
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

/// One SLO subject, judged.
#[derive(Debug, Clone, Serialize)]
pub struct SubjectReport {
    pub id: String,
    pub requests: f64,
    pub errors: f64,
    pub error_rate_pct: f64,
    pub availability_pct: f64,
    pub latency_p95_ms: Option<f64>,
    /// `p95`, or `mean` where the backend computes no percentiles.
    pub latency_statistic: &'static str,
    pub meets: BTreeMap<&'static str, bool>,
    pub error_budget: ErrorBudget,
    /// Burn rates of the alert windows: 5m, 30m, 1h, 6h, 3d.
    pub burn_rates: BTreeMap<&'static str, f64>,
    pub alerts: Vec<BurnAlert>,
    /// Further measurements over the window: client errors, cache hit ratio (REST), integration
    /// latency (APIs); peak concurrency, provisioned-concurrency spillover, cold starts (functions).
    pub evidence: BTreeMap<&'static str, f64>,
}

/// A table in scope, over the window.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub table_name: String,
    /// Consumed over provisioned capacity, percent (`None` when on-demand).
    pub read_utilization_pct: Option<f64>,
    pub write_utilization_pct: Option<f64>,
    pub throttle_events: f64,
    pub get_item_latency_ms: Option<f64>,
    pub put_item_latency_ms: Option<f64>,
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
    pub environment: String,
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
    pub alarms_unchanged: usize,
    pub alarm_upkeep: AlarmUpkeep,
    pub api_calls: CallCounts,
    /// What this run's own requests cost, USD (list prices), and the priced lines.
    pub own_cost_usd: f64,
    pub own_cost: trimtab_core::own_cost::OwnCost,
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
    let environment = trimtab_lambda::environment(
        "environment",
        r.environment
            .clone()
            .unwrap_or_else(|| config.environment.clone()),
    )?;
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
        .unwrap_or_else(|| default_objectives(&environment));
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
        &environment,
        objectives,
        window_days as u32,
        &r,
        now,
    )
    .await?;
    Ok(serde_json::to_value(report).unwrap_or(Value::Null))
}

fn q(
    id: String,
    namespace: &'static str,
    metric: &'static str,
    dims: &[(String, String)],
    stat: &'static str,
) -> Query {
    Query {
        id,
        namespace,
        metric_name: metric,
        dimensions: dims.to_vec(),
        stat,
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn run(
    clients: &Clients,
    config: &JobConfig,
    mode: Mode,
    environment: &str,
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
    let mut notes = Vec::new();

    // Discover what is in scope: listing, not a hard-coded list.
    let apis = list_api_stages(clients, r.api_name_prefix.as_deref()).await?;
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

    // (a) Window totals and evidence, one datapoint per query; (b) three days of 5-minute
    // requests and errors for the burn-rate windows. Both batched 500 queries a call.
    let window = Window {
        start_epoch_s: now_s - i64::from(window_days) * 86_400,
        end_epoch_s: now_s,
    };
    let mut totals_q = Vec::new();
    let mut series_q = Vec::new();
    for (i, s) in subjects.iter().enumerate() {
        let d = &s.dimensions;
        totals_q.push(q(
            format!("s{i}_req"),
            s.namespace,
            s.requests_metric,
            d,
            "Sum",
        ));
        totals_q.push(q(
            format!("s{i}_err"),
            s.namespace,
            s.errors_metric,
            d,
            "Sum",
        ));
        totals_q.push(q(
            format!("s{i}_lat"),
            s.namespace,
            s.latency_metric,
            d,
            "p95",
        ));
        totals_q.push(q(
            format!("s{i}_lavg"),
            s.namespace,
            s.latency_metric,
            d,
            "Average",
        ));
        series_q.push(q(
            format!("s{i}_req"),
            s.namespace,
            s.requests_metric,
            d,
            "Sum",
        ));
        series_q.push(q(
            format!("s{i}_err"),
            s.namespace,
            s.errors_metric,
            d,
            "Sum",
        ));
        if s.namespace == "AWS/Lambda" {
            totals_q.push(q(format!("s{i}_thr"), "AWS/Lambda", "Throttles", d, "Sum"));
            totals_q.push(q(
                format!("s{i}_conc"),
                "AWS/Lambda",
                "ConcurrentExecutions",
                d,
                "Maximum",
            ));
            totals_q.push(q(
                format!("s{i}_spill"),
                "AWS/Lambda",
                "ProvisionedConcurrencySpilloverInvocations",
                d,
                "Sum",
            ));
            series_q.push(q(format!("s{i}_thr"), "AWS/Lambda", "Throttles", d, "Sum"));
            let fname = d[0].1.clone();
            totals_q.push(Query {
                id: format!("s{i}_cold"),
                namespace: "LambdaInsights",
                metric_name: "init_duration",
                dimensions: vec![("function_name".to_owned(), fname.clone())],
                stat: "SampleCount",
            });
            totals_q.push(Query {
                id: format!("s{i}_init"),
                namespace: "LambdaInsights",
                metric_name: "init_duration",
                dimensions: vec![("function_name".to_owned(), fname)],
                stat: "Average",
            });
        } else {
            totals_q.push(q(
                format!("s{i}_int"),
                "AWS/ApiGateway",
                "IntegrationLatency",
                d,
                "Average",
            ));
            let client_errors = if s.errors_metric == "5XXError" {
                "4XXError"
            } else {
                "4xx"
            };
            totals_q.push(q(
                format!("s{i}_4xx"),
                "AWS/ApiGateway",
                client_errors,
                d,
                "Sum",
            ));
            // Only REST APIs have a cache.
            if s.errors_metric == "5XXError" {
                totals_q.push(q(
                    format!("s{i}_hit"),
                    "AWS/ApiGateway",
                    "CacheHitCount",
                    d,
                    "Sum",
                ));
                totals_q.push(q(
                    format!("s{i}_miss"),
                    "AWS/ApiGateway",
                    "CacheMissCount",
                    d,
                    "Sum",
                ));
            }
        }
    }
    for (k, t) in tables.iter().enumerate() {
        let d = vec![("TableName".to_owned(), t.clone())];
        for (id, metric, stat) in [
            ("rcon", "ConsumedReadCapacityUnits", "Sum"),
            ("wcon", "ConsumedWriteCapacityUnits", "Sum"),
            ("rprov", "ProvisionedReadCapacityUnits", "Average"),
            ("wprov", "ProvisionedWriteCapacityUnits", "Average"),
        ] {
            totals_q.push(q(format!("t{k}_{id}"), "AWS/DynamoDB", metric, &d, stat));
        }
        for (id, op) in [("getlat", "GetItem"), ("putlat", "PutItem")] {
            let dims = vec![d[0].clone(), ("Operation".to_owned(), op.to_owned())];
            totals_q.push(q(
                format!("t{k}_{id}"),
                "AWS/DynamoDB",
                "SuccessfulRequestLatency",
                &dims,
                "Average",
            ));
        }
        totals_q.push(q(
            format!("t{k}_rthr"),
            "AWS/DynamoDB",
            "ReadThrottleEvents",
            &d,
            "Sum",
        ));
        totals_q.push(q(
            format!("t{k}_wthr"),
            "AWS/DynamoDB",
            "WriteThrottleEvents",
            &d,
            "Sum",
        ));
    }
    let (totals, fetched) = metrics::fetch(clients, totals_q, window).await?;
    if let Some(why) = &fetched.percentiles_unavailable {
        notes.push(format!(
            "p95 unavailable from the backend ({why}): mean latency judged instead"
        ));
    }
    let recent = Window {
        start_epoch_s: now_s - 3 * 86_400,
        end_epoch_s: now_s,
    };
    let (series, fetched_series) =
        metrics::fetch_with_period(clients, series_q, recent, 300).await?;
    let metric_queries = fetched.queries + fetched_series.queries;

    let get = |id: String, how: Fold| fold(&totals, &id, how, None);
    let mut reports = Vec::new();
    let mut found = Vec::new();
    let mut estate_failure_budget = 0.0;
    for (i, s) in subjects.iter().enumerate() {
        let is_fn = s.namespace == "AWS/Lambda";
        let throttles = if is_fn {
            get(format!("s{i}_thr"), Fold::Sum).unwrap_or(0.0)
        } else {
            0.0
        };
        // A throttled invocation never ran: it is a request, and a failed one.
        let window_counts = Counts {
            requests: get(format!("s{i}_req"), Fold::Sum).unwrap_or(0.0) + throttles,
            errors: get(format!("s{i}_err"), Fold::Sum).unwrap_or(0.0) + throttles,
        };
        let steps = counts_series(&series, i, is_fn, recent);
        let rates: BTreeMap<&'static str, f64> = [
            ("5m", 5),
            ("30m", 30),
            ("1h", 60),
            ("6h", 360),
            ("3d", 4320),
        ]
        .into_iter()
        .map(|(k, m)| (k, round2(burn_rate(&steps, 5, m, o.availability_pct))))
        .collect();
        let budget = error_budget(
            window_counts,
            o.availability_pct,
            rates["3d"],
            f64::from(window_days),
        );
        let (latency, stat) = match get(format!("s{i}_lat"), Fold::Max) {
            Some(p) => (Some(p), "p95"),
            None => (get(format!("s{i}_lavg"), Fold::Max), "mean"),
        };
        let error_rate = 100.0 * window_counts.ratio();
        let meets = BTreeMap::from([
            ("latency", latency.is_none_or(|l| l <= o.latency_p95_ms)),
            ("error_rate", error_rate <= o.error_rate_pct),
            ("availability", 100.0 - error_rate >= o.availability_pct),
        ]);
        let failures_allowed = failure_budget(window_counts.requests, o.availability_pct);
        let slow_allowed = slow_budget(window_counts.requests, 95.0);
        estate_failure_budget += failures_allowed;
        // Bottleneck evidence.
        if is_fn {
            let fname = &s.dimensions[0].1;
            if throttles > 0.0 {
                found.push(bottleneck(
                    fname,
                    "throttling",
                    (throttles, failures_allowed),
                    format!("{throttles:.0} throttled invocations in {window_days} days"),
                    "raise or set reserved concurrency; consider provisioned concurrency",
                    "rightsizing",
                ));
            }
            let cold = get(format!("s{i}_cold"), Fold::Sum).unwrap_or(0.0)
                + get(format!("s{i}_spill"), Fold::Sum).unwrap_or(0.0);
            let init = get(format!("s{i}_init"), Fold::Mean).unwrap_or(0.0);
            // A cold start is a slow request when its init plus a typical run passes the objective.
            let typical = get(format!("s{i}_lavg"), Fold::Mean)
                .or(latency)
                .unwrap_or(0.0);
            if cold > 0.0 && init + typical > o.latency_p95_ms {
                found.push(bottleneck(fname, "cold starts", (cold, slow_allowed),
                    format!("{cold:.0} cold starts adding {init:.0} ms each, past the {} ms objective", o.latency_p95_ms),
                    "provisioned concurrency on the alias (trimtab:alias, trimtab:latency-objective-ms)", "rightsizing"));
            }
        } else if let (Some(lat), Some(int)) = (latency, get(format!("s{i}_int"), Fold::Max))
            && lat > o.latency_p95_ms
            && int > 0.8 * get(format!("s{i}_lavg"), Fold::Max).unwrap_or(lat)
        {
            // p95 over the objective: at least the 5% of requests it allows are slow.
            let evidence = format!(
                "{stat} latency {lat:.0} ms over {} ms; the integration takes {int:.0} ms of it",
                o.latency_p95_ms
            );
            found.push(bottleneck(
                &s.id,
                "slow integration",
                (slow_allowed, slow_allowed),
                evidence,
                "right-size the backing function",
                "rightsizing",
            ));
        }
        reports.push(SubjectReport {
            id: s.id.clone(),
            requests: window_counts.requests,
            errors: window_counts.errors,
            error_rate_pct: round2(error_rate),
            availability_pct: round2(100.0 - error_rate),
            latency_p95_ms: latency.map(round2),
            latency_statistic: stat,
            meets,
            error_budget: budget,
            alerts: burn_alerts(&steps, 5, o.availability_pct),
            burn_rates: rates,
            evidence: evidence(&totals, i, window_counts.requests),
        });
    }
    let mut table_reports = Vec::new();
    for (k, t) in tables.iter().enumerate() {
        let thr = get(format!("t{k}_rthr"), Fold::Sum).unwrap_or(0.0)
            + get(format!("t{k}_wthr"), Fold::Sum).unwrap_or(0.0);
        // Consumed units (a sum over the window) per second, over the mean provisioned units.
        let seconds = window.seconds() as f64;
        let util = |con: &str, prov: &str| {
            let provisioned = get(format!("t{k}_{prov}"), Fold::Mean).filter(|p| *p > 0.0)?;
            Some(round2(
                100.0 * get(format!("t{k}_{con}"), Fold::Sum).unwrap_or(0.0)
                    / seconds
                    / provisioned,
            ))
        };
        table_reports.push(TableReport {
            table_name: t.clone(),
            read_utilization_pct: util("rcon", "rprov"),
            write_utilization_pct: util("wcon", "wprov"),
            throttle_events: thr,
            get_item_latency_ms: get(format!("t{k}_getlat"), Fold::Mean).map(round2),
            put_item_latency_ms: get(format!("t{k}_putlat"), Fold::Mean).map(round2),
        });
        if thr > 0.0 {
            found.push(bottleneck(
                t,
                "DynamoDB throttling",
                (thr, estate_failure_budget),
                format!("{thr:.0} throttle events in {window_days} days"),
                "let the DynamoDB job choose capacity or on-demand",
                "dynamodb-scaling",
            ));
        }
    }
    let bottlenecks = rank_bottlenecks(found);
    let budgets: Vec<&ErrorBudget> = reports
        .iter()
        .filter(|r| r.requests > 0.0)
        .map(|r| &r.error_budget)
        .collect();
    let health = health_score(&budgets);
    let count = |sev: Severity| {
        reports
            .iter()
            .filter(|r| r.alerts.iter().any(|a| a.severity == sev))
            .count()
    };
    let (pages, tickets) = (count(Severity::Page), count(Severity::Ticket));

    // Act: the dashboard and the alarms, in step with the subjects.
    let dashboard = format!("trimtab-{}", config.environment);
    let body = dashboard_body(
        &subjects,
        &tables,
        clients.region.as_deref().unwrap_or("us-east-1"),
        &o,
    );
    let prefix = alarm_prefix(&config.environment);
    let (alarmed, upkeep) = choose_subjects(config, r, &subjects, &reports, &o);
    let desired = desired_alarms(&prefix, &alarmed, &o, &config.alarm_actions);
    let existing = monitoring::alarms(clients, &prefix).await?;
    let scope = AlarmScope::of(&prefix, r);
    let AlarmPlan {
        put: to_put,
        delete: to_delete,
        delete_calls,
    } = plan_alarms(&prefix, &desired, &existing, |name| scope.contains(name));
    // The dashboard shows the whole estate: only an unscoped run writes it.
    let dashboard_changed = if r.is_scoped() {
        notes.push("scoped run: the dashboard is left as the last unscoped run wrote it".into());
        false
    } else {
        monitoring::get_dashboard(clients, &dashboard)
            .await?
            .as_deref()
            != Some(body.as_str())
    };
    let alarms_unchanged = desired.len() - to_put.len();
    if mode == Mode::Apply {
        if config.alarm_actions.is_empty() {
            notes.push(
                "no alert topic configured (TRIMTAB_ALERT_TOPIC_ARN): alarms written without actions page nobody".into(),
            );
        }
        if dashboard_changed {
            monitoring::put_dashboard(clients, &dashboard, &body).await?;
        }
        for a in &to_put {
            monitoring::put_alarm(clients, a).await?;
        }
        for names in &delete_calls {
            monitoring::delete_alarms(clients, names).await?;
        }
    } else if dashboard_changed || !to_put.is_empty() || !to_delete.is_empty() {
        notes.push("recommend mode: dashboard and alarms reported, not written".into());
    }
    if let Some(table) = config
        .table_name
        .as_ref()
        .filter(|_| trimtab_lambda::results_kept())
    {
        let summary = serde_json::json!({
            "generated_at_epoch_s": now_s,
            "mode": mode,
            "health_score": round2(health),
            "pages": pages,
            "tickets": tickets,
            "subjects": reports.len(),
            "alarms_written": if mode == Mode::Apply { to_put.len() } else { 0 },
        });
        if let Err(e) =
            trimtab_aws::costs::store_result(clients, table, "performance", &summary).await
        {
            notes.push(format!("result not stored: {e}"));
        }
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
        environment: environment.to_owned(),
        objectives: o,
        window_days,
        subjects: reports,
        health_score: round2(health),
        pages,
        tickets,
        bottlenecks,
        tables: table_reports,
        dashboard,
        dashboard_changed,
        alarms_put: to_put.iter().map(|a| a.name.clone()).collect(),
        alarms_deleted: to_delete,
        alarms_unchanged,
        alarm_upkeep: upkeep,
        api_calls: calls::so_far(),
        own_cost_usd: calls::own_cost_so_far().usd,
        own_cost: calls::own_cost_so_far(),
        metric_queries,
        notes,
    })
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

/// The extra measurements of subject `i` (only those the backend reported).
fn evidence(totals: &Series, i: usize, requests: f64) -> BTreeMap<&'static str, f64> {
    let get = |s: &str, how: Fold| fold(totals, &format!("s{i}_{s}"), how, None);
    let mut e = BTreeMap::new();
    if let Some(v) = get("4xx", Fold::Sum) {
        e.insert("client_errors", v);
        if requests > 0.0 {
            e.insert("client_error_rate_pct", round2(100.0 * v / requests));
        }
    }
    if let (Some(hit), Some(miss)) = (get("hit", Fold::Sum), get("miss", Fold::Sum))
        && hit + miss > 0.0
    {
        e.insert("cache_hit_ratio_pct", round2(100.0 * hit / (hit + miss)));
    }
    for (key, id, how) in [
        ("integration_latency_ms", "int", Fold::Max),
        ("peak_concurrency", "conc", Fold::Max),
        ("provisioned_spillover_invocations", "spill", Fold::Sum),
        ("cold_starts", "cold", Fold::Sum),
    ] {
        if let Some(v) = get(id, how) {
            e.insert(key, round2(v));
        }
    }
    e
}

/// A bottleneck with its (bad events, events its budget allows).
fn bottleneck(
    resource: &str,
    kind: &str,
    (bad, allowed): (f64, f64),
    evidence: String,
    action: &str,
    job: &str,
) -> Bottleneck {
    Bottleneck {
        resource: resource.to_owned(),
        kind: kind.to_owned(),
        bad_events: bad,
        budget_events: allowed,
        budget_pct: 0.0,
        measurable: false,
        evidence,
        action: action.to_owned(),
        job: job.to_owned(),
    }
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

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
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
        );
        // `shop api` and `shop-api` share an id: an API-filtered run deletes no API alarms.
        assert!(!by_api.contains("trimtab-slo-prod-api-shop-api-prod-error-rate"));
        assert!(by_api.contains("trimtab-slo-prod-fn-checkout-error-rate"));
        let everything = AlarmScope::of(p, &Request::default());
        assert!(everything.contains("trimtab-slo-prod-api-x-prod-latency-p95"));
        assert!(everything.contains("trimtab-slo-prod-fn-x-latency-p95"));
    }
}
