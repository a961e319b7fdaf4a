//! The duration model fitted on every operating point a function has actually run at, with an
//! error bound on what it predicts.
//!
//! The physics is [`crate::model`]'s: `duration(m) = wait + cpu / min(vcpus(m), parallelism)`.
//! One point with Lambda Insights' CPU time pins `wait` and `cpu` at once; without it one point
//! cannot tell waiting from computing, and the model assumes the worst in each direction. Two or
//! more points at different memory sizes measure the split instead: for each candidate
//! parallelism (1, 1.5, 2, 3, 4 or 6 threads) `wait` and `cpu` are a weighted least-squares fit of
//! the mean durations against `1 / min(vcpus(m), parallelism)`, both kept non-negative; the
//! parallelism with the smallest relative residual wins, the lowest on a tie (fewer threads
//! promise less speed from more memory). Points all under one vCPU cannot show parallelism: it is
//! taken as one thread.
//!
//! **Error bound.** A prediction's relative error is bounded by the fit's relative residual (RMS),
//! never less than the noise of a mean of the points' invocations (a coefficient of variation of
//! one assumed for a single run's duration, so 1/sqrt(n)), than sqrt(2) times the relative
//! standard error of today's window mean (from its daily means: two windows' means of the same
//! workload differ by that much), and than 0.5%. It grows with the distance from the measured
//! points in the model's variable (`1 / CPU rate`) relative to the span they cover
//! (interpolation is trusted, far extrapolation is not), is at least the disagreement with Lambda
//! Insights' one-point prediction where there is CPU time, and below the smallest size measured
//! adds the memory-pressure term ([`pressure_error`]). A one-point model with CPU time has the
//! 0.5% floor plus the pressure term. The latency guard is applied to the upper bound.
//!
//! **The walk.** A step's record keeps its prediction and bound ([`StepPrediction`]); the next
//! run compares. A step slower than its upper bound stops the walk; one that also breaks the
//! guard goes back to the nearest larger size measured within it. A size measured slower than
//! the guard excludes every size at or below it.
//!
//! **What it does not capture**: memory pressure (garbage collection, caches evicted) near the
//! peak memory use, which only the pressure term, the memory floor (peak use plus headroom) and
//! the walk's check guard against; cold starts' share of the mean; network bandwidth that grows
//! with memory; a workload that changed between the points beyond the noise its daily means
//! show (the points are those of the changes still in force, up to 90 days old).

use serde::{Deserialize, Serialize};

use crate::model::{CpuEvidence, DurationModel, vcpus};
use crate::records::{DecisionRecord, RecordState};

/// Parallelisms tried.
const PARALLELISMS: [f64; 6] = [1.0, 1.5, 2.0, 3.0, 4.0, 6.0];
/// Smallest relative error bound of a prediction.
const ERROR_FLOOR: f64 = 0.005;
/// Relative residuals this close count as a tie.
const TIE: f64 = 0.005;

/// Where an operating point was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointSource {
    /// The current configuration, over the lookback window (since the last change).
    Current,
    /// Before a change Trimtab made, from the change's decision record.
    BeforeChange,
    /// A version behind an alias, measured by a canary (`ExecutedVersion`).
    Canary,
    /// Before a change made outside Trimtab in the lookback window (metrics split at the
    /// change).
    BeforeOutsideChange,
}

/// A mean duration measured at one memory size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    pub memory_mb: u32,
    pub duration_ms: f64,
    pub invocations: f64,
    pub source: PointSource,
}

/// What the last step predicted at the size it moved to: the next run compares it with what was
/// measured there.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepPrediction {
    pub memory_mb: u32,
    pub predicted_ms: f64,
    /// The prediction's relative error bound, percent.
    pub error_pct: f64,
    /// The confidence in this step (the recommendation's confidence judged at the step's size,
    /// which extrapolates less when the step bound stops short of the recommendation). The apply
    /// guard judges the change it makes, not the one it stops short of. `None` where unknown (a
    /// step read back from a record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
}

impl StepPrediction {
    /// How much slower than its upper bound the step ran, as a fraction (`None` when within it or
    /// at another size): such a step shows the model missed something (a memory-pressure knee,
    /// garbage collection) and the walk stops there.
    pub fn surprise(&self, memory_mb: u32, measured_ms: f64) -> Option<f64> {
        let upper = self.predicted_ms * (1.0 + self.error_pct / 100.0);
        (memory_mb == self.memory_mb && upper > 0.0 && measured_ms > upper)
            .then(|| measured_ms / upper - 1.0)
    }
}

/// The relative error bound of a one-point model fitted with Lambda Insights' CPU time at
/// `memory_mb`: the floor (CPU share by memory is documented physics), plus the memory-pressure
/// risk at that size for a function whose peak use is `peak_used_mb`.
pub fn one_point_error(memory_mb: u32, peak_used_mb: Option<f64>) -> f64 {
    ERROR_FLOOR + pressure_error(memory_mb, peak_used_mb)
}

/// Share of memory in use above which a smaller size risks memory-pressure slowdowns (garbage
/// collection running more often, caches evicted), which the model does not capture.
const PRESSURE_START: f64 = 0.4;
/// Relative error per unit of memory-use share above `PRESSURE_START`: at the memory floor (peak
/// use plus 20%, a share of 0.83) a prediction is uncertain by about 22%.
const PRESSURE_SLOPE: f64 = 0.5;

/// The error a prediction at `memory_mb` carries for memory pressure the points cannot show.
pub fn pressure_error(memory_mb: u32, peak_used_mb: Option<f64>) -> f64 {
    peak_used_mb.map_or(0.0, |peak| {
        PRESSURE_SLOPE * (peak / f64::from(memory_mb.max(1)) - PRESSURE_START).max(0.0)
    })
}

/// A model fitted on two or more points, with its error bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub model: DurationModel,
    /// The points used, one per memory size (the best-measured where several share one).
    pub points: Vec<OperatingPoint>,
    /// The fit's relative residual (RMS over the points).
    pub residual: f64,
    /// The base relative error of a prediction (before extrapolation).
    pub base_error: f64,
    /// The model variable's range over the points (`1 / CPU rate`).
    x_range: (f64, f64),
    /// An independent one-point model (Lambda Insights' CPU time): the bound is at least the
    /// relative disagreement of the two predictions.
    pub cross_check: Option<DurationModel>,
    /// The function's peak memory use, where known (for the memory-pressure term).
    pub peak_used_mb: Option<f64>,
}

impl Fitted {
    /// The relative error bound of the prediction at `memory_mb`.
    pub fn error_at(&self, memory_mb: u32) -> f64 {
        let x = 1.0 / vcpus(memory_mb).min(self.model.parallelism);
        let (lo, hi) = self.x_range;
        let span = (hi - lo).max(1e-9);
        let outside = if x < lo {
            lo - x
        } else if x > hi {
            x - hi
        } else {
            0.0
        };
        let mut own = self.base_error * (1.0 + outside / span);
        // Below the smallest size measured, memory pressure the points cannot show.
        if self.points.iter().all(|p| p.memory_mb > memory_mb) {
            own += pressure_error(memory_mb, self.peak_used_mb);
        }
        match self.cross_check {
            Some(other) => {
                let (a, b) = (
                    self.model.duration_ms(memory_mb),
                    other.duration_ms(memory_mb),
                );
                own.max((a - b).abs() / a.max(1e-9))
            }
            None => own,
        }
    }

    /// The prediction at `memory_mb` with its upper bound, ms.
    pub fn duration_with_bound(&self, memory_mb: u32) -> (f64, f64) {
        let d = self.model.duration_ms(memory_mb);
        (d, d * (1.0 + self.error_at(memory_mb)))
    }
}

/// The sizes functions ran at before Trimtab changed them: for each memory change still in force
/// (applied or verified, not a rollback), the health recorded before it at its `before` size,
/// and where its walk of steps began.
pub fn points_before_changes(
    records: &[DecisionRecord],
) -> std::collections::BTreeMap<String, Vec<OperatingPoint>> {
    let mut out: std::collections::BTreeMap<String, Vec<OperatingPoint>> = Default::default();
    for r in records.iter() {
        let Some(c) = &r.canary else { continue };
        let points = out.entry(r.function_name.clone()).or_default();
        let measured = [(c.canary, c.memory_mb), (c.primary, r.before.memory_mb)];
        for (stats, memory_mb) in measured {
            if let Some((s, d)) = stats.and_then(|s| s.duration_avg_ms.map(|d| (s, d))) {
                points.push(OperatingPoint {
                    memory_mb,
                    duration_ms: d,
                    invocations: s.invocations,
                    source: PointSource::Canary,
                });
            }
        }
    }
    for r in records.iter().filter(|r| {
        r.canary.is_none()
            && r.provisioned.is_none()
            && r.rollback_of.is_none()
            && r.before.memory_mb != r.after.memory_mb
            && matches!(r.state, RecordState::Applied | RecordState::Verified)
    }) {
        let points = out.entry(r.function_name.clone()).or_default();
        if let Some(duration_ms) = r.evidence.duration_avg_ms {
            points.push(OperatingPoint {
                memory_mb: r.before.memory_mb,
                duration_ms,
                invocations: r.evidence.invocations,
                source: PointSource::BeforeChange,
            });
        }
        // Where the walk began: its record may be archived by now.
        if let Some(w) = r.walk_start {
            points.push(OperatingPoint {
                memory_mb: w.memory_mb,
                duration_ms: w.duration_ms,
                invocations: w.invocations,
                source: PointSource::BeforeChange,
            });
        }
    }
    out
}

/// Whether two or more sizes, all at or above one vCPU, ran equally fast (within the error
/// floor): then the function computes on one thread, or waits, and no size down to one vCPU
/// slows it. Such points cannot be fitted (one thread gets the same CPU rate at each) but they
/// rule out the parallelism the conservative model otherwise assumes.
pub fn flat_above_one_vcpu(points: &[OperatingPoint]) -> bool {
    let pts = distinct(points);
    let (lo, hi) = pts.iter().fold((f64::INFINITY, 0.0_f64), |(lo, hi), p| {
        (lo.min(p.duration_ms), hi.max(p.duration_ms))
    });
    pts.len() >= 2
        && pts.iter().all(|p| vcpus(p.memory_mb) >= 1.0)
        && hi <= lo * (1.0 + ERROR_FLOOR)
}

/// One point per memory size: where several share a size, the one with the most invocations.
fn distinct(points: &[OperatingPoint]) -> Vec<OperatingPoint> {
    let mut by_size: Vec<OperatingPoint> = Vec::new();
    for p in points
        .iter()
        .filter(|p| p.duration_ms.is_finite() && p.duration_ms > 0.0 && p.invocations > 0.0)
    {
        match by_size.iter_mut().find(|q| q.memory_mb == p.memory_mb) {
            Some(q) if q.invocations < p.invocations => *q = *p,
            Some(_) => {}
            None => by_size.push(*p),
        }
    }
    by_size.sort_by_key(|p| p.memory_mb);
    by_size
}

/// Fits the model on `points` (the current one first); `None` with fewer than two memory sizes,
/// or sizes that all give one thread the same CPU rate.
/// `observed` is the point predictions are relative to (the current configuration).
pub fn fit_points(points: &[OperatingPoint], observed: OperatingPoint) -> Option<Fitted> {
    let pts = distinct(points);
    if pts.len() < 2 {
        return None;
    }
    let all_under_one_vcpu = pts.iter().all(|p| vcpus(p.memory_mb) <= 1.0);
    let mut best: Option<(f64, f64, f64, f64)> = None; // (residual, p, wait, cpu)
    for &p in PARALLELISMS
        .iter()
        .take(if all_under_one_vcpu { 1 } else { 6 })
    {
        let (wait, cpu) = least_squares(&pts, p);
        let residual = relative_rms(&pts, p, wait, cpu);
        if best.is_none_or(|(r, ..)| residual < r - TIE) {
            best = Some((residual, p, wait, cpu));
        }
    }
    let (residual, parallelism, wait, cpu) = best?;
    let noise = pts
        .iter()
        .map(|p| 1.0 / p.invocations.max(1.0).sqrt())
        .fold(0.0, f64::max);
    let xs: Vec<f64> = pts
        .iter()
        .map(|p| 1.0 / vcpus(p.memory_mb).min(parallelism))
        .collect();
    let x_range = (
        xs.iter().copied().fold(f64::INFINITY, f64::min),
        xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    // Sizes that give one thread the same CPU rate (all at or above one vCPU) cannot tell
    // computing from waiting. (A higher parallelism would fit them too, but only by inventing
    // threads the points do not show: a flat fit there extrapolates a single-threaded function
    // as if memory did not matter.)
    if x_range.1 - x_range.0 < 1e-6 {
        return None;
    }
    let model = DurationModel {
        observed_memory_mb: observed.memory_mb,
        observed_duration_ms: observed.duration_ms,
        wait_ms: wait,
        cpu_ms: cpu,
        parallelism,
        evidence: CpuEvidence::Fitted,
    };
    Some(Fitted {
        model,
        points: pts,
        residual,
        base_error: residual.max(noise).max(ERROR_FLOOR),
        x_range,
        cross_check: None,
        peak_used_mb: None,
    })
}

/// Weighted least squares of `duration = wait + cpu * x`, `x = 1 / min(vcpus, p)`, weights
/// `1 / duration^2` (relative error), both coefficients kept non-negative.
fn least_squares(pts: &[OperatingPoint], p: f64) -> (f64, f64) {
    let (mut sw, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for pt in pts {
        let x = 1.0 / vcpus(pt.memory_mb).min(p);
        let w = 1.0 / (pt.duration_ms * pt.duration_ms);
        sw += w;
        sx += w * x;
        sy += w * pt.duration_ms;
        sxx += w * x * x;
        sxy += w * x * pt.duration_ms;
    }
    let det = sw * sxx - sx * sx;
    let (wait, cpu) = if det.abs() > 1e-18 {
        ((sy * sxx - sx * sxy) / det, (sw * sxy - sx * sy) / det)
    } else {
        (sy / sw, 0.0)
    };
    if wait < 0.0 {
        (0.0, (sxy / sxx).max(0.0))
    } else if cpu < 0.0 {
        (sy / sw, 0.0)
    } else {
        (wait, cpu)
    }
}

fn relative_rms(pts: &[OperatingPoint], p: f64, wait: f64, cpu: f64) -> f64 {
    let sum: f64 = pts
        .iter()
        .map(|pt| {
            let predicted = wait + cpu / vcpus(pt.memory_mb).min(p);
            ((predicted - pt.duration_ms) / pt.duration_ms).powi(2)
        })
        .sum();
    (sum / pts.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(memory_mb: u32, duration_ms: f64) -> OperatingPoint {
        OperatingPoint {
            memory_mb,
            duration_ms,
            invocations: 100_000.0,
            source: PointSource::BeforeChange,
        }
    }

    /// A true curve: `wait + cpu / min(vcpus, threads)`.
    fn curve(wait: f64, cpu: f64, threads: f64) -> impl Fn(u32) -> f64 {
        move |m| wait + cpu / vcpus(m).min(threads)
    }

    #[test]
    fn two_points_recover_the_split_between_waiting_and_computing() {
        let truth = curve(80.0, 120.0, 1.0);
        let now = point(1024, truth(1024));
        let f = fit_points(&[now, point(2048, truth(2048))], now).expect("fit");
        assert!((f.model.wait_ms - 80.0).abs() < 1.0, "{:?}", f.model);
        assert!((f.model.cpu_ms - 120.0).abs() < 1.0, "{:?}", f.model);
        assert_eq!(f.model.parallelism, 1.0);
        for m in [256, 512, 768, 3008] {
            let (d, _) = f.duration_with_bound(m);
            assert!(
                (d - truth(m)).abs() / truth(m) < 0.01,
                "{m}: {d} vs {}",
                truth(m)
            );
        }
        // Interpolating is trusted more than extrapolating.
        assert!(f.error_at(1536) < f.error_at(256));
        assert!(f.error_at(1536) >= ERROR_FLOOR);
    }

    #[test]
    fn points_above_one_vcpu_show_parallelism() {
        let truth = curve(20.0, 3000.0, 4.0);
        let pts = [
            point(3008, truth(3008)),
            point(5120, truth(5120)),
            point(8192, truth(8192)),
        ];
        let f = fit_points(&pts, pts[0]).expect("fit");
        assert_eq!(f.model.parallelism, 4.0, "{:?}", f.model);
        assert!(f.residual < 0.01);
    }

    #[test]
    fn points_under_one_vcpu_assume_one_thread_and_io_is_found_flat() {
        let truth = curve(300.0, 6.0, 1.0);
        let pts = [point(512, truth(512)), point(1024, truth(1024))];
        let f = fit_points(&pts, pts[1]).expect("fit");
        assert_eq!(f.model.parallelism, 1.0);
        assert!(f.model.compute_fraction() < 0.05);
        assert!((f.model.duration_ms(128) - truth(128)).abs() / truth(128) < 0.01);
    }

    #[test]
    fn changes_in_force_give_the_size_before_them() {
        use crate::records::{FunctionSettings, Health};
        let record = |state: RecordState, before: u32, rollback: bool| DecisionRecord {
            before: FunctionSettings {
                memory_mb: before,
                timeout_s: 3,
            },
            after: FunctionSettings {
                memory_mb: 512,
                timeout_s: 3,
            },
            evidence: Health {
                invocations: 5_000.0,
                duration_avg_ms: Some(120.0),
                ..Health::default()
            },
            monthly_savings_usd: 0.0,
            rollback_of: rollback.then(|| "0-r".to_owned()),
            ..DecisionRecord::for_test("1-r", "f", state)
        };
        let records = [
            record(RecordState::Verified, 1024, false),
            record(RecordState::Applied, 768, false),
            record(RecordState::RolledBack, 2048, false),
            record(RecordState::Verified, 2048, true),
            record(RecordState::Pending, 3008, false),
        ];
        let points = points_before_changes(&records);
        let sizes: Vec<u32> = points["f"].iter().map(|p| p.memory_mb).collect();
        assert_eq!(sizes, [1024, 768]);
        assert_eq!(points["f"][0].duration_ms, 120.0);
        assert_eq!(points["f"][0].source, PointSource::BeforeChange);
    }

    #[test]
    fn noisy_points_widen_the_bound_and_one_size_is_no_fit() {
        let truth = curve(50.0, 200.0, 1.0);
        let noisy = [
            point(512, truth(512) * 1.06),
            point(1024, truth(1024) * 0.95),
            point(1536, truth(1536) * 1.04),
        ];
        let f = fit_points(&noisy, noisy[1]).expect("fit");
        assert!(f.base_error > 0.03, "{}", f.base_error);
        let few = OperatingPoint {
            invocations: 25.0,
            ..point(2048, truth(2048))
        };
        let g = fit_points(&[point(1024, truth(1024)), few], few).expect("fit");
        assert!(g.base_error >= 0.2, "25 invocations: a mean within 1/5");
        let same = [point(1024, 100.0), point(1024, 120.0)];
        assert!(fit_points(&same, same[0]).is_none());
    }
}
