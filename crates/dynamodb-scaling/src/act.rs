//! Apply mode for DynamoDB autoscaling, under the same protocol as right-sizing: the job's lease,
//! pending change records settled from what Application Auto Scaling holds, each write recorded
//! first and settled from live state (never from what the call returned), one failed write
//! reported and the rest carried on, and no write started too close to the deadline.

use std::time::{Duration, SystemTime};

use trimtab_act::{Clock, Invocation, Lease, LeaseError, failpoint};
use trimtab_aws::decisions::DecisionTable;
use trimtab_aws::dynamodb as ddb;
use trimtab_aws::{AwsError, Clients};
use trimtab_core::actuation::Settlement;
use trimtab_core::records::{ChangeRecord, DecisionRecord, RecordState};
use trimtab_core::scaling_plan::{Desired, Step, plan};
use trimtab_lambda::{EventError, JobError};

use crate::{JobConfig, Report};

/// The lease and the open-record index key of this job.
pub const JOB: &str = "dynamodb-scaling";
/// What one write needs, when calls answer within an attempt: the call, a live read, two record
/// writes.
const WRITE_BUDGET: Duration = Duration::from_secs(60);

struct Ctx<'a> {
    c: &'a Clients,
    table: &'a DecisionTable,
    clock: Clock,
}

impl Ctx<'_> {
    async fn settle_and_save(
        &self,
        r: &mut ChangeRecord,
        settlement: Settlement,
        applied: &str,
    ) -> Result<(), AwsError> {
        let was = r.state;
        r.updated_at_epoch_s = self.clock.now_s();
        match settlement {
            Settlement::Applied => {
                r.state = RecordState::Applied;
                r.state_reason = Some(applied.to_owned());
            }
            Settlement::NotApplied(why) => {
                r.state = RecordState::NotApplied;
                r.state_reason = Some(why);
            }
            Settlement::Pending(why) => r.state_reason = Some(why),
            Settlement::Superseded(why) | Settlement::Undo(why) => {
                r.state = RecordState::Superseded;
                r.state_reason = Some(why);
            }
        }
        self.table.update(self.c, r, was).await
    }
}

/// Carries out `steps` under the lease, after settling what an interrupted run left pending.
/// Fills the report's `applied`, `reconciled`, `errors` and `skipped`.
pub(crate) async fn apply(
    clients: &Clients,
    config: &JobConfig,
    invocation: &Invocation,
    run_id: &str,
    desired: &[Desired],
    now: SystemTime,
    report: &mut Report,
) -> Result<(), JobError> {
    let Some(table) = config.table_name.as_ref().map(DecisionTable::new) else {
        return Err(EventError::new(
            "mode",
            "apply needs the decision table (TRIMTAB_TABLE) to record its changes",
        )
        .into());
    };
    let clock = Clock::starting_at(now);
    let lease = match Lease::acquire(clients, &table, JOB, run_id, clock).await {
        Ok(l) => l,
        Err(LeaseError::Aws(e)) => return Err(e.into()),
        Err(held) => {
            report.skipped = Some(format!("{held}: this run changed nothing"));
            return Ok(());
        }
    };
    let ctx = Ctx {
        c: clients,
        table: &table,
        clock,
    };
    let outcome = under_lease(&ctx, invocation, &lease, run_id, desired, report).await;
    let released = lease.release().await;
    outcome?;
    if let Err(e) = released {
        report
            .notes
            .push(format!("lease not released (it expires by itself): {e}"));
    }
    Ok(())
}

async fn under_lease(
    ctx: &Ctx<'_>,
    invocation: &Invocation,
    lease: &Lease,
    run_id: &str,
    desired: &[Desired],
    report: &mut Report,
) -> Result<(), JobError> {
    report.reconciled = reconcile(ctx, &mut report.errors).await?;
    let existing = ddb::existing(ctx.c, None).await?;
    let outcome = plan(desired, &existing);
    report.plan = outcome.steps.iter().map(Step::describe).collect();
    report.foreign = outcome.foreign;
    let steps = &outcome.steps;
    for (k, step) in steps.iter().enumerate() {
        if !invocation.deadline.allows(WRITE_BUDGET) {
            report.notes.push(format!(
                "{} writes left for the next run: the invocation's deadline is near",
                steps.len() - k
            ));
            break;
        }
        if let Err(e) = lease.keep(WRITE_BUDGET).await {
            report.errors.push(format!("stopped: {e}"));
            break;
        }
        let now_s = ctx.clock.now_s();
        let mut record = ChangeRecord {
            record_id: DecisionRecord::id(now_s, &format!("{run_id}-{k}")),
            job: JOB.into(),
            resource: step.resource(),
            run_id: run_id.to_owned(),
            created_at_epoch_s: now_s,
            before: step.before(),
            after: serde_json::to_value(step).unwrap_or_default(),
            reason: step.describe(),
            state: RecordState::Pending,
            state_reason: None,
            updated_at_epoch_s: now_s,
            requested_by: invocation.requested_by.clone(),
        };
        ctx.table.create(ctx.c, &record).await?;
        failpoint("dynamodb.after_record");
        let made = carry_out(ctx.c, step).await;
        failpoint("dynamodb.after_write");
        let settlement = match &made {
            Ok(()) => Settlement::Applied,
            Err(e) => match live_settlement(ctx.c, step).await {
                Ok(Settlement::NotApplied(why)) => Settlement::NotApplied(format!("{e}; {why}")),
                Ok(s) => s,
                Err(read) => Settlement::Pending(format!(
                    "{e}; what happened could not be read ({read}): the next run settles it"
                )),
            },
        };
        match &settlement {
            Settlement::Applied => report.applied.push(step.describe()),
            _ => report.errors.push(format!(
                "{}: {}",
                step.resource(),
                made.as_ref()
                    .err()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            )),
        }
        ctx.settle_and_save(&mut record, settlement, "written")
            .await?;
        tracing::info!(step = %step.describe(), state = record.state.name(), "write settled");
    }
    Ok(())
}

/// Settles a write from what Application Auto Scaling holds for its target now.
async fn live_settlement(c: &Clients, step: &Step) -> Result<Settlement, AwsError> {
    let key = step.key();
    let live = ddb::existing(c, Some(&key)).await?;
    Ok(step.settle(&live))
}

/// Settles every change record a crashed run left pending. A record whose target cannot be read
/// stays pending (noted in `errors`).
async fn reconcile(ctx: &Ctx<'_>, errors: &mut Vec<String>) -> Result<Vec<ChangeRecord>, JobError> {
    let pending: Vec<ChangeRecord> = ctx.table.open(ctx.c, JOB).await?;
    let mut out = Vec::new();
    for mut r in pending {
        let Ok(step) = serde_json::from_value::<Step>(r.after.clone()) else {
            errors.push(format!("record {}: not a recorded write", r.record_id));
            continue;
        };
        match live_settlement(ctx.c, &step).await {
            Ok(s) => {
                let s = match s {
                    Settlement::NotApplied(why) => {
                        Settlement::NotApplied(format!("reconciled: {why}"))
                    }
                    other => other,
                };
                ctx.settle_and_save(
                    &mut r,
                    s,
                    "reconciled: the write was made before the run stopped",
                )
                .await?;
                out.push(r);
            }
            Err(e) => errors.push(format!(
                "record {} left pending: its target could not be read: {e}",
                r.record_id
            )),
        }
    }
    Ok(out)
}

async fn carry_out(clients: &Clients, step: &Step) -> Result<(), AwsError> {
    match step {
        Step::RegisterScalableTarget {
            resource_id,
            scalable_dimension,
            min_capacity,
            max_capacity,
            ..
        } => {
            ddb::register_target(
                clients,
                resource_id,
                scalable_dimension,
                *min_capacity,
                *max_capacity,
            )
            .await
        }
        Step::PutScalingPolicy {
            resource_id,
            scalable_dimension,
            dimension,
            policy_name,
            target_pct,
            ..
        } => {
            ddb::put_policy(
                clients,
                resource_id,
                scalable_dimension,
                *dimension,
                policy_name,
                *target_pct,
            )
            .await
        }
        Step::PutScheduledAction {
            resource_id,
            scalable_dimension,
            scheduled_action,
            ..
        } => {
            ddb::put_scheduled_action(clients, resource_id, scalable_dimension, scheduled_action)
                .await
        }
        Step::DeleteScheduledAction {
            resource_id,
            scalable_dimension,
            was,
        } => {
            ddb::delete_scheduled_action(clients, resource_id, scalable_dimension, &was.name).await
        }
    }
}
