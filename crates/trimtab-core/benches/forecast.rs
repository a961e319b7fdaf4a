//! Forecasting 1,000 tables' read and write demand (30 days of hourly totals each) 24 hours
//! ahead, with the rolling-origin backtest that picks each series' model; and predictive scaling
//! for 1,000 tables (30 days by the minute): the forecast, the reactive replay and the
//! predictive replays of every target searched. The figures the README reports.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use trimtab_core::capacity::{Platform, Policy};
use trimtab_core::forecast::forecast;
use trimtab_core::predictive::{Demand, Setting, plan};

const HOURS: usize = 30 * 24;
const SERIES: usize = 2 * 1000;

fn series() -> Vec<Vec<f64>> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    (0..SERIES)
        .map(|k| {
            let scale = 10.0 + (k % 50) as f64 * 20.0;
            (0..HOURS)
                .map(|h| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let noise = (state >> 11) as f64 / (1u64 << 53) as f64;
                    let (day, hour) = ((h / 24) % 7, (h % 24) as f64);
                    let weekly = if day >= 5 { 0.4 } else { 1.0 };
                    let shape = 0.2 + (-(hour - 14.0).powi(2) / 18.0).exp();
                    3600.0 * scale * shape * weekly * (0.8 + 0.4 * noise)
                })
                .collect()
        })
        .collect()
}

/// 30 days by the minute of one table's writes: weekday business hours with a ramp, quiet nights
/// and weekends, noise, a spike now and then; every tenth table flat and every tenth spiky (those
/// decline).
fn per_minute(k: usize) -> Vec<f64> {
    let mut state = 0x2545_F491_4F6C_DD1D_u64 ^ (k as u64 + 1);
    let busy = 50.0 + (k % 40) as f64 * 25.0;
    (0..30 * 1440)
        .map(|m| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            let (day, minute) = (m / 1440, m % 1440);
            let rate = match k % 10 {
                0 => busy * 0.5,
                1 if u < 0.002 => busy * 8.0,
                1 => busy * 0.05,
                _ if day % 7 < 5 && (8 * 60..18 * 60).contains(&minute) => busy,
                _ => busy * 0.05,
            };
            60.0 * rate * (0.9 + 0.2 * u)
        })
        .collect()
}

fn bench_predictive(c: &mut Criterion) {
    let tables: Vec<Vec<f64>> = (0..1000).map(per_minute).collect();
    // 2026-11-02 00:00 UTC, a Monday.
    let start = trimtab_core::calendar::days_from_civil(2026, 11, 2) * 1440;
    let reactive = Policy {
        target_pct: 70.0,
        min_capacity: 5.0,
        max_capacity: 40_000.0,
        schedule: Vec::new(),
    };
    let mut group = c.benchmark_group("predictive");
    group.sample_size(10);
    group.bench_function(
        "1,000 tables x 30 days per minute: forecast, reactive and predictive replays",
        |b| {
            b.iter(|| {
                for t in &tables {
                    let demand = Demand {
                        per_minute: t,
                        start_epoch_min: start,
                        hourly: &[],
                        hourly_start_epoch_min: start,
                    };
                    black_box(plan(
                        demand,
                        &reactive,
                        Setting::new(Platform::default(), 0.00065),
                    ));
                }
            })
        },
    );
    group.finish();
}

fn bench(c: &mut Criterion) {
    let all = series();
    let mut group = c.benchmark_group("forecast");
    group.sample_size(10);
    group.bench_function(
        "2,000 series x 30 days hourly, 24 h ahead with backtest",
        |b| {
            b.iter(|| {
                for s in &all {
                    black_box(forecast(black_box(s), 0, 24));
                }
            })
        },
    );
    group.finish();
}

criterion_group!(benches, bench, bench_predictive);
criterion_main!(benches);
