//! What the performance monitor keeps in CloudWatch: SLO alarms (latency, error rate, and
//! burn-rate alarms as metric math) and one dashboard, built as data from the resources in scope,
//! with the diff against what exists.
//!
//! CloudWatch alarms evaluate one period at a time, so each two-window burn-rate rule becomes one
//! metric-math alarm on the short window's period that must breach for every period of the long
//! window (1 h of 5-minute periods at 14.4; 6 h of 30-minute periods at 6; 3 d of 6-hour periods
//! at 1): stricter than the workbook's pair of windows, never looser.
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

/// Something with an SLO: an API stage or a Lambda function.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subject {
    /// Short, unique, alarm-name safe: `api-orders-prod`, `fn-checkout`.
    pub id: String,
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

/// One alarm, fully specified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmSpec {
    pub name: String,
    pub description: String,
    pub source: AlarmSource,
    /// Alarms when the value is greater than this.
    pub threshold: f64,
    pub evaluation_periods: i32,
    pub datapoints_to_alarm: i32,
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
        let key = serde_json::json!([
            self.name,
            self.source,
            self.threshold,
            self.evaluation_periods,
            self.datapoints_to_alarm,
            self.actions
        ]);
        format!("{:016x}", fnv(key.to_string().as_bytes()))
    }

    pub fn description_with_hash(&self) -> String {
        format!("{} [trimtab:{}]", self.description, self.hash())
    }
}

/// The SLO alarms of every subject, named `<prefix><subject>-<kind>`.
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
        out.push(AlarmSpec {
            name: format!("{prefix}{}-latency-p95", s.id),
            description: format!(
                "{}: p95 {} over {} ms for 15 minutes",
                s.id, s.latency_metric, o.latency_p95_ms
            ),
            source: AlarmSource::Single {
                namespace: s.namespace.to_owned(),
                metric: s.latency_metric.to_owned(),
                dimensions: s.dimensions.clone(),
                extended_statistic: "p95".into(),
                period_s: 300,
            },
            threshold: o.latency_p95_ms,
            evaluation_periods: 3,
            datapoints_to_alarm: 3,
            actions: actions.to_vec(),
        });
        out.push(AlarmSpec {
            name: format!("{prefix}{}-error-rate", s.id),
            description: format!(
                "{}: error rate over {}% for 15 minutes",
                s.id, o.error_rate_pct
            ),
            source: ratio(100.0, 300, "error rate %"),
            threshold: o.error_rate_pct,
            evaluation_periods: 3,
            datapoints_to_alarm: 3,
            actions: actions.to_vec(),
        });
        let budget = (1.0 - o.availability_pct / 100.0).max(1e-9);
        for (rule, kind) in BURN_RULES
            .iter()
            .zip(["burn-fast", "burn-slow", "burn-ticket"])
        {
            let periods = (rule.long_min / rule.short_min) as i32;
            out.push(AlarmSpec {
                name: format!("{prefix}{}-{kind}", s.id),
                description: format!(
                    "{}: error budget ({}% availability) burning at {}x or more for {} minutes ({:?})",
                    s.id, o.availability_pct, rule.burn_rate, rule.long_min, rule.severity
                ),
                source: ratio(1.0 / budget, (rule.short_min * 60) as i32, "burn rate"),
                threshold: rule.burn_rate,
                evaluation_periods: periods,
                datapoints_to_alarm: periods,
                actions: actions.to_vec(),
            });
        }
    }
    out
}

/// The alarms to put (missing or changed) and the names to delete (ours, no longer wanted).
pub fn plan_alarms<'a>(
    prefix: &str,
    desired: &'a [AlarmSpec],
    existing: &[(String, String)],
) -> (Vec<&'a AlarmSpec>, Vec<String>) {
    let put = desired
        .iter()
        .filter(|d| {
            !existing
                .iter()
                .any(|(n, desc)| *n == d.name && *desc == d.description_with_hash())
        })
        .collect();
    let delete = existing
        .iter()
        .filter(|(n, _)| n.starts_with(prefix) && !desired.iter().any(|d| d.name == *n))
        .map(|(n, _)| n.clone())
        .collect();
    (put, delete)
}

/// The dashboard body: for each subject its traffic and errors, and its p95 latency against the
/// objective; for each table consumed capacity and throttling. Deterministic for unchanged input.
pub fn dashboard_body(
    subjects: &[Subject],
    tables: &[String],
    region: &str,
    o: &Objectives,
) -> String {
    let mut widgets = Vec::new();
    let metric = |ns: &str, name: &str, dims: &[(String, String)], stat: &str| {
        let mut m = vec![serde_json::json!(ns), serde_json::json!(name)];
        for (k, v) in dims {
            m.push(serde_json::json!(k));
            m.push(serde_json::json!(v));
        }
        m.push(serde_json::json!({"stat": stat}));
        serde_json::Value::Array(m)
    };
    for (i, s) in subjects.iter().enumerate() {
        let y = (i * 6) as i64;
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
    let base = (subjects.len() * 6) as i64;
    for (i, t) in tables.iter().enumerate() {
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
    serde_json::json!({"widgets": widgets}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn five_alarms_per_subject_with_burn_rates_as_metric_math() {
        let o = default_objectives("prod");
        let a = desired_alarms("trimtab-slo-", &[Subject::function("checkout")], &o, &[]);
        assert_eq!(a.len(), 5);
        let fast = a
            .iter()
            .find(|x| x.name.ends_with("burn-fast"))
            .expect("fast");
        let AlarmSource::Ratio {
            scale, period_s, ..
        } = &fast.source
        else {
            panic!("metric math")
        };
        // 1 / (1 - 0.999) = 1000; 12 five-minute periods = 1 hour at 14.4.
        assert!((scale - 1000.0).abs() < 1e-6);
        assert_eq!(
            (*period_s, fast.evaluation_periods, fast.threshold),
            (300, 12, 14.4)
        );
        let ticket = a
            .iter()
            .find(|x| x.name.ends_with("burn-ticket"))
            .expect("ticket");
        assert_eq!(ticket.evaluation_periods, 12);
    }

    #[test]
    fn the_plan_writes_only_what_changed_and_drops_what_left() {
        let o = default_objectives("prod");
        let d = desired_alarms("p-", &[Subject::function("a")], &o, &[]);
        let existing: Vec<(String, String)> = d
            .iter()
            .map(|x| (x.name.clone(), x.description_with_hash()))
            .collect();
        let (put, delete) = plan_alarms("p-", &d, &existing);
        assert!(put.is_empty() && delete.is_empty());
        let tighter = Objectives {
            latency_p95_ms: 150.0,
            ..o
        };
        let d2 = desired_alarms("p-", &[Subject::function("a")], &tighter, &[]);
        let (put, _) = plan_alarms("p-", &d2, &existing);
        assert_eq!(put.len(), 1);
        let (_, delete) = plan_alarms("p-", &[], &existing);
        assert_eq!(delete.len(), 5);
    }

    #[test]
    fn the_dashboard_is_stable_and_lists_every_resource() {
        let o = default_objectives("prod");
        let s = [
            Subject::function("a"),
            Subject::api(ApiKind::Http, "id1", "shop", "prod"),
        ];
        let t = ["orders".to_owned()];
        let b1 = dashboard_body(&s, &t, "us-east-1", &o);
        assert_eq!(b1, dashboard_body(&s, &t, "us-east-1", &o));
        let v: serde_json::Value = serde_json::from_str(&b1).expect("json");
        assert_eq!(v["widgets"].as_array().map(Vec::len), Some(5));
    }
}
