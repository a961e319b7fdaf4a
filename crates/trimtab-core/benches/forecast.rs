//! Forecasting 1,000 tables' read and write demand (30 days of hourly totals each) 24 hours
//! ahead, with the rolling-origin backtest that picks each series' model: the figure the README
//! reports.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use trimtab_core::forecast::forecast;

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

criterion_group!(benches, bench);
criterion_main!(benches);
