//! The on-demand analysis API: API Gateway HTTP API (v2) requests in, JSON responses out. It
//! shares every job's code with the scheduled functions: a route picks a job and hands it the
//! body as that job's event.
//!
//! Safe against bad input and strangers: every error is `{"error": {"code", "message"}}` with the
//! right status; nothing runs before the route, body and identity pass; server-side failures say
//! only which request failed (details go to the logs); analyses run in recommend mode, and apply
//! runs only for IAM identities listed in configuration.

pub mod router;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::http::{HeaderMap, HeaderValue};
use serde_json::Value;
use trimtab_aws::Clients;

pub use router::{ApiError, Kind, Route};

/// Per-process configuration.
#[derive(Debug, Clone, Default)]
pub struct ApiConfig {
    /// IAM principals (user or role ARNs, or caller ids) that may call the apply routes
    /// (`TRIMTAB_APPLY_PRINCIPALS`, comma-separated). Empty: nobody.
    pub apply_principals: Vec<String>,
    /// The decision table (`TRIMTAB_TABLE`), where the jobs leave their results.
    pub table_name: Option<String>,
    /// Time an analysis may take before the API answers 504 (API Gateway gives up at 30 s).
    pub budget: Duration,
    pub environment: String,
}

impl ApiConfig {
    pub fn from_env() -> Self {
        let var = trimtab_lambda::setting;
        Self {
            apply_principals: var("TRIMTAB_APPLY_PRINCIPALS")
                .map(|v| {
                    v.split(',')
                        .map(|p| p.trim().to_owned())
                        .filter(|p| !p.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            table_name: var("TRIMTAB_TABLE"),
            budget: Duration::from_secs(25),
            environment: trimtab_lambda::configured_environment(),
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
        Ok(v) => respond(200, &v, None),
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
) -> Result<Value, ApiError> {
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
        Route::Status => status(clients, config, None).await,
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
            status(clients, config, kind).await
        }
        Route::Analysis(kind) => {
            let (limit, offset) = router::paging(&query)?;
            let mut body = router::body(req.body.as_deref(), req.is_base64_encoded)?;
            match body.get("mode").and_then(Value::as_str) {
                None | Some("recommend") => {}
                Some(_) => {
                    return Err(ApiError::new(
                        400,
                        "invalid_request",
                        format!(
                            "mode: analyses run in recommend mode; apply through POST /apply/{}",
                            kind.name()
                        ),
                    ));
                }
            }
            if kind == Kind::Rightsizing && body.get("action").is_some_and(|a| a != "run") {
                return Err(ApiError::new(
                    400,
                    "invalid_request",
                    "action: only \"run\" is available here",
                ));
            }
            body["mode"] = Value::from("recommend");
            let mut report = run(clients, config, kind, body, request_id).await?;
            router::page(&mut report, kind.list_field(), limit, offset);
            Ok(report)
        }
        Route::Apply(kind) => {
            let Some((arn, caller_id)) = caller(req) else {
                return Err(ApiError::new(
                    401,
                    "unauthenticated",
                    "apply needs an IAM-signed request",
                ));
            };
            let listed = |id: &Option<String>| {
                id.as_ref()
                    .is_some_and(|i| config.apply_principals.contains(i))
            };
            if !listed(&arn) && !listed(&caller_id) {
                return Err(ApiError::new(
                    403,
                    "forbidden",
                    "this identity may not apply changes",
                ));
            }
            let (limit, offset) = router::paging(&query)?;
            let mut body = router::body(req.body.as_deref(), req.is_base64_encoded)?;
            body["mode"] = Value::from("apply");
            tracing::info!(kind = kind.name(), caller = ?arn, request_id, "apply requested");
            let mut report = run(clients, config, kind, body, request_id).await?;
            router::page(&mut report, kind.list_field(), limit, offset);
            Ok(report)
        }
    }
}

/// Runs one job on `body`, within the time budget. The job's own validation errors become 400s;
/// anything else a 502 that names the request, not the internals.
async fn run(
    clients: &Clients,
    config: &ApiConfig,
    kind: Kind,
    body: Value,
    request_id: &str,
) -> Result<Value, ApiError> {
    let job = async {
        let result: Result<Value, (&'static str, String)> = match kind {
            Kind::Rightsizing => {
                let mut c = rightsizing::JobConfig::from_env(clients.region.as_deref())
                    .map_err(|e| ("Configuration", e))?;
                c.table_name = config.table_name.clone();
                rightsizing::handle(clients, &c, body)
                    .await
                    .map_err(|e| (e.error_type(), e.to_string()))
            }
            Kind::Dynamodb => {
                let mut c = dynamodb_scaling::JobConfig::from_env();
                c.table_name = config.table_name.clone();
                dynamodb_scaling::handle(clients, &c, body)
                    .await
                    .map_err(|e| (e.error_type(), e.to_string()))
            }
            Kind::Cost => {
                let mut c =
                    cost_analysis::JobConfig::from_env().map_err(|e| ("Configuration", e))?;
                c.table_name = config.table_name.clone();
                cost_analysis::handle(clients, &c, body)
                    .await
                    .map_err(|e| (e.error_type(), e.to_string()))
            }
            Kind::Performance => {
                let mut c = performance_monitor::JobConfig::from_env();
                c.table_name = config.table_name.clone();
                performance_monitor::handle(clients, &c, body)
                    .await
                    .map_err(|e| (e.error_type(), e.to_string()))
            }
        };
        result
    };
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
        Ok(Err(("InvalidEvent", message))) => Err(ApiError::new(400, "invalid_request", message)),
        Ok(Err(("NotFound", message))) => Err(ApiError::new(404, "not_found", message)),
        Ok(Err((kind, message))) => {
            tracing::error!(error_type = kind, %message, request_id, "analysis failed");
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
