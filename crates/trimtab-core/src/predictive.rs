//! Predictive scaling for one provisioned dimension: a forecast ([`crate::forecast`]) turned into
//! scheduled minimum capacity ahead of the forecast ramps, chosen only where replaying the
//! history says it pays.
//!
//! Target tracking is reactive: it scales out after two minutes above the target and the update
//! delay, so a steep morning ramp throttles unless the target leaves headroom all day. A
//! scheduled minimum raised ahead of the ramp (a scheduled action whose minimum is above the
//! current capacity scales out at once) serves the ramp, and with the ramps served a higher
//! target may hold the rest of the day within the same throttling: that is where predictive
//! scaling is cheaper. The schedule follows the forecast's weekday hours (the weekly profile of
//! the chosen model), as daily actions: raises on weekdays only, each `lead` minutes ahead of its
//! hour, and the return to the base minimum every day (harmless where it already is).
//!
//! The choice replays the whole history both ways (the simulator, [`crate::capacity::simulate`],
//! models the alarms, the update delay, burst capacity and DynamoDB's decrease budget, which a
//! scheduled decrease spends too): predictive is adopted only where it is cheaper at no more
//! throttling, or throttles less at no more cost. Without a forecast (too little history, no
//! stable shape) it is reactive only, and says why.

use serde::{Deserialize, Serialize};

use crate::calendar::weekday;
use crate::capacity::{
    BillingMode, DimensionAdvice, Platform, Policy, ScheduledRange, SimResult, simulate,
};
use crate::forecast::{Outcome, forecast};
use crate::scaling_plan::{Overrides, SCHEDULE_TIMEZONE, ScalingSettings, ScheduledAction};
use crate::stats::{median, round2};
use crate::zone::Zone;

/// Minutes a raise runs ahead of its hour, beyond the platform's update delay.
const LEAD_MARGIN_MIN: u32 = 10;
/// A step in the schedule needs a change of at least this share of the capacity.
const STEP: f64 = 0.2;
/// Most scheduled actions one dimension gets.
const MAX_ACTIONS: usize = 12;

/// A dimension's demand: per minute for the replays, and per clock hour over a longer history
/// for the forecast.
#[derive(Debug, Clone, Copy)]
pub struct Demand<'a> {
    /// Units consumed in each minute, the first at `start_epoch_min`.
    pub per_minute: &'a [f64],
    pub start_epoch_min: i64,
    /// Units consumed in each clock hour, the first starting at `hourly_start_epoch_min` (a whole
    /// hour). Empty: the complete hours of `per_minute`.
    pub hourly: &'a [f64],
    pub hourly_start_epoch_min: i64,
    /// The time zone the business keeps (its forecast is by local hours, its schedule written
    /// in it); `None`: UTC.
    pub zone: Option<&'a Zone>,
}

impl Demand<'_> {
    /// The zone's offset at the end of the per-minute window (the schedule is for the days after
    /// it), minutes.
    fn offset_min(&self) -> i32 {
        let end = self.start_epoch_min + self.per_minute.len() as i64;
        self.zone.map_or(0, |z| z.offset_min(end))
    }

    fn timezone(&self) -> String {
        self.zone
            .map_or_else(|| SCHEDULE_TIMEZONE.to_owned(), |z| z.name.clone())
    }
}

/// The forecast behind the advice, as the report shows it: its model and measured accuracy, or
/// `method: "none"` and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastSummary {
    /// `weekly_profile`, `daily_profile`, `seasonal_naive`, or `none`.
    pub method: String,
    pub horizon_hours: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backtest_wape_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backtest_bias_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_coverage_pct: Option<f64>,
    /// Hours of history the forecast had.
    pub history_hours: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Hours ahead the schedule is forecast: a week, so every weekday is seen.
pub const HORIZON_HOURS: usize = 168;

/// Days of hourly history a forecast reads: four weeks, so each hour of the week has four values
/// to take a median of (CloudWatch keeps hourly data 455 days).
pub const HISTORY_DAYS: i64 = 28;

/// Predictive against reactive, as the report shows it. Costs are per month (730 hours) of the
/// replayed history's traffic; throttling is the share of the demand's units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictiveAdvice {
    /// `predictive` or `reactive`.
    pub chosen: String,
    pub reactive_cost_usd: f64,
    pub predictive_cost_usd: Option<f64>,
    pub reactive_throttled_pct: f64,
    pub predictive_throttled_pct: Option<f64>,
    /// Throttled request units per month, each way.
    pub reactive_throttled_requests: f64,
    pub predictive_throttled_requests: Option<f64>,
    pub backtest_wape_pct: Option<f64>,
    /// The target target tracking alone runs at.
    pub reactive_target_pct: f64,
    /// The target the predictive policy runs at (its schedule serves the ramps).
    pub predictive_target_pct: Option<f64>,
    /// The schedule behind `predictive_target_pct` (the report shows it as
    /// `recommended_scheduled_actions`).
    #[serde(skip)]
    pub schedule: Vec<ScheduledRange>,
    pub reason: String,
    /// The forecast it rests on.
    #[serde(skip)]
    pub forecast: Option<ForecastSummary>,
    /// The schedule's time zone (IANA; `UTC` unless the resource names one).
    #[serde(skip)]
    pub timezone: String,
    /// Lambda provisioned concurrency only: cold starts a month each way (new instances started
    /// while demand ran above the provisioned capacity, [`cold_starts`]), and what each one
    /// removed costs (negative: predictive also saves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reactive_cold_starts: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictive_cold_starts: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd_per_cold_start_removed: Option<f64>,
}

impl PredictiveAdvice {
    /// The schedule as `PutScheduledAction` takes it (empty when reactive).
    pub fn scheduled_actions(&self) -> Vec<ScheduledAction> {
        let zone = if self.timezone.is_empty() {
            SCHEDULE_TIMEZONE
        } else {
            self.timezone.as_str()
        };
        self.schedule
            .iter()
            .map(|r| ScheduledAction::from_range(r, zone))
            .collect()
    }
}

/// What the choice is made under.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub platform: Platform,
    pub usd_per_unit_hour: f64,
    /// `Some(usd)`: demand beyond the capacity is not refused but spills over to new instances
    /// (Lambda provisioned concurrency: on-demand, cold, at a dearer duration rate), each unit at
    /// `usd`; the advice then counts cold starts. `None`: it is throttled (DynamoDB).
    pub spillover_usd_per_unit: Option<f64>,
    /// Highest target the schedule may let the policy run at (the reactive one's when the owner
    /// fixed the target).
    pub highest_target_pct: f64,
}

impl Setting {
    /// On `platform` at `usd_per_unit_hour`, targets up to 90%.
    pub fn new(platform: Platform, usd_per_unit_hour: f64) -> Self {
        Self {
            platform,
            usd_per_unit_hour,
            spillover_usd_per_unit: None,
            highest_target_pct: 90.0,
        }
    }
}

/// Replays of one dimension's per-minute demand, priced per 730-hour month.
struct Replayer<'a> {
    minutes: &'a [f64],
    start_epoch_min: i64,
    setting: Setting,
    month: f64,
}

impl<'a> Replayer<'a> {
    fn new(demand: Demand<'a>, setting: Setting) -> Self {
        let mut setting = setting;
        setting.platform.utc_offset_min = demand.offset_min();
        Self {
            minutes: demand.per_minute,
            start_epoch_min: demand.start_epoch_min,
            setting,
            month: 730.0 * 60.0 / demand.per_minute.len().max(1) as f64,
        }
    }

    /// Replays `p` from where target tracking would hold the first minute; with its cost a
    /// month (capacity, plus spillover where demand beyond it is served).
    fn replay(&self, p: &Policy, timeline: Option<&mut Vec<f64>>) -> (SimResult, f64) {
        let first_rate = self.minutes.first().map_or(1.0, |d| d / 60.0);
        let initial = (first_rate / (p.target_pct / 100.0)).ceil();
        let s = self.setting;
        let r = simulate(
            self.minutes,
            self.start_epoch_min,
            initial,
            p,
            s.platform,
            timeline,
        );
        let usd = (r.provisioned_unit_hours * s.usd_per_unit_hour
            + r.throttled_units * s.spillover_usd_per_unit.unwrap_or(0.0))
            * self.month;
        (r, usd)
    }

    /// Cold starts a month under `p`.
    fn cold(&self, p: &Policy) -> f64 {
        let mut timeline = Vec::with_capacity(self.minutes.len());
        self.replay(p, Some(&mut timeline));
        (cold_starts(self.minutes, &timeline) * self.month).round()
    }

    /// From the highest target allowed down to `base`'s, in 5-point steps, the first
    /// schedule-backed policy whose throttled units stay within `bar` (over the replay). A
    /// higher target holds less capacity, so the first is the cheapest.
    fn search(
        &self,
        need: &[f64; 24],
        base: &Policy,
        bar: f64,
    ) -> Option<(Policy, SimResult, f64)> {
        let lowest = base.target_pct;
        let highest = self.setting.highest_target_pct.max(lowest);
        let steps = ((highest - lowest) / 5.0 + 1e-9).floor() as u32;
        (0..=steps).rev().find_map(|k| {
            let target = lowest + 5.0 * f64::from(k);
            let schedule = schedule_for(need, target, base, self.setting.platform);
            if schedule.is_empty() {
                return None;
            }
            let p = Policy {
                target_pct: target,
                schedule,
                ..base.clone()
            };
            let (r, usd) = self.replay(&p, None);
            (r.throttled_units <= bar).then_some((p, r, usd))
        })
    }
}

/// The forecast of a dimension's hourly demand, and from it the largest rate each hour of the
/// weekday needs (units a second: the hour's forecast upper bound, times the hour's typical
/// ratio of its busiest minute to its mean). `Err`: why no forecast was made.
fn forecast_need(demand: Demand<'_>) -> (ForecastSummary, Result<([f64; 24], f64), String>) {
    let offset = demand.offset_min();
    let (mut hourly, mut first_hour, peak_ratio) =
        hourly(demand.per_minute, demand.start_epoch_min, offset);
    if !demand.hourly.is_empty() {
        hourly = demand.hourly.to_vec();
        first_hour = demand.hourly_start_epoch_min.div_euclid(60);
    }
    // By the business's local hours: a change of daylight saving time moves nothing.
    let (hourly, first_local) = demand.zone.map_or((hourly.clone(), first_hour), |z| {
        z.local_hours(&hourly, first_hour)
    });
    let (hourly, first_how, outcome) = fit(hourly, hour_of_week(first_local));
    let summary = summary(&outcome, hourly.len());
    let f = match outcome {
        Outcome::Made(f) => f,
        Outcome::None { reason } => return (summary, Err(reason)),
    };
    let start_how = (first_how + hourly.len()) % 168;
    let mut need = [0.0_f64; 24];
    for (h, v) in f.upper.iter().enumerate() {
        let how = (start_how + h) % 168;
        if how / 24 < 5 {
            let hour = how % 24;
            need[hour] = need[hour].max(v / 3600.0 * peak_ratio[hour]);
        }
    }
    (summary, Ok((need, f.backtest_wape_pct)))
}

/// Plans predictive scaling for a dimension whose `demand` runs under `reactive` (target
/// tracking; any schedule it has is dropped).
pub fn plan(demand: Demand<'_>, reactive: &Policy, setting: Setting) -> PredictiveAdvice {
    let rp = Replayer::new(demand, setting);
    let spills = setting.spillover_usd_per_unit.is_some();
    let month = rp.month;
    let reactive = Policy {
        schedule: Vec::new(),
        ..reactive.clone()
    };
    let (react, react_usd) = rp.replay(&reactive, None);
    let pct = |r: &SimResult| round2(100.0 * r.throttled_fraction());
    let mut advice = PredictiveAdvice {
        chosen: "reactive".to_owned(),
        reactive_cost_usd: round2(react_usd),
        predictive_cost_usd: None,
        reactive_throttled_pct: pct(&react),
        predictive_throttled_pct: None,
        reactive_throttled_requests: (react.throttled_units * month).round(),
        predictive_throttled_requests: None,
        backtest_wape_pct: None,
        reactive_target_pct: reactive.target_pct,
        predictive_target_pct: None,
        schedule: Vec::new(),
        reason: String::new(),
        forecast: None,
        timezone: demand.timezone(),
        reactive_cold_starts: spills.then(|| rp.cold(&reactive)),
        predictive_cold_starts: None,
        usd_per_cold_start_removed: None,
    };
    let (summary, need) = forecast_need(demand);
    advice.forecast = Some(summary);
    let (need, wape) = match need {
        Ok(n) => n,
        Err(reason) => {
            advice.reason = format!("no forecast ({reason}): reactive only");
            return advice;
        }
    };
    advice.backtest_wape_pct = Some(wape);
    let Some((p, r, usd)) = rp.search(&need, &reactive, react.throttled_units) else {
        advice.reason =
            "a forecast schedule throttles more than target tracking alone: reactive only".into();
        return advice;
    };
    advice.predictive_cost_usd = Some(round2(usd));
    advice.predictive_throttled_pct = Some(pct(&r));
    advice.predictive_throttled_requests = Some((r.throttled_units * month).round());
    advice.predictive_target_pct = Some(p.target_pct);
    if let Some(before) = advice.reactive_cold_starts {
        let after = rp.cold(&p);
        advice.predictive_cold_starts = Some(after);
        advice.usd_per_cold_start_removed =
            (before > after).then(|| round2((usd - react_usd) / (before - after)));
    }
    let cheaper = usd < react_usd && r.throttled_units <= react.throttled_units;
    let safer = r.throttled_units < react.throttled_units && usd <= react_usd;
    if cheaper || safer {
        advice.chosen = "predictive".to_owned();
        advice.reason = format!(
            "scheduled minimums ahead of the forecast ramps (backtest error {wape:.1}%) at a {:.0}% target: ${:.2}/month against ${:.2}, {:.3}% throttled against {:.3}%",
            p.target_pct,
            usd,
            react_usd,
            100.0 * r.throttled_fraction(),
            100.0 * react.throttled_fraction()
        );
        advice.schedule = p.schedule;
    } else {
        advice.reason = format!(
            "the forecast schedule costs ${usd:.2}/month against ${react_usd:.2} for no less throttling: reactive only"
        );
    }
    advice
}

/// Target tracking alone at `s` (the tags already applied), and the setting a schedule is
/// searched under: a target fixed by `trimtab:target` stays fixed.
fn unscheduled(s: ScalingSettings, overrides: &Overrides, setting: Setting) -> (Policy, Setting) {
    let policy = Policy {
        target_pct: s.target_pct,
        min_capacity: s.min_capacity,
        max_capacity: s.max_capacity,
        schedule: Vec::new(),
    };
    let setting = Setting {
        highest_target_pct: overrides.target_pct.unwrap_or(setting.highest_target_pct),
        ..setting
    };
    (policy, setting)
}

/// Predictive scaling against target tracking alone, for a dimension recommended provisioned:
/// the row takes the winner's target, schedule, cost and throttling. Where the recommendation
/// leaned on an unforecast business-hours minimum and target tracking alone also keeps within
/// the budgets, that is what is recommended (a schedule is only written from a forecast).
pub fn choose(
    a: &mut DimensionAdvice,
    demand: Demand<'_>,
    overrides: &Overrides,
    setting: Setting,
) -> Option<PredictiveAdvice> {
    if a.recommended_billing_mode != BillingMode::Provisioned {
        return None;
    }
    let alone = a.reactive_policy.clone();
    let s = overrides.apply(match &alone {
        Some(p) => ScalingSettings {
            target_pct: p.target_pct,
            min_capacity: p.min_capacity,
            max_capacity: p.max_capacity,
        },
        None => ScalingSettings {
            target_pct: a.recommended_target_utilization.unwrap_or(70.0),
            min_capacity: a.recommended_min_capacity.unwrap_or(1.0),
            max_capacity: a.recommended_max_capacity.unwrap_or(40_000.0),
        },
    });
    let (reactive, setting) = unscheduled(s, overrides, setting);
    let p = plan(demand, &reactive, setting);
    let adopt = |a: &mut DimensionAdvice, target, schedule, usd, throttled| {
        a.recommended_target_utilization = Some(target);
        a.recommended_min_capacity = Some(reactive.min_capacity);
        a.recommended_max_capacity = Some(reactive.max_capacity);
        a.recommended_schedule = schedule;
        a.projected_monthly_cost_usd = usd;
        a.projected_throttled_requests = throttled;
    };
    // Without a target-tracking policy that keeps within the budgets on its own, the
    // recommendation's (with its business-hours minimum) is the bar: predictive must throttle
    // no more than it.
    let within = alone.is_some()
        || p.predictive_throttled_requests
            .is_some_and(|t| t <= a.projected_throttled_requests);
    if p.chosen == "predictive" && !within {
        let mut p = p;
        p.chosen = "reactive".to_owned();
        p.reason = format!(
            "{}; but it throttles more than the recommended policy with its business-hours minimum: reactive",
            p.reason
        );
        p.schedule.clear();
        a.reasons.push(format!("predictive: {}", p.reason));
        return Some(p);
    }
    if p.chosen == "predictive" {
        let target = p.predictive_target_pct.unwrap_or(reactive.target_pct);
        let usd = p
            .predictive_cost_usd
            .unwrap_or(a.projected_monthly_cost_usd);
        let throttled = p.predictive_throttled_requests.unwrap_or(0.0);
        adopt(a, target, p.schedule.clone(), usd, throttled);
    } else if alone.is_some() && !a.recommended_schedule.is_empty() {
        let (usd, throttled) = (p.reactive_cost_usd, p.reactive_throttled_requests);
        adopt(a, reactive.target_pct, Vec::new(), usd, throttled);
    }
    a.reasons.push(format!("predictive: {}", p.reason));
    Some(p)
}

/// A table recommended on-demand, tried once more with predictive scaling. Target tracking alone
/// could not keep some dimension within its throttle budget (or not for less than on-demand),
/// but minimums raised ahead of the forecast ramps may: each dimension gets the cheapest
/// forecast schedule (targets from the highest down, on target tracking's default 70% policy
/// with the tags on top) that keeps within its budget, on half the burst capacity too. Adopted
/// only where every dimension has
/// one and together they cost less than on-demand: the advice then recommends provisioned with
/// those schedules, and each dimension's comparison is returned (`reactive` is target tracking
/// alone, which throttles past the budget or costs more). `None`: nothing changed.
pub fn rescue(
    table: &mut [DimensionAdvice],
    demands: &[Demand<'_>],
    overrides: &Overrides,
    settings: &[Setting],
) -> Option<Vec<PredictiveAdvice>> {
    if table.is_empty()
        || table.len() != demands.len()
        || table
            .iter()
            .any(|a| a.recommended_billing_mode != BillingMode::PayPerRequest)
    {
        return None;
    }
    let mut found = Vec::with_capacity(table.len());
    let timezone = demands[0].timezone();
    for ((a, &demand), &setting) in table.iter().zip(demands).zip(settings) {
        let peak = demand.per_minute.iter().copied().fold(0.0, f64::max) / 60.0;
        let s = overrides.apply(ScalingSettings {
            target_pct: 70.0,
            min_capacity: 1.0,
            max_capacity: (peak / 0.7 * 1.5).ceil().clamp(1.0, 40_000.0),
        });
        let (base, setting) = unscheduled(s, overrides, setting);
        let rp = Replayer::new(demand, setting);
        let (summary, need) = forecast_need(demand);
        let (need, wape) = need.ok()?;
        let bar = a.throttle_budget_requests / rp.month;
        let (p, r, usd) = rp.search(&need, &base, bar)?;
        // Burst capacity is best effort: the schedule must keep within the budget on half of it
        // too, as every recommended policy must.
        let mut stressed = setting;
        stressed.platform.burst_window_s /= 2.0;
        let (sr, _) = Replayer::new(demand, stressed).replay(&p, None);
        if sr.throttled_units > bar {
            return None;
        }
        let (react, react_usd) = rp.replay(&base, None);
        found.push((
            p,
            r,
            usd,
            (react, react_usd, base.target_pct),
            wape,
            summary,
            rp.month,
        ));
    }
    let predictive_usd: f64 = found.iter().map(|f| f.2).sum();
    let on_demand_usd: f64 = table.iter().map(|a| a.on_demand_monthly_cost_usd).sum();
    if predictive_usd >= on_demand_usd {
        return None;
    }
    let pct = |r: &SimResult| round2(100.0 * r.throttled_fraction());
    let mut out = Vec::with_capacity(found.len());
    for (a, (p, r, usd, (react, react_usd, react_target), wape, summary, month)) in
        table.iter_mut().zip(found)
    {
        let reason = format!(
            "target tracking alone throttles {:.3}% at {react_target:.0}% (${react_usd:.2}/month); scheduled minimums ahead of the forecast ramps (backtest error {wape:.1}%) keep within the throttle budget at a {:.0}% target: ${usd:.2}/month, provisioned ${predictive_usd:.2} for the table against on-demand ${on_demand_usd:.2}",
            100.0 * react.throttled_fraction(),
            p.target_pct,
        );
        a.recommended_billing_mode = BillingMode::Provisioned;
        a.recommended_target_utilization = Some(p.target_pct);
        a.recommended_min_capacity = Some(p.min_capacity);
        a.recommended_max_capacity = Some(p.max_capacity);
        a.recommended_schedule = p.schedule.clone();
        a.projected_monthly_cost_usd = round2(usd);
        a.projected_throttled_requests = (r.throttled_units * month).round();
        a.reasons.push(format!("predictive: {reason}"));
        out.push(PredictiveAdvice {
            chosen: "predictive".to_owned(),
            reactive_cost_usd: round2(react_usd),
            predictive_cost_usd: Some(round2(usd)),
            reactive_throttled_pct: pct(&react),
            predictive_throttled_pct: Some(pct(&r)),
            reactive_throttled_requests: (react.throttled_units * month).round(),
            predictive_throttled_requests: Some((r.throttled_units * month).round()),
            backtest_wape_pct: Some(wape),
            reactive_target_pct: react_target,
            predictive_target_pct: Some(p.target_pct),
            schedule: p.schedule,
            reason,
            forecast: Some(summary),
            timezone: timezone.clone(),
            reactive_cold_starts: None,
            predictive_cold_starts: None,
            usd_per_cold_start_removed: None,
        });
    }
    Some(out)
}

/// The forecast of an hourly series whose first hour starts at `start_epoch_min`, as the report
/// shows it (for a series no schedule is planned for).
pub fn forecast_summary(
    hourly: &[f64],
    start_epoch_min: i64,
    zone: Option<&Zone>,
) -> ForecastSummary {
    let first_hour = start_epoch_min.div_euclid(60);
    let (hourly, first_local) = zone.map_or((hourly.to_vec(), first_hour), |z| {
        z.local_hours(hourly, first_hour)
    });
    let (hourly, _, outcome) = fit(hourly, hour_of_week(first_local));
    summary(&outcome, hourly.len())
}

/// The forecast of `hourly` (the first hour at hour of week `first_how`), from its first demand
/// on: a newer resource's earlier hours are not zeros. Returns the series used and its first
/// hour of week.
fn fit(mut hourly: Vec<f64>, first_how: usize) -> (Vec<f64>, usize, Outcome) {
    let lead = hourly.iter().position(|&v| v > 0.0).unwrap_or(hourly.len());
    hourly.drain(..lead);
    let first_how = (first_how + lead) % 168;
    let outcome = forecast(&hourly, first_how, HORIZON_HOURS);
    (hourly, first_how, outcome)
}

/// Cold starts a replay implies: demand above the capacity in force (`timeline`, units a second)
/// runs on new instances, each started once per episode (a run of minutes with spillover), so an
/// episode costs as many cold starts as its largest spill. `demand` is in units a minute, as
/// [`simulate`] takes it (one unit a second per concurrent request).
pub fn cold_starts(demand: &[f64], timeline: &[f64]) -> f64 {
    let (mut total, mut episode) = (0.0, 0.0_f64);
    for (d, cap) in demand.iter().zip(timeline) {
        let spill = (d / 60.0 - cap).max(0.0);
        if spill > 0.0 {
            episode = episode.max(spill);
        } else {
            total += episode.ceil();
            episode = 0.0;
        }
    }
    total + episode.ceil()
}

/// The report's view of a forecast.
fn summary(outcome: &Outcome, history_hours: usize) -> ForecastSummary {
    match outcome {
        Outcome::Made(f) => ForecastSummary {
            method: serde_json::to_value(f.method)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            horizon_hours: f.horizon_hours,
            backtest_wape_pct: Some(f.backtest_wape_pct),
            backtest_bias_pct: Some(f.backtest_bias_pct),
            interval_coverage_pct: Some(f.interval_coverage_pct),
            history_hours,
            reason: None,
        },
        Outcome::None { reason } => ForecastSummary {
            method: "none".to_owned(),
            horizon_hours: 0,
            backtest_wape_pct: None,
            backtest_bias_pct: None,
            interval_coverage_pct: None,
            history_hours,
            reason: Some(reason.clone()),
        },
    }
}

/// Hour of the week (0 = Monday 00:00 UTC) of an epoch hour.
fn hour_of_week(epoch_hour: i64) -> usize {
    weekday(epoch_hour.div_euclid(24)) as usize * 24 + epoch_hour.rem_euclid(24) as usize
}

/// Hourly totals of the complete clock hours in `demand`, the epoch hour of the first, and for
/// each hour of the local day (`offset_min` from UTC) the median ratio of an hour's busiest
/// minute to its mean (capacity must cover the minute, not the hour).
fn hourly(demand: &[f64], start_epoch_min: i64, offset_min: i32) -> (Vec<f64>, i64, [f64; 24]) {
    let skip = (60 - start_epoch_min.rem_euclid(60)) % 60;
    let skip = usize::try_from(skip).unwrap_or(0).min(demand.len());
    let first_hour = (start_epoch_min + skip as i64).div_euclid(60);
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); 24];
    let sums: Vec<f64> = demand[skip..]
        .chunks_exact(60)
        .enumerate()
        .map(|(k, hour)| {
            let sum: f64 = hour.iter().sum();
            let peak = hour.iter().copied().fold(0.0, f64::max);
            if sum > 0.0 {
                let local = ((first_hour + k as i64) * 60 + 30 + i64::from(offset_min))
                    .div_euclid(60)
                    .rem_euclid(24);
                ratios[local as usize].push(peak * 60.0 / sum);
            }
            sum
        })
        .collect();
    let mut peak_ratio = [1.0; 24];
    for (h, r) in ratios.iter_mut().enumerate() {
        if !r.is_empty() {
            peak_ratio[h] = median(r).max(1.0);
        }
    }
    (sums, first_hour, peak_ratio)
}

/// Daily actions that hold the minimum at the capacity `need` (units a second, by hour of day)
/// calls for at `target_pct`, where that is well above the base minimum: a raise `lead` minutes
/// ahead of each step up (weekdays), a lowering at each step down, and the return to the base
/// minimum every day. Empty when the need never rises well above the base.
fn schedule_for(
    need: &[f64; 24],
    target_pct: f64,
    policy: &Policy,
    platform: Platform,
) -> Vec<ScheduledRange> {
    let base = policy.min_capacity.max(1.0);
    let raw: Vec<f64> = need
        .iter()
        .map(|n| {
            (n / (target_pct / 100.0))
                .ceil()
                .clamp(base, policy.max_capacity.max(base))
        })
        .collect();
    // Only the busy hours are scheduled (twice the quiet level or more): target tracking follows
    // the rest, and a minimum held through quiet hours only costs.
    let quiet = raw.iter().copied().fold(f64::INFINITY, f64::min).max(base);
    let wanted: Vec<f64> = raw
        .iter()
        .map(|&w| if w >= 2.0 * quiet { w } else { base })
        .collect();
    let lead = platform.update_delay_min as u32 + LEAD_MARGIN_MIN;
    let mut out = Vec::new();
    let mut level = base;
    for (hour, &w) in wanted.iter().enumerate() {
        let changed = (w - level).abs() > STEP * level.max(w);
        if !changed {
            continue;
        }
        let to_base = w <= base * (1.0 + STEP);
        let minute = if w > level {
            (hour as u32 * 60 + 1440 - lead) % 1440
        } else {
            hour as u32 * 60
        };
        out.push(ScheduledRange {
            minute_of_day: minute,
            weekdays_only: !to_base,
            min_capacity: if to_base { base } else { w },
            max_capacity: policy.max_capacity,
        });
        level = if to_base { base } else { w };
    }
    if level > base && wanted[0] <= base {
        // Back to the base at midnight, every day (unless the busy hours run on past it: the
        // lowering after them, every day, ends Friday's too).
        out.push(ScheduledRange {
            minute_of_day: 0,
            weekdays_only: false,
            min_capacity: base,
            max_capacity: policy.max_capacity,
        });
    }
    if out.len() > MAX_ACTIONS {
        return Vec::new();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The next of a deterministic run of uniform numbers in 0..1 (xorshift), for test traffic.
    pub(super) fn uniform(state: &mut u64) -> f64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        (*state >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Per-minute write demand of a business API for `weeks` weeks starting on a Monday: a quiet
    /// floor, a ramp to the busy level in a few minutes at 08:00 UTC on weekdays, back at 18:00.
    fn business(weeks: usize, busy_per_s: f64, noise: f64) -> (Vec<f64>, i64) {
        // 2026-11-02 was a Monday.
        let start_day = crate::calendar::days_from_civil(2026, 11, 2);
        let mut state = 0x2545_F491_4F6C_DD1D_u64;
        let demand = (0..weeks * 7 * 1440)
            .map(|m| {
                let u = uniform(&mut state);
                let (day, minute) = (m / 1440, m % 1440);
                let weekday = day % 7 < 5;
                let busy = weekday && (8 * 60..18 * 60).contains(&minute);
                let rate = if busy { busy_per_s } else { 0.05 * busy_per_s };
                60.0 * rate * (1.0 + noise * (2.0 * u - 1.0))
            })
            .collect();
        (demand, start_day * 1440)
    }

    fn minutes(per_minute: &[f64], start_epoch_min: i64) -> Demand<'_> {
        Demand {
            per_minute,
            start_epoch_min,
            hourly: &[],
            hourly_start_epoch_min: 0,
            zone: None,
        }
    }

    fn reactive() -> Policy {
        Policy {
            target_pct: 70.0,
            min_capacity: 5.0,
            max_capacity: 40_000.0,
            schedule: Vec::new(),
        }
    }

    #[test]
    fn a_sharp_weekday_ramp_is_served_by_a_forecast_schedule() {
        let (demand, start) = business(3, 400.0, 0.1);
        let a = plan(
            minutes(&demand, start),
            &reactive(),
            Setting::new(Platform::default(), 0.00065),
        );
        assert_eq!(a.chosen, "predictive", "{a:#?}");
        eprintln!(
            "predictive ${:?}/month {:?}% throttled at {:?}% vs reactive ${}/month {}%",
            a.predictive_cost_usd,
            a.predictive_throttled_pct,
            a.predictive_target_pct,
            a.reactive_cost_usd,
            a.reactive_throttled_pct
        );
        let (pc, pt) = (
            a.predictive_cost_usd.unwrap_or(f64::MAX),
            a.predictive_throttled_pct.unwrap_or(f64::MAX),
        );
        assert!(
            (pc < a.reactive_cost_usd && pt <= a.reactive_throttled_pct)
                || (pt < a.reactive_throttled_pct && pc <= a.reactive_cost_usd),
            "{a:#?}"
        );
        assert!(a.backtest_wape_pct.is_some_and(|w| w < 10.0), "{a:#?}");
        // The raise comes ahead of 08:00 on weekdays, and the minimum is back down at night.
        let raise = a
            .schedule
            .iter()
            .find(|s| s.min_capacity > 5.0)
            .expect("raise");
        assert_eq!(
            a.schedule.iter().filter(|s| s.min_capacity > 5.0).count(),
            1,
            "{a:#?}"
        );
        assert!(
            raise.weekdays_only && (7 * 60..8 * 60).contains(&raise.minute_of_day),
            "{a:#?}"
        );
        assert!(
            a.schedule
                .iter()
                .any(|s| s.min_capacity == 5.0 && !s.weekdays_only)
        );
    }

    #[test]
    fn without_a_shape_or_enough_history_it_stays_reactive() {
        let (short, start) = business(1, 400.0, 0.1);
        let a = plan(
            minutes(&short, start),
            &reactive(),
            Setting::new(Platform::default(), 0.00065),
        );
        assert_eq!(a.chosen, "reactive");
        assert!(a.reason.contains("two weeks"), "{a:#?}");
        // Flat, noisy demand: nothing to schedule.
        let flat: Vec<f64> = business(3, 400.0, 0.1)
            .0
            .iter()
            .enumerate()
            .map(|(m, _)| 60.0 * 100.0 * (1.0 + 0.3 * ((m as f64 * 0.37).sin())))
            .collect();
        let b = plan(
            minutes(&flat, start),
            &reactive(),
            Setting::new(Platform::default(), 0.00065),
        );
        assert_eq!(b.chosen, "reactive", "{b:#?}");
        assert!(b.schedule.is_empty());
    }

    #[test]
    fn a_longer_hourly_history_feeds_the_forecast_and_the_report_shows_it() {
        // Four weeks of history by the hour, the last two by the minute (as CloudWatch keeps
        // them: 1-minute data for 15 days, hourly for 455).
        let (all, start) = business(4, 400.0, 0.1);
        let hourly: Vec<f64> = all.chunks(60).map(|h| h.iter().sum()).collect();
        let split = 2 * 7 * 1440;
        let demand = Demand {
            per_minute: &all[split..],
            start_epoch_min: start + split as i64,
            hourly: &hourly,
            hourly_start_epoch_min: start,
            zone: None,
        };
        let a = plan(
            demand,
            &reactive(),
            Setting::new(Platform::default(), 0.00065),
        );
        assert_eq!(a.chosen, "predictive", "{a:#?}");
        let f = a.forecast.clone().expect("forecast");
        assert_eq!((f.history_hours, f.horizon_hours), (672, HORIZON_HOURS));
        assert_ne!(f.method, "none", "{f:?}");
        assert!(f.interval_coverage_pct.is_some_and(|c| c > 50.0), "{f:?}");
        let actions = a.scheduled_actions();
        assert!(
            actions
                .iter()
                .any(|x| x.schedule.ends_with("? * MON-FRI *)") && x.min_capacity > 5.0),
            "{actions:?}"
        );
        assert!(actions.iter().all(|x| x.min_capacity <= x.max_capacity));
    }

    #[test]
    fn rare_bursts_on_an_idle_floor_stay_reactive() {
        let (_, start) = business(3, 400.0, 0.0);
        let spiky: Vec<f64> = (0..3 * 7 * 1440)
            .map(|m| {
                if (m * 7919) % 9973 < 15 {
                    60.0 * 800.0
                } else {
                    60.0
                }
            })
            .collect();
        let a = plan(
            minutes(&spiky, start),
            &reactive(),
            Setting::new(Platform::default(), 0.00065),
        );
        assert_eq!(a.chosen, "reactive", "{a:#?}");
        assert!(a.schedule.is_empty() && a.scheduled_actions().is_empty());
        let f = a.forecast.expect("summary");
        assert_eq!(f.method, "none", "{f:?}");
        assert!(f.reason.is_some());
    }

    /// The recommender's advice for the write dimension of `demand`, from on-demand.
    fn advice(demand: &[f64], start: i64, fixed_target_pct: Option<f64>) -> DimensionAdvice {
        use crate::capacity::{CapacityPrices, Dimension, Options, Setup, Trace, recommend_table};
        let trace = Trace {
            dimension: Dimension::Write,
            demand,
            start_epoch_min: start,
            setup: Setup::OnDemand,
        };
        let options = Options {
            fixed_target_pct,
            ..Options::default()
        };
        recommend_table(&[trace], &CapacityPrices::us_east_1(), &options).remove(0)
    }

    #[test]
    fn the_row_takes_the_winners_target_schedule_and_cost() {
        let (demand, start) = business(3, 400.0, 0.1);
        let mut a = advice(&demand, start, None);
        assert_eq!(
            a.recommended_billing_mode,
            BillingMode::Provisioned,
            "{a:#?}"
        );
        let setting = Setting::new(Platform::default(), 0.00065);
        let p = choose(
            &mut a,
            minutes(&demand, start),
            &Overrides::default(),
            setting,
        )
        .expect("provisioned: judged");
        assert_eq!(p.chosen, "predictive", "{p:#?}");
        assert_eq!(a.recommended_target_utilization, p.predictive_target_pct);
        assert_eq!(a.recommended_schedule, p.schedule);
        assert_eq!(Some(a.projected_monthly_cost_usd), p.predictive_cost_usd);
        assert_eq!(
            Some(a.projected_throttled_requests),
            p.predictive_throttled_requests
        );
        assert!(a.reasons.iter().any(|r| r.starts_with("predictive: ")));
        // Against target tracking alone, never a scheduled policy.
        assert!(p.reactive_target_pct <= p.predictive_target_pct.unwrap_or(0.0));
    }

    #[test]
    fn a_fixed_target_stays_fixed_and_on_demand_is_not_judged() {
        let (demand, start) = business(3, 400.0, 0.1);
        let mut a = advice(&demand, start, Some(60.0));
        let overrides = Overrides {
            target_pct: Some(60.0),
            ..Overrides::default()
        };
        let setting = Setting::new(Platform::default(), 0.00065);
        let p = choose(&mut a, minutes(&demand, start), &overrides, setting).expect("judged");
        assert_eq!(p.reactive_target_pct, 60.0, "{p:#?}");
        assert!(p.predictive_target_pct.is_none_or(|t| t == 60.0), "{p:#?}");
        assert_eq!(a.recommended_target_utilization, Some(60.0));
        let mut on_demand = DimensionAdvice {
            recommended_billing_mode: BillingMode::PayPerRequest,
            ..a
        };
        assert!(choose(&mut on_demand, minutes(&demand, start), &overrides, setting).is_none());
    }
}

#[cfg(test)]
mod rescue_tests {
    use super::tests::uniform;
    use super::*;
    use crate::capacity::{CapacityPrices, Dimension, Options, Setup, Trace, recommend_table};

    /// Per-minute writes for `weeks` weeks from a Monday: two sharp one-hour weekday peaks
    /// (08:00 at `morning` a second, 19:00 at `evening`: a batch import and a report run, say),
    /// 2% of the morning's otherwise.
    fn two_peaks(weeks: usize, morning: f64, evening: f64) -> (Vec<f64>, i64) {
        let start_day = crate::calendar::days_from_civil(2026, 11, 2);
        let mut state = 0x1234_5678_9ABC_DEF1_u64;
        let demand = (0..weeks * 7 * 1440)
            .map(|m| {
                let u = uniform(&mut state);
                let (day, minute) = (m / 1440, m % 1440);
                let weekday = day % 7 < 5;
                let rate = match minute / 60 {
                    8 if weekday => morning,
                    19 if weekday => evening,
                    _ => 0.02 * morning,
                };
                60.0 * rate * (1.0 + 0.1 * (2.0 * u - 1.0))
            })
            .collect();
        (demand, start_day * 1440)
    }

    fn table(demand: &[f64], start: i64) -> Vec<DimensionAdvice> {
        let trace = Trace {
            dimension: Dimension::Write,
            demand,
            start_epoch_min: start,
            setup: Setup::OnDemand,
        };
        recommend_table(&[trace], &CapacityPrices::us_east_1(), &Options::default())
    }

    fn demand(per_minute: &[f64], start: i64) -> Demand<'_> {
        Demand {
            per_minute,
            start_epoch_min: start,
            hourly: &[],
            hourly_start_epoch_min: 0,
            zone: None,
        }
    }

    #[test]
    fn a_table_only_a_forecast_schedule_keeps_in_budget_stays_provisioned() {
        let (d, start) = two_peaks(3, 400.0, 300.0);
        let mut t = table(&d, start);
        assert_eq!(
            t[0].recommended_billing_mode,
            BillingMode::PayPerRequest,
            "{t:#?}"
        );
        let setting = [Setting::new(Platform::default(), 0.00065)];
        let out = rescue(
            &mut t,
            &[demand(&d, start)],
            &Overrides::default(),
            &setting,
        )
        .expect("rescued");
        let (a, p) = (&t[0], &out[0]);
        assert_eq!(a.recommended_billing_mode, BillingMode::Provisioned);
        assert_eq!(p.chosen, "predictive");
        // Within the budget, for less than on-demand; the schedule raises ahead of both peaks.
        assert!(
            a.projected_throttled_requests <= a.throttle_budget_requests,
            "{a:#?}"
        );
        assert!(
            a.projected_monthly_cost_usd < a.on_demand_monthly_cost_usd,
            "{a:#?}"
        );
        assert!(
            p.reactive_throttled_requests > a.throttle_budget_requests,
            "{p:#?}"
        );
        let raises: Vec<u32> = a
            .recommended_schedule
            .iter()
            .filter(|s| s.weekdays_only)
            .map(|s| s.minute_of_day / 60)
            .collect();
        assert!(
            raises.contains(&7) && raises.contains(&18),
            "{raises:?} {a:#?}"
        );
        eprintln!(
            "provisioned ${} ({} throttled, budget {}) against on-demand ${}",
            a.projected_monthly_cost_usd,
            a.projected_throttled_requests,
            a.throttle_budget_requests,
            a.on_demand_monthly_cost_usd
        );
    }

    #[test]
    fn without_a_forecast_or_on_a_provisioned_table_nothing_changes() {
        let (d, start) = two_peaks(1, 400.0, 300.0);
        let mut t = table(&d, start);
        let before = t.clone();
        let setting = [Setting::new(Platform::default(), 0.00065)];
        assert!(
            rescue(
                &mut t,
                &[demand(&d, start)],
                &Overrides::default(),
                &setting
            )
            .is_none()
        );
        assert_eq!(t, before, "a week is too short to forecast");
        // A steady table is provisioned already: nothing to rescue.
        let steady = vec![6_000.0; 3 * 7 * 1440];
        let mut t = table(&steady, start);
        assert_eq!(t[0].recommended_billing_mode, BillingMode::Provisioned);
        assert!(
            rescue(
                &mut t,
                &[demand(&steady, start)],
                &Overrides::default(),
                &setting
            )
            .is_none()
        );
    }
}

#[cfg(test)]
mod zone_tests {
    use super::tests::uniform;
    use super::*;

    /// Europe/Berlin around the end of summer time 2026 (Sunday 2026-10-25 01:00 UTC).
    fn berlin() -> Zone {
        Zone {
            name: "Europe/Berlin".into(),
            offsets: vec![(i64::MIN, 120), (1_792_890_000 / 60, 60)],
        }
    }

    /// Three weeks by the minute from Monday 2026-10-12 00:00 UTC of a business that ramps to
    /// 400 writes a second at 08:00 local time on weekdays and back at 18:00.
    fn berlin_business(z: &Zone) -> (Vec<f64>, i64) {
        let start = crate::calendar::days_from_civil(2026, 10, 12) * 1440;
        let mut state = 0x0DDB_1A5E_5BAD_5EED_u64;
        let demand = (0..21 * 1440)
            .map(|m| {
                let u = uniform(&mut state);
                let t = start + m as i64;
                let local = t + i64::from(z.offset_min(t));
                let weekday = crate::calendar::weekday(local.div_euclid(1440)) < 5;
                let busy = weekday && (8 * 60..18 * 60).contains(&local.rem_euclid(1440));
                60.0 * if busy { 400.0 } else { 20.0 } * (0.9 + 0.2 * u)
            })
            .collect();
        (demand, start)
    }

    #[test]
    fn a_business_on_local_time_is_scheduled_in_its_zone_across_a_clock_change() {
        let z = berlin();
        let (d, start) = berlin_business(&z);
        let demand = Demand {
            per_minute: &d,
            start_epoch_min: start,
            hourly: &[],
            hourly_start_epoch_min: 0,
            zone: Some(&z),
        };
        let reactive = Policy {
            target_pct: 70.0,
            min_capacity: 5.0,
            max_capacity: 40_000.0,
            schedule: Vec::new(),
        };
        let a = plan(
            demand,
            &reactive,
            Setting::new(Platform::default(), 0.00065),
        );
        assert_eq!(a.chosen, "predictive", "{a:#?}");
        // The raise is ahead of 08:00 on the local clock, written in the zone: it stays right
        // after the clocks change, where a UTC schedule would be an hour off half the year.
        let raise = a.schedule.iter().find(|s| s.weekdays_only).expect("raise");
        assert!((7 * 60..8 * 60).contains(&raise.minute_of_day), "{a:#?}");
        let actions = a.scheduled_actions();
        assert!(
            actions.iter().all(|x| x.timezone == "Europe/Berlin"),
            "{actions:?}"
        );
        assert!(actions[0].schedule.starts_with("cron("), "{actions:?}");
        // In UTC hours the same history's last week ramps at 07:00 while the two before it
        // ramped at 06:00: the forecast fits it worse.
        let utc = plan(
            Demand {
                zone: None,
                ..demand
            },
            &reactive,
            Setting::new(Platform::default(), 0.00065),
        );
        let (local, in_utc) = (
            a.backtest_wape_pct.unwrap_or(f64::MAX),
            utc.backtest_wape_pct.unwrap_or(0.0),
        );
        eprintln!("backtest WAPE by local hours {local}%, by UTC hours {in_utc}%");
        assert!(local < in_utc / 2.0, "local {local}% vs UTC {in_utc}%");
    }
}
