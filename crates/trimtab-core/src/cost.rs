//! Cost analysis of daily Cost Explorer data: totals, changes, trends with their uncertainty,
//! anomalies, the month-end forecast with a prediction interval, and budget thresholds.
//!
//! **Anomalies** (per service, per day): the expected cost of a day is the median of the same
//! weekday over the previous `baseline_weeks` weeks (weekly seasonality, robust to a few
//! outliers); the residual is actual − expected; its scale is the median absolute deviation
//! (MAD × 1.4826, a robust standard deviation) of the residuals of the same service over the
//! window. A day is anomalous when `|residual| > threshold_sigmas × scale` and the residual is
//! also more than `min_impact_usd` and `min_impact_pct` of the expectation, so a cent on a
//! near-zero service is no alarm. Defaults: 4 weeks, 4 sigmas, $1, 20%.
//!
//! **Forecast**: each remaining day of the month is forecast as the median of its weekday over
//! the last four weeks. The one-day error spread comes from backtesting that same forecaster on
//! the last `backtest_days` days (each predicted from the four weeks before it); the interval of
//! the remaining sum is ±1.645 σ √n (90%, errors taken as independent). The backtest's mean
//! absolute percentage error is reported.
//!
//! Dates are days since 1970-01-01 (UTC); the shell converts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::calendar::{
    civil_from_days, format_date, month_start, next_month_start, previous_month_start,
};
use crate::stats::{median, round2};

/// One day of one group, as Cost Explorer answered it.
#[derive(Debug, Clone, PartialEq)]
pub struct CostRow {
    pub day: i64,
    pub key: String,
    pub usd: f64,
    pub estimated: bool,
}

/// One day of costs as the cache in the decision table holds it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CachedDay {
    /// USD by group (service, usage type or tag value); empty for a day without spend.
    pub groups: BTreeMap<String, f64>,
    /// Cost Explorer still marked the day estimated (provisional) when it was read.
    pub estimated: bool,
    pub fetched_at_s: i64,
}

/// How long a provisional (estimated) day is answered from the cache before it is read again.
/// Cost Explorer refreshes billing data at least once every 24 hours, a few times a day in
/// practice; re-reading a provisional day more often buys a request and little news.
pub const ESTIMATED_REFRESH_S: i64 = 6 * 3600;

/// The first day of `first_day..today` the cache cannot answer: missing, or estimated and read
/// more than [`ESTIMATED_REFRESH_S`] before `now_s`. `None`: the cache answers the whole window.
pub fn first_stale_day(
    cached: &BTreeMap<i64, CachedDay>,
    first_day: i64,
    today: i64,
    now_s: i64,
) -> Option<i64> {
    (first_day..today).find(|d| match cached.get(d) {
        None => true,
        Some(c) => c.estimated && now_s - c.fetched_at_s >= ESTIMATED_REFRESH_S,
    })
}

/// Every day of `from..today` as Cost Explorer answered it (`rows`), ready to cache. A day
/// without rows had no spend; it is provisional while it is one of the last two days (Cost
/// Explorer may still add to it).
pub fn days_fetched(
    rows: &[CostRow],
    from: i64,
    today: i64,
    now_s: i64,
) -> BTreeMap<i64, CachedDay> {
    let mut days: BTreeMap<i64, CachedDay> = (from..today)
        .map(|d| {
            let day = CachedDay {
                groups: BTreeMap::new(),
                estimated: d >= today - 2,
                fetched_at_s: now_s,
            };
            (d, day)
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for r in rows {
        let Some(day) = days.get_mut(&r.day) else {
            continue;
        };
        // A day with rows is provisional when any of its rows is.
        if seen.insert(r.day) {
            day.estimated = false;
        }
        day.estimated |= r.estimated;
        *day.groups.entry(r.key.clone()).or_default() += r.usd;
    }
    days
}

/// The window's daily costs from the days known; days not known stay at zero (see
/// [`missing_days`]).
pub fn assemble(days: &BTreeMap<i64, CachedDay>, first_day: i64, today: i64) -> DailyCosts {
    let mut costs = DailyCosts::new(first_day, usize::try_from(today - first_day).unwrap_or(0));
    for (day, c) in days.range(first_day..today) {
        for (k, usd) in &c.groups {
            costs.add(k, *day, *usd);
        }
        if c.estimated {
            costs.estimated_days.push(*day);
        }
    }
    costs
}

/// The days of `first_day..today` not known at all.
pub fn missing_days(days: &BTreeMap<i64, CachedDay>, first_day: i64, today: i64) -> Vec<i64> {
    (first_day..today)
        .filter(|d| !days.contains_key(d))
        .collect()
}

/// Daily costs: for each service (or tag value), USD per day from `first_day`, one per day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DailyCosts {
    pub first_day: i64,
    pub days: usize,
    pub by_key: BTreeMap<String, Vec<f64>>,
    /// Days (numbers) Cost Explorer marked as estimated.
    pub estimated_days: Vec<i64>,
}

impl DailyCosts {
    pub fn new(first_day: i64, days: usize) -> Self {
        Self {
            first_day,
            days,
            ..Self::default()
        }
    }

    /// Adds `usd` to `key` on `day` (ignored outside the range).
    pub fn add(&mut self, key: &str, day: i64, usd: f64) {
        let Ok(i) = usize::try_from(day - self.first_day) else {
            return;
        };
        if i >= self.days {
            return;
        }
        let days = self.days;
        self.by_key
            .entry(key.to_owned())
            .or_insert_with(|| vec![0.0; days])[i] += usd;
    }

    /// The sum over keys, per day.
    pub fn total(&self) -> Vec<f64> {
        let mut t = vec![0.0; self.days];
        for v in self.by_key.values() {
            for (a, b) in t.iter_mut().zip(v) {
                *a += b;
            }
        }
        t
    }
}

/// A budget: monthly (and optionally daily) limits with alert thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub monthly_usd: f64,
    #[serde(default)]
    pub daily_usd: Option<f64>,
    /// Percent of the monthly budget that alert (default 50, 80, 100).
    #[serde(default = "default_thresholds")]
    pub thresholds_pct: Vec<f64>,
}

fn default_thresholds() -> Vec<f64> {
    vec![50.0, 80.0, 100.0]
}

/// Knobs of the analysis, with the defaults documented on the module.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub baseline_weeks: usize,
    pub threshold_sigmas: f64,
    pub min_impact_usd: f64,
    pub min_impact_pct: f64,
    pub backtest_days: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            baseline_weeks: 4,
            threshold_sigmas: 4.0,
            min_impact_usd: 1.0,
            min_impact_pct: 20.0,
            backtest_days: 28,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    pub date: String,
    pub service: String,
    pub expected_usd: f64,
    pub actual_usd: f64,
    pub impact_usd: f64,
    /// Residual over the robust scale.
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    pub service: String,
    /// Least-squares slope, USD per day, and its standard error.
    pub usd_per_day: f64,
    pub standard_error_usd_per_day: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    pub month: String,
    pub month_to_date_usd: f64,
    pub month_end_usd: f64,
    pub low_usd: f64,
    pub high_usd: f64,
    /// Mean absolute percentage error of the daily forecaster on the backtest days.
    pub backtest_mape_pct: Option<f64>,
    /// Forecast spend of each remaining day.
    pub remaining_days_usd: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetStatus {
    pub budget: String,
    pub monthly_usd: f64,
    pub month_to_date_usd: f64,
    pub used_pct: f64,
    pub forecast_month_end_usd: f64,
    pub crossed_pct: Vec<f64>,
    /// Thresholds the forecast crosses later this month, with the day.
    pub predicted: Vec<PredictedCrossing>,
    /// Days this month whose spend exceeded the daily budget.
    pub daily_over: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictedCrossing {
    pub threshold_pct: f64,
    pub date: String,
}

/// The median of the same weekday over the `weeks` weeks before index `i`; `None` without two.
fn seasonal_expectation(series: &[f64], i: usize, weeks: usize) -> Option<f64> {
    let mut same: Vec<f64> = (1..=weeks)
        .filter_map(|w| i.checked_sub(7 * w).map(|j| series[j]))
        .collect();
    (same.len() >= 2).then(|| median(&mut same))
}

/// Finds anomalies in every series.
pub fn anomalies(costs: &DailyCosts, p: &Params) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (service, series) in &costs.by_key {
        let residuals: Vec<(usize, f64, f64)> = (0..series.len())
            .filter_map(|i| {
                seasonal_expectation(series, i, p.baseline_weeks).map(|e| (i, e, series[i] - e))
            })
            .collect();
        if residuals.len() < 7 {
            continue;
        }
        let mut abs: Vec<f64> = residuals.iter().map(|(_, _, r)| r.abs()).collect();
        let mut level: Vec<f64> = series.clone();
        // Scale: MAD of the residuals, floored at 1% of the typical day so a flat series does
        // not turn every cent into an anomaly.
        let scale = (1.4826 * median(&mut abs)).max(0.01 * median(&mut level));
        for (i, expected, r) in residuals {
            let score = if scale > 0.0 { r / scale } else { 0.0 };
            let big =
                r.abs() > p.min_impact_usd && r.abs() > p.min_impact_pct / 100.0 * expected.abs();
            if score.abs() > p.threshold_sigmas && big {
                out.push(Anomaly {
                    date: format_date(costs.first_day + i as i64),
                    service: service.clone(),
                    expected_usd: round2(expected),
                    actual_usd: round2(series[i]),
                    impact_usd: round2(r),
                    score: (score * 100.0).round() / 100.0,
                });
            }
        }
    }
    out.sort_by(|a, b| b.impact_usd.abs().total_cmp(&a.impact_usd.abs()));
    out
}

/// Least-squares slope and its standard error for each series.
pub fn trends(costs: &DailyCosts) -> Vec<Trend> {
    costs
        .by_key
        .iter()
        .filter_map(|(service, y)| {
            let n = y.len() as f64;
            if n < 3.0 {
                return None;
            }
            let mx = (n - 1.0) / 2.0;
            let my = y.iter().sum::<f64>() / n;
            let sxx: f64 = (0..y.len()).map(|i| (i as f64 - mx).powi(2)).sum();
            let sxy: f64 = y
                .iter()
                .enumerate()
                .map(|(i, v)| (i as f64 - mx) * (v - my))
                .sum();
            let slope = sxy / sxx;
            let sse: f64 = y
                .iter()
                .enumerate()
                .map(|(i, v)| (v - (my + slope * (i as f64 - mx))).powi(2))
                .sum();
            let se = (sse / (n - 2.0) / sxx).sqrt();
            Some(Trend {
                service: service.clone(),
                usd_per_day: (slope * 10_000.0).round() / 10_000.0,
                standard_error_usd_per_day: (se * 10_000.0).round() / 10_000.0,
            })
        })
        .collect()
}

/// Month-end forecast of `series` (a total), `today` being the first day without complete data.
pub fn forecast(series: &[f64], first_day: i64, today: i64, p: &Params) -> Forecast {
    let (y, m, _) = civil_from_days(today);
    let (month_start, next_month) = (month_start(today), next_month_start(today));
    let idx = |day: i64| usize::try_from(day - first_day).ok();
    let mtd: f64 = (month_start..today)
        .filter_map(|d| idx(d).and_then(|i| series.get(i)))
        .sum();
    // Extend the series with forecasts day by day, so later days can lean on earlier forecasts.
    let mut ext: Vec<f64> = series[..idx(today).unwrap_or(series.len()).min(series.len())].to_vec();
    let mut remaining = Vec::new();
    for _ in today..next_month {
        let i = ext.len();
        let f = seasonal_expectation(&ext, i, 4).unwrap_or_else(|| {
            let tail = &ext[ext.len().saturating_sub(7)..];
            if tail.is_empty() {
                0.0
            } else {
                tail.iter().sum::<f64>() / tail.len() as f64
            }
        });
        ext.push(f);
        remaining.push(round2(f));
    }
    // Backtest the same forecaster on the last days with complete data.
    let known = idx(today).unwrap_or(series.len()).min(series.len());
    let mut errors = Vec::new();
    let mut ape = Vec::new();
    for i in known.saturating_sub(p.backtest_days)..known {
        if let Some(f) = seasonal_expectation(&series[..known], i, 4) {
            errors.push(series[i] - f);
            if series[i].abs() > 1e-9 {
                ape.push(((series[i] - f) / series[i]).abs());
            }
        }
    }
    let sigma = if errors.len() > 1 {
        let mean = errors.iter().sum::<f64>() / errors.len() as f64;
        (errors.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (errors.len() - 1) as f64).sqrt()
    } else {
        0.0
    };
    let rest: f64 = remaining.iter().sum();
    let half = 1.645 * sigma * (remaining.len() as f64).sqrt();
    Forecast {
        month: format!("{y:04}-{m:02}"),
        month_to_date_usd: round2(mtd),
        month_end_usd: round2(mtd + rest),
        low_usd: round2((mtd + rest - half).max(mtd)),
        high_usd: round2(mtd + rest + half),
        backtest_mape_pct: (!ape.is_empty())
            .then(|| round2(100.0 * ape.iter().sum::<f64>() / ape.len() as f64)),
        remaining_days_usd: remaining,
    }
}

/// Where a budget stands now and where the forecast takes it.
pub fn budget_status(
    name: &str,
    budget: &Budget,
    series: &[f64],
    first_day: i64,
    today: i64,
    f: &Forecast,
) -> BudgetStatus {
    let month_start = month_start(today);
    let used = 100.0 * f.month_to_date_usd / budget.monthly_usd.max(1e-9);
    let crossed: Vec<f64> = budget
        .thresholds_pct
        .iter()
        .copied()
        .filter(|t| used >= *t)
        .collect();
    let mut predicted = Vec::new();
    for &t in budget.thresholds_pct.iter().filter(|t| used < **t) {
        let mut cum = f.month_to_date_usd;
        for (k, d) in f.remaining_days_usd.iter().enumerate() {
            cum += d;
            if cum >= t / 100.0 * budget.monthly_usd {
                predicted.push(PredictedCrossing {
                    threshold_pct: t,
                    date: format_date(today + k as i64),
                });
                break;
            }
        }
    }
    let daily_over = match budget.daily_usd {
        Some(limit) => (month_start..today)
            .filter(|d| {
                usize::try_from(d - first_day)
                    .ok()
                    .and_then(|i| series.get(i))
                    .is_some_and(|v| *v > limit)
            })
            .map(format_date)
            .collect(),
        None => Vec::new(),
    };
    BudgetStatus {
        budget: name.to_owned(),
        monthly_usd: budget.monthly_usd,
        month_to_date_usd: f.month_to_date_usd,
        used_pct: round2(used),
        forecast_month_end_usd: f.month_end_usd,
        crossed_pct: crossed,
        predicted,
        daily_over,
    }
}

/// Week-over-week and month-over-month change of a series, percent (`None` without a base).
pub fn changes(series: &[f64], first_day: i64, today: i64) -> (Option<f64>, Option<f64>) {
    let at = |d: i64| {
        usize::try_from(d - first_day)
            .ok()
            .and_then(|i| series.get(i))
            .copied()
            .unwrap_or(0.0)
    };
    let sum = |from: i64, to: i64| (from..to).map(at).sum::<f64>();
    let pct =
        |now: f64, before: f64| (before > 0.0).then(|| round2(100.0 * (now - before) / before));
    let wow = pct(sum(today - 7, today), sum(today - 14, today - 7));
    let (this_start, prev_start) = (month_start(today), previous_month_start(today));
    let elapsed = today - this_start;
    // The daily mean of this month so far against that of the same days of last month, never
    // past its end (on 31 March, all of February's 28 days).
    let prev_days = elapsed.min(this_start - prev_start);
    let mom = if prev_start >= first_day && elapsed > 0 {
        pct(
            sum(this_start, today) / elapsed as f64,
            sum(prev_start, prev_start + prev_days) / prev_days as f64,
        )
    } else {
        None
    };
    (wow, mom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::days_from_civil;

    #[test]
    fn month_over_month_compares_the_same_days_never_past_last_months_end() {
        // 31 March: March 1..30 against all of February (28 days), not into March.
        let first = days_from_civil(2026, 1, 1);
        let today = days_from_civil(2026, 3, 31);
        let series: Vec<f64> = (first..today)
            .map(|d| {
                if d >= days_from_civil(2026, 3, 1) {
                    2.0
                } else {
                    1.0
                }
            })
            .collect();
        let (_, mom) = changes(&series, first, today);
        // $2 a day against $1 a day (30 days of March so far, all 28 of February).
        assert_eq!(mom, Some(100.0));
    }

    fn weekly(days: usize, base: f64) -> Vec<f64> {
        (0..days)
            .map(|i| {
                base * if i % 7 >= 5 { 0.6 } else { 1.0 }
                    * (1.0 + 0.02 * ((i * 7919) % 13) as f64 / 13.0)
            })
            .collect()
    }

    #[test]
    fn a_planted_spike_is_found_and_a_clean_series_is_quiet() {
        let mut c = DailyCosts::new(days_from_civil(2026, 8, 26), 90);
        for (i, v) in weekly(90, 100.0).into_iter().enumerate() {
            c.add("AWS Lambda", c.first_day + i as i64, v);
        }
        assert!(anomalies(&c, &Params::default()).is_empty());
        c.add("AWS Lambda", c.first_day + 60, 80.0);
        let a = anomalies(&c, &Params::default());
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].date, format_date(c.first_day + 60));
        assert!((a[0].impact_usd - 80.0).abs() < 5.0, "{a:?}");
    }

    #[test]
    fn forecast_of_a_steady_series_is_tight_and_budgets_cross_on_the_right_day() {
        let first = days_from_civil(2026, 9, 1);
        let series = vec![100.0; 84];
        let today = days_from_civil(2026, 11, 24);
        let f = forecast(&series, first, today, &Params::default());
        // November: 23 days done at 100, 7 left at 100.
        assert_eq!(f.month_to_date_usd, 2300.0);
        assert_eq!(f.month_end_usd, 3000.0);
        assert_eq!((f.low_usd, f.high_usd), (3000.0, 3000.0));
        assert_eq!(f.backtest_mape_pct, Some(0.0));
        let b = Budget {
            monthly_usd: 2800.0,
            daily_usd: Some(99.0),
            thresholds_pct: vec![50.0, 80.0, 100.0],
        };
        let s = budget_status("prod", &b, &series, first, today, &f);
        assert_eq!(s.crossed_pct, vec![50.0, 80.0]);
        // 2,800 reached on the 28th: 2,300 + 5 x 100.
        assert_eq!(
            s.predicted,
            vec![PredictedCrossing {
                threshold_pct: 100.0,
                date: "2026-11-28".into()
            }]
        );
        assert_eq!(s.daily_over.len(), 23);
    }

    #[test]
    fn trend_slope_and_changes() {
        let mut c = DailyCosts::new(0, 30);
        for i in 0..30 {
            c.add("s", i, 10.0 + 2.0 * i as f64);
        }
        let t = trends(&c);
        assert_eq!(t[0].usd_per_day, 2.0);
        assert_eq!(t[0].standard_error_usd_per_day, 0.0);
        let series = vec![10.0; 60];
        assert_eq!(
            changes(
                &series,
                days_from_civil(2026, 10, 1),
                days_from_civil(2026, 11, 15)
            ),
            (Some(0.0), Some(0.0))
        );
    }
}

/// Saving from moving x86_64 Lambda duration to arm64, computed from Cost Explorer usage types:
/// the x86 duration spend (`*Lambda-GB-Second`, not `-ARM`) over the last `days` days, scaled to
/// a month, times one minus the arm64/x86 first-tier price ratio. `None` without such spend.
pub fn arm64_saving_from_usage(
    by_usage_type: &DailyCosts,
    days: usize,
    prices: &crate::pricing::PriceTable,
) -> Option<(f64, f64)> {
    let x86_rate = prices.x86_64.duration_tiers.first()?.usd_per_gb_s;
    let arm_rate = prices.arm64.duration_tiers.first()?.usd_per_gb_s;
    let recent: f64 = by_usage_type
        .by_key
        .iter()
        .filter(|(k, _)| k.ends_with("Lambda-GB-Second"))
        .map(|(_, v)| v[v.len().saturating_sub(days)..].iter().sum::<f64>())
        .sum();
    if recent <= 0.0 || days == 0 {
        return None;
    }
    let monthly = recent * 30.4167 / days as f64;
    Some((
        round2(monthly),
        round2(monthly * (1.0 - arm_rate / x86_rate)),
    ))
}

#[cfg(test)]
mod usage_tests {
    use super::*;

    #[test]
    fn arm64_saving_is_the_price_gap_on_measured_x86_duration_spend() {
        let mut c = DailyCosts::new(0, 30);
        for d in 0..30 {
            c.add("USE1-Lambda-GB-Second", d, 10.0);
            c.add("USE1-Lambda-GB-Second-ARM", d, 5.0);
            c.add("USE1-Request", d, 1.0);
        }
        let (monthly, saving) =
            arm64_saving_from_usage(&c, 30, &crate::pricing::PriceTable::us_east_1())
                .expect("x86 spend");
        assert_eq!(monthly, 304.17);
        // 1 - 0.0000133334 / 0.0000166667 = 20.0%.
        assert!((saving - 60.83).abs() < 0.01, "{saving}");
    }

    #[test]
    fn the_cache_answers_closed_days_and_fresh_estimates_only() {
        let day = |estimated, fetched_at_s| CachedDay {
            groups: BTreeMap::from([("AWS Lambda".to_owned(), 1.0)]),
            estimated,
            fetched_at_s,
        };
        let now = 100 * 86_400;
        let mut cached: BTreeMap<i64, CachedDay> =
            (90..98).map(|d| (d, day(false, now - 86_400))).collect();
        cached.insert(98, day(true, now - 3600));
        cached.insert(99, day(true, now - 3600));
        assert_eq!(first_stale_day(&cached, 90, 100, now), None);
        // Six hours on, the estimates are read again; nothing before them.
        assert_eq!(
            first_stale_day(&cached, 90, 100, now + ESTIMATED_REFRESH_S),
            Some(98)
        );
        cached.remove(&93);
        assert_eq!(first_stale_day(&cached, 90, 100, now), Some(93));
        assert_eq!(missing_days(&cached, 90, 100), [93]);
        let costs = assemble(&cached, 90, 100);
        assert_eq!(costs.estimated_days, [98, 99]);
        assert!((costs.total().iter().sum::<f64>() - 9.0).abs() < 1e-9);
    }

    #[test]
    fn fetched_days_keep_quiet_days_and_the_estimated_flag() {
        let row = |day, key: &str, usd, estimated| CostRow {
            day,
            key: key.to_owned(),
            usd,
            estimated,
        };
        let rows = [
            row(95, "AWS Lambda", 2.0, false),
            row(95, "Amazon DynamoDB", 1.0, false),
            row(99, "AWS Lambda", 3.0, true),
            row(120, "AWS Lambda", 3.0, true),
        ];
        let days = days_fetched(&rows, 95, 100, 7);
        assert_eq!(days.len(), 5);
        assert_eq!(days[&95].groups.len(), 2);
        assert!(!days[&95].estimated);
        // No spend on 96..=97 (closed) and 98 (one of the last two days: provisional).
        assert!(days[&96].groups.is_empty() && !days[&96].estimated);
        assert!(days[&98].estimated && days[&99].estimated);
        assert_eq!(days[&99].fetched_at_s, 7);
    }
}
