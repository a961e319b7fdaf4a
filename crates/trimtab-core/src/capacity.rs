//! DynamoDB capacity: prices, and a minute-by-minute simulation of Application Auto Scaling
//! target tracking as AWS runs it, so that billing modes and targets can be compared on a table's
//! real traffic.
//!
//! The rules, each from AWS's documentation:
//! - Target tracking on `DynamoDB{Read,Write}CapacityUtilization` creates two CloudWatch alarms
//!   on the consumed-units metric (Sum per 60 s): **AlarmHigh** fires when 2 of 2 datapoints are
//!   above `target × provisioned × 60`, **AlarmLow** when 15 of 15 are below
//!   `(target − 20%) × provisioned × 60`.
//!   (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/AutoScaling.html>,
//!   <https://docs.aws.amazon.com/autoscaling/application/userguide/target-tracking-scaling-policy-overview.html>)
//! - The new capacity keeps utilisation at the target: `consumed per second / target`, rounded up
//!   when scaling out, clamped to the scalable target's min and max
//!   (<https://docs.aws.amazon.com/autoscaling/application/userguide/application-auto-scaling-target-tracking.html>).
//!   Cooldowns default to 0 s for DynamoDB.
//! - The table update takes effect minutes after the alarm (`update_delay_min`, default 2); a
//!   table being updated takes no other update. Requests above the old capacity meanwhile are
//!   served from burst capacity, up to 300 s of unused capacity, then throttled
//!   (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/burst-adaptive-capacity.html>).
//! - Decreases per table or index: up to 4 at any time in a UTC day, then one more in each hour
//!   with no decrease in the past hour: 27 a day at most
//!   (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html>).
//!   A scheduled action that lowers capacity uses one up.
//! - Scheduled actions (`PutScheduledAction`) set min and max at a time; capacity outside the new
//!   range is pushed into it.
//!
//! Prices (us-east-1, after the November 2024 on-demand cut): on-demand $0.625 per million write
//! request units and $0.125 per million read request units; provisioned $0.00065 per WCU-hour
//! and $0.00013 per RCU-hour (<https://aws.amazon.com/dynamodb/pricing/>).

use crate::business_hours;
use crate::calendar::is_weekend;
use crate::stats::{quantile_sorted, round2};
use serde::{Deserialize, Serialize};

/// Read or write capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Read,
    Write,
}

/// DynamoDB prices of one region (Standard table class).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityPrices {
    pub on_demand_usd_per_million_reads: f64,
    pub on_demand_usd_per_million_writes: f64,
    pub provisioned_usd_per_rcu_hour: f64,
    pub provisioned_usd_per_wcu_hour: f64,
}

impl CapacityPrices {
    pub fn us_east_1() -> Self {
        Self {
            on_demand_usd_per_million_reads: 0.125,
            on_demand_usd_per_million_writes: 0.625,
            provisioned_usd_per_rcu_hour: 0.000_13,
            provisioned_usd_per_wcu_hour: 0.000_65,
        }
    }

    pub fn on_demand_usd(&self, d: Dimension, units: f64) -> f64 {
        let per_million = match d {
            Dimension::Read => self.on_demand_usd_per_million_reads,
            Dimension::Write => self.on_demand_usd_per_million_writes,
        };
        units / 1.0e6 * per_million
    }

    pub fn provisioned_usd(&self, d: Dimension, unit_hours: f64) -> f64 {
        unit_hours
            * match d {
                Dimension::Read => self.provisioned_usd_per_rcu_hour,
                Dimension::Write => self.provisioned_usd_per_wcu_hour,
            }
    }
}

/// A scheduled change of the scalable target's range, every day (or every weekday) at a minute.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScheduledRange {
    /// Minute of the day, 0..1440, in the schedule's time zone (UTC unless the table or
    /// function names one).
    pub minute_of_day: u32,
    pub weekdays_only: bool,
    pub min_capacity: f64,
    pub max_capacity: f64,
}

/// A target-tracking policy and its scalable target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Target utilisation, percent (20..=90).
    pub target_pct: f64,
    pub min_capacity: f64,
    pub max_capacity: f64,
    pub schedule: Vec<ScheduledRange>,
}

/// Simulation knobs that are facts of the platform, not choices. The default is DynamoDB's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Platform {
    /// Minutes from a scaling decision to the new capacity being in force.
    pub update_delay_min: usize,
    /// Seconds of unused capacity kept as burst.
    pub burst_window_s: f64,
    /// One-minute datapoints above the target that scale out (the high alarm's periods).
    pub scale_out_datapoints: usize,
    /// The low alarm's threshold (utilisation its 15 datapoints must stay under to scale in) as
    /// `(k, offset)`: `k x target + offset`, fractions.
    pub scale_in_below: (f64, f64),
    /// Whether DynamoDB's daily decrease budget applies (4 in the first hour of a UTC day, then
    /// one an hour).
    pub decrease_budget: bool,
    /// The scheduled ranges' time zone, as its offset from UTC in minutes: a range fires at its
    /// minute of the local day, on local weekdays.
    pub utc_offset_min: i32,
}

impl Default for Platform {
    fn default() -> Self {
        Self {
            update_delay_min: 2,
            burst_window_s: 300.0,
            scale_out_datapoints: 2,
            scale_in_below: (1.0, -0.2),
            decrease_budget: true,
            utc_offset_min: 0,
        }
    }
}

impl Platform {
    /// Lambda provisioned concurrency on an alias: 3 of 3 one-minute datapoints above the target
    /// scale out, 15 of 15 under 90% of it scale in; no burst (requests beyond it spill over to
    /// on-demand instances, cold), no decrease budget; allocation takes minutes.
    pub fn lambda_provisioned() -> Self {
        Self {
            update_delay_min: 3,
            burst_window_s: 0.0,
            scale_out_datapoints: 3,
            scale_in_below: (0.9, 0.0),
            decrease_budget: false,
            utc_offset_min: 0,
        }
    }
}

/// What a policy would have done over a trace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SimResult {
    pub minutes: usize,
    pub consumed_units: f64,
    pub throttled_units: f64,
    pub provisioned_unit_hours: f64,
    pub scale_outs: u32,
    pub scale_ins: u32,
    pub peak_provisioned: f64,
    pub low_provisioned: f64,
}

impl SimResult {
    /// Share of demand that was throttled, 0..1.
    pub fn throttled_fraction(&self) -> f64 {
        if self.consumed_units > 0.0 {
            self.throttled_units / self.consumed_units
        } else {
            0.0
        }
    }
}

/// Replays `demand` (units consumed in each minute, in order, the first at `start_epoch_min`)
/// against `policy` starting from `initial_capacity` units per second. When `timeline` is given,
/// it receives the capacity in force in every minute.
pub fn simulate(
    demand: &[f64],
    start_epoch_min: i64,
    initial_capacity: f64,
    policy: &Policy,
    platform: Platform,
    mut timeline: Option<&mut Vec<f64>>,
) -> SimResult {
    let target = (policy.target_pct / 100.0).clamp(0.01, 1.0);
    let low_ratio = {
        let (k, offset) = platform.scale_in_below;
        (k * target + offset).max(0.0)
    };
    let out_n = platform.scale_out_datapoints.max(1);
    let (mut min_cap, mut max_cap) = (policy.min_capacity.max(1.0), policy.max_capacity.max(1.0));
    let mut p = initial_capacity.clamp(min_cap, max_cap);
    let mut burst = p * platform.burst_window_s;
    // Trailing minutes above the high threshold / below the low one, for the capacity in force.
    let (mut high_run, mut low_run) = (0usize, 0usize);
    let mut pending: Option<(usize, f64)> = None;
    let (mut decreases_today, mut day, mut last_decrease) = (0u32, i64::MIN, None::<usize>);
    let mut r = SimResult {
        minutes: demand.len(),
        low_provisioned: f64::INFINITY,
        ..SimResult::default()
    };

    for (m, &d) in demand.iter().enumerate() {
        let epoch_min = start_epoch_min + m as i64;
        let today = epoch_min.div_euclid(1440);
        if today != day {
            day = today;
            decreases_today = 0;
        }
        let mut capacity_changed = false;
        // A pending update lands.
        if let Some((at, to)) = pending
            && m >= at
        {
            if to < p {
                decreases_today += 1;
                last_decrease = Some(m);
            }
            p = to;
            pending = None;
            capacity_changed = true;
        }
        // Scheduled range changes push capacity into the range.
        let local = epoch_min + i64::from(platform.utc_offset_min);
        for s in &policy.schedule {
            if local.rem_euclid(1440) as u32 == s.minute_of_day
                && (!s.weekdays_only || !is_weekend(local.div_euclid(1440)))
            {
                min_cap = s.min_capacity.max(1.0);
                max_cap = s.max_capacity.max(min_cap);
                let into = p.clamp(min_cap, max_cap);
                if into != p && pending.is_none() {
                    let may_decrease = !platform.decrease_budget
                        || decreases_today < 4
                        || last_decrease.is_none_or(|l| m >= l + 60);
                    if into > p || may_decrease {
                        pending = Some((m + platform.update_delay_min, into));
                    }
                }
            }
        }

        // Serve the minute: capacity first, then burst credit, then throttle.
        let capacity = p * 60.0;
        if d <= capacity {
            burst = (burst + capacity - d).min(p * platform.burst_window_s);
        } else {
            let deficit = d - capacity;
            let used = deficit.min(burst);
            burst -= used;
            r.throttled_units += deficit - used;
        }
        r.consumed_units += d;
        r.provisioned_unit_hours += p / 60.0;
        r.peak_provisioned = r.peak_provisioned.max(p);
        r.low_provisioned = r.low_provisioned.min(p);
        if let Some(t) = timeline.as_deref_mut() {
            t.push(p);
        }

        // The alarms see this minute's datapoint.
        let high = target * p * 60.0;
        let low = low_ratio * p * 60.0;
        if capacity_changed {
            high_run = trailing(demand, m, out_n, |x| x > high);
            low_run = trailing(demand, m, 15, |x| x < low);
        } else {
            high_run = if d > high { high_run + 1 } else { 0 };
            low_run = if d < low { low_run + 1 } else { 0 };
        }
        if pending.is_some() {
            continue;
        }
        if high_run >= out_n {
            let recent = demand[m + 1 - out_n..=m]
                .iter()
                .fold(0.0_f64, |a, &x| a.max(x))
                / 60.0;
            let to = (recent / target).ceil().clamp(min_cap, max_cap);
            if to > p {
                pending = Some((m + platform.update_delay_min, to));
                r.scale_outs += 1;
            }
        } else if low_run >= 15 {
            let recent = demand[m + 1 - 15..=m]
                .iter()
                .fold(0.0_f64, |a, &x| a.max(x))
                / 60.0;
            let to = (recent / target).ceil().clamp(min_cap, max_cap);
            let may_decrease = !platform.decrease_budget
                || decreases_today < 4
                || last_decrease.is_none_or(|l| m >= l + 60);
            if to < p && may_decrease {
                pending = Some((m + platform.update_delay_min, to));
                r.scale_ins += 1;
            }
        }
    }
    if r.low_provisioned.is_infinite() {
        r.low_provisioned = 0.0;
    }
    r
}

/// How many of the last `cap` datapoints up to `m` satisfy `f`, counted back from `m`.
fn trailing(demand: &[f64], m: usize, cap: usize, f: impl Fn(f64) -> bool) -> usize {
    (0..cap.min(m + 1))
        .take_while(|&k| f(demand[m - k]))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(target: f64, min: f64, max: f64) -> Policy {
        Policy {
            target_pct: target,
            min_capacity: min,
            max_capacity: max,
            schedule: vec![],
        }
    }

    /// A Monday, 00:00 UTC, in epoch minutes.
    const MONDAY: i64 = 1_794_787_200 / 60; // 2026-11-16

    #[test]
    fn a_spike_scales_out_after_two_minutes_above_target_and_lands_after_the_delay() {
        // 100 provisioned, 70% target: the alarm threshold is 70/s = 4,200 a minute.
        let mut demand = vec![3_000.0; 10];
        demand.extend(vec![9_000.0; 10]); // 150/s from minute 10.
        let mut t = Vec::new();
        let r = simulate(
            &demand,
            MONDAY,
            100.0,
            &policy(70.0, 1.0, 1000.0),
            Platform::default(),
            Some(&mut t),
        );
        // Datapoints 10 and 11 breach: decided at minute 11, in force from minute 13.
        assert_eq!(t[12], 100.0);
        assert_eq!(t[13], (150.0_f64 / 0.7).ceil());
        assert_eq!(r.scale_outs, 1);
        // Minutes 10..13 at 150/s against 100/s: 9,000 over, less the burst saved in 10 quiet
        // minutes (capped at 300 s x 100 = 30,000), so nothing throttled.
        assert_eq!(r.throttled_units, 0.0);
    }

    #[test]
    fn burst_runs_out_and_then_requests_are_throttled() {
        // No quiet time to save burst beyond the initial 300 s; 4x demand for 12 minutes with a
        // max that stops scaling.
        let demand = vec![24_000.0; 12];
        let r = simulate(
            &demand,
            MONDAY,
            100.0,
            &policy(70.0, 100.0, 100.0),
            Platform::default(),
            None,
        );
        // 12 minutes x 18,000 over capacity = 216,000; 30,000 from burst.
        assert_eq!(r.throttled_units, 216_000.0 - 30_000.0);
        assert_eq!(r.scale_outs, 0);
    }

    #[test]
    fn a_quiet_period_scales_in_only_after_fifteen_minutes_below_target_less_twenty() {
        // 100 provisioned at 70%: low threshold 50/s = 3,000 a minute.
        let mut demand = vec![3_600.0; 5];
        demand.extend(vec![600.0; 30]); // 10/s
        let mut t = Vec::new();
        let r = simulate(
            &demand,
            MONDAY,
            100.0,
            &policy(70.0, 1.0, 1000.0),
            Platform::default(),
            Some(&mut t),
        );
        // Below from minute 5; the 15th datapoint is minute 19; in force at minute 21.
        assert_eq!(t[20], 100.0);
        assert_eq!(t[21], (10.0_f64 / 0.7).ceil());
        assert_eq!(r.scale_ins, 1);
    }

    #[test]
    fn decreases_stop_at_four_then_one_an_hour() {
        // Busy and quiet alternate every 20 minutes all day, so a decrease is wanted every 40.
        let mut demand = Vec::new();
        for _ in 0..36 {
            demand.extend(vec![60_000.0; 20]);
            demand.extend(vec![600.0; 20]);
        }
        let mut t = Vec::new();
        let r = simulate(
            &demand,
            MONDAY,
            100.0,
            &policy(70.0, 1.0, 10_000.0),
            Platform::default(),
            Some(&mut t),
        );
        let decreases: Vec<usize> = (1..t.len()).filter(|&m| t[m] < t[m - 1]).collect();
        assert_eq!(decreases.len() as u32, r.scale_ins);
        assert!(
            decreases.len() > 4 && decreases.len() <= 27,
            "{}",
            decreases.len()
        );
        // The fifth and later each come at least an hour after the one before.
        for w in decreases[3..].windows(2) {
            assert!(w[1] - w[0] >= 60, "{decreases:?}");
        }
        // Without the limit there would have been one every cycle.
        assert!(decreases.len() < 36);
    }

    #[test]
    fn a_scheduled_minimum_raises_capacity_ahead_of_the_peak() {
        // Quiet until 09:00, then a jump to 200/s.
        let mut demand = vec![600.0; 9 * 60];
        demand.extend(vec![12_000.0; 60]);
        let plain = simulate(
            &demand,
            MONDAY,
            20.0,
            &policy(70.0, 1.0, 1000.0),
            Platform::default(),
            None,
        );
        let scheduled = Policy {
            schedule: vec![ScheduledRange {
                minute_of_day: 8 * 60 + 50,
                weekdays_only: true,
                min_capacity: 300.0,
                max_capacity: 1000.0,
            }],
            ..policy(70.0, 1.0, 1000.0)
        };
        let with = simulate(&demand, MONDAY, 20.0, &scheduled, Platform::default(), None);
        assert!(plain.throttled_units > 0.0);
        assert_eq!(with.throttled_units, 0.0);
    }

    #[test]
    fn costs_follow_the_price_list() {
        let p = CapacityPrices::us_east_1();
        assert!((p.on_demand_usd(Dimension::Write, 1.0e6) - 0.625).abs() < 1e-12);
        assert!((p.provisioned_usd(Dimension::Read, 730.0) - 0.0949).abs() < 1e-9);
        // Break-even utilisation of provisioned writes: 0.00065 / 3600 per unit-second vs
        // 0.625e-6 per unit: 28.9%.
        let breakeven: f64 = 0.000_65 / 3600.0 / 0.625e-6;
        assert!((breakeven - 0.2889).abs() < 1e-3);
    }
}

/// Billing modes, by their API names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BillingMode {
    #[serde(rename = "PROVISIONED")]
    Provisioned,
    #[serde(rename = "PAY_PER_REQUEST")]
    PayPerRequest,
}

/// How one dimension of a table or index is set up today.
#[derive(Debug, Clone, PartialEq)]
pub enum Setup {
    OnDemand,
    /// Fixed capacity, or capacity under a target-tracking policy.
    Provisioned {
        capacity: f64,
        policy: Option<Policy>,
    },
}

/// One dimension's traffic: units consumed per minute, the first minute at `start_epoch_min`.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace<'a> {
    pub dimension: Dimension,
    pub demand: &'a [f64],
    pub start_epoch_min: i64,
    pub setup: Setup,
}

/// Choices of a recommendation run.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Largest share of demand allowed to be throttled (0.001 = 0.1%).
    pub throttle_budget_fraction: f64,
    /// Targets to try, percent.
    pub targets_pct: Vec<f64>,
    /// Largest capacity a scalable target may have.
    pub max_capacity_limit: f64,
    pub platform: Platform,
    /// Harsher platforms a recommendation must also hold up under, against the seeds' policy on
    /// the same platform: burst capacity is best effort ("DynamoDB can also consume burst capacity
    /// for background maintenance and other tasks without prior notice"), so a target that keeps
    /// within the throttle budget only by spending burst is not safe to recommend.
    pub stress: Vec<Platform>,
    /// Forced target (a `trimtab:target` tag): only this one is tried.
    pub fixed_target_pct: Option<f64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            throttle_budget_fraction: 0.001,
            targets_pct: (4..=18).map(|k| f64::from(k) * 5.0).collect(),
            max_capacity_limit: 40_000.0,
            platform: Platform::default(),
            stress: vec![Platform {
                burst_window_s: 150.0,
                ..Platform::default()
            }],
            fixed_target_pct: None,
        }
    }
}

/// The seeds' one-size policy, kept as the baseline every recommendation is compared with.
pub fn seeds_policy() -> Policy {
    Policy {
        target_pct: 70.0,
        min_capacity: 5.0,
        max_capacity: 4000.0,
        schedule: vec![],
    }
}

/// The advice for one dimension. Field names follow the report contract (docs/reports.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DimensionAdvice {
    pub dimension: Dimension,
    pub current_billing_mode: BillingMode,
    pub recommended_billing_mode: BillingMode,
    pub recommended_target_utilization: Option<f64>,
    pub recommended_min_capacity: Option<f64>,
    pub recommended_max_capacity: Option<f64>,
    pub recommended_schedule: Vec<ScheduledRange>,
    pub current_monthly_cost_usd: f64,
    pub projected_monthly_cost_usd: f64,
    pub projected_throttled_requests: f64,
    pub current_throttled_requests: f64,
    /// The seeds' fixed 70% policy on the same traffic, for comparison.
    pub seeds_policy_monthly_cost_usd: f64,
    pub seeds_policy_throttled_requests: f64,
    pub on_demand_monthly_cost_usd: f64,
    pub reasons: Vec<String>,
    /// The cheapest policy within the budgets that needs no schedule: target tracking alone,
    /// what predictive scaling is measured against. `None` where every such policy throttles
    /// too much.
    #[serde(skip)]
    pub reactive_policy: Option<Policy>,
    /// The throttled request units a month any recommended policy must keep within (the budget
    /// share of demand, and no more than the seeds' policy throttles).
    #[serde(skip)]
    pub throttle_budget_requests: f64,
}

#[derive(Clone)]
struct Candidate {
    policy: Policy,
    result: SimResult,
    usd: f64,
    /// Throttled units of the same policy without its schedule.
    unscheduled_throttled_units: Option<f64>,
}

/// One dimension priced every way: (cost, throttled units) over the trace.
struct JudgedDim {
    current: (f64, f64),
    seeds: (f64, f64),
    on_demand: f64,
    best: Option<Candidate>,
    /// The cheapest candidate without a schedule.
    reactive: Option<Policy>,
    /// Throttled units over the trace any candidate must keep within.
    budget: f64,
    /// Factor from the trace's length to a 730-hour month.
    month: f64,
    reasons: Vec<String>,
}

/// Per-second rates of a trace, sorted.
fn sorted_rates(demand: &[f64]) -> Vec<f64> {
    let mut r: Vec<f64> = demand.iter().map(|d| d / 60.0).collect();
    r.sort_by(f64::total_cmp);
    r
}

/// A weekday business-hours schedule when the traffic has that shape (`business_hours::detect`
/// on the rate each minute): the minimum goes up 30 minutes before the busy hours, to hold the
/// quietest busy hour at the target, and back down after them.
pub fn daily_schedule(
    demand: &[f64],
    start_epoch_min: i64,
    target_pct: f64,
    base_min: f64,
    max_capacity: f64,
) -> Vec<ScheduledRange> {
    // The mean rate of each clock hour (the detector reads hours; minutes would only cost time).
    let mut hours: Vec<(i64, f64, f64)> = Vec::with_capacity(demand.len() / 60 + 2);
    for (m, d) in demand.iter().enumerate() {
        let hour = (start_epoch_min + m as i64).div_euclid(60);
        match hours.last_mut() {
            Some((h, sum, n)) if *h == hour => {
                *sum += d / 60.0;
                *n += 1.0;
            }
            _ => hours.push((hour, d / 60.0, 1.0)),
        }
    }
    let rates: Vec<(i64, f64)> = hours
        .iter()
        .map(|&(h, sum, n)| (h * 3600, sum / n))
        .collect();
    let Some(b) = business_hours::detect(&rates) else {
        return Vec::new();
    };
    let raised = (b.busy_floor / (target_pct / 100.0))
        .ceil()
        .max(base_min)
        .min(max_capacity);
    let up = (b.first_hour * 60 + 1440 - 30) % 1440;
    let down = ((b.last_hour + 1) * 60) % 1440;
    // A business day across midnight UTC ends on the next day, Saturday included: the lowering
    // then runs every day (lowering to the base minimum is harmless where it already is).
    let down_weekdays_only = !(b.wraps || down < up);
    vec![
        ScheduledRange {
            minute_of_day: up,
            weekdays_only: true,
            min_capacity: raised,
            max_capacity,
        },
        ScheduledRange {
            minute_of_day: down,
            weekdays_only: down_weekdays_only,
            min_capacity: base_min,
            max_capacity,
        },
    ]
}

/// Recommends billing mode and policy for every dimension of one table (the table's read and
/// write, and each GSI's): the billing mode is the table's, so it is chosen on the sum.
pub fn recommend_table(
    traces: &[Trace<'_>],
    prices: &CapacityPrices,
    options: &Options,
) -> Vec<DimensionAdvice> {
    let judged: Vec<JudgedDim> = traces.iter().map(|t| judge(t, prices, options)).collect();
    let provisioned_total: Option<f64> = judged
        .iter()
        .map(|j| j.best.as_ref().map(|b| b.usd * j.month))
        .sum();
    let on_demand_total: f64 = judged.iter().map(|j| j.on_demand * j.month).sum();
    let mode = match provisioned_total {
        Some(p) if p < on_demand_total => BillingMode::Provisioned,
        _ => BillingMode::PayPerRequest,
    };
    traces
        .iter()
        .zip(judged)
        .map(|(t, j)| {
            let current_mode = match t.setup {
                Setup::OnDemand => BillingMode::PayPerRequest,
                Setup::Provisioned { .. } => BillingMode::Provisioned,
            };
            let mut reasons = j.reasons;
            let (projected, throttled, policy) = match (mode, &j.best) {
                (BillingMode::Provisioned, Some(b)) => (b.usd, b.result.throttled_units, Some(b.policy.clone())),
                _ => (j.on_demand, 0.0, None),
            };
            match (mode, &provisioned_total) {
                (BillingMode::PayPerRequest, Some(p)) => reasons.push(format!(
                    "on-demand ${on_demand_total:.2}/month for the table beats the best autoscaled provisioning ${p:.2}"
                )),
                (BillingMode::PayPerRequest, None) => reasons.push(
                    "no provisioned policy keeps throttling within budget: on-demand".to_owned(),
                ),
                (BillingMode::Provisioned, _) => reasons.push(format!(
                    "autoscaled provisioning ${:.2}/month for the table beats on-demand ${on_demand_total:.2}",
                    provisioned_total.unwrap_or_default()
                )),
            }
            if mode != current_mode {
                reasons.push(match mode {
                    BillingMode::PayPerRequest => "switching to on-demand is allowed up to 4 times in 24 hours".to_owned(),
                    BillingMode::Provisioned => "switching to provisioned is allowed at any time".to_owned(),
                });
            }
            DimensionAdvice {
                dimension: t.dimension,
                current_billing_mode: current_mode,
                recommended_billing_mode: mode,
                recommended_target_utilization: policy.as_ref().map(|p| p.target_pct),
                recommended_min_capacity: policy.as_ref().map(|p| p.min_capacity),
                recommended_max_capacity: policy.as_ref().map(|p| p.max_capacity),
                recommended_schedule: policy.map(|p| p.schedule).unwrap_or_default(),
                current_monthly_cost_usd: round2(j.current.0 * j.month),
                projected_monthly_cost_usd: round2(projected * j.month),
                projected_throttled_requests: (throttled * j.month).round(),
                current_throttled_requests: (j.current.1 * j.month).round(),
                seeds_policy_monthly_cost_usd: round2(j.seeds.0 * j.month),
                seeds_policy_throttled_requests: (j.seeds.1 * j.month).round(),
                on_demand_monthly_cost_usd: round2(j.on_demand * j.month),
                reasons,
                reactive_policy: j.reactive,
                throttle_budget_requests: j.budget * j.month,
            }
        })
        .collect()
}

/// Prices a trace under its current setup, the seeds' policy, on-demand, and every candidate
/// policy; keeps the cheapest candidate within the throttle budget.
fn judge(t: &Trace<'_>, prices: &CapacityPrices, o: &Options) -> JudgedDim {
    let minutes = t.demand.len().max(1) as f64;
    let month = 730.0 * 60.0 / minutes;
    let total: f64 = t.demand.iter().sum();
    let on_demand = prices.on_demand_usd(t.dimension, total);
    let rates = sorted_rates(t.demand);
    let peak = rates.last().copied().unwrap_or(0.0);
    let first_rate = t.demand.first().map_or(1.0, |d| d / 60.0);
    let replay = |platform: Platform, policy: &Policy, initial: f64| -> Candidate {
        let result = simulate(t.demand, t.start_epoch_min, initial, policy, platform, None);
        let usd = prices.provisioned_usd(t.dimension, result.provisioned_unit_hours);
        Candidate {
            policy: policy.clone(),
            result,
            usd,
            unscheduled_throttled_units: None,
        }
    };
    // Every candidate's replay starts where target tracking would hold the first minute's rate.
    let run_on = |platform: Platform, policy: &Policy| {
        replay(
            platform,
            policy,
            (first_rate / (policy.target_pct / 100.0)).ceil(),
        )
    };
    let run = |policy: &Policy| run_on(o.platform, policy);
    let current = match &t.setup {
        Setup::OnDemand => (on_demand, 0.0),
        Setup::Provisioned { capacity, policy } => {
            let c = replay(
                o.platform,
                &current_policy(*capacity, policy.as_ref()),
                *capacity,
            );
            (c.usd, c.result.throttled_units)
        }
    };
    let seeds = run(&seeds_policy());
    // Never more throttling than the budget, nor than the seeds' fixed policy would have had
    // (give or take 0.001% of demand): a cheaper setting must not buy its saving with errors.
    let budget =
        (o.throttle_budget_fraction * total).min(seeds.result.throttled_units.max(1.0e-5 * total));
    let stressed_seeds: Vec<f64> = o
        .stress
        .iter()
        .map(|&p| {
            run_on(p, &seeds_policy())
                .result
                .throttled_units
                .max(1.0e-5 * total)
        })
        .collect();
    // Every policy tried at `target`, each within the budget (with a daily schedule where one is
    // needed), cheapest first.
    let tried_at = |target: f64| -> Vec<Candidate> {
        let max = ((peak / (target / 100.0)) * 1.5)
            .ceil()
            .clamp(1.0, o.max_capacity_limit);
        let mut out = Vec::new();
        for min in minimums(&rates, target) {
            let policy = Policy {
                target_pct: target,
                min_capacity: min,
                max_capacity: max.max(min),
                schedule: vec![],
            };
            let mut c = run(&policy);
            if c.result.throttled_units > budget {
                // A daily shape may be served by raising the minimum ahead of the peak.
                let schedule = daily_schedule(
                    t.demand,
                    t.start_epoch_min,
                    target,
                    min,
                    policy.max_capacity,
                );
                if schedule.is_empty() {
                    continue;
                }
                let without = c.result.throttled_units;
                c = run(&Policy { schedule, ..policy });
                if c.result.throttled_units > budget {
                    continue;
                }
                c.unscheduled_throttled_units = Some(without);
            }
            out.push(c);
        }
        out
    };
    // ... and no more throttling than the seeds' policy on every harsher platform either.
    let holds_up = |c: &Candidate| {
        o.stress
            .iter()
            .zip(&stressed_seeds)
            .all(|(&p, &allowed)| run_on(p, &c.policy).result.throttled_units <= allowed)
    };
    let cheapest = |mut cs: Vec<Candidate>| {
        cs.sort_by(|a, b| a.usd.total_cmp(&b.usd));
        cs.into_iter().find(|c| holds_up(c))
    };
    let all: Vec<Candidate> = match o.fixed_target_pct {
        Some(target) => tried_at(target),
        None => o.targets_pct.iter().flat_map(|&x| tried_at(x)).collect(),
    };
    let unscheduled: Vec<Candidate> = all
        .iter()
        .filter(|c| c.policy.schedule.is_empty())
        .cloned()
        .collect();
    let mut best = cheapest(all);
    if o.fixed_target_pct.is_none()
        && let Some(c) = finer_than(best.as_ref(), o, &tried_at, &cheapest)
    {
        best = Some(c);
    }
    let reactive = match &best {
        Some(b) if b.policy.schedule.is_empty() => Some(b.policy.clone()),
        _ => cheapest(unscheduled).map(|c| c.policy),
    };
    JudgedDim {
        current,
        seeds: (seeds.usd, seeds.result.throttled_units),
        on_demand,
        reasons: best
            .as_ref()
            .map(|b| reasons(b, o, total))
            .unwrap_or_default(),
        best,
        reactive,
        budget,
        month,
    }
}

/// The minimums tried at `target`: the lowest, the seeds' (a floor that also shortens the
/// climb out of a quiet night), and one that covers the quietest 5% of minutes (`rates` sorted).
fn minimums(rates: &[f64], target: f64) -> Vec<f64> {
    let floor_min = (quantile_sorted(rates, 0.05) / (target / 100.0))
        .ceil()
        .max(1.0);
    let mut mins = vec![1.0, seeds_policy().min_capacity, floor_min];
    mins.sort_by(f64::total_cmp);
    mins.dedup();
    mins
}

/// The policy a provisioned table runs today: its own, or fixed capacity where none scales it.
/// Replayed from the capacity it has now.
fn current_policy(capacity: f64, policy: Option<&Policy>) -> Policy {
    policy.cloned().unwrap_or(Policy {
        target_pct: 70.0,
        min_capacity: capacity,
        max_capacity: capacity,
        schedule: vec![],
    })
}

/// The grid of targets is coarse: a target a few points above the best one may still hold, and
/// cost less.
fn finer_than(
    best: Option<&Candidate>,
    o: &Options,
    tried_at: &dyn Fn(f64) -> Vec<Candidate>,
    cheapest: &dyn Fn(Vec<Candidate>) -> Option<Candidate>,
) -> Option<Candidate> {
    let best = best?;
    let found = best.policy.target_pct;
    let ceiling = o.targets_pct.iter().copied().fold(found, f64::max);
    let finer = (1..5)
        .map(|k| found + f64::from(k))
        .filter(|&x| x < ceiling && !o.targets_pct.contains(&x))
        .flat_map(tried_at)
        .filter(|c| c.usd < best.usd)
        .collect();
    cheapest(finer)
}

/// Why the chosen policy: its throttling against the budgets, and what a schedule bought.
fn reasons(b: &Candidate, o: &Options, total: f64) -> Vec<String> {
    let mut reasons = Vec::new();
    let stressed: String = o
        .stress
        .iter()
        .map(|p| format!(", also with {:.0} s of burst", p.burst_window_s))
        .collect();
    reasons.push(format!(
        "target {:.0}%, min {:.0}, max {:.0}: {:.4}% of demand throttled (budget {:.2}%, no more than the seeds' 70% policy{stressed}), {} scale-outs, {} scale-ins",
        b.policy.target_pct,
        b.policy.min_capacity,
        b.policy.max_capacity,
        100.0 * b.result.throttled_fraction(),
        100.0 * o.throttle_budget_fraction,
        b.result.scale_outs,
        b.result.scale_ins
    ));
    if let Some(without) = b.unscheduled_throttled_units {
        reasons.push(format!(
            "daily shape: a scheduled minimum of {:.0} from 30 minutes before the busy hours cuts throttling from {:.4}% to {:.4}% of demand",
            b.policy.schedule.first().map_or(0.0, |s| s.min_capacity),
            100.0 * without / total.max(1.0),
            100.0 * b.result.throttled_fraction()
        ));
    }
    reasons
}
