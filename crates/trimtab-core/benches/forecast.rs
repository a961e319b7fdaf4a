//! Forecasting 1,000 tables' read and write demand (30 days of hourly totals each) 24 hours
//! ahead, with the rolling-origin backtest that picks each series' model; and predictive scaling
//! for 1,000 tables (30 days by the minute): the forecast, the reactive replay and the
//! predictive replays of every target searched; and provisioned concurrency for 1,000 functions
//! (28 days of hourly peaks: the forecast, the replays each way, the cold starts). The figures
//! the README reports.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use trimtab_core::capacity::{Platform, Policy};
use trimtab_core::concurrency::{ConcurrencyInput, advise};
use trimtab_core::forecast::forecast;
use trimtab_core::predictive::{Demand, Setting, plan};
use trimtab_core::pricing::{Architecture, PriceTable};

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
                        zone: None,
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

/// 28 days of hourly peak concurrency for function `k`: office hours on weekdays (every tenth
/// flat, every tenth random), with cold starts past a latency objective, so that provisioned
/// concurrency is advised and planned for every one.
fn provisioned_input(k: usize) -> ConcurrencyInput {
    let mut state = 0x51_7CC1_B727_220A_u64 ^ (k as u64 + 1);
    let busy = 10.0 + (k % 30) as f64 * 5.0;
    // 2026-11-02 00:00 UTC, a Monday.
    let start = trimtab_core::calendar::days_from_civil(2026, 11, 2) * 86_400;
    let hours: Vec<(i64, f64)> = (0..28 * 24)
        .map(|h: i64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            let (day, hour) = ((h / 24) % 7, h % 24);
            let level = match k % 10 {
                0 => busy * 0.5,
                1 if u < 0.2 => busy,
                1 => 2.0,
                _ if day < 5 && (9..17).contains(&hour) => busy,
                _ => 2.0,
            };
            (start + 3600 * h, level * (0.9 + 0.2 * u))
        })
        .collect();
    let window_s = 28.0 * 86_400.0;
    let mean: f64 = hours.iter().map(|(_, c)| c).sum::<f64>() / hours.len() as f64;
    ConcurrencyInput {
        memory_mb: 1024,
        architecture: Some(Architecture::X86_64),
        window_s,
        invocations: 0.7 * mean * window_s / 0.2,
        duration_avg_ms: 200.0,
        hourly_peak_concurrency: hours,
        cold_starts: Some(2_000.0),
        init_duration_avg_ms: Some(900.0),
        latency_objective_ms: Some(300.0),
        ..ConcurrencyInput::default()
    }
}

fn bench_provisioned(c: &mut Criterion) {
    let functions: Vec<ConcurrencyInput> = (0..1000).map(provisioned_input).collect();
    let prices = PriceTable::us_east_1();
    let mut group = c.benchmark_group("provisioned");
    group.sample_size(10);
    group.bench_function(
        "1,000 functions x 28 days hourly peaks: forecast, replays each way, cold starts",
        |b| {
            b.iter(|| {
                for f in &functions {
                    black_box(advise(black_box(f), &prices));
                }
            })
        },
    );
    group.finish();
}

criterion_group!(benches, bench, bench_predictive, bench_provisioned);
criterion_main!(benches);
