//! Canaries under the actuation protocol, for functions tagged `trimtab:canary=true` with the
//! alias `trimtab:alias` names: a version at the candidate size takes a small share of the
//! alias's live traffic; a later run reads both versions' metrics (`ExecutedVersion`) and
//! promotes the canary (the alias and `$LATEST` move to its size) or drops it (routing removed).
//! Recorded before any call, and the verdict recorded before it is carried out; a run with
//! nothing new to judge writes nothing. A running canary is judged whatever the function's tags
//! say now: one whose function no longer asks for it (untagged, locked, not managed) is dropped.

use std::time::Duration;

use trimtab_act::failpoint;
use trimtab_aws::canary::{self, AliasState, VersionConfig};
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
use crate::protocol::{CHANGE_BUDGET, Ctx, Open, UPDATE_WAIT};
use crate::request::Plan;

/// What starting a canary needs at most before the lease is renewed again: one update of
/// `$LATEST` with its wait, and a publish.
const STEP_BUDGET: Duration = CHANGE_BUDGET;
/// What starting a canary can take at most: two updates of `$LATEST` with their waits, a
/// publish, the wait for the version to be `Active`, and the alias.
const START_BUDGET: Duration = Duration::from_secs(240);
/// The longest Trimtab waits for a new version to become `Active`.
const ACTIVE_WAIT: Duration = Duration::from_secs(60);

const PROMOTE: &str = "promote";
const DROP: &str = "drop";

/// Judges running canaries and starts new ones where a function asked for them.
pub(crate) async fn run(
    ctx: &Ctx<'_>,
    plan: &Plan,
    prices: &PriceTable,
    a: &mut Analysis,
    open: &Open,
) -> Result<(), JobError> {
    let refused: Vec<(Option<String>, bool)> = a
        .rows
        .iter()
        .map(|r| {
            let name = &r.function.name;
            (
                a.not_allowed(name).cloned(),
                a.unreadable_tags.contains_key(name),
            )
        })
        .collect();
    for (row, (refused, tags_unknown)) in a.rows.iter_mut().zip(refused) {
        let f = &row.function;
        let running = open.records.iter().find(|r| {
            r.function_name == f.name && r.canary.is_some() && r.state == RecordState::Applied
        });
        let outcome = if let (Some(_), true) = (running, tags_unknown) {
            // Whether the function still asks for its canary is unknown: left as it is.
            Err("its tags could not be read: the running canary is left as it is".to_owned())
        } else if let Some(r) = running {
            let stop = if !canary_wanted(&f.tags) {
                Some("the function no longer has the trimtab:canary=true tag".to_owned())
            } else if is_locked(&f.tags) {
                Some("locked: the function has the trimtab:lock tag".to_owned())
            } else {
                refused
            };
            judge(ctx, plan, prices, row, r.clone(), stop).await?
        } else if canary_wanted(&f.tags) {
            match refused {
                Some(why) => Err(why),
                None => start(ctx, plan, row, open).await?,
            }
        } else {
            continue;
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
fn target(rec: &Recommendation, max_step_factor: f64) -> Option<u32> {
    let current = rec.current_memory_mb;
    if rec.status == Status::Recommended && rec.recommended_memory_mb != current {
        let lo = (f64::from(current) / max_step_factor).ceil() as u32;
        let hi = (f64::from(current) * max_step_factor).floor() as u32;
        return Some(rec.recommended_memory_mb.clamp(lo, hi.max(lo)));
    }
    rec.needs_evidence
        .as_ref()?
        .options
        .iter()
        .find(|o| o.kind == EvidenceKind::Canary)
        .and_then(|o| o.memory_mb)
        .filter(|&m| m != current)
}

/// Why a canary may not start on `row` now, if it may not; else the alias and its state.
async fn refusal(
    ctx: &Ctx<'_>,
    plan: &Plan,
    row: &Judged,
    open: &Open,
) -> Result<(String, AliasState), String> {
    let f = &row.function;
    if is_locked(&f.tags) {
        return Err("locked: the function has the trimtab:lock tag".into());
    }
    let alias = f
        .tags
        .get(ALIAS_TAG)
        .cloned()
        .ok_or_else(|| format!("no {ALIAS_TAG} tag naming the alias to canary on"))?;
    let since = ctx.clock.started_s() - i64::from(plan.lookback_days) * 86_400;
    for r in open.records.iter().filter(|r| r.function_name == f.name) {
        if matches!(r.state, RecordState::Pending | RecordState::Applied) {
            return Err(format!("record {} is still open", r.record_id));
        }
        let ended_badly = matches!(
            r.state,
            RecordState::RolledBack | RecordState::NotApplied | RecordState::Superseded
        );
        if r.canary.is_some() && ended_badly && r.updated_at_epoch_s >= since {
            return Err(format!(
                "a canary ended {} recently (record {}): not retried within the lookback window",
                r.state.name(),
                r.record_id
            ));
        }
    }
    if !ctx.deadline.allows(START_BUDGET) {
        return Err(format!(
            "the invocation's deadline is less than {} s away: left for the next run",
            START_BUDGET.as_secs()
        ));
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
    plan: &Plan,
    row: &Judged,
    open: &Open,
) -> Result<Result<CanaryReport, String>, JobError> {
    let rec = &row.recommendation;
    let Some(memory_mb) = target(rec, plan.guards.max_step_factor) else {
        return Ok(Err("no size to measure".into()));
    };
    // The saving floor holds for canaries too, on the best case where the size is unsettled
    // (the confidence floor does not: a canary is how confidence is gained).
    let saving = rec
        .monthly_savings_usd
        .max(rec.best_case_monthly_savings_usd.unwrap_or_default())
        .max(
            rec.needs_evidence
                .as_ref()
                .map_or(0.0, |n| n.best_case_monthly_savings_usd),
        );
    if saving < plan.guards.min_monthly_savings_usd {
        return Ok(Err(format!(
            "saves at most ${saving:.2}/month, under the ${:.2} floor",
            plan.guards.min_monthly_savings_usd
        )));
    }
    let (alias, state) = match refusal(ctx, plan, row, open).await {
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
    if !latest.settled
        || primary.memory_mb != latest.memory_mb
        || primary.code_sha256 != latest.code_sha256
        || primary.fingerprint != latest.fingerprint
    {
        return Ok(Err(format!(
            "$LATEST differs from version {} behind {alias} (code, configuration or memory), or is being updated: a canary would ship more than a memory size",
            state.version
        )));
    }
    let mut record = new_record(ctx, row, &alias, &state.version, memory_mb);
    ctx.table.create(ctx.c, &record).await?;
    failpoint("rightsizing.canary.after_record");
    let plan = Start {
        function: &f.name,
        alias: &alias,
        state: &state,
        latest: &latest,
        memory_mb,
    };
    let made = make(ctx, &plan).await;
    let now_s = ctx.clock.now_s();
    record.updated_at_epoch_s = now_s;
    let report_state = match made {
        Made::Routed(version) => {
            if let Some(c) = record.canary.as_mut() {
                c.version = Some(version);
            }
            record.state = RecordState::Applied;
            record.applied_at_epoch_s = Some(now_s);
            record.state_reason = Some("canary routed".into());
            "started"
        }
        Made::Nothing(why) => {
            record.state = RecordState::NotApplied;
            record.state_reason = Some(why);
            "not_started"
        }
        Made::Unclean(why) => {
            // Left pending: the next run's reconciliation puts $LATEST back.
            record.state_reason = Some(why);
            "not_started"
        }
    };
    ctx.save(&record, RecordState::Pending).await?;
    Ok(Ok(report(&record, report_state, 0.0)))
}

/// How making a canary ended.
enum Made {
    /// Published and routed: the version.
    Routed(String),
    /// Nothing left in place.
    Nothing(String),
    /// `$LATEST` could not be put back to its size.
    Unclean(String),
}

/// What a canary's start works from: the function, its alias as read, `$LATEST` as read, and the
/// size to measure.
struct Start<'a> {
    function: &'a str,
    alias: &'a str,
    state: &'a AliasState,
    latest: &'a VersionConfig,
    memory_mb: u32,
}

/// The calls that make a canary, each checked; on failure what is in place is read again: a
/// routing whose answer was lost counts as made, and `$LATEST` is put back.
async fn make(ctx: &Ctx<'_>, s: &Start<'_>) -> Made {
    let Start {
        function,
        alias,
        state,
        latest,
        memory_mb,
    } = *s;
    let mut published = None;
    let outcome = make_steps(ctx, s, &mut published).await;
    let why = match outcome {
        Ok(version) => return Made::Routed(version),
        Err(why) => why,
    };
    let c = ctx.c;
    // A routing whose answer was lost is in place all the same.
    if let Some(v) = &published
        && let Ok(Some(now)) = canary::read_alias(c, function, alias).await
        && now.version == state.version
        && now.weights.contains_key(v)
    {
        return Made::Routed(v.clone());
    }
    match put_back(ctx, function, memory_mb, latest.memory_mb).await {
        Ok(()) => Made::Nothing(format!("the canary could not be made: {why}")),
        Err(e) => Made::Unclean(format!(
            "the canary could not be made ({why}), and $LATEST could not be put back to {} MB yet: {e}",
            latest.memory_mb
        )),
    }
}

async fn make_steps(
    ctx: &Ctx<'_>,
    s: &Start<'_>,
    published: &mut Option<String>,
) -> Result<String, String> {
    let Start {
        function,
        alias,
        state,
        latest,
        memory_mb,
    } = *s;
    let c = ctx.c;
    let e = |e: trimtab_aws::AwsError| e.to_string();
    changes::update_function(
        c,
        function,
        (memory_mb, None),
        latest.revision_id.as_deref(),
    )
    .await
    .map_err(e)?;
    changes::wait_for_update(c, function, UPDATE_WAIT)
        .await
        .map_err(e)?;
    let sized = canary::read_version(c, function, None).await.map_err(e)?;
    if !sized.settled
        || sized.memory_mb != memory_mb
        || sized.code_sha256 != latest.code_sha256
        || sized.fingerprint != latest.fingerprint
    {
        return Err(format!(
            "$LATEST did not settle at {memory_mb} MB with nothing else changed"
        ));
    }
    ctx.lease
        .keep(STEP_BUDGET)
        .await
        .map_err(|e| e.to_string())?;
    let (version, at_mb, code) = canary::publish(
        c,
        function,
        sized.code_sha256.as_deref(),
        sized.revision_id.as_deref(),
        &format!("trimtab canary at {memory_mb} MB"),
    )
    .await
    .map_err(e)?;
    if version == state.version || at_mb != memory_mb || code != sized.code_sha256 {
        return Err(format!(
            "PublishVersion returned version {version} at {at_mb} MB, not a new version at {memory_mb} MB"
        ));
    }
    *published = Some(version.clone());
    put_back(ctx, function, memory_mb, latest.memory_mb).await?;
    canary::wait_active(c, function, &version, ACTIVE_WAIT).await?;
    ctx.lease
        .keep(STEP_BUDGET)
        .await
        .map_err(|e| e.to_string())?;
    canary::route(
        c,
        function,
        alias,
        &state.version,
        Some((&version, CANARY_WEIGHT)),
        state.revision_id.as_deref(),
    )
    .await
    .map_err(e)?;
    Ok(version)
}

/// Puts `$LATEST` back to `original` MB if it is at the canary's `canary_mb` (conditional on its
/// revision), and waits for it; `Ok` once `$LATEST` is not at the canary's size.
async fn put_back(
    ctx: &Ctx<'_>,
    function: &str,
    canary_mb: u32,
    original: u32,
) -> Result<(), String> {
    let c = ctx.c;
    let now = canary::read_version(c, function, None)
        .await
        .map_err(|e| e.to_string())?;
    if now.memory_mb != canary_mb || canary_mb == original {
        return Ok(());
    }
    changes::update_function(c, function, (original, None), now.revision_id.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    changes::wait_for_update(c, function, UPDATE_WAIT)
        .await
        .map_err(|e| e.to_string())?;
    let after = canary::read_version(c, function, None)
        .await
        .map_err(|e| e.to_string())?;
    if after.memory_mb == canary_mb {
        return Err(format!("$LATEST is still at {canary_mb} MB"));
    }
    Ok(())
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
            intent: None,
        }),
    }
}

/// Where a running canary's alias stands.
enum AliasNow {
    /// Gone, or changed by someone else.
    Foreign(Option<AliasState>),
    /// Routing to the canary as Trimtab left it.
    Routing(AliasState),
    /// The recorded verdict was carried out on the alias (its `$LATEST` part may be left).
    Done(AliasState),
}

fn classify(c: &CanaryChange, version: &str, state: Option<AliasState>) -> AliasNow {
    let Some(s) = state else {
        return AliasNow::Foreign(None);
    };
    let routing =
        s.version == c.primary_version && s.weights.len() == 1 && s.weights.contains_key(version);
    let done = s.weights.is_empty()
        && match c.intent.as_deref() {
            Some(PROMOTE) => s.version == version,
            Some(DROP) => s.version == c.primary_version,
            _ => false,
        };
    if routing {
        AliasNow::Routing(s)
    } else if done {
        AliasNow::Done(s)
    } else {
        AliasNow::Foreign(Some(s))
    }
}

/// Reads a running canary's metrics and promotes, drops, or leaves it; `stop` drops it whatever
/// it measured.
async fn judge(
    ctx: &Ctx<'_>,
    plan: &Plan,
    prices: &PriceTable,
    row: &Judged,
    mut r: DecisionRecord,
    stop: Option<String>,
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
    let state = match classify(&c, &version, state) {
        AliasNow::Foreign(s) => return supersede(ctx, r, &version, s).await,
        AliasNow::Done(s) => s,
        // A verdict recorded by a run that stopped before carrying it out.
        AliasNow::Routing(s) if c.intent.is_some() => s,
        AliasNow::Routing(s) => {
            let started = r.applied_at_epoch_s.unwrap_or(r.created_at_epoch_s);
            let now_s = ctx.clock.now_s();
            let window = Window {
                start_epoch_s: started / 60 * 60,
                end_epoch_s: (now_s / 60 * 60).max(started / 60 * 60 + 60),
            };
            let versions = [c.primary_version.as_str(), version.as_str()];
            let stats = canary::version_stats(ctx.c, &function, &c.alias, &versions, window).await;
            let (primary, canary_stats) = match stats {
                Ok((s, _)) => (s[0], s[1]),
                Err(e) if stop.is_none() => {
                    return Ok(Err(format!("the canary's metrics are unavailable: {e}")));
                }
                Err(_) => Default::default(),
            };
            let verdict = match &stop {
                Some(why) => CanaryVerdict::Drop(why.clone()),
                None => judge_canary(
                    (&primary, r.before.memory_mb),
                    (&canary_stats, c.memory_mb),
                    (now_s - started) as f64,
                    plan.settings.latency_guard_pct,
                ),
            };
            c.cost_usd = canary_cost_usd(
                prices,
                row.function.architecture,
                (&primary, r.before.memory_mb),
                (&canary_stats, c.memory_mb),
            );
            c.canary = Some(canary_stats);
            c.primary = Some(primary);
            let (intent, why) = match verdict {
                CanaryVerdict::Wait(why) => {
                    r.canary = Some(c);
                    let mut out =
                        report(&r, "running", r.canary.as_ref().map_or(0.0, |c| c.cost_usd));
                    out.reason = why;
                    return Ok(Ok(out));
                }
                CanaryVerdict::Promote(why) => (PROMOTE, why),
                CanaryVerdict::Drop(why) => (DROP, why),
            };
            if let Err(not_now) = ctx.may_start().await {
                r.canary = Some(c);
                let mut out = report(&r, "running", r.canary.as_ref().map_or(0.0, |c| c.cost_usd));
                out.reason = format!("to {intent}: {why}; left for the next run ({not_now})");
                return Ok(Ok(out));
            }
            // The verdict is recorded before the alias is touched.
            c.intent = Some(intent.to_owned());
            r.canary = Some(c.clone());
            r.state_reason = Some(format!("{intent}: {why}"));
            r.updated_at_epoch_s = ctx.clock.now_s();
            ctx.save(&r, RecordState::Applied).await?;
            s
        }
    };
    failpoint("rightsizing.canary.after_verdict");
    carry_out(ctx, r, &version, &state).await
}

/// Carries out the recorded verdict: the alias (unless done), then on promotion `$LATEST`.
async fn carry_out(
    ctx: &Ctx<'_>,
    mut r: DecisionRecord,
    version: &str,
    state: &AliasState,
) -> Result<Result<CanaryReport, String>, JobError> {
    let Some(c) = r.canary.clone() else {
        return Ok(Err("not a canary record".into()));
    };
    let promote = c.intent.as_deref() == Some(PROMOTE);
    let cost = c.cost_usd;
    let outcome = finish(ctx, &r, &c, version, state, promote).await;
    let why = r.state_reason.clone().unwrap_or_default();
    if let Err(e) = outcome {
        let mut out = report(&r, "running", cost);
        out.reason = format!("{why}; not finished ({e}): the next run finishes it");
        return Ok(Ok(out));
    }
    let (to, name) = if promote {
        (RecordState::Verified, "promoted")
    } else {
        (RecordState::RolledBack, "dropped")
    };
    let reason = why.replacen(if promote { PROMOTE } else { DROP }, name, 1);
    ctx.mark(&mut r, to, reason.clone()).await?;
    let mut out = report(&r, name, cost);
    out.reason = reason;
    Ok(Ok(out))
}

/// The alias to the verdict's version with no routing (conditional on its revision, unless it
/// is already there), then on promotion `$LATEST` to the canary's size if it is still at the
/// old one.
async fn finish(
    ctx: &Ctx<'_>,
    r: &DecisionRecord,
    c: &CanaryChange,
    version: &str,
    state: &AliasState,
    promote: bool,
) -> Result<(), String> {
    let function = &r.function_name;
    let target = if promote { version } else { &c.primary_version };
    if !(state.version == target && state.weights.is_empty()) {
        canary::route(
            ctx.c,
            function,
            &c.alias,
            target,
            None,
            state.revision_id.as_deref(),
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    if promote {
        let latest = canary::read_version(ctx.c, function, None)
            .await
            .map_err(|e| e.to_string())?;
        if latest.memory_mb == r.before.memory_mb {
            changes::update_function(
                ctx.c,
                function,
                (c.memory_mb, None),
                latest.revision_id.as_deref(),
            )
            .await
            .map_err(|e| e.to_string())?;
            changes::wait_for_update(ctx.c, function, UPDATE_WAIT)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Someone changed the alias since the canary started: the record is superseded, and the
/// canary's weight is removed if it is still there (it is Trimtab's).
async fn supersede(
    ctx: &Ctx<'_>,
    mut r: DecisionRecord,
    version: &str,
    state: Option<AliasState>,
) -> Result<Result<CanaryReport, String>, JobError> {
    let mut why = "the alias was changed outside Trimtab since the canary started".to_owned();
    if let Some(s) = state.filter(|s| s.weights.contains_key(version))
        && let Some(c) = &r.canary
    {
        match canary::route(
            ctx.c,
            &r.function_name,
            &c.alias,
            &s.version,
            None,
            s.revision_id.as_deref(),
        )
        .await
        {
            Ok(()) => why.push_str("; the canary's weight is removed"),
            Err(e) => why.push_str(&format!("; the canary's weight could not be removed: {e}")),
        }
    }
    ctx.mark(&mut r, RecordState::Superseded, why).await?;
    Ok(Ok(report(&r, "superseded", 0.0)))
}

/// Settles a canary record a crash left pending. A start: routed if the alias carries a version
/// at the canary's size; otherwise nothing was routed, and `$LATEST` is put back if it kept the
/// size. A rollback: done once the alias routes all traffic to the primary again.
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
    if r.rollback_of.is_some() {
        return Ok(match revert(ctx, r, &c).await {
            Ok(()) => Settlement::Applied,
            Err(e) => Settlement::Pending(format!("the rollback of a canary is unfinished: {e}")),
        });
    }
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
    Ok(
        match put_back(ctx, &function, c.memory_mb, r.before.memory_mb).await {
            Ok(()) => {
                Settlement::NotApplied("the canary was never routed; $LATEST is at its size".into())
            }
            Err(e) => Settlement::Pending(format!("$LATEST is not yet back at its size: {e}")),
        },
    )
}

/// Undoes a canary (the operator's rollback, recorded in `undo`): the alias routes all traffic
/// to the primary version again, and `$LATEST` goes back to its size if a promotion moved it.
pub(crate) async fn revert(
    ctx: &Ctx<'_>,
    undo: &DecisionRecord,
    c: &CanaryChange,
) -> Result<(), String> {
    let function = &undo.function_name;
    let state = canary::read_alias(ctx.c, function, &c.alias)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("alias {} no longer exists", c.alias))?;
    let ours = c
        .version
        .as_deref()
        .is_some_and(|v| state.version == v || state.weights.contains_key(v));
    if ours {
        canary::route(
            ctx.c,
            function,
            &c.alias,
            &c.primary_version,
            None,
            state.revision_id.as_deref(),
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    // The rollback record's `after` is the size before the canary.
    put_back(ctx, function, c.memory_mb, undo.after.memory_mb).await
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
        intent: None,
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
