//! Undoing a change, compare-and-set: Trimtab restores a recorded `before` only over its own
//! `after` (or, for an operator, over its own later changes, which the rollback makes moot), and
//! sends the restore conditional on the `RevisionId` it just read. A change someone else has
//! made since is never overwritten: the record becomes `superseded` instead. Used by
//! verification (a regression) and by the operator's `rollback`.

use std::time::SystemTime;

use serde::Serialize;
use trimtab_act::{Clock, Invocation, Lease, LeaseError, failpoint, new_run_id};
use trimtab_aws::Clients;
use trimtab_aws::changes;
use trimtab_core::actuation::{RestoreVerdict, Settlement, may_restore, may_unprovision};
use trimtab_core::records::{DecisionRecord, Health, RecordState};

use crate::protocol::{Ctx, JOB, change_and_settle, settle_into, table};
use crate::{JobConfig, JobError};

/// How an attempt to undo a change ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Undo {
    /// Restored; the rollback record, and Trimtab's later records it made moot.
    Restored(Box<DecisionRecord>, Vec<String>),
    /// Not restored: someone else changed the function since (the record is now superseded).
    Superseded(String),
    /// Not now: an update is in flight, or the run may start no more changes.
    Deferred(String),
    /// Tried and refused or failed (the rollback record says so); the change is still in force.
    Failed(String),
}

fn rollback_record(
    ctx: &Ctx<'_>,
    original: &DecisionRecord,
    reason: &str,
    before: trimtab_core::records::FunctionSettings,
    revision: Option<String>,
) -> DecisionRecord {
    let now_s = ctx.clock.now_s();
    DecisionRecord {
        record_id: DecisionRecord::id(now_s, ctx.run_id),
        function_name: original.function_name.clone(),
        run_id: ctx.run_id.to_owned(),
        created_at_epoch_s: now_s,
        before,
        after: if original.provisioned.is_some() {
            before
        } else {
            original.before
        },
        evidence: Health::default(),
        predicted_duration_ms: None,
        monthly_savings_usd: -original.monthly_savings_usd,
        confidence: 1.0,
        reason: format!("rollback of {}: {reason}", original.record_id),
        state: RecordState::Pending,
        state_reason: None,
        applied_at_epoch_s: None,
        updated_at_epoch_s: now_s,
        rollback_of: Some(original.record_id.clone()),
        provisioned: original.provisioned.clone(),
        revision_before: revision,
        revision_after: None,
        requested_by: ctx.requested_by.map(ToOwned::to_owned),
        archived: false,
        walk_start: None,
        prediction_error_pct: None,
        canary: None,
    }
}

/// Undoes `original` if it is still Trimtab's to undo. `later` are Trimtab's newer records of
/// the same function still in force (operator rollback only), newest first.
pub(crate) async fn restore(
    ctx: &Ctx<'_>,
    original: &DecisionRecord,
    later: &[&DecisionRecord],
    reason: &str,
    force: bool,
) -> Result<Undo, JobError> {
    if let Err(why) = ctx.may_start().await {
        return Ok(Undo::Deferred(why));
    }
    if let Some(p) = &original.provisioned {
        return unprovision(ctx, original, &p.alias, reason, force).await;
    }
    if let Some(c) = &original.canary {
        return uncanary(ctx, original, c, reason, later).await;
    }
    let function = &original.function_name;
    let live = match changes::read_function(ctx.c, function).await {
        Ok(Some(live)) => live,
        Ok(None) => {
            let why = "the function no longer exists".to_owned();
            supersede(ctx, original, &why).await?;
            return Ok(Undo::Superseded(why));
        }
        Err(e) => return Ok(Undo::Failed(format!("could not read the function: {e}"))),
    };
    let moot = match may_restore(original, later, &live, force) {
        RestoreVerdict::Busy(why) => return Ok(Undo::Deferred(why)),
        RestoreVerdict::Superseded(why) => {
            supersede(ctx, original, &why).await?;
            return Ok(Undo::Superseded(why));
        }
        RestoreVerdict::Restore { moot } => moot,
    };
    let mut undo = rollback_record(ctx, original, reason, live.settings, live.revision_id);
    ctx.table.create(ctx.c, &undo).await?;
    failpoint("rightsizing.rollback.after_record");
    let (settlement, revision) =
        change_and_settle(ctx.c, &undo, original.before, "rightsizing.rollback").await;
    settle_into(
        &mut undo,
        &settlement,
        revision,
        ctx.clock.now_s(),
        "restored the recorded configuration",
    );
    ctx.save(&undo, RecordState::Pending).await?;
    match settlement {
        Settlement::Applied => {
            finish_rollback(ctx, original, &undo, reason, later).await?;
            Ok(Undo::Restored(Box::new(undo), moot))
        }
        Settlement::Pending(why) => Ok(Undo::Deferred(why)),
        Settlement::Superseded(why) | Settlement::Undo(why) => {
            supersede(ctx, original, &why).await?;
            Ok(Undo::Superseded(why))
        }
        Settlement::NotApplied(why) => Ok(Undo::Failed(why)),
    }
}

/// Undoes a canary, record first: the alias back to the primary version with no routing, and
/// `$LATEST` back to its size if a promotion moved it.
async fn uncanary(
    ctx: &Ctx<'_>,
    original: &DecisionRecord,
    c: &trimtab_core::records::CanaryChange,
    reason: &str,
    later: &[&DecisionRecord],
) -> Result<Undo, JobError> {
    let mut undo = rollback_record(ctx, original, reason, original.after, None);
    undo.canary = Some(c.clone());
    ctx.table.create(ctx.c, &undo).await?;
    let settlement = match crate::canary::revert(ctx, &undo, c).await {
        Ok(()) => Settlement::Applied,
        Err(e) => Settlement::Pending(format!("the canary is not yet undone: {e}")),
    };
    settle_into(
        &mut undo,
        &settlement,
        None,
        ctx.clock.now_s(),
        "the alias routes to the primary version again",
    );
    ctx.save(&undo, RecordState::Pending).await?;
    match settlement {
        Settlement::Applied => {
            finish_rollback(ctx, original, &undo, reason, later).await?;
            Ok(Undo::Restored(Box::new(undo), Vec::new()))
        }
        Settlement::Pending(why) => Ok(Undo::Deferred(why)),
        _ => Ok(Undo::Failed("unexpected settlement".into())),
    }
}

/// Marks `original` rolled back by `undo` and Trimtab's `later` records moot.
pub(crate) async fn finish_rollback(
    ctx: &Ctx<'_>,
    original: &DecisionRecord,
    undo: &DecisionRecord,
    reason: &str,
    later: &[&DecisionRecord],
) -> Result<(), JobError> {
    let mut rolled = original.clone();
    ctx.mark(
        &mut rolled,
        RecordState::RolledBack,
        format!("{reason} (rollback record {})", undo.record_id),
    )
    .await?;
    for r in later {
        let mut m = (*r).clone();
        ctx.mark(
            &mut m,
            RecordState::Superseded,
            format!(
                "made moot by the rollback of {} (record {})",
                original.record_id, undo.record_id
            ),
        )
        .await?;
    }
    Ok(())
}

async fn supersede(ctx: &Ctx<'_>, r: &DecisionRecord, why: &str) -> Result<(), JobError> {
    if !r.state.in_force() {
        return Ok(());
    }
    let mut s = r.clone();
    ctx.mark(&mut s, RecordState::Superseded, why.to_owned())
        .await
}

/// Undoes a provisioned-concurrency change: only over the range Trimtab left.
async fn unprovision(
    ctx: &Ctx<'_>,
    original: &DecisionRecord,
    alias: &str,
    reason: &str,
    force: bool,
) -> Result<Undo, JobError> {
    let function = &original.function_name;
    let Some(change) = &original.provisioned else {
        return Ok(Undo::Failed("not a provisioned-concurrency record".into()));
    };
    let live = match changes::provisioned_live(ctx.c, function, alias).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            let why = "the alias or the function no longer exists".to_owned();
            supersede(ctx, original, &why).await?;
            return Ok(Undo::Superseded(why));
        }
        Err(e) => return Ok(Undo::Failed(format!("could not read the alias: {e}"))),
    };
    if let RestoreVerdict::Superseded(why) = may_unprovision(change, &live)
        && !force
    {
        supersede(ctx, original, &why).await?;
        return Ok(Undo::Superseded(why));
    }
    let mut undo = rollback_record(ctx, original, reason, original.after, None);
    ctx.table.create(ctx.c, &undo).await?;
    failpoint("rightsizing.rollback.after_record");
    let removed = changes::unprovision(ctx.c, function, alias).await;
    let gone = changes::provisioned_live(ctx.c, function, alias)
        .await
        .is_ok_and(|l| l.is_none_or(|l| l.is_empty()));
    let settlement = match (removed, gone) {
        (_, true) => Settlement::Applied,
        (Err(e), false) => Settlement::NotApplied(e.to_string()),
        (Ok(()), false) => Settlement::Pending("provisioned concurrency still present".into()),
    };
    settle_into(
        &mut undo,
        &settlement,
        None,
        ctx.clock.now_s(),
        "removed the provisioned concurrency",
    );
    ctx.save(&undo, RecordState::Pending).await?;
    match settlement {
        Settlement::Applied => {
            finish_rollback(ctx, original, &undo, reason, &[]).await?;
            Ok(Undo::Restored(Box::new(undo), vec![]))
        }
        Settlement::NotApplied(why) => Ok(Undo::Failed(why)),
        Settlement::Pending(why) | Settlement::Superseded(why) | Settlement::Undo(why) => {
            Ok(Undo::Deferred(why))
        }
    }
}

/// What an operator's rollback did.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub job: &'static str,
    pub action: &'static str,
    /// The rollback record.
    pub record: DecisionRecord,
    /// Trimtab's later records of the function the rollback made moot.
    pub moot: Vec<String>,
    pub notes: Vec<String>,
}

/// Restores a function's recorded configuration: the `before` of `record_id`, or of its latest
/// change still in force. Takes the right-sizing lease. A record whose function someone else
/// has changed since is refused unless `force`.
pub async fn rollback(
    c: &Clients,
    config: &JobConfig,
    inv: &Invocation,
    function: &str,
    record_id: Option<&str>,
    force: bool,
    now: SystemTime,
) -> Result<RollbackReport, JobError> {
    let table = table(config, "rollback")?;
    let clock = Clock::starting_at(now);
    let run_id = inv.run_id.clone().unwrap_or_else(|| new_run_id(now));
    let lease = match Lease::acquire(c, &table, JOB, &run_id, clock).await {
        Ok(l) => l,
        Err(LeaseError::Aws(e)) => return Err(e.into()),
        Err(e) => return Err(JobError::Refused(e.to_string())),
    };
    let ctx = Ctx {
        c,
        table: &table,
        run_id: &run_id,
        requested_by: inv.requested_by.as_deref(),
        clock,
        deadline: inv.deadline,
        lease: &lease,
    };
    let outcome = operator_rollback(&ctx, function, record_id, force).await;
    let released = lease.release().await;
    let mut report = outcome?;
    if let Err(e) = released {
        report
            .notes
            .push(format!("lease not released (it expires by itself): {e}"));
    }
    Ok(report)
}

async fn operator_rollback(
    ctx: &Ctx<'_>,
    function: &str,
    record_id: Option<&str>,
    force: bool,
) -> Result<RollbackReport, JobError> {
    let records = ctx.table.history(ctx.c, function).await?;
    let changes_only = |r: &&DecisionRecord| r.rollback_of.is_none();
    let target = match record_id {
        Some(id) => records
            .iter()
            .find(|r| r.record_id == id)
            .ok_or_else(|| JobError::NotFound(format!("no record {id} for function {function}")))?,
        None => records
            .iter()
            .filter(changes_only)
            .find(|r| r.state.in_force() || (force && r.state == RecordState::Superseded))
            .ok_or_else(|| {
                JobError::NotFound(format!(
                    "function {function} has no change in force to roll back"
                ))
            })?,
    };
    match target.state {
        RecordState::Applied | RecordState::Verified => {}
        RecordState::Superseded if force => {}
        RecordState::Superseded => {
            return Err(JobError::Refused(format!(
                "record {} is superseded ({}): the function was changed outside Trimtab since; pass \"force\": true to restore its before anyway",
                target.record_id,
                target.state_reason.as_deref().unwrap_or("changed since")
            )));
        }
        other => {
            return Err(JobError::NotFound(format!(
                "record {} is {}, not in force: nothing to roll back",
                target.record_id,
                other.name()
            )));
        }
    }
    let same_kind = |r: &&DecisionRecord| r.provisioned.is_some() == target.provisioned.is_some();
    let later: Vec<&DecisionRecord> = records
        .iter()
        .filter(changes_only)
        .filter(same_kind)
        .filter(|r| r.record_id > target.record_id && r.state.in_force())
        .collect();
    match restore(ctx, target, &later, "operator rollback", force).await? {
        Undo::Restored(record, moot) => Ok(RollbackReport {
            job: "rightsizing",
            action: "rollback",
            record: *record,
            moot,
            notes: Vec::new(),
        }),
        Undo::Superseded(why) => Err(JobError::Refused(format!(
            "not rolled back: {why}; pass \"force\": true to restore record {}'s before anyway",
            target.record_id
        ))),
        Undo::Deferred(why) | Undo::Failed(why) => {
            Err(JobError::Refused(format!("not rolled back: {why}")))
        }
    }
}

/// Every decision record of a function, newest first.
pub async fn history(
    c: &Clients,
    config: &JobConfig,
    function: &str,
) -> Result<Vec<DecisionRecord>, JobError> {
    Ok(table(config, "history")?.history(c, function).await?)
}
