//! The judgement inside the actuation protocol: given what a change meant to do and what the
//! resource looks like now, where does its record stand, and may Trimtab undo it? Pure: the shell
//! reads live state, asks here, and writes the answer into the record.
//!
//! The rules, in one place (docs/actuation.md walks through them):
//! - a record is `applied` only once the resource shows its `after` and no update is in flight;
//! - it is `not_applied` only when the resource still shows its `before`, never merely because a
//!   call failed (a lost response may hide a change that happened);
//! - anything else is `superseded` (someone else changed or deleted it) or stays `pending` (an
//!   update is still running) for the next run to settle;
//! - Trimtab restores a recorded `before` only over its own `after`: never over a change made
//!   by someone else since (compare-and-set, with the `RevisionId` read just before the write).

use serde::{Deserialize, Serialize};

use crate::records::{DecisionRecord, FunctionSettings, ProvisionedChange};

/// Lambda's `LastUpdateStatus` of a function, as read just now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum UpdateStatus {
    Successful,
    InProgress,
    /// The last update failed; Lambda kept the previous configuration (reason attached).
    Failed(String),
    /// Not reported (only `ListFunctions` omits it; `GetFunctionConfiguration` always has it).
    Unknown,
}

/// A function's configuration read just now with `GetFunctionConfiguration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveFunction {
    pub settings: FunctionSettings,
    pub update: UpdateStatus,
    pub revision_id: Option<String>,
}

/// Where a record stands against the live resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// The change is in force.
    Applied,
    /// The change never happened; the resource is as it was.
    NotApplied(String),
    /// Not yet knowable (an update is still running): settle again later.
    Pending(String),
    /// The resource is neither as it was nor as the change left it, or it is gone.
    Superseded(String),
    /// Half of a multi-step change is in place: remove what is there, then it is not applied.
    Undo(String),
}

fn describe(s: FunctionSettings) -> String {
    format!("{} MB / {} s", s.memory_mb, s.timeout_s)
}

/// Settles a memory/timeout change from the function's live state (`None`: the function no
/// longer exists). Used right after the change call, whatever it returned, and by the next run
/// for a record a crash left pending.
pub fn settle_function_change(
    before: FunctionSettings,
    after: FunctionSettings,
    live: Option<&LiveFunction>,
) -> Settlement {
    let Some(live) = live else {
        return Settlement::Superseded("the function no longer exists".to_owned());
    };
    if live.update == UpdateStatus::InProgress {
        return Settlement::Pending("an update of the function is still in progress".to_owned());
    }
    // Lambda keeps the previous configuration when an update fails, so the new settings with
    // a failed last update mean this change landed and a later update (someone's) failed.
    if live.settings == after && after != before {
        return Settlement::Applied;
    }
    if live.settings == before {
        return Settlement::NotApplied(match &live.update {
            UpdateStatus::Failed(why) => format!(
                "Lambda reports the update failed and kept {}: {why}",
                describe(before)
            ),
            _ => format!("the function is still at {}", describe(before)),
        });
    }
    Settlement::Superseded(format!(
        "the function is at {}, neither {} before nor {} after: changed by someone else",
        describe(live.settings),
        describe(before),
        describe(after)
    ))
}

/// May Trimtab restore `target.before` now?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreVerdict {
    /// Yes; the listed later records (Trimtab's own, in force) are made moot by it.
    Restore { moot: Vec<String> },
    /// No: someone else has changed the function since; restoring would overwrite their change.
    Superseded(String),
    /// Not now: an update is in flight.
    Busy(String),
}

/// Compare-and-set for a rollback. `later` are Trimtab's records of the same function made after
/// `target` and still in force, newest first. The live configuration must be `target.after`, or
/// the `after` of the newest of `later` (Trimtab's own chain of changes); `force` (an operator's
/// explicit choice) restores over anything.
pub fn may_restore(
    target: &DecisionRecord,
    later: &[&DecisionRecord],
    live: &LiveFunction,
    force: bool,
) -> RestoreVerdict {
    if live.update == UpdateStatus::InProgress {
        return RestoreVerdict::Busy("an update of the function is in progress".to_owned());
    }
    let moot = || later.iter().map(|r| r.record_id.clone()).collect();
    match later.first() {
        None if live.settings == target.after => RestoreVerdict::Restore { moot: vec![] },
        Some(newest) if live.settings == newest.after => RestoreVerdict::Restore { moot: moot() },
        _ if force => RestoreVerdict::Restore { moot: moot() },
        _ => RestoreVerdict::Superseded(format!(
            "the function is at {}, not {} as record {} left it: changed outside Trimtab since",
            describe(live.settings),
            describe(later.first().map_or(target.after, |r| r.after)),
            later.first().map_or(&target.record_id, |r| &r.record_id),
        )),
    }
}

/// Allocation status of a provisioned-concurrency configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AllocationStatus {
    InProgress,
    Ready,
    Failed,
}

/// What an alias carries live: its provisioned-concurrency configuration and the Application
/// Auto Scaling target, policies and scheduled actions on it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProvisionedLive {
    /// (requested executions, status) of `GetProvisionedConcurrencyConfig`; `None`: none.
    pub config: Option<(u32, AllocationStatus)>,
    /// (min, max) of the scalable target, if registered.
    pub target: Option<(u32, u32)>,
    /// Target value of Trimtab's target-tracking policy on it, if any.
    pub policy_target_fraction: Option<f64>,
    /// Trimtab's scheduled actions on it (`trimtab-` names).
    pub scheduled: usize,
    /// The (min, max) each of Trimtab's scheduled actions sets: a range one of them set is
    /// Trimtab's own too.
    #[serde(default)]
    pub scheduled_ranges: Vec<(u32, u32)>,
    /// Scaling policies and scheduled actions someone else made on it, by name.
    pub foreign: Vec<String>,
}

impl ProvisionedLive {
    pub fn is_empty(&self) -> bool {
        self.config.is_none()
            && self.target.is_none()
            && self.policy_target_fraction.is_none()
            && self.scheduled == 0
            && self.foreign.is_empty()
    }
}

/// Whether Trimtab may provision an alias: only one that carries nothing (no configuration, no
/// scalable target, no policies), so that undoing its change never removes someone else's.
pub fn may_provision(live: &ProvisionedLive) -> Result<(), String> {
    if live.is_empty() {
        Ok(())
    } else if live.foreign.is_empty() {
        Err("the alias already has provisioned concurrency or autoscaling".to_owned())
    } else {
        Err(format!(
            "the alias already has autoscaling Trimtab did not set up ({})",
            live.foreign.join(", ")
        ))
    }
}

/// Settles a provisioned-concurrency change (several calls, one record) from the alias's live
/// state. All of it in place and allocated: applied; allocation still running: pending; none of
/// it: not applied; part of it, or a failed allocation: undo (provisioned concurrency bills by
/// the hour, so a half-made change is never left standing).
pub fn settle_provision(change: &ProvisionedChange, live: &ProvisionedLive) -> Settlement {
    if live.is_empty() {
        return Settlement::NotApplied("nothing is provisioned on the alias".to_owned());
    }
    if !live.foreign.is_empty() {
        return Settlement::Superseded(format!(
            "someone else has set up autoscaling on the alias since ({})",
            live.foreign.join(", ")
        ));
    }
    let complete = live.config.is_some()
        && live.target == Some((change.min_capacity, change.max_capacity))
        && live
            .policy_target_fraction
            .is_some_and(|t| (t - change.target_utilization_fraction).abs() < 1e-9)
        && live.scheduled == change.scheduled_actions;
    match (complete, live.config) {
        (true, Some((_, AllocationStatus::Ready))) => Settlement::Applied,
        (true, Some((_, AllocationStatus::InProgress))) => {
            Settlement::Pending("provisioned concurrency is still being allocated".to_owned())
        }
        (_, Some((_, AllocationStatus::Failed))) => {
            Settlement::Undo("the allocation of provisioned concurrency failed".to_owned())
        }
        _ => Settlement::Undo(format!(
            "only part of the change is in place (configuration: {}, scalable target: {}, policy: {}, scheduled actions: {} of {})",
            if live.config.is_some() { "yes" } else { "no" },
            live.target
                .map_or("no".to_owned(), |(lo, hi)| format!("{lo}..{hi}")),
            if live.policy_target_fraction.is_some() {
                "yes"
            } else {
                "no"
            },
            live.scheduled,
            change.scheduled_actions,
        )),
    }
}

/// Whether a provisioned-concurrency change may be undone: only over what it made (the same
/// range and policy), never over a range someone has since moved.
pub fn may_unprovision(change: &ProvisionedChange, live: &ProvisionedLive) -> RestoreVerdict {
    if !live.foreign.is_empty() {
        return RestoreVerdict::Superseded(format!(
            "someone else has set up autoscaling on the alias since ({})",
            live.foreign.join(", ")
        ));
    }
    let ours = |range: (u32, u32)| {
        range == (change.min_capacity, change.max_capacity)
            || live.scheduled_ranges.contains(&range)
    };
    if live.target.is_none_or(ours) {
        RestoreVerdict::Restore { moot: vec![] }
    } else {
        RestoreVerdict::Superseded(format!(
            "the scalable target is now {:?}, not {}..{} as Trimtab left it",
            live.target, change.min_capacity, change.max_capacity
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::RecordState;

    const BEFORE: FunctionSettings = FunctionSettings {
        memory_mb: 1024,
        timeout_s: 30,
    };
    const AFTER: FunctionSettings = FunctionSettings {
        memory_mb: 512,
        timeout_s: 10,
    };

    fn live(settings: FunctionSettings, update: UpdateStatus) -> LiveFunction {
        LiveFunction {
            settings,
            update,
            revision_id: Some("r".into()),
        }
    }

    #[test]
    fn a_change_is_settled_by_what_the_function_shows_not_by_what_the_call_said() {
        use UpdateStatus::*;
        let cases = [
            (Some(live(AFTER, Successful)), "applied"),
            (Some(live(AFTER, InProgress)), "pending"),
            (Some(live(BEFORE, InProgress)), "pending"),
            (Some(live(BEFORE, Successful)), "not_applied"),
            (Some(live(BEFORE, Failed("bad".into()))), "not_applied"),
            (
                Some(live(AFTER, Failed("a later deploy".into()))),
                "applied",
            ),
            (
                Some(live(
                    FunctionSettings {
                        memory_mb: 2048,
                        timeout_s: 30,
                    },
                    Successful,
                )),
                "superseded",
            ),
            (None, "superseded"),
        ];
        for (l, expected) in cases {
            let got = match settle_function_change(BEFORE, AFTER, l.as_ref()) {
                Settlement::Applied => "applied",
                Settlement::NotApplied(_) => "not_applied",
                Settlement::Pending(_) => "pending",
                Settlement::Superseded(_) => "superseded",
                Settlement::Undo(_) => "undo",
            };
            assert_eq!(got, expected, "{l:?}");
        }
    }

    fn record(id: &str, before: FunctionSettings, after: FunctionSettings) -> DecisionRecord {
        DecisionRecord {
            before,
            after,
            ..DecisionRecord::for_test(id, "f", RecordState::Applied)
        }
    }

    #[test]
    fn a_rollback_restores_only_over_trimtabs_own_after() {
        let a = record("a", BEFORE, AFTER);
        let ok = may_restore(&a, &[], &live(AFTER, UpdateStatus::Successful), false);
        assert_eq!(ok, RestoreVerdict::Restore { moot: vec![] });
        let moved = FunctionSettings {
            memory_mb: 512,
            timeout_s: 60,
        };
        let theirs = may_restore(&a, &[], &live(moved, UpdateStatus::Successful), false);
        assert!(matches!(theirs, RestoreVerdict::Superseded(r) if r.contains("512 MB / 60 s")));
        let forced = may_restore(&a, &[], &live(moved, UpdateStatus::Successful), true);
        assert_eq!(forced, RestoreVerdict::Restore { moot: vec![] });
        let busy = may_restore(&a, &[], &live(AFTER, UpdateStatus::InProgress), true);
        assert!(matches!(busy, RestoreVerdict::Busy(_)));
    }

    #[test]
    fn rolling_back_an_earlier_record_makes_trimtabs_later_ones_moot() {
        let third = FunctionSettings {
            memory_mb: 256,
            timeout_s: 10,
        };
        let a = record("a", BEFORE, AFTER);
        let b = record("b", AFTER, third);
        let v = may_restore(&a, &[&b], &live(third, UpdateStatus::Successful), false);
        assert_eq!(
            v,
            RestoreVerdict::Restore {
                moot: vec!["b".into()]
            }
        );
        // The function sits at a's after, but b should have moved it: someone put it back.
        let v = may_restore(&a, &[&b], &live(AFTER, UpdateStatus::Successful), false);
        assert!(matches!(v, RestoreVerdict::Superseded(_)));
    }

    fn pc() -> ProvisionedChange {
        ProvisionedChange {
            alias: "live".into(),
            min_capacity: 2,
            max_capacity: 10,
            target_utilization_fraction: 0.7,
            scheduled_actions: 0,
        }
    }

    #[test]
    fn a_provision_is_applied_only_when_whole_and_allocated_and_undone_when_half_made() {
        use AllocationStatus::*;
        let whole = |status| ProvisionedLive {
            config: Some((2, status)),
            target: Some((2, 10)),
            policy_target_fraction: Some(0.7),
            ..ProvisionedLive::default()
        };
        assert_eq!(settle_provision(&pc(), &whole(Ready)), Settlement::Applied);
        assert!(matches!(
            settle_provision(&pc(), &whole(InProgress)),
            Settlement::Pending(_)
        ));
        assert!(matches!(
            settle_provision(&pc(), &whole(Failed)),
            Settlement::Undo(_)
        ));
        let config_only = ProvisionedLive {
            config: Some((2, Ready)),
            ..ProvisionedLive::default()
        };
        assert!(
            matches!(settle_provision(&pc(), &config_only), Settlement::Undo(r) if r.contains("scalable target: no"))
        );
        assert!(matches!(
            settle_provision(&pc(), &ProvisionedLive::default()),
            Settlement::NotApplied(_)
        ));
        let moved = ProvisionedLive {
            target: Some((5, 50)),
            ..whole(Ready)
        };
        assert!(matches!(
            may_unprovision(&pc(), &moved),
            RestoreVerdict::Superseded(_)
        ));
        assert_eq!(
            may_unprovision(&pc(), &whole(Ready)),
            RestoreVerdict::Restore { moot: vec![] }
        );
        // Moved there by one of Trimtab's own scheduled actions: still Trimtab's to undo.
        let raised = ProvisionedLive {
            scheduled: 1,
            scheduled_ranges: vec![(5, 50)],
            ..moved.clone()
        };
        assert_eq!(
            may_unprovision(&pc(), &raised),
            RestoreVerdict::Restore { moot: vec![] }
        );
        // Someone else's policy on the alias: never provisioned over, never removed.
        let theirs = ProvisionedLive {
            foreign: vec!["team-policy".into()],
            ..whole(Ready)
        };
        assert!(may_provision(&theirs).is_err());
        assert!(may_provision(&ProvisionedLive::default()).is_ok());
        assert!(matches!(
            settle_provision(&pc(), &theirs),
            Settlement::Superseded(_)
        ));
        assert!(matches!(
            may_unprovision(&pc(), &theirs),
            RestoreVerdict::Superseded(_)
        ));
        // A scheduled action still missing: not yet whole.
        let with_schedule = ProvisionedChange {
            scheduled_actions: 1,
            ..pc()
        };
        assert!(matches!(
            settle_provision(&with_schedule, &whole(Ready)),
            Settlement::Undo(_)
        ));
    }
}
