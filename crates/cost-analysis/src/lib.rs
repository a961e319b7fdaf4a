//! The cost analysis job: Cost Explorer history (closed days cached, so a daily run fetches only
//! new days), totals, changes, trends, anomalies, the month-end forecast against budgets, savings
//! measured by the other jobs, EMF headline metrics and SNS alerts (each at most once).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use trimtab_aws::calls::OwnRequests;
use trimtab_aws::costs::{self, CostRow, Grouping};
use trimtab_aws::schema::SavingsHeadline;
use trimtab_aws::{Clients, calls};
use trimtab_core::calendar::{day_of, format_date};
use trimtab_core::cost::{
    Anomaly, Budget, BudgetStatus, DailyCosts, Forecast, Params, Trend, anomalies, assemble,
    budget_status, changes, days_fetched, first_stale_day, forecast, missing_days, trends,
};
use trimtab_core::stats::round2;
pub use trimtab_lambda::JobError;
use trimtab_lambda::{EventError, Invocation, Job, Mode, Trigger, parse_trigger};

/// The cost analysis job, as `main.rs`, `trimtab invoke` and the API run it.
#[derive(Debug, Clone, Copy)]
pub struct CostAnalysis;

impl Job for CostAnalysis {
    const KIND: &'static str = "cost";
    const LOGICAL_ID: &'static str = "CostAnalysisFunction";
    const TIMEOUT: Duration = Duration::from_secs(120);
    type Config = JobConfig;
    type Error = JobError;

    fn configure(_region: Option<&str>) -> Result<JobConfig, String> {
        JobConfig::from_env()
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

/// The cost analysis event. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub mode: Option<Mode>,
    /// Days of history (7..=365; default 90).
    pub lookback_days: Option<i64>,
    /// `UnblendedCost` (default) or `AmortizedCost`.
    pub metric: Option<String>,
    /// A second breakdown: `USAGE_TYPE` or `TAG:<key>` (per environment, per tenant).
    pub group_by: Option<String>,
    /// Budgets by name: `total` for the account, or a value of `budget_tag`.
    pub budgets: Option<BTreeMap<String, Budget>>,
    /// Cost-allocation tag whose values the budgets are named after (e.g. `environment`).
    pub budget_tag: Option<String>,
}

/// Per-process configuration.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Budgets when the event has none (`TRIMTAB_BUDGETS`, JSON).
    pub budgets: BTreeMap<String, Budget>,
    pub budget_tag: Option<String>,
    /// The decision table (`TRIMTAB_TABLE`): the cache of closed days, other jobs' results,
    /// alert de-duplication.
    pub table_name: Option<String>,
    /// Where alerts go (`TRIMTAB_ALERT_TOPIC_ARN`).
    pub alert_topic_arn: Option<String>,
    /// Paid Cost Explorer requests allowed a day, all runs together
    /// (`TRIMTAB_CE_DAILY_REQUESTS`, default 50: $0.50 a day at most).
    pub ce_daily_requests: u32,
}

/// The default daily budget of Cost Explorer requests.
pub const CE_DAILY_REQUESTS: u32 = 50;

impl JobConfig {
    pub fn from_env() -> Result<Self, String> {
        let var = trimtab_lambda::setting;
        let budgets = match var("TRIMTAB_BUDGETS") {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| format!("TRIMTAB_BUDGETS is not a budget map: {e}"))?,
            None => BTreeMap::new(),
        };
        let ce_daily_requests = match var("TRIMTAB_CE_DAILY_REQUESTS") {
            Some(v) => v.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                format!("TRIMTAB_CE_DAILY_REQUESTS must be a whole number above 0, got {v:?}")
            })?,
            None => CE_DAILY_REQUESTS,
        };
        Ok(Self {
            budgets,
            budget_tag: var("TRIMTAB_BUDGET_TAG"),
            table_name: var("TRIMTAB_TABLE"),
            alert_topic_arn: var("TRIMTAB_ALERT_TOPIC_ARN"),
            ce_daily_requests,
        })
    }
}

impl Default for JobConfig {
    fn default() -> Self {
        Self {
            budgets: BTreeMap::new(),
            budget_tag: None,
            table_name: None,
            alert_topic_arn: None,
            ce_daily_requests: CE_DAILY_REQUESTS,
        }
    }
}

/// A saving, with where its number comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub source: String,
    pub estimated_monthly_savings_usd: f64,
    pub basis: String,
}

/// The report (field names: docs/reports.md).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub job: &'static str,
    pub metric: String,
    pub window_start: String,
    pub window_end: String,
    pub total_usd: f64,
    pub by_service: BTreeMap<String, f64>,
    /// The second breakdown, when asked for.
    pub by_group: Option<BTreeMap<String, f64>>,
    pub week_over_week_pct: Option<f64>,
    pub month_over_month_pct: Option<f64>,
    pub trends: Vec<Trend>,
    pub anomalies: Vec<Anomaly>,
    pub forecast: Forecast,
    pub budgets: Vec<BudgetStatus>,
    pub recommendations: Vec<Recommendation>,
    /// Days Cost Explorer still marks as estimated (provisional: cached for six hours).
    pub estimated_days: Vec<String>,
    pub cost_explorer_requests: u64,
    pub cost_explorer_budget: CeBudget,
    pub alerts_sent: Vec<String>,
    /// The requests this run made (retries included) and what they cost: `api_calls`,
    /// `own_cost_usd`, `own_cost`.
    #[serde(flatten)]
    pub requests: OwnRequests,
    pub notes: Vec<String>,
}

/// A validated run.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub lookback_days: u32,
    pub metric: String,
    pub group_by: Option<Grouping>,
    pub budgets: BTreeMap<String, Budget>,
    pub budget_tag: Option<String>,
}

/// The cost job's headline in the decision table, for the API (docs/reports.md).
#[derive(Debug, Clone, Serialize)]
struct CostHeadline {
    generated_at: String,
    total_usd: f64,
    month_to_date_usd: f64,
    forecast_month_end_usd: f64,
    anomalies: usize,
    budgets_crossed: Vec<String>,
    alerts_sent: usize,
}

pub async fn handle(
    clients: &Clients,
    config: &JobConfig,
    payload: Value,
) -> Result<Value, JobError> {
    handle_at(clients, config, payload, SystemTime::now()).await
}

/// [`handle`] as of `now`.
pub async fn handle_at(
    clients: &Clients,
    config: &JobConfig,
    payload: Value,
    now: SystemTime,
) -> Result<Value, JobError> {
    let trigger: Trigger<Request> = parse_trigger(payload)?;
    let r = trigger.request();
    let lookback = r.lookback_days.unwrap_or(90);
    if !(7..=365).contains(&lookback) {
        return Err(
            EventError::new("lookback_days", format!("must be 7..=365, got {lookback}")).into(),
        );
    }
    let metric = r
        .metric
        .clone()
        .unwrap_or_else(|| "UnblendedCost".to_owned());
    if !["UnblendedCost", "AmortizedCost"].contains(&metric.as_str()) {
        return Err(EventError::new(
            "metric",
            format!("must be UnblendedCost or AmortizedCost, got {metric:?}"),
        )
        .into());
    }
    let group_by = match r.group_by.as_deref() {
        None => None,
        Some("USAGE_TYPE") => Some(Grouping::UsageType),
        Some(g) => match g.strip_prefix("TAG:").filter(|k| !k.is_empty()) {
            Some(k) => Some(Grouping::Tag(k.to_owned())),
            None => {
                return Err(EventError::new(
                    "group_by",
                    format!("must be USAGE_TYPE or TAG:<key>, got {g:?}"),
                )
                .into());
            }
        },
    };
    let budgets = r.budgets.clone().unwrap_or_else(|| config.budgets.clone());
    for (name, b) in &budgets {
        if !(b.monthly_usd.is_finite() && b.monthly_usd > 0.0) {
            return Err(EventError::new(
                format!("budgets.{name}.monthly_usd"),
                "must be a positive number",
            )
            .into());
        }
    }
    let run = Run {
        lookback_days: lookback as u32,
        metric,
        group_by,
        budgets,
        budget_tag: r.budget_tag.clone().or_else(|| config.budget_tag.clone()),
    };
    let report = run_job(clients, config, &run, now).await?;
    Ok(serde_json::to_value(report).unwrap_or(Value::Null))
}

/// The day's budget of paid Cost Explorer requests, as this run saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CeBudget {
    pub daily_limit: u32,
    /// Requests used today (all runs) after this run's last one; `None` when this run took none.
    pub used_today: Option<u32>,
    /// The budget ran out: what the cache did not hold was not fetched.
    pub exhausted: bool,
}

/// Reads daily costs through the cache in the decision table, paying for each Cost Explorer
/// request (each page) from the day's budget.
struct CostReader<'a> {
    clients: &'a Clients,
    config: &'a JobConfig,
    metric: &'a str,
    first_day: i64,
    today: i64,
    now_s: i64,
    budget: CeBudget,
    notes: Vec<String>,
}

impl CostReader<'_> {
    /// The window's costs by `grouping`: cached days, and from Cost Explorer the days the cache
    /// cannot answer (new ones, provisional ones read over six hours ago), which are then cached.
    /// Past the budget the cache answers alone, and a note says what it lacks.
    async fn read(&mut self, grouping: &Grouping) -> Result<DailyCosts, JobError> {
        let (first_day, today) = (self.first_day, self.today);
        let table = self.config.table_name.as_deref();
        let mut days = match table {
            Some(t) => {
                costs::cached_days(self.clients, t, self.metric, grouping, first_day, today - 1)
                    .await?
            }
            None => BTreeMap::new(),
        };
        if let Some(from) = first_stale_day(&days, first_day, today, self.now_s) {
            if let Some(rows) = self.fetch(from, grouping).await? {
                let fetched = days_fetched(&rows, from, today, self.now_s);
                if let Some(t) = table {
                    costs::store_days(self.clients, t, self.metric, grouping, &fetched).await?;
                }
                days.extend(fetched);
            } else {
                let missing = missing_days(&days, first_day, today);
                self.notes.push(format!(
                    "Cost Explorer budget spent ({} requests today, TRIMTAB_CE_DAILY_REQUESTS): {} costs answered from the cache{}",
                    self.budget.daily_limit,
                    grouping.name(),
                    if missing.is_empty() {
                        ", provisional days as last read".to_owned()
                    } else {
                        format!(
                            "; {} of {} days are not cached and count as zero (first {})",
                            missing.len(),
                            today - first_day,
                            format_date(missing[0])
                        )
                    }
                ));
            }
        }
        Ok(assemble(&days, first_day, today))
    }

    /// Every page from `from` to today, each paid from the budget; `None` if the budget runs
    /// out first (a partial answer is dropped: a day can span pages).
    async fn fetch(
        &mut self,
        from: i64,
        grouping: &Grouping,
    ) -> Result<Option<Vec<CostRow>>, JobError> {
        let mut rows = Vec::new();
        let mut token = None;
        loop {
            if self.budget.exhausted {
                return Ok(None);
            }
            if let Some(t) = &self.config.table_name {
                match costs::take_ce_request(self.clients, t, self.today, self.budget.daily_limit)
                    .await?
                {
                    Some(used) => self.budget.used_today = Some(used),
                    None => {
                        self.budget.exhausted = true;
                        return Ok(None);
                    }
                }
            }
            let (page, next) = costs::cost_page(
                self.clients,
                from,
                self.today,
                self.metric,
                grouping,
                token.take(),
            )
            .await?;
            rows.extend(page);
            token = next;
            if token.is_none() {
                return Ok(Some(rows));
            }
        }
    }
}

pub async fn run_job(
    clients: &Clients,
    config: &JobConfig,
    run: &Run,
    now: SystemTime,
) -> Result<Report, JobError> {
    let mut reader = CostReader::new(clients, config, run, now);
    let (first_day, today) = (reader.first_day, reader.today);
    let services = reader.read(&Grouping::Service).await?;
    let by_group = match &run.group_by {
        Some(g) => Some(reader.read(g).await?),
        None => None,
    };
    let mut notes = Vec::new();
    let total_series = services.total();
    let params = Params::default();
    let f = forecast(&total_series, first_day, today, &params);
    let (wow, mom) = changes(&total_series, first_day, today);

    // Budgets: `total` against the account; others against the values of the budget tag.
    let tagged = match (&run.budget_tag, run.budgets.keys().any(|k| k != "total")) {
        (Some(tag), true) => {
            let g = Grouping::Tag(tag.clone());
            if run.group_by.as_ref() == Some(&g) {
                by_group.clone()
            } else {
                Some(reader.read(&g).await?)
            }
        }
        (None, true) => {
            notes.push(
                "budgets other than `total` need budget_tag (the cost-allocation tag naming them)"
                    .to_owned(),
            );
            None
        }
        _ => None,
    };
    let ce_budget = reader.budget.clone();
    notes.extend(reader.notes);
    let budgets = judge_budgets(
        run,
        &total_series,
        tagged.as_ref(),
        (first_day, today),
        &mut notes,
    );

    let found = anomalies(&services, &params);
    let mut recommendations = measured_savings(clients, config, &mut notes).await;
    // From the cost data itself: x86 Lambda duration that would be cheaper on arm64.
    recommendations.extend(arm64_from_usage(run, by_group.as_ref(), &mut notes));
    recommendations.sort_by(|a, b| {
        b.estimated_monthly_savings_usd
            .total_cmp(&a.estimated_monthly_savings_usd)
    });
    let sum = |v: &[f64]| round2(v.iter().sum::<f64>());
    let by_service: BTreeMap<String, f64> = services
        .by_key
        .iter()
        .map(|(k, v)| (k.clone(), sum(v)))
        .collect();
    let alerts_sent = alert(clients, config, &found, &budgets, &f.month, &mut notes).await?;

    let worst_budget = budgets.iter().map(|b| b.used_pct).fold(0.0, f64::max);
    trimtab_lambda::emit_metrics(
        "Trimtab",
        "cost",
        &[
            ("SpendToDateUsd", f.month_to_date_usd, "None"),
            ("ForecastMonthEndUsd", f.month_end_usd, "None"),
            ("BudgetUsedPct", worst_budget, "Percent"),
            ("AnomalyCount", found.len() as f64, "Count"),
        ],
    );
    let headline = serde_json::to_value(CostHeadline {
        generated_at: format_date(today),
        total_usd: sum(&total_series),
        month_to_date_usd: f.month_to_date_usd,
        forecast_month_end_usd: f.month_end_usd,
        anomalies: found.len(),
        budgets_crossed: budgets
            .iter()
            .filter(|b| !b.crossed_pct.is_empty())
            .map(|b| b.budget.clone())
            .collect(),
        alerts_sent: alerts_sent.len(),
    })
    .unwrap_or_default();
    let table = config.table_name.as_ref();
    notes.extend(trimtab_lambda::leave_headline(clients, table, "cost", &headline).await);
    let calls = calls::so_far();
    Ok(Report {
        job: "cost",
        metric: run.metric.clone(),
        window_start: format_date(first_day),
        window_end: format_date(today),
        total_usd: sum(&total_series),
        by_service,
        by_group: by_group.map(|g| g.by_key.iter().map(|(k, v)| (k.clone(), sum(v))).collect()),
        week_over_week_pct: wow,
        month_over_month_pct: mom,
        trends: trends(&services),
        anomalies: found,
        forecast: f,
        budgets,
        recommendations,
        estimated_days: services
            .estimated_days
            .iter()
            .map(|d| format_date(*d))
            .collect(),
        cost_explorer_requests: calls.get("ce:GetCostAndUsage").copied().unwrap_or(0),
        cost_explorer_budget: ce_budget,
        alerts_sent,
        requests: OwnRequests::so_far(),
        notes,
    })
}

impl<'a> CostReader<'a> {
    /// A reader of `run`'s window, which ends today (UTC) as of `now`.
    fn new(clients: &'a Clients, config: &'a JobConfig, run: &'a Run, now: SystemTime) -> Self {
        let now_s = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        let today = day_of(now_s);
        let mut notes = Vec::new();
        if config.table_name.is_none() {
            notes.push(
                "no decision table: nothing cached and Cost Explorer requests are not budgeted"
                    .into(),
            );
        }
        Self {
            clients,
            config,
            metric: &run.metric,
            first_day: today - i64::from(run.lookback_days),
            today,
            now_s,
            budget: CeBudget {
                daily_limit: config.ce_daily_requests,
                ..CeBudget::default()
            },
            notes,
        }
    }
}

/// Each budget's status: `total` against the account's spend, the others against the spend
/// under their value of the budget tag (`tagged`); a budget with no such spend is a note.
fn judge_budgets(
    run: &Run,
    total: &[f64],
    tagged: Option<&DailyCosts>,
    (first_day, today): (i64, i64),
    notes: &mut Vec<String>,
) -> Vec<BudgetStatus> {
    let params = Params::default();
    let mut budgets = Vec::new();
    for (name, b) in &run.budgets {
        let series = if name == "total" {
            Some(total.to_vec())
        } else {
            tagged.and_then(|t| {
                let key = format!("{}${name}", run.budget_tag.as_deref().unwrap_or_default());
                t.by_key.get(&key).or_else(|| t.by_key.get(name)).cloned()
            })
        };
        match series {
            Some(s) => {
                let fs = forecast(&s, first_day, today, &params);
                budgets.push(budget_status(name, b, &s, first_day, today, &fs));
            }
            None => notes.push(format!(
                "budget {name}: no cost under that tag value in the window"
            )),
        }
    }
    budgets
}

/// x86_64 Lambda duration in the usage-type grouping that would cost less on arm64.
fn arm64_from_usage(
    run: &Run,
    by_group: Option<&DailyCosts>,
    notes: &mut Vec<String>,
) -> Option<Recommendation> {
    let (Some(Grouping::UsageType), Some(usage)) = (&run.group_by, by_group) else {
        if run.group_by.is_none() {
            notes.push("group_by USAGE_TYPE adds savings computed from the cost data itself (arm64 on x86 duration)".into());
        }
        return None;
    };
    let prices = trimtab_core::pricing::PriceTable::us_east_1();
    let (x86_monthly, saving) = trimtab_core::cost::arm64_saving_from_usage(usage, 30, &prices)?;
    let cheaper_pct = 100.0
        * (1.0
            - prices.arm64.duration_tiers[0].usd_per_gb_s
                / prices.x86_64.duration_tiers[0].usd_per_gb_s);
    Some(Recommendation {
        source: "cost-data".into(),
        estimated_monthly_savings_usd: saving,
        basis: format!(
            "x86_64 Lambda duration costs ${x86_monthly:.2}/month (usage types *Lambda-GB-Second, last 30 days); the same GB-seconds cost {cheaper_pct:.1}% less on arm64 at list prices, if the code runs there"
        ),
    })
}

/// Savings the other jobs measured, from their latest results in the decision table.
async fn measured_savings(
    clients: &Clients,
    config: &JobConfig,
    notes: &mut Vec<String>,
) -> Vec<Recommendation> {
    let Some(table) = &config.table_name else {
        notes.push(
            "no decision table: savings from right-sizing and DynamoDB runs unavailable".to_owned(),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (job, what) in [
        ("rightsizing", "Lambda right-sizing"),
        ("dynamodb-scaling", "DynamoDB capacity"),
    ] {
        let read = costs::latest_result(clients, table, job)
            .await
            .map(|r| r.map(serde_json::from_value::<SavingsHeadline>));
        match read {
            Ok(Some(Ok(h))) if h.monthly_savings_usd > 0.0 => out.push(Recommendation {
                source: job.to_owned(),
                estimated_monthly_savings_usd: round2(h.monthly_savings_usd),
                basis: format!(
                    "{what}: {} from the {} run of {} ({} resources judged on measured metrics)",
                    h.detail, h.mode, h.generated_at, h.resources
                ),
            }),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => notes.push(format!("{job} result unreadable: {e}")),
            Ok(None) => notes.push(format!("no {job} result yet: run it for measured savings")),
            Err(e) => notes.push(format!("{job} result unreadable: {e}")),
        }
    }
    out.sort_by(|a, b| {
        b.estimated_monthly_savings_usd
            .total_cmp(&a.estimated_monthly_savings_usd)
    });
    out
}

/// Sends each new anomaly and each newly crossed threshold to SNS, once (claimed in the table).
async fn alert(
    clients: &Clients,
    config: &JobConfig,
    found: &[Anomaly],
    budgets: &[BudgetStatus],
    month: &str,
    notes: &mut Vec<String>,
) -> Result<Vec<String>, JobError> {
    let Some(topic) = &config.alert_topic_arn else {
        return Ok(Vec::new());
    };
    let Some(table) = &config.table_name else {
        notes.push("alerts need the decision table to go out once: none sent".to_owned());
        return Ok(Vec::new());
    };
    let mut messages: Vec<(String, String, String)> = Vec::new();
    for a in found {
        messages.push((
            format!("anomaly#{}#{}", a.date, a.service),
            format!("Cost anomaly: {} on {}", a.service, a.date),
            format!(
                "{} spent ${:.2} on {} against ${:.2} expected (impact ${:.2}, score {:.1}).",
                a.service, a.actual_usd, a.date, a.expected_usd, a.impact_usd, a.score
            ),
        ));
    }
    for b in budgets {
        for t in &b.crossed_pct {
            messages.push((
                format!("budget#{month}#{}#{t}", b.budget),
                format!("Budget {} passed {t}%", b.budget),
                format!(
                    "Budget {}: ${:.2} spent this month, {:.1}% of ${:.2}; forecast ${:.2}.",
                    b.budget,
                    b.month_to_date_usd,
                    b.used_pct,
                    b.monthly_usd,
                    b.forecast_month_end_usd
                ),
            ));
        }
        for p in &b.predicted {
            messages.push((
                format!("forecast#{month}#{}#{}", b.budget, p.threshold_pct),
                format!("Budget {} forecast to pass {}%", b.budget, p.threshold_pct),
                format!(
                    "Budget {}: the forecast passes {}% on {}.",
                    b.budget, p.threshold_pct, p.date
                ),
            ));
        }
    }
    let mut sent = Vec::new();
    for (key, subject, body) in messages {
        if !costs::claim_alert(clients, table, &key).await? {
            continue;
        }
        match costs::publish(clients, topic, &subject, &body).await {
            Ok(()) => sent.push(key),
            // Not sent: the claim is given back so the next run sends it; the others go on.
            Err(e) => {
                notes.push(format!("alert {key} not sent, the next run retries: {e}"));
                if let Err(u) = costs::unclaim_alert(clients, table, &key).await {
                    notes.push(format!(
                        "alert {key} could not be marked unsent, so it is lost: {u}"
                    ));
                }
            }
        }
    }
    Ok(sent)
}
