//! One right-sizing run: gather, judge, and in apply mode act.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use futures::stream::{self, StreamExt};
use trimtab_act::{Clock, Invocation, Lease, LeaseError, epoch_s, new_run_id};
use trimtab_aws::calls::OwnRequests;
use trimtab_aws::inventory::{FunctionConfig, list_functions, read_tags};
use trimtab_aws::metrics::{self, Window};
use trimtab_aws::schema::SavingsHeadline;
use trimtab_aws::{Clients, changes, logs};
use trimtab_core::concurrency::{ConcurrencyInput, advise};
use trimtab_core::fit::{OperatingPoint, StepPrediction, points_before_changes};
use trimtab_core::predictive::HISTORY_DAYS;
use trimtab_core::quota::{CapacityRisk, capacity_risk};
use trimtab_core::records::{DecisionRecord, Health};
use trimtab_core::rightsizing::{
    FunctionMetrics, FunctionObservation, MemoryEvidence, Recommendation, log_scan_choice,
    recommend_fleet, totals,
};
use trimtab_core::tags::{OWN_TAG, matches_pattern};
use trimtab_lambda::Mode;

use crate::act;
use crate::analysis::{Analysis, Judged};
use crate::protocol::{Ctx, JOB, table};
use crate::request::Plan;
use crate::{JobConfig, JobError, Report};

pub use trimtab_core::tags::LATENCY_OBJECTIVE_TAG;

/// Gathers, judges, and in apply mode acts. Reads nothing from the event: the plan says
/// everything. `now` is when the run happens (tests move it to stage later runs).
pub async fn run(
    clients: &Clients,
    config: &JobConfig,
    invocation: &Invocation,
    plan: &Plan,
    now: SystemTime,
) -> Result<Report, JobError> {
    let run_id = invocation.run_id.clone().unwrap_or_else(|| new_run_id(now));
    let now_s = epoch_s(now);
    let mut report = match plan.mode {
        Mode::Recommend => {
            let (since, points, steps) = (HashMap::new(), BTreeMap::new(), BTreeMap::new());
            let past = Past {
                since: &since,
                points: &points,
                steps: &steps,
            };
            let a = analyse(clients, config, plan, now, false, &past).await?;
            report(clients, plan, run_id, a)
        }
        Mode::Apply => apply_run(clients, config, invocation, plan, now, run_id).await?,
    };
    report.requested_by = invocation.requested_by.clone();
    let fleet_wide = plan.filter == trimtab_aws::inventory::FunctionFilter::default();
    // The fleet's headline for the cost job and the API (a scoped run's savings are not the
    // fleet's, and a skipped run judged nothing).
    if fleet_wide && report.skipped.is_none() {
        let t = &report.totals;
        let headline = SavingsHeadline {
            run_id: Some(report.run_id.clone()),
            detail: format!("{} functions to change", t.recommended),
            ..SavingsHeadline::at(
                now_s,
                report.mode.name(),
                t.monthly_savings_usd,
                t.functions,
            )
        };
        let summary = serde_json::to_value(headline).unwrap_or_default();
        let table = config.table_name.as_ref();
        let note = trimtab_lambda::leave_headline(clients, table, "rightsizing", &summary).await;
        report.notes.extend(note);
    }
    report.requests = OwnRequests::so_far();
    Ok(report)
}

/// Apply mode: the lease, then reconcile, verify, analyse and act, all within the invocation's
/// deadline. The lease is released on every way out (a crash leaves it to expire).
async fn apply_run(
    clients: &Clients,
    config: &JobConfig,
    invocation: &Invocation,
    plan: &Plan,
    now: SystemTime,
    run_id: String,
) -> Result<Report, JobError> {
    let table = table(config, "apply mode")?;
    let clock = Clock::starting_at(now);
    let lease = match Lease::acquire(clients, &table, JOB, &run_id, clock).await {
        Ok(lease) => lease,
        Err(LeaseError::Aws(e)) => return Err(e.into()),
        Err(held) => {
            tracing::warn!(run_id, "{held}; skipping");
            let mut r = report(
                clients,
                plan,
                run_id,
                Analysis::empty(Window::last_days(now, plan.lookback_days)),
            );
            r.skipped = Some(format!("{held}: this run changed nothing"));
            return Ok(r);
        }
    };
    trimtab_act::failpoint("rightsizing.after_lease");
    let ctx = Ctx {
        c: clients,
        table: &table,
        run_id: &run_id,
        requested_by: invocation.requested_by.as_deref(),
        clock,
        deadline: invocation.deadline,
        lease: &lease,
    };
    let outcome = act_under_lease(&ctx, config, plan, now).await;
    let released = lease.release().await;
    let mut r = outcome?;
    if let Err(e) = released {
        r.notes
            .push(format!("lease not released (it expires by itself): {e}"));
    }
    Ok(r)
}

async fn act_under_lease(
    ctx: &Ctx<'_>,
    config: &JobConfig,
    plan: &Plan,
    now: SystemTime,
) -> Result<Report, JobError> {
    let open = act::reconcile(ctx).await?;
    let mut notes = open.notes.clone();
    let verifications = act::verify_applied(ctx, plan, &open, &mut notes).await?;
    let mut since = open.since();
    for v in &verifications {
        if v.rollback_record_id.is_some() {
            since.insert(v.function_name.clone(), ctx.clock.now_s());
        }
    }
    let points = points_before_changes(&open.records);
    let steps = last_steps(&open.records);
    let past = Past {
        since: &since,
        points: &points,
        steps: &steps,
    };
    let mut a = analyse(ctx.c, config, plan, now, true, &past).await?;
    a.notes.splice(0..0, notes);
    act::apply(ctx, plan, &mut a, &open, &verifications).await?;
    crate::canary::run(ctx, plan, &config.prices, &mut a, &open).await?;
    let mut r = report(ctx.c, plan, ctx.run_id.to_owned(), a);
    r.verifications = verifications;
    r.reconciled = open.reconciled;
    Ok(r)
}

fn report(clients: &Clients, plan: &Plan, run_id: String, a: Analysis) -> Report {
    let Analysis {
        window,
        rows,
        metric_queries,
        notes,
        capacity_risk,
        ..
    } = a;
    let functions: Vec<Recommendation> = rows.into_iter().map(|r| r.recommendation).collect();
    Report {
        job: "rightsizing",
        run_id,
        mode: plan.mode,
        strategy: plan.settings.strategy,
        lookback_days: plan.lookback_days,
        window_start_epoch_s: window.start_epoch_s,
        window_end_epoch_s: window.end_epoch_s,
        region: clients.region.clone(),
        requested_by: None,
        skipped: None,
        totals: totals(&functions),
        functions,
        verifications: Vec::new(),
        reconciled: Vec::new(),
        requests: OwnRequests::so_far(),
        metric_queries,
        notes,
        capacity_risk,
    }
}

/// What earlier runs left that an analysis uses (apply mode reads it from the open records):
/// when each function last changed (it is judged on the metrics since), and the sizes it ran at
/// before Trimtab's changes (the model is fitted on them too).
pub(crate) struct Past<'a> {
    since: &'a HashMap<String, i64>,
    points: &'a BTreeMap<String, Vec<OperatingPoint>>,
    steps: &'a BTreeMap<String, StepPrediction>,
}

/// What each function's latest memory step in force predicted at the size it reached.
fn last_steps(records: &[DecisionRecord]) -> BTreeMap<String, StepPrediction> {
    let mut out: BTreeMap<String, (i64, StepPrediction)> = BTreeMap::new();
    for r in records.iter().filter(|r| {
        r.canary.is_none()
            && r.provisioned.is_none()
            && r.rollback_of.is_none()
            && r.state.in_force()
    }) {
        let (Some(predicted_ms), Some(error_pct)) =
            (r.predicted_duration_ms, r.prediction_error_pct)
        else {
            continue;
        };
        let step = StepPrediction {
            memory_mb: r.after.memory_mb,
            predicted_ms,
            error_pct,
            confidence: None,
        };
        let e = out
            .entry(r.function_name.clone())
            .or_insert((i64::MIN, step));
        if r.created_at_epoch_s >= e.0 {
            *e = (r.created_at_epoch_s, step);
        }
    }
    out.into_iter().map(|(k, (_, s))| (k, s)).collect()
}

/// Inventory, metrics, log scans, the optimiser, and concurrency advice. `with_tags` reads every
/// function's tags (apply mode needs the lock, alias and latency-objective tags).
pub(crate) async fn analyse(
    clients: &Clients,
    config: &JobConfig,
    plan: &Plan,
    now: SystemTime,
    with_tags: bool,
    past: &Past<'_>,
) -> Result<Analysis, JobError> {
    let window = Window::last_days(now, plan.lookback_days);
    let mut a = Analysis::empty(window);
    let functions = inventory(clients, config, plan, with_tags, &mut a).await?;
    a.notes.extend(config.price_note.iter().cloned());
    // REPORT-line reads are off with `log_scan_pages: 0`, these too.
    let outside = if plan.log_scan_pages > 0 {
        outside_changes(clients, &functions, window, past.since, &mut a.notes).await
    } else {
        BTreeMap::new()
    };
    let mut since = past.since.clone();
    since.extend(outside.iter().map(|(name, (t, _))| (name.clone(), *t)));
    let mut observations = observe(clients, plan, &functions, &since, &mut a).await?;
    let mut before = points_before(clients, plan, &outside, window, &mut a).await;
    let mut versions = weighted_alias_points(clients, plan, &functions, window, &mut a).await;
    for o in &mut observations {
        o.history = past
            .points
            .get(&o.function_name)
            .cloned()
            .unwrap_or_default();
        o.history.extend(before.remove(&o.function_name));
        o.history
            .extend(versions.remove(&o.function_name).unwrap_or_default());
        o.last_step = past.steps.get(&o.function_name).copied();
    }
    fill_memory_from_logs(clients, plan, window, &mut observations, &mut a.notes).await;
    let mut recommendations = recommend_fleet(&observations, &plan.settings, &config.prices);
    a.metric_queries += attach_concurrency(
        clients,
        config,
        plan,
        window,
        &functions,
        &observations,
        &mut recommendations,
        (&mut a.notes, &mut a.capacity_risk),
    )
    .await?;
    for r in &recommendations {
        tracing::info!(
            function = %r.function_name,
            status = ?r.status,
            memory_mb = r.current_memory_mb,
            recommended_memory_mb = r.recommended_memory_mb,
            monthly_savings_usd = r.monthly_savings_usd,
            "judged"
        );
    }
    a.rows = functions
        .into_iter()
        .zip(recommendations)
        .zip(&observations)
        .map(|((function, recommendation), o)| Judged {
            function,
            recommendation,
            health: Health {
                invocations: o.metrics.invocations,
                errors: o.metrics.errors,
                throttles: o.metrics.throttles,
                duration_avg_ms: o.metrics.duration_avg_ms,
                duration_p99_ms: o.metrics.duration_p99_ms,
            },
        })
        .collect();
    Ok(a)
}

/// The functions in scope (with their tags when `with_tags`), noting in `a` those apply mode may
/// not change: tags unreadable, Trimtab's own, or outside the managed pattern.
async fn inventory(
    clients: &Clients,
    config: &JobConfig,
    plan: &Plan,
    with_tags: bool,
    a: &mut Analysis,
) -> Result<Vec<FunctionConfig>, JobError> {
    let mut functions = list_functions(clients, &plan.filter).await?;
    if with_tags && plan.filter.tags.is_empty() {
        for (name, e) in read_tags(clients, &mut functions).await {
            a.unreadable_tags.insert(
                name,
                format!("its tags could not be read, so whether it is locked is unknown ({e})"),
            );
        }
    }
    for f in &functions {
        if f.tags.contains_key(OWN_TAG) {
            a.not_managed
                .insert(f.name.clone(), "one of Trimtab's own functions".to_owned());
        } else if !matches_pattern(&config.managed_pattern, &f.name) {
            a.not_managed.insert(
                f.name.clone(),
                format!(
                    "outside the functions Trimtab may change ({})",
                    config.managed_pattern
                ),
            );
        }
    }
    tracing::info!(
        functions = functions.len(),
        lookback_days = plan.lookback_days,
        "inventory read"
    );
    Ok(functions)
}

/// At most this many functions a run reads REPORT lines for to learn the size they ran at before
/// a change made outside Trimtab.
const OUTSIDE_CHANGE_BUDGET: usize = 25;

/// Functions whose memory changed in the window outside Trimtab: `LastModified` (code or
/// configuration) falls in the window, after any change of Trimtab's, and the REPORT lines of the
/// day before it name another memory size (the most common one). Returns each one's change time and the size before.
/// A code-only change (the same size before) is left alone: the whole window still describes
/// today's size.
async fn outside_changes(
    clients: &Clients,
    functions: &[FunctionConfig],
    window: Window,
    since: &HashMap<String, i64>,
    notes: &mut Vec<String>,
) -> BTreeMap<String, (i64, u32)> {
    let changed: Vec<(&FunctionConfig, i64)> = functions
        .iter()
        .filter_map(|f| f.last_modified_epoch_s.map(|t| (f, t)))
        .filter(|(f, t)| {
            *t > window.start_epoch_s + 3600
                && *t < window.end_epoch_s - 600
                && since.get(&f.name).is_none_or(|s| t > s)
        })
        .collect();
    if changed.len() > OUTSIDE_CHANGE_BUDGET {
        notes.push(format!(
            "{} functions changed in the window; the sizes before were read for {OUTSIDE_CHANGE_BUDGET}",
            changed.len()
        ));
    }
    let owned: Vec<(String, u32, i64)> = changed
        .into_iter()
        .take(OUTSIDE_CHANGE_BUDGET)
        .map(|(f, t)| (f.name.clone(), f.memory_mb, t))
        .collect();
    let read: Vec<_> = stream::iter(owned)
        .map(|(name, now_mb, t)| async move {
            let before = logs::memory_before(clients, &name, t * 1000).await;
            (name, now_mb, t, before)
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let mut out = BTreeMap::new();
    for (name, now_mb, t, before) in read {
        match before {
            Ok(Some(m)) if m != now_mb => {
                out.insert(name, (t, m));
            }
            Ok(_) => {}
            Err(e) => notes.push(format!("{name}: size before its change unknown: {e}")),
        }
    }
    out
}

/// The mean duration before each outside change, at the size before it: one batched fetch per
/// change time, from the window's start to the change.
async fn points_before(
    clients: &Clients,
    plan: &Plan,
    changes: &BTreeMap<String, (i64, u32)>,
    window: Window,
    a: &mut Analysis,
) -> BTreeMap<String, OperatingPoint> {
    let mut at: BTreeMap<i64, Vec<(&str, u32)>> = BTreeMap::new();
    for (name, (t, m)) in changes {
        at.entry(t / 60 * 60).or_default().push((name, *m));
    }
    let mut out = BTreeMap::new();
    for (end, members) in at {
        let names: Vec<&str> = members.iter().map(|(n, _)| *n).collect();
        let w = Window {
            start_epoch_s: window.start_epoch_s,
            end_epoch_s: end,
        };
        match metrics::fetch(clients, metrics::health_queries(&names, false), w).await {
            Ok((series, fetched)) => {
                a.metric_queries += fetched.queries;
                for (i, (name, memory_mb)) in members.iter().enumerate() {
                    let h = metrics::health(&series, i);
                    if let Some(d) = h
                        .duration_avg_ms
                        .filter(|_| h.invocations >= plan.settings.min_invocations)
                    {
                        out.insert(
                            (*name).to_owned(),
                            OperatingPoint {
                                memory_mb: *memory_mb,
                                duration_ms: d,
                                invocations: h.invocations,
                                source: trimtab_core::fit::PointSource::BeforeOutsideChange,
                            },
                        );
                    }
                }
            }
            Err(e) => a.notes.push(format!(
                "metrics before the changes at {end} unavailable: {e}"
            )),
        }
    }
    out
}

/// At most this many weighted aliases a run reads per-version metrics of.
const WEIGHTED_ALIAS_BUDGET: usize = 25;

/// Both versions behind each `trimtab:alias` alias that routes traffic to two versions at
/// different memory sizes (a canary, Trimtab's or the team's): each version's mean duration
/// over the window, from the metrics Lambda emits per `ExecutedVersion`. Only where tags were
/// read (apply mode); a GetAlias per alias-tagged function, and for a weighted one two reads of
/// the versions and one metrics call.
async fn weighted_alias_points(
    clients: &Clients,
    plan: &Plan,
    functions: &[FunctionConfig],
    window: Window,
    a: &mut Analysis,
) -> BTreeMap<String, Vec<OperatingPoint>> {
    let mut out = BTreeMap::new();
    let aliased = functions
        .iter()
        .filter_map(|f| f.tags.get(trimtab_core::tags::ALIAS_TAG).map(|al| (f, al)))
        .take(WEIGHTED_ALIAS_BUDGET);
    for (f, alias) in aliased {
        match alias_points(
            clients,
            &f.name,
            alias,
            window,
            plan.settings.min_invocations,
        )
        .await
        {
            Ok((points, queries)) => {
                a.metric_queries += queries;
                if !points.is_empty() {
                    out.insert(f.name.clone(), points);
                }
            }
            Err(e) => a
                .notes
                .push(format!("{}: versions behind {alias} not read: {e}", f.name)),
        }
    }
    out
}

async fn alias_points(
    clients: &Clients,
    function: &str,
    alias: &str,
    window: Window,
    min_invocations: f64,
) -> Result<(Vec<OperatingPoint>, usize), trimtab_aws::AwsError> {
    use trimtab_aws::canary;
    let Some(state) = canary::read_alias(clients, function, alias).await? else {
        return Ok((Vec::new(), 0));
    };
    let Some(other) = state.weights.keys().next() else {
        return Ok((Vec::new(), 0));
    };
    let versions = [state.version.as_str(), other.as_str()];
    let mut sizes = Vec::new();
    for v in versions {
        sizes.push(
            canary::read_version(clients, function, Some(v))
                .await?
                .memory_mb,
        );
    }
    if sizes[0] == sizes[1] {
        return Ok((Vec::new(), 0));
    }
    let (stats, queries) =
        canary::version_stats(clients, function, alias, &versions, window).await?;
    let points = stats
        .iter()
        .zip(&sizes)
        .filter(|(s, _)| s.invocations >= min_invocations)
        .filter_map(|(s, &memory_mb)| {
            s.duration_avg_ms.map(|d| OperatingPoint {
                memory_mb,
                duration_ms: d,
                invocations: s.invocations,
                source: trimtab_core::fit::PointSource::Canary,
            })
        })
        .collect();
    Ok((points, queries))
}

/// Every function's metrics over the window, batched. A function changed by an earlier run is
/// judged on its metrics since that change only: older datapoints describe a configuration it
/// no longer has. Functions sharing a start share a batched fetch.
async fn observe(
    clients: &Clients,
    plan: &Plan,
    functions: &[FunctionConfig],
    since: &HashMap<String, i64>,
    a: &mut Analysis,
) -> Result<Vec<FunctionObservation>, JobError> {
    let window = a.window;
    let mut groups: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, f) in functions.iter().enumerate() {
        let start = since.get(&f.name).map_or(window.start_epoch_s, |t| {
            ((t + 59) / 60 * 60).max(window.start_epoch_s)
        });
        groups
            .entry(start.min(window.end_epoch_s - 60))
            .or_default()
            .push(i);
    }
    let mut observations: Vec<Option<FunctionObservation>> = vec![None; functions.len()];
    let mut percentiles = plan.percentiles;
    for (start, members) in groups {
        let w = Window {
            start_epoch_s: start,
            end_epoch_s: window.end_epoch_s,
        };
        let group: Vec<FunctionConfig> = members.iter().map(|&i| functions[i].clone()).collect();
        // A datapoint a day: folded to the window's figures, and their spread is how much a
        // window's mean wanders (the fit's error floor). Shorter windows: one datapoint.
        let period = if w.seconds() >= 3 * 86_400 {
            86_400
        } else {
            i32::try_from(w.seconds()).unwrap_or(i32::MAX) / 60 * 60
        };
        let queries = metrics::lambda_queries(&group, percentiles);
        let (series, fetched) = metrics::fetch_with_period(clients, queries, w, period).await?;
        tracing::info!(
            calls = fetched.calls,
            queries = fetched.queries,
            start,
            "metrics fetched"
        );
        a.metric_queries += fetched.queries;
        if let Some(why) = &fetched.percentiles_unavailable {
            a.notes.push(format!(
                "percentiles unavailable, maxima used instead: {why}"
            ));
            percentiles = false;
        }
        for (k, &i) in members.iter().enumerate() {
            let f = &functions[i];
            observations[i] = Some(observation(
                f,
                metrics::lambda_metrics(&series, k, f.memory_mb),
                w,
            ));
        }
    }
    Ok(observations.into_iter().flatten().collect())
}

fn observation(f: &FunctionConfig, metrics: FunctionMetrics, w: Window) -> FunctionObservation {
    FunctionObservation {
        function_name: f.name.clone(),
        architecture: f.architecture,
        memory_mb: f.memory_mb,
        timeout_s: f.timeout_s,
        ephemeral_storage_mb: f.ephemeral_storage_mb,
        window_s: w.seconds() as f64,
        metrics,
        history: Vec::new(),
        last_step: None,
        canary_possible: trimtab_core::tags::canary_wanted(&f.tags)
            && f.tags.contains_key(trimtab_core::tags::ALIAS_TAG),
    }
}

/// The account's concurrency quota against the trend of its daily peaks (an account without
/// any peak in the window has none to trend); `None` (with a note) when the quota cannot be
/// read.
async fn account_risk(
    clients: &Clients,
    window: Window,
    peaks: &[(i64, f64)],
    notes: &mut Vec<String>,
) -> Option<CapacityRisk> {
    let quota = match trimtab_aws::inventory::concurrency_quota(clients).await {
        Ok(q) => q,
        Err(e) => {
            notes.push(format!(
                "concurrency quota not read, so no capacity risk: {e}"
            ));
            return None;
        }
    };
    let hours = usize::try_from(window.seconds() / 3600).unwrap_or(0);
    let mut grid = vec![0.0; hours];
    for &(t, v) in peaks {
        let h = (t - window.start_epoch_s).div_euclid(3600);
        if let Some(slot) = usize::try_from(h).ok().and_then(|h| grid.get_mut(h)) {
            *slot = f64::max(*slot, v);
        }
    }
    Some(capacity_risk(
        "lambda_concurrent_executions",
        &grid,
        window.start_epoch_s,
        quota,
    ))
}

/// The time zone a function's traffic keeps (`trimtab:timezone`) over the history and the
/// week after it; a bad tag is a note, and the forecast then runs in UTC.
fn zone_of(
    f: &FunctionConfig,
    history: Window,
    notes: &mut Vec<String>,
) -> Option<trimtab_core::zone::Zone> {
    let span = (history.start_epoch_s, history.end_epoch_s + 8 * 86_400);
    trimtab_lambda::zone::from_tags(&f.tags, span)
        .map_err(|e| notes.push(format!("{}: {e}; forecast in UTC", f.name)))
        .ok()
        .flatten()
}

/// Mean concurrency above which hourly peaks are fetched to price provisioned concurrency.
const PROVISIONED_CANDIDATE_CONCURRENCY: f64 = 0.5;

/// Reserved and provisioned concurrency and arm64 advice for every judged function: the current
/// reserved cap read (`GetFunctionConcurrency`, eight at a time) only for the functions that
/// throttled, where a cap may be the cause, and one batched pass of hourly peaks for the
/// functions busy enough to be provisioned-concurrency candidates. Returns the extra queries.
#[allow(clippy::too_many_arguments)]
async fn attach_concurrency(
    clients: &Clients,
    config: &JobConfig,
    plan: &Plan,
    window: Window,
    functions: &[FunctionConfig],
    observations: &[FunctionObservation],
    recommendations: &mut [Recommendation],
    (notes, risk): (&mut Vec<String>, &mut Option<CapacityRisk>),
) -> Result<usize, JobError> {
    let judged: Vec<usize> = (0..functions.len())
        .filter(|&i| observations[i].metrics.invocations >= plan.settings.min_invocations)
        .collect();
    let throttled = judged
        .iter()
        .copied()
        .filter(|&i| observations[i].metrics.throttles > 0.0);
    let read: BTreeMap<usize, Result<Option<u32>, trimtab_aws::AwsError>> = stream::iter(throttled)
        .map(|i| async move {
            (
                i,
                changes::reserved_concurrency(clients, &functions[i].name).await,
            )
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mean_concurrency = |o: &FunctionObservation| {
        o.metrics.invocations * o.metrics.duration_avg_ms.unwrap_or(0.0)
            / 1000.0
            / o.window_s.max(1.0)
    };
    let objective = |f: &FunctionConfig| {
        f.tags
            .get(LATENCY_OBJECTIVE_TAG)
            .and_then(|v| v.parse::<f64>().ok())
    };
    let candidates: Vec<usize> = judged
        .iter()
        .copied()
        .filter(|&i| {
            mean_concurrency(&observations[i]) >= PROVISIONED_CANDIDATE_CONCURRENCY
                || objective(&functions[i]).is_some()
        })
        .collect();
    let names: Vec<&str> = candidates
        .iter()
        .map(|&i| functions[i].name.as_str())
        .collect();
    // Hourly peaks only refine concurrency advice: without them the advice is coarser. The
    // account's own peak rides along, for the quota's capacity risk.
    let mut queries = metrics::concurrency_queries(&names);
    queries.push(metrics::account_concurrency_query());
    // Over four weeks, for the forecasts (the lookback window is too short to show a week's
    // shape more than once or twice).
    let history = window.hours_before_end(HISTORY_DAYS);
    let (hourly, fetched) = match metrics::fetch_with_period(clients, queries, history, 3600).await
    {
        Ok(r) => {
            let peaks = r.0.get("acct").cloned().unwrap_or_default();
            *risk = account_risk(clients, history, &peaks, notes).await;
            r
        }
        Err(e) => {
            notes.push(format!(
                "hourly concurrency peaks unavailable, so no capacity risk either: {e}"
            ));
            (metrics::Series::new(), metrics::FetchReport::default())
        }
    };

    for (i, read) in judged.iter().map(|&i| (i, read.get(&i))) {
        let (f, o) = (&functions[i], &observations[i]);
        let (reserved, reserved_read) = match read {
            Some(Ok(r)) => (*r, true),
            Some(Err(e)) => {
                notes.push(format!("{}: reserved concurrency unknown: {e}", f.name));
                (None, false)
            }
            None => (None, false),
        };
        let hourly_peak = candidates
            .iter()
            .position(|&c| c == i)
            .and_then(|k| hourly.get(&format!("c{k}")).cloned())
            .unwrap_or_default();
        let input = ConcurrencyInput {
            memory_mb: recommendations[i].recommended_memory_mb,
            architecture: Some(f.architecture),
            window_s: o.window_s,
            invocations: o.metrics.invocations,
            duration_avg_ms: recommendations[i].predicted_duration_ms.unwrap_or(0.0),
            throttles: o.metrics.throttles,
            peak_concurrency: o.metrics.concurrent_executions_max,
            reserved_concurrency: reserved,
            reserved_read,
            hourly_peak_concurrency: hourly_peak,
            cold_starts: o.metrics.cold_starts,
            init_duration_avg_ms: o.metrics.init_duration_avg_ms,
            latency_objective_ms: objective(f),
            zone: zone_of(f, history, notes),
        };
        recommendations[i].concurrency = Some(advise(&input, &config.prices));
    }
    Ok(fetched.queries)
}

/// For functions worth judging whose peak memory Lambda Insights did not report, reads it from
/// their REPORT lines, a few functions at a time and at most `log_scan_functions` a run (the
/// costliest first). A failed scan is a note, not a failed run.
async fn fill_memory_from_logs(
    clients: &Clients,
    plan: &Plan,
    window: Window,
    observations: &mut [FunctionObservation],
    notes: &mut Vec<String>,
) {
    if plan.log_scan_pages == 0 {
        return;
    }
    let (wanted, more) = log_scan_choice(
        observations,
        plan.settings.min_invocations,
        plan.log_scan_functions as usize,
    );
    if more > 0 {
        notes.push(format!(
            "{more} more functions without Lambda Insights had their REPORT lines left unread \
             (log_scan_functions = {}; the costliest were read): their peak memory is unknown, so \
             their memory is not lowered",
            plan.log_scan_functions
        ));
    }
    let scans = stream::iter(wanted)
        .map(|i| {
            let name = observations[i].function_name.clone();
            async move {
                let ev = logs::report_evidence(
                    clients,
                    &name,
                    window.start_epoch_s * 1000,
                    window.end_epoch_s * 1000,
                    plan.log_scan_pages,
                )
                .await;
                (i, ev)
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    for (i, ev) in scans {
        let o = &mut observations[i];
        match ev {
            Ok(ev) => {
                if let Some(peak) = ev.max_memory_used_mb {
                    o.metrics.used_memory_max_mb = Some(peak);
                    o.metrics.memory_evidence = Some(MemoryEvidence::Logs);
                }
                if ev.truncated {
                    notes.push(format!(
                        "{}: REPORT scan stopped after {} pages; peak memory from a sample",
                        o.function_name, plan.log_scan_pages
                    ));
                }
            }
            Err(e) => notes.push(format!(
                "{}: could not read REPORT lines: {e}",
                o.function_name
            )),
        }
    }
}
