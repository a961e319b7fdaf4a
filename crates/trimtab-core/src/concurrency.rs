//! Concurrency advice: a reserved-concurrency cap, provisioned concurrency where it pays for itself
//! or where cold starts break a latency objective, and what moving to arm64 would save.
//!
//! Provisioned concurrency is priced as Application Auto Scaling would run it: target tracking on
//! `LambdaProvisionedConcurrencyUtilization` keeps provisioned capacity near
//! `peak concurrency / target` hour by hour (scale-out after 3 one-minute datapoints above target,
//! scale-in after 15 below 90% of it), so each hour is priced at the capacity its peak calls for.
//! Invocations on provisioned capacity pay the lower provisioned duration rate.

use serde::{Deserialize, Serialize};

use crate::business_hours;
use crate::pricing::{Architecture, PriceTable, SECONDS_PER_MONTH, gb_seconds};
use crate::stats::{quantile_sorted, round2};

/// Default target utilisation of provisioned concurrency autoscaling.
pub const DEFAULT_TARGET_UTILIZATION: f64 = 0.7;

/// What concurrency advice is computed from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConcurrencyInput {
    pub memory_mb: u32,
    pub architecture: Option<Architecture>,
    pub window_s: f64,
    pub invocations: f64,
    pub duration_avg_ms: f64,
    pub throttles: f64,
    pub peak_concurrency: Option<f64>,
    pub reserved_concurrency: Option<u32>,
    /// Whether `reserved_concurrency` was read (`None` then means no cap). It is read only for
    /// functions that throttled: elsewhere a cap changes nothing the advice rests on.
    pub reserved_read: bool,
    /// Peak concurrency per hour: (hour start, epoch seconds; value).
    pub hourly_peak_concurrency: Vec<(i64, f64)>,
    pub cold_starts: Option<f64>,
    pub init_duration_avg_ms: Option<f64>,
    /// A latency objective for the function (its `trimtab:latency-objective-ms` tag).
    pub latency_objective_ms: Option<f64>,
}

/// A scheduled change of the provisioned range (Application Auto Scaling `PutScheduledAction`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledCapacity {
    pub name: String,
    /// `cron(...)` in UTC.
    pub schedule: String,
    pub min_capacity: u32,
    pub max_capacity: u32,
}

/// Provisioned concurrency worth having.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvisionedAdvice {
    pub min_capacity: u32,
    pub max_capacity: u32,
    pub target_utilization_fraction: f64,
    pub on_demand_monthly_usd: f64,
    pub provisioned_monthly_usd: f64,
    /// Business-hours schedule when the load is clearly periodic.
    pub schedule: Vec<ScheduledCapacity>,
    pub reason: String,
}

/// Concurrency advice for one function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConcurrencyAdvice {
    pub mean_concurrency: f64,
    pub peak_concurrency: Option<f64>,
    pub current_reserved_concurrency: Option<u32>,
    /// `false`: the current cap was not read (the function did not throttle), so
    /// `current_reserved_concurrency` is unknown rather than absent.
    pub reserved_concurrency_read: bool,
    pub recommended_reserved_concurrency: Option<u32>,
    /// Throttles were seen while concurrency stood at the reserved cap.
    pub throttled_by_reserved_cap: bool,
    pub provisioned: Option<ProvisionedAdvice>,
    /// Saving from running the same work on arm64 (x86_64 functions only). A recommendation only:
    /// code and dependencies must support arm64, and duration can differ, so it is never applied.
    pub arm64_monthly_savings_usd: Option<f64>,
    pub reasons: Vec<String>,
}

fn ceil_u32(x: f64) -> u32 {
    x.max(0.0).ceil().min(f64::from(u32::MAX)) as u32
}

/// Computes the advice. `prices` gives on-demand (first tier), provisioned and duration rates.
pub fn advise(input: &ConcurrencyInput, prices: &PriceTable) -> ConcurrencyAdvice {
    let arch = input.architecture.unwrap_or(Architecture::X86_64);
    let month = if input.window_s > 0.0 {
        SECONDS_PER_MONTH / input.window_s
    } else {
        0.0
    };
    let mean = if input.window_s > 0.0 {
        input.invocations * input.duration_avg_ms / 1000.0 / input.window_s
    } else {
        0.0
    };
    let mut reasons = Vec::new();

    // Reserved concurrency: a cap with room over the peak, so one function cannot drain the
    // account's pool (or the budget) in a runaway; raised where the cap itself throttles.
    let peak = input.peak_concurrency;
    let throttled_by_cap = match (peak, input.reserved_concurrency) {
        (Some(p), Some(cap)) => input.throttles > 0.0 && p >= 0.9 * f64::from(cap),
        _ => false,
    };
    let recommended_reserved = match (peak, input.reserved_concurrency) {
        (Some(_), Some(cap)) if throttled_by_cap => {
            let raised = ceil_u32(f64::from(cap) * 1.5).max(cap + 2);
            reasons.push(format!(
                "{} throttles with concurrency at the reserved cap of {cap}: raise the cap to {raised}",
                input.throttles
            ));
            Some(raised)
        }
        (Some(p), Some(cap)) if f64::from(cap) >= p * 1.2 && f64::from(cap) <= p * 3.0 + 2.0 => {
            Some(cap)
        }
        (Some(p), _) if p > 0.0 => {
            let cap = ceil_u32(p * 1.5 + 2.0);
            let unread = if input.reserved_read || input.reserved_concurrency.is_some() {
                ""
            } else {
                " (the current cap was not read: no throttles in the window)"
            };
            reasons.push(format!(
                "peak concurrency {p:.0}: a reserved cap of {cap} leaves 50% + 2 headroom{unread}"
            ));
            Some(cap)
        }
        _ => input.reserved_concurrency,
    };

    let exec_gb_s = gb_seconds(input.memory_mb, input.invocations * input.duration_avg_ms) * month;
    let on_demand_usd = prices.duration_usd(arch, 0.0, exec_gb_s);

    let provisioned = provisioned_advice(
        input,
        prices,
        arch,
        month,
        exec_gb_s,
        on_demand_usd,
        &mut reasons,
    );

    let arm64_monthly_savings_usd = (arch == Architecture::X86_64 && exec_gb_s > 0.0).then(|| {
        let arm = prices.duration_usd(Architecture::Arm64, 0.0, exec_gb_s);
        ((on_demand_usd - arm) * 10_000.0).round() / 10_000.0
    });

    ConcurrencyAdvice {
        mean_concurrency: (mean * 1000.0).round() / 1000.0,
        peak_concurrency: peak,
        current_reserved_concurrency: input.reserved_concurrency,
        reserved_concurrency_read: input.reserved_read || input.reserved_concurrency.is_some(),
        recommended_reserved_concurrency: recommended_reserved,
        throttled_by_reserved_cap: throttled_by_cap,
        provisioned,
        arm64_monthly_savings_usd,
        reasons,
    }
}

fn provisioned_advice(
    input: &ConcurrencyInput,
    prices: &PriceTable,
    arch: Architecture,
    month: f64,
    exec_gb_s: f64,
    on_demand_usd: f64,
    reasons: &mut Vec<String>,
) -> Option<ProvisionedAdvice> {
    let hours = &input.hourly_peak_concurrency;
    if hours.len() < 24 || exec_gb_s <= 0.0 {
        return None;
    }
    let u = DEFAULT_TARGET_UTILIZATION;
    let p = prices.architecture(arch);
    // Capacity target tracking holds each hour, at least one.
    let levels: Vec<f64> = hours.iter().map(|(_, c)| (c / u).ceil().max(1.0)).collect();
    let hours_per_month = SECONDS_PER_MONTH / 3600.0;
    let mean_level = levels.iter().sum::<f64>() / levels.len() as f64;
    let provisioned_gb_s = gb_seconds(input.memory_mb, mean_level * hours_per_month * 3_600_000.0);
    let provisioned_usd = provisioned_gb_s * p.provisioned_concurrency_usd_per_gb_s
        + exec_gb_s * p.provisioned_duration_usd_per_gb_s;

    // A 2% margin: the hourly capacity model is an estimate, and a change must be worth making.
    let pays = provisioned_usd < on_demand_usd * 0.98;
    let cold_breach = match (
        input.latency_objective_ms,
        input.init_duration_avg_ms,
        input.cold_starts,
    ) {
        (Some(objective), Some(init), Some(n)) if n > 0.0 => {
            (input.duration_avg_ms + init > objective).then_some((objective, init, n * month))
        }
        _ => None,
    };
    if !pays && cold_breach.is_none() {
        return None;
    }
    let mut sorted = levels.clone();
    sorted.sort_by(f64::total_cmp);
    let min_capacity = quantile_sorted(&sorted, 0.1) as u32;
    let max_capacity = (sorted[sorted.len() - 1] + 1.0) as u32;
    let reason = match cold_breach {
        Some((objective, init, per_month)) if !pays => format!(
            "~{per_month:.0} cold starts a month add {init:.0} ms each, past the {objective:.0} ms objective; \
             provisioned concurrency costs ${:.2}/month more than on-demand",
            provisioned_usd - on_demand_usd
        ),
        _ => format!(
            "busy enough to pay for itself: ${provisioned_usd:.2}/month provisioned at {:.0}% target vs \
             ${on_demand_usd:.2} on-demand",
            100.0 * u
        ),
    };
    reasons.push(reason.clone());
    let schedule = business_hours(hours, u, max_capacity);
    Some(ProvisionedAdvice {
        min_capacity: min_capacity.max(1),
        max_capacity: max_capacity.max(min_capacity.max(1)),
        target_utilization_fraction: u,
        on_demand_monthly_usd: round2(on_demand_usd),
        provisioned_monthly_usd: round2(provisioned_usd),
        schedule,
        reason,
    })
}

/// A weekday business-hours schedule when the load has that shape (`business_hours::detect`):
/// the minimum goes up an hour before the busy hours start and back down after they end.
fn business_hours(hours: &[(i64, f64)], u: f64, max_capacity: u32) -> Vec<ScheduledCapacity> {
    let Some(b) = business_hours::detect(hours) else {
        return Vec::new();
    };
    let busy_min = (b.busy_mean / u).ceil().max(1.0) as u32;
    let quiet_min = (b.quiet_mean / u).ceil().max(1.0) as u32;
    let start = (b.first_hour + 23) % 24;
    let end = (b.last_hour + 1) % 24;
    // A business day across midnight UTC ends on the next day.
    let end_days = if b.wraps || end < start {
        "TUE-SAT"
    } else {
        "MON-FRI"
    };
    vec![
        ScheduledCapacity {
            name: "business-hours-start".into(),
            schedule: format!("cron(0 {start} ? * MON-FRI *)"),
            min_capacity: busy_min.min(max_capacity),
            max_capacity,
        },
        ScheduledCapacity {
            name: "business-hours-end".into(),
            schedule: format!("cron(0 {end} ? * {end_days} *)"),
            min_capacity: quiet_min.min(max_capacity),
            max_capacity,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEEK_S: f64 = 7.0 * 86_400.0;
    /// Monday 2026-11-16 00:00 UTC.
    const MONDAY: i64 = 1_794_787_200;

    fn input(invocations: f64, duration_ms: f64) -> ConcurrencyInput {
        ConcurrencyInput {
            memory_mb: 1024,
            architecture: Some(Architecture::X86_64),
            window_s: WEEK_S,
            invocations,
            duration_avg_ms: duration_ms,
            peak_concurrency: Some(12.0),
            ..ConcurrencyInput::default()
        }
    }

    #[test]
    fn reserved_cap_has_headroom_and_is_raised_when_it_throttles() {
        let a = advise(&input(1e6, 100.0), &PriceTable::us_east_1());
        assert_eq!(a.recommended_reserved_concurrency, Some(20));
        let capped = ConcurrencyInput {
            reserved_concurrency: Some(12),
            throttles: 300.0,
            ..input(1e6, 100.0)
        };
        let a = advise(&capped, &PriceTable::us_east_1());
        assert!(a.throttled_by_reserved_cap);
        assert_eq!(a.recommended_reserved_concurrency, Some(18));
        let fine = ConcurrencyInput {
            reserved_concurrency: Some(20),
            ..input(1e6, 100.0)
        };
        assert_eq!(
            advise(&fine, &PriceTable::us_east_1()).recommended_reserved_concurrency,
            Some(20)
        );
    }

    #[test]
    fn steady_heavy_load_pays_for_provisioned_and_light_load_does_not() {
        // 50 concurrent all week, peaks 51: capacity 73 at the 0.7 target, 68% used. Provisioned
        // pays from ~60% utilisation on.
        let hours: Vec<(i64, f64)> = (0..168).map(|h| (MONDAY + h * 3600, 51.0)).collect();
        let invocations = 50.0 * WEEK_S / 0.2; // 200 ms each keeps 50 busy.
        let heavy = ConcurrencyInput {
            hourly_peak_concurrency: hours.clone(),
            ..input(invocations, 200.0)
        };
        let a = advise(&heavy, &PriceTable::us_east_1());
        let p = a.provisioned.expect("pays");
        assert!(p.provisioned_monthly_usd < p.on_demand_monthly_usd);
        assert_eq!(p.min_capacity, 73);
        let light = ConcurrencyInput {
            hourly_peak_concurrency: hours,
            ..input(invocations / 20.0, 200.0)
        };
        assert!(
            advise(&light, &PriceTable::us_east_1())
                .provisioned
                .is_none()
        );
    }

    #[test]
    fn cold_starts_past_the_objective_call_for_provisioned_even_at_a_cost() {
        let hours: Vec<(i64, f64)> = (0..48).map(|h| (MONDAY + h * 3600, 2.0)).collect();
        let i = ConcurrencyInput {
            hourly_peak_concurrency: hours,
            latency_objective_ms: Some(300.0),
            init_duration_avg_ms: Some(900.0),
            cold_starts: Some(400.0),
            ..input(100_000.0, 120.0)
        };
        let p = advise(&i, &PriceTable::us_east_1())
            .provisioned
            .expect("cold starts");
        assert!(p.reason.contains("cold starts"), "{}", p.reason);
        assert!(p.provisioned_monthly_usd > p.on_demand_monthly_usd);
    }

    #[test]
    fn a_weekday_daytime_load_gets_a_business_hours_schedule() {
        let hours: Vec<(i64, f64)> = (0..14 * 24)
            .map(|h| {
                let t = MONDAY + h * 3600;
                let day = (h / 24) % 7;
                let hour = h % 24;
                let busy = day < 5 && (9..17).contains(&hour);
                (t, if busy { 60.0 } else { 4.0 })
            })
            .collect();
        let invocations = 30.0 * 2.0 * WEEK_S / 0.2;
        let i = ConcurrencyInput {
            hourly_peak_concurrency: hours,
            window_s: 2.0 * WEEK_S,
            ..input(invocations, 200.0)
        };
        let p = advise(&i, &PriceTable::us_east_1())
            .provisioned
            .expect("pays");
        assert_eq!(p.schedule.len(), 2);
        assert_eq!(p.schedule[0].schedule, "cron(0 8 ? * MON-FRI *)");
        assert_eq!(p.schedule[1].schedule, "cron(0 17 ? * MON-FRI *)");
        assert!(p.schedule[0].min_capacity > p.schedule[1].min_capacity);
    }

    #[test]
    fn arm64_saving_is_the_price_difference_on_the_same_work() {
        let a = advise(&input(1e6, 1000.0), &PriceTable::us_east_1());
        // 1e6 x 1 s x 1 GB = 1e6 GB-s per week -> x 4.345 a month, 20% cheaper on arm64.
        let month = SECONDS_PER_MONTH / WEEK_S;
        let expected = 1e6 * month * (0.000_016_666_7 - 0.000_013_333_4);
        assert!((a.arm64_monthly_savings_usd.unwrap_or_default() - expected).abs() < 0.01);
        let arm = ConcurrencyInput {
            architecture: Some(Architecture::Arm64),
            ..input(1e6, 1000.0)
        };
        assert_eq!(
            advise(&arm, &PriceTable::us_east_1()).arm64_monthly_savings_usd,
            None
        );
    }
}
