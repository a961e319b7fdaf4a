//! The AWS fidelity layer: a loopback HTTP proxy between the SDK and moto that makes the emulator
//! answer as AWS documents, where moto forgives. Every integration test and the demo talk to AWS
//! through it by default. One rule per behaviour; docs/aws-behaviour.md lists each with its AWS
//! source and the test that keeps it.
//!
//! Rules (always on):
//! - `ListFunctions` omits `State*`, `LastUpdateStatus*` and `RuntimeVersionConfig`, and pages
//!   as AWS does: at most 50 functions a page (moto answers every function at once).
//! - Functions carry a `RevisionId` that changes with every configuration or code update (and
//!   once more when the update completes); an update sent with a stale `RevisionId` gets 412
//!   `PreconditionFailedException`.
//! - An update leaves `LastUpdateStatus` `InProgress` for [`Fidelity::set_update_duration`]
//!   (default 1 s); meanwhile another update gets 409 `ResourceConflictException`.
//! - `GetAccountSettings` (which moto lacks) answers an `AccountLimit` with a concurrency quota
//!   of [`Fidelity::set_concurrency_quota`] (default 1,000, AWS's default).
//! - Provisioned concurrency (which moto lacks) is `IN_PROGRESS`, then `READY` after
//!   [`Fidelity::set_allocation_duration`]; `$LATEST` and unknown aliases are refused.
//! - The template's `trimtab:lock` deny: writes to a function tagged `trimtab:lock=true` get 403
//!   `AccessDeniedException` (moto enforces no IAM).
//! - `DeregisterScalableTarget` of a missing target is `ObjectNotFoundException`, and deletes the
//!   target's scaling policies and scheduled actions with it.
//! - `PutScheduledAction` on a target that is not registered, and `DeleteScheduledAction` of an
//!   action that is not there, are `ObjectNotFoundException` (moto takes both).
//! - Composite alarms, which moto lacks: `PutCompositeAlarm` is kept here, `DescribeAlarms`
//!   returns them only when `AlarmTypes` asks, and `DeleteAlarms` refuses more than one composite
//!   in a call.
//! - `PutDashboard` refuses a body of more than 500 widgets (`InvalidParameterInput`).
//!
//! Faults a test switches on ([`Fidelity::inject`]): throttling in each protocol's own shape,
//! an error of the test's choosing, a delay, and a write committed upstream whose response never
//! arrives (the connection is closed without an answer).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

/// moto's account id, which its ARNs carry.
const ACCOUNT: &str = "123456789012";

/// Fields `ListFunctions` leaves out (Lambda API reference, ListFunctions).
const NOT_LISTED: [&str; 7] = [
    "State",
    "StateReason",
    "StateReasonCode",
    "LastUpdateStatus",
    "LastUpdateStatusReason",
    "LastUpdateStatusReasonCode",
    "RuntimeVersionConfig",
];

/// What a fault does to a matching request.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// The service's throttling error (429 `TooManyRequestsException` for Lambda, 400
    /// `ThrottlingException` for JSON services, 400 `Throttling` for query services).
    Throttle,
    /// Answer with this error instead of forwarding.
    Fail {
        status: u16,
        code: String,
        message: String,
    },
    /// Forward (the write happens upstream), then close the connection without an answer.
    LoseResponse,
    /// Wait this long, then forward.
    Delay(Duration),
}

/// A fault for requests to `operation` (`lambda:UpdateFunctionConfiguration`), optionally only
/// those naming `resource` (a function name, or any text of the request body), `times` times
/// after skipping the first `skip` matches.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub operation: String,
    pub resource: Option<String>,
    pub kind: FaultKind,
    pub skip: u32,
    pub times: u32,
}

impl Fault {
    pub fn new(operation: &str, kind: FaultKind) -> Self {
        Self {
            operation: operation.to_owned(),
            resource: None,
            kind,
            skip: 0,
            times: 1,
        }
    }

    pub fn on(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_owned());
        self
    }

    pub fn times(mut self, n: u32) -> Self {
        self.times = n;
        self
    }

    pub fn after(mut self, skip: u32) -> Self {
        self.skip = skip;
        self
    }
}

/// One request the layer saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// `service:Operation`.
    pub operation: String,
    /// The function the request named (Lambda).
    pub function: Option<String>,
    /// The `RevisionId` the request carried.
    pub revision_id: Option<String>,
    pub status: u16,
    /// DynamoDB item and query requests: the index queried (if any) and the partition key
    /// value the request names, what an IAM `dynamodb:LeadingKeys` condition is held against.
    pub leading_key: Option<(Option<String>, String)>,
}

#[derive(Debug, Default)]
struct FunctionState {
    revision: u64,
    busy_until: Option<Instant>,
    /// The update in flight bumps the revision once more when it completes.
    bump_on_completion: bool,
}

#[derive(Debug, Clone)]
struct Provisioned {
    requested: u32,
    ready_at: Instant,
    last_modified: String,
}

/// A composite alarm as `PutCompositeAlarm` left it.
#[derive(Debug, Clone)]
struct Composite {
    rule: String,
    description: String,
    actions: Vec<String>,
    actions_enabled: bool,
}

#[derive(Debug)]
struct State {
    upstream: String,
    update_duration: Duration,
    allocation_duration: Duration,
    /// `AccountLimit.ConcurrentExecutions` that `GetAccountSettings` reports.
    concurrency_quota: u32,
    lock_deny: bool,
    functions: HashMap<String, FunctionState>,
    provisioned: HashMap<(String, String), Provisioned>,
    composites: std::collections::BTreeMap<String, Composite>,
    faults: Vec<Fault>,
    seen: Vec<Seen>,
}

impl State {
    /// The function's state, with a finished update's completion applied.
    fn function(&mut self, name: &str) -> &mut FunctionState {
        let f = self
            .functions
            .entry(name.to_owned())
            .or_insert(FunctionState {
                revision: 1,
                ..FunctionState::default()
            });
        if f.busy_until.is_some_and(|t| Instant::now() >= t) {
            f.busy_until = None;
            if f.bump_on_completion {
                f.revision += 1;
                f.bump_on_completion = false;
            }
        }
        f
    }

    fn revision_id(&mut self, name: &str) -> String {
        let n = self.function(name).revision;
        revision_string(name, n)
    }

    /// Takes the first armed fault matching the request, if any.
    fn take_fault(&mut self, op: &str, function: Option<&str>, body: &str) -> Option<FaultKind> {
        for f in &mut self.faults {
            if f.operation != op || f.times == 0 {
                continue;
            }
            if let Some(r) = &f.resource
                && function != Some(r.as_str())
                && !body.contains(r.as_str())
            {
                continue;
            }
            if f.skip > 0 {
                f.skip -= 1;
                continue;
            }
            f.times -= 1;
            return Some(f.kind.clone());
        }
        None
    }
}

fn revision_string(name: &str, n: u64) -> String {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!(
        "{:08x}-{:04x}-4{:03x}-8000-{n:012x}",
        h >> 32,
        h & 0xffff,
        (h >> 16) & 0xfff
    )
}

/// The running layer; stopped when dropped.
#[derive(Debug)]
pub struct Fidelity {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Fidelity {
    /// Starts the layer on a free loopback port in front of `upstream` (moto's endpoint).
    pub fn start(upstream: &str) -> anyhow::Result<Self> {
        let state = Arc::new(Mutex::new(State {
            upstream: upstream.trim_start_matches("http://").to_owned(),
            update_duration: Duration::from_secs(1),
            allocation_duration: Duration::from_secs(1),
            concurrency_quota: 1000,
            lock_deny: true,
            functions: HashMap::new(),
            provisioned: HashMap::new(),
            composites: std::collections::BTreeMap::new(),
            faults: Vec::new(),
            seen: Vec::new(),
        }));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("aws-fidelity".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(std_listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = serve(listener, shared) => {}
                        _ = stopped => {}
                    }
                });
            })
            .context("starting the fidelity thread")?;
        Ok(Self {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The endpoint clients use instead of moto's.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long a function update stays `InProgress`.
    pub fn set_update_duration(&self, d: Duration) {
        self.state().update_duration = d;
    }

    /// How long provisioned concurrency stays `IN_PROGRESS`.
    pub fn set_allocation_duration(&self, d: Duration) {
        self.state().allocation_duration = d;
    }

    /// The account's concurrency quota `GetAccountSettings` reports (default 1,000).
    pub fn set_concurrency_quota(&self, quota: u32) {
        self.state().concurrency_quota = quota;
    }

    /// Arms a fault.
    pub fn inject(&self, fault: Fault) {
        self.state().faults.push(fault);
    }

    /// Every request seen for `operation` (`service:Operation`), in order.
    pub fn seen(&self, operation: &str) -> Vec<Seen> {
        self.state()
            .seen
            .iter()
            .filter(|s| s.operation == operation)
            .cloned()
            .collect()
    }

    /// The distinct operations seen so far (`service:Operation`), sorted.
    /// The DynamoDB requests seen that named a partition key: (operation, index, key).
    pub fn leading_keys(&self) -> Vec<(String, Option<String>, String)> {
        let mut keys: Vec<_> = self
            .state()
            .seen
            .iter()
            .filter_map(|s| {
                let (index, key) = s.leading_key.clone()?;
                Some((s.operation.clone(), index, key))
            })
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    pub fn operations(&self) -> Vec<String> {
        let mut ops: Vec<String> = self
            .state()
            .seen
            .iter()
            .map(|s| s.operation.clone())
            .collect();
        ops.sort();
        ops.dedup();
        ops
    }

    /// How many requests of each operation were seen so far (`service:Operation` -> count).
    pub fn counts(&self) -> std::collections::BTreeMap<String, u64> {
        let mut out = std::collections::BTreeMap::new();
        for s in &self.state().seen {
            *out.entry(s.operation.clone()).or_insert(0) += 1;
        }
        out
    }

    /// Forgets the requests seen so far.
    pub fn clear_seen(&self) {
        self.state().seen.clear();
    }

    /// The function's current `RevisionId`.
    pub fn revision_id(&self, function: &str) -> String {
        self.state().revision_id(function)
    }
}

impl Drop for Fidelity {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(listener: TcpListener, state: Arc<Mutex<State>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { handle(req, state).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A request, read whole.
#[derive(Clone)]
struct Call {
    method: hyper::Method,
    path: String,
    query: String,
    headers: hyper::HeaderMap,
    body: Bytes,
    /// `service:Operation`.
    operation: String,
    function: Option<String>,
    qualifier: Option<String>,
    protocol: Protocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    RestJson,
    Json,
    Query,
}

/// Closing the connection without an answer.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("response dropped by the fidelity layer")
    }
}

impl std::error::Error for Dropped {}

type Answer = Response<Full<Bytes>>;

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

async fn handle(req: Request<Incoming>, state: Arc<Mutex<State>>) -> Result<Answer, Dropped> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let call = identify(parts.method, &parts.uri, parts.headers, body);
    let text = String::from_utf8_lossy(&call.body).into_owned();
    let fault = lock(&state).take_fault(&call.operation, call.function.as_deref(), &text);
    let answer = match fault {
        Some(FaultKind::Throttle) => Ok(throttle(&call)),
        Some(FaultKind::Fail {
            status,
            code,
            message,
        }) => Ok(error(&call, status, &code, &message)),
        Some(FaultKind::Delay(d)) => {
            tokio::time::sleep(d).await;
            apply_rules(&call, &state).await
        }
        Some(FaultKind::LoseResponse) => {
            let _ = apply_rules(&call, &state).await;
            Err(Dropped)
        }
        None => apply_rules(&call, &state).await,
    };
    let status = answer.as_ref().map_or(0, |a| a.status().as_u16());
    let revision_id = revision_sent(&call);
    let leading_key = leading_key(&call);
    lock(&state).seen.push(Seen {
        operation: call.operation.clone(),
        function: call.function.clone(),
        revision_id,
        status,
        leading_key,
    });
    answer
}

/// The partition key a DynamoDB request names (`Key`/`Item` `pk`, or the value a `Query`'s key
/// condition sets its partition key to), with the index it queries.
fn leading_key(call: &Call) -> Option<(Option<String>, String)> {
    if !call.operation.starts_with("dynamodb:") {
        return None;
    }
    let body: Value = serde_json::from_slice(&call.body).ok()?;
    let index = body["IndexName"].as_str().map(ToOwned::to_owned);
    let from_item = ["Key", "Item"]
        .iter()
        .find_map(|k| body[k]["pk"]["S"].as_str().map(ToOwned::to_owned));
    let from_query = || {
        let condition = body["KeyConditionExpression"].as_str()?;
        let placeholder = condition
            .split_whitespace()
            .skip_while(|w| *w != "=")
            .nth(1)?;
        body["ExpressionAttributeValues"][placeholder]["S"]
            .as_str()
            .map(ToOwned::to_owned)
    };
    Some((index, from_item.or_else(from_query)?))
}

fn revision_sent(call: &Call) -> Option<String> {
    serde_json::from_slice::<Value>(&call.body)
        .ok()?
        .get("RevisionId")?
        .as_str()
        .map(ToOwned::to_owned)
}

/// Names the request: service from the signature's credential scope, operation from the
/// `X-Amz-Target` header (JSON protocols), the `Action` parameter (query protocol) or the path
/// (Lambda's REST API).
fn identify(
    method: hyper::Method,
    uri: &hyper::Uri,
    headers: hyper::HeaderMap,
    body: Bytes,
) -> Call {
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let auth = header("authorization");
    let service = auth
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').nth(3))
        .map(|s| match s {
            "monitoring" => "cloudwatch",
            other => other,
        })
        .unwrap_or("unknown")
        .to_owned();
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    let target = header("x-amz-target");
    let text = String::from_utf8_lossy(&body).into_owned();
    let (protocol, op, function, qualifier) = if !target.is_empty() {
        let op = target.rsplit('.').next().unwrap_or_default().to_owned();
        (Protocol::Json, op, None, None)
    } else if header("content-type").starts_with("application/x-www-form-urlencoded") {
        let op = text
            .split('&')
            .find_map(|kv| kv.strip_prefix("Action="))
            .unwrap_or_default()
            .to_owned();
        (Protocol::Query, op, None, None)
    } else if service != "lambda" {
        // API Gateway's REST management API: IAM names its actions by HTTP method.
        (Protocol::RestJson, method.as_str().to_owned(), None, None)
    } else {
        let (op, function) = lambda_operation(&method, &path, &query);
        let qualifier = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("Qualifier="))
            .map(percent_decode);
        (Protocol::RestJson, op, function, qualifier)
    };
    Call {
        method,
        path,
        query,
        headers,
        body,
        operation: format!("{service}:{op}"),
        function,
        qualifier,
        protocol,
    }
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A function name from a path segment that may be a name, a partial or a full ARN.
fn function_name(segment: &str) -> String {
    let decoded = percent_decode(segment);
    match decoded.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest).to_owned(),
        None => decoded,
    }
}

/// Lambda's REST operations, by method and path.
fn lambda_operation(method: &hyper::Method, path: &str, query: &str) -> (String, Option<String>) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let get = method == hyper::Method::GET;
    let (op, function) = match (parts.as_slice(), method.as_str()) {
        ([_, "functions"], "GET") => ("ListFunctions", None),
        ([_, "account-settings"], "GET") => ("GetAccountSettings", None),
        ([_, "functions"], "POST") => ("CreateFunction", None),
        ([_, "functions", f], "GET") => ("GetFunction", Some(*f)),
        ([_, "functions", f], "DELETE") => ("DeleteFunction", Some(*f)),
        ([_, "functions", f, "configuration"], "GET") => ("GetFunctionConfiguration", Some(*f)),
        ([_, "functions", f, "configuration"], "PUT") => ("UpdateFunctionConfiguration", Some(*f)),
        ([_, "functions", f, "code"], "PUT") => ("UpdateFunctionCode", Some(*f)),
        ([_, "functions", f, "versions"], "POST") => ("PublishVersion", Some(*f)),
        ([_, "functions", f, "concurrency"], "GET") => ("GetFunctionConcurrency", Some(*f)),
        ([_, "functions", f, "concurrency"], "PUT") => ("PutFunctionConcurrency", Some(*f)),
        ([_, "functions", f, "provisioned-concurrency"], m) => (
            match m {
                "PUT" => "PutProvisionedConcurrencyConfig",
                "DELETE" => "DeleteProvisionedConcurrencyConfig",
                _ if query.contains("List=ALL") => "ListProvisionedConcurrencyConfigs",
                _ => "GetProvisionedConcurrencyConfig",
            },
            Some(*f),
        ),
        ([_, "functions", f, "aliases"], "POST") => ("CreateAlias", Some(*f)),
        ([_, "functions", f, "aliases"], "GET") => ("ListAliases", Some(*f)),
        ([_, "functions", f, "aliases", _], "PUT") => ("UpdateAlias", Some(*f)),
        ([_, "functions", f, "aliases", _], "DELETE") => ("DeleteAlias", Some(*f)),
        ([_, "functions", f, "aliases", ..], _) => {
            (if get { "GetAlias" } else { "Alias" }, Some(*f))
        }
        ([_, "functions", f, "invocations"], _) => ("Invoke", Some(*f)),
        ([_, "tags", arn], "GET") => ("ListTags", Some(*arn)),
        ([_, "tags", arn], "POST") => ("TagResource", Some(*arn)),
        ([_, "tags", arn], "DELETE") => ("UntagResource", Some(*arn)),
        _ => ("Rest", None),
    };
    (op.to_owned(), function.map(function_name))
}

fn json_answer(status: u16, body: &Value) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// An error in the protocol's own shape.
fn error(call: &Call, status: u16, code: &str, message: &str) -> Answer {
    match call.protocol {
        Protocol::RestJson => {
            let mut r = json_answer(status, &json!({"Type": "User", "message": message}));
            if let Ok(v) = hyper::header::HeaderValue::from_str(code) {
                r.headers_mut().insert("x-amzn-errortype", v);
            }
            r
        }
        Protocol::Json => {
            let mut r = json_answer(status, &json!({"__type": code, "message": message}));
            if let Some(ct) = call.headers.get("content-type") {
                r.headers_mut().insert("content-type", ct.clone());
            }
            r
        }
        Protocol::Query => {
            let xml = format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fidelity</RequestId></ErrorResponse>"
            );
            let mut r = Response::new(Full::new(Bytes::from(xml)));
            *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            r.headers_mut().insert(
                "content-type",
                hyper::header::HeaderValue::from_static("text/xml"),
            );
            r
        }
    }
}

/// Each service's throttling answer.
fn throttle(call: &Call) -> Answer {
    match call.protocol {
        Protocol::RestJson => {
            let mut r = error(call, 429, "TooManyRequestsException", "Rate exceeded");
            r.headers_mut()
                .insert("retry-after", hyper::header::HeaderValue::from_static("1"));
            r
        }
        Protocol::Json => error(call, 400, "ThrottlingException", "Rate exceeded"),
        Protocol::Query => error(call, 400, "Throttling", "Rate exceeded"),
    }
}

/// Sends `call` to moto as it came.
async fn forward(call: &Call, upstream: &str) -> anyhow::Result<(u16, hyper::HeaderMap, Bytes)> {
    let stream = TcpStream::connect(upstream).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let uri = if call.query.is_empty() {
        call.path.clone()
    } else {
        format!("{}?{}", call.path, call.query)
    };
    let mut req = Request::builder().method(call.method.clone()).uri(uri);
    for (k, v) in &call.headers {
        // The body may have been rewritten: hyper sets its length.
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    let req = req
        .header("host", upstream)
        .body(Full::new(call.body.clone()))?;
    let res = sender.send_request(req).await?;
    let status = res.status().as_u16();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await?.to_bytes();
    Ok((status, parts.headers, bytes))
}

/// A GET of moto's Lambda API on the layer's own account, signed as `like` was (moto picks the
/// service from the signature's scope).
async fn get_upstream(upstream: &str, like: &Call, path: &str) -> Option<(u16, Value)> {
    let mut headers = hyper::HeaderMap::new();
    for k in ["authorization", "x-amz-date"] {
        if let Some(v) = like.headers.get(k) {
            headers.insert(k, v.clone());
        }
    }
    let call = Call {
        method: hyper::Method::GET,
        path: path.to_owned(),
        query: String::new(),
        headers,
        body: Bytes::new(),
        operation: String::new(),
        function: None,
        qualifier: None,
        protocol: Protocol::RestJson,
    };
    let (status, _, body) = forward(&call, upstream).await.ok()?;
    Some((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

fn passthrough(status: u16, headers: hyper::HeaderMap, body: Bytes) -> Answer {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (k, v) in &headers {
        if k != "content-length" && k != "transfer-encoding" && k != "connection" {
            r.headers_mut().insert(k, v.clone());
        }
    }
    r
}

fn with_json(status: u16, headers: hyper::HeaderMap, body: &Value) -> Answer {
    passthrough(status, headers, Bytes::from(body.to_string()))
}

const WRITES: [&str; 5] = [
    "lambda:UpdateFunctionConfiguration",
    "lambda:UpdateFunctionCode",
    "lambda:PublishVersion",
    "lambda:PutProvisionedConcurrencyConfig",
    "lambda:DeleteProvisionedConcurrencyConfig",
];

/// Applies the always-on rules to a request, forwarding to moto where it has the answer.
async fn apply_rules(call: &Call, state: &Arc<Mutex<State>>) -> Result<Answer, Dropped> {
    let upstream = lock(state).upstream.clone();
    let function = call.function.clone().unwrap_or_default();
    let op = call.operation.as_str();

    if WRITES.contains(&op) && lock(state).lock_deny && locked(&upstream, call, &function).await {
        let action = op.trim_start_matches("lambda:");
        return Ok(error(
            call,
            403,
            "AccessDeniedException",
            &format!(
                "User: arn:aws:sts::{ACCOUNT}:assumed-role/trimtab/trimtab is not authorized to perform: lambda:{action} on resource: arn:aws:lambda:us-east-1:{ACCOUNT}:function:{function} with an explicit deny in an identity-based policy"
            ),
        ));
    }

    match op {
        "lambda:UpdateFunctionConfiguration"
        | "lambda:UpdateFunctionCode"
        | "lambda:PublishVersion" => {
            {
                let mut s = lock(state);
                let current = s.revision_id(&function);
                if s.function(&function).busy_until.is_some() {
                    return Ok(error(
                        call,
                        409,
                        "ResourceConflictException",
                        &format!(
                            "The operation cannot be performed at this time. An update is in progress for resource: arn:aws:lambda:us-east-1:{ACCOUNT}:function:{function}"
                        ),
                    ));
                }
                if let Some(sent) = revision_sent(call)
                    && sent != current
                {
                    return Ok(error(
                        call,
                        412,
                        "PreconditionFailedException",
                        "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
                    ));
                }
            }
            let (status, headers, body) = forward(call, &upstream).await.map_err(|_| Dropped)?;
            if status != 200 || op == "lambda:PublishVersion" {
                return Ok(passthrough(status, headers, body));
            }
            let mut s = lock(state);
            let duration = s.update_duration;
            let f = s.function(&function);
            f.revision += 1;
            f.busy_until = Some(Instant::now() + duration);
            f.bump_on_completion = true;
            let revision = s.revision_id(&function);
            let mut v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            v["RevisionId"] = json!(revision);
            v["LastUpdateStatus"] = json!("InProgress");
            Ok(with_json(status, headers, &v))
        }
        "lambda:GetFunctionConfiguration" | "lambda:GetFunction" => {
            let (status, headers, body) = forward(call, &upstream).await.map_err(|_| Dropped)?;
            let latest = call.qualifier.as_deref().is_none_or(|q| q == "$LATEST");
            if status != 200 || !latest {
                return Ok(passthrough(status, headers, body));
            }
            let mut v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let mut s = lock(state);
            let busy = s.function(&function).busy_until.is_some();
            let revision = s.revision_id(&function);
            let config = if op == "lambda:GetFunction" {
                &mut v["Configuration"]
            } else {
                &mut v
            };
            config["RevisionId"] = json!(revision);
            if busy {
                config["LastUpdateStatus"] = json!("InProgress");
            }
            Ok(with_json(status, headers, &v))
        }
        "lambda:ListFunctions" => {
            // Pages as AWS pages: at most 50 functions (or `MaxItems`), then `NextMarker`.
            let param = |k: &str| {
                call.query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                    .map(percent_decode)
            };
            let offset: usize = param("Marker")
                .and_then(|m| m.strip_prefix("fidelity-").and_then(|n| n.parse().ok()))
                .unwrap_or(0);
            let page = param("MaxItems")
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(50)
                .clamp(1, 50);
            let mut everything = call.clone();
            everything.query = call
                .query
                .split('&')
                .filter(|kv| !kv.starts_with("Marker=") && !kv.starts_with("MaxItems="))
                .collect::<Vec<_>>()
                .join("&");
            let (status, headers, body) =
                forward(&everything, &upstream).await.map_err(|_| Dropped)?;
            let mut v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if let Some(all) = v.get_mut("Functions").and_then(Value::as_array_mut) {
                let total = all.len();
                let end = (offset + page).min(total);
                *all = all
                    .drain(..)
                    .skip(offset)
                    .take(end.saturating_sub(offset))
                    .collect();
                v["NextMarker"] = if end < total {
                    json!(format!("fidelity-{end}"))
                } else {
                    Value::Null
                };
            }
            let mut s = lock(state);
            if let Some(functions) = v.get_mut("Functions").and_then(Value::as_array_mut) {
                for f in functions {
                    if let Some(obj) = f.as_object_mut() {
                        for k in NOT_LISTED {
                            obj.remove(k);
                        }
                    }
                    let name = f["FunctionName"].as_str().unwrap_or_default().to_owned();
                    f["RevisionId"] = json!(s.revision_id(&name));
                }
            }
            Ok(with_json(status, headers, &v))
        }
        "lambda:PutProvisionedConcurrencyConfig"
        | "lambda:GetProvisionedConcurrencyConfig"
        | "lambda:DeleteProvisionedConcurrencyConfig" => {
            Ok(provisioned_concurrency(call, state, &upstream, &function).await)
        }
        "application-autoscaling:DeregisterScalableTarget" => Ok(deregister(call, &upstream).await),
        "lambda:GetAccountSettings" => {
            // moto lacks GetAccountSettings: the layer answers as the API reference shows it.
            let quota = lock(state).concurrency_quota;
            Ok(json_answer(
                200,
                &json!({
                    "AccountLimit": {
                        "TotalCodeSize": 80_530_636_800_u64,
                        "CodeSizeUnzipped": 262_144_000,
                        "CodeSizeZipped": 52_428_800,
                        "ConcurrentExecutions": quota,
                        "UnreservedConcurrentExecutions": quota,
                    },
                    "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": 0},
                }),
            ))
        }
        "application-autoscaling:PutScheduledAction"
        | "application-autoscaling:DeleteScheduledAction" => {
            Ok(scheduled_action(call, &upstream).await)
        }
        "cloudwatch:PutCompositeAlarm" => Ok(put_composite(call, state)),
        "cloudwatch:PutDashboard" => {
            // A dashboard body holds 0 to 500 widgets (Dashboard Body Structure); moto takes any.
            let widgets = form_value(&form(&call.body), "DashboardBody")
                .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
                .and_then(|v| v["widgets"].as_array().map(Vec::len))
                .unwrap_or(0);
            if widgets > 500 {
                return Ok(error(
                    call,
                    400,
                    "InvalidParameterInput",
                    "The dashboard body has more than 500 widgets",
                ));
            }
            let (status, headers, body) = forward(call, &upstream).await.map_err(|_| Dropped)?;
            Ok(passthrough(status, headers, body))
        }
        "cloudwatch:DescribeAlarms" => {
            let (status, headers, body) = forward(call, &upstream).await.map_err(|_| Dropped)?;
            let text = describe_with_composites(call, &String::from_utf8_lossy(&body), state);
            Ok(passthrough(status, headers, Bytes::from(text)))
        }
        "cloudwatch:DeleteAlarms" => {
            let names = form_list(&form(&call.body), "AlarmNames");
            let composites: Vec<&String> = {
                let s = lock(state);
                names
                    .iter()
                    .filter(|n| s.composites.contains_key(*n))
                    .collect()
            };
            if composites.len() > 1 {
                return Ok(error(
                    call,
                    400,
                    "ValidationError",
                    "You can delete at most one composite alarm in one operation",
                ));
            }
            let (status, headers, body) = forward(call, &upstream).await.map_err(|_| Dropped)?;
            if status == 200 {
                let mut s = lock(state);
                for n in &names {
                    s.composites.remove(n);
                }
            }
            Ok(passthrough(status, headers, body))
        }
        _ => {
            let (status, headers, body) = forward(call, &upstream).await.map_err(|_| Dropped)?;
            Ok(passthrough(status, headers, body))
        }
    }
}

/// A query-protocol body as its parameters, in order.
pub(crate) fn form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(&v.replace('+', " "))))
        .collect()
}

pub(crate) fn form_value<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A query-protocol list (`Key.member.N`), in order.
fn form_list(params: &[(String, String)], key: &str) -> Vec<String> {
    let prefix = format!("{key}.member.");
    let mut items: Vec<(u32, String)> = params
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.parse().ok()?, v.clone())))
        .collect();
    items.sort();
    items.into_iter().map(|(_, v)| v).collect()
}

pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `PutCompositeAlarm`, kept by the layer (moto has no such action).
fn put_composite(call: &Call, state: &Mutex<State>) -> Answer {
    let p = form(&call.body);
    let (Some(name), Some(rule)) = (form_value(&p, "AlarmName"), form_value(&p, "AlarmRule"))
    else {
        return error(
            call,
            400,
            "ValidationError",
            "AlarmName and AlarmRule are required",
        );
    };
    let composite = Composite {
        rule: rule.to_owned(),
        description: form_value(&p, "AlarmDescription")
            .unwrap_or_default()
            .to_owned(),
        actions: form_list(&p, "AlarmActions"),
        actions_enabled: form_value(&p, "ActionsEnabled") != Some("false"),
    };
    lock(state).composites.insert(name.to_owned(), composite);
    let xml = "<PutCompositeAlarmResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\"><ResponseMetadata><RequestId>fidelity</RequestId></ResponseMetadata></PutCompositeAlarmResponse>";
    let mut r = Response::new(Full::new(Bytes::from(xml)));
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/xml"),
    );
    r
}

/// moto's `DescribeAlarms` answer with the layer's composite alarms in `CompositeAlarms` when the
/// request's `AlarmTypes` asks for them (AWS returns metric alarms only otherwise), filtered by
/// `AlarmNamePrefix` or `AlarmNames` as the request filters.
fn describe_with_composites(call: &Call, moto: &str, state: &Mutex<State>) -> String {
    let p = form(&call.body);
    let wanted = form_list(&p, "AlarmTypes")
        .iter()
        .any(|t| t == "CompositeAlarm");
    let prefix = form_value(&p, "AlarmNamePrefix").unwrap_or_default();
    let names = form_list(&p, "AlarmNames");
    let mut text = moto.to_owned();
    for (open, close) in [("<CompositeAlarms>", "</CompositeAlarms>")] {
        if let (Some(a), Some(b)) = (text.find(open), text.find(close)) {
            text = format!("{}{}", &text[..a], &text[b + close.len()..]);
        }
    }
    text = text.replace("<CompositeAlarms/>", "");
    if !wanted {
        return text;
    }
    let members: String = lock(state)
        .composites
        .iter()
        .filter(|(n, _)| n.starts_with(prefix) && (names.is_empty() || names.contains(n)))
        .map(|(n, c)| {
            let actions: String = c
                .actions
                .iter()
                .map(|a| format!("<member>{}</member>", xml_escape(a)))
                .collect();
            format!(
                "<member><AlarmName>{}</AlarmName><AlarmArn>arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:{}</AlarmArn><AlarmDescription>{}</AlarmDescription><AlarmRule>{}</AlarmRule><ActionsEnabled>{}</ActionsEnabled><AlarmActions>{actions}</AlarmActions><StateValue>INSUFFICIENT_DATA</StateValue></member>",
                xml_escape(n),
                xml_escape(n),
                xml_escape(&c.description),
                xml_escape(&c.rule),
                c.actions_enabled
            )
        })
        .collect();
    let end = "</DescribeAlarmsResult>";
    match text.find(end) {
        Some(i) => format!(
            "{}<CompositeAlarms>{members}</CompositeAlarms>{}",
            &text[..i],
            &text[i..]
        ),
        None => text,
    }
}

/// A JSON-protocol call to moto, signed as `like` was.
async fn json_upstream(upstream: &str, like: &Call, target: &str, body: &Value) -> Option<Value> {
    let mut headers = like.headers.clone();
    headers.insert(
        "x-amz-target",
        hyper::header::HeaderValue::from_str(target).ok()?,
    );
    headers.remove("content-length");
    let call = Call {
        method: hyper::Method::POST,
        path: "/".to_owned(),
        query: String::new(),
        headers,
        body: Bytes::from(body.to_string()),
        operation: String::new(),
        function: None,
        qualifier: None,
        protocol: Protocol::Json,
    };
    let (_, _, body) = forward(&call, upstream).await.ok()?;
    serde_json::from_slice(&body).ok()
}

/// `DeregisterScalableTarget` as documented: a missing target is `ObjectNotFoundException`
/// (moto: `ValidationException`), and the target's scaling policies and scheduled actions go with
/// it (moto keeps them).
async fn deregister(call: &Call, upstream: &str) -> Answer {
    let Ok((status, headers, body)) = forward(call, upstream).await else {
        return error(call, 500, "InternalServiceException", "upstream failed");
    };
    let text = String::from_utf8_lossy(&body);
    if status == 400 && text.contains("No scalable target found") {
        return error(
            call,
            400,
            "ObjectNotFoundException",
            "No scalable target found",
        );
    }
    if status == 200
        && let Ok(req) = serde_json::from_slice::<Value>(&call.body)
    {
        let scope = json!({
            "ServiceNamespace": req["ServiceNamespace"],
            "ResourceId": req["ResourceId"],
            "ScalableDimension": req["ScalableDimension"],
        });
        let target = |op: &str| format!("AnyScaleFrontendService.{op}");
        if let Some(v) =
            json_upstream(upstream, call, &target("DescribeScalingPolicies"), &scope).await
        {
            for p in v["ScalingPolicies"].as_array().into_iter().flatten() {
                let mut del = scope.clone();
                del["PolicyName"] = p["PolicyName"].clone();
                json_upstream(upstream, call, &target("DeleteScalingPolicy"), &del).await;
            }
        }
        if let Some(v) =
            json_upstream(upstream, call, &target("DescribeScheduledActions"), &scope).await
        {
            for a in v["ScheduledActions"].as_array().into_iter().flatten() {
                let mut del = scope.clone();
                del["ScheduledActionName"] = a["ScheduledActionName"].clone();
                json_upstream(upstream, call, &target("DeleteScheduledAction"), &del).await;
            }
        }
    }
    passthrough(status, headers, body)
}

/// `PutScheduledAction` needs a registered scalable target, and `DeleteScheduledAction` an
/// action that exists: otherwise `ObjectNotFoundException` (Application Auto Scaling API
/// reference), where moto answers 200.
async fn scheduled_action(call: &Call, upstream: &str) -> Answer {
    let req: Value = serde_json::from_slice(&call.body).unwrap_or_default();
    let target = |op: &str| format!("AnyScaleFrontendService.{op}");
    let missing = if call.operation.ends_with("PutScheduledAction") {
        let scope = json!({
            "ServiceNamespace": req["ServiceNamespace"],
            "ResourceIds": [req["ResourceId"]],
            "ScalableDimension": req["ScalableDimension"],
        });
        json_upstream(upstream, call, &target("DescribeScalableTargets"), &scope)
            .await
            .is_some_and(|v| v["ScalableTargets"].as_array().is_none_or(Vec::is_empty))
            .then_some("No scalable target registered for the scheduled action")
    } else {
        let scope = json!({
            "ServiceNamespace": req["ServiceNamespace"],
            "ResourceId": req["ResourceId"],
            "ScalableDimension": req["ScalableDimension"],
            "ScheduledActionNames": [req["ScheduledActionName"]],
        });
        json_upstream(upstream, call, &target("DescribeScheduledActions"), &scope)
            .await
            .is_some_and(|v| v["ScheduledActions"].as_array().is_none_or(Vec::is_empty))
            .then_some("No scheduled action found")
    };
    if let Some(message) = missing {
        return error(call, 400, "ObjectNotFoundException", message);
    }
    match forward(call, upstream).await {
        Ok((status, headers, body)) => passthrough(status, headers, body),
        Err(_) => error(call, 500, "InternalServiceException", "upstream failed"),
    }
}

/// Whether moto holds the `trimtab:lock=true` tag on the function.
async fn locked(upstream: &str, call: &Call, function: &str) -> bool {
    let arn = format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:{function}");
    get_upstream(upstream, call, &format!("/2017-03-31/tags/{arn}"))
        .await
        .is_some_and(|(_, v)| v["Tags"]["trimtab:lock"] == "true")
}

fn provisioned_json(p: &Provisioned) -> Value {
    let ready = Instant::now() >= p.ready_at;
    json!({
        "RequestedProvisionedConcurrentExecutions": p.requested,
        "AvailableProvisionedConcurrentExecutions": if ready { p.requested } else { 0 },
        "AllocatedProvisionedConcurrentExecutions": if ready { p.requested } else { 0 },
        "Status": if ready { "READY" } else { "IN_PROGRESS" },
        "LastModified": p.last_modified,
    })
}

/// Lambda's provisioned-concurrency API, which moto does not have, as documented: `Put`
/// answers 202 `IN_PROGRESS`, allocation completes later (`READY`), `$LATEST` is refused, the
/// alias must exist, `Get` of nothing is 404 `ProvisionedConcurrencyConfigNotFoundException`.
async fn provisioned_concurrency(
    call: &Call,
    state: &Arc<Mutex<State>>,
    upstream: &str,
    function: &str,
) -> Answer {
    let qualifier = call.qualifier.clone().unwrap_or_default();
    let key = (function.to_owned(), qualifier.clone());
    let not_found = || {
        error(
            call,
            404,
            "ProvisionedConcurrencyConfigNotFoundException",
            "No Provisioned Concurrency Config found for this function",
        )
    };
    match call.operation.as_str() {
        "lambda:PutProvisionedConcurrencyConfig" => {
            if qualifier.is_empty() || qualifier == "$LATEST" {
                return error(
                    call,
                    400,
                    "InvalidParameterValueException",
                    "Provisioned Concurrency Configs cannot be applied to unpublished function versions.",
                );
            }
            if !qualifier.chars().all(|c| c.is_ascii_digit()) {
                let alias = get_upstream(
                    upstream,
                    call,
                    &format!("/2015-03-31/functions/{function}/aliases/{qualifier}"),
                )
                .await;
                if alias.is_none_or(|(status, _)| status / 100 != 2) {
                    return error(
                        call,
                        404,
                        "ResourceNotFoundException",
                        &format!(
                            "Cannot find alias arn: arn:aws:lambda:us-east-1:{ACCOUNT}:function:{function}:{qualifier}"
                        ),
                    );
                }
            }
            let requested = serde_json::from_slice::<Value>(&call.body)
                .ok()
                .and_then(|v| v["ProvisionedConcurrentExecutions"].as_u64())
                .unwrap_or(0);
            let mut s = lock(state);
            let p = Provisioned {
                requested: u32::try_from(requested).unwrap_or(u32::MAX),
                ready_at: Instant::now() + s.allocation_duration,
                last_modified: iso_now(),
            };
            let body = provisioned_json(&p);
            s.provisioned.insert(key, p);
            json_answer(202, &body)
        }
        "lambda:GetProvisionedConcurrencyConfig" => match lock(state).provisioned.get(&key) {
            Some(p) => json_answer(200, &provisioned_json(p)),
            None => not_found(),
        },
        _ => match lock(state).provisioned.remove(&key) {
            Some(_) => {
                let mut r = Response::new(Full::new(Bytes::new()));
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            }
            None => not_found(),
        },
    }
}

fn iso_now() -> String {
    let s = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let day = s.div_euclid(86_400);
    let secs = s.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}.000+0000",
        trimtab_core::calendar::format_date(day),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_paths_name_their_operations() {
        let op = |m: hyper::Method, p: &str, q: &str| lambda_operation(&m, p, q);
        assert_eq!(
            op(hyper::Method::GET, "/2015-03-31/functions/", ""),
            ("ListFunctions".to_owned(), None)
        );
        assert_eq!(
            op(
                hyper::Method::PUT,
                "/2015-03-31/functions/orders/configuration",
                ""
            ),
            (
                "UpdateFunctionConfiguration".to_owned(),
                Some("orders".to_owned())
            )
        );
        assert_eq!(
            op(
                hyper::Method::GET,
                "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aorders/configuration",
                ""
            ),
            (
                "GetFunctionConfiguration".to_owned(),
                Some("orders".to_owned())
            )
        );
        assert_eq!(
            op(
                hyper::Method::DELETE,
                "/2019-09-30/functions/orders/provisioned-concurrency",
                "Qualifier=live"
            )
            .0,
            "DeleteProvisionedConcurrencyConfig"
        );
    }

    #[test]
    fn revision_ids_look_like_uuids_and_differ_by_revision() {
        let a = revision_string("orders", 1);
        assert_eq!(a.len(), 36);
        assert_ne!(a, revision_string("orders", 2));
        assert_ne!(a, revision_string("payments", 1));
    }
}
