//! Seasonal forecasts of hourly demand (a table's consumed capacity, a function's concurrency,
//! an API stage's requests) with their accuracy measured, not assumed.
//!
//! Three models compete on each series, and a rolling-origin backtest picks one:
//! - `weekly_profile`: each hour of the week is the median of that hour over the past weeks
//!   (medians shrug off one holiday or one spike), scaled by the recent level (the last week's
//!   total over its profile's) and carried forward by the level's trend;
//! - `daily_profile`: the same by hour of day, weekdays and weekends apart (for series with less
//!   history than the weekly profile needs);
//! - `seasonal_naive`: the same hour one week earlier.
//!
//! The backtest forecasts each of the last [`BACKTEST_DAYS`] days from the history before it
//! (`horizon` 24 hours ahead), and reports for the chosen model its WAPE (absolute errors over
//! demand), its bias (signed errors over demand), and how often the truth fell inside the
//! prediction interval, whose half-widths are the 10th and 90th percentiles of the relative
//! errors of the earlier backtest days. A series declines a forecast when it is too short (under
//! two weeks), or when no model beats a flat mean by a clear margin or has a WAPE under
//! [`MAX_WAPE`]: then only reactive scaling is recommended.

use serde::{Deserialize, Serialize};

use crate::stats::{median, quantile_sorted, round2};

/// Hours in a day and in a week.
const DAY: usize = 24;
const WEEK: usize = 168;
/// Days the backtest forecasts, one origin a day.
pub const BACKTEST_DAYS: usize = 7;
/// Fewest hours of history a forecast needs: two weeks (one to backtest against).
pub const MIN_HISTORY_HOURS: usize = 2 * WEEK;
/// A forecast whose backtest WAPE is above this is no forecast.
pub const MAX_WAPE: f64 = 0.35;
/// The chosen model must beat a flat mean's WAPE by this factor to show a shape.
const SHAPE_MARGIN: f64 = 0.8;

/// The models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    WeeklyProfile,
    DailyProfile,
    SeasonalNaive,
}

/// A forecast with its measured accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    pub method: Method,
    pub horizon_hours: usize,
    /// The point forecast, one value an hour from the end of the history.
    pub values: Vec<f64>,
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    pub backtest_wape_pct: f64,
    pub backtest_bias_pct: f64,
    pub interval_coverage_pct: f64,
}

/// A forecast, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "forecast", rename_all = "snake_case")]
pub enum Outcome {
    Made(Forecast),
    None { reason: String },
}

/// Forecasts `horizon` hours after `history` (hourly values, the first at hour-of-week
/// `first_hour_of_week`, 0 = Monday 00:00 UTC).
pub fn forecast(history: &[f64], first_hour_of_week: usize, horizon: usize) -> Outcome {
    if history.len() < MIN_HISTORY_HOURS {
        return Outcome::None {
            reason: format!(
                "{} hours of history; a forecast needs at least {MIN_HISTORY_HOURS} (two weeks)",
                history.len()
            ),
        };
    }
    let total: f64 = history.iter().sum();
    if total <= 0.0 {
        return Outcome::None {
            reason: "no demand in the history".to_owned(),
        };
    }
    let flat = backtest(history, first_hour_of_week, None);
    let mut best: Option<(Method, Backtest)> = None;
    for m in [
        Method::WeeklyProfile,
        Method::DailyProfile,
        Method::SeasonalNaive,
    ] {
        let b = backtest(history, first_hour_of_week, Some(m));
        if best.as_ref().is_none_or(|(_, x)| b.wape < x.wape) {
            best = Some((m, b));
        }
    }
    let Some((method, bt)) = best else {
        return Outcome::None {
            reason: "no model could be backtested".to_owned(),
        };
    };
    if bt.wape > MAX_WAPE {
        return Outcome::None {
            reason: format!(
                "no stable shape: the best model ({method:?}) misses by {:.0}% of demand in the backtest",
                100.0 * bt.wape
            ),
        };
    }
    if bt.wape > SHAPE_MARGIN * flat.wape {
        return Outcome::None {
            reason: format!(
                "no shape: the best model ({method:?}, {:.0}% error) is not clearly better than a flat mean ({:.0}%)",
                100.0 * bt.wape,
                100.0 * flat.wape
            ),
        };
    }
    let values = predict(history, first_hour_of_week, Some(method), horizon);
    let (lo, hi) = bt.band;
    Outcome::Made(Forecast {
        method,
        horizon_hours: horizon,
        lower: values
            .iter()
            .map(|v| round2((v * (1.0 + lo)).max(0.0)))
            .collect(),
        upper: values.iter().map(|v| round2(v * (1.0 + hi))).collect(),
        values: values.iter().map(|v| round2(*v)).collect(),
        backtest_wape_pct: round2(100.0 * bt.wape),
        backtest_bias_pct: round2(100.0 * bt.bias),
        interval_coverage_pct: round2(100.0 * bt.coverage),
    })
}

/// A model's rolling-origin backtest.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Backtest {
    wape: f64,
    bias: f64,
    coverage: f64,
    /// Relative error quantiles (10th, 90th) from the backtest days.
    band: (f64, f64),
}

/// Forecasts each of the last `BACKTEST_DAYS` days from the history before it; `None` is the
/// flat mean of the last week.
fn backtest(history: &[f64], first_how: usize, method: Option<Method>) -> Backtest {
    let n = history.len();
    let (mut abs, mut signed, mut demand) = (0.0, 0.0, 0.0);
    let mut rel: Vec<Vec<f64>> = Vec::new();
    let mut days: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    for d in (1..=BACKTEST_DAYS).rev() {
        let origin = n - d * DAY;
        if origin < WEEK {
            continue;
        }
        let truth = &history[origin..origin + DAY];
        let f = predict(&history[..origin], first_how, method, DAY);
        for (t, p) in truth.iter().zip(&f) {
            abs += (t - p).abs();
            signed += p - t;
            demand += t;
        }
        rel.push(
            truth
                .iter()
                .zip(&f)
                .filter(|(_, p)| **p > 0.0)
                .map(|(t, p)| t / p - 1.0)
                .collect(),
        );
        days.push((truth.to_vec(), f));
    }
    // Interval from every day's errors; coverage judged on each day with the band of the others.
    let band = band_of(rel.iter().flatten().copied().collect());
    let (mut inside, mut count) = (0usize, 0usize);
    for (k, (truth, f)) in days.iter().enumerate() {
        let others: Vec<f64> = rel
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != k)
            .flat_map(|(_, r)| r.iter().copied())
            .collect();
        let (lo, hi) = band_of(others);
        for (t, p) in truth.iter().zip(f) {
            count += 1;
            if *t >= p * (1.0 + lo) - 1e-9 && *t <= p * (1.0 + hi) + 1e-9 {
                inside += 1;
            }
        }
    }
    let safe = |x: f64| {
        if demand > 0.0 {
            x / demand
        } else {
            f64::INFINITY
        }
    };
    Backtest {
        wape: safe(abs),
        bias: safe(signed),
        coverage: if count > 0 {
            inside as f64 / count as f64
        } else {
            0.0
        },
        band,
    }
}

fn band_of(mut rel: Vec<f64>) -> (f64, f64) {
    if rel.is_empty() {
        return (0.0, 0.0);
    }
    rel.sort_by(f64::total_cmp);
    (quantile_sorted(&rel, 0.1), quantile_sorted(&rel, 0.9))
}

/// `horizon` hours after `history` by `method` (`None`: the last week's mean).
fn predict(history: &[f64], first_how: usize, method: Option<Method>, horizon: usize) -> Vec<f64> {
    let n = history.len();
    let how = |i: usize| (first_how + i) % WEEK;
    match method {
        None => {
            let last = &history[n.saturating_sub(WEEK)..];
            vec![last.iter().sum::<f64>() / last.len().max(1) as f64; horizon]
        }
        Some(Method::SeasonalNaive) => (0..horizon)
            .map(|h| {
                let mut i = n + h;
                while i >= n {
                    i -= WEEK.min(i);
                }
                history[i]
            })
            .collect(),
        Some(m) => {
            // The profile: per season slot, the median of the values seen there.
            let slot = |i: usize| match m {
                Method::WeeklyProfile => how(i),
                _ => {
                    let weekend = how(i) / DAY >= 5;
                    (how(i) % DAY) + if weekend { DAY } else { 0 }
                }
            };
            let slots = if m == Method::WeeklyProfile {
                WEEK
            } else {
                2 * DAY
            };
            let mut seen: Vec<Vec<f64>> = vec![Vec::new(); slots];
            for (i, v) in history.iter().enumerate() {
                seen[slot(i)].push(*v);
            }
            let profile: Vec<f64> = seen.iter_mut().map(|v| median(v)).collect();
            // Level: the last two weeks' totals against the profile's, for the level and its
            // trend per hour.
            let ratio = |from: usize, to: usize| {
                let actual: f64 = history[from..to].iter().sum();
                let expected: f64 = (from..to).map(|i| profile[slot(i)]).sum();
                if expected > 0.0 {
                    actual / expected
                } else {
                    1.0
                }
            };
            let last = ratio(n - WEEK, n);
            let before = if n >= 2 * WEEK {
                ratio(n - 2 * WEEK, n - WEEK)
            } else {
                last
            };
            let per_hour = (last - before) / WEEK as f64;
            (0..horizon)
                .map(|h| {
                    // The level at the middle of the last week, carried forward.
                    let level = last + per_hour * (WEEK as f64 / 2.0 + h as f64);
                    (profile[slot(n + h)] * level.max(0.0)).max(0.0)
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A business API's hourly demand: busy weekday hours, quiet nights and weekends, a trend,
    /// noise, and a holiday Monday in the second week.
    fn business(weeks: usize, trend_per_week: f64, noise: f64, seed: u64) -> Vec<f64> {
        let mut state = seed;
        let mut rnd = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
        };
        (0..weeks * WEEK)
            .map(|i| {
                let (day, hour) = ((i / DAY) % 7, i % DAY);
                let daily = if (8..19).contains(&hour) { 100.0 } else { 15.0 };
                let weekly = if day >= 5 { 0.3 } else { 1.0 };
                let holiday = if i / DAY == 7 { 0.3 } else { 1.0 };
                let level = 1.0 + trend_per_week * i as f64 / WEEK as f64;
                (daily * weekly * holiday * level * (1.0 + noise * rnd())).max(0.0)
            })
            .collect()
    }

    #[test]
    fn a_business_week_is_forecast_with_its_accuracy_measured() {
        let series = business(5, 0.03, 0.1, 7);
        let Outcome::Made(f) = forecast(&series, 0, 48) else {
            panic!("declined");
        };
        assert_eq!(f.values.len(), 48);
        eprintln!(
            "{:?}: WAPE {}%, bias {}%, coverage {}%",
            f.method, f.backtest_wape_pct, f.backtest_bias_pct, f.interval_coverage_pct
        );
        assert!(f.backtest_wape_pct < 12.0, "{f:?}");
        assert!(f.backtest_bias_pct.abs() < 6.0, "{f:?}");
        assert!(f.interval_coverage_pct > 60.0, "{f:?}");
        // Monday after the history: the morning ramp is forecast.
        assert!(f.values[10] > 3.0 * f.values[3], "{:?}", &f.values[..24]);
        assert!(f.lower[10] <= f.values[10] && f.values[10] <= f.upper[10]);
    }

    #[test]
    fn spikes_and_a_trend_do_not_throw_the_profile() {
        // Growing 10% a week, with ten one-hour spikes of 8x scattered over the history.
        let mut series = business(4, 0.10, 0.05, 11);
        for k in 0..10 {
            series[37 + k * 61] *= 8.0;
        }
        let Outcome::Made(f) = forecast(&series, 0, 24) else {
            panic!("declined");
        };
        // Two of the spikes fall on backtest days and count as error there.
        assert!(f.backtest_wape_pct < 20.0, "{f:?}");
        // Monday 11:00 of week 5: 100 x (1 + 0.1 x 4) = 140, give or take the noise.
        let at_11 = f.values[11];
        assert!((120.0..=160.0).contains(&at_11), "{at_11}");
        let json = serde_json::to_value(Outcome::Made(f)).unwrap_or_default();
        assert_eq!(json["forecast"], "made");
        assert_eq!(json["method"], "weekly_profile");
        let none = serde_json::to_value(forecast(&series[..100], 0, 24)).unwrap_or_default();
        assert_eq!(none["forecast"], "none");
        assert!(
            none["reason"]
                .as_str()
                .is_some_and(|r| r.contains("two weeks"))
        );
    }

    #[test]
    fn short_shapeless_or_spiky_series_decline() {
        let short = business(1, 0.0, 0.1, 1);
        assert!(matches!(forecast(&short, 0, 24), Outcome::None { .. }));
        // Flat demand with noise: no shape to schedule.
        let mut state = 3u64;
        let flat: Vec<f64> = (0..4 * WEEK)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                50.0 + 20.0 * ((state >> 33) as f64 / (1u64 << 31) as f64)
            })
            .collect();
        assert!(
            matches!(forecast(&flat, 0, 24), Outcome::None { .. }),
            "flat"
        );
        // Rare bursts on an idle floor: no stable shape.
        let spiky: Vec<f64> = (0..4 * WEEK)
            .map(|i| if (i * 7919) % 97 == 0 { 500.0 } else { 1.0 })
            .collect();
        assert!(
            matches!(forecast(&spiky, 0, 24), Outcome::None { .. }),
            "spiky"
        );
    }
}
