//! Workloads shaped like production: the four the acceptance names, and a demo fleet.

use crate::seed::{Noise, Workload};
use trimtab_core::model::vcpus;

/// An image thumbnailer at 1,024 MB that keeps its whole CPU share busy and touches 90 MB.
/// The seeds' formula would cut it to 108 MB and make it 9x slower for no saving.
pub fn cpu_bound(name: &str) -> Workload {
    Workload {
        wait_ms: 12.0,
        cpu_ms: 640.0 * vcpus(1024),
        tail_factor: 2.5,
        peak_memory_mb: 90.0,
        daily_invocations: 40_000.0,
        ..Workload::new(name, 1024)
    }
}

/// An API handler at 1,536 MB waiting on DynamoDB most of its 180 ms, using 85 MB.
pub fn io_bound_over_provisioned(name: &str) -> Workload {
    Workload {
        wait_ms: 170.0,
        cpu_ms: 6.0,
        tail_factor: 6.0,
        peak_memory_mb: 85.0,
        daily_invocations: 300_000.0,
        timeout_s: 30,
        ..Workload::new(name, 1536)
    }
}

/// A report generator at 512 MB whose peak use is 480 MB: one bad day from running out.
pub fn near_memory_limit(name: &str) -> Workload {
    Workload {
        wait_ms: 300.0,
        cpu_ms: 120.0,
        tail_factor: 3.0,
        peak_memory_mb: 480.0,
        daily_invocations: 8_000.0,
        timeout_s: 15,
        ..Workload::new(name, 512)
    }
}

/// A function invoked a handful of times in two weeks.
pub fn too_little_data(name: &str) -> Workload {
    Workload {
        daily_invocations: 2.0,
        ..Workload::new(name, 256)
    }
}

/// An I/O-bound webhook without Lambda Insights: memory only in its REPORT lines.
pub fn io_bound_without_insights(name: &str) -> Workload {
    Workload {
        wait_ms: 90.0,
        cpu_ms: 3.0,
        peak_memory_mb: 70.0,
        insights: false,
        daily_invocations: 20_000.0,
        ..Workload::new(name, 1024)
    }
}

/// A multi-threaded video transcoder at 3,008 MB keeping 1.7 cores busy.
pub fn multithreaded(name: &str) -> Workload {
    Workload {
        wait_ms: 40.0,
        cpu_ms: 1700.0,
        threads: 2.0,
        tail_factor: 2.0,
        peak_memory_mb: 600.0,
        daily_invocations: 3_000.0,
        timeout_s: 60,
        ..Workload::new(name, 3008)
    }
}

/// A function whose cold starts (250 ms on a ~110 ms run) break its 150 ms latency objective,
/// with a `live` alias named for provisioned concurrency.
pub fn cold_starts_past_objective(name: &str) -> Workload {
    Workload {
        tags: vec![
            ("trimtab:alias".into(), "live".into()),
            ("trimtab:latency-objective-ms".into(), "150".into()),
        ],
        peak_memory_mb: 400.0,
        wait_ms: 100.0,
        cpu_ms: 10.0,
        ..Workload::new(name, 512)
    }
}

/// A demo account: `n` functions over a few teams, drawn from the archetypes above with
/// varied sizes and traffic, the way a real estate drifts.
pub fn demo_fleet(n: usize) -> Vec<Workload> {
    const TEAMS: [&str; 4] = ["shop", "billing", "search", "media"];
    const ROLES: [&str; 9] = [
        "api-orders",
        "api-cart",
        "webhook",
        "thumbnailer",
        "report-builder",
        "indexer",
        "notifier",
        "transcoder",
        "nightly-export",
    ];
    const MEMORY: [u32; 6] = [128, 256, 512, 1024, 1536, 3008];
    let mut noise = Noise::new("demo-fleet");
    (0..n)
        .map(|i| {
            let name = format!(
                "{}-{}-{}",
                TEAMS[i % TEAMS.len()],
                ROLES[i % ROLES.len()],
                i / ROLES.len()
            );
            let memory = MEMORY[(noise.unit() * MEMORY.len() as f64) as usize % MEMORY.len()];
            let mut w = match i % 7 {
                0 => cpu_bound(&name),
                1 | 2 => io_bound_over_provisioned(&name),
                3 => near_memory_limit(&name),
                4 => io_bound_without_insights(&name),
                5 => multithreaded(&name),
                _ => too_little_data(&name),
            };
            if i % 7 != 5 {
                w.memory_mb = memory.max((w.peak_memory_mb * 1.05) as u32);
                if i % 7 == 0 {
                    w.cpu_ms = 400.0 * vcpus(w.memory_mb).min(1.0);
                }
            }
            w.daily_invocations *= noise.between(0.2, 3.0);
            w.arm64 = i % 3 == 0;
            w.tags = vec![("team".to_owned(), TEAMS[i % TEAMS.len()].to_owned())];
            w
        })
        .collect()
}
