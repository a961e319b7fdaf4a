//! Acting on advice, safely: the run lease, reconciling records an interrupted run left pending,
//! verifying earlier changes (and rolling back the ones that hurt), applying new changes record
//! first, and the operator's rollback and history.
//!
//! The protocol for every change: write the decision record `Pending` (a conditional put), make
//! the change, mark the record `Applied`. A crash between the first two steps leaves a pending
//! record whose change never happened; between the last two, one whose change did. The next run
//! tells them apart by reading the function's live configuration.

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use trimtab_aws::decisions::DecisionTable;
use trimtab_aws::metrics::{self, Window};
use trimtab_aws::{Clients, changes};
use trimtab_core::apply::{
    Change, DecisionRecord, FunctionSettings, FunctionState, Health, ProvisionedChange,
    RecordState, Verdict, Verification, decide, verify,
};
use trimtab_core::rightsizing::Status;

use crate::job::Analysis;
use crate::request::Plan;
use crate::{JobConfig, JobError};

/// Tag that keeps Trimtab's hands off a function.
pub const LOCK_TAG: &str = "trimtab:lock";
/// Tag naming the alias provisioned concurrency goes on.
pub const ALIAS_TAG: &str = "trimtab:alias";
/// A lease outlives the longest Lambda run (900 s) by a minute.
const LEASE_S: i64 = 960;

fn epoch_s(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

pub(crate) fn table(config: &JobConfig, what: &'static str) -> Result<DecisionTable, JobError> {
    config
        .table_name
        .as_ref()
        .map(DecisionTable::new)
        .ok_or(JobError::NoDecisionTable(what))
}

/// Takes the right-sizing lease; `Some(why)` when another run holds it.
pub(crate) async fn take_lease(
    c: &Clients,
    table: &DecisionTable,
    run_id: &str,
    now_s: i64,
) -> Result<Option<String>, JobError> {
    if table
        .acquire_lease(c, "rightsizing", run_id, now_s, now_s + LEASE_S)
        .await?
    {
        Ok(None)
    } else {
        tracing::warn!(run_id, "another right-sizing run holds the lease; skipping");
        Ok(Some(
            "another right-sizing run holds the lease: this run changed nothing".to_owned(),
        ))
    }
}

pub(crate) async fn release_lease(
    c: &Clients,
    table: &DecisionTable,
    run_id: &str,
) -> Result<(), JobError> {
    Ok(table.release_lease(c, "rightsizing", run_id).await?)
}

/// The records a run must know about before it acts.
#[derive(Debug, Default)]
pub(crate) struct Open {
    /// Applied and not yet verified (rollbacks excluded: they are verified when made).
    pub applied: Vec<DecisionRecord>,
    /// Pending records found and settled by this run.
    pub reconciled: Vec<DecisionRecord>,
    /// Every record not `NotApplied`, for the per-function checks.
    pub all: Vec<DecisionRecord>,
}

/// Settles pending records: a function whose live configuration is the record's `after` was
/// changed (`Applied`); otherwise the change never happened (`NotApplied`).
pub(crate) async fn reconcile(
    c: &Clients,
    table: &DecisionTable,
    now: SystemTime,
) -> Result<Open, JobError> {
    use RecordState::*;
    let records = table
        .in_states(c, &[Pending, Applied, Verified, RolledBack])
        .await?;
    let mut open = Open::default();
    for mut r in records {
        if r.state == Pending {
            let was = r.clone();
            let live = match &r.provisioned {
                Some(_) => None,
                None => Some(
                    changes::get_configuration(c, &r.function_name)
                        .await?
                        .settings,
                ),
            };
            if live == Some(r.after) && r.after != r.before {
                r.state = Applied;
                r.applied_at_epoch_s = Some(r.created_at_epoch_s);
                r.state_reason =
                    Some("reconciled: the change was made before the run stopped".into());
            } else {
                r.state = NotApplied;
                r.state_reason = Some(match live {
                    Some(s) => format!(
                        "reconciled: the run stopped before the change; the function is at {} MB / {} s",
                        s.memory_mb, s.timeout_s
                    ),
                    None => "reconciled: the run stopped before provisioning was confirmed; re-planned next run".into(),
                });
            }
            r.updated_at_epoch_s = epoch_s(now);
            table.update(c, &r, was.state).await?;
            tracing::info!(function = %r.function_name, record = %r.record_id, state = ?r.state, "reconciled");
            open.reconciled.push(r.clone());
        }
        if r.state == Applied && r.rollback_of.is_none() && r.provisioned.is_none() {
            open.applied.push(r.clone());
        }
        if r.state != NotApplied {
            open.all.push(r);
        }
    }
    Ok(open)
}

/// One earlier change, judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerificationRow {
    pub function_name: String,
    pub record_id: String,
    pub verification: Verification,
    pub after: Health,
    /// The rollback this run made, if it made one.
    pub rollback_record_id: Option<String>,
}

/// Judges every applied, unverified change on the metrics since it was made: healthy ones are
/// marked `Verified`, regressed ones rolled back to their recorded configuration.
pub(crate) async fn verify_applied(
    c: &Clients,
    config: &JobConfig,
    table: &DecisionTable,
    plan: &Plan,
    applied: &[DecisionRecord],
    now: SystemTime,
    run_id: &str,
) -> Result<Vec<VerificationRow>, JobError> {
    let now_s = epoch_s(now) / 60 * 60;
    // One batched fetch per distinct start (changes made by one run share it).
    let mut by_start: BTreeMap<i64, Vec<&DecisionRecord>> = BTreeMap::new();
    for r in applied {
        let start = (r.applied_at_epoch_s.unwrap_or(r.created_at_epoch_s) + 59) / 60 * 60;
        by_start.entry(start).or_default().push(r);
    }
    let mut rows = Vec::new();
    for (start, records) in by_start {
        let healths: Vec<Health> = if now_s - start >= 60 {
            let names: Vec<&str> = records.iter().map(|r| r.function_name.as_str()).collect();
            let window = Window {
                start_epoch_s: start,
                end_epoch_s: now_s,
            };
            let (series, _) =
                metrics::fetch(c, metrics::health_queries(&names, plan.percentiles), window)
                    .await?;
            (0..records.len())
                .map(|i| metrics::health(&series, i))
                .collect()
        } else {
            vec![Health::default(); records.len()]
        };
        for (r, after) in records.into_iter().zip(healths) {
            let verification = verify(&r.evidence, &after, plan.settings.latency_guard_pct);
            let mut row = VerificationRow {
                function_name: r.function_name.clone(),
                record_id: r.record_id.clone(),
                verification: verification.clone(),
                after,
                rollback_record_id: None,
            };
            match verification {
                Verification::Wait(_) => {}
                Verification::Healthy => {
                    let mut v = r.clone();
                    v.state = RecordState::Verified;
                    v.state_reason = Some("verified: no regression since the change".into());
                    v.updated_at_epoch_s = epoch_s(now);
                    table.update(c, &v, RecordState::Applied).await?;
                }
                Verification::Regressed(why) => {
                    tracing::warn!(function = %r.function_name, record = %r.record_id, %why, "regressed; rolling back");
                    let undo = restore(
                        c,
                        config,
                        table,
                        r,
                        &format!("regressed: {why}"),
                        now,
                        run_id,
                    )
                    .await?;
                    row.rollback_record_id = Some(undo.record_id);
                }
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Undoes `original`, record first: a new record (`rollback_of`) is written pending, the recorded
/// `before` is restored, the new record is marked done and the original `RolledBack`.
async fn restore(
    c: &Clients,
    config: &JobConfig,
    table: &DecisionTable,
    original: &DecisionRecord,
    reason: &str,
    now: SystemTime,
    run_id: &str,
) -> Result<DecisionRecord, JobError> {
    let now_s = epoch_s(now);
    let live = changes::get_configuration(c, &original.function_name)
        .await?
        .settings;
    let mut undo = DecisionRecord {
        record_id: DecisionRecord::id(now_s, run_id),
        function_name: original.function_name.clone(),
        run_id: run_id.to_owned(),
        created_at_epoch_s: now_s,
        before: live,
        after: if original.provisioned.is_some() {
            live
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
    };
    table.create(c, &undo).await?;
    if config.faults.crash_after_record {
        return Err(JobError::Injected(
            "crash after writing the rollback record",
        ));
    }
    let done = match &original.provisioned {
        Some(p) => changes::unprovision(c, &original.function_name, &p.alias).await,
        None => changes::set_configuration(c, &original.function_name, original.before).await,
    };
    if let Err(e) = done {
        undo.state = RecordState::NotApplied;
        undo.state_reason = Some(e.to_string());
        table.update(c, &undo, RecordState::Pending).await?;
        return Err(e.into());
    }
    undo.state = RecordState::Verified;
    undo.applied_at_epoch_s = Some(now_s);
    undo.state_reason = Some("restored the recorded configuration".into());
    table.update(c, &undo, RecordState::Pending).await?;
    let mut rolled = original.clone();
    let expected = rolled.state;
    rolled.state = RecordState::RolledBack;
    rolled.state_reason = Some(format!("{reason} (rollback record {})", undo.record_id));
    rolled.updated_at_epoch_s = now_s;
    table.update(c, &rolled, expected).await?;
    Ok(undo)
}

/// Applies every recommendation that passes the guards, record first. Functions with a change
/// still awaiting verification, or rolled back within the lookback window, are left alone.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn apply(
    c: &Clients,
    config: &JobConfig,
    table: &DecisionTable,
    plan: &Plan,
    a: &mut Analysis,
    open: &Open,
    verifications: &[VerificationRow],
    now: SystemTime,
    run_id: &str,
) -> Result<(), JobError> {
    let now_s = epoch_s(now);
    let since = now_s - i64::from(plan.lookback_days) * 86_400;
    // Functions with a change in flight: waiting for verification, rolled back by this run, or
    // just settled after an interrupted run. Their next change waits for a later run.
    let mut held: HashMap<&str, String> = HashMap::new();
    for v in verifications {
        match &v.verification {
            Verification::Healthy => {}
            Verification::Wait(why) => {
                held.insert(
                    &v.function_name,
                    format!("the last change is awaiting verification ({why})"),
                );
            }
            Verification::Regressed(why) => {
                held.insert(&v.function_name, format!("rolled back by this run ({why})"));
            }
        }
    }
    for r in &open.reconciled {
        held.insert(
            &r.function_name,
            format!("record {} was just reconciled", r.record_id),
        );
    }
    for i in 0..a.recommendations.len() {
        let f = &a.functions[i];
        let name = f.name.clone();
        let history: Vec<&DecisionRecord> = open
            .all
            .iter()
            .filter(|r| r.function_name == name)
            .collect();
        let recent_rollback = history
            .iter()
            .find(|r| r.state == RecordState::RolledBack && r.updated_at_epoch_s >= since);
        let hold = if let Some(why) = held.get(name.as_str()) {
            Some(why.clone())
        } else {
            recent_rollback.map(|r| {
                format!(
                    "rolled back recently ({}); not retried within the lookback window",
                    r.record_id
                )
            })
        };
        let state = FunctionState {
            locked: f.tags.contains_key(LOCK_TAG),
            last_update_status: f.last_update_status.clone(),
        };
        let rec = &a.recommendations[i];
        let verdict = match &hold {
            Some(why) => Verdict::Skip(why.clone()),
            None => decide(rec, &state, &plan.guards),
        };
        match verdict {
            Verdict::Skip(why) => {
                if rec.status == Status::Recommended || hold.is_some() {
                    a.recommendations[i]
                        .reasons
                        .push(format!("not applied: {why}"));
                }
            }
            Verdict::Apply(change) => {
                let evidence = a.health[i];
                let record = new_record(&change, rec, evidence, now_s, run_id);
                let outcome = make(c, config, table, record, |c| {
                    let to = change.after;
                    let name = name.clone();
                    async move { changes::set_configuration(c, &name, to).await }
                })
                .await?;
                let row = &mut a.recommendations[i];
                match outcome {
                    Ok(r) => {
                        row.status = Status::Applied;
                        row.applied = Some(change.after);
                        row.reasons.push(format!(
                            "applied {} MB / {} s -> {} MB / {} s ({}; record {})",
                            change.before.memory_mb,
                            change.before.timeout_s,
                            change.after.memory_mb,
                            change.after.timeout_s,
                            change.reason,
                            r.record_id
                        ));
                    }
                    Err(why) => {
                        row.status = Status::Error;
                        row.reasons.push(format!("apply failed: {why}"));
                    }
                }
            }
        }
        // Provisioned concurrency, where advised, on the alias the function names by tag.
        let provisioned = a.recommendations[i]
            .concurrency
            .as_ref()
            .and_then(|x| x.provisioned.clone());
        let Some(advice) = provisioned else { continue };
        let already = history
            .iter()
            .any(|r| r.provisioned.is_some() && r.state != RecordState::RolledBack);
        let alias = f.tags.get(ALIAS_TAG).cloned();
        let saving = advice.on_demand_monthly_usd - advice.provisioned_monthly_usd;
        let skip = if state.locked {
            Some("locked".to_owned())
        } else if already {
            Some("already provisioned by an earlier record".to_owned())
        } else if hold.is_some() {
            hold.clone()
        } else if alias.is_none() {
            Some(format!("no {ALIAS_TAG} tag naming the alias to provision"))
        } else if saving < plan.guards.min_monthly_savings_usd
            && !f.tags.contains_key(crate::job::LATENCY_OBJECTIVE_TAG)
        {
            Some(format!("saves ${saving:.2}/month, under the floor"))
        } else {
            None
        };
        if let Some(why) = skip {
            a.recommendations[i]
                .reasons
                .push(format!("provisioned concurrency not applied: {why}"));
            continue;
        }
        let alias = alias.unwrap_or_default();
        let settings = FunctionSettings {
            memory_mb: f.memory_mb,
            timeout_s: f.timeout_s,
        };
        let change = ProvisionedChange {
            alias: alias.clone(),
            min_capacity: advice.min_capacity,
            max_capacity: advice.max_capacity,
            target_utilization: advice.target_utilization,
            scheduled_actions: advice.schedule.len(),
        };
        let record = DecisionRecord {
            record_id: DecisionRecord::id(now_s, &format!("{run_id}-pc")),
            function_name: name.clone(),
            run_id: run_id.to_owned(),
            created_at_epoch_s: now_s,
            before: settings,
            after: settings,
            evidence: a.health[i],
            predicted_duration_ms: None,
            monthly_savings_usd: saving,
            confidence: a.recommendations[i].confidence,
            reason: advice.reason.clone(),
            state: RecordState::Pending,
            state_reason: None,
            applied_at_epoch_s: None,
            updated_at_epoch_s: now_s,
            rollback_of: None,
            provisioned: Some(change),
        };
        let outcome = make(c, config, table, record, |c| {
            let (name, alias, advice) = (name.clone(), alias.clone(), advice.clone());
            async move { changes::provision(c, &name, &alias, &advice).await }
        })
        .await?;
        a.recommendations[i].reasons.push(match outcome {
            Ok(r) => format!(
                "provisioned concurrency {}..{} at {:.0}% target on {alias} (record {})",
                advice.min_capacity,
                advice.max_capacity,
                100.0 * advice.target_utilization,
                r.record_id
            ),
            Err(why) => format!("provisioned concurrency not applied: {why}"),
        });
    }
    Ok(())
}

fn new_record(
    change: &Change,
    rec: &trimtab_core::rightsizing::Recommendation,
    evidence: Health,
    now_s: i64,
    run_id: &str,
) -> DecisionRecord {
    DecisionRecord {
        record_id: DecisionRecord::id(now_s, run_id),
        function_name: change.function_name.clone(),
        run_id: run_id.to_owned(),
        created_at_epoch_s: now_s,
        before: change.before,
        after: change.after,
        evidence,
        predicted_duration_ms: rec.predicted_duration_ms,
        monthly_savings_usd: rec.monthly_savings_usd,
        confidence: rec.confidence,
        reason: change.reason.clone(),
        state: RecordState::Pending,
        state_reason: None,
        applied_at_epoch_s: None,
        updated_at_epoch_s: now_s,
        rollback_of: None,
        provisioned: None,
    }
}

/// Record, change, mark: the protocol. The inner result is the change's own failure (recorded
/// as `NotApplied`); the outer one a failure to keep the record, which stops the run.
async fn make<'c, F, Fut>(
    c: &'c Clients,
    config: &JobConfig,
    table: &DecisionTable,
    mut record: DecisionRecord,
    change: F,
) -> Result<Result<DecisionRecord, String>, JobError>
where
    F: FnOnce(&'c Clients) -> Fut,
    Fut: std::future::Future<Output = Result<(), trimtab_aws::AwsError>>,
{
    table.create(c, &record).await?;
    if config.faults.crash_after_record {
        return Err(JobError::Injected(
            "crash after writing the decision record",
        ));
    }
    match change(c).await {
        Ok(()) => {
            record.state = RecordState::Applied;
            record.applied_at_epoch_s = Some(record.created_at_epoch_s);
            table.update(c, &record, RecordState::Pending).await?;
            tracing::info!(function = %record.function_name, record = %record.record_id, "applied");
            Ok(Ok(record))
        }
        Err(e) => {
            record.state = RecordState::NotApplied;
            record.state_reason = Some(e.to_string());
            table.update(c, &record, RecordState::Pending).await?;
            tracing::warn!(function = %record.function_name, error = %e, "change failed");
            Ok(Err(e.to_string()))
        }
    }
}

/// Restores a function's recorded configuration: the `before` of `record_id`, or of its latest
/// change still in force.
pub async fn rollback(
    c: &Clients,
    config: &JobConfig,
    function: &str,
    record_id: Option<&str>,
    now: SystemTime,
) -> Result<DecisionRecord, JobError> {
    let table = table(config, "rollback")?;
    let records = table.history(c, function).await?;
    let in_force =
        |r: &&DecisionRecord| matches!(r.state, RecordState::Applied | RecordState::Verified);
    let target = match record_id {
        Some(id) => records
            .iter()
            .find(|r| r.record_id == id)
            .ok_or_else(|| JobError::NotFound(format!("no record {id} for function {function}")))?,
        None => records
            .iter()
            .filter(in_force)
            .find(|r| r.rollback_of.is_none())
            .ok_or_else(|| {
                JobError::NotFound(format!(
                    "function {function} has no change in force to roll back"
                ))
            })?,
    };
    if !in_force(&target) {
        return Err(JobError::NotFound(format!(
            "record {} is {:?}, not in force: nothing to roll back",
            target.record_id, target.state
        )));
    }
    let run_id = crate::new_run_id(now);
    restore(c, config, &table, target, "operator rollback", now, &run_id).await
}

/// Every decision record of a function, newest first.
pub async fn history(
    c: &Clients,
    config: &JobConfig,
    function: &str,
) -> Result<Vec<DecisionRecord>, JobError> {
    Ok(table(config, "history")?.history(c, function).await?)
}
