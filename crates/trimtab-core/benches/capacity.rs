//! Simulating 30 days of per-minute traffic for 1,000 tables (read and write each) under target
//! tracking: the figure the README reports.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use trimtab_core::capacity::{Platform, Policy, simulate};

const MINUTES: usize = 30 * 1440;
const TABLES: usize = 1000;

fn traces() -> Vec<Vec<f64>> {
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    (0..TABLES * 2)
        .map(|k| {
            let scale = 10.0 + (k % 50) as f64 * 20.0;
            (0..MINUTES)
                .map(|m| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let noise = (state >> 11) as f64 / (1u64 << 53) as f64;
                    let hour = (m % 1440) as f64 / 60.0;
                    let shape = 0.2 + (-(hour - 14.0).powi(2) / 18.0).exp();
                    60.0 * scale * shape * (0.8 + 0.4 * noise)
                })
                .collect()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let traces = traces();
    let policy = Policy {
        target_pct: 70.0,
        min_capacity: 1.0,
        max_capacity: 40_000.0,
        schedule: vec![],
    };
    let mut group = c.benchmark_group("capacity");
    group.sample_size(10);
    group.bench_function("simulate_1000_tables_30_days_read_and_write", |b| {
        b.iter(|| {
            let mut throttled = 0.0;
            for t in &traces {
                let r = simulate(
                    black_box(t),
                    29_913_120,
                    t[0] / 42.0,
                    &policy,
                    Platform::default(),
                    None,
                );
                throttled += r.throttled_units;
            }
            black_box(throttled)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
