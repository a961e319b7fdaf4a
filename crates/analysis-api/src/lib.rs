//! The on-demand analysis API: API Gateway HTTP API (v2) requests in, JSON responses out. It
//! shares every job's code with the scheduled functions: a route picks a job and hands it the
//! body as that job's event.
//!
//! Safe against bad input and strangers: every error is `{"error": {"code", "message"}}` with the
//! right status; nothing runs before the route, body and identity pass; server-side failures say
//! only which request failed (details go to the logs); analyses run in recommend mode, and apply
//! runs only for IAM identities listed in configuration.

pub mod jobs;
pub mod router;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::http::{HeaderMap, HeaderValue};
use serde_json::Value;
use trimtab_aws::Clients;
use trimtab_aws::decisions::{DecisionTable, RunState, RunStatus};
use trimtab_lambda::{AsyncRun, Deadline, FailureKind, Invocation};

pub use jobs::{Failure, Jobs};
pub use router::{ApiError, Kind, Route};

/// How the API starts a run it does not wait for.
#[derive(Debug, Clone)]
pub enum Launcher {
    /// In Lambda: an asynchronous invoke, which records the run's progress and report in the
    /// decision table. Apply runs go to the job's own function (`TRIMTAB_FUNCTION_<KIND>`, whose
    /// role may write); analyses to this function itself (`own`, whose role only reads).
    Lambda {
        jobs: BTreeMap<&'static str, String>,
        own: String,
    },
    /// Under `trimtab invoke` and in tests: a task in this process; [`wait_for_runs`] waits.
    InProcess(Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>),
}

impl Launcher {
    /// Lambda's launcher inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` set), else in-process.
    pub fn from_env() -> Self {
        let Some(own) = trimtab_lambda::setting("AWS_LAMBDA_FUNCTION_NAME") else {
            return Self::InProcess(Arc::default());
        };
        let jobs = Kind::ALL
            .into_iter()
            .filter_map(|k| {
                let var = format!("TRIMTAB_FUNCTION_{}", k.name().to_ascii_uppercase());
                trimtab_lambda::setting(&var).map(|f| (k.name(), f))
            })
            .collect();
        Self::Lambda { jobs, own }
    }
}

/// Per-process configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// IAM principals (user or role ARNs, or caller ids) that may call the apply routes
    /// (`TRIMTAB_APPLY_PRINCIPALS`, comma-separated). Empty: nobody.
    pub apply_principals: Vec<String>,
    /// The decision table (`TRIMTAB_TABLE`), where the jobs leave their results.
    pub table_name: Option<String>,
    /// Time an analysis may take in the request (API Gateway gives up at 30 s); past it the
    /// analysis goes on as a run of its own and the API answers 202 with its id.
    pub budget: Duration,
    pub environment: trimtab_lambda::Environment,
    /// Every job, configured once.
    pub jobs: Arc<Jobs>,
    pub launcher: Launcher,
}

impl ApiConfig {
    pub fn from_env(region: Option<&str>) -> Result<Self, String> {
        let var = trimtab_lambda::setting;
        let apply_principals: Vec<String> = var("TRIMTAB_APPLY_PRINCIPALS")
            .map(|v| {
                v.split(',')
                    .map(|p| p.trim().to_owned())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        // The functions' resource policies honour IAM wildcards in these, the API's check does
        // not: only full ARNs mean the same to both (docs/security.md).
        if let Some(p) = apply_principals
            .iter()
            .find(|p| p.contains('*') || p.contains('?'))
        {
            return Err(format!(
                "TRIMTAB_APPLY_PRINCIPALS: {p:?}: list full ARNs, without wildcards"
            ));
        }
        Ok(Self {
            apply_principals,
            table_name: var("TRIMTAB_TABLE"),
            budget: Duration::from_secs(25),
            environment: trimtab_lambda::configured_environment(),
            jobs: Arc::new(Jobs::from_env(region, var("TRIMTAB_TABLE"))?),
            launcher: Launcher::from_env(),
        })
    }

    /// A configuration for tests and tools: runs jobs in this process against `table`.
    pub fn in_process(
        table: Option<String>,
        apply_principals: Vec<String>,
    ) -> Result<Self, String> {
        Ok(Self {
            apply_principals,
            table_name: table.clone(),
            budget: Duration::from_secs(25),
            environment: trimtab_lambda::Environment::Prod,
            jobs: Arc::new(Jobs::from_env(Some("us-east-1"), table)?),
            launcher: Launcher::InProcess(Arc::default()),
        })
    }
}

/// Waits for every run this process started in the background (under `trimtab invoke`).
pub async fn wait_for_runs(config: &ApiConfig) {
    let Launcher::InProcess(tasks) = &config.launcher else {
        return;
    };
    loop {
        let next = tasks.lock().ok().and_then(|mut t| t.pop());
        match next {
            Some(task) => {
                let _ = task.await;
            }
            None => return,
        }
    }
}

fn respond(status: u16, body: &Value, allow: Option<&str>) -> ApiGatewayV2httpResponse {
    let mut r = ApiGatewayV2httpResponse::default();
    r.status_code = i64::from(status);
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Some(a) = allow.and_then(|a| HeaderValue::from_str(a).ok()) {
        headers.insert("allow", a);
    }
    r.headers = headers;
    r.body = Some(Body::Text(body.to_string()));
    r
}

fn error(e: &ApiError) -> ApiGatewayV2httpResponse {
    let body: Value = serde_json::from_str(&e.body()).unwrap_or(Value::Null);
    respond(e.status, &body, e.allow)
}

/// The caller's IAM identity from the request context, if IAM authorised the request.
fn caller(req: &ApiGatewayV2httpRequest) -> Option<(Option<String>, Option<String>)> {
    let iam = req.request_context.authorizer.as_ref()?.iam.as_ref()?;
    (iam.user_arn.is_some() || iam.caller_id.is_some())
        .then(|| (iam.user_arn.clone(), iam.caller_id.clone()))
}

/// The Lambda handler: never fails; every outcome is an HTTP response.
pub async fn handle(
    clients: &Clients,
    config: &ApiConfig,
    req: ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let request_id = req
        .request_context
        .request_id
        .clone()
        .unwrap_or_else(|| "-".into());
    match serve(clients, config, &req, &request_id).await {
        Ok((status, v)) => respond(status, &v, None),
        Err(e) => {
            tracing::info!(
                status = e.status,
                code = e.code,
                request_id,
                "request refused or failed"
            );
            error(&e)
        }
    }
}

async fn serve(
    clients: &Clients,
    config: &ApiConfig,
    req: &ApiGatewayV2httpRequest,
    request_id: &str,
) -> Result<(u16, Value), ApiError> {
    let method = req.request_context.http.method.as_str().to_owned();
    let path = req
        .raw_path
        .clone()
        .or_else(|| req.request_context.http.path.clone())
        .unwrap_or_default();
    let route = router::route(&method, &path)?;
    let query: Vec<(String, String)> = req
        .raw_query_string
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    match route {
        Route::Status => status(clients, config, None).await.map(ok),
        Route::Run(id) => run_status(clients, config, &id, router::paging(&query)?)
            .await
            .map(ok),
        Route::Recommendations => {
            let kind = match query.iter().find(|(k, _)| k == "kind") {
                None => None,
                Some((_, v)) => Some(Kind::parse(v).ok_or_else(|| {
                    ApiError::new(
                        400,
                        "invalid_request",
                        format!("query kind: unknown kind {v:?}"),
                    )
                })?),
            };
            status(clients, config, kind).await.map(ok)
        }
        Route::Analysis(kind) => {
            let (limit, offset) = router::paging(&query)?;
            let body = router::analysis_body(
                kind,
                router::body(req.body.as_deref(), req.is_base64_encoded)?,
            )?;
            let requested_by = caller(req).and_then(|(arn, id)| arn.or(id));
            if query.iter().any(|(k, v)| k == "async" && v == "true") {
                return start(clients, config, kind, body, requested_by)
                    .await
                    .map(|v| (202, v));
            }
            match run(clients, config, kind, body.clone(), request_id).await {
                Ok(mut report) => {
                    router::page(&mut report, kind.list_field(), limit, offset);
                    Ok(ok(report))
                }
                // Too long for API Gateway's 30 s: it goes on as a run of its own.
                Err(e) if e.code == "analysis_timeout" => {
                    let mut started = start(clients, config, kind, body, requested_by).await?;
                    started["note"] = Value::from(format!(
                        "the analysis did not finish within {} s; it goes on as a run: GET {}",
                        config.budget.as_secs(),
                        started["status_url"].as_str().unwrap_or_default()
                    ));
                    Ok((202, started))
                }
                Err(e) => Err(e),
            }
        }
        Route::Apply(kind) => {
            let Some((arn, caller_id)) = caller(req) else {
                return Err(ApiError::new(
                    401,
                    "unauthenticated",
                    "apply needs an IAM-signed request",
                ));
            };
            if !router::is_listed(
                &config.apply_principals,
                arn.as_deref(),
                caller_id.as_deref(),
            ) {
                return Err(ApiError::new(
                    403,
                    "forbidden",
                    "this identity may not apply changes",
                ));
            }
            let mut body = router::body(req.body.as_deref(), req.is_base64_encoded)?;
            // The job's own event only: an EventBridge envelope would run as the schedule (its
            // mode, its name in the records) instead of as this caller.
            router::refuse_event_shapes(&body)?;
            body["mode"] = Value::from("apply");
            tracing::info!(kind = kind.name(), caller = ?arn, request_id, "apply requested");
            let requested_by = arn.or(caller_id);
            start(clients, config, kind, body, requested_by)
                .await
                .map(|v| (202, v))
        }
    }
}

fn ok(v: Value) -> (u16, Value) {
    (200, v)
}

/// Starts a run without waiting for it (API Gateway gives up at 30 s, and an apply run cut short
/// mid-protocol would leave its lease and records behind): checks the request, records the run
/// as queued, hands it on, and answers with the run id.
async fn start(
    clients: &Clients,
    config: &ApiConfig,
    kind: Kind,
    body: Value,
    requested_by: Option<String>,
) -> Result<Value, ApiError> {
    config
        .jobs
        .validate(kind, &body)
        .map_err(|f| ApiError::new(400, "invalid_request", f.message))?;
    let table = decision_table(config)?;
    let now = SystemTime::now();
    let run_id = trimtab_act::new_run_id(now);
    let now_s = trimtab_act::epoch_s(now);
    let mut status = RunStatus {
        run_id: run_id.clone(),
        kind: kind.name().to_owned(),
        mode: body["mode"].as_str().unwrap_or("recommend").to_owned(),
        state: RunState::Queued,
        requested_by: requested_by.clone(),
        created_at_epoch_s: now_s,
        updated_at_epoch_s: now_s,
        error: None,
    };
    let unavailable = |e: trimtab_aws::AwsError| {
        tracing::error!(error = %e, "run not started");
        ApiError::new(
            502,
            "run_not_started",
            "the run could not be started; retry",
        )
    };
    table
        .put_run(clients, &status, None)
        .await
        .map_err(unavailable)?;
    let run = AsyncRun {
        run_id: run_id.clone(),
        kind: Some(kind.name().to_owned()),
        requested_by,
        request: body,
    };
    if let Err(e) = launch(clients, config, kind, run).await {
        status.state = RunState::Failed;
        status.error = Some(e.message.clone());
        let _ = table.put_run(clients, &status, None).await;
        return Err(e);
    }
    Ok(serde_json::json!({
        "run_id": run_id,
        "kind": kind.name(),
        "state": "queued",
        "status_url": format!("/runs/{run_id}"),
    }))
}

async fn launch(
    clients: &Clients,
    config: &ApiConfig,
    kind: Kind,
    run: AsyncRun,
) -> Result<(), ApiError> {
    match &config.launcher {
        Launcher::Lambda { jobs, own } => {
            let applying = run.request["mode"] == "apply";
            let function = if applying {
                jobs.get(kind.name()).ok_or_else(|| {
                    ApiError::new(
                        503,
                        "not_configured",
                        format!("no function configured for {} runs", kind.name()),
                    )
                })?
            } else {
                own
            };
            trimtab_aws::invoke::invoke_async(clients, function, &run.payload())
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "async invoke failed");
                    ApiError::new(
                        502,
                        "run_not_started",
                        "the run could not be started; retry",
                    )
                })
        }
        Launcher::InProcess(tasks) => {
            let (clients, jobs) = (clients.clone(), Arc::clone(&config.jobs));
            let invocation = Invocation {
                deadline: Deadline::after(Jobs::timeout(kind)),
                ..Invocation::default()
            };
            let task = tokio::spawn(async move {
                let work = jobs.invoke(kind, &clients, invocation, run.payload());
                let (result, _) = trimtab_aws::counted(work).await;
                if let Err(f) = result {
                    tracing::warn!(error = %f.message, "background run failed");
                }
            });
            if let Ok(mut t) = tasks.lock() {
                t.push(task);
            }
            Ok(())
        }
    }
}

fn decision_table(config: &ApiConfig) -> Result<DecisionTable, ApiError> {
    config
        .table_name
        .as_ref()
        .map(DecisionTable::new)
        .ok_or_else(|| ApiError::new(503, "not_configured", "no decision table configured"))
}

/// A started run: its status and, once done, its report.
async fn run_status(
    clients: &Clients,
    config: &ApiConfig,
    id: &str,
    (limit, offset): (usize, usize),
) -> Result<Value, ApiError> {
    let table = decision_table(config)?;
    let found = table.run(clients, id).await.map_err(|e| {
        tracing::error!(error = %e, "reading the run failed");
        ApiError::new(502, "runs_unavailable", "the run could not be read")
    })?;
    let Some((status, mut report)) = found else {
        return Err(ApiError::new(404, "not_found", format!("no run {id}")));
    };
    if let (Some(r), Some(kind)) = (report.as_mut(), Kind::parse(&status.kind)) {
        router::page(r, kind.list_field(), limit, offset);
    }
    Ok(serde_json::json!({"run": status, "report": report}))
}

/// An analysis this function started for itself (an [`AsyncRun`] of `kind`), run to its end in
/// recommend mode whatever the payload says: this function's role only reads.
pub async fn handle_async(
    clients: &Clients,
    config: &ApiConfig,
    mut run: AsyncRun,
    deadline: Deadline,
) -> Result<Value, Failure> {
    let kind = run
        .kind
        .as_deref()
        .and_then(Kind::parse)
        .ok_or_else(|| Failure {
            kind: FailureKind::InvalidEvent,
            message: "trimtab_run.kind: not a job this function runs".into(),
        })?;
    run.request["mode"] = Value::from("recommend");
    let invocation = Invocation {
        deadline,
        ..Invocation::default()
    };
    config
        .jobs
        .invoke(kind, clients, invocation, run.payload())
        .await
}

/// Runs one analysis on `body`, within the time budget. The job's own validation errors become
/// 400s; anything else a 502 that names the request, not the internals.
async fn run(
    clients: &Clients,
    config: &ApiConfig,
    kind: Kind,
    body: Value,
    request_id: &str,
) -> Result<Value, ApiError> {
    let invocation = Invocation {
        deadline: Deadline::after(config.budget),
        ..Invocation::default()
    };
    let job = config.jobs.invoke(kind, clients, invocation, body);
    match tokio::time::timeout(config.budget, job).await {
        Err(_) => Err(ApiError::new(
            504,
            "analysis_timeout",
            format!(
                "the analysis did not finish within {} s; narrow its scope (a name prefix, fewer days) and retry",
                config.budget.as_secs()
            ),
        )),
        Ok(Ok(v)) => Ok(v),
        Ok(Err(Failure {
            kind: FailureKind::InvalidEvent,
            message,
        })) => Err(ApiError::new(400, "invalid_request", message)),
        Ok(Err(Failure {
            kind: FailureKind::NotFound,
            message,
        })) => Err(ApiError::new(404, "not_found", message)),
        Ok(Err(Failure { kind, message })) => {
            tracing::error!(error_type = kind.error_type(), %message, request_id, "analysis failed");
            Err(ApiError::new(
                502,
                "analysis_failed",
                format!("the analysis failed; request id {request_id}"),
            ))
        }
    }
}

/// When each job last ran, what it found and applied, from the results they leave.
async fn status(
    clients: &Clients,
    config: &ApiConfig,
    only: Option<Kind>,
) -> Result<Value, ApiError> {
    let Some(table) = &config.table_name else {
        return Err(ApiError::new(
            503,
            "not_configured",
            "no decision table configured",
        ));
    };
    let mut out = BTreeMap::new();
    for kind in Kind::ALL
        .into_iter()
        .filter(|k| only.is_none_or(|o| o == *k))
    {
        let result = trimtab_aws::costs::latest_result(clients, table, kind.job())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "reading results failed");
                ApiError::new(
                    502,
                    "results_unavailable",
                    "the latest results could not be read",
                )
            })?;
        out.insert(kind.name(), result.unwrap_or(Value::Null));
    }
    Ok(serde_json::json!({"environment": config.environment, "jobs": out}))
}
