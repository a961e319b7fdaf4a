//! Judging what the performance monitor measured: one SLO subject (an API stage or a function)
//! or one DynamoDB table at a time, from plain measurements the shell gathered, to the report
//! row and the bottlenecks it explains. The shell only builds queries, fetches and folds them.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::monitor::SubjectKind;
use crate::slo::{
    Bottleneck, BurnAlert, Counts, ErrorBudget, Objectives, burn_alerts, burn_rate, error_budget,
    failure_budget, slow_budget,
};
use crate::stats::round2;

/// The burn-rate windows a report shows, minutes.
pub const BURN_WINDOWS: [(&str, usize); 5] = [
    ("5m", 5),
    ("30m", 30),
    ("1h", 60),
    ("6h", 360),
    ("3d", 4320),
];

/// What was measured for one subject over the SLO window (`None`: the backend had no
/// datapoints), and its recent five-minute counts for the burn-rate windows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubjectMetrics {
    pub requests: f64,
    pub errors: f64,
    /// Throttled invocations (functions): requests that never ran, so failed ones.
    pub throttles: f64,
    pub latency_p95_ms: Option<f64>,
    pub latency_mean_ms: Option<f64>,
    /// Cold starts (Lambda Insights `init_duration` samples), their mean init time, and
    /// invocations that spilled past provisioned concurrency.
    pub cold_starts: Option<f64>,
    pub init_mean_ms: Option<f64>,
    pub provisioned_spillover: Option<f64>,
    pub peak_concurrency: Option<f64>,
    /// APIs: integration latency (the highest of the window's means), 4xx, cache hits/misses.
    pub integration_latency_ms: Option<f64>,
    pub client_errors: Option<f64>,
    pub cache_hits: Option<f64>,
    pub cache_misses: Option<f64>,
    /// Five-minute counts, oldest first, throttles already counted as failed requests.
    pub recent: Vec<Counts>,
}

/// One SLO subject, judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubjectReport {
    pub id: String,
    pub requests: f64,
    pub errors: f64,
    pub error_rate_pct: f64,
    pub availability_pct: f64,
    pub latency_p95_ms: Option<f64>,
    /// `p95`, or `mean` where the backend computes no percentiles.
    pub latency_statistic: &'static str,
    pub meets: BTreeMap<&'static str, bool>,
    pub error_budget: ErrorBudget,
    /// Burn rates of the alert windows: 5m, 30m, 1h, 6h, 3d.
    pub burn_rates: BTreeMap<&'static str, f64>,
    pub alerts: Vec<BurnAlert>,
    /// Further measurements over the window: client errors, cache hit ratio (REST), integration
    /// latency (APIs); peak concurrency, provisioned-concurrency spillover, cold starts (functions).
    pub evidence: BTreeMap<&'static str, f64>,
}

/// A subject's judgement: its report row, the failures its objective allows over the window,
/// and the causes of spent budget the measurements show.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub report: SubjectReport,
    pub failure_budget: f64,
    pub bottlenecks: Vec<Bottleneck>,
}

/// Judges one subject over a window of `window_days` against `o`. `resource` names it in
/// bottlenecks (the function name, or the subject id of an API stage).
pub fn judge_subject(
    id: &str,
    resource: &str,
    kind: SubjectKind,
    m: &SubjectMetrics,
    o: &Objectives,
    window_days: u32,
) -> Judged {
    let is_fn = kind == SubjectKind::Function;
    let throttles = if is_fn { m.throttles } else { 0.0 };
    // A throttled invocation never ran: it is a request, and a failed one.
    let window = Counts {
        requests: m.requests + throttles,
        errors: m.errors + throttles,
    };
    let rates: BTreeMap<&'static str, f64> = BURN_WINDOWS
        .into_iter()
        .map(|(k, minutes)| {
            let rate = burn_rate(&m.recent, 5, minutes, o.availability_pct);
            (k, round2(rate))
        })
        .collect();
    let budget = error_budget(
        window,
        o.availability_pct,
        rates["3d"],
        f64::from(window_days),
    );
    let (latency, stat) = match m.latency_p95_ms {
        Some(p) => (Some(p), "p95"),
        None => (m.latency_mean_ms, "mean"),
    };
    let error_rate = 100.0 * window.ratio();
    let meets = BTreeMap::from([
        ("latency", latency.is_none_or(|l| l <= o.latency_p95_ms)),
        ("error_rate", error_rate <= o.error_rate_pct),
        ("availability", 100.0 - error_rate >= o.availability_pct),
    ]);
    let failures_allowed = failure_budget(window.requests, o.availability_pct);
    let bottlenecks = if is_fn {
        function_bottlenecks(resource, m, latency, o, (failures_allowed, window_days))
    } else {
        api_bottlenecks(resource, m, (latency, stat), o, window.requests)
    };
    Judged {
        report: SubjectReport {
            id: id.to_owned(),
            requests: window.requests,
            errors: window.errors,
            error_rate_pct: round2(error_rate),
            availability_pct: round2(100.0 - error_rate),
            latency_p95_ms: latency.map(round2),
            latency_statistic: stat,
            meets,
            error_budget: budget,
            alerts: burn_alerts(&m.recent, 5, o.availability_pct),
            burn_rates: rates,
            evidence: evidence(m, window.requests),
        },
        failure_budget: failures_allowed,
        bottlenecks,
    }
}

/// Throttling spends the failure budget; cold starts whose init plus a typical run passes the
/// latency objective are slow requests.
fn function_bottlenecks(
    name: &str,
    m: &SubjectMetrics,
    latency: Option<f64>,
    o: &Objectives,
    (failures_allowed, window_days): (f64, u32),
) -> Vec<Bottleneck> {
    let mut found = Vec::new();
    if m.throttles > 0.0 {
        found.push(bottleneck(
            name,
            "throttling",
            (m.throttles, failures_allowed),
            format!(
                "{:.0} throttled invocations in {window_days} days",
                m.throttles
            ),
            "raise or set reserved concurrency; consider provisioned concurrency",
            "rightsizing",
        ));
    }
    let cold = m.cold_starts.unwrap_or(0.0) + m.provisioned_spillover.unwrap_or(0.0);
    let init = m.init_mean_ms.unwrap_or(0.0);
    let typical = m.latency_mean_ms.or(latency).unwrap_or(0.0);
    if cold > 0.0 && init + typical > o.latency_p95_ms {
        let slow_allowed = slow_budget(m.requests + m.throttles, 95.0);
        found.push(bottleneck(
            name,
            "cold starts",
            (cold, slow_allowed),
            format!(
                "{cold:.0} cold starts adding {init:.0} ms each, past the {} ms objective",
                o.latency_p95_ms
            ),
            "provisioned concurrency on the alias (trimtab:alias, trimtab:latency-objective-ms)",
            "rightsizing",
        ));
    }
    found
}

/// A stage over its latency objective whose integration takes most of the time: the backend is
/// the bottleneck. p95 over the objective means at least the 5% of requests it allows are slow.
fn api_bottlenecks(
    id: &str,
    m: &SubjectMetrics,
    (latency, stat): (Option<f64>, &str),
    o: &Objectives,
    requests: f64,
) -> Vec<Bottleneck> {
    let (Some(lat), Some(int)) = (latency, m.integration_latency_ms) else {
        return Vec::new();
    };
    if lat <= o.latency_p95_ms || int <= 0.8 * m.latency_mean_ms.unwrap_or(lat) {
        return Vec::new();
    }
    let slow_allowed = slow_budget(requests, 95.0);
    vec![bottleneck(
        id,
        "slow integration",
        (slow_allowed, slow_allowed),
        format!(
            "{stat} latency {lat:.0} ms over {} ms; the integration takes {int:.0} ms of it",
            o.latency_p95_ms
        ),
        "right-size the backing function",
        "rightsizing",
    )]
}

/// The extra measurements the backend reported.
fn evidence(m: &SubjectMetrics, requests: f64) -> BTreeMap<&'static str, f64> {
    let mut e = BTreeMap::new();
    if let Some(v) = m.client_errors {
        e.insert("client_errors", v);
        if requests > 0.0 {
            e.insert("client_error_rate_pct", round2(100.0 * v / requests));
        }
    }
    if let (Some(hit), Some(miss)) = (m.cache_hits, m.cache_misses)
        && hit + miss > 0.0
    {
        e.insert("cache_hit_ratio_pct", round2(100.0 * hit / (hit + miss)));
    }
    for (key, v) in [
        ("integration_latency_ms", m.integration_latency_ms),
        ("peak_concurrency", m.peak_concurrency),
        ("provisioned_spillover_invocations", m.provisioned_spillover),
        ("cold_starts", m.cold_starts),
    ] {
        if let Some(v) = v {
            e.insert(key, round2(v));
        }
    }
    e
}

/// What was measured for one table over the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableMetrics {
    /// Consumed units summed over the window.
    pub consumed_read_units: f64,
    pub consumed_write_units: f64,
    /// Mean provisioned units (`None`: on-demand, or no datapoints).
    pub provisioned_read_units: Option<f64>,
    pub provisioned_write_units: Option<f64>,
    pub throttle_events: f64,
    pub get_item_latency_ms: Option<f64>,
    pub put_item_latency_ms: Option<f64>,
}

/// A table in scope, over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableReport {
    pub table_name: String,
    /// Consumed over provisioned capacity, percent (`None` when on-demand).
    pub read_utilization_pct: Option<f64>,
    pub write_utilization_pct: Option<f64>,
    pub throttle_events: f64,
    pub get_item_latency_ms: Option<f64>,
    pub put_item_latency_ms: Option<f64>,
}

/// Judges one table over a window of `window_s` seconds (`window_days` for the evidence). Its
/// throttling is measured against the estate's failure budget: a throttled table fails the
/// requests of whatever calls it.
pub fn judge_table(
    name: &str,
    m: &TableMetrics,
    (window_s, window_days): (i64, u32),
    estate_failure_budget: f64,
) -> (TableReport, Option<Bottleneck>) {
    let seconds = window_s.max(1) as f64;
    // Consumed units (a sum over the window) per second, over the mean provisioned units.
    let util = |consumed: f64, provisioned: Option<f64>| {
        let p = provisioned.filter(|p| *p > 0.0)?;
        Some(round2(100.0 * consumed / seconds / p))
    };
    let thr = m.throttle_events;
    let bottleneck = (thr > 0.0).then(|| {
        bottleneck(
            name,
            "DynamoDB throttling",
            (thr, estate_failure_budget),
            format!("{thr:.0} throttle events in {window_days} days"),
            "let the DynamoDB job choose capacity or on-demand",
            "dynamodb-scaling",
        )
    });
    let report = TableReport {
        table_name: name.to_owned(),
        read_utilization_pct: util(m.consumed_read_units, m.provisioned_read_units),
        write_utilization_pct: util(m.consumed_write_units, m.provisioned_write_units),
        throttle_events: thr,
        get_item_latency_ms: m.get_item_latency_ms.map(round2),
        put_item_latency_ms: m.put_item_latency_ms.map(round2),
    };
    (report, bottleneck)
}

/// A bottleneck with its (bad events, events its budget allows); ranking fills in the share.
fn bottleneck(
    resource: &str,
    kind: &str,
    (bad, allowed): (f64, f64),
    evidence: String,
    action: &str,
    job: &str,
) -> Bottleneck {
    Bottleneck {
        resource: resource.to_owned(),
        kind: kind.to_owned(),
        bad_events: bad,
        budget_events: allowed,
        budget_pct: 0.0,
        measurable: false,
        evidence,
        action: action.to_owned(),
        job: job.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::Environment;
    use crate::slo::{Severity, default_objectives};

    fn steady(n: usize, requests: f64, errors: f64) -> Vec<Counts> {
        vec![Counts { requests, errors }; n]
    }

    #[test]
    fn throttles_are_failed_requests_and_a_bottleneck() {
        let o = default_objectives(Environment::Prod);
        let m = SubjectMetrics {
            requests: 100_000.0,
            errors: 0.0,
            throttles: 500.0,
            latency_p95_ms: Some(120.0),
            recent: steady(864, 100.0, 0.0),
            ..SubjectMetrics::default()
        };
        let j = judge_subject("fn-a", "a", SubjectKind::Function, &m, &o, 30);
        assert_eq!(j.report.requests, 100_500.0);
        assert_eq!(j.report.errors, 500.0);
        assert!(!j.report.meets["availability"]);
        assert_eq!(j.report.latency_statistic, "p95");
        assert_eq!(j.bottlenecks.len(), 1);
        assert_eq!(j.bottlenecks[0].kind, "throttling");
        // 99.9% of 100,500 requests: 100.5 failures allowed; 500 spent.
        assert!((j.failure_budget - 100.5).abs() < 1e-6);
        assert!((j.bottlenecks[0].budget_events - 100.5).abs() < 1e-6);
    }

    #[test]
    fn cold_starts_count_only_when_they_pass_the_objective() {
        let o = default_objectives(Environment::Prod); // 200 ms
        let mut m = SubjectMetrics {
            requests: 10_000.0,
            latency_mean_ms: Some(50.0),
            cold_starts: Some(40.0),
            init_mean_ms: Some(100.0),
            ..SubjectMetrics::default()
        };
        let quick = judge_subject("fn-a", "a", SubjectKind::Function, &m, &o, 30);
        assert!(quick.bottlenecks.is_empty(), "50 + 100 ms stays under 200");
        m.init_mean_ms = Some(400.0);
        let slow = judge_subject("fn-a", "a", SubjectKind::Function, &m, &o, 30);
        assert_eq!(slow.bottlenecks[0].kind, "cold starts");
        // 5% of 10,000 requests may be slow.
        assert!((slow.bottlenecks[0].budget_events - 500.0).abs() < 1e-6);
        assert_eq!(slow.report.latency_statistic, "mean");
        assert_eq!(slow.report.evidence["cold_starts"], 40.0);
    }

    #[test]
    fn a_slow_backend_behind_an_api_is_named() {
        let o = default_objectives(Environment::Prod);
        let m = SubjectMetrics {
            requests: 2_000.0,
            latency_p95_ms: Some(450.0),
            latency_mean_ms: Some(300.0),
            integration_latency_ms: Some(280.0),
            client_errors: Some(20.0),
            cache_hits: Some(30.0),
            cache_misses: Some(70.0),
            ..SubjectMetrics::default()
        };
        let j = judge_subject("api-x-prod", "api-x-prod", SubjectKind::RestApi, &m, &o, 30);
        assert_eq!(j.bottlenecks[0].kind, "slow integration");
        assert_eq!(j.report.evidence["client_error_rate_pct"], 1.0);
        assert_eq!(j.report.evidence["cache_hit_ratio_pct"], 30.0);
        // Throttles are a function's measure only.
        let mut with_throttles = m.clone();
        with_throttles.throttles = 9.0;
        let api = judge_subject(
            "api-x-prod",
            "x",
            SubjectKind::HttpApi,
            &with_throttles,
            &o,
            30,
        );
        assert_eq!(api.report.requests, 2_000.0);
        // A quick integration behind a slow stage is not the backend's fault.
        let quick = SubjectMetrics {
            integration_latency_ms: Some(50.0),
            ..m
        };
        let j = judge_subject("api-x-prod", "x", SubjectKind::RestApi, &quick, &o, 30);
        assert!(j.bottlenecks.is_empty());
    }

    #[test]
    fn a_burning_subject_pages() {
        let o = default_objectives(Environment::Prod);
        let mut recent = steady(864, 1_000.0, 0.0);
        for c in recent.iter_mut().rev().take(12) {
            c.errors = 100.0; // 10% failing for the last hour: burn rate 100
        }
        let m = SubjectMetrics {
            requests: 864_000.0,
            errors: 1_200.0,
            recent,
            ..SubjectMetrics::default()
        };
        let j = judge_subject("fn-a", "a", SubjectKind::Function, &m, &o, 3);
        assert!(j.report.alerts.iter().any(|a| a.severity == Severity::Page));
        assert_eq!(j.report.burn_rates["1h"], 100.0);
        assert!(j.report.error_budget.days_to_exhaustion.is_some());
    }

    #[test]
    fn table_utilisation_is_consumed_per_second_over_provisioned() {
        let m = TableMetrics {
            consumed_read_units: 86_400.0 * 5.0,
            consumed_write_units: 0.0,
            provisioned_read_units: Some(10.0),
            provisioned_write_units: None,
            throttle_events: 12.0,
            get_item_latency_ms: Some(3.456),
            put_item_latency_ms: None,
        };
        let (r, b) = judge_table("orders", &m, (86_400, 1), 40.0);
        assert_eq!(r.read_utilization_pct, Some(50.0));
        assert_eq!(r.write_utilization_pct, None);
        assert_eq!(r.get_item_latency_ms, Some(3.46));
        let b = b.expect("throttled");
        assert_eq!((b.bad_events, b.budget_events), (12.0, 40.0));
        let calm = TableMetrics {
            throttle_events: 0.0,
            ..m
        };
        assert!(judge_table("orders", &calm, (86_400, 1), 40.0).1.is_none());
    }
}
