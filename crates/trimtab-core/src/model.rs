//! How a function's duration changes with its memory size.
//!
//! Lambda allocates CPU in proportion to memory: 1,769 MB buys the equivalent of one vCPU and
//! 10,240 MB six (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html>). A run
//! splits into a part that waits (network, downstream services, sleeps), which no amount of memory
//! shortens, and a part that computes, whose wall time is its CPU time divided by the CPU rate the
//! function can use: the smaller of the vCPU share and the number of threads that compute at once.
//!
//! ```text
//! duration(m) = wait_ms + cpu_ms / min(vcpus(m), parallelism)
//! ```
//!
//! The model is fitted to one operating point (the function's current memory) with
//! `cpu_total_time` from Lambda Insights, which measures `cpu_ms` directly:
//! - below 1,769 MB the share is under one vCPU, so any code, one thread or many, computes at the
//!   share's rate: `wait = duration - cpu / vcpus(m)`, with no unknowns.
//! - above it, the cores busy on average (`cpu / duration`) are the evidence of parallelism: at
//!   most one means one thread (the common case: most Lambda runtimes serve a request on one
//!   thread), more means at least that many. Raising memory never speeds a function beyond the
//!   parallelism it has shown.
//! - without `cpu_total_time`, the run is assumed entirely compute-bound at its whole current
//!   share when memory goes down (the largest slowdown possible) and entirely waiting when memory
//!   goes up (no speedup). Such a model never recommends a change on a promise of speed; it still
//!   finds memory that is paid for and never used.

use serde::{Deserialize, Serialize};

/// Smallest and largest memory Lambda accepts, in MB.
pub const MIN_MEMORY_MB: u32 = 128;
pub const MAX_MEMORY_MB: u32 = 10_240;
/// Memory at which a function has the equivalent of one full vCPU.
pub const ONE_VCPU_MEMORY_MB: u32 = 1_769;
/// vCPUs at the largest memory size.
pub const MAX_VCPUS: f64 = 6.0;

/// The CPU share, in vCPUs, of a function configured with `memory_mb`: proportional below 1,769 MB,
/// then linear between the two documented points (1,769 MB, 1 vCPU) and (10,240 MB, 6 vCPUs).
pub fn vcpus(memory_mb: u32) -> f64 {
    let m = f64::from(memory_mb.clamp(1, MAX_MEMORY_MB));
    let one = f64::from(ONE_VCPU_MEMORY_MB);
    if m <= one {
        m / one
    } else {
        1.0 + (m - one) * (MAX_VCPUS - 1.0) / (f64::from(MAX_MEMORY_MB) - one)
    }
}

/// Where the model's split between computing and waiting came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuEvidence {
    /// Lambda Insights `cpu_total_time` was measured.
    Measured,
    /// No CPU measurement: the asymmetric conservative assumption in the module docs.
    Assumed,
    /// Fitted on two or more memory sizes the function has run at (`crate::fit`).
    Fitted,
}

/// A fitted duration-vs-memory model of one function.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DurationModel {
    /// Memory the model was fitted at.
    pub observed_memory_mb: u32,
    /// Mean duration at the observed memory.
    pub observed_duration_ms: f64,
    /// Time per invocation spent not computing.
    pub wait_ms: f64,
    /// CPU time per invocation, in core-milliseconds.
    pub cpu_ms: f64,
    /// Threads assumed able to compute at once.
    pub parallelism: f64,
    pub evidence: CpuEvidence,
}

impl DurationModel {
    /// Fits the model to a mean duration observed at `memory_mb`, with the mean CPU time per
    /// invocation where Lambda Insights measured it.
    pub fn fit(memory_mb: u32, mean_duration_ms: f64, cpu_time_ms: Option<f64>) -> Self {
        let share = vcpus(memory_mb);
        let duration_ms = mean_duration_ms.max(0.0);
        match cpu_time_ms.filter(|c| c.is_finite() && *c >= 0.0) {
            Some(cpu_ms) => {
                // Cores busy on average; more than one proves that many threads compute at once.
                let busy = if duration_ms > 0.0 {
                    cpu_ms / duration_ms
                } else {
                    0.0
                };
                let parallelism = busy.max(1.0);
                let rate = share.min(parallelism);
                // CPU time cannot take longer than the run; measurement noise is clamped.
                let compute_ms = (cpu_ms / rate).min(duration_ms);
                Self {
                    observed_memory_mb: memory_mb,
                    observed_duration_ms: duration_ms,
                    wait_ms: duration_ms - compute_ms,
                    cpu_ms: compute_ms * rate,
                    parallelism,
                    evidence: CpuEvidence::Measured,
                }
            }
            None => Self {
                observed_memory_mb: memory_mb,
                observed_duration_ms: duration_ms,
                wait_ms: 0.0,
                cpu_ms: duration_ms * share,
                parallelism: share.max(1.0),
                evidence: CpuEvidence::Assumed,
            },
        }
    }

    /// Fraction of the observed run spent computing.
    pub fn compute_fraction(&self) -> f64 {
        if self.observed_duration_ms > 0.0 {
            (1.0 - self.wait_ms / self.observed_duration_ms).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Predicted mean duration at `memory_mb`.
    pub fn duration_ms(&self, memory_mb: u32) -> f64 {
        if self.evidence == CpuEvidence::Assumed && memory_mb >= self.observed_memory_mb {
            return self.observed_duration_ms;
        }
        let rate = vcpus(memory_mb).min(self.parallelism);
        self.wait_ms + self.cpu_ms / rate
    }

    /// Predicted duration at `memory_mb` relative to the observed one. Applied to tail latencies
    /// too, on the assumption that a slow invocation splits between computing and waiting as the
    /// mean does.
    pub fn slowdown(&self, memory_mb: u32) -> f64 {
        if self.observed_duration_ms > 0.0 {
            self.duration_ms(memory_mb) / self.observed_duration_ms
        } else {
            1.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn vcpu_share_hits_the_documented_points() {
        assert!(close(vcpus(1769), 1.0));
        assert!(close(vcpus(10_240), 6.0));
        assert!(close(vcpus(884), 884.0 / 1769.0));
        assert!(vcpus(3008) > 1.5 && vcpus(3008) < 2.0);
    }

    #[test]
    fn a_cpu_bound_single_threaded_function_scales_with_memory_up_to_one_vcpu() {
        // 1,024 MB share = 0.579 vCPU; all of it busy for the whole 400 ms run.
        let cpu_ms = 400.0 * vcpus(1024);
        let m = DurationModel::fit(1024, 400.0, Some(cpu_ms));
        assert!(close(m.wait_ms, 0.0));
        assert!(close(m.duration_ms(512), 400.0 * vcpus(1024) / vcpus(512)));
        assert!(close(m.duration_ms(1769), cpu_ms));
        // No speedup past one vCPU: one thread.
        assert!(close(m.duration_ms(4096), cpu_ms));
    }

    #[test]
    fn an_io_bound_function_barely_cares_about_memory() {
        // 300 ms run, 6 ms of CPU at 1,024 MB.
        let m = DurationModel::fit(1024, 300.0, Some(6.0));
        let at_128 = m.duration_ms(128);
        // 6 core-ms take 10 ms at 1,024 MB and 83 ms at 128 MB: a quarter slower, not eight times.
        assert!(at_128 > 370.0 && at_128 < 375.0, "{at_128}");
        assert!(m.compute_fraction() < 0.05);
    }

    #[test]
    fn a_single_thread_at_3008_mb_loses_nothing_at_1769_mb() {
        // 3,008 MB, 500 ms, 475 core-ms: one thread, 95% busy.
        let m = DurationModel::fit(3008, 500.0, Some(475.0));
        assert!(close(m.parallelism, 1.0));
        assert!(close(m.duration_ms(1769), 500.0));
        assert!(m.duration_ms(1200) > 600.0);
    }

    #[test]
    fn measured_multithreading_is_kept_when_memory_goes_down() {
        // 3,008 MB, 1,000 ms, 1,700 core-ms: at least 1.7 cores busy.
        let m = DurationModel::fit(3008, 1000.0, Some(1700.0));
        assert!(m.parallelism >= 1.7);
        assert!(close(m.duration_ms(3008), 1000.0));
        assert!(m.duration_ms(1769) > 1600.0);
    }

    #[test]
    fn without_cpu_evidence_lower_memory_is_slower_and_higher_is_no_faster() {
        let m = DurationModel::fit(1024, 200.0, None);
        assert_eq!(m.evidence, CpuEvidence::Assumed);
        assert!(close(m.duration_ms(512), 400.0));
        assert!(close(m.duration_ms(2048), 200.0));
    }

    #[test]
    fn cpu_time_larger_than_the_share_allows_is_clamped_not_negative() {
        let m = DurationModel::fit(512, 100.0, Some(90.0));
        assert!(m.wait_ms >= 0.0);
        assert!(close(m.duration_ms(512), 100.0));
    }
}
