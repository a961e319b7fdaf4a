//! The DynamoDB scaling job: for every table and GSI in scope, the billing mode and target-tracking
//! policy its own traffic calls for (by simulation), and target tracking configured where it
//! belongs: idempotently, as a diff in recommend mode, carried out in apply mode.

mod act;

use std::time::{Duration, SystemTime};

use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use trimtab_act::{Invocation, epoch_s, new_run_id};
use trimtab_aws::Clients;
use trimtab_aws::calls::OwnRequests;
use trimtab_aws::dynamodb::{self as ddb, TableInfo};
use trimtab_aws::metrics::{self, Window};
use trimtab_aws::schema::SavingsHeadline;
use trimtab_core::capacity::{
    BillingMode, CapacityPrices, Dimension, DimensionAdvice, Options, Policy, Setup, Trace,
    recommend_table,
};
use trimtab_core::predictive::{self, Demand, ForecastSummary, PredictiveAdvice, Setting};
use trimtab_core::records::ChangeRecord;
use trimtab_core::scaling_plan::{
    Desired, Existing, Foreign, Overrides, PlanOutcome, ScalingSettings, ScheduledAction, Step,
    environment_defaults, plan,
};
pub use trimtab_lambda::JobError;
use trimtab_lambda::{Environment, EventError, Job, Mode, Trigger, parse_trigger};

/// The DynamoDB scaling job, as `main.rs`, `trimtab invoke` and the API run it.
#[derive(Debug, Clone, Copy)]
pub struct DynamoDbScaling;

impl Job for DynamoDbScaling {
    const KIND: &'static str = "dynamodb";
    const LOGICAL_ID: &'static str = "DynamoDBScalingFunction";
    const TIMEOUT: Duration = Duration::from_secs(600);
    type Config = JobConfig;
    type Error = JobError;

    fn configure(_region: Option<&str>) -> Result<JobConfig, String> {
        Ok(JobConfig::from_env())
    }

    fn validate(config: &JobConfig, payload: &Value) -> Result<(), EventError> {
        let trigger: Trigger<Request> = parse_trigger(payload.clone())?;
        let mode = trigger.mode(config.configured_mode, |r| r.mode);
        validate(config, trigger.request(), mode).map(|_| ())
    }

    async fn handle(
        clients: &Clients,
        config: &JobConfig,
        invocation: &Invocation,
        payload: Value,
    ) -> Result<Value, JobError> {
        Box::pin(handle(clients, config, invocation, payload)).await
    }
}

/// Tags on Trimtab's own resources (the decision table) and those a table's owner sets.
pub use trimtab_core::tags::{LOCK_TAG, MANAGED_TAG, OWN_TAG as OWN_TABLE_TAG};

/// The DynamoDB scaling event. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub mode: Option<Mode>,
    pub table_name_prefix: Option<String>,
    /// Days of per-minute traffic to simulate (1..=30; default 14). Past 15 days CloudWatch keeps
    /// only 5-minute data, spread evenly over its minutes.
    pub lookback_days: Option<i64>,
    /// Largest share of requests allowed to be throttled, percent (0..=10; default 0.1).
    pub throttle_budget_pct: Option<f64>,
    /// Environment whose defaults apply to tables without an `environment` tag.
    pub environment: Option<String>,
    /// Take over scaling policies Trimtab did not create, on every table in scope (per table:
    /// the `trimtab:managed=true` tag). Default false: such targets are left alone, reported.
    pub adopt: Option<bool>,
}

/// Per-process configuration.
#[derive(Debug, Clone)]
pub struct JobConfig {
    pub configured_mode: Mode,
    pub prices: CapacityPrices,
    /// Default environment (`TRIMTAB_ENVIRONMENT`), `prod` when unset.
    pub environment: Environment,
    /// The decision table (`TRIMTAB_TABLE`), where the run's headline is left for other jobs.
    pub table_name: Option<String>,
}

impl JobConfig {
    pub fn from_env() -> Self {
        Self {
            configured_mode: Mode::configured(),
            prices: CapacityPrices::us_east_1(),
            environment: trimtab_lambda::configured_environment(),
            table_name: trimtab_lambda::setting("TRIMTAB_TABLE"),
        }
    }
}

/// One table or index, one dimension: the contract row (docs/reports.md) plus the evidence.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceRow {
    pub table_name: String,
    pub index_name: Option<String>,
    #[serde(flatten)]
    pub advice: DimensionAdvice,
    /// What target tracking should hold (provisioned tables only).
    pub configured: Option<ScalingSettings>,
    /// The forecast of the dimension's hourly demand (provisioned recommendations only): its
    /// model and backtested accuracy, or `method: "none"` and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastSummary>,
    /// Predictive (scheduled minimums from the forecast) against reactive-only target tracking,
    /// both replayed on the window's traffic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predictive: Option<PredictiveAdvice>,
    /// What apply passes to `PutScheduledAction` (empty when reactive only).
    pub recommended_scheduled_actions: Vec<ScheduledAction>,
}

/// The report of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub job: &'static str,
    pub run_id: String,
    pub mode: Mode,
    pub requested_by: Option<String>,
    /// Set when the run changed nothing because another run held the lease.
    pub skipped: Option<String>,
    pub lookback_days: u32,
    pub resources: Vec<ResourceRow>,
    /// The writes that bring Application Auto Scaling in step, as a diff.
    pub plan: Vec<String>,
    /// The writes this run made (apply mode).
    pub applied: Vec<String>,
    /// Scalable targets carrying policies Trimtab did not create: left alone.
    pub foreign: Vec<Foreign>,
    /// Tables with the `trimtab:lock` tag: judged, never written.
    pub locked: Vec<String>,
    /// Change records an interrupted run left pending, and what they turned out to be.
    pub reconciled: Vec<ChangeRecord>,
    /// Tables or writes that failed, with why; the rest of the run went on.
    pub errors: Vec<String>,
    pub monthly_savings_usd: f64,
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
    invocation: &Invocation,
    payload: Value,
) -> Result<Value, JobError> {
    let trigger: Trigger<Request> = parse_trigger(payload)?;
    let mode = trigger.mode(config.configured_mode, |r| r.mode);
    let invocation = Invocation {
        requested_by: Some(trigger.requested_by(invocation.requested_by.as_deref())),
        ..invocation.clone()
    };
    let run = validate(config, trigger.request(), mode)?;
    let report = run_job(clients, config, &invocation, &run, SystemTime::now()).await?;
    Ok(serde_json::to_value(report).unwrap_or(Value::Null))
}

/// Checks a request into a run.
fn validate(config: &JobConfig, r: &Request, mode: Mode) -> Result<Run, EventError> {
    let lookback = r.lookback_days.unwrap_or(14);
    if !(1..=30).contains(&lookback) {
        return Err(EventError::new(
            "lookback_days",
            format!("must be 1..=30, got {lookback}"),
        ));
    }
    let budget = r.throttle_budget_pct.unwrap_or(0.1);
    if !(0.0..=10.0).contains(&budget) {
        return Err(EventError::new(
            "throttle_budget_pct",
            format!("must be 0..=10, got {budget}"),
        ));
    }
    if r.table_name_prefix.as_deref() == Some("") {
        return Err(EventError::new(
            "table_name_prefix",
            "must not be empty; omit it for all tables",
        ));
    }
    let environment =
        trimtab_lambda::environment("environment", r.environment.as_deref(), config.environment)?;
    if mode == Mode::Apply && config.table_name.is_none() {
        return Err(EventError::new(
            "mode",
            "apply needs the decision table (TRIMTAB_TABLE) to record its changes",
        ));
    }
    Ok(Run {
        mode,
        prefix: r.table_name_prefix.clone(),
        lookback_days: lookback as u32,
        throttle_budget_fraction: budget / 100.0,
        environment,
        adopt: r.adopt.unwrap_or(false),
    })
}

/// A validated run.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub mode: Mode,
    pub prefix: Option<String>,
    pub lookback_days: u32,
    pub throttle_budget_fraction: f64,
    pub environment: Environment,
    pub adopt: bool,
}

/// One table or index dimension being judged.
struct Slot {
    table: usize,
    index: Option<String>,
    dimension: Dimension,
    provisioned: f64,
    query_id: String,
}

/// What the run read once: the tables in scope (each described on its own; one failing is an
/// error row) and what Application Auto Scaling holds.
struct Inventory {
    tables: Vec<TableInfo>,
    existing: Option<Existing>,
    errors: Vec<String>,
}

/// Tables measured and judged at a time: their per-minute grids (about 1 MB a table with two
/// indexes over 14 days) are dropped before the next batch, so memory does not grow with the
/// number of tables.
const TABLES_PER_BATCH: usize = 25;

async fn inventory(clients: &Clients, run: &Run) -> Result<Inventory, JobError> {
    let names = ddb::list_tables(clients, run.prefix.as_deref()).await?;
    let described: Vec<_> = stream::iter(names.clone())
        .map(|n| async move { ddb::describe_table(clients, &n).await })
        .buffered(8)
        .collect()
        .await;
    let mut tables = Vec::new();
    let mut errors = Vec::new();
    for (name, t) in names.iter().zip(described) {
        match t {
            // Trimtab's own tables (tagged trimtab:component) are not Trimtab's to scale.
            Ok(t) if t.tags.contains_key(OWN_TABLE_TAG) => {}
            Ok(t) => tables.push(t),
            Err(e) => errors.push(format!("{name}: not judged: {e}")),
        }
    }
    // Without what Application Auto Scaling holds, the run still judges every table, but plans
    // and writes nothing.
    let existing = match ddb::existing(clients, None).await {
        Ok(e) => Some(e),
        Err(e) => {
            errors.push(format!(
                "autoscaling not read, so nothing planned or written: {e}"
            ));
            None
        }
    };
    Ok(Inventory {
        tables,
        existing,
        errors,
    })
}

/// One batch of tables with their per-minute consumed capacity, and by the hour over
/// [`HISTORY_DAYS`] for the forecast.
struct Gathered<'a> {
    tables: &'a [TableInfo],
    existing: Option<&'a Existing>,
    slots: Vec<Slot>,
    grids: Vec<Vec<f64>>,
    start_epoch_min: i64,
    hourly: Vec<Vec<f64>>,
    hourly_start_epoch_min: i64,
    metric_queries: usize,
}

pub use trimtab_core::predictive::HISTORY_DAYS;

/// CloudWatch keeps 1-minute data 15 days, 5-minute data beyond.
fn period_s(run: &Run) -> i64 {
    if run.lookback_days > 15 { 300 } else { 60 }
}

/// Per-minute consumed capacity of every table and GSI of `tables`, read and write: two queries
/// per resource, in one batched pass.
async fn measure<'a>(
    clients: &Clients,
    run: &Run,
    tables: &'a [TableInfo],
    existing: Option<&'a Existing>,
    window: Window,
) -> Result<Gathered<'a>, JobError> {
    let period_s = period_s(run);
    let minutes = (window.seconds() / 60) as usize;
    let mut slots = Vec::new();
    let mut queries = Vec::new();
    for (t, table) in tables.iter().enumerate() {
        let mut resources = vec![(None, table.read_capacity, table.write_capacity)];
        resources.extend(
            table
                .indexes
                .iter()
                .map(|i| (Some(i.name.clone()), i.read_capacity, i.write_capacity)),
        );
        for (k, (index, read, write)) in resources.into_iter().enumerate() {
            let prefix = format!("t{t}_{k}");
            queries.extend(ddb::consumed_queries(
                &prefix,
                &table.name,
                index.as_deref(),
            ));
            for (dimension, provisioned, suffix) in
                [(Dimension::Read, read, "r"), (Dimension::Write, write, "w")]
            {
                slots.push(Slot {
                    table: t,
                    index: index.clone(),
                    dimension,
                    provisioned,
                    query_id: format!("{prefix}{suffix}"),
                });
            }
        }
    }
    let (series, fetched) =
        metrics::fetch_with_period(clients, queries.clone(), window, period_s as i32).await?;
    // The same queries by the hour, over the whole weeks before the window's last hour.
    let history = window.hours_before_end(HISTORY_DAYS);
    let (by_hour, hourly_fetched) =
        metrics::fetch_with_period(clients, queries, history, 3600).await?;
    tracing::info!(
        tables = tables.len(),
        calls = fetched.calls,
        "consumed capacity fetched"
    );
    // Each slot's datapoints, on the minute grid of the window and the hour grid of the history.
    let grids = slots
        .iter()
        .map(|s| ddb::per_minute(points(&series, s), window.start_epoch_s, minutes, period_s))
        .collect();
    let hours = (HISTORY_DAYS * 24) as usize;
    let hourly = slots
        .iter()
        .map(|s| ddb::per_hour(points(&by_hour, s), history.start_epoch_s, hours))
        .collect();
    Ok(Gathered {
        tables,
        existing,
        slots,
        grids,
        start_epoch_min: window.start_epoch_s / 60,
        hourly,
        hourly_start_epoch_min: history.start_epoch_s / 60,
        metric_queries: fetched.queries + hourly_fetched.queries,
    })
}

/// A slot's datapoints in a fetched series (none: no data).
fn points<'a>(series: &'a metrics::Series, s: &Slot) -> &'a [(i64, f64)] {
    series.get(&s.query_id).map_or(&[], Vec::as_slice)
}

/// What the run judged: a row per dimension, and what target tracking should hold.
#[derive(Default)]
struct Judged {
    resources: Vec<ResourceRow>,
    desired: Vec<Desired>,
    locked: Vec<String>,
    errors: Vec<String>,
}

/// Judges each table on its traffic (the core's simulator) and sets what target tracking should
/// hold: the simulation's choice where the table has traffic and stays provisioned, else the
/// environment's defaults; tags win. Locked tables are judged but get no desired state.
fn judge_tables(config: &JobConfig, run: &Run, g: &Gathered<'_>, out: &mut Judged) {
    for (t, table) in g.tables.iter().enumerate() {
        let overrides = match Overrides::from_tags(&table.tags) {
            Ok(o) => o,
            Err(e) => {
                out.errors.push(format!("{}: {e}", table.name));
                continue;
            }
        };
        // The business's clock: the forecast by its local hours, the schedule in its zone.
        let window_end_s = 60 * (g.start_epoch_min + g.grids.first().map_or(0, Vec::len) as i64);
        let span = (
            60 * g.hourly_start_epoch_min - 86_400,
            window_end_s + 8 * 86_400,
        );
        let zone = match trimtab_lambda::zone::from_tags(&table.tags, span) {
            Ok(z) => z,
            Err(e) => {
                out.errors.push(format!("{}: {e}", table.name));
                continue;
            }
        };
        let locked = trimtab_core::tags::is_locked(&table.tags);
        if locked {
            out.locked.push(table.name.clone());
        }
        let adopt = run.adopt || table.tags.get(MANAGED_TAG).is_some_and(|v| v == "true");
        let env = table
            .tags
            .get("environment")
            .or_else(|| table.tags.get("env"))
            .map_or(run.environment, |v| Environment::from_tag(v));
        let members: Vec<usize> = (0..g.slots.len())
            .filter(|&i| g.slots[i].table == t)
            .collect();
        let traces: Vec<Trace<'_>> = members
            .iter()
            .map(|&i| Trace {
                dimension: g.slots[i].dimension,
                demand: &g.grids[i],
                start_epoch_min: g.start_epoch_min,
                setup: setup(table, &g.slots[i], g.existing),
            })
            .collect();
        let has_data = members.iter().any(|&i| g.grids[i].iter().any(|&d| d > 0.0));
        let options = Options {
            throttle_budget_fraction: run.throttle_budget_fraction,
            fixed_target_pct: overrides.target_pct,
            ..Options::default()
        };
        let mut advice = if has_data {
            recommend_table(&traces, &config.prices, &options)
        } else {
            Vec::new()
        };
        let demands: Vec<Demand<'_>> = members
            .iter()
            .map(|&i| Demand {
                per_minute: &g.grids[i],
                start_epoch_min: g.start_epoch_min,
                hourly: &g.hourly[i],
                hourly_start_epoch_min: g.hourly_start_epoch_min,
                zone: zone.as_ref(),
            })
            .collect();
        let settings: Vec<Setting> = members
            .iter()
            .map(|&i| {
                let price = config.prices.provisioned_usd(g.slots[i].dimension, 1.0);
                Setting::new(options.platform, price)
            })
            .collect();
        // An on-demand recommendation may yet be provisioned behind a forecast schedule.
        let rescued = predictive::rescue(&mut advice, &demands, &overrides, &settings);
        for (k, &i) in members.iter().enumerate() {
            let s = &g.slots[i];
            let mut a = advice.get(k).cloned();
            let predictive = match &rescued {
                Some(r) => r.get(k).cloned(),
                None => a
                    .as_mut()
                    .and_then(|a| predictive::choose(a, demands[k], &overrides, settings[k])),
            };
            let base = match &a {
                Some(a) if a.recommended_billing_mode == BillingMode::Provisioned => {
                    ScalingSettings {
                        target_pct: a.recommended_target_utilization.unwrap_or(70.0),
                        min_capacity: a.recommended_min_capacity.unwrap_or(1.0),
                        max_capacity: a.recommended_max_capacity.unwrap_or(40_000.0),
                    }
                }
                _ => environment_defaults(env),
            };
            let configured = (!table.on_demand).then(|| overrides.apply(base));
            let scheduled_actions = predictive
                .as_ref()
                .filter(|p| p.chosen == "predictive")
                .map(PredictiveAdvice::scheduled_actions)
                .unwrap_or_default();
            if let (Some(settings), false) = (configured, locked) {
                out.desired.push(Desired {
                    resource_id: ddb::resource_id(&table.name, s.index.as_deref()),
                    scalable_dimension: ddb::scalable_dimension(s.index.is_some(), s.dimension)
                        .to_owned(),
                    dimension: s.dimension,
                    settings,
                    adopt,
                    scheduled_actions: scheduled_actions.clone(),
                    // Where the schedule cannot be written: target tracking alone.
                    unscheduled: predictive
                        .as_ref()
                        .filter(|_| !scheduled_actions.is_empty())
                        .map(|p| ScalingSettings {
                            target_pct: p.reactive_target_pct,
                            ..settings
                        }),
                });
            }
            out.resources.push(ResourceRow {
                table_name: table.name.clone(),
                index_name: s.index.clone(),
                advice: a.unwrap_or_else(|| no_data(table, s)),
                configured,
                forecast: predictive.as_ref().and_then(|p| p.forecast.clone()),
                predictive,
                recommended_scheduled_actions: scheduled_actions,
            });
        }
    }
}

pub async fn run_job(
    clients: &Clients,
    config: &JobConfig,
    invocation: &Invocation,
    run: &Run,
    now: SystemTime,
) -> Result<Report, JobError> {
    let now_s = epoch_s(now);
    let run_id = invocation.run_id.clone().unwrap_or_else(|| new_run_id(now));
    let end = now_s / 60 * 60;
    let window = Window {
        start_epoch_s: end - i64::from(run.lookback_days) * 86_400,
        end_epoch_s: end,
    };
    let inv = inventory(clients, run).await?;
    let mut judged = Judged::default();
    let mut metric_queries = 0;
    for batch in inv.tables.chunks(TABLES_PER_BATCH) {
        let gathered = measure(clients, run, batch, inv.existing.as_ref(), window).await?;
        metric_queries += gathered.metric_queries;
        judge_tables(config, run, &gathered, &mut judged);
    }
    let mut notes = Vec::new();
    if period_s(run) > 60 {
        notes.push("lookback over 15 days: CloudWatch keeps 5-minute data there, spread evenly over its minutes".to_owned());
    }
    let outcome = match &inv.existing {
        Some(existing) => plan(&judged.desired, existing),
        None => PlanOutcome::default(),
    };
    let mut errors = inv.errors.clone();
    errors.extend(judged.errors);
    let mut report = Report {
        job: "dynamodb-scaling",
        run_id: run_id.clone(),
        mode: run.mode,
        requested_by: invocation.requested_by.clone(),
        skipped: None,
        lookback_days: run.lookback_days,
        monthly_savings_usd: savings(&judged.resources),
        resources: judged.resources,
        plan: outcome.steps.iter().map(Step::describe).collect(),
        applied: Vec::new(),
        foreign: outcome.foreign,
        locked: judged.locked,
        reconciled: Vec::new(),
        errors,
        requests: OwnRequests::default(),
        metric_queries,
        notes,
    };
    if run.mode == Mode::Apply && inv.existing.is_some() {
        // The plan is made again under the lease, after reconciling: what a run before this one
        // left may have changed it.
        act::apply(
            clients,
            config,
            invocation,
            &run_id,
            &judged.desired,
            now,
            &mut report,
        )
        .await?;
    }
    // Only a run over every table speaks for the account.
    // The estate's headline (a scoped or skipped run's is not the estate's).
    if run.prefix.is_none() && report.skipped.is_none() {
        let n = report.resources.len();
        let headline = SavingsHeadline {
            detail: format!("{n} table and index dimensions"),
            ..SavingsHeadline::at(now_s, run.mode.name(), report.monthly_savings_usd, n)
        };
        let summary = serde_json::to_value(headline).unwrap_or_default();
        let table = config.table_name.as_ref();
        let note = trimtab_lambda::leave_headline(clients, table, "dynamodb-scaling", &summary);
        report.notes.extend(note.await);
    }
    report.requests = OwnRequests::so_far();
    Ok(report)
}

fn savings(resources: &[ResourceRow]) -> f64 {
    let usd: f64 = resources
        .iter()
        .map(|r| r.advice.current_monthly_cost_usd - r.advice.projected_monthly_cost_usd)
        .sum();
    (usd * 100.0).round() / 100.0
}

/// A row for a resource without traffic in the window: nothing to choose from.
fn no_data(table: &TableInfo, s: &Slot) -> DimensionAdvice {
    let mode = if table.on_demand {
        BillingMode::PayPerRequest
    } else {
        BillingMode::Provisioned
    };
    let prices = CapacityPrices::us_east_1();
    let current = if table.on_demand {
        0.0
    } else {
        prices.provisioned_usd(s.dimension, s.provisioned * 730.0)
    };
    DimensionAdvice {
        dimension: s.dimension,
        current_billing_mode: mode,
        recommended_billing_mode: mode,
        recommended_target_utilization: None,
        recommended_min_capacity: None,
        recommended_max_capacity: None,
        recommended_schedule: Vec::new(),
        current_monthly_cost_usd: (current * 100.0).round() / 100.0,
        projected_monthly_cost_usd: (current * 100.0).round() / 100.0,
        projected_throttled_requests: 0.0,
        current_throttled_requests: 0.0,
        seeds_policy_monthly_cost_usd: 0.0,
        seeds_policy_throttled_requests: 0.0,
        on_demand_monthly_cost_usd: 0.0,
        reasons: vec!["no consumed-capacity datapoints in the window: environment defaults, no billing advice".to_owned()],
        reactive_policy: None,
        throttle_budget_requests: 0.0,
    }
}

/// How a dimension is set up today, with its live policy if it has one.
fn setup(table: &TableInfo, s: &Slot, existing: Option<&Existing>) -> Setup {
    if table.on_demand {
        return Setup::OnDemand;
    }
    let empty = Existing::default();
    let existing = existing.unwrap_or(&empty);
    let key = (
        ddb::resource_id(&table.name, s.index.as_deref()),
        ddb::scalable_dimension(s.index.is_some(), s.dimension).to_owned(),
    );
    let policy = existing.targets.get(&key).and_then(|&(min, max)| {
        let target = existing.policies.get(&key)?.iter().find_map(|(_, t)| *t)?;
        Some(Policy {
            target_pct: target,
            min_capacity: min,
            max_capacity: max,
            schedule: vec![],
        })
    });
    Setup::Provisioned {
        capacity: s.provisioned.max(1.0),
        policy,
    }
}
