//! The steps every right-sizing change goes through, shared by new changes, rollbacks and
//! reconciliation: the run's context, writing a record first, sending a change conditional on
//! the `RevisionId` just read, waiting for Lambda to apply it, and settling the record from what
//! the function then shows (never from what the call returned).

use std::collections::HashMap;
use std::time::Duration;

use trimtab_act::{Clock, Deadline, Lease, LeaseError, failpoint};
use trimtab_aws::decisions::{DecisionTable, RIGHTSIZING_JOB};
use trimtab_aws::{Clients, ErrorKind, changes};
use trimtab_core::actuation::{Settlement, settle_function_change};
use trimtab_core::records::{DecisionRecord, FunctionSettings, RecordState};

use crate::{JobConfig, JobError};

/// The lease and the open-record index key of right-sizing.
pub const JOB: &str = RIGHTSIZING_JOB;

pub(crate) fn table(config: &JobConfig, what: &'static str) -> Result<DecisionTable, JobError> {
    config
        .table_name
        .as_ref()
        .map(DecisionTable::new)
        .ok_or(JobError::NoDecisionTable(what))
}

/// The records a run must know about before it acts, settled.
#[derive(Debug, Default)]
pub(crate) struct Open {
    /// Every open record after this run's settlement.
    pub records: Vec<DecisionRecord>,
    /// Records left pending by an earlier run, and what they turned out to be.
    pub reconciled: Vec<DecisionRecord>,
    pub notes: Vec<String>,
}

impl Open {
    /// Memory changes applied and not yet verified.
    pub fn awaiting_verification(&self) -> Vec<&DecisionRecord> {
        self.records
            .iter()
            .filter(|r| {
                r.state == RecordState::Applied
                    && r.rollback_of.is_none()
                    && r.provisioned.is_none()
                    && r.canary.is_none()
            })
            .collect()
    }

    /// When each function's configuration last changed through Trimtab (a change or a
    /// rollback): it is judged on the metrics since.
    pub fn since(&self) -> HashMap<String, i64> {
        let mut since: HashMap<String, i64> = HashMap::new();
        for r in self.records.iter().filter(|r| r.provisioned.is_none()) {
            if matches!(
                r.state,
                RecordState::Applied | RecordState::Verified | RecordState::RolledBack
            ) {
                let e = since.entry(r.function_name.clone()).or_default();
                *e = (*e).max(r.effective_at_epoch_s());
            }
        }
        since
    }
}

/// The longest Trimtab waits for Lambda to finish one update (a function in a VPC can take a
/// minute); past it the record stays pending and the next run settles it.
pub(crate) const UPDATE_WAIT: Duration = Duration::from_secs(60);
/// What one memory change needs, end to end, when calls answer within an attempt: the update,
/// the wait, the read after it and two record writes. No change starts with less than this left
/// before the invocation's deadline.
pub(crate) const CHANGE_BUDGET: Duration = Duration::from_secs(150);

/// One apply run (or operator rollback): where it records, who it is, and its limits.
pub(crate) struct Ctx<'a> {
    pub c: &'a Clients,
    pub table: &'a DecisionTable,
    pub run_id: &'a str,
    pub requested_by: Option<&'a str>,
    pub clock: Clock,
    pub deadline: Deadline,
    pub lease: &'a Lease,
}

impl Ctx<'_> {
    /// Whether a new change may start: time left before the deadline, and the lease still ours.
    pub async fn may_start(&self) -> Result<(), String> {
        if !self.deadline.allows(CHANGE_BUDGET) {
            return Err(format!(
                "the invocation's deadline is less than {} s away: left for the next run",
                CHANGE_BUDGET.as_secs()
            ));
        }
        match self.lease.keep(CHANGE_BUDGET).await {
            Ok(()) => Ok(()),
            Err(LeaseError::Aws(e)) => Err(format!("the lease could not be renewed: {e}")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Writes a record's new state, conditional on the state it had.
    pub async fn save(&self, r: &DecisionRecord, was: RecordState) -> Result<(), JobError> {
        Ok(self.table.update(self.c, r, was).await?)
    }

    /// Moves a record to `state` with `reason`, written conditional on its current state.
    pub async fn mark(
        &self,
        r: &mut DecisionRecord,
        state: RecordState,
        reason: String,
    ) -> Result<(), JobError> {
        let was = r.state;
        r.state = state;
        r.state_reason = Some(reason);
        r.updated_at_epoch_s = self.clock.now_s();
        self.save(r, was).await
    }
}

/// Sends `to` to the function, conditional on `revision_id`, then settles `record` (before ->
/// after) from the function's live state once Lambda has finished (or `UPDATE_WAIT` passed).
/// Returns the settlement and the revision read at the end. `point` names the crash points.
pub(crate) async fn change_and_settle(
    c: &Clients,
    record: &DecisionRecord,
    to: FunctionSettings,
    point: &str,
) -> (Settlement, Option<String>) {
    let sent = changes::update_function(
        c,
        &record.function_name,
        (to.memory_mb, Some(to.timeout_s)),
        record.revision_before.as_deref(),
    )
    .await;
    failpoint(&format!("{point}.after_update"));
    if let Err(e) = &sent {
        tracing::warn!(function = %record.function_name, error = %e, "update call failed; reading what happened");
    }
    // Denied or gone: nothing changed. Any other outcome may have changed the function (a lost
    // answer whose retry met the update in progress, as a 409 or as a 412 for the revision the
    // first attempt moved): wait for Lambda, then look.
    let refused = sent
        .as_ref()
        .is_err_and(|e| matches!(e.kind, ErrorKind::AccessDenied | ErrorKind::NotFound));
    if !refused
        && let Err(e) = changes::wait_for_update(c, &record.function_name, UPDATE_WAIT).await
    {
        tracing::warn!(function = %record.function_name, error = %e, "waiting for the update failed");
    }
    let live = match changes::read_function(c, &record.function_name).await {
        Ok(live) => live,
        Err(e) => {
            return (
                Settlement::Pending(format!(
                    "the function could not be read after the change ({e}); the next run settles it"
                )),
                None,
            );
        }
    };
    let revision = live.as_ref().and_then(|l| l.revision_id.clone());
    let settlement = match settle_function_change(record.before, record.after, live.as_ref()) {
        Settlement::NotApplied(why) => Settlement::NotApplied(match sent {
            Err(e) => format!("{e}; {why}"),
            Ok(()) => why,
        }),
        other => other,
    };
    (settlement, revision)
}

/// Writes a settlement into a record (rollbacks are verified when they take effect).
pub(crate) fn settle_into(
    r: &mut DecisionRecord,
    settlement: &Settlement,
    revision: Option<String>,
    now_s: i64,
    applied_reason: &str,
) {
    r.updated_at_epoch_s = now_s;
    match settlement {
        Settlement::Applied => {
            r.state = if r.rollback_of.is_some() {
                RecordState::Verified
            } else {
                RecordState::Applied
            };
            r.applied_at_epoch_s = Some(r.applied_at_epoch_s.unwrap_or(now_s));
            r.revision_after = revision;
            r.state_reason = Some(applied_reason.to_owned());
        }
        Settlement::NotApplied(why) => {
            r.state = RecordState::NotApplied;
            r.state_reason = Some(why.clone());
        }
        Settlement::Pending(why) => {
            r.state = RecordState::Pending;
            r.state_reason = Some(why.clone());
        }
        Settlement::Superseded(why) | Settlement::Undo(why) => {
            r.state = RecordState::Superseded;
            r.state_reason = Some(why.clone());
        }
    }
}
