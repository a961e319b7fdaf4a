//! Apply mode for DynamoDB autoscaling, under the same protocol as right-sizing: the job's lease,
//! pending change records settled from what Application Auto Scaling holds, each write recorded
//! first and settled from live state (never from what the call returned), one failed write
//! reported and the rest carried on, and no write started too close to the deadline.

use std::time::{Duration, SystemTime};

use trimtab_act::planned::Writer;
use trimtab_act::{Clock, Invocation, Lease, LeaseError};
use trimtab_aws::Clients;
use trimtab_aws::decisions::DecisionTable;
use trimtab_aws::dynamodb as ddb;
use trimtab_core::records::RecordState;
use trimtab_core::scaling_plan::{Desired, Step, plan};
use trimtab_lambda::{EventError, JobError};

use crate::{JobConfig, Report};

/// The lease and the open-record index key of this job.
pub const JOB: &str = "dynamodb-scaling";
/// What one write needs, when calls answer within an attempt: the call, a live read, two record
/// writes.
const WRITE_BUDGET: Duration = Duration::from_secs(60);

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
    let writer = Writer {
        c: clients,
        table: &table,
        clock,
        job: JOB,
        failpoints: "dynamodb",
        run_id,
        requested_by: invocation.requested_by.clone(),
    };
    let outcome = under_lease(&writer, invocation, &lease, desired, report).await;
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
    w: &Writer<'_>,
    invocation: &Invocation,
    lease: &Lease,
    desired: &[Desired],
    report: &mut Report,
) -> Result<(), JobError> {
    report.reconciled = w.reconcile(&mut report.errors).await?;
    let existing = ddb::existing(w.c, None).await?;
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
        let (record, failed) = w.write(k, step).await?;
        if record.state == RecordState::Applied {
            report.applied.push(step.describe());
        } else {
            let why = failed.map(|e| e.to_string()).unwrap_or_default();
            report.errors.push(format!("{}: {why}", step.resource()));
        }
    }
    Ok(())
}
