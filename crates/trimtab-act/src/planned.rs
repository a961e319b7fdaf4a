//! Application Auto Scaling writes under the protocol, one change record each: recorded first
//! (`pending`), made, then settled from what the target holds (never from what the call
//! returned); a run that stopped between the two leaves the record pending, and the next run
//! settles it from the live target. Shared by DynamoDB autoscaling and the scheduled actions of
//! provisioned concurrency.

use trimtab_aws::decisions::DecisionTable;
use trimtab_aws::dynamodb::{carry_out, settle_live};
use trimtab_aws::{AwsError, Clients};
use trimtab_core::actuation::Settlement;
use trimtab_core::records::{ChangeRecord, DecisionRecord, RecordState};
use trimtab_core::scaling_plan::Step;

use crate::{Clock, failpoint};

/// Who writes: where the records go, under which job (the open-record index key), and the
/// crash points' prefix.
#[derive(Debug)]
pub struct Writer<'a> {
    pub c: &'a Clients,
    pub table: &'a DecisionTable,
    pub clock: Clock,
    pub job: &'static str,
    /// `dynamodb` arms `dynamodb.after_record` and `dynamodb.after_write`.
    pub failpoints: &'static str,
    pub run_id: &'a str,
    pub requested_by: Option<String>,
}

impl Writer<'_> {
    /// Records `step` (the run's `k`th write), makes it and settles the record. Returns the
    /// settled record and the write's error, if any; `Err` only when a record could not be
    /// written.
    pub async fn write(
        &self,
        k: usize,
        step: &Step,
    ) -> Result<(ChangeRecord, Option<AwsError>), AwsError> {
        let now_s = self.clock.now_s();
        let mut record = ChangeRecord {
            record_id: DecisionRecord::id(now_s, &format!("{}-{k}", self.run_id)),
            job: self.job.into(),
            resource: step.resource(),
            run_id: self.run_id.to_owned(),
            created_at_epoch_s: now_s,
            before: step.before(),
            after: serde_json::to_value(step).unwrap_or_default(),
            reason: step.describe(),
            state: RecordState::Pending,
            state_reason: None,
            updated_at_epoch_s: now_s,
            requested_by: self.requested_by.clone(),
        };
        self.table.create(self.c, &record).await?;
        failpoint(&format!("{}.after_record", self.failpoints));
        let made = carry_out(self.c, step).await;
        failpoint(&format!("{}.after_write", self.failpoints));
        let settlement = match &made {
            Ok(()) => Settlement::Applied,
            Err(e) => match settle_live(self.c, step).await {
                Ok(Settlement::NotApplied(why)) => Settlement::NotApplied(format!("{e}; {why}")),
                Ok(s) => s,
                Err(read) => Settlement::Pending(format!(
                    "{e}; what happened could not be read ({read}): the next run settles it"
                )),
            },
        };
        self.settle_and_save(&mut record, settlement, "written")
            .await?;
        tracing::info!(step = %step.describe(), state = record.state.name(), "write settled");
        Ok((record, made.err()))
    }

    /// Settles every record of the job a stopped run left pending. A record whose target cannot
    /// be read stays pending (noted in `errors`).
    pub async fn reconcile(&self, errors: &mut Vec<String>) -> Result<Vec<ChangeRecord>, AwsError> {
        let pending: Vec<ChangeRecord> = self.table.open(self.c, self.job).await?;
        let mut out = Vec::new();
        for mut r in pending {
            let Ok(step) = serde_json::from_value::<Step>(r.after.clone()) else {
                errors.push(format!("record {}: not a recorded write", r.record_id));
                continue;
            };
            match settle_live(self.c, &step).await {
                Ok(s) => {
                    let s = match s {
                        Settlement::NotApplied(why) => {
                            Settlement::NotApplied(format!("reconciled: {why}"))
                        }
                        other => other,
                    };
                    self.settle_and_save(
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
