//! The right-sizing optimiser: for each function, the memory and timeout that serve its
//! measured workload best for the chosen strategy, priced with the real tiers.
//!
//! Every memory size from 128 MB to 10,240 MB in 1 MB steps is a candidate. For each, the
//! [`DurationModel`] predicts the duration, and the cost over the observed window is priced
//! with billed-duration rounding, the request charge, ephemeral storage and the duration tier the
//! account is in. A candidate is admissible when its memory is at least the observed peak use plus
//! headroom, its predicted p99 is within the latency guard of today's, and its predicted longest
//! run still fits the 900 s limit. The strategy then picks among admissible candidates.

use serde::{Deserialize, Serialize};

use crate::concurrency::ConcurrencyAdvice;
use crate::evidence::{NeedsEvidence, needs_evidence};
use crate::fit::{
    Fitted, OperatingPoint, PointSource, StepPrediction, fit_points, flat_above_one_vcpu,
    one_point_error,
};
use crate::model::{CpuEvidence, DurationModel, MAX_MEMORY_MB, MIN_MEMORY_MB};
use crate::pricing::{
    Architecture, PriceTable, SECONDS_PER_MONTH, expected_billed_duration_ms, gb_seconds,
};
use crate::stats::{round2, round4};

/// Longest timeout Lambda accepts, in seconds.
pub const MAX_TIMEOUT_S: u32 = 900;

/// What the optimiser minimises (the same three choices as AWS Lambda Power Tuning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Cheapest admissible memory.
    Cost,
    /// Fastest admissible memory; among equally fast ones, the cheapest.
    Speed,
    /// Smallest sum of cost and duration, each relative to its best admissible value.
    Balanced,
}

/// Knobs of one right-sizing run.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub strategy: Strategy,
    /// Largest allowed increase of p99 duration, in percent of today's.
    pub latency_guard_pct: f64,
    /// Memory kept free above the observed peak use, in percent of that peak.
    pub memory_headroom_pct: f64,
    /// Fewer invocations than this in the window and a function is `insufficient_data`.
    pub min_invocations: f64,
    /// Timeout margin over the longest predicted run, as a factor.
    pub timeout_margin: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            strategy: Strategy::Cost,
            latency_guard_pct: 10.0,
            memory_headroom_pct: 20.0,
            min_invocations: 100.0,
            timeout_margin: 1.5,
        }
    }
}

/// Where the observed peak memory use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryEvidence {
    /// Lambda Insights `used_memory_max`.
    Insights,
    /// `Max Memory Used` in the REPORT lines of the function's logs.
    Logs,
}

/// What was measured about one function over the window. Plain data: the adapters fill it in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionMetrics {
    pub invocations: f64,
    pub errors: f64,
    pub throttles: f64,
    pub duration_avg_ms: Option<f64>,
    pub duration_max_ms: Option<f64>,
    pub duration_p50_ms: Option<f64>,
    pub duration_p95_ms: Option<f64>,
    pub duration_p99_ms: Option<f64>,
    pub concurrent_executions_max: Option<f64>,
    pub used_memory_max_mb: Option<f64>,
    pub memory_evidence: Option<MemoryEvidence>,
    /// Mean CPU time (user + system) per invocation, core-milliseconds.
    pub cpu_total_time_avg_ms: Option<f64>,
    pub init_duration_avg_ms: Option<f64>,
    /// Number of cold starts (init phases) in the window.
    pub cold_starts: Option<f64>,
    /// The relative standard error of `duration_avg_ms`, from the window's daily means: how far
    /// another window's mean of the same workload may fall (the fit's error is at least this).
    #[serde(default)]
    pub duration_mean_noise: Option<f64>,
}

/// One function's configuration and measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionObservation {
    pub function_name: String,
    pub architecture: Architecture,
    pub memory_mb: u32,
    pub timeout_s: u32,
    pub ephemeral_storage_mb: u32,
    /// Length of the window the metrics cover, in seconds.
    pub window_s: f64,
    pub metrics: FunctionMetrics,
    /// Mean durations measured at other memory sizes (before changes Trimtab made): with them
    /// the model is fitted on every size the function has run at (`crate::fit`).
    #[serde(default)]
    pub history: Vec<OperatingPoint>,
    /// What the step that brought it to today's size predicted there, if Trimtab made one.
    #[serde(default)]
    pub last_step: Option<StepPrediction>,
    /// The function routes traffic through an alias Trimtab may canary (tag `trimtab:canary`).
    #[serde(default)]
    pub canary_possible: bool,
}

/// Outcome class of one function, as in the report contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Recommended,
    Unchanged,
    InsufficientData,
    Skipped,
    Applied,
    Error,
}

/// The verdict on one function. Field names are the report contract (docs/reports.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub function_name: String,
    pub architecture: Architecture,
    pub current_memory_mb: u32,
    pub recommended_memory_mb: u32,
    pub current_timeout_s: u32,
    pub recommended_timeout_s: u32,
    /// Mean duration today.
    pub current_duration_ms: Option<f64>,
    /// Predicted mean duration at the recommended memory.
    pub predicted_duration_ms: Option<f64>,
    /// p99 today: measured, or the window's maximum where percentiles were unavailable.
    pub current_p99_ms: Option<f64>,
    pub predicted_p99_ms: Option<f64>,
    pub current_monthly_cost_usd: f64,
    pub projected_monthly_cost_usd: f64,
    pub monthly_savings_usd: f64,
    pub confidence: f64,
    pub reasons: Vec<String>,
    pub status: Status,
    pub invocations: f64,
    pub peak_memory_used_mb: Option<f64>,
    /// Observed peak use plus headroom: no recommendation goes below it.
    pub memory_floor_mb: Option<u32>,
    pub cpu_evidence: Option<CpuEvidence>,
    pub compute_fraction: Option<f64>,
    /// A measured step (one size, no CPU time): the saving if the function mostly waits, USD a
    /// month (`monthly_savings_usd` is the worst case, all computing: about none). Apply mode
    /// weighs the step by this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_case_monthly_savings_usd: Option<f64>,
    /// The relative error bound of `predicted_duration_ms`, percent, where the model states one
    /// (fitted on several sizes, or one size with Lambda Insights' CPU time); the latency guard
    /// holds for the upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction_error_pct: Option<f64>,
    /// The operating points the model was fitted on (empty: one size).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operating_points: Vec<OperatingPoint>,
    /// The prediction at the size one step of at most 2x reaches (apply mode's default bound),
    /// with its error bound: the record of the step keeps it, and the next run compares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_prediction: Option<StepPrediction>,
    /// Without CPU evidence and one measured size: what would settle the size, priced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_evidence: Option<NeedsEvidence>,
    /// The canary this run started, judged or promoted (filled in by apply mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<crate::evidence::CanaryReport>,
    /// What apply mode set this run (at most one bounded step towards the recommendation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<crate::records::FunctionSettings>,
    /// Reserved and provisioned concurrency, and architecture, advice (filled in by the job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<ConcurrencyAdvice>,
}

/// Fleet totals over the recommendations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetTotals {
    pub functions: usize,
    pub recommended: usize,
    pub unchanged: usize,
    pub insufficient_data: usize,
    pub current_monthly_cost_usd: f64,
    pub projected_monthly_cost_usd: f64,
    pub monthly_savings_usd: f64,
}

/// Right-sizes every function. Tier position is the fleet's: each function is priced as the
/// marginal cost of its usage on top of the rest of the fleet's usage of the same architecture.
pub fn recommend_fleet(
    functions: &[FunctionObservation],
    settings: &Settings,
    prices: &PriceTable,
) -> Vec<Recommendation> {
    let usage: Vec<f64> = functions.iter().map(monthly_gb_s_now).collect();
    let total = |arch: Architecture| -> f64 {
        functions
            .iter()
            .zip(&usage)
            .filter(|(f, _)| f.architecture == arch)
            .map(|(_, u)| u)
            .sum()
    };
    let (x86, arm) = (total(Architecture::X86_64), total(Architecture::Arm64));
    functions
        .iter()
        .zip(&usage)
        .map(|(f, own)| {
            let fleet = if f.architecture == Architecture::X86_64 {
                x86
            } else {
                arm
            };
            recommend(f, settings, prices, (fleet - own).max(0.0))
        })
        .collect()
}

/// Which functions to read REPORT lines for when Lambda Insights gave no peak memory: the judged
/// ones (at least `min_invocations`), the most monthly GB-seconds first (where a smaller size
/// saves most), at most `budget` of them, so a run's log reads stay bounded however large the
/// fleet. Returns the chosen indexes and how many more needed a read.
pub fn log_scan_choice(
    functions: &[FunctionObservation],
    min_invocations: f64,
    budget: usize,
) -> (Vec<usize>, usize) {
    let mut wanted: Vec<(usize, f64)> = functions
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            f.metrics.used_memory_max_mb.is_none() && f.metrics.invocations >= min_invocations
        })
        .map(|(i, f)| (i, monthly_gb_s_now(f)))
        .collect();
    wanted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let more = wanted.len().saturating_sub(budget);
    (
        wanted.into_iter().take(budget).map(|(i, _)| i).collect(),
        more,
    )
}

/// Sums a set of recommendations.
pub fn totals(recommendations: &[Recommendation]) -> FleetTotals {
    let mut t = FleetTotals {
        functions: recommendations.len(),
        ..FleetTotals::default()
    };
    for r in recommendations {
        match r.status {
            // Advice a guard held back this run (skipped) still stands.
            Status::Recommended | Status::Applied | Status::Skipped => t.recommended += 1,
            Status::Unchanged => t.unchanged += 1,
            Status::InsufficientData => t.insufficient_data += 1,
            Status::Error => {}
        }
        t.current_monthly_cost_usd += r.current_monthly_cost_usd;
        t.projected_monthly_cost_usd += r.projected_monthly_cost_usd;
        t.monthly_savings_usd += r.monthly_savings_usd;
    }
    t
}

/// Monthly GB-s of a function as configured today (for the fleet's tier position).
fn monthly_gb_s_now(f: &FunctionObservation) -> f64 {
    let Some(avg) = f.metrics.duration_avg_ms else {
        return 0.0;
    };
    gb_seconds(f.memory_mb, expected_billed_duration_ms(avg))
        * f.metrics.invocations
        * month_factor(f.window_s)
}

fn month_factor(window_s: f64) -> f64 {
    if window_s > 0.0 {
        SECONDS_PER_MONTH / window_s
    } else {
        0.0
    }
}

/// Prices one function at one memory size, per month.
#[derive(Clone, Copy)]
struct Pricer<'a> {
    f: &'a FunctionObservation,
    prices: &'a PriceTable,
    model: DurationModel,
    account_gb_s_before: f64,
}

impl Pricer<'_> {
    fn monthly_usd(&self, memory_mb: u32) -> f64 {
        let m = &self.f.metrics;
        let scale = month_factor(self.f.window_s);
        let invocations = m.invocations * scale;
        let billed_ms = expected_billed_duration_ms(self.model.duration_ms(memory_mb));
        // The init phase is billed too (since 1 August 2025), and computes as the handler does.
        let init_ms = match (m.init_duration_avg_ms, m.cold_starts) {
            (Some(init), Some(n)) => init * self.model.slowdown(memory_mb) * n * scale,
            _ => 0.0,
        };
        let run_ms = invocations * billed_ms + init_ms;
        let gb_s = gb_seconds(memory_mb, run_ms);
        self.prices
            .duration_usd(self.f.architecture, self.account_gb_s_before, gb_s)
            + self.prices.requests_usd(invocations)
            + self
                .prices
                .ephemeral_storage_usd(self.f.ephemeral_storage_mb, run_ms / 1000.0)
    }
}

struct Candidate {
    memory_mb: u32,
    usd: f64,
    duration_ms: f64,
}

fn unjudged(f: &FunctionObservation, reason: String) -> Recommendation {
    Recommendation {
        function_name: f.function_name.clone(),
        architecture: f.architecture,
        current_memory_mb: f.memory_mb,
        recommended_memory_mb: f.memory_mb,
        current_timeout_s: f.timeout_s,
        recommended_timeout_s: f.timeout_s,
        current_duration_ms: f.metrics.duration_avg_ms,
        predicted_duration_ms: None,
        current_p99_ms: None,
        predicted_p99_ms: None,
        current_monthly_cost_usd: 0.0,
        projected_monthly_cost_usd: 0.0,
        monthly_savings_usd: 0.0,
        confidence: 0.0,
        reasons: vec![reason],
        status: Status::InsufficientData,
        invocations: f.metrics.invocations,
        peak_memory_used_mb: f.metrics.used_memory_max_mb,
        memory_floor_mb: None,
        cpu_evidence: None,
        compute_fraction: None,
        best_case_monthly_savings_usd: None,
        prediction_error_pct: None,
        operating_points: Vec::new(),
        step_prediction: None,
        needs_evidence: None,
        canary: None,
        applied: None,
        concurrency: None,
    }
}

/// Right-sizes one function. `account_gb_s_before` is the rest of the account's monthly usage of
/// this architecture, which sets the price tier.
pub fn recommend(
    f: &FunctionObservation,
    settings: &Settings,
    prices: &PriceTable,
    account_gb_s_before: f64,
) -> Recommendation {
    let m = &f.metrics;
    if m.invocations < settings.min_invocations {
        return unjudged(
            f,
            format!(
                "only {} invocations in the window; at least {} are needed to judge",
                m.invocations, settings.min_invocations
            ),
        );
    }
    let (Some(avg_ms), Some(max_ms)) = (m.duration_avg_ms, m.duration_max_ms) else {
        return unjudged(f, "no Duration datapoints in the window".to_owned());
    };

    let mut reasons = Vec::new();
    let (model, fitted) = model_for(f, avg_ms, &mut reasons);
    // The guard holds for the prediction's upper bound where the fit states one.
    let error_at = |mem: u32| match (&fitted, model.evidence) {
        (Some(ft), _) => Some(ft.error_at(mem)),
        (None, CpuEvidence::Measured) => Some(one_point_error(mem, m.used_memory_max_mb)),
        (None, _) => None,
    };
    let slowdown_bound = |mem: u32| model.slowdown(mem) * (1.0 + error_at(mem).unwrap_or_default());

    let floor_mb = memory_floor(f, settings, &mut reasons);

    let measured_p99 = m.duration_p99_ms;
    let current_p99_ms = measured_p99.unwrap_or(max_ms);
    // The guard holds against the function as it ran before Trimtab's steps down (the fastest
    // size it has run at above today's), so steps never add up past it.
    let reference_ms = f
        .history
        .iter()
        .filter(|p| p.memory_mb > f.memory_mb)
        .map(|p| p.duration_ms)
        .fold(avg_ms, f64::min);
    let guard = (1.0 + settings.latency_guard_pct / 100.0) * reference_ms / avg_ms.max(1e-9);
    let lowest = lowest_allowed(f, avg_ms, guard * avg_ms, &mut reasons);
    let pricer = Pricer {
        f,
        prices,
        model,
        account_gb_s_before,
    };

    let candidates: Vec<Candidate> = (MIN_MEMORY_MB..=MAX_MEMORY_MB)
        .filter(|&mem| mem >= floor_mb && mem >= lowest)
        .filter(|&mem| mem >= f.memory_mb || slowdown_bound(mem) <= guard)
        .filter(|&mem| {
            mem >= f.memory_mb || max_ms * model.slowdown(mem) <= f64::from(MAX_TIMEOUT_S) * 1000.0
        })
        .map(|mem| Candidate {
            memory_mb: mem,
            usd: pricer.monthly_usd(mem),
            duration_ms: model.duration_ms(mem),
        })
        .collect();

    let mut chosen = choose(&candidates, settings.strategy, f.memory_mb).unwrap_or(f.memory_mb);
    // One size and no CPU time: the model cannot tell waiting from computing, so nothing smaller
    // looks cheaper. Where memory sits well above use, a measured step tells: the smallest size
    // the guard allows even if the run is all computing (then it costs the same), a saving if it
    // mostly waits. The next run fits on both sizes.
    // (Also where the cheapest pick is only a tie at the worst case: the step goes further.)
    let step = (model.evidence == CpuEvidence::Assumed
        && chosen <= f.memory_mb
        && settings.strategy != Strategy::Speed)
        .then(|| measured_step(&candidates, f, avg_ms, &pricer))
        .flatten()
        .filter(|&(mem, _)| mem < chosen || chosen == f.memory_mb);
    let evidence_wanted = (model.evidence == CpuEvidence::Assumed)
        .then(|| {
            let waiting = Pricer {
                model: DurationModel::fit(f.memory_mb, avg_ms, Some(0.0)),
                ..pricer
            };
            let probe = floor_mb.max(f.memory_mb.div_ceil(2)).min(f.memory_mb);
            let best_case = waiting.monthly_usd(f.memory_mb) - waiting.monthly_usd(probe);
            let worst_case_usd = pricer.monthly_usd(probe) - pricer.monthly_usd(f.memory_mb);
            needs_evidence(
                f,
                probe,
                best_case,
                worst_case_usd,
                step.map(|(mem, _)| mem),
            )
        })
        // Only where a smaller size could save something.
        .filter(|n| n.best_case_monthly_savings_usd > 0.0);
    if let Some((mem, best_case_usd)) = step {
        chosen = mem;
        reasons.push(format!(
            "a measured step to {mem} MB: at worst (all computing) {:.1}% slower, within the {:.0}% guard, and about as dear (within 1%); if it mostly waits it saves ${best_case_usd:.2}/month; the next run fits the model on both sizes",
            100.0 * (model.slowdown(mem) - 1.0),
            settings.latency_guard_pct
        ));
    }
    // A change that saves less than MIN_CHANGE of today's cost is not worth its risk (the
    // model's 1 MB grid would otherwise creep down by a few MB a run).
    // Nor one that saves less than the prediction's own uncertainty: with noisy points the
    // fit's optimum wanders, and the walk would chase it.
    let needed = MIN_CHANGE.max(error_at(chosen).unwrap_or_default());
    if chosen < f.memory_mb
        && step.is_none()
        && pricer.monthly_usd(chosen) > (1.0 - needed) * pricer.monthly_usd(f.memory_mb)
    {
        chosen = f.memory_mb;
    }
    let slowdown = model.slowdown(chosen);
    if chosen < f.memory_mb && step.is_none() {
        reasons.push(format!(
            "{} MB predicted {:.1}% slower (guard {:.0}%)",
            chosen,
            100.0 * (slowdown - 1.0),
            settings.latency_guard_pct
        ));
    } else if chosen > f.memory_mb && floor_mb > f.memory_mb {
        reasons.push(format!(
            "peak memory use leaves less than {:.0}% headroom: raised to {} MB",
            settings.memory_headroom_pct, chosen
        ));
    }

    let timeout_s = timeout_advice(f, max_ms * slowdown, settings, &mut reasons);

    let current_usd = pricer.monthly_usd(f.memory_mb);
    let projected_usd = pricer.monthly_usd(chosen);
    let status = if chosen == f.memory_mb && timeout_s == f.timeout_s {
        Status::Unchanged
    } else {
        Status::Recommended
    };
    if measured_p99.is_none() {
        reasons
            .push("p99 not available from the backend: the window's maximum stands in".to_owned());
    }

    Recommendation {
        function_name: f.function_name.clone(),
        architecture: f.architecture,
        current_memory_mb: f.memory_mb,
        recommended_memory_mb: chosen,
        current_timeout_s: f.timeout_s,
        recommended_timeout_s: timeout_s,
        current_duration_ms: Some(avg_ms),
        predicted_duration_ms: Some(round2(model.duration_ms(chosen))),
        current_p99_ms: Some(current_p99_ms),
        predicted_p99_ms: Some(round2(current_p99_ms * slowdown)),
        current_monthly_cost_usd: round4(current_usd),
        projected_monthly_cost_usd: round4(projected_usd),
        monthly_savings_usd: round4(current_usd - projected_usd),
        confidence: confidence(f, &model, chosen, error_at(chosen)),
        reasons,
        status,
        invocations: m.invocations,
        peak_memory_used_mb: m.used_memory_max_mb,
        memory_floor_mb: m.used_memory_max_mb.map(|_| floor_mb),
        cpu_evidence: Some(model.evidence),
        compute_fraction: Some(round4(model.compute_fraction())),
        best_case_monthly_savings_usd: step.map(|(_, usd)| round4(usd)),
        prediction_error_pct: error_at(chosen).map(|e| round2(100.0 * e)),
        operating_points: fitted
            .as_ref()
            .map(|ft| ft.points.clone())
            .unwrap_or_default(),
        step_prediction: (chosen != f.memory_mb).then(|| {
            let mem = chosen.clamp(f.memory_mb.div_ceil(2), f.memory_mb.saturating_mul(2));
            StepPrediction {
                memory_mb: mem,
                predicted_ms: round2(model.duration_ms(mem)),
                error_pct: round2(100.0 * error_at(mem).unwrap_or_default()),
                confidence: Some(confidence(f, &model, mem, error_at(mem))),
            }
        }),
        needs_evidence: evidence_wanted,
        canary: None,
        applied: None,
        concurrency: None,
    }
}

/// The smallest candidate (all within the guard at the worst case) that costs at most 1% more at
/// the worst case, and what it saves if the run does not slow down at all; `None` when no
/// smaller size passes or it saves nothing.
fn measured_step(
    candidates: &[Candidate],
    f: &FunctionObservation,
    avg_ms: f64,
    pricer: &Pricer<'_>,
) -> Option<(u32, f64)> {
    let worst_case_limit = 1.01 * pricer.monthly_usd(f.memory_mb);
    let mem = candidates
        .iter()
        .filter(|c| c.memory_mb < f.memory_mb && c.usd <= worst_case_limit)
        .map(|c| c.memory_mb)
        .min()?;
    let waiting = Pricer {
        model: DurationModel::fit(f.memory_mb, avg_ms, Some(0.0)),
        ..*pricer
    };
    let best_case = waiting.monthly_usd(f.memory_mb) - waiting.monthly_usd(mem);
    (best_case > 0.0).then_some((mem, best_case))
}

/// The smallest size the measurements allow, whatever the model says: more memory never makes a
/// function slower, so no size at or below one measured slower than the guard (`guard_ms`) is a
/// candidate; and a step that ran slower than its prediction's upper bound stops the walk at
/// today's size (and goes back up if today's size breaks the guard).
fn lowest_allowed(
    f: &FunctionObservation,
    avg_ms: f64,
    guard_ms: f64,
    reasons: &mut Vec<String>,
) -> u32 {
    let mut lowest = MIN_MEMORY_MB;
    if let Some(too_slow) = f
        .history
        .iter()
        .filter(|p| p.duration_ms > guard_ms)
        .map(|p| p.memory_mb)
        .max()
    {
        lowest = too_slow + 1;
        reasons.push(format!(
            "measured slower than the guard at {too_slow} MB: nothing at or below it"
        ));
    }
    if let Some(over) = f.last_step.and_then(|s| s.surprise(f.memory_mb, avg_ms)) {
        let back_up = avg_ms > guard_ms;
        reasons.push(format!(
            "the last step ran {:.1}% slower than its prediction's upper bound: the walk stops {}",
            100.0 * over,
            if back_up {
                "and goes back above this size (it breaks the guard)"
            } else {
                "here"
            }
        ));
        // Back to the nearest larger size measured within the guard: known to hold.
        let retreat = f
            .history
            .iter()
            .filter(|p| p.memory_mb > f.memory_mb && p.duration_ms <= guard_ms)
            .map(|p| p.memory_mb)
            .min()
            .unwrap_or(f.memory_mb + 1);
        lowest = lowest.max(if back_up { retreat } else { f.memory_mb });
    }
    lowest
}

/// The duration model: a fit on every memory size the function has run at, where it has run at
/// two or more; else Lambda Insights' CPU time where measured; else the conservative assumption.
fn model_for(
    f: &FunctionObservation,
    avg_ms: f64,
    reasons: &mut Vec<String>,
) -> (DurationModel, Option<Fitted>) {
    let m = &f.metrics;
    let current = OperatingPoint {
        memory_mb: f.memory_mb,
        duration_ms: avg_ms,
        invocations: m.invocations,
        source: PointSource::Current,
    };
    let mut points = f.history.clone();
    points.push(current);
    // Measured sizes beat one size's CPU time: they show what the physics misses (memory
    // pressure, a runtime that does not scale) at the sizes in question.
    let fitted = fit_points(&points, current);
    if let Some(mut ft) = fitted {
        // Anchored at today's measured mean: the fit's residual there would otherwise shift
        // today's price and every slowdown.
        let off = avg_ms - ft.model.duration_ms(f.memory_mb);
        ft.model.wait_ms = (ft.model.wait_ms + off).max(0.0);
        // Where Lambda Insights measured the CPU time too, the two estimates check each other:
        // the bound is at least their disagreement (points off by noise show here).
        if let Some(cpu) = m.cpu_total_time_avg_ms {
            ft.cross_check = Some(DurationModel::fit(f.memory_mb, avg_ms, Some(cpu)));
        }
        ft.peak_used_mb = m.used_memory_max_mb;
        // Points from different windows differ by the workload's own drift as well.
        if let Some(noise) = m.duration_mean_noise {
            ft.base_error = ft.base_error.max(std::f64::consts::SQRT_2 * noise);
        }
        let shown: Vec<String> = ft
            .points
            .iter()
            .map(|p| format!("{} MB: {:.0} ms", p.memory_mb, p.duration_ms))
            .collect();
        reasons.push(format!(
            "fitted on {} memory sizes it has run at ({}): {:.0}% computing, {} thread(s); predictions within {:.0}% where measured",
            ft.points.len(),
            shown.join(", "),
            100.0 * ft.model.compute_fraction(),
            ft.model.parallelism,
            100.0 * ft.base_error
        ));
        return (ft.model, Some(ft));
    }
    let mut model = DurationModel::fit(f.memory_mb, avg_ms, m.cpu_total_time_avg_ms);
    if model.evidence == CpuEvidence::Assumed && flat_above_one_vcpu(&points) {
        // Measured equally fast at sizes above one vCPU: one thread at most, so the worst case
        // below is all computing on one thread.
        model.parallelism = 1.0;
        model.cpu_ms = avg_ms;
        reasons.push(
            "as fast at every size above one vCPU it has run at: one thread at most".to_owned(),
        );
    }
    reasons.push(match model.evidence {
        CpuEvidence::Measured => format!(
            "measured CPU time {:.1} ms of {:.1} ms mean duration: {:.0}% computing, {:.0}% waiting",
            m.cpu_total_time_avg_ms.unwrap_or_default(),
            avg_ms,
            100.0 * model.compute_fraction(),
            100.0 * (1.0 - model.compute_fraction())
        ),
        _ => "no Lambda Insights cpu_total_time and one memory size measured: assumed \
              compute-bound when shrinking and no speedup when growing (needs evidence: Lambda \
              Insights, or a measured step in apply mode)"
            .to_owned(),
    });
    (model, None)
}

/// Memory floor: observed peak plus headroom; without evidence, never below today's.
fn memory_floor(f: &FunctionObservation, settings: &Settings, reasons: &mut Vec<String>) -> u32 {
    match f.metrics.used_memory_max_mb {
        Some(peak) => {
            let floor = (peak * (1.0 + settings.memory_headroom_pct / 100.0)).ceil();
            let pct = 100.0 * peak / f64::from(f.memory_mb);
            reasons.push(format!(
                "peak memory used {peak:.0} MB ({pct:.0}% of {} MB); floor with {:.0}% headroom: {floor:.0} MB",
                f.memory_mb, settings.memory_headroom_pct
            ));
            if floor > f64::from(MAX_MEMORY_MB) {
                reasons.push("peak use plus headroom exceeds 10,240 MB: capped".to_owned());
            }
            (floor as u32).clamp(MIN_MEMORY_MB, MAX_MEMORY_MB)
        }
        None => {
            reasons.push(
                "peak memory use unknown (no Lambda Insights, no REPORT lines): memory not lowered"
                    .to_owned(),
            );
            f.memory_mb.clamp(MIN_MEMORY_MB, MAX_MEMORY_MB)
        }
    }
}

/// Timeout: the longest run seen, scaled to the new memory (`predicted_max_ms`), with margin;
/// never below a run that has been seen to finish; where runs hit today's timeout, never below
/// today's.
fn timeout_advice(
    f: &FunctionObservation,
    predicted_max_ms: f64,
    settings: &Settings,
    reasons: &mut Vec<String>,
) -> u32 {
    let max_ms = f.metrics.duration_max_ms.unwrap_or(0.0);
    let timed_out = max_ms >= 0.98 * f64::from(f.timeout_s) * 1000.0;
    let mut timeout_s = ((predicted_max_ms * settings.timeout_margin) / 1000.0)
        .max(predicted_max_ms / 1000.0 + 1.0)
        .ceil()
        .clamp(1.0, f64::from(MAX_TIMEOUT_S)) as u32;
    // A current timeout between the computed one and three times it is fine: not worth a change.
    if !timed_out && (timeout_s..=timeout_s.saturating_mul(3)).contains(&f.timeout_s) {
        timeout_s = f.timeout_s;
    }
    if timed_out {
        timeout_s = timeout_s.max(f.timeout_s);
        reasons.push(format!(
            "longest run {:.0} ms reached the {} s timeout: timeout not lowered",
            max_ms, f.timeout_s
        ));
    } else if timeout_s < f.timeout_s {
        reasons.push(format!(
            "longest run {:.0} ms; timeout {} s leaves {:.1}x margin",
            max_ms, timeout_s, settings.timeout_margin
        ));
    }
    timeout_s
}

/// Relative cost difference under which two candidates count as equally cheap; then the one
/// nearest today's memory wins, since every change carries risk the model cannot price.
const COST_TIE: f64 = 0.01;
/// Smallest relative saving a smaller size must bring to be recommended.
const MIN_CHANGE: f64 = 0.03;
/// Relative duration difference under which two candidates count as equally fast.
const SPEED_TIE: f64 = 0.01;

fn choose(candidates: &[Candidate], strategy: Strategy, current_mb: u32) -> Option<u32> {
    let min_usd = candidates
        .iter()
        .map(|c| c.usd)
        .fold(f64::INFINITY, f64::min);
    let min_ms = candidates
        .iter()
        .map(|c| c.duration_ms)
        .fold(f64::INFINITY, f64::min);
    let nearest = |c: &&Candidate| c.memory_mb.abs_diff(current_mb);
    match strategy {
        Strategy::Cost => candidates
            .iter()
            .filter(|c| c.usd <= min_usd * (1.0 + COST_TIE) + 1e-9)
            .min_by_key(nearest),
        Strategy::Speed => {
            let fastest = candidates
                .iter()
                .filter(|c| c.duration_ms <= min_ms * (1.0 + SPEED_TIE));
            fastest.min_by(|a, b| a.usd.total_cmp(&b.usd))
        }
        Strategy::Balanced => {
            let score = |c: &Candidate| {
                c.usd / min_usd.max(f64::MIN_POSITIVE)
                    + c.duration_ms / min_ms.max(f64::MIN_POSITIVE)
            };
            candidates
                .iter()
                .min_by(|a, b| score(a).total_cmp(&score(b)))
        }
    }
    .map(|c| c.memory_mb)
}

/// Confidence in 0..1, the product of five factors:
/// - volume: `log10(invocations) / 4`, capped at 1 (10,000 invocations or more is full volume);
/// - CPU evidence: 1 when measured or fitted on several sizes, 0.7 when assumed;
/// - the prediction's error bound at the recommended size (`error`): `1 / (1 + 5 * error)`, so a
///   2% bound scores 0.91 and a 10% bound 0.67;
/// - memory evidence: 1 from Lambda Insights, 0.9 from logs, 0.7 when unknown;
/// - extrapolation: `exp(-0.25 * |ln(recommended / current)|)`, so an 8x change scores 0.59.
fn confidence(
    f: &FunctionObservation,
    model: &DurationModel,
    chosen_mb: u32,
    error: Option<f64>,
) -> f64 {
    let bound = 1.0 / (1.0 + 5.0 * error.unwrap_or_default());
    let volume = (f.metrics.invocations.max(1.0).log10() / 4.0).min(1.0);
    let cpu = match model.evidence {
        CpuEvidence::Measured | CpuEvidence::Fitted => 1.0,
        CpuEvidence::Assumed => 0.7,
    };
    let memory = match f.metrics.memory_evidence {
        Some(MemoryEvidence::Insights) => 1.0,
        Some(MemoryEvidence::Logs) => 0.9,
        None => 0.7,
    };
    let ratio = f64::from(chosen_mb) / f64::from(f.memory_mb.max(1));
    let extrapolation = (-0.25 * ratio.ln().abs()).exp();
    round4(volume * cpu * bound * memory * extrapolation)
}
