//! What Trimtab remembers about a change: the settings it moves between, the health it is
//! judged on, and the records written before a change and settled after it (decision records for
//! a function's memory, timeout and provisioned concurrency; change records for autoscaling).

use serde::{Deserialize, Serialize};

/// The settings a change moves between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionSettings {
    pub memory_mb: u32,
    pub timeout_s: u32,
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
    pub(crate) fn rate(&self, count: f64) -> f64 {
        if self.invocations > 0.0 {
            count / self.invocations
        } else {
            0.0
        }
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
    /// Where the walk of steps this change belongs to began: the size and health before its
    /// first step, carried from step to step (earlier records are archived), so the latency
    /// guard holds against it and the model is fitted on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walk_start: Option<WalkStart>,
    /// The relative error bound of `predicted_duration_ms`, percent: a step that runs slower
    /// than the bound stops the walk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction_error_pct: Option<f64>,
    /// A canary on an alias (the function's own settings unchanged until it is promoted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryChange>,
}

/// A version at another memory size taking a share of an alias's traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryChange {
    pub alias: String,
    /// The version the alias pointed at, and still does unless promoted.
    pub primary_version: String,
    /// The version published at `memory_mb`, once made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub memory_mb: u32,
    /// Share of the alias's traffic routed to the canary.
    pub weight: f64,
    /// What the versions measured at the last reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<crate::evidence::VersionStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<crate::evidence::VersionStats>,
    /// What the canary's invocations cost beyond the primary's price for them, USD.
    #[serde(default)]
    pub cost_usd: f64,
    /// The verdict being carried out (`promote` or `drop`), written before the alias is touched
    /// so that a run that stops half-way is finished, not mistaken for someone else's change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
}

/// The size a function ran at before Trimtab's first step, and how it ran there.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WalkStart {
    pub memory_mb: u32,
    pub duration_ms: f64,
    pub invocations: f64,
}

/// The start of the walk a new memory change of `function` continues: the walk start of its
/// latest memory change in force (applied or verified, not a rollback), or that change's own
/// size and health before it; `None` when the function has no change in force.
pub fn walk_start(records: &[DecisionRecord], function: &str) -> Option<WalkStart> {
    let latest = records
        .iter()
        .filter(|r| {
            r.function_name == function
                && r.provisioned.is_none()
                && r.canary.is_none()
                && r.rollback_of.is_none()
                && r.before.memory_mb != r.after.memory_mb
                && matches!(r.state, RecordState::Applied | RecordState::Verified)
        })
        .max_by_key(|r| r.created_at_epoch_s)?;
    latest.walk_start.or_else(|| {
        latest.evidence.duration_avg_ms.map(|d| WalkStart {
            memory_mb: latest.before.memory_mb,
            duration_ms: d,
            invocations: latest.evidence.invocations,
        })
    })
}

/// Provisioned concurrency handed to Application Auto Scaling on `function:alias`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvisionedChange {
    pub alias: String,
    pub min_capacity: u32,
    pub max_capacity: u32,
    /// Target-tracking target, a fraction (0.7), as Lambda's policy takes it. Records written
    /// before the unit was in the name say `target_utilization`.
    #[serde(alias = "target_utilization")]
    pub target_utilization_fraction: f64,
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
            // A canary changes the function when it is promoted, not when it starts.
            RecordState::Verified if self.canary.is_some() => self.updated_at_epoch_s,
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
impl DecisionRecord {
    /// A record for tests: `function`'s change from 1024 MB / 30 s to the same, in `state`,
    /// made and settled at epoch 0; tests set what they judge.
    pub(crate) fn for_test(id: &str, function: &str, state: RecordState) -> Self {
        let settings = FunctionSettings {
            memory_mb: 1024,
            timeout_s: 30,
        };
        Self {
            record_id: id.into(),
            function_name: function.into(),
            run_id: "run".into(),
            created_at_epoch_s: 0,
            before: settings,
            after: settings,
            evidence: Health::default(),
            predicted_duration_ms: None,
            monthly_savings_usd: 1.0,
            confidence: 1.0,
            reason: String::new(),
            state,
            state_reason: None,
            applied_at_epoch_s: Some(0),
            updated_at_epoch_s: 0,
            rollback_of: None,
            provisioned: None,
            revision_before: None,
            revision_after: None,
            requested_by: None,
            archived: false,
            walk_start: None,
            prediction_error_pct: None,
            canary: None,
        }
    }
}

#[cfg(test)]
mod archive_tests {
    use super::*;

    #[test]
    fn a_walk_starts_where_the_first_step_left_and_is_carried_forward() {
        use RecordState::*;
        let step = |state: RecordState, at: i64, before: u32, after: u32| {
            let mut x = r(&format!("{at}-r"), "f", state, at, false);
            x.before.memory_mb = before;
            x.after.memory_mb = after;
            x.evidence.duration_avg_ms = Some(f64::from(before) / 10.0);
            x.evidence.invocations = 1_000.0;
            x
        };
        // Nothing in force yet: no walk.
        assert_eq!(walk_start(&[step(RolledBack, 1, 2048, 1024)], "f"), None);
        // One step in force: the walk began before it.
        let first = step(Verified, 1, 2048, 1024);
        let start = walk_start(std::slice::from_ref(&first), "f").expect("a walk");
        assert_eq!((start.memory_mb, start.duration_ms), (2048, 204.8));
        // The second step carries it; once the first is archived the start is still known.
        let mut second = step(Applied, 2, 1024, 768);
        second.walk_start = Some(start);
        assert_eq!(walk_start(&[second], "f"), Some(start));
        assert_eq!(walk_start(&[first], "g"), None);
    }

    #[test]
    fn a_record_written_before_the_target_had_its_unit_in_the_name_still_reads() {
        let old = r#"{"alias":"live","min_capacity":2,"max_capacity":9,"target_utilization":0.7,"scheduled_actions":0}"#;
        let change: ProvisionedChange = serde_json::from_str(old).expect("old record");
        assert_eq!(change.target_utilization_fraction, 0.7);
        let now = serde_json::to_string(&change).expect("json");
        assert!(now.contains("\"target_utilization_fraction\":0.7"), "{now}");
    }

    fn r(id: &str, function: &str, state: RecordState, at: i64, pc: bool) -> DecisionRecord {
        let s = FunctionSettings {
            memory_mb: 128,
            timeout_s: 3,
        };
        DecisionRecord {
            created_at_epoch_s: at,
            before: s,
            after: s,
            monthly_savings_usd: 0.0,
            applied_at_epoch_s: Some(at),
            updated_at_epoch_s: at,
            provisioned: pc.then(|| ProvisionedChange {
                alias: "live".into(),
                min_capacity: 1,
                max_capacity: 2,
                target_utilization_fraction: 0.7,
                scheduled_actions: 0,
            }),
            ..DecisionRecord::for_test(id, function, state)
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
