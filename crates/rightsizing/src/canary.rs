//! Canaries under the actuation protocol, for functions tagged `trimtab:canary=true` with the
//! alias `trimtab:alias` names: a version at the candidate size takes a small share of the
//! alias's live traffic; a later run reads both versions' metrics (`ExecutedVersion`) and
//! promotes the canary (the alias and `$LATEST` move to its size) or drops it (routing removed).
//! Recorded before any call; a run with nothing new to judge writes nothing.

use std::time::Duration;

use trimtab_act::failpoint;
use trimtab_aws::canary::{self, AliasState};
use trimtab_aws::changes;
use trimtab_aws::metrics::Window;
use trimtab_core::actuation::Settlement;
use trimtab_core::evidence::{
    CANARY_WEIGHT, CanaryReport, CanaryVerdict, EvidenceKind, canary_cost_usd, judge_canary,
};
use trimtab_core::pricing::PriceTable;
use trimtab_core::records::{CanaryChange, DecisionRecord, FunctionSettings, RecordState};
use trimtab_core::rightsizing::{Recommendation, Status};
use trimtab_core::tags::{ALIAS_TAG, canary_wanted, is_locked};

use crate::JobError;
use crate::analysis::{Analysis, Judged};
use crate::protocol::{Ctx, Open, UPDATE_WAIT};
use crate::request::Plan;

/// What starting a canary needs at most: two updates of `$LATEST` with their waits, a publish,
/// and the alias.
const START_BUDGET: Duration = Duration::from_secs(180);

/// Judges running canaries and starts new ones where a function asked for them.
pub(crate) async fn run(
    ctx: &Ctx<'_>,
    plan: &Plan,
    prices: &PriceTable,
    a: &mut Analysis,
    open: &Open,
) -> Result<(), JobError> {
    let refused: Vec<Option<String>> = a
        .rows
        .iter()
        .map(|r| a.not_allowed(&r.function.name).cloned())
        .collect();
    for (row, refused) in a.rows.iter_mut().zip(refused) {
        if !canary_wanted(&row.function.tags) {
            continue;
        }
        let name = row.function.name.clone();
        let running = open.records.iter().find(|r| {
            r.function_name == name && r.canary.is_some() && r.state == RecordState::Applied
        });
        let outcome = match (running, refused) {
            (Some(r), _) => judge(ctx, plan, prices, row, r.clone()).await?,
            (None, Some(why)) => Err(why),
            (None, None) => start(ctx, row, open).await?,
        };
        match outcome {
            Ok(report) => row.recommendation.canary = Some(report.rounded()),
            Err(why) => row.recommendation.reasons.push(format!("no canary: {why}")),
        }
    }
    Ok(())
}

/// The size a canary would measure: the recommendation's (one step of at most 2x), or, without
/// CPU evidence, the probe the priced options name.
fn target(rec: &Recommendation) -> Option<u32> {
    let current = rec.current_memory_mb;
    if rec.status == Status::Recommended && rec.recommended_memory_mb != current {
        return Some(
            rec.recommended_memory_mb
                .clamp(current.div_ceil(2), current.saturating_mul(2)),
        );
    }
    rec.needs_evidence
        .as_ref()?
        .options
        .iter()
        .find(|o| o.kind == EvidenceKind::Canary)
        .and_then(|o| o.memory_mb)
        .filter(|&m| m != current)
}

/// Why a canary may not start on `row` now, if it may not.
async fn refusal(ctx: &Ctx<'_>, row: &Judged, open: &Open) -> Result<(String, AliasState), String> {
    let f = &row.function;
    if is_locked(&f.tags) {
        return Err("locked: the function has the trimtab:lock tag".into());
    }
    let alias = f
        .tags
        .get(ALIAS_TAG)
        .cloned()
        .ok_or_else(|| format!("no {ALIAS_TAG} tag naming the alias to canary on"))?;
    if let Some(r) = open.records.iter().find(|r| {
        r.function_name == f.name && matches!(r.state, RecordState::Pending | RecordState::Applied)
    }) {
        return Err(format!("record {} is still open", r.record_id));
    }
    if !ctx.deadline.allows(START_BUDGET) {
        return Err("the invocation's deadline is near: left for the next run".into());
    }
    ctx.may_start().await?;
    let state = canary::read_alias(ctx.c, &f.name, &alias)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("alias {alias} does not exist"))?;
    if !state.weights.is_empty() {
        return Err(format!("alias {alias} already routes to two versions"));
    }
    if state.version == "$LATEST" {
        return Err(format!(
            "alias {alias} points at $LATEST: a weighted alias needs published versions"
        ));
    }
    Ok((alias, state))
}

/// Starts a canary: record, `$LATEST` to the size, publish, `$LATEST` back, route.
async fn start(
    ctx: &Ctx<'_>,
    row: &Judged,
    open: &Open,
) -> Result<Result<CanaryReport, String>, JobError> {
    let Some(memory_mb) = target(&row.recommendation) else {
        return Ok(Err("no size to measure".into()));
    };
    let (alias, state) = match refusal(ctx, row, open).await {
        Ok(x) => x,
        Err(why) => return Ok(Err(why)),
    };
    let f = &row.function;
    let read = async {
        let primary = canary::read_version(ctx.c, &f.name, Some(&state.version)).await?;
        let latest = canary::read_version(ctx.c, &f.name, None).await?;
        Ok::<_, trimtab_aws::AwsError>((primary, latest))
    };
    let (primary, latest) = match read.await {
        Ok(x) => x,
        Err(e) => return Ok(Err(e.to_string())),
    };
    if primary.memory_mb != latest.memory_mb
        || primary.code_sha256 != latest.code_sha256
        || primary.role != latest.role
    {
        return Ok(Err(format!(
            "$LATEST differs from version {} behind {alias} (code, role or memory): a canary would measure something else",
            state.version
        )));
    }
    let mut record = new_record(ctx, row, &alias, &state.version, memory_mb);
    ctx.table.create(ctx.c, &record).await?;
    failpoint("rightsizing.canary.after_record");
    let made = make(ctx, &f.name, &alias, &state, &latest, memory_mb).await;
    let now_s = ctx.clock.now_s();
    record.updated_at_epoch_s = now_s;
    let report_state = match made {
        Ok(version) => {
            if let Some(c) = record.canary.as_mut() {
                c.version = Some(version);
            }
            record.state = RecordState::Applied;
            record.applied_at_epoch_s = Some(now_s);
            record.state_reason = Some("canary routed".into());
            "started"
        }
        Err(why) => {
            record.state = RecordState::NotApplied;
            record.state_reason = Some(why);
            "not_started"
        }
    };
    ctx.save(&record, RecordState::Pending).await?;
    Ok(Ok(report(&record, report_state, 0.0)))
}

/// The calls that make a canary; on failure, `$LATEST` and the alias are put back.
async fn make(
    ctx: &Ctx<'_>,
    function: &str,
    alias: &str,
    state: &AliasState,
    latest: &canary::VersionConfig,
    memory_mb: u32,
) -> Result<String, String> {
    let c = ctx.c;
    let original = latest.memory_mb;
    let steps = async {
        canary::set_latest_memory(c, function, memory_mb, latest.revision_id.as_deref()).await?;
        changes::wait_for_update(c, function, UPDATE_WAIT).await?;
        let sized = canary::read_version(c, function, None).await?;
        let version = canary::publish(
            c,
            function,
            sized.code_sha256.as_deref(),
            sized.revision_id.as_deref(),
            &format!("trimtab canary at {memory_mb} MB"),
        )
        .await?;
        let after = canary::read_version(c, function, None).await?;
        canary::set_latest_memory(c, function, original, after.revision_id.as_deref()).await?;
        changes::wait_for_update(c, function, UPDATE_WAIT).await?;
        canary::route(
            c,
            function,
            alias,
            &state.version,
            Some((&version, CANARY_WEIGHT)),
            state.revision_id.as_deref(),
        )
        .await?;
        Ok::<_, trimtab_aws::AwsError>(version)
    };
    match steps.await {
        Ok(v) => Ok(v),
        Err(e) => {
            // Put $LATEST back if the canary's size is still on it.
            if let Ok(now) = canary::read_version(c, function, None).await
                && now.memory_mb == memory_mb
            {
                let _ =
                    canary::set_latest_memory(c, function, original, now.revision_id.as_deref())
                        .await;
            }
            Err(format!("the canary could not be made: {e}"))
        }
    }
}

fn new_record(
    ctx: &Ctx<'_>,
    row: &Judged,
    alias: &str,
    primary_version: &str,
    memory_mb: u32,
) -> DecisionRecord {
    let f = &row.function;
    let now_s = ctx.clock.now_s();
    let before = FunctionSettings {
        memory_mb: f.memory_mb,
        timeout_s: f.timeout_s,
    };
    DecisionRecord {
        record_id: DecisionRecord::id(now_s, &format!("{}-canary", ctx.run_id)),
        function_name: f.name.clone(),
        run_id: ctx.run_id.to_owned(),
        created_at_epoch_s: now_s,
        before,
        after: FunctionSettings {
            memory_mb,
            ..before
        },
        evidence: row.health,
        predicted_duration_ms: None,
        monthly_savings_usd: row.recommendation.monthly_savings_usd,
        confidence: row.recommendation.confidence,
        reason: format!(
            "canary at {memory_mb} MB on {alias}, {:.0}% of its traffic",
            100.0 * CANARY_WEIGHT
        ),
        state: RecordState::Pending,
        state_reason: None,
        applied_at_epoch_s: None,
        updated_at_epoch_s: now_s,
        rollback_of: None,
        provisioned: None,
        revision_before: None,
        revision_after: None,
        requested_by: ctx.requested_by.map(ToOwned::to_owned),
        archived: false,
        walk_start: None,
        prediction_error_pct: None,
        canary: Some(CanaryChange {
            alias: alias.to_owned(),
            primary_version: primary_version.to_owned(),
            version: None,
            memory_mb,
            weight: CANARY_WEIGHT,
            canary: None,
            primary: None,
            cost_usd: 0.0,
        }),
    }
}

/// Reads a running canary's metrics and promotes, drops, or leaves it.
async fn judge(
    ctx: &Ctx<'_>,
    plan: &Plan,
    prices: &PriceTable,
    row: &Judged,
    mut r: DecisionRecord,
) -> Result<Result<CanaryReport, String>, JobError> {
    let Some(mut c) = r.canary.clone() else {
        return Ok(Err("not a canary record".into()));
    };
    let Some(version) = c.version.clone() else {
        return Ok(Err("the canary has no version".into()));
    };
    let function = r.function_name.clone();
    let state = match canary::read_alias(ctx.c, &function, &c.alias).await {
        Ok(s) => s,
        Err(e) => return Ok(Err(format!("alias unreadable: {e}"))),
    };
    let ours = state.as_ref().is_some_and(|s| {
        s.version == c.primary_version && s.weights.len() == 1 && s.weights.contains_key(&version)
    });
    if !ours {
        ctx.mark(
            &mut r,
            RecordState::Superseded,
            "the alias was changed outside Trimtab since the canary started".into(),
        )
        .await?;
        return Ok(Ok(report(&r, "superseded", 0.0)));
    }
    let state = state.unwrap_or_else(|| unreachable!("checked above"));
    let started = r.applied_at_epoch_s.unwrap_or(r.created_at_epoch_s);
    let now_s = ctx.clock.now_s();
    let window = Window {
        start_epoch_s: started / 60 * 60,
        end_epoch_s: (now_s / 60 * 60).max(started / 60 * 60 + 60),
    };
    let versions = [c.primary_version.as_str(), version.as_str()];
    let stats = canary::version_stats(ctx.c, &function, &c.alias, &versions, window).await;
    let (stats, _) = match stats {
        Ok(s) => s,
        Err(e) => return Ok(Err(format!("the canary's metrics are unavailable: {e}"))),
    };
    let (primary, canary_stats) = (stats[0], stats[1]);
    let verdict = judge_canary(
        (&primary, r.before.memory_mb),
        (&canary_stats, c.memory_mb),
        (now_s - started) as f64,
        plan.settings.latency_guard_pct,
    );
    let cost = canary_cost_usd(
        prices,
        row.function.architecture,
        (&primary, r.before.memory_mb),
        (&canary_stats, c.memory_mb),
    );
    c.canary = Some(canary_stats);
    c.primary = Some(primary);
    c.cost_usd = cost;
    let (to, why, state_name) = match verdict {
        CanaryVerdict::Wait(why) => {
            r.canary = Some(c);
            let mut out = report(&r, "running", cost);
            out.reason = why;
            return Ok(Ok(out));
        }
        CanaryVerdict::Promote(why) => (Some(version.clone()), why, "promoted"),
        CanaryVerdict::Drop(why) => (None, why, "dropped"),
    };
    r.canary = Some(c.clone());
    let outcome = finish(ctx, &r, &c, &state, to.as_deref()).await;
    let (state_to, reason) = match (&outcome, state_name) {
        (Ok(()), "promoted") => (RecordState::Verified, format!("promoted: {why}")),
        (Ok(()), _) => (RecordState::RolledBack, format!("dropped: {why}")),
        (Err(e), _) => {
            let mut out = report(&r, "running", cost);
            out.reason = format!("{state_name} but not carried out ({e}); the next run retries");
            return Ok(Ok(out));
        }
    };
    ctx.mark(&mut r, state_to, reason.clone()).await?;
    let mut out = report(&r, state_name, cost);
    out.reason = reason;
    Ok(Ok(out))
}

/// Promotes (`to`: the canary's version) or drops the canary: the alias first, conditional on
/// its revision; on promotion `$LATEST` follows, if it is still at the size the canary left it.
async fn finish(
    ctx: &Ctx<'_>,
    r: &DecisionRecord,
    c: &CanaryChange,
    state: &AliasState,
    to: Option<&str>,
) -> Result<(), trimtab_aws::AwsError> {
    let function = &r.function_name;
    let target = to.unwrap_or(&c.primary_version);
    canary::route(
        ctx.c,
        function,
        &c.alias,
        target,
        None,
        state.revision_id.as_deref(),
    )
    .await?;
    if to.is_some() {
        let latest = canary::read_version(ctx.c, function, None).await?;
        if latest.memory_mb == r.before.memory_mb {
            canary::set_latest_memory(ctx.c, function, c.memory_mb, latest.revision_id.as_deref())
                .await?;
            changes::wait_for_update(ctx.c, function, UPDATE_WAIT).await?;
        }
    }
    Ok(())
}

/// Settles a canary record a crash left pending: routed if the alias carries a version at the
/// canary's size; otherwise nothing was routed, and `$LATEST` is put back if it kept the size.
pub(crate) async fn settle_pending(
    ctx: &Ctx<'_>,
    r: &mut DecisionRecord,
) -> Result<Settlement, String> {
    let Some(c) = r.canary.clone() else {
        return Ok(Settlement::NotApplied("not a canary record".into()));
    };
    let function = r.function_name.clone();
    let state = canary::read_alias(ctx.c, &function, &c.alias)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(s) = state.filter(|s| s.version == c.primary_version) {
        for v in s.weights.keys() {
            let cfg = canary::read_version(ctx.c, &function, Some(v))
                .await
                .map_err(|e| e.to_string())?;
            if cfg.memory_mb == c.memory_mb {
                if let Some(rc) = r.canary.as_mut() {
                    rc.version = Some(v.clone());
                }
                return Ok(Settlement::Applied);
            }
        }
    }
    let latest = canary::read_version(ctx.c, &function, None)
        .await
        .map_err(|e| e.to_string())?;
    if latest.memory_mb == c.memory_mb && c.memory_mb != r.before.memory_mb {
        canary::set_latest_memory(
            ctx.c,
            &function,
            r.before.memory_mb,
            latest.revision_id.as_deref(),
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    Ok(Settlement::NotApplied(
        "the canary was never routed; $LATEST is at its size again".into(),
    ))
}

fn report(r: &DecisionRecord, state: &str, cost_usd: f64) -> CanaryReport {
    let c = r.canary.clone().unwrap_or_else(|| CanaryChange {
        alias: String::new(),
        primary_version: String::new(),
        version: None,
        memory_mb: r.after.memory_mb,
        weight: 0.0,
        canary: None,
        primary: None,
        cost_usd: 0.0,
    });
    CanaryReport {
        alias: c.alias,
        version: c.version.unwrap_or_default(),
        memory_mb: c.memory_mb,
        weight: c.weight,
        state: state.to_owned(),
        invocations: c.canary.map_or(0.0, |s| s.invocations),
        errors: c.canary.map_or(0.0, |s| s.errors),
        duration_ms: c.canary.and_then(|s| s.duration_avg_ms),
        primary_duration_ms: c.primary.and_then(|s| s.duration_avg_ms),
        cost_usd,
        reason: r.state_reason.clone().unwrap_or_default(),
    }
}
