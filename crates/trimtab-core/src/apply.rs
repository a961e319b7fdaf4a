//! Whether a recommendation may be carried out, how far in one run, and whether a change that was
//! carried out has hurt the function since. Pure: the shell supplies the facts and does the work.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::actuation::{LiveFunction, UpdateStatus};
use crate::model::{MAX_MEMORY_MB, MIN_MEMORY_MB};
use crate::records::{DecisionRecord, FunctionSettings, Health, ProvisionedChange, RecordState};
use crate::rightsizing::{Recommendation, Status};
use crate::tags::{ALIAS_TAG, LATENCY_OBJECTIVE_TAG, LOCK_TAG, is_locked};

/// What must hold before a change is made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guards {
    /// Smallest projected saving worth a change, USD per month. Raises that keep memory above
    /// peak use plus headroom are safety changes and exempt.
    pub min_monthly_savings_usd: f64,
    /// Smallest confidence (0..1) worth acting on.
    pub min_confidence: f64,
    /// Largest factor memory may move by in one run (2: at most halve or double); the target is
    /// reached over several runs, each verified before the next.
    pub max_step_factor: f64,
}

impl Default for Guards {
    fn default() -> Self {
        Self {
            min_monthly_savings_usd: 1.0,
            min_confidence: 0.5,
            max_step_factor: 2.0,
        }
    }
}

/// What the shell knows when provisioned concurrency is advised for a function.
#[derive(Debug, Clone, Copy)]
pub struct ProvisionFacts<'a> {
    pub function_name: &'a str,
    pub tags: &'a BTreeMap<String, String>,
    /// Why apply mode may not touch the function at all (tags unreadable, not managed).
    pub not_allowed: Option<&'a str>,
    /// Why the function's changes wait (a recent rollback, a change awaiting verification).
    pub held: Option<&'a str>,
    /// The open decision records, settled this run.
    pub open_records: &'a [DecisionRecord],
    /// On-demand minus provisioned monthly cost, USD.
    pub monthly_savings_usd: f64,
}

/// Why advised provisioned concurrency may not be put on now, if it may not: the function is not
/// Trimtab's to change, is locked, already carries Trimtab's provisioned concurrency (or a
/// pending record of it), waits on another change, names no alias, or saves less than the floor
/// without a latency objective asking for it.
pub fn provision_refusal(f: &ProvisionFacts<'_>, guards: &Guards) -> Option<String> {
    let already = f.open_records.iter().any(|r| {
        r.function_name == f.function_name
            && r.provisioned.is_some()
            && r.rollback_of.is_none()
            && (r.state.in_force() || r.state == RecordState::Pending)
    });
    if let Some(why) = f.not_allowed {
        Some(why.to_owned())
    } else if is_locked(f.tags) {
        Some(format!("locked: the function has the {LOCK_TAG} tag"))
    } else if already {
        Some("already provisioned by an earlier record".to_owned())
    } else if let Some(why) = f.held {
        Some(why.to_owned())
    } else if !f.tags.contains_key(ALIAS_TAG) {
        Some(format!("no {ALIAS_TAG} tag naming the alias to provision"))
    } else if f.monthly_savings_usd < guards.min_monthly_savings_usd
        && !f.tags.contains_key(LATENCY_OBJECTIVE_TAG)
    {
        Some(format!(
            "saves ${:.2}/month, under the floor",
            f.monthly_savings_usd
        ))
    } else {
        None
    }
}

/// The provision whose alias's scheduled actions a run may bring to the forecast: one Trimtab
/// made (its record applied and in force; a pending one is settled first), on a function the run
/// may change now. `Err` says why not; `Ok(None)`: Trimtab has not provisioned it (a new
/// provision is judged by [`provision_refusal`] instead).
pub fn reschedule_target(f: &ProvisionFacts<'_>) -> Result<Option<ProvisionedChange>, String> {
    let ours = f.open_records.iter().find(|r| {
        r.function_name == f.function_name
            && r.rollback_of.is_none()
            && r.provisioned.is_some()
            && (r.state.in_force() || r.state == RecordState::Pending)
    });
    let Some((record, change)) = ours.and_then(|r| r.provisioned.as_ref().map(|p| (r, p))) else {
        return Ok(None);
    };
    if let Some(why) = f.not_allowed {
        Err(why.to_owned())
    } else if is_locked(f.tags) {
        Err(format!("locked: the function has the {LOCK_TAG} tag"))
    } else if record.state == RecordState::Pending {
        Err("its provisioned concurrency is still being settled".to_owned())
    } else if let Some(why) = f.held {
        Err(why.to_owned())
    } else {
        Ok(Some(change.clone()))
    }
}

/// What the shell knows about a function that the recommendation does not.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FunctionState {
    /// Carries the `trimtab:lock` tag: never touched.
    pub locked: bool,
    /// The configuration read just before deciding (`GetFunctionConfiguration`; `ListFunctions`
    /// does not report `LastUpdateStatus`). Only a function whose last update is `Successful`
    /// and whose settings are still those the analysis judged may be changed.
    pub live: Option<LiveFunction>,
}

/// A change to make, with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub function_name: String,
    pub before: FunctionSettings,
    pub after: FunctionSettings,
    /// The recommendation's memory, when the step bound stopped short of it.
    pub target_memory_mb: Option<u32>,
    /// The confidence the guard judged (the step's own, for a bounded step).
    pub confidence: f64,
    pub reason: String,
}

/// The guards' answer for one recommendation.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Apply(Change),
    Skip(String),
}

/// Applies the guards and the step bound to one recommendation.
pub fn decide(rec: &Recommendation, state: &FunctionState, guards: &Guards) -> Verdict {
    if rec.status != Status::Recommended {
        return Verdict::Skip(format!("nothing to apply: status {:?}", rec.status).to_lowercase());
    }
    if state.locked {
        return Verdict::Skip("locked: the function has the trimtab:lock tag".to_owned());
    }
    let Some(live) = &state.live else {
        return Verdict::Skip("its live configuration could not be read".to_owned());
    };
    match &live.update {
        UpdateStatus::Successful => {}
        other => {
            return Verdict::Skip(format!(
                "last update status is {}, not Successful: an update may be in flight",
                match other {
                    UpdateStatus::InProgress => "InProgress".to_owned(),
                    UpdateStatus::Failed(why) => format!("Failed ({why})"),
                    _ => "unknown".to_owned(),
                }
            ));
        }
    }
    if (live.settings.memory_mb, live.settings.timeout_s)
        != (rec.current_memory_mb, rec.current_timeout_s)
    {
        return Verdict::Skip(format!(
            "changed since the analysis read it (now {} MB / {} s): judged again next run",
            live.settings.memory_mb, live.settings.timeout_s
        ));
    }
    let safety_raise = rec.recommended_memory_mb > rec.current_memory_mb
        && rec
            .memory_floor_mb
            .is_some_and(|f| f > rec.current_memory_mb);
    // A measured step is worth its best case: at worst it costs the same and tells how the
    // function scales.
    let saving = rec
        .best_case_monthly_savings_usd
        .unwrap_or(rec.monthly_savings_usd);
    if !safety_raise && saving < guards.min_monthly_savings_usd {
        return Verdict::Skip(format!(
            "projected saving ${saving:.2}/month is under the ${:.2} floor",
            guards.min_monthly_savings_usd
        ));
    }
    let current = rec.current_memory_mb;
    let lo = (f64::from(current) / guards.max_step_factor).ceil() as u32;
    let hi = (f64::from(current) * guards.max_step_factor).floor() as u32;
    let memory_mb = rec
        .recommended_memory_mb
        .clamp(lo.max(MIN_MEMORY_MB), hi.min(MAX_MEMORY_MB).max(lo));
    let bounded = memory_mb != rec.recommended_memory_mb;
    // The guard judges the change it makes: a bounded step extrapolates less than the
    // recommendation it stops short of.
    let confidence = rec
        .step_prediction
        .filter(|s| bounded && s.memory_mb == memory_mb)
        .and_then(|s| s.confidence)
        .unwrap_or(rec.confidence);
    if confidence < guards.min_confidence {
        return Verdict::Skip(format!(
            "confidence {confidence:.2} is under the {:.2} floor",
            guards.min_confidence
        ));
    }
    // A bounded raise runs slower than the recommendation assumed: never cut the timeout then.
    let timeout_s = if bounded && memory_mb > current {
        rec.recommended_timeout_s.max(rec.current_timeout_s)
    } else {
        rec.recommended_timeout_s
    };
    let mut reason = if safety_raise {
        "memory raised to keep headroom above peak use".to_owned()
    } else {
        match rec.best_case_monthly_savings_usd {
            Some(best) => format!("a measured step: saves up to ${best:.2}/month"),
            None => format!("saves ${:.2}/month", rec.monthly_savings_usd),
        }
    };
    if bounded {
        reason.push_str(&format!(
            "; step bounded to {memory_mb} MB on the way to {} MB",
            rec.recommended_memory_mb
        ));
    }
    Verdict::Apply(Change {
        function_name: rec.function_name.clone(),
        before: FunctionSettings {
            memory_mb: current,
            timeout_s: rec.current_timeout_s,
        },
        after: FunctionSettings {
            memory_mb,
            timeout_s,
        },
        target_memory_mb: bounded.then_some(rec.recommended_memory_mb),
        confidence,
        reason,
    })
}

/// The verification of an applied change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "snake_case")]
pub enum Verification {
    /// Too little traffic since the change to judge it yet.
    Wait(String),
    Healthy,
    Regressed(String),
    /// Not judged: the function no longer has the change's settings (someone else changed or
    /// deleted it), so its metrics say nothing about the change. Set by the shell.
    Superseded(String),
}

/// Fewest invocations after a change before it is judged.
pub const MIN_INVOCATIONS_TO_VERIFY: f64 = 50.0;

/// Compares health after a change with health before it. A regression is an error or throttle
/// rate up by more than half again plus half a percentage point (a noise allowance for small
/// samples), or p99 (the mean where p99 is unavailable on both sides) slower than the latency
/// guard allows.
pub fn verify(before: &Health, after: &Health, latency_guard_pct: f64) -> Verification {
    if after.invocations < MIN_INVOCATIONS_TO_VERIFY {
        return Verification::Wait(format!(
            "{} invocations since the change; {} needed",
            after.invocations, MIN_INVOCATIONS_TO_VERIFY
        ));
    }
    let worse = |b: f64, a: f64| a > b * 1.5 + 0.005;
    let (eb, ea) = (before.rate(before.errors), after.rate(after.errors));
    if worse(eb, ea) {
        return Verification::Regressed(format!(
            "error rate {:.2}% after vs {:.2}% before",
            100.0 * ea,
            100.0 * eb
        ));
    }
    let (tb, ta) = (before.rate(before.throttles), after.rate(after.throttles));
    if worse(tb, ta) {
        return Verification::Regressed(format!(
            "throttle rate {:.2}% after vs {:.2}% before",
            100.0 * ta,
            100.0 * tb
        ));
    }
    let limit = 1.0 + latency_guard_pct / 100.0;
    let latency = match (before.duration_p99_ms, after.duration_p99_ms) {
        (Some(b), Some(a)) => Some(("p99", b, a)),
        _ => before
            .duration_avg_ms
            .zip(after.duration_avg_ms)
            .map(|(b, a)| ("mean", b, a)),
    };
    if let Some((what, b, a)) = latency
        && a > b * limit
    {
        return Verification::Regressed(format!(
            "{what} duration {a:.1} ms after vs {b:.1} ms before (guard {latency_guard_pct:.0}%)"
        ));
    }
    Verification::Healthy
}

#[cfg(test)]
mod provision_tests {
    use super::*;

    #[test]
    fn provisioned_concurrency_is_refused_for_the_first_reason_that_holds() {
        let mut tags: BTreeMap<String, String> = [(ALIAS_TAG.to_owned(), "live".to_owned())].into();
        fn facts(tags: &BTreeMap<String, String>) -> ProvisionFacts<'_> {
            ProvisionFacts {
                function_name: "checkout",
                tags,
                not_allowed: None,
                held: None,
                open_records: &[],
                monthly_savings_usd: 5.0,
            }
        }
        let g = Guards::default();
        assert_eq!(provision_refusal(&facts(&tags), &g), None);
        let cheap = ProvisionFacts {
            monthly_savings_usd: 0.5,
            ..facts(&tags)
        };
        assert!(
            provision_refusal(&cheap, &g)
                .unwrap_or_default()
                .contains("under the floor")
        );
        let held = ProvisionFacts {
            held: Some("awaiting verification"),
            ..facts(&tags)
        };
        assert_eq!(
            provision_refusal(&held, &g).as_deref(),
            Some("awaiting verification")
        );
        let outside = ProvisionFacts {
            not_allowed: Some("outside the managed pattern"),
            ..held
        };
        assert_eq!(
            provision_refusal(&outside, &g).as_deref(),
            Some("outside the managed pattern")
        );
        tags.insert(LATENCY_OBJECTIVE_TAG.to_owned(), "150".to_owned());
        let asked = ProvisionFacts {
            monthly_savings_usd: 0.5,
            ..facts(&tags)
        };
        assert_eq!(
            provision_refusal(&asked, &g),
            None,
            "a latency objective asks for it"
        );
        tags.insert(LOCK_TAG.to_owned(), "true".to_owned());
        assert!(
            provision_refusal(&facts(&tags), &g)
                .unwrap_or_default()
                .starts_with("locked")
        );
        tags.clear();
        assert!(
            provision_refusal(&facts(&tags), &g)
                .unwrap_or_default()
                .contains(ALIAS_TAG)
        );
    }

    #[test]
    fn only_an_alias_trimtab_provisioned_and_settled_is_rescheduled() {
        let provisioned = DecisionRecord {
            provisioned: Some(ProvisionedChange {
                alias: "live".into(),
                min_capacity: 2,
                max_capacity: 50,
                target_utilization_fraction: 0.9,
                scheduled_actions: 2,
            }),
            ..DecisionRecord::for_test("r", "checkout", RecordState::Applied)
        };
        let tags: BTreeMap<String, String> = [(ALIAS_TAG.to_owned(), "live".to_owned())].into();
        let records = [provisioned.clone()];
        let facts = |records| ProvisionFacts {
            function_name: "checkout",
            tags: &tags,
            not_allowed: None,
            held: None,
            open_records: records,
            monthly_savings_usd: 5.0,
        };
        assert_eq!(
            reschedule_target(&facts(&records))
                .ok()
                .flatten()
                .map(|c| c.alias),
            Some("live".into())
        );
        assert_eq!(reschedule_target(&facts(&[])), Ok(None));
        let pending = [DecisionRecord {
            state: RecordState::Pending,
            ..provisioned.clone()
        }];
        assert!(reschedule_target(&facts(&pending)).is_err());
        let rolled_back = [DecisionRecord {
            state: RecordState::RolledBack,
            ..provisioned
        }];
        assert_eq!(reschedule_target(&facts(&rolled_back)), Ok(None));
        let held = ProvisionFacts {
            held: Some("awaiting verification"),
            ..facts(&records)
        };
        assert_eq!(
            reschedule_target(&held),
            Err("awaiting verification".to_owned())
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::Architecture;

    fn rec(current: u32, recommended: u32, savings: f64) -> Recommendation {
        Recommendation {
            function_name: "f".into(),
            architecture: Architecture::Arm64,
            current_memory_mb: current,
            recommended_memory_mb: recommended,
            current_timeout_s: 30,
            recommended_timeout_s: 5,
            current_duration_ms: Some(100.0),
            predicted_duration_ms: Some(105.0),
            current_p99_ms: None,
            predicted_p99_ms: None,
            current_monthly_cost_usd: 10.0,
            projected_monthly_cost_usd: 10.0 - savings,
            monthly_savings_usd: savings,
            confidence: 0.9,
            reasons: vec![],
            status: Status::Recommended,
            invocations: 1e6,
            peak_memory_used_mb: Some(100.0),
            memory_floor_mb: Some(120),
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

    fn live(memory_mb: u32, update: UpdateStatus) -> Option<LiveFunction> {
        Some(LiveFunction {
            settings: FunctionSettings {
                memory_mb,
                timeout_s: 30,
            },
            update,
            revision_id: Some("r1".into()),
        })
    }

    fn ok_state() -> FunctionState {
        FunctionState {
            locked: false,
            live: live(2048, UpdateStatus::Successful),
        }
    }

    #[test]
    fn a_big_cut_is_halved_in_one_run() {
        let Verdict::Apply(c) = decide(&rec(2048, 300, 8.0), &ok_state(), &Guards::default())
        else {
            panic!("should apply")
        };
        assert_eq!(c.after.memory_mb, 1024);
        assert_eq!(c.target_memory_mb, Some(300));
        assert_eq!(
            c.before,
            FunctionSettings {
                memory_mb: 2048,
                timeout_s: 30
            }
        );
    }

    #[test]
    fn each_guard_skips_with_its_reason() {
        let g = Guards::default();
        let locked = FunctionState {
            locked: true,
            ..ok_state()
        };
        assert!(
            matches!(decide(&rec(2048, 1024, 8.0), &locked, &g), Verdict::Skip(r) if r.contains("lock"))
        );
        let busy = FunctionState {
            live: live(2048, UpdateStatus::InProgress),
            ..ok_state()
        };
        assert!(
            matches!(decide(&rec(2048, 1024, 8.0), &busy, &g), Verdict::Skip(r) if r.contains("InProgress"))
        );
        let moved = FunctionState {
            live: live(3008, UpdateStatus::Successful),
            ..ok_state()
        };
        assert!(
            matches!(decide(&rec(2048, 1024, 8.0), &moved, &g), Verdict::Skip(r) if r.contains("changed since"))
        );
        let unread = FunctionState {
            live: None,
            ..ok_state()
        };
        assert!(matches!(
            decide(&rec(2048, 1024, 8.0), &unread, &g),
            Verdict::Skip(_)
        ));
        assert!(
            matches!(decide(&rec(2048, 1024, 0.5), &ok_state(), &g), Verdict::Skip(r) if r.contains("floor"))
        );
        let mut unsure = rec(2048, 1024, 8.0);
        unsure.confidence = 0.2;
        assert!(
            matches!(decide(&unsure, &ok_state(), &g), Verdict::Skip(r) if r.contains("confidence"))
        );
    }

    #[test]
    fn a_bounded_step_is_judged_on_its_own_confidence() {
        use crate::fit::StepPrediction;
        let g = Guards::default();
        // Recommended far below (a long extrapolation: 0.45), but the step to half of today is
        // surer (0.55): the step is taken.
        let mut far = rec(2048, 600, 8.0);
        far.confidence = 0.45;
        far.step_prediction = Some(StepPrediction {
            memory_mb: 1024,
            predicted_ms: 100.0,
            error_pct: 5.0,
            confidence: Some(0.55),
        });
        assert!(
            matches!(decide(&far, &ok_state(), &g), Verdict::Apply(c) if c.after.memory_mb == 1024 && c.confidence == 0.55)
        );
        // A step to another size than the bound gives (another step factor) keeps the
        // recommendation's confidence.
        let wider = Guards {
            max_step_factor: 4.0,
            ..Guards::default()
        };
        assert!(
            matches!(decide(&far, &ok_state(), &wider), Verdict::Skip(r) if r.contains("0.45"))
        );
        // An unsure step is not taken although it is bounded.
        far.step_prediction = far.step_prediction.map(|s| StepPrediction {
            confidence: Some(0.3),
            ..s
        });
        assert!(matches!(decide(&far, &ok_state(), &g), Verdict::Skip(r) if r.contains("0.30")));
    }

    #[test]
    fn a_safety_raise_needs_no_saving_and_keeps_the_timeout() {
        let mut r = rec(512, 1400, -3.0);
        r.memory_floor_mb = Some(1400);
        let state = FunctionState {
            live: live(512, UpdateStatus::Successful),
            ..ok_state()
        };
        let Verdict::Apply(c) = decide(&r, &state, &Guards::default()) else {
            panic!("should apply")
        };
        assert_eq!(c.after.memory_mb, 1024);
        assert_eq!(c.after.timeout_s, 30);
    }

    #[test]
    fn verification_flags_errors_throttles_and_latency() {
        let before = Health {
            invocations: 10_000.0,
            errors: 10.0,
            throttles: 0.0,
            duration_avg_ms: Some(100.0),
            duration_p99_ms: None,
        };
        let same = Health {
            invocations: 1000.0,
            errors: 1.0,
            duration_avg_ms: Some(104.0),
            ..before
        };
        assert_eq!(verify(&before, &same, 10.0), Verification::Healthy);
        let errors = Health {
            errors: 80.0,
            ..same
        };
        assert!(
            matches!(verify(&before, &errors, 10.0), Verification::Regressed(r) if r.contains("error"))
        );
        let throttled = Health {
            throttles: 30.0,
            ..same
        };
        assert!(
            matches!(verify(&before, &throttled, 10.0), Verification::Regressed(r) if r.contains("throttle"))
        );
        let slow = Health {
            duration_avg_ms: Some(125.0),
            ..same
        };
        assert!(
            matches!(verify(&before, &slow, 10.0), Verification::Regressed(r) if r.contains("mean"))
        );
        let quiet = Health {
            invocations: 10.0,
            ..same
        };
        assert!(matches!(
            verify(&before, &quiet, 10.0),
            Verification::Wait(_)
        ));
    }
}
