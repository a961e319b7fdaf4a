//! API stage capacity: a forecast of each stage's hourly requests, and the day its request rate
//! is set to reach 80% of the throttle limits it meets.
//!
//! API Gateway throttles a stage at the lowest of its own limit (a REST stage's `*/*` method
//! setting, an HTTP stage's default route setting) and the account's per-Region limit, which
//! every API in the Region shares (10,000 requests a second unless raised). CloudWatch gives a
//! stage's `Count` per period; the rate judged here is each hour's mean (requests / 3600), so a
//! burst within an hour is not seen: the limits' burst bucket absorbs short ones, and a trend
//! toward the steady limit is what a quota raise is asked for ahead of.

use serde::{Deserialize, Serialize};

use crate::predictive::{ForecastSummary, forecast_summary};
use crate::quota::{CapacityRisk, capacity_risk};
use crate::stats::round2;

/// A stage's throttle limits, requests a second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// The stage's own steady-state limit, where set.
    pub stage_rps: Option<f64>,
    /// The account's per-Region limit (`GetAccount` `throttleSettings.rateLimit`), where read.
    pub account_rps: Option<f64>,
}

/// One stage's requests against its limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageCapacity {
    pub api: String,
    pub stage: String,
    /// The forecast of its hourly requests, with its backtested accuracy (or why it declined).
    pub forecast: ForecastSummary,
    /// The highest hourly mean rate in the history, requests a second.
    pub peak_rps: f64,
    pub stage_rate_limit_rps: Option<f64>,
    pub account_rate_limit_rps: Option<f64>,
    /// The stage's rate against the limit that binds first (the lower of the two), or null
    /// when neither is known.
    pub risk: Option<CapacityRisk>,
}

/// Judges one stage: `hourly_requests` are its requests in each hour, the first starting at
/// `first_hour_epoch_s` (hours without data as 0).
pub fn stage_capacity(
    (api, stage): (&str, &str),
    hourly_requests: &[f64],
    first_hour_epoch_s: i64,
    limits: Limits,
) -> StageCapacity {
    let rates: Vec<f64> = hourly_requests.iter().map(|r| r / 3600.0).collect();
    let peak = rates.iter().copied().fold(0.0, f64::max);
    let binding = match (limits.stage_rps, limits.account_rps) {
        (Some(s), Some(a)) if s <= a => Some(("apigateway_stage_rate_limit", s)),
        (Some(s), None) => Some(("apigateway_stage_rate_limit", s)),
        (_, Some(a)) => Some(("apigateway_account_rate_limit", a)),
        (None, None) => None,
    };
    StageCapacity {
        api: api.to_owned(),
        stage: stage.to_owned(),
        forecast: forecast_summary(hourly_requests, first_hour_epoch_s / 60, None),
        peak_rps: round2(peak),
        stage_rate_limit_rps: limits.stage_rps,
        account_rate_limit_rps: limits.account_rps,
        risk: binding.map(|(name, limit)| capacity_risk(name, &rates, first_hour_epoch_s, limit)),
    }
}

/// The Region's API traffic together (every stage's hours summed) against the account's limit,
/// which they share.
pub fn account_capacity(
    stages_hourly: &[Vec<f64>],
    first_hour_epoch_s: i64,
    account_rps: f64,
) -> CapacityRisk {
    let hours = stages_hourly.iter().map(Vec::len).max().unwrap_or(0);
    let mut total = vec![0.0; hours];
    for s in stages_hourly {
        for (t, r) in total.iter_mut().zip(s) {
            *t += r / 3600.0;
        }
    }
    capacity_risk(
        "apigateway_account_rate_limit",
        &total,
        first_hour_epoch_s,
        account_rps,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Monday 2026-11-02 00:00 UTC.
    const MONDAY: i64 = 1_793_577_600;

    /// Four weeks of a weekday API whose busy-hour rate starts at `busy_rps` and grows by
    /// `growth` a day.
    fn growing(busy_rps: f64, growth: f64) -> Vec<f64> {
        (0..28 * 24)
            .map(|h| {
                let (day, hour) = (h / 24, h % 24);
                let busy = day % 7 < 5 && (9..17).contains(&hour);
                let rate = if busy {
                    busy_rps + growth * day as f64
                } else {
                    5.0
                };
                rate * 3600.0
            })
            .collect()
    }

    #[test]
    fn a_growing_stage_is_dated_against_the_lower_limit() {
        let hours = growing(300.0, 5.0);
        let limits = Limits {
            stage_rps: Some(1_000.0),
            account_rps: Some(10_000.0),
        };
        let c = stage_capacity(("orders", "prod"), &hours, MONDAY, limits);
        assert_ne!(c.forecast.method, "none", "{c:#?}");
        assert!((c.peak_rps - 425.0).abs() < 1e-6, "{c:#?}");
        let risk = c.risk.expect("judged");
        assert_eq!(risk.quota_name, "apigateway_stage_rate_limit");
        // Weekday peaks grow ~5/day (weekends fall back to the quiet rate, which pulls the
        // line down, and the band above it carries them): 800 is crossed within the 90 days.
        let on = risk.crosses_on.expect("crosses");
        assert!(
            on.as_str() > "2026-11-29" && on.as_str() < "2027-03-01",
            "{on}"
        );
        // Without a stage limit the account's binds, far away.
        let loose = stage_capacity(
            ("orders", "prod"),
            &hours,
            MONDAY,
            Limits {
                stage_rps: None,
                account_rps: Some(10_000.0),
            },
        );
        let risk = loose.risk.expect("judged");
        assert_eq!(risk.quota_name, "apigateway_account_rate_limit");
        assert_eq!(risk.crosses_on, None, "{risk:#?}");
        // No limit known: nothing to judge against, but the forecast stands.
        let blind = stage_capacity(("orders", "prod"), &hours, MONDAY, Limits::default());
        assert!(blind.risk.is_none());
    }

    #[test]
    fn the_account_limit_is_shared_by_every_stage() {
        let a = growing(3_000.0, 0.0);
        let b = growing(5_000.0, 0.0);
        // Each alone stays under 80% of 10,000; together they are already past it.
        let each = stage_capacity(
            ("a", "prod"),
            &b,
            MONDAY,
            Limits {
                stage_rps: None,
                account_rps: Some(10_000.0),
            },
        );
        assert_eq!(each.risk.and_then(|r| r.crosses_on), None);
        let both = account_capacity(&[a, b], MONDAY, 10_000.0);
        assert_eq!(both.crosses_on.as_deref(), Some("2026-11-29"), "{both:#?}");
    }
}
