//! Apply mode, as AWS behaves: settle the records an interrupted run left pending, verify earlier
//! changes (rolling back the ones that hurt, compare-and-set), then make new changes record
//! first, each conditional on the configuration read just before it and marked applied only
//! once Lambda reports the update `Successful`. One function, record or call failing is reported
//! on its row and the run goes on; only the decision table failing stops a run.
//!
//! docs/actuation.md walks through the protocol and what a crash at each step leaves behind.

use std::collections::{BTreeMap, HashMap};

use futures::stream::{self, StreamExt};
use serde::Serialize;
use trimtab_act::failpoint;
use trimtab_aws::changes;

use trimtab_aws::metrics::{self, Window};
use trimtab_core::actuation::{LiveFunction, Settlement, settle_function_change};
use trimtab_core::apply::{Change, FunctionState, Verdict, Verification, decide, verify};
use trimtab_core::records::{
    DecisionRecord, Health, RecordState, WalkStart, to_archive, walk_start,
};
use trimtab_core::rightsizing::Status;
use trimtab_core::tags::{ALIAS_TAG, canary_wanted, is_locked};

use crate::JobError;
use crate::analysis::Analysis;
use crate::protocol::{Ctx, JOB, Open, UPDATE_WAIT, change_and_settle, settle_into};
use crate::provision;
use crate::request::Plan;
use crate::undo::{Undo, finish_rollback, restore};

/// Functions changed at once (each change mostly waits for Lambda).
const PARALLEL_CHANGES: usize = 4;

/// Settles every pending record from live state, and archives the records no later run needs.
/// A record that cannot be settled now (its function cannot be read) stays pending, noted.
pub(crate) async fn reconcile(ctx: &Ctx<'_>) -> Result<Open, JobError> {
    let mut records: Vec<DecisionRecord> = ctx.table.open(ctx.c, JOB).await?;
    records.sort_by(|a, b| a.record_id.cmp(&b.record_id));
    let mut open = Open::default();
    for i in 0..records.len() {
        if records[i].state != RecordState::Pending {
            continue;
        }
        let mut r = records[i].clone();
        match settle_pending(ctx, &mut r).await {
            Ok(()) => {
                ctx.save(&r, RecordState::Pending).await?;
                tracing::info!(function = %r.function_name, record = %r.record_id, state = r.state.name(), "reconciled");
                if r.state == RecordState::Verified
                    && let Some(original) = r.rollback_of.as_deref()
                    && let Some(o) = records.iter().position(|x| x.record_id == original)
                {
                    let orig = records[o].clone();
                    if orig.state.in_force() {
                        finish_rollback(ctx, &orig, &r, "rollback reconciled", &[]).await?;
                        records[o].state = RecordState::RolledBack;
                        records[o].updated_at_epoch_s = ctx.clock.now_s();
                    }
                }
                open.reconciled.push(r.clone());
                records[i] = r;
            }
            Err(why) => open.notes.push(format!(
                "{}: record {} left pending: {why}",
                r.function_name, r.record_id
            )),
        }
    }
    // Scheduled-action writes on aliases a stopped run left pending.
    let mut unread = Vec::new();
    let settled = provision::schedule_writer(ctx)
        .reconcile(&mut unread)
        .await?;
    open.notes.extend(unread);
    open.notes.extend(settled.iter().map(|r| {
        format!(
            "{}: scheduled-action record {} reconciled: {}",
            r.resource,
            r.record_id,
            r.state.name()
        )
    }));
    for i in to_archive(&records, ctx.clock.now_s()) {
        let mut r = records[i].clone();
        r.archived = true;
        ctx.save(&r, r.state).await?;
        records[i] = r;
    }
    records.retain(DecisionRecord::is_open);
    open.records = records;
    Ok(open)
}

/// Settles one pending record from what the function or alias shows now. `Err`: it could not
/// be read (the record stays pending).
async fn settle_pending(ctx: &Ctx<'_>, r: &mut DecisionRecord) -> Result<(), String> {
    let now_s = ctx.clock.now_s();
    let prefix = "reconciled";
    if r.canary.is_some() {
        let settlement = crate::canary::settle_pending(ctx, r).await?;
        settle_into(
            r,
            &settlement,
            None,
            now_s,
            &format!("{prefix}: canary routed"),
        );
    } else if let Some(p) = r.provisioned.clone() {
        let settlement = provision::settle_pending(ctx, r, &p).await?;
        settle_into(
            r,
            &settlement,
            None,
            now_s,
            &format!("{prefix}: provisioned and allocated"),
        );
    } else {
        let mut live = changes::read_function(ctx.c, &r.function_name)
            .await
            .map_err(|e| e.to_string())?;
        if live
            .as_ref()
            .is_some_and(|l| l.update == trimtab_core::actuation::UpdateStatus::InProgress)
        {
            // The crashed run's update (or someone's) is still being applied: wait for it.
            let _ = changes::wait_for_update(ctx.c, &r.function_name, UPDATE_WAIT).await;
            live = changes::read_function(ctx.c, &r.function_name)
                .await
                .map_err(|e| e.to_string())?;
        }
        let revision = live.as_ref().and_then(|l| l.revision_id.clone());
        let settlement = settle_function_change(r.before, r.after, live.as_ref());
        settle_into(
            r,
            &settlement,
            revision,
            now_s,
            &format!("{prefix}: the change was made before the run stopped"),
        );
    }
    if let Some(reason) = &mut r.state_reason
        && !reason.starts_with(prefix)
    {
        *reason = format!("{prefix}: {reason}");
    }
    Ok(())
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
    /// Why a regression was not rolled back (refused, deferred, failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_not_made: Option<String>,
}

/// Judges every applied, unverified change on the metrics since it was made, if the function
/// still has the change's settings (otherwise the record is superseded and not judged). Healthy
/// changes are verified, regressed ones rolled back compare-and-set.
pub(crate) async fn verify_applied(
    ctx: &Ctx<'_>,
    plan: &Plan,
    open: &Open,
    notes: &mut Vec<String>,
) -> Result<Vec<VerificationRow>, JobError> {
    let applied = open.awaiting_verification();
    let healths = healths_since(ctx, plan, &applied, notes).await;
    let mut rows = Vec::new();
    for (r, after) in applied.into_iter().zip(healths) {
        let mut row = VerificationRow {
            function_name: r.function_name.clone(),
            record_id: r.record_id.clone(),
            verification: Verification::Wait("metrics unavailable".into()),
            after: after.unwrap_or_default(),
            rollback_record_id: None,
            rollback_not_made: None,
        };
        let live = match changes::read_function(ctx.c, &r.function_name).await {
            Ok(live) => live,
            Err(e) => {
                row.verification = Verification::Wait(format!("function unreadable: {e}"));
                rows.push(row);
                continue;
            }
        };
        if let Some(why) = not_as_left(live.as_ref(), r) {
            let mut s = r.clone();
            ctx.mark(&mut s, RecordState::Superseded, why.clone())
                .await?;
            row.verification = Verification::Superseded(why);
            rows.push(row);
            continue;
        }
        let Some(after) = after else {
            rows.push(row);
            continue;
        };
        row.verification = verify(&r.evidence, &after, plan.settings.latency_guard_pct);
        match &row.verification {
            Verification::Healthy => {
                let mut v = r.clone();
                ctx.mark(
                    &mut v,
                    RecordState::Verified,
                    "verified: no regression since the change".into(),
                )
                .await?;
            }
            Verification::Regressed(why) => {
                tracing::warn!(function = %r.function_name, record = %r.record_id, %why, "regressed; rolling back");
                match restore(ctx, r, &[], &format!("regressed: {why}"), false).await? {
                    Undo::Restored(undo, _) => row.rollback_record_id = Some(undo.record_id),
                    Undo::Superseded(why) => row.verification = Verification::Superseded(why),
                    Undo::Deferred(why) | Undo::Failed(why) => row.rollback_not_made = Some(why),
                }
            }
            _ => {}
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Why an applied record no longer describes its function, if it does not: deleted, or
/// changed outside Trimtab since (its metrics then say nothing about the change).
fn not_as_left(live: Option<&LiveFunction>, r: &DecisionRecord) -> Option<String> {
    match live {
        None => Some("the function no longer exists".into()),
        Some(l) if l.settings != r.after => Some(format!(
            "the function is at {} MB / {} s, not {} MB / {} s as record {} left it: changed outside Trimtab",
            l.settings.memory_mb,
            l.settings.timeout_s,
            r.after.memory_mb,
            r.after.timeout_s,
            r.record_id
        )),
        Some(_) => None,
    }
}

/// Health since each record's change: one batched fetch per distinct start. `None` where it
/// cannot be measured yet or the fetch failed (noted).
async fn healths_since(
    ctx: &Ctx<'_>,
    plan: &Plan,
    applied: &[&DecisionRecord],
    notes: &mut Vec<String>,
) -> Vec<Option<Health>> {
    let now_s = ctx.clock.started_s() / 60 * 60;
    let mut by_start: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, r) in applied.iter().enumerate() {
        let start = (r.effective_at_epoch_s() + 59) / 60 * 60;
        by_start.entry(start).or_default().push(i);
    }
    let mut out = vec![None; applied.len()];
    for (start, members) in by_start {
        if now_s - start < 60 {
            for i in members {
                out[i] = Some(Health::default());
            }
            continue;
        }
        let names: Vec<&str> = members
            .iter()
            .map(|&i| applied[i].function_name.as_str())
            .collect();
        let window = Window {
            start_epoch_s: start,
            end_epoch_s: now_s,
        };
        match metrics::fetch(
            ctx.c,
            metrics::health_queries(&names, plan.percentiles),
            window,
        )
        .await
        {
            Ok((series, _)) => {
                for (k, &i) in members.iter().enumerate() {
                    out[i] = Some(metrics::health(&series, k));
                }
            }
            Err(e) => notes.push(format!("changes since {start} not verified this run: {e}")),
        }
    }
    out
}

/// Why each function must not be changed this run, from verification and the open records.
fn holds(
    open: &Open,
    verifications: &[VerificationRow],
    since_epoch_s: i64,
) -> HashMap<String, String> {
    let verified_now: Vec<&str> = verifications
        .iter()
        .filter(|v| v.verification == Verification::Healthy)
        .map(|v| v.record_id.as_str())
        .collect();
    let mut held: HashMap<String, String> = HashMap::new();
    for r in &open.records {
        let why = match r.state {
            RecordState::Pending => Some(format!("record {} is still pending", r.record_id)),
            RecordState::Applied
                if r.provisioned.is_none() && !verified_now.contains(&r.record_id.as_str()) =>
            {
                Some(format!(
                    "the last change (record {}) is awaiting verification",
                    r.record_id
                ))
            }
            RecordState::RolledBack if r.updated_at_epoch_s >= since_epoch_s => Some(format!(
                "rolled back recently ({}); not retried within the lookback window",
                r.record_id
            )),
            RecordState::Verified
                if r.rollback_of.is_some() && r.updated_at_epoch_s >= since_epoch_s =>
            {
                Some(format!(
                    "rolled back recently (record {}); not retried within the lookback window",
                    r.record_id
                ))
            }
            _ => None,
        };
        if let Some(why) = why {
            held.entry(r.function_name.clone()).or_insert(why);
        }
    }
    for r in &open.reconciled {
        held.insert(
            r.function_name.clone(),
            format!("record {} was just reconciled", r.record_id),
        );
    }
    for v in verifications {
        let why = match &v.verification {
            Verification::Healthy => continue,
            Verification::Wait(why) => format!("the last change is awaiting verification ({why})"),
            Verification::Regressed(why) => format!("regressed ({why}); rolled back by this run"),
            Verification::Superseded(why) => format!("changed outside Trimtab ({why})"),
        };
        held.insert(v.function_name.clone(), why);
    }
    held
}

/// What happened to one function's memory change this run.
enum Outcome {
    Applied(Change, DecisionRecord),
    /// Sent; Lambda has not finished, or the outcome could not be read.
    Pending(DecisionRecord, String),
    Failed(String),
    Skipped(String),
}

/// Applies every recommendation that passes the guards, record first, a few functions at a
/// time; then provisioned concurrency where advised.
pub(crate) async fn apply(
    ctx: &Ctx<'_>,
    plan: &Plan,
    a: &mut Analysis,
    open: &Open,
    verifications: &[VerificationRow],
) -> Result<(), JobError> {
    let since = ctx.clock.started_s() - i64::from(plan.lookback_days) * 86_400;
    let held = holds(open, verifications, since);
    // Functions with advice to act on, and held ones (whose rows say why they wait).
    let candidates: Vec<usize> = (0..a.rows.len())
        .filter(|&i| {
            let r = &a.rows[i];
            // A function that asked for canaries changes only through one (`crate::canary`).
            !canary_wanted(&r.function.tags)
                && (r.recommendation.status == Status::Recommended
                    || held.contains_key(&r.function.name))
        })
        .collect();
    let outcomes: Vec<(usize, Result<Outcome, JobError>)> = stream::iter(candidates)
        .map(|i| {
            let row = &a.rows[i];
            let name = &row.function.name;
            let hold = held.get(name).or_else(|| a.not_allowed(name)).cloned();
            async move {
                let outcome = match hold {
                    Some(why) => Ok(Outcome::Skipped(why)),
                    None => {
                        let start = walk_start(&open.records, name);
                        let evidence = (row.health, start);
                        change_one(ctx, plan, &row.function, &row.recommendation, evidence).await
                    }
                };
                (i, outcome)
            }
        })
        .buffer_unordered(PARALLEL_CHANGES)
        .collect()
        .await;
    // Every settled change gets its row, even if another change's record could not be written
    // (which then fails the run).
    let mut failure = None;
    for (i, outcome) in outcomes {
        let row = &mut a.rows[i].recommendation;
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                row.status = Status::Error;
                row.reasons
                    .push(format!("its record could not be kept: {e}"));
                failure.get_or_insert(e);
                continue;
            }
        };
        match outcome {
            Outcome::Applied(change, r) => {
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
            Outcome::Pending(r, why) => row.reasons.push(format!(
                "change sent, not yet settled ({why}); record {} is pending and the next run settles it",
                r.record_id
            )),
            Outcome::Failed(why) => {
                row.status = Status::Error;
                row.reasons.push(format!("apply failed: {why}"));
            }
            Outcome::Skipped(why) => {
                // Advice a guard held back; a held row with no advice keeps its status.
                if row.status == Status::Recommended {
                    row.status = Status::Skipped;
                }
                row.reasons.push(format!("not applied: {why}"));
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let Analysis {
        rows,
        unreadable_tags,
        not_managed,
        ..
    } = a;
    for row in rows.iter_mut() {
        let name = &row.function.name;
        let not_allowed = unreadable_tags.get(name).or_else(|| not_managed.get(name));
        let hold = held.get(name).cloned();
        provision::provision_if_advised(ctx, plan, row, open, (not_allowed, hold.as_ref())).await?;
    }
    Ok(())
}

/// The protocol for one function: fresh read, guards, record, conditional change, wait, settle.
async fn change_one(
    ctx: &Ctx<'_>,
    plan: &Plan,
    f: &trimtab_aws::inventory::FunctionConfig,
    rec: &trimtab_core::rightsizing::Recommendation,
    (evidence, walk_start): (Health, Option<WalkStart>),
) -> Result<Outcome, JobError> {
    // The guards that need no live read first: most advice is below the floors, and reading a
    // function costs a call.
    let assumed = FunctionState {
        locked: is_locked(&f.tags),
        live: Some(LiveFunction {
            settings: trimtab_core::records::FunctionSettings {
                memory_mb: rec.current_memory_mb,
                timeout_s: rec.current_timeout_s,
            },
            update: trimtab_core::actuation::UpdateStatus::Successful,
            revision_id: None,
        }),
    };
    if let Verdict::Skip(why) = decide(rec, &assumed, &plan.guards) {
        return Ok(Outcome::Skipped(why));
    }
    if let Err(why) = ctx.may_start().await {
        return Ok(Outcome::Skipped(why));
    }
    let live = match changes::read_function(ctx.c, &f.name).await {
        Ok(Some(live)) => live,
        Ok(None) => return Ok(Outcome::Failed("the function no longer exists".into())),
        Err(e) => return Ok(Outcome::Failed(format!("could not read it: {e}"))),
    };
    let state = FunctionState {
        locked: is_locked(&f.tags),
        live: Some(live.clone()),
    };
    if let Some(why) = served_elsewhere(ctx, f).await {
        return Ok(Outcome::Skipped(why));
    }
    let change = match decide(rec, &state, &plan.guards) {
        Verdict::Skip(why) => return Ok(Outcome::Skipped(why)),
        Verdict::Apply(change) => change,
    };
    let now_s = ctx.clock.now_s();
    let mut record = DecisionRecord {
        record_id: DecisionRecord::id(now_s, ctx.run_id),
        function_name: change.function_name.clone(),
        run_id: ctx.run_id.to_owned(),
        created_at_epoch_s: now_s,
        before: change.before,
        after: change.after,
        evidence,
        predicted_duration_ms: rec.predicted_duration_ms,
        monthly_savings_usd: rec.monthly_savings_usd,
        confidence: change.confidence,
        reason: change.reason.clone(),
        state: RecordState::Pending,
        state_reason: None,
        applied_at_epoch_s: None,
        updated_at_epoch_s: now_s,
        rollback_of: None,
        provisioned: None,
        revision_before: live.revision_id.clone(),
        revision_after: None,
        requested_by: ctx.requested_by.map(ToOwned::to_owned),
        archived: false,
        walk_start,
        prediction_error_pct: None,
        canary: None,
    };
    // What the model predicted at the size this step reaches, for the next run to compare.
    if let Some(p) = rec
        .step_prediction
        .filter(|p| p.memory_mb == change.after.memory_mb)
    {
        record.predicted_duration_ms = Some(p.predicted_ms);
        record.prediction_error_pct = Some(p.error_pct);
    } else if change.after.memory_mb != rec.recommended_memory_mb {
        record.predicted_duration_ms = None;
    }
    ctx.table.create(ctx.c, &record).await?;
    failpoint("rightsizing.after_record");
    let (settlement, revision) =
        change_and_settle(ctx.c, &record, change.after, "rightsizing").await;
    settle_into(
        &mut record,
        &settlement,
        revision,
        ctx.clock.now_s(),
        "Lambda reports the update Successful",
    );
    failpoint("rightsizing.before_mark");
    ctx.save(&record, RecordState::Pending).await?;
    tracing::info!(function = %record.function_name, record = %record.record_id, state = record.state.name(), "change settled");
    Ok(match settlement {
        Settlement::Applied => Outcome::Applied(change, record),
        Settlement::Pending(why) => Outcome::Pending(record, why),
        Settlement::NotApplied(why) | Settlement::Superseded(why) | Settlement::Undo(why) => {
            Outcome::Failed(format!("{why} (record {})", record.record_id))
        }
    })
}

/// Why a memory change would not reach the function's traffic, if it would not: a function
/// served through its `trimtab:alias` alias at a published version runs that version's
/// configuration, and `UpdateFunctionConfiguration` changes only `$LATEST`.
async fn served_elsewhere(
    ctx: &Ctx<'_>,
    f: &trimtab_aws::inventory::FunctionConfig,
) -> Option<String> {
    let alias = f.tags.get(ALIAS_TAG)?;
    match changes::alias_version(ctx.c, &f.name, alias).await {
        Ok(Some(v)) if v != "$LATEST" => Some(format!(
            "served through alias {alias} at version {v}: a memory change reaches it only when a new version is published"
        )),
        Ok(_) => None,
        Err(e) => Some(format!("alias {alias} could not be read: {e}")),
    }
}
