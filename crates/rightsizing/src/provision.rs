//! Provisioned concurrency under the actuation protocol: one record over several calls (the
//! configuration, the scalable target, the target-tracking policy, the scheduled actions), only
//! on an alias that carries nothing yet, so that undoing it never removes anyone else's setup;
//! undone if half made (it bills by the hour); applied once all of it is in place and allocated.

use std::time::Duration;

use trimtab_act::failpoint;
use trimtab_act::planned::Writer;
use trimtab_aws::changes::{self, ProvisionStep};
use trimtab_aws::dynamodb as autoscaling;
use trimtab_core::actuation::{
    AllocationStatus, ProvisionedLive, Settlement, may_provision, settle_provision,
};
use trimtab_core::apply::{ProvisionFacts, provision_refusal, reschedule_target};
use trimtab_core::concurrency::ProvisionedAdvice;
use trimtab_core::records::{DecisionRecord, ProvisionedChange, RecordState};
use trimtab_core::scaling_plan::{self, TargetKey};
use trimtab_core::tags::ALIAS_TAG;

use crate::JobError;
use crate::analysis::Judged;
use crate::protocol::{Ctx, Open, settle_into};
use crate::request::Plan;

/// The longest Trimtab waits for provisioned concurrency to be allocated.
const ALLOCATION_WAIT: Duration = Duration::from_secs(60);
/// What a provision needs at most: each call's attempt (with retries for a target AWS is still
/// registering), the allocation wait, and an undo.
pub(crate) const PROVISION_BUDGET: Duration = Duration::from_secs(300);

/// Settles a pending provisioned-concurrency record (a change, or the rollback of one) from what
/// the alias shows now; a half-made change is removed. `Err`: the alias could not be read.
pub(crate) async fn settle_pending(
    ctx: &Ctx<'_>,
    r: &DecisionRecord,
    change: &ProvisionedChange,
) -> Result<Settlement, String> {
    let function = &r.function_name;
    let alias = &change.alias;
    let Some(live) = changes::provisioned_live(ctx.c, function, alias)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(Settlement::Superseded(
            "the alias or the function no longer exists".into(),
        ));
    };
    if r.rollback_of.is_some() {
        // The rollback removes everything: done once nothing is left.
        if live.is_empty() {
            return Ok(Settlement::Applied);
        }
        return Ok(
            match undo(ctx, function, alias, "the rollback was interrupted").await {
                Settlement::NotApplied(_) => Settlement::Applied,
                other => other,
            },
        );
    }
    Ok(match settle_provision(change, &live) {
        Settlement::Undo(why) => match ctx.may_start().await {
            Ok(()) => undo(ctx, function, alias, &why).await,
            Err(not_now) => Settlement::Pending(format!("{why}; not removed now: {not_now}")),
        },
        other => other,
    })
}

/// Removes what Trimtab made on the alias; `NotApplied` once nothing is left.
pub(crate) async fn undo(ctx: &Ctx<'_>, function: &str, alias: &str, why: &str) -> Settlement {
    let undone = changes::unprovision(ctx.c, function, alias).await;
    let left = changes::provisioned_live(ctx.c, function, alias).await;
    let empty = matches!(&left, Ok(None)) || matches!(&left, Ok(Some(l)) if l.is_empty());
    match (undone, empty) {
        (_, true) => Settlement::NotApplied(format!("{why}; what was made is removed")),
        (Err(e), false) => Settlement::Pending(format!("{why}; removing it failed: {e}")),
        (Ok(()), false) => Settlement::Pending(format!("{why}; removal not yet visible")),
    }
}

/// Provisioned concurrency, where advised and allowed, on the alias the function names by tag.
/// `not_allowed` says why apply mode may not touch the function at all, `held` why its changes
/// wait.
pub(crate) async fn provision_if_advised(
    ctx: &Ctx<'_>,
    plan: &Plan,
    row: &mut Judged,
    open: &Open,
    (not_allowed, held): (Option<&String>, Option<&String>),
) -> Result<(), JobError> {
    let Some(advice) = row
        .recommendation
        .concurrency
        .as_ref()
        .and_then(|x| x.provisioned.clone())
    else {
        return Ok(());
    };
    let f = &row.function;
    let facts = ProvisionFacts {
        function_name: &f.name,
        tags: &f.tags,
        not_allowed: not_allowed.map(String::as_str),
        held: held.map(String::as_str),
        open_records: &open.records,
        monthly_savings_usd: advice.on_demand_monthly_usd - advice.provisioned_monthly_usd,
    };
    match reschedule_target(&facts) {
        Ok(Some(change)) => return reschedule(ctx, row, &change, &advice).await,
        Ok(None) => {}
        Err(why) => {
            row.recommendation
                .reasons
                .push(format!("provisioned concurrency left as it is: {why}"));
            return Ok(());
        }
    }
    let mut skip = provision_refusal(&facts, &plan.guards);
    let alias = f.tags.get(ALIAS_TAG).cloned().unwrap_or_default();
    if skip.is_none() && !ctx.deadline.allows(PROVISION_BUDGET) {
        skip = Some("the invocation's deadline is near: left for the next run".into());
    }
    if skip.is_none() {
        skip = ctx.may_start().await.err();
    }
    if skip.is_none() {
        // Only an alias that carries nothing: what Trimtab undoes is then only its own.
        skip = match changes::provisioned_live(ctx.c, &f.name, &alias).await {
            Ok(None) => Some(format!("alias {alias} does not exist")),
            Ok(Some(live)) => may_provision(&live).err(),
            Err(e) => Some(format!("alias {alias} could not be read: {e}")),
        };
    }
    if let Some(why) = skip {
        row.recommendation
            .reasons
            .push(format!("provisioned concurrency not applied: {why}"));
        return Ok(());
    }
    let record = new_record(ctx, row, &alias, &advice);
    let r = provision(ctx, record, &alias, &advice).await?;
    row.recommendation.reasons.push(match r.state {
        RecordState::Applied => format!(
            "provisioned concurrency {}..{} at {:.0}% target on {alias} (record {})",
            advice.min_capacity,
            advice.max_capacity,
            100.0 * advice.target_utilization_fraction,
            r.record_id
        ),
        _ => format!(
            "provisioned concurrency not applied: {} (record {}, {})",
            r.state_reason.as_deref().unwrap_or("unknown"),
            r.record_id,
            r.state.name()
        ),
    });
    Ok(())
}

/// The job key of the scheduled-action writes on aliases Trimtab provisioned (change records,
/// as DynamoDB's autoscaling writes).
pub(crate) const SCHEDULES_JOB: &str = "rightsizing-schedules";

/// The writer of those records.
pub(crate) fn schedule_writer<'a>(ctx: &'a Ctx<'a>) -> Writer<'a> {
    Writer {
        c: ctx.c,
        table: ctx.table,
        clock: ctx.clock,
        job: SCHEDULES_JOB,
        failpoints: "rightsizing.schedule",
        run_id: ctx.run_id,
        requested_by: ctx.requested_by.map(ToOwned::to_owned),
    }
}

/// Brings the scheduled actions on an alias Trimtab provisioned to the forecast's: each of
/// Trimtab's own (`trimtab-`) put where missing or different and deleted where no longer wanted,
/// and the provision's range put back where no action that stays holds the one a removed raise
/// left; one change record each. Nothing when all is in step, and nothing at all while someone
/// else's autoscaling is on the alias.
async fn reschedule(
    ctx: &Ctx<'_>,
    row: &mut Judged,
    change: &ProvisionedChange,
    advice: &ProvisionedAdvice,
) -> Result<(), JobError> {
    let f = &row.function;
    let reasons = &mut row.recommendation.reasons;
    let alias = &change.alias;
    let key: TargetKey = (
        changes::alias_resource_id(&f.name, alias),
        "lambda:function:ProvisionedConcurrency".to_owned(),
    );
    let live = match autoscaling::existing(ctx.c, Some(&key)).await {
        Ok(e) => e,
        Err(e) => {
            reasons.push(format!("scheduled actions not read, left as they are: {e}"));
            return Ok(());
        }
    };
    let base = (
        f64::from(change.min_capacity),
        f64::from(change.max_capacity),
    );
    let steps = match scaling_plan::reschedule(&key, &advice.schedule, &live, base) {
        Ok(s) if s.is_empty() => return Ok(()),
        Ok(s) => s,
        Err(why) => {
            reasons.push(format!(
                "scheduled actions on {alias} left as they are: {why}"
            ));
            return Ok(());
        }
    };
    if let Err(why) = ctx.may_start().await {
        reasons.push(format!(
            "scheduled actions not brought to the forecast: {why}"
        ));
        return Ok(());
    }
    let writer = schedule_writer(ctx);
    for (k, step) in steps.iter().enumerate() {
        let (record, failed) = writer.write(k, step).await?;
        reasons.push(match (record.state, failed) {
            (RecordState::Applied, _) => format!(
                "scheduled action brought to the forecast: {} (record {})",
                step.describe(),
                record.record_id
            ),
            (state, e) => format!(
                "scheduled action not written: {} ({}{}, record {})",
                step.describe(),
                state.name(),
                e.map(|e| format!(": {e}")).unwrap_or_default(),
                record.record_id
            ),
        });
    }
    Ok(())
}

fn new_record(
    ctx: &Ctx<'_>,
    row: &Judged,
    alias: &str,
    advice: &ProvisionedAdvice,
) -> DecisionRecord {
    let f = &row.function;
    let now_s = ctx.clock.now_s();
    let settings = trimtab_core::records::FunctionSettings {
        memory_mb: f.memory_mb,
        timeout_s: f.timeout_s,
    };
    DecisionRecord {
        record_id: DecisionRecord::id(now_s, &format!("{}-pc", ctx.run_id)),
        function_name: f.name.clone(),
        run_id: ctx.run_id.to_owned(),
        created_at_epoch_s: now_s,
        before: settings,
        after: settings,
        evidence: row.health,
        predicted_duration_ms: None,
        monthly_savings_usd: advice.on_demand_monthly_usd - advice.provisioned_monthly_usd,
        confidence: row.recommendation.confidence,
        reason: advice.reason.clone(),
        state: RecordState::Pending,
        state_reason: None,
        applied_at_epoch_s: None,
        updated_at_epoch_s: now_s,
        rollback_of: None,
        provisioned: Some(ProvisionedChange {
            alias: alias.to_owned(),
            min_capacity: advice.min_capacity,
            max_capacity: advice.max_capacity,
            target_utilization_fraction: advice.target_utilization_fraction,
            scheduled_actions: advice.schedule.len(),
        }),
        revision_before: None,
        revision_after: None,
        requested_by: ctx.requested_by.map(ToOwned::to_owned),
        archived: false,
        walk_start: None,
        prediction_error_pct: None,
        canary: None,
    }
}

/// Makes the calls, record first; undoes a half-made provision; settles from the alias.
async fn provision(
    ctx: &Ctx<'_>,
    mut record: DecisionRecord,
    alias: &str,
    advice: &ProvisionedAdvice,
) -> Result<DecisionRecord, JobError> {
    let function = record.function_name.clone();
    ctx.table.create(ctx.c, &record).await?;
    failpoint("rightsizing.provision.after_record");
    let mut failed = None;
    for (n, step) in ProvisionStep::all(advice).into_iter().enumerate() {
        if let Err(e) = changes::provision_step(ctx.c, &function, alias, advice, step).await {
            tracing::warn!(%function, step = %step.name(), error = %e, "provisioning failed; undoing");
            failed = Some(
                undo(
                    ctx,
                    &function,
                    alias,
                    &format!("{} failed: {e}", step.name()),
                )
                .await,
            );
            break;
        }
        failpoint(&format!("rightsizing.provision.after_step{n}"));
    }
    let settlement = match (failed, &record.provisioned) {
        (Some(s), _) => s,
        (None, None) => Settlement::NotApplied("not a provisioned-concurrency record".into()),
        (None, Some(change)) => match wait_for_allocation(ctx, &function, alias, change).await {
            Err(e) => Settlement::Pending(format!(
                "the alias could not be read after provisioning ({e}); the next run settles it"
            )),
            Ok(None) => Settlement::Superseded("the alias no longer exists".into()),
            Ok(Some(live)) => match settle_provision(change, &live) {
                Settlement::Undo(why) => undo(ctx, &function, alias, &why).await,
                other => other,
            },
        },
    };
    settle_into(
        &mut record,
        &settlement,
        None,
        ctx.clock.now_s(),
        "provisioned and allocated",
    );
    ctx.save(&record, RecordState::Pending).await?;
    Ok(record)
}

/// Polls the alias until the allocation is no longer in progress and everything made is visible
/// (Application Auto Scaling is eventually consistent), or `ALLOCATION_WAIT` passed (Lambda
/// offers no waiter for provisioned concurrency).
async fn wait_for_allocation(
    ctx: &Ctx<'_>,
    function: &str,
    alias: &str,
    change: &ProvisionedChange,
) -> Result<Option<ProvisionedLive>, trimtab_aws::AwsError> {
    let started = std::time::Instant::now();
    let mut delay = Duration::from_millis(500);
    loop {
        let live = changes::provisioned_live(ctx.c, function, alias).await?;
        let settling = live.as_ref().is_some_and(|l| {
            matches!(l.config, Some((_, AllocationStatus::InProgress)))
                || l.target.is_none()
                || l.policy_target_fraction.is_none()
                || l.scheduled < change.scheduled_actions
        });
        if !settling || started.elapsed() + delay > ALLOCATION_WAIT {
            return Ok(live);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
