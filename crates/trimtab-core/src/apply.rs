//! Whether a recommendation may be carried out, how far in one run, and whether a change that was
//! carried out has hurt the function since. Pure: the shell supplies the facts and does the work.

use serde::{Deserialize, Serialize};

use crate::actuation::{LiveFunction, UpdateStatus};
use crate::model::{MAX_MEMORY_MB, MIN_MEMORY_MB};
use crate::rightsizing::{Recommendation, Status};

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

/// The settings a change moves between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionSettings {
    pub memory_mb: u32,
    pub timeout_s: u32,
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

/// Tag that keeps Trimtab's hands off a resource (value `true`, as the template's IAM deny
/// reads it).
pub const LOCK_TAG: &str = "trimtab:lock";
/// Tag on Trimtab's own resources.
pub const OWN_TAG: &str = "trimtab:component";

/// Whether tags lock a resource: `trimtab:lock` is `true` (any case).
pub fn is_locked(tags: &std::collections::BTreeMap<String, String>) -> bool {
    tags.get(LOCK_TAG)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Whether `name` matches an IAM-style pattern (`*` any run, `?` one character), as the
/// template's `ManagedFunctionPattern` does in the role's resource ARN.
pub fn matches_pattern(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// A change to make, with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub function_name: String,
    pub before: FunctionSettings,
    pub after: FunctionSettings,
    /// The recommendation's memory, when the step bound stopped short of it.
    pub target_memory_mb: Option<u32>,
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
    if !safety_raise && rec.monthly_savings_usd < guards.min_monthly_savings_usd {
        return Verdict::Skip(format!(
            "projected saving ${:.2}/month is under the ${:.2} floor",
            rec.monthly_savings_usd, guards.min_monthly_savings_usd
        ));
    }
    if rec.confidence < guards.min_confidence {
        return Verdict::Skip(format!(
            "confidence {:.2} is under the {:.2} floor",
            rec.confidence, guards.min_confidence
        ));
    }

    let current = rec.current_memory_mb;
    let lo = (f64::from(current) / guards.max_step_factor).ceil() as u32;
    let hi = (f64::from(current) * guards.max_step_factor).floor() as u32;
    let memory_mb = rec
        .recommended_memory_mb
        .clamp(lo.max(MIN_MEMORY_MB), hi.min(MAX_MEMORY_MB).max(lo));
    let bounded = memory_mb != rec.recommended_memory_mb;
    // A bounded raise runs slower than the recommendation assumed: never cut the timeout then.
    let timeout_s = if bounded && memory_mb > current {
        rec.recommended_timeout_s.max(rec.current_timeout_s)
    } else {
        rec.recommended_timeout_s
    };
    let mut reason = if safety_raise {
        "memory raised to keep headroom above peak use".to_owned()
    } else {
        format!("saves ${:.2}/month", rec.monthly_savings_usd)
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
        reason,
    })
}

/// A function's health over a stretch of time, as recorded before a change and measured after.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub invocations: f64,
    pub errors: f64,
    pub throttles: f64,
    pub duration_avg_ms: Option<f64>,
    pub duration_p99_ms: Option<f64>,
}

impl Health {
    fn rate(&self, count: f64) -> f64 {
        if self.invocations > 0.0 {
            count / self.invocations
        } else {
            0.0
        }
    }
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
    fn locks_and_the_managed_pattern_read_as_iam_does() {
        let tags = |v: &str| [(LOCK_TAG.to_owned(), v.to_owned())].into();
        assert!(is_locked(&tags("true")));
        assert!(is_locked(&tags("TRUE")));
        assert!(!is_locked(&tags("false")));
        assert!(matches_pattern("shop-*", "shop-cart"));
        assert!(!matches_pattern("shop-*", "billing-cart"));
        assert!(matches_pattern("*", "anything"));
        assert!(matches_pattern("a?c", "abc"));
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

/// Where a decision record stands. A record is written `Pending` before the change is made, so a
/// crash between the two leaves a record that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    /// Written; the change may or may not have been made (a crash in between).
    Pending,
    /// Made, and not yet verified.
    Applied,
    /// Made and verified healthy on a later run.
    Verified,
    /// Never made (the call failed, or a crash came first and reconciliation found it undone).
    NotApplied,
    /// Made, then undone: by verification or by an operator.
    RolledBack,
    /// Overtaken: the resource no longer has the record's `after` because someone (or something)
    /// else changed or deleted it since. Never rolled back automatically.
    Superseded,
}

impl RecordState {
    /// The name records are stored and reported under.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Applied => "applied",
            Self::Verified => "verified",
            Self::NotApplied => "not_applied",
            Self::RolledBack => "rolled_back",
            Self::Superseded => "superseded",
        }
    }

    /// Whether the change is (believed) in force on the resource.
    pub fn in_force(self) -> bool {
        matches!(self, Self::Applied | Self::Verified)
    }
}

/// What was changed, from what, to what, on what evidence: the audit trail of one change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Unique per function, ordered by time: `<created_at_epoch_s>-<run_id>`.
    pub record_id: String,
    pub function_name: String,
    pub run_id: String,
    pub created_at_epoch_s: i64,
    pub before: FunctionSettings,
    pub after: FunctionSettings,
    /// Health over the lookback window before the change, to verify against.
    pub evidence: Health,
    /// Predicted mean duration at `after`, ms.
    pub predicted_duration_ms: Option<f64>,
    pub monthly_savings_usd: f64,
    pub confidence: f64,
    pub reason: String,
    pub state: RecordState,
    pub state_reason: Option<String>,
    pub applied_at_epoch_s: Option<i64>,
    pub updated_at_epoch_s: i64,
    /// Set when this record restores an earlier one.
    pub rollback_of: Option<String>,
    /// Provisioned concurrency put on an alias by this change (memory and timeout unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned: Option<ProvisionedChange>,
    /// Lambda's `RevisionId` of the function when it was read just before the change; the
    /// change was sent conditional on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_before: Option<String>,
    /// The `RevisionId` read once the update had completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_after: Option<String>,
    /// Who asked for the run that made the change: the schedule, an API caller, an operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// No later run needs to read it any more (see [`to_archive`]); it stays in the audit trail.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
}

/// Provisioned concurrency handed to Application Auto Scaling on `function:alias`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvisionedChange {
    pub alias: String,
    pub min_capacity: u32,
    pub max_capacity: u32,
    pub target_utilization: f64,
    pub scheduled_actions: usize,
}

impl DecisionRecord {
    pub fn id(created_at_epoch_s: i64, run_id: &str) -> String {
        format!("{created_at_epoch_s:012}-{run_id}")
    }

    /// Whether later runs must still look at this record: it may yet be settled (pending) or
    /// verified (applied), or it is the function's latest change (verified or rolled back: the
    /// analysis judges the function on metrics since then, and a rollback holds it back). The
    /// decision table indexes exactly these, so a run reads them without scanning the audit
    /// trail.
    pub fn is_open(&self) -> bool {
        !self.archived
            && matches!(
                self.state,
                RecordState::Pending
                    | RecordState::Applied
                    | RecordState::Verified
                    | RecordState::RolledBack
            )
    }

    /// When the change took effect (or was undone), for judging the function on later metrics.
    pub fn effective_at_epoch_s(&self) -> i64 {
        match self.state {
            RecordState::RolledBack => self.updated_at_epoch_s,
            _ => self.applied_at_epoch_s.unwrap_or(self.updated_at_epoch_s),
        }
    }
}

/// Longest lookback a run may ask for; older closed records never matter to a run.
pub const HORIZON_S: i64 = 90 * 86_400;

/// Which open records (by index) no later run needs: of each function's settled records
/// (verified or rolled-back changes, rollbacks, provisioned concurrency), all but the newest of
/// each kind (memory or provisioned concurrency; change or rollback), and any whose effect is
/// older than the horizon, except provisioned concurrency still in force.
pub fn to_archive(records: &[DecisionRecord], now_s: i64) -> Vec<usize> {
    use std::collections::HashMap;
    let settled = |r: &DecisionRecord| {
        !r.archived
            && match r.state {
                RecordState::Verified | RecordState::RolledBack => true,
                // Provisioned concurrency is never verified on metrics: applied is settled.
                RecordState::Applied => r.provisioned.is_some(),
                _ => false,
            }
    };
    // Changes and rollbacks are kept apart: a rollback record must not archive the rolled-back
    // change, which holds the function back for the lookback window.
    fn key(r: &DecisionRecord) -> (&str, bool, bool) {
        (
            r.function_name.as_str(),
            r.provisioned.is_some(),
            r.rollback_of.is_some(),
        )
    }
    let mut newest: HashMap<(&str, bool, bool), &str> = HashMap::new();
    for r in records.iter().filter(|r| settled(r)) {
        let e = newest.entry(key(r)).or_insert(r.record_id.as_str());
        if r.record_id.as_str() > *e {
            *e = r.record_id.as_str();
        }
    }
    records
        .iter()
        .enumerate()
        .filter(|(_, r)| settled(r))
        .filter(|(_, r)| {
            let superseded = newest.get(&key(r)).is_some_and(|n| *n != r.record_id);
            let in_force_pc =
                r.provisioned.is_some() && r.rollback_of.is_none() && r.state.in_force();
            let old = now_s - r.effective_at_epoch_s() > HORIZON_S;
            superseded || (old && !in_force_pc)
        })
        .map(|(i, _)| i)
        .collect()
}

/// The audit trail of a change to something other than a function's memory and timeout (an
/// autoscaling target or policy): what it was, what it became, why. Written `Pending` before the
/// change and marked after it, like a [`DecisionRecord`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRecord {
    pub record_id: String,
    pub job: String,
    /// What changed, e.g. `table/orders dynamodb:table:ReadCapacityUnits`.
    pub resource: String,
    pub run_id: String,
    pub created_at_epoch_s: i64,
    /// The settings before (`null` when there were none), enough to restore them.
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    pub reason: String,
    pub state: RecordState,
    pub state_reason: Option<String>,
    pub updated_at_epoch_s: i64,
    /// Who asked for the run that made the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

impl ChangeRecord {
    /// Whether a later run must settle it (only a pending one: autoscaling writes are not
    /// verified on metrics).
    pub fn is_open(&self) -> bool {
        self.state == RecordState::Pending
    }
}

#[cfg(test)]
mod archive_tests {
    use super::*;

    fn r(id: &str, function: &str, state: RecordState, at: i64, pc: bool) -> DecisionRecord {
        let s = FunctionSettings {
            memory_mb: 128,
            timeout_s: 3,
        };
        DecisionRecord {
            record_id: id.into(),
            function_name: function.into(),
            run_id: "run".into(),
            created_at_epoch_s: at,
            before: s,
            after: s,
            evidence: Health::default(),
            predicted_duration_ms: None,
            monthly_savings_usd: 0.0,
            confidence: 1.0,
            reason: String::new(),
            state,
            state_reason: None,
            applied_at_epoch_s: Some(at),
            updated_at_epoch_s: at,
            rollback_of: None,
            provisioned: pc.then(|| ProvisionedChange {
                alias: "live".into(),
                min_capacity: 1,
                max_capacity: 2,
                target_utilization: 0.7,
                scheduled_actions: 0,
            }),
            revision_before: None,
            revision_after: None,
            requested_by: None,
            archived: false,
        }
    }

    #[test]
    fn only_each_functions_latest_settled_change_stays_open() {
        use RecordState::*;
        let now = 100 * 86_400;
        let records = [
            r("1", "a", Verified, now - 10, false),
            r("2", "a", Verified, now - 5, false),
            r("3", "a", Applied, now - 1, false),
            r("4", "b", RolledBack, now - HORIZON_S - 1, false),
            r("5", "c", Verified, now - HORIZON_S - 1, true),
            r("6", "c", Verified, now - 2, false),
        ];
        assert_eq!(to_archive(&records, now), [0, 3]);
        assert!(records[2].is_open());
    }

    #[test]
    fn a_rolled_back_change_stays_open_beside_its_rollback() {
        use RecordState::*;
        let now = 100 * 86_400;
        let mut undo = r("2", "a", Verified, now - 5, false);
        undo.rollback_of = Some("1".into());
        let records = [r("1", "a", RolledBack, now - 10, false), undo];
        assert!(to_archive(&records, now).is_empty());
    }
}
