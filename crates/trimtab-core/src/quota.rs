//! Capacity risk: when a forecast of peak demand crosses a share of a quota (the account's Lambda
//! concurrency, say), so the quota can be raised before it throttles.
//!
//! Peaks are what a quota meets, and they rarely have a stable hourly shape, so the forecast here
//! is of daily peaks: a least-squares line through them (the trend), widened by the 90th
//! percentile of the days' distances above it (how far a day's peak runs over the trend). With
//! two weeks or more the line is drawn through each day's peak of the week to it (the upper
//! envelope), so that quiet weekends do not pull the trend of the busy days' peaks down. The
//! crossing is the first day, up to [`HORIZON_DAYS`] ahead, on which that upper line reaches
//! [`THRESHOLD`] of the quota; a peak already there in the history is a crossing today.

use serde::{Deserialize, Serialize};

use crate::calendar::format_date;
use crate::stats::{quantile_sorted, round2};

/// Share of the quota that counts as at risk.
pub const THRESHOLD: f64 = 0.8;
/// Days ahead the trend is carried.
pub const HORIZON_DAYS: i64 = 90;
/// Fewest days of peaks a trend is drawn through.
pub const MIN_DAYS: usize = 7;
/// Days of peaks from which the trend follows the weekly envelope.
const ENVELOPE_FROM_DAYS: usize = 14;

/// A quota against the forecast of what it limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityRisk {
    /// What is limited (`lambda_concurrent_executions`).
    pub quota_name: String,
    pub quota: f64,
    pub threshold_pct: f64,
    /// Highest peak in the history.
    pub peak: f64,
    /// Days of history the trend was drawn through.
    pub history_days: usize,
    /// Trend of the daily peak, per day.
    pub trend_per_day: f64,
    /// The upper forecast's value at the horizon (or at the crossing).
    pub forecast_peak: f64,
    /// `YYYY-MM-DD` (UTC) of the first day the upper forecast reaches the threshold; null when it
    /// does not within the horizon or the history is too short.
    pub crosses_on: Option<String>,
    pub reason: String,
}

/// Judges `hourly_peaks` (the highest value of each hour, the first hour starting at
/// `first_hour_epoch_s`; hours without data as 0) against `quota`. The trend is drawn through
/// the whole UTC days; a crossing `k` days ahead is dated from the last of them.
pub fn capacity_risk(
    quota_name: &str,
    hourly_peaks: &[f64],
    first_hour_epoch_s: i64,
    quota: f64,
) -> CapacityRisk {
    let first_day = first_hour_epoch_s.div_euclid(86_400);
    let skip = usize::try_from((86_400 - first_hour_epoch_s.rem_euclid(86_400)) % 86_400 / 3600)
        .unwrap_or(0)
        .min(hourly_peaks.len());
    // Whole UTC days only: a part-day's peak (tonight's, say) is no day's peak.
    let mut days: Vec<f64> = hourly_peaks[skip..]
        .chunks_exact(24)
        .map(|d| d.iter().copied().fold(0.0, f64::max))
        .collect();
    // From the first day with demand: a newer resource's earlier days are not zeros.
    let lead = days.iter().position(|&d| d > 0.0).unwrap_or(days.len());
    days.drain(..lead);
    let start_day = first_day + i64::from(skip > 0) + lead as i64;
    let end_day = (first_hour_epoch_s + 3600 * hourly_peaks.len() as i64 - 1).div_euclid(86_400);
    let peak = hourly_peaks.iter().copied().fold(0.0, f64::max);
    let threshold = THRESHOLD * quota;
    let mut risk = CapacityRisk {
        quota_name: quota_name.to_owned(),
        quota,
        threshold_pct: 100.0 * THRESHOLD,
        peak,
        history_days: days.len(),
        trend_per_day: 0.0,
        forecast_peak: peak,
        crosses_on: None,
        reason: String::new(),
    };
    if quota <= 0.0 {
        risk.reason = "no quota to judge against".into();
        return risk;
    }
    let last_day = start_day + days.len() as i64 - 1;
    if peak >= threshold {
        risk.crosses_on = Some(format_date(end_day));
        risk.reason = format!(
            "a peak of {peak:.0} already reached {:.0}% of the quota of {quota:.0}",
            100.0 * peak / quota
        );
        return risk;
    }
    if days.len() < MIN_DAYS {
        risk.reason = format!(
            "{} days of peaks; a trend needs at least {MIN_DAYS}",
            days.len()
        );
        return risk;
    }
    // Least squares through (day, peak), or through (day, the week's peak to it).
    let points: Vec<(f64, f64)> = if days.len() >= ENVELOPE_FROM_DAYS {
        (6..days.len())
            .map(|x| {
                (
                    x as f64,
                    days[x - 6..=x].iter().copied().fold(0.0, f64::max),
                )
            })
            .collect()
    } else {
        days.iter()
            .enumerate()
            .map(|(x, &y)| (x as f64, y))
            .collect()
    };
    let n = days.len() as f64;
    let m = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / m;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / m;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, y) in &points {
        let dx = x - mean_x;
        sxy += dx * (y - mean_y);
        sxx += dx * dx;
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let at = |x: f64| mean_y + slope * (x - mean_x);
    let mut above: Vec<f64> = days
        .iter()
        .enumerate()
        .map(|(x, y)| (y - at(x as f64)).max(0.0))
        .collect();
    above.sort_by(f64::total_cmp);
    let band = quantile_sorted(&above, 0.9);
    risk.trend_per_day = round2(slope);
    let last_x = n - 1.0;
    let upper = |ahead: i64| at(last_x + ahead as f64) + band;
    risk.forecast_peak = round2(upper(HORIZON_DAYS).max(0.0));
    match (1..=HORIZON_DAYS).find(|&k| upper(k) >= threshold) {
        Some(k) => {
            risk.crosses_on = Some(format_date(last_day + k));
            risk.forecast_peak = round2(upper(k));
            risk.reason = format!(
                "daily peaks grow {slope:.1} a day: the trend plus {band:.0} (how far days ran over it) reaches {:.0}, {:.0}% of the quota of {quota:.0}, in {k} days",
                upper(k),
                100.0 * THRESHOLD
            );
        }
        None => {
            risk.reason = format!(
                "daily peaks trend {slope:+.1} a day: at most {:.0} in {HORIZON_DAYS} days, under {:.0}% of the quota of {quota:.0}",
                upper(HORIZON_DAYS),
                100.0 * THRESHOLD
            );
        }
    }
    risk
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::days_from_civil;

    /// Hourly peaks for `days` days from 2026-11-01: a daily shape around a level that grows
    /// `growth` a day.
    fn peaks(days: usize, level: f64, growth: f64) -> Vec<f64> {
        (0..days * 24)
            .map(|h| {
                let day = (h / 24) as f64;
                let hour = (h % 24) as f64;
                let shape = 0.3 + 0.7 * (-(hour - 14.0).powi(2) / 18.0).exp();
                (level + growth * day) * shape * if h % 97 == 0 { 1.15 } else { 1.0 }
            })
            .collect()
    }

    fn start() -> i64 {
        days_from_civil(2026, 11, 1) * 86_400
    }

    #[test]
    fn a_growing_peak_crosses_eighty_percent_on_a_date() {
        // 500 at the daily peak, growing 10 a day, quota 1,000: 630 on day 13 (Nov 14), so 800
        // 17 days later.
        let r = capacity_risk(
            "lambda_concurrent_executions",
            &peaks(14, 500.0, 10.0),
            start(),
            1000.0,
        );
        let on = r.crosses_on.clone().expect("crosses");
        assert!(("2026-11-29".."2026-12-04").contains(&on.as_str()), "{r:?}");
        assert!((r.trend_per_day - 10.0).abs() < 1.0, "{r:?}");
    }

    #[test]
    fn a_flat_peak_well_under_the_quota_does_not_cross() {
        let r = capacity_risk(
            "lambda_concurrent_executions",
            &peaks(28, 200.0, 0.0),
            start(),
            1000.0,
        );
        assert_eq!(r.crosses_on, None, "{r:?}");
        assert!(r.forecast_peak < 800.0);
    }

    #[test]
    fn a_newer_resource_is_judged_from_its_first_day_of_demand() {
        // Ten days of nothing, then 14 days of a flat 500: no growth, so no crossing of 800.
        let mut hours = vec![0.0; 10 * 24];
        hours.extend(peaks(14, 500.0, 0.0));
        let r = capacity_risk("q", &hours, start(), 1000.0);
        assert_eq!(r.history_days, 14, "{r:?}");
        assert!(r.trend_per_day.abs() < 1.0, "{r:?}");
        assert_eq!(r.crosses_on, None, "{r:?}");
    }

    #[test]
    fn a_peak_already_over_the_threshold_crosses_now_and_short_histories_say_so() {
        let r = capacity_risk("q", &peaks(14, 900.0, 0.0), start(), 1000.0);
        assert_eq!(r.crosses_on.as_deref(), Some("2026-11-14"), "{r:?}");
        let short = capacity_risk("q", &peaks(3, 100.0, 50.0), start(), 1000.0);
        assert_eq!(short.crosses_on, None);
        assert!(short.reason.contains("at least 7"), "{short:?}");
    }
}
