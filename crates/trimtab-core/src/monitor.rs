//! What the performance monitor keeps in CloudWatch: SLO alarms (latency, error rate, and the
//! burn-rate rules) and one dashboard, built as data from the resources in scope, with the diff
//! against what exists.
//!
//! Each two-window burn-rate rule of the SRE workbook (page when the long window's burn rate AND
//! the short window's are both over the threshold) is three alarms: two metric-math children,
//! one per window, whose period is the window (CloudWatch's default sliding evaluation window
//! makes each a rolling value over it), and a composite alarm `ALARM(long) AND ALARM(short)`
//! that carries the actions. [`evaluate`] replays error series through these definitions as
//! CloudWatch evaluates them (docs/alarms.md).
//!
//! Idempotency: each alarm's description ends with a hash of its specification, so a run compares
//! descriptions and writes only alarms that are missing or changed, and deletes its own alarms
//! (by name prefix) for resources no longer in scope.

use serde::{Deserialize, Serialize};

use crate::slo::{BURN_RULES, Objectives};

/// REST (v1) or HTTP (v2) API: their metrics differ in names and dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKind {
    Rest,
    Http,
}

impl ApiKind {
    pub fn server_errors(self) -> &'static str {
        match self {
            Self::Rest => "5XXError",
            Self::Http => "5xx",
        }
    }

    pub fn client_errors(self) -> &'static str {
        match self {
            Self::Rest => "4XXError",
            Self::Http => "4xx",
        }
    }

    /// Dimensions of a stage: REST by API name, HTTP by API id.
    pub fn dimensions(self, api: &str, stage: &str) -> Vec<(String, String)> {
        let key = match self {
            Self::Rest => "ApiName",
            Self::Http => "ApiId",
        };
        vec![
            (key.to_owned(), api.to_owned()),
            ("Stage".to_owned(), stage.to_owned()),
        ]
    }
}

/// What kind of thing a subject is: its metrics, evidence and bottlenecks differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    Function,
    RestApi,
    HttpApi,
}

/// Something with an SLO: an API stage or a Lambda function.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subject {
    /// Short, unique, alarm-name safe: `api-orders-prod`, `fn-checkout`.
    pub id: String,
    pub kind: SubjectKind,
    /// The function's name, or the API's name (bottlenecks name a stage by its id).
    pub name: String,
    pub namespace: &'static str,
    pub dimensions: Vec<(String, String)>,
    pub requests_metric: &'static str,
    pub errors_metric: &'static str,
    pub latency_metric: &'static str,
}

impl Subject {
    pub fn api(kind: ApiKind, dimension_value: &str, name: &str, stage: &str) -> Self {
        Self {
            id: safe(&format!("api-{name}-{stage}")),
            kind: match kind {
                ApiKind::Rest => SubjectKind::RestApi,
                ApiKind::Http => SubjectKind::HttpApi,
            },
            name: name.to_owned(),
            namespace: "AWS/ApiGateway",
            dimensions: kind.dimensions(dimension_value, stage),
            requests_metric: "Count",
            errors_metric: kind.server_errors(),
            latency_metric: "Latency",
        }
    }

    pub fn function(name: &str) -> Self {
        Self {
            id: safe(&format!("fn-{name}")),
            kind: SubjectKind::Function,
            name: name.to_owned(),
            namespace: "AWS/Lambda",
            dimensions: vec![("FunctionName".into(), name.into())],
            requests_metric: "Invocations",
            errors_metric: "Errors",
            latency_metric: "Duration",
        }
    }
}

fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Where an alarm's datapoints come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AlarmSource {
    /// One metric with an extended statistic (`p95`).
    Single {
        namespace: String,
        metric: String,
        dimensions: Vec<(String, String)>,
        extended_statistic: String,
        period_s: i32,
    },
    /// `scale × numerator / denominator` (sums over the period), as metric math.
    Ratio {
        namespace: String,
        numerator: String,
        denominator: String,
        dimensions: Vec<(String, String)>,
        scale: f64,
        period_s: i32,
        label: String,
    },
}

/// What an alarm watches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AlarmBody {
    /// A metric alarm: in ALARM when `datapoints_to_alarm` of the last `evaluation_periods`
    /// periods are at or over (`at_least`) or over the threshold; missing data is not breaching.
    Metric {
        source: AlarmSource,
        threshold: f64,
        at_least: bool,
        evaluation_periods: i32,
        datapoints_to_alarm: i32,
    },
    /// A composite alarm: in ALARM when every named child is (`ALARM(a) AND ALARM(b)`).
    Composite { all_of: Vec<String> },
}

/// One alarm, fully specified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmSpec {
    pub name: String,
    pub description: String,
    pub body: AlarmBody,
    pub actions: Vec<String>,
}

/// FNV-1a, 64-bit: stable across runs and platforms, enough to tell specifications apart.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl AlarmSpec {
    /// A hash of everything but the description.
    pub fn hash(&self) -> String {
        let key = serde_json::json!([self.name, self.body, self.actions]);
        format!("{:016x}", fnv(key.to_string().as_bytes()))
    }

    pub fn description_with_hash(&self) -> String {
        format!("{} [trimtab:{}]", self.description, self.hash())
    }

    /// The composite alarm's rule in CloudWatch's syntax.
    pub fn rule(&self) -> Option<String> {
        match &self.body {
            AlarmBody::Composite { all_of } => Some(
                all_of
                    .iter()
                    .map(|n| format!("ALARM(\"{n}\")"))
                    .collect::<Vec<_>>()
                    .join(" AND "),
            ),
            AlarmBody::Metric { .. } => None,
        }
    }

    pub fn is_composite(&self) -> bool {
        matches!(self.body, AlarmBody::Composite { .. })
    }
}

/// The prefix of every SLO alarm of an environment: `trimtab-slo-<environment>-`, so stacks of
/// different environments in one account never touch each other's alarms.
pub fn alarm_prefix(environment: &str) -> String {
    format!("trimtab-slo-{environment}-")
}

/// The SLO alarms of every subject, named `<prefix><subject>-<kind>`: p95 latency and error rate
/// (15 minutes over the objective), and per burn-rate rule two window children and the composite
/// that carries the actions.
pub fn desired_alarms(
    prefix: &str,
    subjects: &[Subject],
    o: &Objectives,
    actions: &[String],
) -> Vec<AlarmSpec> {
    let mut out = Vec::new();
    for s in subjects {
        let ratio = |scale: f64, period_s: i32, label: &str| AlarmSource::Ratio {
            namespace: s.namespace.to_owned(),
            numerator: s.errors_metric.to_owned(),
            denominator: s.requests_metric.to_owned(),
            dimensions: s.dimensions.clone(),
            scale,
            period_s,
            label: label.to_owned(),
        };
        let over_15_min = |source: AlarmSource, threshold: f64| AlarmBody::Metric {
            source,
            threshold,
            at_least: false,
            evaluation_periods: 3,
            datapoints_to_alarm: 3,
        };
        out.push(AlarmSpec {
            name: format!("{prefix}{}-latency-p95", s.id),
            description: format!(
                "{}: p95 {} over {} ms for 15 minutes",
                s.id, s.latency_metric, o.latency_p95_ms
            ),
            body: over_15_min(
                AlarmSource::Single {
                    namespace: s.namespace.to_owned(),
                    metric: s.latency_metric.to_owned(),
                    dimensions: s.dimensions.clone(),
                    extended_statistic: "p95".into(),
                    period_s: 300,
                },
                o.latency_p95_ms,
            ),
            actions: actions.to_vec(),
        });
        out.push(AlarmSpec {
            name: format!("{prefix}{}-error-rate", s.id),
            description: format!(
                "{}: error rate over {}% for 15 minutes",
                s.id, o.error_rate_pct
            ),
            body: over_15_min(ratio(100.0, 300, "error rate %"), o.error_rate_pct),
            actions: actions.to_vec(),
        });
        let budget = (1.0 - o.availability_pct / 100.0).max(1e-9);
        for (rule, kind) in BURN_RULES
            .iter()
            .zip(["burn-fast", "burn-slow", "burn-ticket"])
        {
            let name = format!("{prefix}{}-{kind}", s.id);
            let window = |minutes: usize, which: &str| AlarmSpec {
                name: format!("{name}-{which}"),
                description: format!(
                    "{}: error budget ({}% availability) burning at {}x or more over the last {minutes} minutes; part of {name}",
                    s.id, o.availability_pct, rule.burn_rate
                ),
                body: AlarmBody::Metric {
                    source: ratio(1.0 / budget, (minutes * 60) as i32, "burn rate"),
                    threshold: rule.burn_rate,
                    at_least: true,
                    evaluation_periods: 1,
                    datapoints_to_alarm: 1,
                },
                actions: vec![],
            };
            let long = window(rule.long_min, "long");
            let short = window(rule.short_min, "short");
            out.push(AlarmSpec {
                name: name.clone(),
                description: format!(
                    "{}: error budget ({}% availability) burning at {}x or more over {} minutes and still over the last {} ({:?})",
                    s.id, o.availability_pct, rule.burn_rate, rule.long_min, rule.short_min, rule.severity
                ),
                body: AlarmBody::Composite {
                    all_of: vec![long.name.clone(), short.name.clone()],
                },
                actions: actions.to_vec(),
            });
            out.push(long);
            out.push(short);
        }
    }
    out
}

/// CloudWatch's monthly prices for what the monitor keeps (us-east-1 list prices, free tier not
/// subtracted): a standard-resolution alarm per metric it reads (a metric-math alarm pays for each
/// metric in its expression), a composite alarm, a dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AlarmPrices {
    pub per_alarm_metric_usd: f64,
    pub per_composite_usd: f64,
    pub per_dashboard_usd: f64,
}

impl AlarmPrices {
    pub fn us_east_1() -> Self {
        Self {
            per_alarm_metric_usd: 0.10,
            per_composite_usd: 0.50,
            per_dashboard_usd: 3.00,
        }
    }
}

impl AlarmSpec {
    /// What CloudWatch bills for this alarm a month.
    pub fn monthly_usd(&self, p: &AlarmPrices) -> f64 {
        match &self.body {
            AlarmBody::Composite { .. } => p.per_composite_usd,
            AlarmBody::Metric {
                source: AlarmSource::Single { .. },
                ..
            } => p.per_alarm_metric_usd,
            AlarmBody::Metric {
                source: AlarmSource::Ratio { .. },
                ..
            } => 2.0 * p.per_alarm_metric_usd,
        }
    }
}

/// A subject the monitor could keep alarms for.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmCandidate {
    pub id: String,
    /// Requests over the window judged.
    pub requests: f64,
    /// Named in the configured set (`TRIMTAB_ALARM_SUBJECTS`): alarmed whatever its traffic.
    pub pinned: bool,
}

/// A subject judged without alarms, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WithoutAlarms {
    pub subject: String,
    pub reason: String,
}

/// Which subjects get alarms.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlarmChoice {
    pub alarmed: Vec<String>,
    pub without: Vec<WithoutAlarms>,
    /// What the chosen subjects' alarms cost a month.
    pub monthly_usd: f64,
}

/// Chooses the subjects whose alarms are worth their price: those with traffic enough for the
/// availability objective to allow at least one failed request over the window (below that a
/// burn rate says more about the traffic than the service), and the pinned ones; the pinned
/// first, then the busiest, while their alarms (`per_subject_usd` each a month) stay within
/// `ceiling_usd`.
pub fn choose_alarmed(
    candidates: &[AlarmCandidate],
    availability_pct: f64,
    per_subject_usd: f64,
    ceiling_usd: Option<f64>,
) -> AlarmChoice {
    let needed = 1.0 / (1.0 - availability_pct / 100.0).max(1e-9);
    let mut order: Vec<&AlarmCandidate> = candidates.iter().collect();
    order.sort_by(|a, b| {
        b.pinned
            .cmp(&a.pinned)
            .then(b.requests.total_cmp(&a.requests))
            .then(a.id.cmp(&b.id))
    });
    let mut choice = AlarmChoice::default();
    for c in order {
        if !c.pinned && c.requests < needed {
            choice.without.push(WithoutAlarms {
                subject: c.id.clone(),
                reason: format!(
                    "{:.0} requests in the window: a {availability_pct}% objective needs {needed:.0} to allow one failure",
                    c.requests
                ),
            });
            continue;
        }
        if ceiling_usd.is_some_and(|max| choice.monthly_usd + per_subject_usd > max + 1e-9) {
            choice.without.push(WithoutAlarms {
                subject: c.id.clone(),
                reason: format!(
                    "its alarms (${per_subject_usd:.2}/month) would pass the ${:.2} monthly ceiling",
                    ceiling_usd.unwrap_or_default()
                ),
            });
            continue;
        }
        choice.monthly_usd += per_subject_usd;
        choice.alarmed.push(c.id.clone());
    }
    choice.monthly_usd = (choice.monthly_usd * 100.0).round() / 100.0;
    choice
}

/// An alarm CloudWatch holds under Trimtab's prefix, as `DescribeAlarms` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExistingAlarm {
    pub name: String,
    pub description: String,
    pub composite: bool,
}

/// What a run writes to bring the alarms in step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlarmPlan<'a> {
    /// Missing or changed; children before the composites that name them.
    pub put: Vec<&'a AlarmSpec>,
    /// Trimtab's alarms in scope no longer wanted; composites before their children.
    pub delete: Vec<String>,
    /// `delete` as `DeleteAlarms` calls, in order: CloudWatch deletes at most 100 alarms a call
    /// and at most one composite, so each composite goes alone, then the metric alarms.
    pub delete_calls: Vec<Vec<String>>,
}

/// The alarms to put (missing or changed) and the names to delete: Trimtab's own (`prefix`)
/// within the run's scope (`in_scope`, by name) that are no longer wanted. A scoped run never
/// deletes the alarms of subjects outside its scope.
pub fn plan_alarms<'a>(
    prefix: &str,
    desired: &'a [AlarmSpec],
    existing: &[ExistingAlarm],
    in_scope: impl Fn(&str) -> bool,
) -> AlarmPlan<'a> {
    let mut put: Vec<&AlarmSpec> = desired
        .iter()
        .filter(|d| {
            !existing
                .iter()
                .any(|e| e.name == d.name && e.description == d.description_with_hash())
        })
        .collect();
    put.sort_by_key(|a| a.is_composite());
    let gone: Vec<&ExistingAlarm> = existing
        .iter()
        .filter(|e| {
            e.name.starts_with(prefix)
                && in_scope(&e.name)
                && !desired.iter().any(|d| d.name == e.name)
        })
        .collect();
    // A child cannot be deleted while a composite names it: composites first.
    let mut delete_calls: Vec<Vec<String>> = gone
        .iter()
        .filter(|e| e.composite)
        .map(|e| vec![e.name.clone()])
        .collect();
    let metric: Vec<String> = gone
        .iter()
        .filter(|e| !e.composite)
        .map(|e| e.name.clone())
        .collect();
    delete_calls.extend(metric.chunks(100).map(<[String]>::to_vec));
    AlarmPlan {
        put,
        delete: delete_calls.concat(),
        delete_calls,
    }
}

/// Requests and errors of one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Minute {
    pub requests: f64,
    pub errors: f64,
}

/// Whether `spec` (a ratio metric alarm, or a composite of them in `all`) is in ALARM after
/// minute `at` of `series`, as CloudWatch evaluates it: each period is the `period_s` ending at
/// the evaluation (the default sliding window), a period without requests is missing data and
/// not breaching. Latency alarms (`Single`) are never in ALARM here (no latency series).
pub fn evaluate(spec: &AlarmSpec, all: &[AlarmSpec], series: &[Minute], at: usize) -> bool {
    match &spec.body {
        AlarmBody::Composite { all_of } => all_of.iter().all(|child| {
            all.iter()
                .find(|a| a.name == *child)
                .is_some_and(|a| evaluate(a, all, series, at))
        }),
        AlarmBody::Metric {
            source: AlarmSource::Ratio {
                scale, period_s, ..
            },
            threshold,
            at_least,
            evaluation_periods,
            datapoints_to_alarm,
        } => {
            let period = (*period_s as usize / 60).max(1);
            let end = (at + 1).min(series.len());
            let breaching = (0..*evaluation_periods as usize)
                .filter(|k| {
                    let Some(stop) = end.checked_sub(k * period) else {
                        return false;
                    };
                    let start = stop.saturating_sub(period);
                    let (req, err) = series[start..stop]
                        .iter()
                        .fold((0.0, 0.0), |(r, e), m| (r + m.requests, e + m.errors));
                    if req <= 0.0 {
                        return false;
                    }
                    let value = scale * err / req;
                    if *at_least {
                        value >= *threshold - 1e-9
                    } else {
                        value > *threshold
                    }
                })
                .count();
            breaching >= *datapoints_to_alarm as usize
        }
        AlarmBody::Metric { .. } => false,
    }
}

/// The first minute at which any of the named alarms is in ALARM, evaluating every minute.
pub fn first_alarm(all: &[AlarmSpec], names: &[&str], series: &[Minute]) -> Option<usize> {
    let specs: Vec<&AlarmSpec> = all
        .iter()
        .filter(|a| names.contains(&a.name.as_str()))
        .collect();
    (0..series.len()).find(|&t| specs.iter().any(|a| evaluate(a, all, series, t)))
}

/// Most widgets a dashboard body may hold (CloudWatch's dashboard body structure: 0 to 500).
pub const MAX_DASHBOARD_WIDGETS: usize = 500;

/// The dashboard, and what did not fit on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    pub body: String,
    pub subjects_shown: usize,
    pub tables_shown: usize,
}

/// The dashboard body: a text widget saying what it is, then for each subject its traffic and
/// errors and its p95 latency against the objective (two widgets), for each table consumed
/// capacity and throttling (one). Past [`MAX_DASHBOARD_WIDGETS`] the busiest subjects (by
/// `requests`, aligned with `subjects`) are shown, then as many tables as fit, each in its given
/// order; the report judges them all. Deterministic for unchanged input.
pub fn dashboard_body(
    subjects: &[Subject],
    requests: &[f64],
    tables: &[String],
    region: &str,
    o: &Objectives,
) -> Dashboard {
    let room = MAX_DASHBOARD_WIDGETS - 1;
    let shown_subjects = (room / 2).min(subjects.len());
    let mut busiest: Vec<usize> = (0..subjects.len()).collect();
    busiest.sort_by(|&a, &b| {
        let r = |i: usize| requests.get(i).copied().unwrap_or(0.0);
        r(b).total_cmp(&r(a)).then(a.cmp(&b))
    });
    busiest.truncate(shown_subjects);
    busiest.sort_unstable();
    let shown_tables = (room - 2 * shown_subjects).min(tables.len());
    let mut widgets = vec![serde_json::json!({
        "type": "text", "x": 0, "y": 0, "width": 24, "height": 2,
        "properties": {"markdown": format!(
            "Kept by Trimtab's performance monitor: edits here are overwritten. Showing {} of {} SLO subjects{} and {} of {} tables; the monitor's report judges every one.",
            shown_subjects,
            subjects.len(),
            if shown_subjects < subjects.len() { " (the busiest)" } else { "" },
            shown_tables,
            tables.len()
        )}
    })];
    let metric = |ns: &str, name: &str, dims: &[(String, String)], stat: &str| {
        let mut m = vec![serde_json::json!(ns), serde_json::json!(name)];
        for (k, v) in dims {
            m.push(serde_json::json!(k));
            m.push(serde_json::json!(v));
        }
        m.push(serde_json::json!({"stat": stat}));
        serde_json::Value::Array(m)
    };
    for (row, &i) in busiest.iter().enumerate() {
        let s = &subjects[i];
        let y = 2 + (row * 6) as i64;
        widgets.push(serde_json::json!({
            "type": "metric", "x": 0, "y": y, "width": 12, "height": 6,
            "properties": {
                "title": format!("{}: requests and errors", s.id), "region": region, "view": "timeSeries",
                "metrics": [
                    metric(s.namespace, s.requests_metric, &s.dimensions, "Sum"),
                    metric(s.namespace, s.errors_metric, &s.dimensions, "Sum"),
                ],
            }
        }));
        widgets.push(serde_json::json!({
            "type": "metric", "x": 12, "y": y, "width": 12, "height": 6,
            "properties": {
                "title": format!("{}: p95 {}", s.id, s.latency_metric), "region": region, "view": "timeSeries",
                "metrics": [metric(s.namespace, s.latency_metric, &s.dimensions, "p95")],
                "annotations": {"horizontal": [{"label": "objective", "value": o.latency_p95_ms}]},
            }
        }));
    }
    let base = 2 + (shown_subjects * 6) as i64;
    for (i, t) in tables.iter().take(shown_tables).enumerate() {
        let dims = vec![("TableName".to_owned(), t.clone())];
        widgets.push(serde_json::json!({
            "type": "metric", "x": 0, "y": base + (i * 6) as i64, "width": 24, "height": 6,
            "properties": {
                "title": format!("table {t}: capacity and throttling"), "region": region, "view": "timeSeries",
                "metrics": [
                    metric("AWS/DynamoDB", "ConsumedReadCapacityUnits", &dims, "Sum"),
                    metric("AWS/DynamoDB", "ConsumedWriteCapacityUnits", &dims, "Sum"),
                    metric("AWS/DynamoDB", "ProvisionedReadCapacityUnits", &dims, "Average"),
                    metric("AWS/DynamoDB", "ProvisionedWriteCapacityUnits", &dims, "Average"),
                    metric("AWS/DynamoDB", "ReadThrottleEvents", &dims, "Sum"),
                    metric("AWS/DynamoDB", "WriteThrottleEvents", &dims, "Sum"),
                ],
            }
        }));
    }
    Dashboard {
        body: serde_json::json!({"widgets": widgets}).to_string(),
        subjects_shown: shown_subjects,
        tables_shown: shown_tables,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::Environment;
    use crate::slo::default_objectives;

    #[test]
    fn rest_and_http_apis_use_their_own_metric_names() {
        let rest = Subject::api(ApiKind::Rest, "orders", "orders", "prod");
        let http = Subject::api(ApiKind::Http, "a1b2c3", "orders", "prod");
        assert_eq!(rest.errors_metric, "5XXError");
        assert_eq!(rest.dimensions[0].0, "ApiName");
        assert_eq!(http.errors_metric, "5xx");
        assert_eq!(
            http.dimensions[0],
            ("ApiId".to_owned(), "a1b2c3".to_owned())
        );
    }

    #[test]
    fn each_burn_rule_is_two_window_children_and_a_composite_with_the_actions() {
        let o = default_objectives(Environment::Prod);
        let a = desired_alarms(
            "trimtab-slo-prod-",
            &[Subject::function("checkout")],
            &o,
            &["arn:topic".to_owned()],
        );
        assert_eq!(a.len(), 2 + 3 * 3);
        let fast = a
            .iter()
            .find(|x| x.name == "trimtab-slo-prod-fn-checkout-burn-fast")
            .expect("fast");
        assert_eq!(
            fast.rule().as_deref(),
            Some(
                "ALARM(\"trimtab-slo-prod-fn-checkout-burn-fast-long\") AND ALARM(\"trimtab-slo-prod-fn-checkout-burn-fast-short\")"
            )
        );
        assert_eq!(fast.actions, ["arn:topic"]);
        let long = a
            .iter()
            .find(|x| x.name.ends_with("burn-fast-long"))
            .expect("long");
        assert!(long.actions.is_empty());
        let AlarmBody::Metric {
            source: AlarmSource::Ratio {
                scale, period_s, ..
            },
            threshold,
            ..
        } = &long.body
        else {
            panic!("metric math")
        };
        // 1 / (1 - 0.999) = 1000; the window is the period: 1 hour at 14.4.
        assert!((scale - 1000.0).abs() < 1e-6);
        assert_eq!((*period_s, *threshold), (3600, 14.4));
        let ticket_long = a
            .iter()
            .find(|x| x.name.ends_with("burn-ticket-long"))
            .expect("ticket");
        let AlarmBody::Metric {
            source: AlarmSource::Ratio { period_s, .. },
            ..
        } = &ticket_long.body
        else {
            panic!("metric math")
        };
        // Three days: within CloudWatch's 7-day limit on period x evaluation periods.
        assert_eq!(*period_s, 3 * 86_400);
    }

    fn minutes(n: usize, requests: f64, error_ratio: f64) -> Vec<Minute> {
        vec![
            Minute {
                requests,
                errors: requests * error_ratio
            };
            n
        ]
    }

    fn pages_and_tickets(series: &[Minute]) -> (Option<usize>, Option<usize>) {
        let o = default_objectives(Environment::Prod);
        let a = desired_alarms("trimtab-slo-prod-", &[Subject::function("f")], &o, &[]);
        let page = first_alarm(
            &a,
            &[
                "trimtab-slo-prod-fn-f-burn-fast",
                "trimtab-slo-prod-fn-f-burn-slow",
            ],
            series,
        );
        let ticket = first_alarm(&a, &["trimtab-slo-prod-fn-f-burn-ticket"], series);
        (page, ticket)
    }

    #[test]
    fn a_30_minute_outage_pages_within_the_hour() {
        // A day of clean traffic at 1,000 requests a minute, then 30 minutes of total failure,
        // then recovery.
        let mut s = minutes(1440, 1000.0, 0.0);
        s.extend(minutes(30, 1000.0, 1.0));
        s.extend(minutes(120, 1000.0, 0.0));
        let (page, _) = pages_and_tickets(&s);
        let at = page.expect("paged");
        assert!((1440..1440 + 60).contains(&at), "paged at minute {at}");
        // Within a couple of minutes of the outage starting, in fact.
        assert!(at <= 1442, "{at}");
        // And the short window lets it go within minutes of recovery, while the hour still burns.
        let a = desired_alarms(
            "p-",
            &[Subject::function("f")],
            &default_objectives(Environment::Prod),
            &[],
        );
        let fast = a
            .iter()
            .find(|x| x.name == "p-fn-f-burn-fast")
            .expect("fast");
        assert!(evaluate(fast, &a, &s, 1440 + 29));
        assert!(!evaluate(fast, &a, &s, 1440 + 30 + 6));
    }

    #[test]
    fn a_5_minute_blip_at_20x_does_not_page() {
        let mut s = minutes(1440, 1000.0, 0.0);
        s.extend(minutes(5, 1000.0, 20.0 * 0.001));
        s.extend(minutes(600, 1000.0, 0.0));
        assert_eq!(pages_and_tickets(&s), (None, None));
    }

    #[test]
    fn a_slow_1x_burn_over_3_days_opens_a_ticket_and_never_pages() {
        let s = minutes(3 * 1440, 1000.0, 0.001);
        let (page, ticket) = pages_and_tickets(&s);
        assert_eq!(page, None);
        assert!(ticket.is_some());
    }

    /// PutMetricAlarm's documented limits: a period of 10, 20, 30 s or a multiple of 60; period
    /// x evaluation periods at most 7 days, and at most 1 day when the period is under an hour;
    /// a composite names at most 100 children.
    #[test]
    fn every_alarm_is_one_cloudwatch_accepts() {
        for env in Environment::ALL {
            let subjects = [Subject::function("a"), Subject::function("b")];
            let all = desired_alarms("p-", &subjects, &default_objectives(env), &[]);
            assert_eq!(all.len(), 2 * 11);
            for a in &all {
                match &a.body {
                    AlarmBody::Metric {
                        source,
                        evaluation_periods,
                        datapoints_to_alarm,
                        ..
                    } => {
                        let period = match source {
                            AlarmSource::Single { period_s, .. }
                            | AlarmSource::Ratio { period_s, .. } => i64::from(*period_s),
                        };
                        assert!(
                            period % 60 == 0 || [10, 20, 30].contains(&period),
                            "{}",
                            a.name
                        );
                        let total = period * i64::from(*evaluation_periods);
                        assert!(total <= 604_800, "{}: {total} s", a.name);
                        assert!(period >= 3600 || total <= 86_400, "{}: {total} s", a.name);
                        assert!((1..=*evaluation_periods).contains(datapoints_to_alarm));
                    }
                    AlarmBody::Composite { all_of } => {
                        assert!(!all_of.is_empty() && all_of.len() <= 100);
                        assert!(all_of.iter().all(|c| all.iter().any(|x| x.name == *c)));
                    }
                }
                assert!(a.name.len() <= 255, "{}", a.name);
            }
        }
    }

    #[test]
    fn the_plan_writes_only_what_changed_and_drops_what_left_in_scope() {
        let o = default_objectives(Environment::Prod);
        let d = desired_alarms("p-", &[Subject::function("a")], &o, &[]);
        let existing: Vec<ExistingAlarm> = d
            .iter()
            .map(|x| ExistingAlarm {
                name: x.name.clone(),
                description: x.description_with_hash(),
                composite: x.is_composite(),
            })
            .collect();
        let plan = plan_alarms("p-", &d, &existing, |_| true);
        assert!(plan.put.is_empty() && plan.delete.is_empty());
        let tighter = Objectives {
            latency_p95_ms: 150.0,
            ..o
        };
        let d2 = desired_alarms("p-", &[Subject::function("a")], &tighter, &[]);
        assert_eq!(plan_alarms("p-", &d2, &existing, |_| true).put.len(), 1);
        let all_gone = plan_alarms("p-", &[], &existing, |_| true);
        assert_eq!(all_gone.delete.len(), 11);
        // Composites go before the children they name, one composite a call.
        let calls: Vec<usize> = all_gone.delete_calls.iter().map(Vec::len).collect();
        assert_eq!(calls, [1, 1, 1, 8]);
        assert!(
            all_gone.delete_calls[..3]
                .iter()
                .all(|c| d.iter().any(|a| a.name == c[0] && a.is_composite()))
        );
        // A run scoped to other subjects deletes none of them.
        assert!(
            plan_alarms("p-", &[], &existing, |n| n.starts_with("p-fn-b"))
                .delete
                .is_empty()
        );
        // Children are put before the composites that name them.
        let fresh = plan_alarms("p-", &d, &[], |_| true);
        let first_composite = fresh
            .put
            .iter()
            .position(|a| a.is_composite())
            .expect("composite");
        assert!(
            fresh.put[first_composite..]
                .iter()
                .all(|a| a.is_composite())
        );
    }

    #[test]
    fn the_dashboard_is_stable_and_lists_every_resource() {
        let o = default_objectives(Environment::Prod);
        let s = [
            Subject::function("a"),
            Subject::api(ApiKind::Http, "id1", "shop", "prod"),
        ];
        let t = ["orders".to_owned()];
        let b1 = dashboard_body(&s, &[1.0, 2.0], &t, "us-east-1", &o);
        assert_eq!(b1, dashboard_body(&s, &[1.0, 2.0], &t, "us-east-1", &o));
        let v: serde_json::Value = serde_json::from_str(&b1.body).expect("json");
        // The text widget, two per subject, one per table.
        assert_eq!(v["widgets"].as_array().map(Vec::len), Some(6));
        assert_eq!((b1.subjects_shown, b1.tables_shown), (2, 1));
    }

    #[test]
    fn a_large_estate_gets_its_busiest_subjects_within_cloudwatchs_500_widgets() {
        let o = default_objectives(Environment::Prod);
        let s: Vec<Subject> = (0..1_000)
            .map(|i| Subject::function(&format!("f{i:04}")))
            .collect();
        // Traffic rises with the index: the last 249 are the busiest.
        let requests: Vec<f64> = (0..1_000).map(f64::from).collect();
        let t: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
        let d = dashboard_body(&s, &requests, &t, "us-east-1", &o);
        let v: serde_json::Value = serde_json::from_str(&d.body).expect("json");
        let widgets = v["widgets"].as_array().expect("widgets");
        assert_eq!(widgets.len(), MAX_DASHBOARD_WIDGETS);
        assert_eq!((d.subjects_shown, d.tables_shown), (249, 1));
        assert_eq!(
            widgets[1]["properties"]["title"],
            "fn-f0751: requests and errors"
        );
        assert!(
            widgets[0]["properties"]["markdown"]
                .as_str()
                .is_some_and(|m| m.contains("249 of 1000 SLO subjects (the busiest)"))
        );
    }

    #[test]
    fn alarms_cost_three_dollars_a_subject_and_go_where_they_pay() {
        let p = AlarmPrices::us_east_1();
        let o = default_objectives(Environment::Prod);
        let one = desired_alarms("p-", &[Subject::function("a")], &o, &[]);
        let per_subject: f64 = one.iter().map(|a| a.monthly_usd(&p)).sum();
        // p95 $0.10, error rate $0.20, six windows $1.20, three composites $1.50.
        assert!((per_subject - 3.0).abs() < 1e-9, "{per_subject}");
        let c = |id: &str, requests, pinned| AlarmCandidate {
            id: id.to_owned(),
            requests,
            pinned,
        };
        let fleet = [
            c("fn-busy", 5e6, false),
            c("fn-quiet", 400.0, false),
            c("fn-pinned-quiet", 10.0, true),
            c("fn-mid", 2e4, false),
            c("api-shop-prod", 9e6, false),
        ];
        let all = choose_alarmed(&fleet, 99.9, per_subject, None);
        assert_eq!(
            all.alarmed,
            ["fn-pinned-quiet", "api-shop-prod", "fn-busy", "fn-mid"]
        );
        assert_eq!(all.without.len(), 1);
        assert!(
            all.without[0].reason.contains("needs 1000"),
            "{:?}",
            all.without
        );
        // A $7 ceiling: the pinned one, then the busiest, two subjects' worth.
        let capped = choose_alarmed(&fleet, 99.9, per_subject, Some(7.0));
        assert_eq!(capped.alarmed, ["fn-pinned-quiet", "api-shop-prod"]);
        assert!(capped.monthly_usd <= 7.0);
        assert_eq!(capped.without.len(), 3);
    }
}
