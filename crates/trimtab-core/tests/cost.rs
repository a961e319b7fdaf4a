//! Anomaly detection and forecasting on cost series shaped like production: weekly seasonality,
//! noise, slow growth, and anomalies planted at random days and sizes.

use trimtab_core::calendar::{days_from_civil, format_date};
use trimtab_core::cost::{DailyCosts, Params, anomalies, forecast};

struct Noise(u64);
impl Noise {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A service: weekday level, weekend factor, growth per day, noise (fraction).
fn series(
    n: &mut Noise,
    days: usize,
    level: f64,
    weekend: f64,
    growth: f64,
    noise: f64,
    first_day: i64,
) -> Vec<f64> {
    (0..days)
        .map(|i| {
            let is_weekend = (first_day + i as i64 + 3).rem_euclid(7) >= 5;
            let base = level * (1.0 + growth * i as f64) * if is_weekend { weekend } else { 1.0 };
            base * (1.0 + noise * (2.0 * n.unit() - 1.0))
        })
        .collect()
}

#[test]
fn most_planted_anomalies_are_found_with_few_false_alarms() {
    let first = days_from_civil(2026, 8, 26);
    let mut n = Noise(0x51ed);
    let mut planted = Vec::new();
    let mut found_right = 0;
    let mut false_alarms = 0;
    for trial in 0..20 {
        let mut c = DailyCosts::new(first, 90);
        let services = [
            ("Lambda", 120.0, 0.5),
            ("DynamoDB", 60.0, 0.8),
            ("S3", 15.0, 1.0),
            ("APIGW", 30.0, 0.4),
        ];
        for (name, level, weekend) in services {
            for (i, v) in series(&mut n, 90, level, weekend, 0.002, 0.06, first)
                .into_iter()
                .enumerate()
            {
                c.add(name, first + i as i64, v);
            }
        }
        // One anomaly in half the trials: +60%..+300% of the day's level, after the first 5 weeks.
        if trial % 2 == 0 {
            let (name, level, _) = services[trial % services.len()];
            let day = first + 35 + (n.unit() * 54.0) as i64;
            let size = level * (0.6 + 2.4 * n.unit());
            c.add(name, day, size);
            planted.push((name, day));
            let a = anomalies(&c, &Params::default());
            if a.iter()
                .any(|x| x.service == name && x.date == format_date(day))
            {
                found_right += 1;
            }
            false_alarms += a
                .iter()
                .filter(|x| !(x.service == name && x.date == format_date(day)))
                .count();
        } else {
            false_alarms += anomalies(&c, &Params::default()).len();
        }
    }
    assert!(
        found_right * 10 >= planted.len() * 8,
        "found {found_right} of {}",
        planted.len()
    );
    // 20 trials x 4 services x ~60 judged days = ~4,800 service-days.
    assert!(false_alarms <= 3, "{false_alarms} false alarms");
}

#[test]
fn the_forecast_of_a_steady_seasonal_series_is_close() {
    let first = days_from_civil(2026, 8, 1);
    let mut n = Noise(7);
    let s = series(&mut n, 120, 100.0, 0.6, 0.0, 0.03, first);
    // Pretend today is 2026-10-20: forecast October's end and compare with the truth.
    let today = days_from_civil(2026, 10, 20);
    let known = (today - first) as usize;
    let f = forecast(&s[..known], first, today, &Params::default());
    let oct_start = (days_from_civil(2026, 10, 1) - first) as usize;
    let oct_end = (days_from_civil(2026, 11, 1) - first) as usize;
    let truth: f64 = s[oct_start..oct_end].iter().sum();
    let err = (f.month_end_usd - truth).abs() / truth;
    assert!(err < 0.02, "forecast {} vs {truth}", f.month_end_usd);
    assert!(
        f.low_usd <= truth && truth <= f.high_usd,
        "{f:?} vs {truth}"
    );
    assert!(f.backtest_mape_pct.unwrap_or(100.0) < 5.0);
}
