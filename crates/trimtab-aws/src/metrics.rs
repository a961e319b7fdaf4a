//! Batched CloudWatch `GetMetricData`.
//!
//! CloudWatch bills per metric requested, not per call, but each call carries at most 500 queries
//! (and 100,800 datapoints), and every call is latency in a Lambda that is billed by the
//! millisecond. So queries for many resources are packed 500 to a call and each call is paged on
//! `NextToken` to the end. Each query asks for one period as long as the whole window: one
//! datapoint per metric is all the right-sizing model needs, and the fewest to pay for.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use aws_smithy_types::DateTime;
use trimtab_core::rightsizing::{FunctionMetrics, MemoryEvidence};

use crate::inventory::FunctionConfig;
use crate::{AwsError, Clients, ErrorKind};

/// Most queries `GetMetricData` accepts in one call.
pub const MAX_QUERIES_PER_CALL: usize = 500;
/// Most datapoints one `GetMetricData` call returns; past it the answer pages (`NextToken`).
pub const MAX_DATAPOINTS_PER_CALL: i64 = 100_800;

/// Queries packed into one call: 500, or fewer when their datapoints would not fit one answer
/// (a page more costs a request and returns no more data than a smaller call would).
pub fn queries_per_call(window: Window, period_s: i32) -> usize {
    let period = i64::from(period_s.max(1));
    let points = ((window.seconds() + period - 1) / period).max(1);
    usize::try_from(MAX_DATAPOINTS_PER_CALL / points)
        .unwrap_or(1)
        .clamp(1, MAX_QUERIES_PER_CALL)
}

/// A closed time window, aligned to whole minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_epoch_s: i64,
    pub end_epoch_s: i64,
}

impl Window {
    /// The `days` ending at `now`, rounded down to the hour so that repeated runs in the same hour
    /// ask the same question.
    pub fn last_days(now: SystemTime, days: u32) -> Self {
        let now_s = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let end = i64::try_from(now_s - now_s % 3600).unwrap_or(i64::MAX);
        Self {
            start_epoch_s: end - i64::from(days) * 86_400,
            end_epoch_s: end,
        }
    }

    pub fn seconds(&self) -> i64 {
        self.end_epoch_s - self.start_epoch_s
    }

    /// The `days` of whole hours up to this window's last whole hour: a forecast's history.
    pub fn hours_before_end(&self, days: i64) -> Self {
        let end = self.end_epoch_s - self.end_epoch_s.rem_euclid(3600);
        Self {
            start_epoch_s: end - days * 86_400,
            end_epoch_s: end,
        }
    }
}

/// Aggregation of one query's datapoints over the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    Sum,
    Max,
    /// Mean weighted by each datapoint's sample count, where another query gives it.
    Mean,
}

/// One metric statistic to fetch.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Unique in a request; CloudWatch wants `^[a-z][a-zA-Z0-9_]*$`.
    pub id: String,
    pub namespace: &'static str,
    pub metric_name: &'static str,
    pub dimensions: Vec<(String, String)>,
    pub stat: &'static str,
}

impl Query {
    pub fn is_percentile(&self) -> bool {
        self.stat.starts_with('p')
    }

    fn to_sdk(&self, period_s: i32) -> MetricDataQuery {
        let metric = Metric::builder()
            .namespace(self.namespace)
            .metric_name(self.metric_name)
            .set_dimensions(Some(
                self.dimensions
                    .iter()
                    .map(|(n, v)| Dimension::builder().name(n).value(v).build())
                    .collect(),
            ))
            .build();
        MetricDataQuery::builder()
            .id(&self.id)
            .metric_stat(
                MetricStat::builder()
                    .metric(metric)
                    .period(period_s)
                    .stat(self.stat)
                    .build(),
            )
            .return_data(true)
            .build()
    }
}

/// Datapoints per query id, in timestamp order.
pub type Series = HashMap<String, Vec<(i64, f64)>>;

/// What fetching cost and what the backend refused.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FetchReport {
    pub calls: usize,
    pub queries: usize,
    /// Why percentile statistics are missing, when the backend refused them.
    pub percentiles_unavailable: Option<String>,
}

/// Fetches every query over `window` as one period, 500 queries to a call, paging each call.
/// If a call carrying percentile statistics is refused (some backends, moto among them, do not
/// compute them), it is retried once without them and the rest of the run omits them; the
/// reason is reported. Throttling (after the SDK's retries) and any other failure is an error.
pub async fn fetch(
    clients: &Clients,
    queries: Vec<Query>,
    window: Window,
) -> Result<(Series, FetchReport), AwsError> {
    let period_s = i32::try_from(window.seconds()).unwrap_or(i32::MAX) / 60 * 60;
    fetch_with_period(clients, queries, window, period_s).await
}

/// As [`fetch`], with datapoints of `period_s` seconds (a multiple of 60) instead of one for the
/// whole window.
pub async fn fetch_with_period(
    clients: &Clients,
    queries: Vec<Query>,
    window: Window,
    period_s: i32,
) -> Result<(Series, FetchReport), AwsError> {
    let period_s = (period_s / 60 * 60).max(60);
    let mut report = FetchReport {
        queries: queries.len(),
        ..FetchReport::default()
    };
    let mut series = Series::new();
    // Percentile queries first: if the backend refuses them, the first call says so.
    let (pct, plain): (Vec<Query>, Vec<Query>) =
        queries.into_iter().partition(Query::is_percentile);
    let mut pending: VecDeque<Query> = pct.into_iter().chain(plain).collect();
    let per_call = queries_per_call(window, period_s);
    while !pending.is_empty() {
        let take = pending.len().min(per_call);
        let chunk: Vec<Query> = pending.drain(..take).collect();
        match call_paged(clients, &chunk, window, period_s, &mut report).await {
            Ok(data) => series.extend(data),
            // A refusal (some backends, moto among them, answer percentiles with an error) is
            // not the same as throttling or no answer: those were retried by the SDK and are
            // errors, never a reason to weaken the latency guard silently.
            Err(e)
                if report.percentiles_unavailable.is_none()
                    && chunk.iter().any(Query::is_percentile)
                    && !matches!(e.kind, ErrorKind::Throttled | ErrorKind::NoAnswer) =>
            {
                tracing::warn!(error = %e, "percentile statistics refused; continuing without them");
                report.percentiles_unavailable = Some(e.message);
                let rest: Vec<Query> = chunk
                    .into_iter()
                    .chain(pending.drain(..))
                    .filter(|q| !q.is_percentile())
                    .collect();
                report.queries = series.len() + rest.len();
                pending.extend(rest);
            }
            Err(e) => return Err(e),
        }
    }
    Ok((series, report))
}

async fn call_paged(
    clients: &Clients,
    chunk: &[Query],
    window: Window,
    period_s: i32,
    report: &mut FetchReport,
) -> Result<Series, AwsError> {
    let sdk_queries: Vec<MetricDataQuery> = chunk.iter().map(|q| q.to_sdk(period_s)).collect();
    let mut out = Series::new();
    // The paginator sends a request only when the next page is read: each item is one request.
    let mut pages = clients
        .cloudwatch
        .get_metric_data()
        .set_metric_data_queries(Some(sdk_queries))
        .start_time(DateTime::from_secs(window.start_epoch_s))
        .end_time(DateTime::from_secs(window.end_epoch_s))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        report.calls += 1;
        let page = page.map_err(|e| {
            AwsError::new(
                "cloudwatch:GetMetricData",
                format!("{} queries", chunk.len()),
                e,
            )
        })?;
        for r in page.metric_data_results() {
            let Some(id) = r.id() else { continue };
            let entry = out.entry(id.to_owned()).or_default();
            for (t, v) in r.timestamps().iter().zip(r.values()) {
                entry.push((t.secs(), *v));
            }
        }
    }
    for v in out.values_mut() {
        v.sort_by_key(|(t, _)| *t);
    }
    Ok(out)
}

/// Folds one query's datapoints into a single number; `None` when there are none.
pub fn fold(series: &Series, id: &str, how: Fold, weights: Option<&str>) -> Option<f64> {
    let points = series.get(id).filter(|p| !p.is_empty())?;
    Some(match how {
        Fold::Sum => points.iter().map(|(_, v)| v).sum(),
        Fold::Max => points
            .iter()
            .map(|(_, v)| *v)
            .fold(f64::NEG_INFINITY, f64::max),
        Fold::Mean => {
            let by_t: BTreeMap<i64, f64> = weights
                .and_then(|w| series.get(w))
                .into_iter()
                .flatten()
                .copied()
                .collect();
            let (mut num, mut den) = (0.0, 0.0);
            for (t, v) in points {
                let w = by_t.get(t).copied().unwrap_or(1.0);
                num += v * w;
                den += w;
            }
            if den > 0.0 { num / den } else { return None }
        }
    })
}

/// The statistics verification reads for one function since a change.
const HEALTH_STATS: [(&str, &str, &str); 5] = [
    ("inv", "Invocations", "Sum"),
    ("err", "Errors", "Sum"),
    ("thr", "Throttles", "Sum"),
    ("davg", "Duration", "Average"),
    ("dn", "Duration", "SampleCount"),
];

/// Queries for the health of `functions` (by name): five statistics each, plus p99 of Duration
/// when asked, ids `h{i}_*`.
pub fn health_queries(functions: &[&str], percentiles: bool) -> Vec<Query> {
    let mut out = Vec::with_capacity(functions.len() * (HEALTH_STATS.len() + 1));
    for (i, name) in functions.iter().enumerate() {
        let p99 = [("p99", "Duration", "p99")];
        let extra = if percentiles { &p99[..] } else { &[] };
        for &(suffix, metric, stat) in HEALTH_STATS.iter().chain(extra) {
            out.push(Query {
                id: format!("h{i}_{suffix}"),
                namespace: "AWS/Lambda",
                metric_name: metric,
                dimensions: vec![("FunctionName".to_owned(), (*name).to_owned())],
                stat,
            });
        }
    }
    out
}

/// Reads the health of the `i`-th function of a [`health_queries`] request.
pub fn health(series: &Series, i: usize) -> trimtab_core::records::Health {
    let id = |s: &str| format!("h{i}_{s}");
    trimtab_core::records::Health {
        invocations: fold(series, &id("inv"), Fold::Sum, None).unwrap_or(0.0),
        errors: fold(series, &id("err"), Fold::Sum, None).unwrap_or(0.0),
        throttles: fold(series, &id("thr"), Fold::Sum, None).unwrap_or(0.0),
        duration_avg_ms: fold(series, &id("davg"), Fold::Mean, Some(&id("dn"))),
        duration_p99_ms: fold(series, &id("p99"), Fold::Max, None),
    }
}

/// Hourly peak concurrency of `functions` (by name), ids `c{i}`.
pub fn concurrency_queries(functions: &[&str]) -> Vec<Query> {
    functions
        .iter()
        .enumerate()
        .map(|(i, name)| Query {
            id: format!("c{i}"),
            namespace: "AWS/Lambda",
            metric_name: "ConcurrentExecutions",
            dimensions: vec![("FunctionName".to_owned(), (*name).to_owned())],
            stat: "Maximum",
        })
        .collect()
}

/// The account's peak concurrency (`ConcurrentExecutions` without a dimension: every function in
/// the region), id `acct`.
pub fn account_concurrency_query() -> Query {
    Query {
        id: "acct".to_owned(),
        namespace: "AWS/Lambda",
        metric_name: "ConcurrentExecutions",
        dimensions: Vec::new(),
        stat: "Maximum",
    }
}

/// The statistics right-sizing reads for one function: (suffix, namespace, metric, stat).
const LAMBDA_STATS: [(&str, &str, &str, &str); 12] = [
    ("inv", "AWS/Lambda", "Invocations", "Sum"),
    ("err", "AWS/Lambda", "Errors", "Sum"),
    ("thr", "AWS/Lambda", "Throttles", "Sum"),
    ("davg", "AWS/Lambda", "Duration", "Average"),
    ("dmax", "AWS/Lambda", "Duration", "Maximum"),
    ("dn", "AWS/Lambda", "Duration", "SampleCount"),
    ("conc", "AWS/Lambda", "ConcurrentExecutions", "Maximum"),
    ("mem", "LambdaInsights", "used_memory_max", "Maximum"),
    ("memu", "LambdaInsights", "memory_utilization", "Maximum"),
    ("cpu", "LambdaInsights", "cpu_total_time", "Average"),
    ("init", "LambdaInsights", "init_duration", "Average"),
    ("initn", "LambdaInsights", "init_duration", "SampleCount"),
];
const PERCENTILES: [(&str, &str); 3] = [("p50", "p50"), ("p95", "p95"), ("p99", "p99")];

/// The queries for right-sizing `functions`: twelve statistics each, plus three percentiles of
/// `Duration` when asked.
pub fn lambda_queries(functions: &[FunctionConfig], percentiles: bool) -> Vec<Query> {
    let mut out = Vec::with_capacity(functions.len() * 15);
    for (i, f) in functions.iter().enumerate() {
        for (suffix, ns, metric, stat) in LAMBDA_STATS {
            let dim = if ns == "LambdaInsights" {
                "function_name"
            } else {
                "FunctionName"
            };
            out.push(Query {
                id: format!("f{i}_{suffix}"),
                namespace: ns,
                metric_name: metric,
                dimensions: vec![(dim.to_owned(), f.name.clone())],
                stat,
            });
        }
        if percentiles {
            for (suffix, stat) in PERCENTILES {
                out.push(Query {
                    id: format!("f{i}_{suffix}"),
                    namespace: "AWS/Lambda",
                    metric_name: "Duration",
                    dimensions: vec![("FunctionName".to_owned(), f.name.clone())],
                    stat,
                });
            }
        }
    }
    out
}

/// Reads the metrics of the `i`-th function of a [`lambda_queries`] request out of `series`.
pub fn lambda_metrics(series: &Series, i: usize, memory_mb: u32) -> FunctionMetrics {
    let id = |s: &str| format!("f{i}_{s}");
    let get = |s: &str, how: Fold| fold(series, &id(s), how, None);
    let mean_by = |s: &str, w: &str| fold(series, &id(s), Fold::Mean, Some(&id(w)));
    // Peak memory: used_memory_max, else memory_utilization (% of configured memory).
    let used = get("mem", Fold::Max)
        .or_else(|| get("memu", Fold::Max).map(|pct| pct / 100.0 * f64::from(memory_mb)));
    let invocations = get("inv", Fold::Sum).unwrap_or(0.0);
    FunctionMetrics {
        invocations,
        errors: get("err", Fold::Sum).unwrap_or(0.0),
        throttles: get("thr", Fold::Sum).unwrap_or(0.0),
        duration_avg_ms: mean_by("davg", "dn"),
        duration_max_ms: get("dmax", Fold::Max),
        duration_p50_ms: get("p50", Fold::Max),
        duration_p95_ms: get("p95", Fold::Max),
        duration_p99_ms: get("p99", Fold::Max),
        concurrent_executions_max: get("conc", Fold::Max),
        used_memory_max_mb: used,
        memory_evidence: used.map(|_| MemoryEvidence::Insights),
        cpu_total_time_avg_ms: mean_by("cpu", "dn"),
        init_duration_avg_ms: mean_by("init", "initn"),
        cold_starts: get("initn", Fold::Sum),
        duration_mean_noise: mean_noise(series, &id("davg"), &id("dn")),
    }
}

/// The relative standard error of the window's mean duration, from its datapoints (one a day):
/// the spread of the daily means over their count's square root. `None` under three days with
/// invocations.
fn mean_noise(series: &Series, davg: &str, dn: &str) -> Option<f64> {
    let counts: BTreeMap<i64, f64> = series.get(dn)?.iter().copied().collect();
    let daily: Vec<f64> = series
        .get(davg)?
        .iter()
        .filter(|(t, _)| counts.get(t).is_some_and(|n| *n > 0.0))
        .map(|(_, v)| *v)
        .collect();
    trimtab_core::stats::relative_standard_error(&daily)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_packed_by_queries_and_by_datapoints() {
        let days = |d: i64| Window {
            start_epoch_s: 0,
            end_epoch_s: d * 86_400,
        };
        // One datapoint a query: 500 a call.
        assert_eq!(queries_per_call(days(14), 14 * 86_400), 500);
        // Fourteen days hourly: 336 points a query, 300 queries fill 100,800.
        assert_eq!(queries_per_call(days(14), 3_600), 300);
        // Three days in five minutes: 864 points, 116 queries.
        assert_eq!(queries_per_call(days(3), 300), 116);
        // Fourteen days by the minute: 20,160 points, 5 queries.
        assert_eq!(queries_per_call(days(14), 60), 5);
        // Never none.
        assert_eq!(queries_per_call(days(365), 60), 1);
    }

    #[test]
    fn weighted_mean_uses_sample_counts_by_timestamp() {
        let mut s = Series::new();
        s.insert("a".into(), vec![(0, 100.0), (60, 200.0)]);
        s.insert("n".into(), vec![(0, 3.0), (60, 1.0)]);
        assert_eq!(fold(&s, "a", Fold::Mean, Some("n")), Some(125.0));
        assert_eq!(fold(&s, "a", Fold::Sum, None), Some(300.0));
        assert_eq!(fold(&s, "a", Fold::Max, None), Some(200.0));
        assert_eq!(fold(&s, "missing", Fold::Max, None), None);
    }

    #[test]
    fn fifteen_queries_per_function_with_unique_ids() {
        let f = FunctionConfig {
            name: "x".into(),
            arn: String::new(),
            architecture: trimtab_core::pricing::Architecture::Arm64,
            memory_mb: 128,
            timeout_s: 3,
            ephemeral_storage_mb: 512,
            tags: Default::default(),
            last_modified_epoch_s: None,
        };
        let q = lambda_queries(&[f.clone(), f], true);
        assert_eq!(q.len(), 30);
        let ids: std::collections::HashSet<_> = q.iter().map(|q| q.id.clone()).collect();
        assert_eq!(ids.len(), 30);
        assert!(q.iter().all(|q| q.id.starts_with('f')));
    }
}
