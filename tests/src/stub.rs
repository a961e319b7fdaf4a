//! A stub of the AWS read APIs the jobs call, for the scale benchmark only (`scale-bench`): it
//! answers like AWS at AWS's page sizes and limits, for any number of functions and tables, with
//! a fixed latency per call and throttling past a rate per service, and keeps no data (every
//! answer is computed from the resource's index). The emulator cannot serve this scale (moto's
//! `GetMetricData` time grows with stored datapoints times queries); it is not a replacement for
//! the emulator in tests.
//!
//! Answered: Lambda `ListFunctions` (50 a page), `GetFunctionConcurrency`; CloudWatch
//! `GetMetricData` (at most 500 queries a call, refused beyond; at most 100,800 datapoints a
//! call, the rest behind `NextToken`); CloudWatch Logs `FilterLogEvents`; DynamoDB `ListTables`
//! (100 a page), `DescribeTable` (two GSIs each), `ListTagsOfResource`; Application Auto Scaling
//! `Describe*` (nothing registered); CloudWatch `DescribeAlarms` (none) and `GetDashboard` (not
//! found); API Gateway `GetRestApis` and `GetApis` (none).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::fidelity::{form, form_value, percent_decode};

type Answer = Response<Full<Bytes>>;

/// Where the stub tells what it answered (`{"answered": {"service:Operation": n}, "throttled": n}`):
/// requests it served, as opposed to those the client sent (retries of throttled ones included).
pub const COUNTS_PATH: &str = "/__stub/counts";

/// The account the stub plays.
#[derive(Debug, Clone)]
pub struct Estate {
    pub functions: usize,
    pub tables: usize,
    /// Added to every answer.
    pub latency: Duration,
    /// Requests a second each service accepts before it throttles (`lambda`, `cloudwatch`,
    /// `logs`, `dynamodb`, `application-autoscaling`).
    pub rates: BTreeMap<&'static str, f64>,
}

impl Estate {
    /// AWS's default quotas where documented: `GetMetricData` 50 a second, `FilterLogEvents`
    /// 5 a second per account; Lambda's control plane 15 a second; DynamoDB's and Application
    /// Auto Scaling's describe calls far more than a run needs.
    pub fn new(functions: usize, tables: usize) -> Self {
        Self {
            functions,
            tables,
            latency: Duration::from_millis(20),
            rates: BTreeMap::from([
                ("lambda", 15.0),
                ("cloudwatch", 50.0),
                ("logs", 5.0),
                ("dynamodb", 100.0),
                ("application-autoscaling", 20.0),
            ]),
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
struct State {
    estate: Estate,
    buckets: BTreeMap<String, Bucket>,
    /// Requests answered, by `service:Operation`, and those throttled.
    counts: BTreeMap<String, u64>,
    throttled: u64,
}

impl State {
    /// Takes a token from the service's bucket; `false` when it is empty.
    fn admit(&mut self, service: &str) -> bool {
        let rate = self.estate.rates.get(service).copied().unwrap_or(1000.0);
        let now = Instant::now();
        let b = self.buckets.entry(service.to_owned()).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(rate);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A running stub on a loopback port.
#[derive(Debug, Clone)]
pub struct Stub {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Stub {
    pub async fn start(estate: Estate) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            estate,
            buckets: BTreeMap::new(),
            counts: BTreeMap::new(),
            throttled: 0,
        }));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, std::convert::Infallible>(handle(req, state).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, state })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests answered by operation, and how many were throttled.
    pub fn counts(&self) -> (BTreeMap<String, u64>, u64) {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (s.counts.clone(), s.throttled)
    }
}

fn respond(status: u16, content_type: &'static str, body: String) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

fn json_answer(v: &Value) -> Answer {
    respond(200, "application/x-amz-json-1.0", v.to_string())
}

async fn handle(req: Request<Incoming>, state: Arc<Mutex<State>>) -> Answer {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let header = |k: &str| {
        parts
            .headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let target = header("x-amz-target");
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let params = form(&body);
    if path == COUNTS_PATH {
        let s = state.lock().unwrap_or_else(|p| p.into_inner());
        return json_answer(&json!({"answered": s.counts, "throttled": s.throttled}));
    }
    let (service, op) = if let Some((prefix, op)) = target.split_once('.') {
        let service = match prefix {
            p if p.starts_with("DynamoDB") => "dynamodb",
            p if p.starts_with("Logs") => "logs",
            _ => "application-autoscaling",
        };
        (service, op.to_owned())
    } else if let Some(action) = form_value(&params, "Action") {
        ("cloudwatch", action.to_owned())
    } else if path.starts_with("/restapis") {
        ("apigateway", "GetRestApis".to_owned())
    } else if path.starts_with("/v2/apis") {
        ("apigateway", "GetApis".to_owned())
    } else if path.ends_with("/concurrency") {
        ("lambda", "GetFunctionConcurrency".to_owned())
    } else if path.contains("/account-settings") {
        ("lambda", "GetAccountSettings".to_owned())
    } else {
        ("lambda", "ListFunctions".to_owned())
    };
    let (admitted, estate) = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        let admitted = s.admit(service);
        if admitted {
            *s.counts.entry(format!("{service}:{op}")).or_default() += 1;
        } else {
            s.throttled += 1;
        }
        (admitted, s.estate.clone())
    };
    tokio::time::sleep(estate.latency).await;
    if !admitted {
        return throttle(service);
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match (service, op.as_str()) {
        ("lambda", "ListFunctions") => list_functions(&estate, &query),
        ("lambda", "GetAccountSettings") => json_answer(&json!({
            "AccountLimit": {"ConcurrentExecutions": 1000, "UnreservedConcurrentExecutions": 900},
            "AccountUsage": {"FunctionCount": 0, "TotalCodeSize": 0}
        })),
        ("lambda", "GetFunctionConcurrency") => {
            json_answer(&json!({"ReservedConcurrentExecutions": 100}))
        }
        ("cloudwatch", "GetMetricData") => get_metric_data(&estate, &params),
        ("cloudwatch", "DescribeAlarms") => respond(
            200,
            "text/xml",
            "<DescribeAlarmsResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\"><DescribeAlarmsResult><MetricAlarms/><CompositeAlarms/></DescribeAlarmsResult><ResponseMetadata><RequestId>stub</RequestId></ResponseMetadata></DescribeAlarmsResponse>".to_owned(),
        ),
        ("cloudwatch", "GetDashboard") => respond(
            404,
            "text/xml",
            "<ErrorResponse><Error><Type>Sender</Type><Code>ResourceNotFound</Code><Message>Dashboard does not exist</Message></Error><RequestId>stub</RequestId></ErrorResponse>".to_owned(),
        ),
        ("apigateway", "GetRestApis") => json_answer(&json!({"item": []})),
        ("apigateway", "GetApis") => json_answer(&json!({"items": []})),
        ("logs", "FilterLogEvents") => filter_log_events(&request),
        ("dynamodb", "ListTables") => list_tables(&estate, &request),
        ("dynamodb", "DescribeTable") => describe_table(&request),
        ("dynamodb", "ListTagsOfResource") => json_answer(&json!({"Tags": []})),
        ("application-autoscaling", "DescribeScalableTargets") => {
            json_answer(&json!({"ScalableTargets": []}))
        }
        ("application-autoscaling", "DescribeScalingPolicies") => {
            json_answer(&json!({"ScalingPolicies": []}))
        }
        ("application-autoscaling", "DescribeScheduledActions") => {
            json_answer(&json!({"ScheduledActions": []}))
        }
        _ => respond(
            400,
            "application/json",
            json!({"__type": "UnknownOperationException", "message": op}).to_string(),
        ),
    }
}

/// Each service's throttling answer.
fn throttle(service: &str) -> Answer {
    match service {
        "lambda" => {
            let mut r = respond(
                429,
                "application/json",
                json!({"Type": "User", "message": "Rate exceeded"}).to_string(),
            );
            r.headers_mut().insert(
                "x-amzn-errortype",
                hyper::header::HeaderValue::from_static("TooManyRequestsException"),
            );
            r
        }
        "cloudwatch" => respond(
            400,
            "text/xml",
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>stub</RequestId></ErrorResponse>".to_owned(),
        ),
        _ => respond(
            400,
            "application/x-amz-json-1.0",
            json!({"__type": "ThrottlingException", "message": "Rate exceeded"}).to_string(),
        ),
    }
}

/// The `i`-th function: name, memory and whether Lambda Insights reports on it (every other).
fn function(i: usize) -> (String, u32, bool) {
    const MEMORY: [u32; 7] = [128, 256, 512, 1024, 1536, 2048, 3008];
    (format!("fn-{i:05}"), MEMORY[i % 7], i.is_multiple_of(2))
}

fn index_of(name: &str, prefix: &str) -> usize {
    name.strip_prefix(prefix)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn list_functions(estate: &Estate, query: &str) -> Answer {
    let param = |k: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .map(percent_decode)
    };
    let start: usize = param("Marker").and_then(|m| m.parse().ok()).unwrap_or(0);
    let page = param("MaxItems")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(50)
        .clamp(1, 50);
    let end = (start + page).min(estate.functions);
    let functions: Vec<Value> = (start..end)
        .map(|i| {
            let (name, memory, _) = function(i);
            json!({
                "FunctionName": name,
                "FunctionArn": format!("arn:aws:lambda:us-east-1:123456789012:function:{name}"),
                "Runtime": "python3.12", "Role": "arn:aws:iam::123456789012:role/app",
                "Handler": "app.handler", "CodeSize": 1024, "Description": "",
                "Timeout": 30, "MemorySize": memory, "LastModified": "2026-10-01T00:00:00.000+0000",
                "CodeSha256": "x", "Version": "$LATEST", "PackageType": "Zip",
                "RevisionId": format!("00000000-0000-0000-0000-{i:012}"),
                "Architectures": [if i % 3 == 0 { "arm64" } else { "x86_64" }],
                "EphemeralStorage": {"Size": 512}
            })
        })
        .collect();
    let mut v = json!({"Functions": functions});
    if end < estate.functions {
        v["NextMarker"] = json!(end.to_string());
    }
    respond(200, "application/json", v.to_string())
}

/// One query of a `GetMetricData` request.
struct MetricQuery {
    id: String,
    metric: String,
    stat: String,
    resource: String,
    period_s: i64,
}

fn queries(params: &[(String, String)]) -> Vec<MetricQuery> {
    let mut by_n: BTreeMap<u32, BTreeMap<String, String>> = BTreeMap::new();
    for (k, v) in params {
        let Some(rest) = k.strip_prefix("MetricDataQueries.member.") else {
            continue;
        };
        let Some((n, field)) = rest.split_once('.') else {
            continue;
        };
        if let Ok(n) = n.parse() {
            by_n.entry(n)
                .or_default()
                .insert(field.to_owned(), v.clone());
        }
    }
    by_n.into_values()
        .map(|f| {
            let get = |k: &str| f.get(k).cloned().unwrap_or_default();
            MetricQuery {
                id: get("Id"),
                metric: get("MetricStat.Metric.MetricName"),
                stat: get("MetricStat.Stat"),
                resource: get("MetricStat.Metric.Dimensions.member.1.Value"),
                period_s: get("MetricStat.Period").parse().unwrap_or(60),
            }
        })
        .collect()
}

fn parse_time(s: &str) -> i64 {
    aws_smithy_types::DateTime::from_str(s, aws_smithy_types::date_time::Format::DateTime)
        .map(|t| t.secs())
        .unwrap_or(0)
}

/// The value of one datapoint: the function's or table's synthetic workload over `period_s`
/// seconds starting at `t`. `None`: the series has no data (Insights off).
fn value(q: &MetricQuery, t: i64, period_s: i64) -> Option<f64> {
    let minutes = period_s as f64 / 60.0;
    if q.resource.starts_with("table-") {
        let k = index_of(&q.resource, "table-") as f64;
        // Units a second, with a daily cycle; the Sum over the period.
        let day = (t as f64 / 86_400.0 * std::f64::consts::TAU).sin();
        let rate = (20.0 + k % 50.0) * (1.0 + 0.6 * day).max(0.05);
        let per_s = if q.metric.contains("Write") {
            rate / 3.0
        } else {
            rate
        };
        return Some(match q.metric.as_str() {
            m if m.starts_with("Provisioned") => 1.5 * (20.0 + k % 50.0),
            "SuccessfulRequestLatency" => 4.0,
            m if m.contains("Throttle") => 0.0,
            _ => per_s * period_s as f64,
        });
    }
    let i = index_of(&q.resource, "fn-");
    let (_, memory, insights) = function(i);
    let per_minute = 5.0 + (i * 7919 % 400) as f64;
    let duration = 40.0 + (i * 31 % 1500) as f64;
    let invocations = per_minute * minutes;
    Some(match (q.metric.as_str(), q.stat.as_str()) {
        ("Invocations", _) => invocations,
        ("Errors", _) => invocations * 0.001,
        ("Throttles", _) => {
            if i.is_multiple_of(200) {
                7.0
            } else {
                0.0
            }
        }
        ("Duration", "Average") => duration,
        ("Duration", "Maximum") => duration * 4.0,
        ("Duration", "SampleCount") => invocations,
        ("Duration", "p50") => duration * 0.9,
        ("Duration", "p95") => duration * 1.8,
        ("Duration", "p99") => duration * 2.5,
        ("ConcurrentExecutions", _) => 1.0 + (i % 20) as f64,
        _ if !insights => return None,
        ("used_memory_max", _) => f64::from(memory) * (0.15 + 0.1 * (i % 6) as f64),
        ("memory_utilization", _) => 15.0 + 10.0 * (i % 6) as f64,
        ("cpu_total_time", _) => duration * 0.4,
        ("init_duration", "SampleCount") => invocations * 0.01,
        ("init_duration", _) => 250.0,
        _ => return None,
    })
}

fn get_metric_data(estate: &Estate, params: &[(String, String)]) -> Answer {
    let _ = estate;
    let qs = queries(params);
    if qs.len() > 500 {
        return respond(
            400,
            "text/xml",
            "<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>The collection MetricDataQueries must not have a size greater than 500.</Message></Error><RequestId>stub</RequestId></ErrorResponse>".to_owned(),
        );
    }
    let start = parse_time(form_value(params, "StartTime").unwrap_or_default());
    let end = parse_time(form_value(params, "EndTime").unwrap_or_default());
    let first: usize = form_value(params, "NextToken")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let mut xml = String::with_capacity(1 << 20);
    xml.push_str("<GetMetricDataResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\"><GetMetricDataResult><MetricDataResults>");
    let mut budget: i64 = 100_800;
    let mut next = None;
    for (k, q) in qs.iter().enumerate().skip(first) {
        let period = q.period_s.max(60);
        let points = ((end - start) / period).max(1);
        if points > budget && k > first {
            next = Some(k);
            break;
        }
        budget -= points;
        let _ = write!(
            xml,
            "<member><Id>{}</Id><Label>{}</Label><StatusCode>Complete</StatusCode>",
            q.id, q.metric
        );
        let mut ts = String::new();
        let mut vs = String::new();
        // Newest first, as CloudWatch answers by default.
        for p in (0..points).rev() {
            let t = start + p * period;
            if let Some(v) = value(q, t, period) {
                let when = aws_smithy_types::DateTime::from_secs(t)
                    .fmt(aws_smithy_types::date_time::Format::DateTime)
                    .unwrap_or_default();
                let _ = write!(ts, "<member>{when}</member>");
                let _ = write!(vs, "<member>{v}</member>");
            }
        }
        let _ = write!(
            xml,
            "<Timestamps>{ts}</Timestamps><Values>{vs}</Values></member>"
        );
    }
    xml.push_str("</MetricDataResults>");
    if let Some(k) = next {
        let _ = write!(xml, "<NextToken>{k}</NextToken>");
    }
    xml.push_str("<Messages/></GetMetricDataResult><ResponseMetadata><RequestId>stub</RequestId></ResponseMetadata></GetMetricDataResponse>");
    respond(200, "text/xml", xml)
}

fn filter_log_events(request: &Value) -> Answer {
    let group = request["logGroupName"].as_str().unwrap_or_default();
    let name = group.rsplit('/').next().unwrap_or_default();
    let i = index_of(name, "fn-");
    let (_, memory, _) = function(i);
    let used = (f64::from(memory) * 0.3).round();
    let t = request["startTime"].as_i64().unwrap_or(0) + 60_000;
    let events: Vec<Value> = (0..50)
        .map(|k| {
            json!({
                "logStreamName": "2026/11/28/[$LATEST]stub", "timestamp": t + k * 1000,
                "message": format!("REPORT RequestId: {k}\tDuration: 102.25 ms\tBilled Duration: 103 ms\tMemory Size: {memory} MB\tMax Memory Used: {used} MB\t"),
                "ingestionTime": t + k * 1000, "eventId": k.to_string()
            })
        })
        .collect();
    json_answer(&json!({"events": events, "searchedLogStreams": []}))
}

fn list_tables(estate: &Estate, request: &Value) -> Answer {
    let start = request["ExclusiveStartTableName"]
        .as_str()
        .map_or(0, |n| index_of(n, "table-") + 1);
    let end = (start + 100).min(estate.tables);
    let names: Vec<String> = (start..end).map(|k| format!("table-{k:04}")).collect();
    let mut v = json!({"TableNames": names});
    if end < estate.tables {
        v["LastEvaluatedTableName"] = json!(format!("table-{:04}", end - 1));
    }
    json_answer(&v)
}

fn describe_table(request: &Value) -> Answer {
    let name = request["TableName"].as_str().unwrap_or_default();
    let throughput = |r: u32, w: u32| json!({"ReadCapacityUnits": r, "WriteCapacityUnits": w, "NumberOfDecreasesToday": 0});
    let gsi = |n: &str| {
        json!({
            "IndexName": n, "IndexStatus": "ACTIVE",
            "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
            "ProvisionedThroughput": throughput(100, 40)
        })
    };
    json_answer(&json!({"Table": {
        "TableName": name,
        "TableArn": format!("arn:aws:dynamodb:us-east-1:123456789012:table/{name}"),
        "TableStatus": "ACTIVE", "CreationDateTime": 1_700_000_000,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "BillingModeSummary": {"BillingMode": "PROVISIONED"},
        "ProvisionedThroughput": throughput(200, 80),
        "GlobalSecondaryIndexes": [gsi("gsi1"), gsi("gsi2")]
    }}))
}
