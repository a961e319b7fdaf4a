//! Routing and input checks, pure: what a request asks for, or the HTTP error it gets.
//!
//! | method | path | does |
//! |---|---|---|
//! | POST | `/analyses/{rightsizing,dynamodb,cost,performance}` | runs one analysis, recommend mode |
//! | GET | `/recommendations[?kind=...]` | the latest result of each job |
//! | GET | `/status` | when each job last ran, what it found and applied |
//! | POST | `/apply/{rightsizing,dynamodb,performance}` | starts one job in apply mode (listed IAM identities only); 202 with a run id |
//! | GET | `/runs/{run_id}` | a started run's status and, once done, its report |

use serde_json::Value;

/// Largest request body accepted, bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A job the API can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rightsizing,
    Dynamodb,
    Cost,
    Performance,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Rightsizing,
        Kind::Dynamodb,
        Kind::Cost,
        Kind::Performance,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "rightsizing" => Some(Self::Rightsizing),
            "dynamodb" => Some(Self::Dynamodb),
            "cost" => Some(Self::Cost),
            "performance" => Some(Self::Performance),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Rightsizing => "rightsizing",
            Self::Dynamodb => "dynamodb",
            Self::Cost => "cost",
            Self::Performance => "performance",
        }
    }

    /// The job name results are stored under.
    pub fn job(self) -> &'static str {
        match self {
            Self::Rightsizing => "rightsizing",
            Self::Dynamodb => "dynamodb-scaling",
            Self::Cost => "cost",
            Self::Performance => "performance",
        }
    }

    /// The list a report of this kind pages.
    pub fn list_field(self) -> &'static str {
        match self {
            Self::Rightsizing => "functions",
            Self::Dynamodb => "resources",
            Self::Cost => "anomalies",
            Self::Performance => "subjects",
        }
    }

    /// Whether the job has anything to apply.
    pub fn applies(self) -> bool {
        self != Self::Cost
    }
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Analysis(Kind),
    Recommendations,
    Status,
    Apply(Kind),
    Run(String),
}

/// Whether `id` looks like a run id Trimtab makes (hex digits and dashes, bounded), so nothing
/// else reaches the table's key.
fn is_run_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// An HTTP error with its JSON body `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Methods allowed on the path (405 only).
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            allow: None,
        }
    }

    pub fn body(&self) -> String {
        serde_json::json!({"error": {"code": self.code, "message": self.message}}).to_string()
    }
}

fn kinds(applying: bool) -> String {
    Kind::ALL
        .iter()
        .filter(|k| !applying || k.applies())
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Finds the route of `method` on `path`.
pub fn route(method: &str, path: &str) -> Result<Route, ApiError> {
    let path = path.trim_end_matches('/');
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    let (allowed, found): (&'static str, Result<Route, ApiError>) = match parts.as_slice() {
        ["analyses", kind] => (
            "POST",
            Kind::parse(kind).map(Route::Analysis).ok_or_else(|| {
                ApiError::new(
                    404,
                    "unknown_kind",
                    format!("no analysis {kind:?}; one of: {}", kinds(false)),
                )
            }),
        ),
        ["apply", kind] => (
            "POST",
            Kind::parse(kind)
                .filter(|k| k.applies())
                .map(Route::Apply)
                .ok_or_else(|| {
                    ApiError::new(
                        404,
                        "unknown_kind",
                        format!("nothing to apply for {kind:?}; one of: {}", kinds(true)),
                    )
                }),
        ),
        ["runs", id] => (
            "GET",
            if is_run_id(id) {
                Ok(Route::Run((*id).to_owned()))
            } else {
                Err(ApiError::new(404, "not_found", format!("no run {id:?}")))
            },
        ),
        ["recommendations"] => ("GET", Ok(Route::Recommendations)),
        ["status"] => ("GET", Ok(Route::Status)),
        _ => {
            return Err(ApiError::new(
                404,
                "not_found",
                "no such route; see GET /status",
            ));
        }
    };
    let route = found?;
    if !method.eq_ignore_ascii_case(allowed) {
        let mut e = ApiError::new(
            405,
            "method_not_allowed",
            format!("{path} takes {allowed}, not {method}"),
        );
        e.allow = Some(allowed);
        return Err(e);
    }
    Ok(route)
}

/// The request body as a JSON object (an empty body is `{}`), within the size limit.
pub fn body(raw: Option<&str>, base64: bool) -> Result<Value, ApiError> {
    let Some(raw) = raw.filter(|b| !b.trim().is_empty()) else {
        return Ok(Value::Object(Default::default()));
    };
    if raw.len() > MAX_BODY_BYTES * 4 / 3 + 4 {
        return Err(too_large());
    }
    let bytes = if base64 {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .map_err(|_| ApiError::new(400, "invalid_body", "body is marked base64 but is not"))?
    } else {
        raw.as_bytes().to_vec()
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(400, "invalid_json", format!("body is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::new(
            400,
            "invalid_request",
            "body must be a JSON object",
        ));
    }
    Ok(value)
}

fn too_large() -> ApiError {
    ApiError::new(
        413,
        "payload_too_large",
        format!("body over {MAX_BODY_BYTES} bytes"),
    )
}

/// Refuses a body shaped like something other than a job's own event: an EventBridge envelope
/// (whose `detail` a job would read as its request) or an asynchronous run's envelope. The API's
/// analyses take the job's event itself, in recommend mode.
pub fn refuse_event_shapes(body: &Value) -> Result<(), ApiError> {
    let Some(obj) = body.as_object() else {
        return Ok(());
    };
    for key in ["detail-type", "detail", "source", "trimtab_run"] {
        if obj.contains_key(key) {
            return Err(ApiError::new(
                400,
                "invalid_request",
                format!("{key}: the body is the job's own event, not an envelope"),
            ));
        }
    }
    Ok(())
}

/// The body of an analysis (`POST /analyses/{kind}`): the job's own event, run in recommend
/// mode. Refuses another mode (apply goes through `POST /apply/{kind}`), a right-sizing action
/// other than `run`, and event envelopes.
pub fn analysis_body(kind: Kind, mut body: Value) -> Result<Value, ApiError> {
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
    refuse_event_shapes(&body)?;
    body["mode"] = Value::from("recommend");
    Ok(body)
}

/// Paging of a report's main list: `limit` (1..=200, default 50) and `offset` (default 0).
pub fn paging(query: &[(String, String)]) -> Result<(usize, usize), ApiError> {
    let get = |k: &str, default: usize, max: usize| -> Result<usize, ApiError> {
        match query.iter().find(|(key, _)| key == k) {
            None => Ok(default),
            Some((_, v)) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= max && (k != "limit" || *n >= 1))
                .ok_or_else(|| {
                    ApiError::new(
                        400,
                        "invalid_request",
                        format!("query {k}: expected a whole number up to {max}"),
                    )
                }),
        }
    };
    Ok((get("limit", 50, 200)?, get("offset", 0, 1_000_000)?))
}

/// Cuts `report[field]` to one page and says so.
pub fn page(report: &mut Value, field: &str, limit: usize, offset: usize) {
    let Some(list) = report.get_mut(field).and_then(Value::as_array_mut) else {
        return;
    };
    let total = list.len();
    let rest: Vec<Value> = list.drain(..).skip(offset).take(limit).collect();
    let end = offset + rest.len();
    *list = rest;
    report["page"] = serde_json::json!({
        "field": field, "total": total, "offset": offset, "limit": limit,
        "truncated": end < total, "next_offset": (end < total).then_some(end),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_methods_and_kinds() {
        assert_eq!(
            route("POST", "/analyses/cost"),
            Ok(Route::Analysis(Kind::Cost))
        );
        assert_eq!(route("GET", "/status/"), Ok(Route::Status));
        assert_eq!(
            route("POST", "/apply/dynamodb"),
            Ok(Route::Apply(Kind::Dynamodb))
        );
        assert_eq!(
            route("GET", "/analyses/cost").map_err(|e| (e.status, e.allow)),
            Err((405, Some("POST")))
        );
        assert_eq!(
            route("POST", "/analyses/gpu").map_err(|e| e.status),
            Err(404)
        );
        assert_eq!(route("POST", "/apply/cost").map_err(|e| e.status), Err(404));
        assert_eq!(route("GET", "/nope").map_err(|e| e.code), Err("not_found"));
        assert_eq!(
            route("GET", "/runs/18c0ffee-00ab0001"),
            Ok(Route::Run("18c0ffee-00ab0001".into()))
        );
        assert_eq!(route("GET", "/runs/x;y").map_err(|e| e.status), Err(404));
        assert_eq!(route("POST", "/runs/abc").map_err(|e| e.status), Err(405));
    }

    #[test]
    fn bodies_are_objects_within_the_limit() {
        assert_eq!(body(None, false), Ok(serde_json::json!({})));
        assert_eq!(
            body(Some("{\"a\":1}"), false),
            Ok(serde_json::json!({"a": 1}))
        );
        assert_eq!(
            body(Some("not json"), false).map_err(|e| e.code),
            Err("invalid_json")
        );
        assert_eq!(
            body(Some("[1]"), false).map_err(|e| e.code),
            Err("invalid_request")
        );
        let huge = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_BODY_BYTES));
        assert_eq!(body(Some(&huge), false).map_err(|e| e.status), Err(413));
        assert_eq!(body(Some("e30="), true), Ok(serde_json::json!({})));
    }

    #[test]
    fn paging_cuts_and_says_so() {
        let mut r = serde_json::json!({"functions": [1, 2, 3, 4, 5]});
        page(&mut r, "functions", 2, 2);
        assert_eq!(r["functions"], serde_json::json!([3, 4]));
        assert_eq!(r["page"]["next_offset"], 4);
        assert_eq!(r["page"]["truncated"], true);
        assert!(paging(&[("limit".into(), "0".into())]).is_err());
        assert_eq!(paging(&[]), Ok((50, 0)));
    }
}

/// An IAM identity as a caller presents it and as `ApplyPrincipals` lists it: a role is named by
/// account and name (an assumed-role session's ARN, `arn:aws:sts::ACCOUNT:assumed-role/NAME/
/// SESSION`, drops the role's path, so the path cannot be compared), a user by its ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Role { account: String, name: String },
    User(String),
    Other(String),
}

impl Identity {
    /// Reads an IAM or STS ARN (or anything else, kept as is).
    pub fn parse(arn: &str) -> Self {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let (service, account, resource) = match parts.as_slice() {
            ["arn", _, service, _, account, resource] => (*service, *account, *resource),
            _ => return Self::Other(arn.to_owned()),
        };
        let role = |name: &str| Self::Role {
            account: account.to_owned(),
            name: name.to_owned(),
        };
        match (service, resource.split('/').collect::<Vec<_>>().as_slice()) {
            ("sts", ["assumed-role", name, _session]) => role(name),
            ("iam", ["role", .., name]) => role(name),
            ("iam", ["user", ..]) => Self::User(arn.to_owned()),
            _ => Self::Other(arn.to_owned()),
        }
    }
}

/// Whether a caller (its ARN and caller id from the request's IAM authorisation) is one of the
/// listed principals (role or user ARNs, or caller ids).
pub fn is_listed(listed: &[String], caller_arn: Option<&str>, caller_id: Option<&str>) -> bool {
    let caller = caller_arn.map(Identity::parse);
    listed.iter().any(|l| {
        caller_id.is_some_and(|id| id == l)
            || caller
                .as_ref()
                .is_some_and(|c| *c == Identity::parse(l) && !matches!(c, Identity::Other(_)))
    })
}

#[cfg(test)]
mod identity_tests {
    use super::*;

    #[test]
    fn an_assumed_role_session_is_its_role_whatever_the_path() {
        let listed = vec![
            "arn:aws:iam::123456789012:role/platform/operators/deployer".to_owned(),
            "arn:aws:iam::123456789012:user/alice".to_owned(),
        ];
        let session = "arn:aws:sts::123456789012:assumed-role/deployer/ci-run-42";
        assert!(is_listed(&listed, Some(session), None));
        assert!(is_listed(
            &listed,
            Some("arn:aws:iam::123456789012:user/alice"),
            None
        ));
        // Another account's role of the same name, or another role, is not listed.
        assert!(!is_listed(
            &listed,
            Some("arn:aws:sts::999999999999:assumed-role/deployer/x"),
            None
        ));
        assert!(!is_listed(
            &listed,
            Some("arn:aws:sts::123456789012:assumed-role/intern/x"),
            None
        ));
        assert!(!is_listed(&[], Some(session), None));
        assert!(is_listed(
            &["AROAEXAMPLE:ci".to_owned()],
            None,
            Some("AROAEXAMPLE:ci")
        ));
    }
}
