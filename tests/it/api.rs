//! The analysis API through the real handler with API Gateway v2 events against moto: the happy
//! paths answer with analyses, every malformed input class gets the right 4xx with a clear
//! message and changes nothing in the account.

use std::time::SystemTime;

use serde_json::Value;
use trimtab_aws::Clients;
use trimtab_aws::decisions::DecisionTable;
use trimtab_tests::api::request;
use trimtab_tests::fleet;
use trimtab_tests::moto::Moto;
use trimtab_tests::seed::{Layout, Seeder, create_decision_table};

const TABLE: &str = "trimtab-decisions-api";
const OPERATOR: &str = "arn:aws:iam::123456789012:role/platform-operator";

struct Reply {
    status: i64,
    body: Value,
    allow: Option<String>,
}

fn api_config() -> analysis_api::ApiConfig {
    analysis_api::ApiConfig::in_process(Some(TABLE.into()), vec![OPERATOR.into()]).expect("config")
}

async fn call(moto: &Moto, req: Value) -> Reply {
    call_with(moto, &api_config(), req).await
}

async fn call_with(moto: &Moto, config: &analysis_api::ApiConfig, req: Value) -> Reply {
    let clients = Clients::new(&moto.sdk_config().await);
    let req = serde_json::from_value(req).expect("an API Gateway v2 request");
    let r = crate::invoke(analysis_api::handle(&clients, config, req)).await;
    let body = match &r.body {
        Some(aws_lambda_events::encodings::Body::Text(t)) => {
            serde_json::from_str(t).expect("JSON body")
        }
        other => panic!("unexpected body {other:?}"),
    };
    Reply {
        status: r.status_code,
        body,
        allow: r
            .headers
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .map(Into::into),
    }
}

async fn memory(moto: &Moto, name: &str) -> i32 {
    let c = aws_sdk_lambda::Client::new(&moto.sdk_config().await);
    c.get_function_configuration()
        .function_name(name)
        .send()
        .await
        .expect("config")
        .memory_size()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_and_every_bad_input_is_refused_without_changes() {
    let moto = Moto::start().expect("moto");
    let sdk = moto.sdk_config().await;
    create_decision_table(&sdk, TABLE).await.expect("table");
    let seeder = Seeder::new(&sdk).await.expect("seeder");
    let io = fleet::io_bound_over_provisioned("orders-api");
    seeder
        .seed(&io, Layout::fourteen_days(SystemTime::now()))
        .await
        .expect("seed");

    // Happy paths, each call held against the read-only role.
    moto.fidelity.clear_seen();
    let r = call(
        &moto,
        request(
            "POST",
            "/analyses/rightsizing",
            "limit=10",
            Some(r#"{"lookback_days": 14}"#),
            None,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["functions"][0]["function_name"], "orders-api");
    assert_eq!(r.body["mode"], "recommend");
    assert_eq!(r.body["page"]["total"], 1);
    let r = call(&moto, request("GET", "/status", "", None, None)).await;
    assert_eq!(r.status, 200);
    assert!(
        r.body["jobs"]["rightsizing"]["monthly_savings_usd"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0,
        "{}",
        r.body
    );
    let r = call(
        &moto,
        request("GET", "/recommendations", "kind=rightsizing", None, None),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body["jobs"].get("cost").is_none());
    let r = call(
        &moto,
        request(
            "POST",
            "/analyses/performance",
            "",
            Some(r#"{"window_days": 1}"#),
            None,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Deployed, the API's analyses leave no headline (`TRIMTAB_RESULTS=off`, which
    // `template.rs` pins); in this process the variable is not set, so they do.
    crate::assert_role_allows_but(&moto, "ApiFunction", &["result#"]);

    // Malformed input classes: status, code, and a message that says what is wrong.
    moto.fidelity.clear_seen();
    let huge = format!(r#"{{"function_name_prefix": "{}"}}"#, "x".repeat(70_000));
    for (req, status, code, says) in [
        (
            request("POST", "/analyses/rightsizing", "", Some("{not json"), None),
            400,
            "invalid_json",
            "not JSON",
        ),
        (
            request(
                "POST",
                "/analyses/rightsizing",
                "",
                Some(r#"{"lookback_days": "two weeks"}"#),
                None,
            ),
            400,
            "invalid_request",
            "lookback_days",
        ),
        (
            request(
                "POST",
                "/analyses/rightsizing",
                "",
                Some(r#"{"lookback_dayz": 14}"#),
                None,
            ),
            400,
            "invalid_request",
            "lookback_dayz",
        ),
        (
            request(
                "POST",
                "/analyses/rightsizing",
                "",
                Some(r#"{"mode": "apply"}"#),
                None,
            ),
            400,
            "invalid_request",
            "mode",
        ),
        // An EventBridge-shaped body whose detail asks for a rollback, and a bare rollback: an
        // analysis route is read-only whatever the body says.
        (
            request(
                "POST",
                "/analyses/rightsizing",
                "",
                Some(
                    r#"{"detail-type": "Scheduled Event", "source": "aws.events", "detail": {"action": "rollback", "function_name": "orders-api", "force": true}}"#,
                ),
                None,
            ),
            400,
            "invalid_request",
            "detail",
        ),
        (
            request(
                "POST",
                "/analyses/rightsizing",
                "",
                Some(r#"{"action": "rollback", "function_name": "orders-api"}"#),
                None,
            ),
            400,
            "invalid_request",
            "action",
        ),
        (
            request(
                "POST",
                "/analyses/dynamodb",
                "",
                Some(r#"{"trimtab_run": {"run_id": "r", "request": {"mode": "apply"}}}"#),
                None,
            ),
            400,
            "invalid_request",
            "trimtab_run",
        ),
        (
            request("POST", "/analyses/rightsizing", "", Some(&huge), None),
            413,
            "payload_too_large",
            "bytes",
        ),
        (
            request("POST", "/analyses/gpu", "", None, None),
            404,
            "unknown_kind",
            "gpu",
        ),
        (
            request("GET", "/nowhere", "", None, None),
            404,
            "not_found",
            "route",
        ),
        (
            request("DELETE", "/analyses/rightsizing", "", None, None),
            405,
            "method_not_allowed",
            "POST",
        ),
        (
            request("GET", "/recommendations", "kind=gpu", None, None),
            400,
            "invalid_request",
            "kind",
        ),
        (
            request("POST", "/analyses/cost", "limit=0", None, None),
            400,
            "invalid_request",
            "limit",
        ),
        (
            request("POST", "/apply/rightsizing", "", None, None),
            401,
            "unauthenticated",
            "IAM",
        ),
        (
            request(
                "POST",
                "/apply/rightsizing",
                "",
                None,
                Some("arn:aws:iam::123456789012:user/intern"),
            ),
            403,
            "forbidden",
            "may not",
        ),
        // An operator's apply shaped as the schedule's event would be recorded as the schedule.
        (
            request(
                "POST",
                "/apply/rightsizing",
                "",
                Some(
                    r#"{"detail-type": "Scheduled Event", "source": "aws.events", "resources": ["arn:aws:events:us-east-1:123456789012:rule/trimtab-rightsizing-daily-prod"], "detail": {}}"#,
                ),
                Some(OPERATOR),
            ),
            400,
            "invalid_request",
            "envelope",
        ),
        (
            request("POST", "/apply/cost", "", None, Some(OPERATOR)),
            404,
            "unknown_kind",
            "cost",
        ),
    ] {
        let r = call(&moto, req).await;
        assert_eq!(r.status, status, "{}", r.body);
        assert_eq!(r.body["error"]["code"], code, "{}", r.body);
        let message = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{message}");
        assert!(
            !message.contains("arn:aws:lambda"),
            "internal ARN leaked: {message}"
        );
        if status == 405 {
            assert_eq!(r.allow.as_deref(), Some("POST"));
        }
    }
    // Nothing changed: no write of any kind was sent, memory as seeded, no decision records.
    let writes: Vec<String> = moto
        .fidelity
        .operations()
        .into_iter()
        .filter(|op| {
            let verb = op.split(':').nth(1).unwrap_or_default();
            !["Get", "List", "Describe", "Query", "Scan"]
                .iter()
                .any(|r| verb.starts_with(r))
        })
        .collect();
    assert!(writes.is_empty(), "refused requests wrote: {writes:?}");
    assert_eq!(memory(&moto, "orders-api").await, 1536);
    let clients = Clients::new(&sdk);
    assert!(
        DecisionTable::new(TABLE)
            .history(&clients, "orders-api")
            .await
            .expect("history")
            .is_empty()
    );

    // A listed identity starts an apply run; it answers at once with the run to follow.
    let config = api_config();
    let r = call_with(
        &moto,
        &config,
        request("POST", "/apply/rightsizing", "", Some("{}"), Some(OPERATOR)),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let run_id = r.body["run_id"].as_str().expect("run id").to_owned();
    analysis_api::wait_for_runs(&config).await;
    let r = call(
        &moto,
        request("GET", &format!("/runs/{run_id}"), "", None, None),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["run"]["state"], "done", "{}", r.body);
    assert_eq!(r.body["run"]["requested_by"], OPERATOR);
    assert_eq!(r.body["report"]["functions"][0]["status"], "applied");
    assert_eq!(memory(&moto, "orders-api").await, 768);
    let applied = DecisionTable::new(TABLE)
        .history(&clients, "orders-api")
        .await
        .expect("history");
    assert_eq!(applied[0].requested_by.as_deref(), Some(OPERATOR));

    // The same role, signed in as a session (how people and pipelines call): listed by its
    // role, and the record names the session.
    let session = "arn:aws:sts::123456789012:assumed-role/platform-operator/alice";
    let r = call_with(
        &moto,
        &config,
        request("POST", "/apply/dynamodb", "", Some("{}"), Some(session)),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let run_id = r.body["run_id"].as_str().expect("run id").to_owned();
    analysis_api::wait_for_runs(&config).await;
    let r = call(
        &moto,
        request("GET", &format!("/runs/{run_id}"), "", None, None),
    )
    .await;
    assert_eq!(r.body["run"]["state"], "done", "{}", r.body);
    assert_eq!(r.body["run"]["requested_by"], session);
    // Another account's role of the same name is not listed.
    let r = call(
        &moto,
        request(
            "POST",
            "/apply/dynamodb",
            "",
            Some("{}"),
            Some("arn:aws:sts::999999999999:assumed-role/platform-operator/mallory"),
        ),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = call(&moto, request("GET", "/runs/0bad-0000", "", None, None)).await;
    assert_eq!(r.status, 404, "{}", r.body);

    // An analysis that outruns the API's budget goes on as a run instead of failing.
    let mut hurried = api_config();
    hurried.budget = std::time::Duration::from_millis(1);
    let r = call_with(
        &moto,
        &hurried,
        request("POST", "/analyses/rightsizing", "", Some("{}"), None),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(
        r.body["note"]
            .as_str()
            .unwrap_or_default()
            .contains("goes on")
    );
    let run_id = r.body["run_id"].as_str().expect("run id").to_owned();
    analysis_api::wait_for_runs(&hurried).await;
    let r = call(
        &moto,
        request("GET", &format!("/runs/{run_id}"), "limit=1", None, None),
    )
    .await;
    assert_eq!(r.body["run"]["state"], "done", "{}", r.body);
    assert_eq!(r.body["run"]["mode"], "recommend");
    assert_eq!(r.body["report"]["mode"], "recommend");
    assert_eq!(r.body["report"]["page"]["limit"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_longer_than_api_gateways_30_s_answers_202_finishes_and_leaves_nothing_open() {
    let moto = Moto::start().expect("moto");
    let sdk = moto.sdk_config().await;
    create_decision_table(&sdk, TABLE).await.expect("table");
    let io = fleet::io_bound_over_provisioned("slow-deploy-api");
    Seeder::new(&sdk)
        .await
        .expect("seeder")
        .seed(&io, Layout::fourteen_days(SystemTime::now()))
        .await
        .expect("seed");
    // Lambda takes 31 s to apply the update (a function in a VPC, say).
    moto.fidelity
        .set_update_duration(std::time::Duration::from_secs(31));
    let config = api_config();
    let started = std::time::Instant::now();
    let r = call_with(
        &moto,
        &config,
        request("POST", "/apply/rightsizing", "", Some("{}"), Some(OPERATOR)),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let run_id = r.body["run_id"].as_str().expect("run id").to_owned();
    let r = call(
        &moto,
        request("GET", &format!("/runs/{run_id}"), "", None, None),
    )
    .await;
    assert!(
        ["queued", "running"].contains(&r.body["run"]["state"].as_str().unwrap_or_default()),
        "{}",
        r.body
    );

    analysis_api::wait_for_runs(&config).await;
    assert!(started.elapsed() > std::time::Duration::from_secs(31));
    let r = call(
        &moto,
        request("GET", &format!("/runs/{run_id}"), "", None, None),
    )
    .await;
    assert_eq!(r.body["run"]["state"], "done", "{}", r.body);
    assert_eq!(r.body["report"]["functions"][0]["status"], "applied");
    let clients = Clients::new(&sdk);
    let table = DecisionTable::new(TABLE);
    assert_eq!(
        table.lease(&clients, "rightsizing").await.expect("lease"),
        None
    );
    let records = table.history(&clients, &io.name).await.expect("history");
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].state,
        trimtab_core::records::RecordState::Applied
    );
}
