//! The DynamoDB scaling job: for every table and GSI in scope, the billing mode and target-tracking
//! policy its own traffic calls for (by simulation), and target tracking configured where it
//! belongs: idempotently, as a diff in recommend mode, carried out in apply mode.

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use trimtab_aws::Clients;
use trimtab_aws::decisions::DecisionTable;
use trimtab_aws::dynamodb::{self as ddb, TableInfo};
use trimtab_aws::metrics::{self, Window};
use trimtab_core::apply::{ChangeRecord, DecisionRecord, RecordState};
use trimtab_core::capacity::{
    BillingMode, CapacityPrices, Dimension, DimensionAdvice, Options, Policy, Setup, Trace,
    recommend_table,
};
use trimtab_core::scaling_plan::{
    Desired, Existing, NamedPolicy, Overrides, ScalingSettings, Step, TargetKey,
    environment_defaults, plan,
};
pub use trimtab_lambda::JobError;
use trimtab_lambda::{EventError, Mode, Trigger, parse_trigger};

/// Tag on Trimtab's own resources (the decision table).
pub const OWN_TABLE_TAG: &str = "trimtab:component";

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
}

/// Per-process configuration.
#[derive(Debug, Clone)]
pub struct JobConfig {
    pub configured_mode: Mode,
    pub prices: CapacityPrices,
    /// Default environment (`TRIMTAB_ENVIRONMENT`), `prod` when unset.
    pub environment: String,
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

/// One table or index, one dimension: the contract row (PRODUCT.md) plus the evidence.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceRow {
    pub table_name: String,
    pub index_name: Option<String>,
    #[serde(flatten)]
    pub advice: DimensionAdvice,
    /// What target tracking should hold (provisioned tables only).
    pub configured: Option<ScalingSettings>,
}

/// The report of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub job: &'static str,
    pub mode: Mode,
    pub lookback_days: u32,
    pub resources: Vec<ResourceRow>,
    /// The writes that bring Application Auto Scaling in step, as a diff.
    pub plan: Vec<String>,
    /// The writes this run made (apply mode).
    pub applied: Vec<String>,
    /// Tables that could not be judged, with why.
    pub errors: Vec<String>,
    pub monthly_savings_usd: f64,
    pub api_calls: BTreeMap<&'static str, u64>,
    pub metric_queries: usize,
    pub notes: Vec<String>,
}

/// The Lambda handler.
pub async fn handle(
    clients: &Clients,
    config: &JobConfig,
    payload: Value,
) -> Result<Value, JobError> {
    let trigger: Trigger<Request> = parse_trigger(payload)?;
    let mode = trigger.mode(config.configured_mode, |r| r.mode);
    let r = trigger.request();
    let lookback = r.lookback_days.unwrap_or(14);
    if !(1..=30).contains(&lookback) {
        return Err(
            EventError::new("lookback_days", format!("must be 1..=30, got {lookback}")).into(),
        );
    }
    let budget = r.throttle_budget_pct.unwrap_or(0.1);
    if !(0.0..=10.0).contains(&budget) {
        return Err(EventError::new(
            "throttle_budget_pct",
            format!("must be 0..=10, got {budget}"),
        )
        .into());
    }
    if r.table_name_prefix.as_deref() == Some("") {
        return Err(EventError::new(
            "table_name_prefix",
            "must not be empty; omit it for all tables",
        )
        .into());
    }
    let environment = trimtab_lambda::environment(
        "environment",
        r.environment
            .clone()
            .unwrap_or_else(|| config.environment.clone()),
    )?;
    let run = Run {
        mode,
        prefix: r.table_name_prefix.clone(),
        lookback_days: lookback as u32,
        throttle_budget: budget / 100.0,
        environment,
    };
    let report = run_job(clients, config, &run, SystemTime::now()).await?;
    Ok(serde_json::to_value(report).unwrap_or(Value::Null))
}

/// A validated run.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub mode: Mode,
    pub prefix: Option<String>,
    pub lookback_days: u32,
    pub throttle_budget: f64,
    pub environment: String,
}

/// One table or index dimension being judged.
struct Slot {
    table: usize,
    index: Option<String>,
    dimension: Dimension,
    provisioned: f64,
    query_id: String,
}

pub async fn run_job(
    clients: &Clients,
    config: &JobConfig,
    run: &Run,
    now: SystemTime,
) -> Result<Report, JobError> {
    let now_s = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let end = now_s / 60 * 60;
    let window = Window {
        start_epoch_s: end - i64::from(run.lookback_days) * 86_400,
        end_epoch_s: end,
    };
    let period_s: i64 = if run.lookback_days > 15 { 300 } else { 60 };
    let minutes = (window.seconds() / 60) as usize;

    let names = ddb::list_tables(clients, run.prefix.as_deref()).await?;
    let tables: Vec<TableInfo> = stream::iter(names.iter())
        .map(|n| ddb::describe_table(clients, n))
        .buffered(8)
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        // Trimtab's own tables (tagged trimtab:component) are not Trimtab's to scale.
        .filter(|t| !t.tags.contains_key(OWN_TABLE_TAG))
        .collect();
    let existing = existing(clients).await?;

    // Every table and GSI, read and write: two queries per resource, all in one batched pass.
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
        metrics::fetch_with_period(clients, queries, window, period_s as i32).await?;
    tracing::info!(
        tables = tables.len(),
        calls = fetched.calls,
        "consumed capacity fetched"
    );

    let start_epoch_min = window.start_epoch_s / 60;
    let grids: Vec<Vec<f64>> = slots
        .iter()
        .map(|s| {
            ddb::per_minute(
                series
                    .get(&s.query_id)
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
                window.start_epoch_s,
                minutes,
                period_s,
            )
        })
        .collect();

    let mut resources = Vec::new();
    let mut desired = Vec::new();
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    if period_s > 60 {
        notes.push("lookback over 15 days: CloudWatch keeps 5-minute data there, spread evenly over its minutes".to_owned());
    }
    for (t, table) in tables.iter().enumerate() {
        let overrides = match Overrides::from_tags(&table.tags) {
            Ok(o) => o,
            Err(e) => {
                errors.push(format!("{}: {e}", table.name));
                continue;
            }
        };
        let env = table
            .tags
            .get("environment")
            .or_else(|| table.tags.get("env"))
            .cloned()
            .unwrap_or_else(|| run.environment.clone());
        let members: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].table == t).collect();
        let traces: Vec<Trace<'_>> = members
            .iter()
            .map(|&i| Trace {
                dimension: slots[i].dimension,
                demand: &grids[i],
                start_epoch_min,
                setup: setup(table, &slots[i], &existing),
            })
            .collect();
        let has_data = members.iter().any(|&i| grids[i].iter().any(|&d| d > 0.0));
        let options = Options {
            throttle_budget: run.throttle_budget,
            fixed_target_pct: overrides.target_pct,
            ..Options::default()
        };
        let advice = if has_data {
            recommend_table(&traces, &config.prices, &options)
        } else {
            Vec::new()
        };
        for (k, &i) in members.iter().enumerate() {
            let s = &slots[i];
            let a = advice.get(k).cloned();
            // What target tracking should hold: the simulation's choice where the table has
            // traffic and stays provisioned, else the environment's defaults; tags win.
            let base = match &a {
                Some(a) if a.recommended_billing_mode == BillingMode::Provisioned => {
                    ScalingSettings {
                        target_pct: a.recommended_target_utilization.unwrap_or(70.0),
                        min_capacity: a.recommended_min_capacity.unwrap_or(1.0),
                        max_capacity: a.recommended_max_capacity.unwrap_or(40_000.0),
                    }
                }
                _ => environment_defaults(&env),
            };
            let configured = (!table.on_demand).then(|| overrides.apply(base));
            if let Some(settings) = configured {
                desired.push(Desired {
                    resource_id: ddb::resource_id(&table.name, s.index.as_deref()),
                    scalable_dimension: ddb::scalable_dimension(s.index.is_some(), s.dimension)
                        .to_owned(),
                    dimension: s.dimension,
                    settings,
                });
            }
            let advice = a.unwrap_or_else(|| no_data(table, s));
            resources.push(ResourceRow {
                table_name: table.name.clone(),
                index_name: s.index.clone(),
                advice,
                configured,
            });
        }
    }

    let steps = plan(&desired, &existing);
    let mut applied = Vec::new();
    if run.mode == Mode::Apply {
        // Every write recorded first, marked after: the audit trail, and what to restore.
        let Some(table) = config.table_name.as_ref().map(DecisionTable::new) else {
            return Err(EventError::new(
                "mode",
                "apply needs the decision table (TRIMTAB_TABLE) to record its changes",
            )
            .into());
        };
        let run_id = format!("{now_s:x}");
        for (k, step) in steps.iter().enumerate() {
            let mut record = ChangeRecord {
                record_id: DecisionRecord::id(now_s, &format!("{run_id}-{k}")),
                job: "dynamodb-scaling".into(),
                resource: step.resource(),
                run_id: run_id.clone(),
                created_at_epoch_s: now_s,
                before: step.before(),
                after: serde_json::to_value(step).unwrap_or(Value::Null),
                reason: step.describe(),
                state: RecordState::Pending,
                state_reason: None,
                updated_at_epoch_s: now_s,
            };
            table.create_change(clients, &record).await?;
            match carry_out(clients, step).await {
                Ok(()) => {
                    record.state = RecordState::Applied;
                    applied.push(step.describe());
                }
                Err(e) => {
                    record.state = RecordState::NotApplied;
                    record.state_reason = Some(e.to_string());
                    errors.push(format!("{}: {e}", step.resource()));
                }
            }
            table
                .update_change(clients, &record, RecordState::Pending)
                .await?;
        }
    }
    let monthly_savings_usd = resources
        .iter()
        .map(|r| r.advice.current_monthly_cost_usd - r.advice.projected_monthly_cost_usd)
        .sum::<f64>();
    let monthly_savings_usd = (monthly_savings_usd * 100.0).round() / 100.0;
    // Only a run over every table speaks for the account.
    if let (Some(table), None) = (&config.table_name, &run.prefix) {
        let summary = serde_json::json!({
            "generated_at_epoch_s": now_s,
            "generated_at": trimtab_core::cost::format_date(now_s / 86_400),
            "mode": run.mode,
            "monthly_savings_usd": monthly_savings_usd,
            "resources": resources.len(),
            "detail": format!("{} table and index dimensions", resources.len()),
        });
        if let Err(e) =
            trimtab_aws::costs::store_result(clients, table, "dynamodb-scaling", &summary).await
        {
            notes.push(format!("result not stored for other jobs: {e}"));
        }
    }
    Ok(Report {
        job: "dynamodb-scaling",
        mode: run.mode,
        lookback_days: run.lookback_days,
        resources,
        plan: steps.iter().map(Step::describe).collect(),
        applied,
        errors,
        monthly_savings_usd,
        api_calls: clients.calls(),
        metric_queries: fetched.queries,
        notes,
    })
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
    }
}

/// How a dimension is set up today, with its live policy if it has one.
fn setup(table: &TableInfo, s: &Slot, existing: &Existing) -> Setup {
    if table.on_demand {
        return Setup::OnDemand;
    }
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

async fn existing(clients: &Clients) -> Result<Existing, JobError> {
    let mut e = Existing::default();
    for t in ddb::scalable_targets(clients).await? {
        e.targets.insert(
            (t.resource_id, t.dimension),
            (t.min_capacity, t.max_capacity),
        );
    }
    let mut policies: HashMap<TargetKey, Vec<NamedPolicy>> = HashMap::new();
    for p in ddb::scaling_policies(clients).await? {
        policies
            .entry((p.resource_id, p.dimension))
            .or_default()
            .push((p.name, p.target_pct));
    }
    e.policies = policies;
    Ok(e)
}

async fn carry_out(clients: &Clients, step: &Step) -> Result<(), JobError> {
    match step {
        Step::RegisterScalableTarget {
            resource_id,
            scalable_dimension,
            min_capacity,
            max_capacity,
            ..
        } => {
            ddb::register_target(
                clients,
                resource_id,
                scalable_dimension,
                *min_capacity,
                *max_capacity,
            )
            .await?;
        }
        Step::PutScalingPolicy {
            resource_id,
            scalable_dimension,
            dimension,
            policy_name,
            target_pct,
            ..
        } => {
            ddb::put_policy(
                clients,
                resource_id,
                scalable_dimension,
                *dimension,
                policy_name,
                *target_pct,
            )
            .await?;
        }
    }
    tracing::info!(step = %step.describe(), "applied");
    Ok(())
}
