//! What settles a memory size that one measured size cannot, priced; and the judgement of a
//! canary, the evidence that costs no synthetic invocation.
//!
//! Without Lambda Insights' CPU time and with one memory size measured, the model cannot tell
//! waiting from computing (`crate::model`). Three kinds of evidence settle it:
//! - **Lambda Insights**: CPU time per invocation. It is billed as CloudWatch custom metrics
//!   (about 8 per function) and one log event of about 1 KB per invocation (see
//!   docs/aws-behaviour.md); it is worth enabling where the expected saving exceeds that.
//! - **A canary** (tag `trimtab:canary=true`, traffic through an alias): a version at another
//!   size takes a small share of the alias's live traffic until enough invocations are measured,
//!   then is promoted or dropped. Its cost is the worst-case extra spend of the invocations it
//!   takes (all computing: the same GB-seconds, so about none) and the metric reads.
//! - **A measured step** in apply mode: the smallest size within the guard even if the run were
//!   all computing (then it costs the same), which the next run fits on.
//!
//! The expected saving is half the best case (the function all waiting at the probe size): the
//! split is unknown and taken as even odds.

use serde::{Deserialize, Serialize};

use crate::pricing::{Architecture, PriceTable, SECONDS_PER_MONTH, billed_duration_ms, gb_seconds};
use crate::rightsizing::FunctionObservation;
use crate::stats::{round2, round4};

/// Lambda Insights' own charges (us-east-1 list prices).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InsightsPrices {
    /// Custom metrics the extension creates per function.
    pub metrics_per_function: f64,
    /// CloudWatch custom metric, USD per metric-month (first 10,000 metrics).
    pub usd_per_metric_month: f64,
    /// Bytes of log data per invocation (one performance event).
    pub log_bytes_per_invocation: f64,
    /// CloudWatch Logs standard ingestion, USD per GB.
    pub usd_per_log_gb: f64,
}

impl InsightsPrices {
    pub fn us_east_1() -> Self {
        Self {
            metrics_per_function: 8.0,
            usd_per_metric_month: 0.30,
            log_bytes_per_invocation: 1_000.0,
            usd_per_log_gb: 0.50,
        }
    }

    /// Monthly charge of Lambda Insights on a function invoked `invocations_per_month` times.
    pub fn monthly_usd(&self, invocations_per_month: f64) -> f64 {
        self.metrics_per_function * self.usd_per_metric_month
            + invocations_per_month * self.log_bytes_per_invocation / 1e9 * self.usd_per_log_gb
    }
}

/// Share of an alias's traffic a canary takes.
pub const CANARY_WEIGHT: f64 = 0.05;
/// Longest a canary runs before it is dropped for want of invocations, hours.
pub const CANARY_MAX_HOURS: f64 = 24.0;
/// Fewest canary invocations a verdict needs.
pub const CANARY_MIN_INVOCATIONS: f64 = 200.0;
/// GetMetricData queries one canary reading takes (invocations, errors, duration for each of the
/// two versions), and USD per 1,000 metrics requested.
const CANARY_QUERIES: f64 = 6.0;
const USD_PER_1000_METRICS: f64 = 0.01;

/// Kinds of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    LambdaInsights,
    Canary,
    MeasuredStep,
}

/// One way to settle the size, priced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceOption {
    pub kind: EvidenceKind,
    /// The size it measures (a canary or a step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    /// A recurring charge, USD a month (Lambda Insights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_cost_usd: Option<f64>,
    /// A one-off charge at worst, USD (a canary's or a step's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Real invocations it takes (a canary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocations: Option<f64>,
    /// Whether it pays for itself (or, for a canary, whether the function allows one).
    pub worthwhile: bool,
    pub detail: String,
}

/// Why a function's size is unsettled and what would settle it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeedsEvidence {
    pub reason: String,
    /// The saving if the function mostly waits, at the probe size, USD a month.
    pub best_case_monthly_savings_usd: f64,
    /// Half the best case: the split is unknown.
    pub expected_monthly_savings_usd: f64,
    pub options: Vec<EvidenceOption>,
}

/// The priced options for `f`, probed at `probe_mb`: `best_case_usd` saved a month if it all
/// waits, `worst_case_usd` more a month if it all computes; `step_mb` where a measured step is
/// safe.
pub fn needs_evidence(
    f: &FunctionObservation,
    probe_mb: u32,
    best_case_usd: f64,
    worst_case_usd: f64,
    step_mb: Option<u32>,
) -> NeedsEvidence {
    let per_month = if f.window_s > 0.0 {
        f.metrics.invocations * SECONDS_PER_MONTH / f.window_s
    } else {
        0.0
    };
    let best = best_case_usd.max(0.0);
    let expected = best / 2.0;
    let insights = InsightsPrices::us_east_1().monthly_usd(per_month);
    let canary_invocations = (CANARY_WEIGHT * per_month / 730.0 * CANARY_MAX_HOURS)
        .max(CANARY_MIN_INVOCATIONS)
        .min(CANARY_WEIGHT * per_month);
    let canary_reads = CANARY_MAX_HOURS; // at most one reading an hour
    let canary_cost = worst_case_usd.max(0.0) * canary_invocations / per_month.max(1.0)
        + canary_reads * CANARY_QUERIES * USD_PER_1000_METRICS / 1000.0;
    let mut options = vec![
        EvidenceOption {
            kind: EvidenceKind::LambdaInsights,
            memory_mb: None,
            monthly_cost_usd: Some(round4(insights)),
            cost_usd: None,
            invocations: None,
            worthwhile: expected > insights,
            detail: format!(
                "CPU time per invocation settles it; the extension costs ${insights:.2}/month here against an expected saving of ${expected:.2}/month"
            ),
        },
        EvidenceOption {
            kind: EvidenceKind::Canary,
            memory_mb: Some(probe_mb),
            monthly_cost_usd: None,
            cost_usd: Some(round4(canary_cost)),
            invocations: Some(canary_invocations.round()),
            worthwhile: f.canary_possible && best > 0.0,
            detail: if f.canary_possible {
                format!(
                    "a version at {probe_mb} MB takes {:.0}% of the alias's traffic until {CANARY_MIN_INVOCATIONS:.0} invocations are measured",
                    100.0 * CANARY_WEIGHT
                )
            } else {
                "needs the trimtab:canary=true and trimtab:alias tags and traffic through the alias (recommend mode does not read tags, so it cannot tell)".to_owned()
            },
        },
    ];
    if let Some(mem) = step_mb {
        options.push(EvidenceOption {
            kind: EvidenceKind::MeasuredStep,
            memory_mb: Some(mem),
            monthly_cost_usd: None,
            cost_usd: Some(0.0),
            invocations: None,
            worthwhile: true,
            detail:
                "apply mode steps there: within the guard and about as dear even if it all computes"
                    .to_owned(),
        });
    }
    NeedsEvidence {
        reason:
            "one memory size measured and no CPU time: waiting and computing cannot be told apart"
                .to_owned(),
        best_case_monthly_savings_usd: round4(best),
        expected_monthly_savings_usd: round4(expected),
        options,
    }
}

/// What CloudWatch measured for one version behind an alias (`ExecutedVersion`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionStats {
    pub invocations: f64,
    pub errors: f64,
    pub duration_avg_ms: Option<f64>,
}

/// A canary's verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum CanaryVerdict {
    /// Not enough invocations yet: nothing changes.
    Wait(String),
    /// The canary's size serves as well for less: the alias moves to it.
    Promote(String),
    /// Worse, or not cheaper, or too few invocations in the longest window: routing removed.
    Drop(String),
}

/// Judges a canary at `canary_mb` against the primary at `primary_mb`, `elapsed_s` after it
/// started, with `latency_guard_pct` the largest slowdown allowed.
pub fn judge_canary(
    primary: (&VersionStats, u32),
    canary: (&VersionStats, u32),
    elapsed_s: f64,
    latency_guard_pct: f64,
) -> CanaryVerdict {
    let ((p, p_mb), (c, c_mb)) = (primary, canary);
    if c.invocations < CANARY_MIN_INVOCATIONS {
        let why = format!(
            "{:.0} of {CANARY_MIN_INVOCATIONS:.0} invocations measured",
            c.invocations
        );
        return if elapsed_s >= CANARY_MAX_HOURS * 3600.0 {
            CanaryVerdict::Drop(format!("{why} in {CANARY_MAX_HOURS:.0} hours"))
        } else {
            CanaryVerdict::Wait(why)
        };
    }
    // More errors than the primary's rate explains (three standard deviations, at least one).
    let rate = if p.invocations > 0.0 {
        p.errors / p.invocations
    } else {
        0.0
    };
    let expected = c.invocations * rate;
    if c.errors > expected + 3.0 * expected.sqrt() + 1.0 {
        return CanaryVerdict::Drop(format!(
            "{:.0} errors in {:.0} invocations against {expected:.1} expected at the primary's rate",
            c.errors, c.invocations
        ));
    }
    let (Some(pd), Some(cd)) = (p.duration_avg_ms, c.duration_avg_ms) else {
        return CanaryVerdict::Wait("no duration measured for both versions yet".to_owned());
    };
    let slowdown = cd / pd.max(1e-9);
    if slowdown > 1.0 + latency_guard_pct / 100.0 {
        return CanaryVerdict::Drop(format!(
            "{:.1}% slower than the primary (guard {latency_guard_pct:.0}%)",
            100.0 * (slowdown - 1.0)
        ));
    }
    let (pg, cg) = (gb_s_per_invocation(p_mb, pd), gb_s_per_invocation(c_mb, cd));
    if cg > pg {
        return CanaryVerdict::Drop(format!(
            "{:.1}% more GB-seconds per invocation than the primary",
            100.0 * (cg / pg - 1.0)
        ));
    }
    CanaryVerdict::Promote(format!(
        "{:.1}% slower and {:.1}% fewer GB-seconds per invocation over {:.0} invocations",
        100.0 * (slowdown - 1.0),
        100.0 * (1.0 - cg / pg.max(1e-12)),
        c.invocations
    ))
}

fn gb_s_per_invocation(memory_mb: u32, duration_ms: f64) -> f64 {
    gb_seconds(memory_mb, billed_duration_ms(duration_ms))
}

/// What the canary's invocations cost beyond what the primary would have charged for them, USD
/// (negative: they saved).
pub fn canary_cost_usd(
    prices: &PriceTable,
    arch: Architecture,
    primary: (&VersionStats, u32),
    canary: (&VersionStats, u32),
) -> f64 {
    let ((p, p_mb), (c, c_mb)) = (primary, canary);
    let (Some(pd), Some(cd)) = (p.duration_avg_ms, c.duration_avg_ms) else {
        return 0.0;
    };
    let extra_gb_s =
        c.invocations * (gb_s_per_invocation(c_mb, cd) - gb_s_per_invocation(p_mb, pd));
    // Priced at the first tier: a canary's few invocations do not move the account's tier.
    round4(extra_gb_s.signum() * prices.duration_usd(arch, 0.0, extra_gb_s.abs()))
}

/// A canary as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryReport {
    pub alias: String,
    pub version: String,
    pub memory_mb: u32,
    pub weight: f64,
    /// `started`, `running`, `promoted` or `dropped`.
    pub state: String,
    pub invocations: f64,
    pub errors: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_duration_ms: Option<f64>,
    /// What its invocations cost beyond the primary's price for them, USD.
    pub cost_usd: f64,
    pub reason: String,
}

impl CanaryReport {
    pub fn rounded(mut self) -> Self {
        self.duration_ms = self.duration_ms.map(round2);
        self.primary_duration_ms = self.primary_duration_ms.map(round2);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(invocations: f64, errors: f64, ms: f64) -> VersionStats {
        VersionStats {
            invocations,
            errors,
            duration_avg_ms: Some(ms),
        }
    }

    #[test]
    fn a_canary_waits_for_invocations_then_is_judged() {
        let primary = stats(20_000.0, 20.0, 300.0);
        let few = stats(50.0, 0.0, 310.0);
        assert!(matches!(
            judge_canary((&primary, 1024), (&few, 512), 3600.0, 10.0),
            CanaryVerdict::Wait(_)
        ));
        assert!(matches!(
            judge_canary((&primary, 1024), (&few, 512), 25.0 * 3600.0, 10.0),
            CanaryVerdict::Drop(_)
        ));
        let good = stats(1_000.0, 1.0, 315.0);
        assert!(matches!(
            judge_canary((&primary, 1024), (&good, 512), 3600.0, 10.0),
            CanaryVerdict::Promote(_)
        ));
        let slow = stats(1_000.0, 1.0, 340.0);
        assert!(matches!(
            judge_canary((&primary, 1024), (&slow, 512), 3600.0, 10.0),
            CanaryVerdict::Drop(_)
        ));
        let failing = stats(1_000.0, 12.0, 300.0);
        assert!(matches!(
            judge_canary((&primary, 1024), (&failing, 512), 3600.0, 10.0),
            CanaryVerdict::Drop(_)
        ));
        // Within the guard but dearer (a raise that does not pay for itself).
        let dearer = stats(1_000.0, 0.0, 290.0);
        assert!(matches!(
            judge_canary((&primary, 1024), (&dearer, 2048), 3600.0, 10.0),
            CanaryVerdict::Drop(_)
        ));
    }

    #[test]
    fn insights_pays_only_where_the_expected_saving_exceeds_its_charges() {
        let p = InsightsPrices::us_east_1();
        // 8 metrics at $0.30 and 1 KB a call at $0.50/GB: 10 million calls a month add $5.
        assert!((p.monthly_usd(10e6) - 7.4).abs() < 1e-9);
        let canary = stats(1_000.0, 0.0, 300.0);
        let primary = stats(20_000.0, 0.0, 300.0);
        let cost = canary_cost_usd(
            &PriceTable::us_east_1(),
            Architecture::X86_64,
            (&primary, 1024),
            (&canary, 512),
        );
        // 1,000 calls of 300 ms at half the memory: 150 GB-s saved.
        assert!(
            cost < 0.0 && (cost + 150.0 * 0.000_016_666_7).abs() < 1e-4,
            "{cost}"
        );
    }
}
