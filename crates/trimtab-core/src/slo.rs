//! Service level objectives: error budgets over a rolling 30 days, multi-window multi-burn-rate
//! alerts, bottlenecks ranked by how much of their objective's budget they spend, and a health
//! score.
//!
//! **Burn-rate alerts** follow the Google SRE workbook ("Alerting on SLOs", table 5-8) for a
//! 30-day budget. The burn rate of a window is its bad-event ratio over the budget ratio
//! `1 − availability`; 1 spends the budget exactly in 30 days.
//! - page: 1 h and 5 m windows both burning at ≥ 14.4 (2% of the budget in an hour), or
//!   6 h and 30 m both at ≥ 6 (5% in six hours);
//! - ticket: 3 d and 6 h both at ≥ 1 (10% in three days).
//!
//! The short window confirms the long one is still burning, so an alert resets soon after the
//! burst ends.
//!
//! **Health score** = 100 × the smallest remaining share of any SLO's error budget (0 when a budget
//! is spent): a number read straight off budget consumption, no invented weights.

use serde::{Deserialize, Serialize};

use crate::environment::Environment;
use crate::stats::round2;

/// Objectives of one environment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objectives {
    /// p95 latency must stay under this, ms.
    pub latency_p95_ms: f64,
    /// Share of requests that may fail, percent.
    pub error_rate_pct: f64,
    /// Share of requests that must succeed, percent.
    pub availability_pct: f64,
}

/// The seeds' defaults per environment.
pub fn default_objectives(environment: Environment) -> Objectives {
    match environment {
        Environment::Prod => Objectives {
            latency_p95_ms: 200.0,
            error_rate_pct: 1.0,
            availability_pct: 99.9,
        },
        Environment::Staging => Objectives {
            latency_p95_ms: 300.0,
            error_rate_pct: 2.0,
            availability_pct: 99.5,
        },
        Environment::Dev => Objectives {
            latency_p95_ms: 500.0,
            error_rate_pct: 5.0,
            availability_pct: 95.0,
        },
    }
}

/// Good and bad events in one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub requests: f64,
    pub errors: f64,
}

impl Counts {
    pub fn ratio(&self) -> f64 {
        if self.requests > 0.0 {
            (self.errors / self.requests).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// A burn-rate rule: two windows (minutes) and the rate both must reach.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BurnRule {
    pub severity: Severity,
    pub long_min: usize,
    pub short_min: usize,
    pub burn_rate: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Page,
    Ticket,
}

/// The workbook's three rules for a 30-day budget.
pub const BURN_RULES: [BurnRule; 3] = [
    BurnRule {
        severity: Severity::Page,
        long_min: 60,
        short_min: 5,
        burn_rate: 14.4,
    },
    BurnRule {
        severity: Severity::Page,
        long_min: 360,
        short_min: 30,
        burn_rate: 6.0,
    },
    BurnRule {
        severity: Severity::Ticket,
        long_min: 4320,
        short_min: 360,
        burn_rate: 1.0,
    },
];

/// A firing burn-rate alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BurnAlert {
    pub severity: Severity,
    pub rule: String,
    pub long_burn_rate: f64,
    pub short_burn_rate: f64,
}

/// Burn rate over the last `minutes` of a series of `step_min`-minute intervals (latest last).
pub fn burn_rate(series: &[Counts], step_min: usize, minutes: usize, availability_pct: f64) -> f64 {
    let n = minutes.div_ceil(step_min.max(1)).min(series.len());
    let w = series[series.len() - n..]
        .iter()
        .fold(Counts::default(), |a, c| Counts {
            requests: a.requests + c.requests,
            errors: a.errors + c.errors,
        });
    let budget = (1.0 - availability_pct / 100.0).max(1e-9);
    w.ratio() / budget
}

/// The rules that fire on the latest intervals.
pub fn burn_alerts(series: &[Counts], step_min: usize, availability_pct: f64) -> Vec<BurnAlert> {
    BURN_RULES
        .iter()
        .filter_map(|r| {
            let long = burn_rate(series, step_min, r.long_min, availability_pct);
            let short = burn_rate(series, step_min, r.short_min, availability_pct);
            (long >= r.burn_rate && short >= r.burn_rate).then(|| BurnAlert {
                severity: r.severity,
                rule: format!("{}m/{}m >= {}", r.long_min, r.short_min, r.burn_rate),
                long_burn_rate: round2(long),
                short_burn_rate: round2(short),
            })
        })
        .collect()
}

/// The error budget over the SLO window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBudget {
    pub objective_pct: f64,
    pub requests: f64,
    pub bad: f64,
    /// Bad events allowed in the window.
    pub allowed: f64,
    pub consumed_pct: f64,
    pub remaining_pct: f64,
    /// Days until the budget is spent at the recent burn rate (`None`: not burning).
    pub days_to_exhaustion: Option<f64>,
}

/// Budget over the window's totals; `recent_burn_rate` (per 30 days) projects exhaustion.
pub fn error_budget(
    window: Counts,
    objective_pct: f64,
    recent_burn_rate: f64,
    window_days: f64,
) -> ErrorBudget {
    let allowed = window.requests * (1.0 - objective_pct / 100.0);
    let consumed = if allowed > 0.0 {
        window.errors / allowed
    } else if window.errors > 0.0 {
        1.0
    } else {
        0.0
    };
    let remaining = (1.0 - consumed).max(0.0);
    // At burn rate b the whole budget goes in window_days / b days.
    let days = (recent_burn_rate > 0.0).then(|| remaining * window_days / recent_burn_rate);
    ErrorBudget {
        objective_pct,
        requests: window.requests,
        bad: window.errors,
        allowed: round2(allowed),
        consumed_pct: round2(100.0 * consumed),
        remaining_pct: round2(100.0 * remaining),
        days_to_exhaustion: days.map(round2),
    }
}

/// Health in 0..=100 from the remaining shares of the budgets (see the module docs).
pub fn health_score(budgets: &[&ErrorBudget]) -> f64 {
    budgets
        .iter()
        .map(|b| b.remaining_pct)
        .fold(100.0, f64::min)
        .clamp(0.0, 100.0)
}

/// Something that spends the budget, with evidence and the job that can fix it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bottleneck {
    pub resource: String,
    pub kind: String,
    /// Bad events (failed or slow requests) it explains over the window.
    pub bad_events: f64,
    /// The bad events its objective allows over the window: the error budget for failures, or
    /// the requests a p95 latency objective lets be slow (5%).
    pub budget_events: f64,
    /// How much of that budget it spends, percent: 100 means that alone it spends all of it.
    pub budget_pct: f64,
    /// Whether the traffic was enough for the objective to allow at least one bad event over the
    /// window. Below that a single slow or failed request is already hundreds of percent of the
    /// budget, so the share says more about the traffic than about the cause.
    #[serde(default)]
    pub measurable: bool,
    pub evidence: String,
    pub action: String,
    /// The Trimtab job that acts on it.
    pub job: String,
}

/// The requests a latency objective on percentile `p` (95 for p95) lets be slower than it.
pub fn slow_budget(requests: f64, percentile: f64) -> f64 {
    requests * (1.0 - percentile / 100.0).max(0.0)
}

/// The failed requests an availability objective allows.
pub fn failure_budget(requests: f64, availability_pct: f64) -> f64 {
    requests * (1.0 - availability_pct / 100.0).max(0.0)
}

/// Ranks candidate causes by how much of their objective's budget each spends: a cause that
/// spends a larger part of its own budget burns its SLO faster, whatever the traffic. Causes on
/// subjects with too little traffic for their objective to allow one bad event over the window
/// (fewer than 20 requests for a p95, 1,000 for 99.9%) come after all the measurable ones: their
/// share is real but rests on a handful of requests, the SRE workbook's low-traffic case.
pub fn rank_bottlenecks(mut found: Vec<Bottleneck>) -> Vec<Bottleneck> {
    for b in &mut found {
        b.measurable = b.budget_events >= 1.0;
        // Without a budget (no traffic to measure it on) any bad event spends all of it.
        b.budget_pct = if b.budget_events > 0.0 {
            round2(100.0 * b.bad_events / b.budget_events)
        } else {
            100.0
        };
    }
    found.retain(|b| b.bad_events > 0.0);
    found.sort_by(|a, b| {
        b.measurable
            .cmp(&a.measurable)
            .then(b.budget_pct.total_cmp(&a.budget_pct))
            .then(b.bad_events.total_cmp(&a.bad_events))
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steady(n: usize, requests: f64, errors: f64) -> Vec<Counts> {
        vec![Counts { requests, errors }; n]
    }

    #[test]
    fn burn_rate_is_the_error_ratio_over_the_budget_ratio() {
        // 0.1% errors against a 99.9% objective: exactly 1.
        let s = steady(12, 1000.0, 1.0);
        assert!((burn_rate(&s, 5, 60, 99.9) - 1.0).abs() < 1e-9);
        // 1.44% errors: 14.4.
        let s = steady(12, 1000.0, 14.4);
        assert!((burn_rate(&s, 5, 60, 99.9) - 14.4).abs() < 1e-9);
    }

    #[test]
    fn a_fast_burst_pages_and_a_quiet_series_does_not() {
        // Three days of 5-minute intervals at 0.05% errors, then the last hour at 2%.
        let mut s = steady(864 - 12, 1000.0, 0.5);
        s.extend(steady(12, 1000.0, 20.0));
        let alerts = burn_alerts(&s, 5, 99.9);
        assert!(
            alerts
                .iter()
                .any(|a| a.severity == Severity::Page && a.rule.starts_with("60m")),
            "{alerts:?}"
        );
        assert!(burn_alerts(&steady(864, 1000.0, 0.5), 5, 99.9).is_empty());
    }

    #[test]
    fn the_burst_must_still_be_burning_to_page() {
        // The same burst, but it ended 30 minutes ago: the 5-minute window clears the page.
        let mut s = steady(864 - 18, 1000.0, 0.5);
        s.extend(steady(12, 1000.0, 20.0));
        s.extend(steady(6, 1000.0, 0.0));
        let alerts = burn_alerts(&s, 5, 99.9);
        assert!(
            !alerts.iter().any(|a| a.rule.starts_with("60m")),
            "{alerts:?}"
        );
    }

    #[test]
    fn a_slow_burn_opens_a_ticket_not_a_page() {
        // 0.15% errors for three days: burn 1.5.
        let alerts = burn_alerts(&steady(864, 1000.0, 1.5), 5, 99.9);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].severity, Severity::Ticket);
    }

    #[test]
    fn budget_consumption_exhaustion_and_health() {
        // 1,000,000 requests at 99.9%: 1,000 allowed; 400 spent; burning at 2x: 60% left of 30
        // days at twice the sustainable rate lasts 9 days.
        let b = error_budget(
            Counts {
                requests: 1.0e6,
                errors: 400.0,
            },
            99.9,
            2.0,
            30.0,
        );
        assert_eq!(
            (b.allowed, b.consumed_pct, b.remaining_pct),
            (1000.0, 40.0, 60.0)
        );
        assert_eq!(b.days_to_exhaustion, Some(9.0));
        let spent = error_budget(
            Counts {
                requests: 1.0e6,
                errors: 2000.0,
            },
            99.9,
            2.0,
            30.0,
        );
        assert_eq!(health_score(&[&b, &spent]), 0.0);
        assert_eq!(health_score(&[&b]), 60.0);
        assert_eq!(
            default_objectives(Environment::Staging).availability_pct,
            99.5
        );
    }

    #[test]
    fn bottlenecks_rank_by_the_share_of_their_budget_they_spend() {
        let mk = |r: &str, bad: f64, budget: f64| Bottleneck {
            resource: r.into(),
            kind: "throttling".into(),
            bad_events: bad,
            budget_events: budget,
            budget_pct: 0.0,
            measurable: false,
            evidence: String::new(),
            action: String::new(),
            job: "rightsizing".into(),
        };
        // 1M requests at 99.9%: 1,000 failures allowed; 2% cold starts against a p95 objective
        // spend 40% of the 5% that may be slow.
        assert_eq!(failure_budget(1.0e6, 99.9).round(), 1000.0);
        assert_eq!(slow_budget(1.0e6, 95.0).round(), 50_000.0);
        let ranked = rank_bottlenecks(vec![
            mk("cold", 20_000.0, slow_budget(1.0e6, 95.0)),
            mk("throttled", 600.0, failure_budget(1.0e6, 99.9)),
            mk("quiet", 0.0, 10.0),
            // 9 cold starts on a function called 9 times: 2,000% of a 0.45-request budget.
            mk("rare", 9.0, slow_budget(9.0, 95.0)),
        ]);
        assert_eq!(ranked.len(), 3);
        assert_eq!(
            (ranked[0].resource.as_str(), ranked[0].budget_pct),
            ("throttled", 60.0)
        );
        assert_eq!(ranked[1].budget_pct, 40.0);
        assert!(ranked[0].measurable && ranked[1].measurable);
        assert_eq!(
            (ranked[2].resource.as_str(), ranked[2].budget_pct),
            ("rare", 2000.0)
        );
        assert!(!ranked[2].measurable);
    }
}
