//! `trimtab`: the operator CLI.
//!
//! - `trimtab invoke <LogicalId> --event <file>` runs the real handler of the function with that
//!   logical ID in `template.yaml`, in-process, with AWS configuration from the standard chain.
//!   The handler's JSON goes to stdout and the process exits 0; a handler error prints the Lambda
//!   error shape `{"errorType", "errorMessage"}` on stderr and exits 1. Logs go to stderr.
//! - `trimtab rollback <function> [--to <record-id>]` restores a recorded configuration, and
//!   `trimtab history <function>` lists a function's decision records: both are the
//!   right-sizing function's `rollback` and `history` events, run the same way.
//! - `trimtab summary <report.json>` prints a right-sizing report as a table.

mod summary;

use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use trimtab_aws::Clients;
use trimtab_lambda::LambdaErrorBody;

const USAGE: &str = "usage:
  trimtab invoke <LogicalId> --event <event.json>
  trimtab rollback <function> [--to <record-id>]
  trimtab history <function>
  trimtab summary <report.json>

functions: RightSizingFunction, DynamoDBScalingFunction, CostAnalysisFunction,
           PerformanceMonitorFunction, ApiFunction, ApiApplyFunction";

/// The functions of template.yaml that `invoke` can run.
const FUNCTIONS: &str = "RightSizingFunction, DynamoDBScalingFunction, CostAnalysisFunction, PerformanceMonitorFunction";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("invoke") => invoke(&args[1..]),
        Some("rollback") => match &args[1..] {
            [function] => run(
                "RightSizingFunction",
                json!({"action": "rollback", "function_name": function}),
            ),
            [function, flag, id] if flag == "--to" => run(
                "RightSizingFunction",
                json!({"action": "rollback", "function_name": function, "record_id": id}),
            ),
            _ => usage(),
        },
        Some("history") => match &args[1..] {
            [function] => run(
                "RightSizingFunction",
                json!({"action": "history", "function_name": function}),
            ),
            _ => usage(),
        },
        Some("summary") => match summary_cmd(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("trimtab summary: {e:#}");
                ExitCode::from(2)
            }
        },
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

fn summary_cmd(args: &[String]) -> anyhow::Result<()> {
    let [path] = args else {
        bail!("expected one report file\n{USAGE}")
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let report: Value =
        serde_json::from_str(&text).with_context(|| format!("{path} is not JSON"))?;
    print!("{}", summary::render(&report)?);
    Ok(())
}

fn invoke(args: &[String]) -> ExitCode {
    let (logical_id, event_path) = match args {
        [id, flag, path] if flag == "--event" => (id.as_str(), path.as_str()),
        _ => return usage(),
    };
    let payload = match std::fs::read_to_string(event_path)
        .with_context(|| format!("reading {event_path}"))
        .and_then(|t| {
            serde_json::from_str::<Value>(&t).with_context(|| format!("{event_path} is not JSON"))
        }) {
        Ok(p) => p,
        Err(e) => return fail("InvalidEvent", &format!("{e:#}")),
    };
    run(logical_id, payload)
}

/// Runs one handler with `payload` on a fresh runtime and prints its result or error.
fn run(logical_id: &str, payload: Value) -> ExitCode {
    trimtab_lambda::init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail("Runtime", &e.to_string()),
    };
    let result = runtime.block_on(dispatch(logical_id, payload));
    match result {
        Ok(value) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err((kind, message)) => fail(&kind, &message),
    }
}

/// Runs the handler behind `logical_id`. Each function of `template.yaml` has one arm.
async fn dispatch(logical_id: &str, payload: Value) -> Result<Value, (String, String)> {
    let sdk = trimtab_aws::load_config().await;
    let clients = Clients::new(&sdk);
    match logical_id {
        "RightSizingFunction" => {
            let config = rightsizing::JobConfig::from_env(sdk.region().map(|r| r.as_ref()))
                .map_err(|e| ("Configuration".to_owned(), e))?;
            rightsizing::handle(&clients, &config, payload)
                .await
                .map_err(|e| (e.error_type().to_owned(), e.to_string()))
        }
        "DynamoDBScalingFunction" => {
            let config = dynamodb_scaling::JobConfig::from_env();
            dynamodb_scaling::handle(&clients, &config, payload)
                .await
                .map_err(|e| (e.error_type().to_owned(), e.to_string()))
        }
        "CostAnalysisFunction" => {
            let config = cost_analysis::JobConfig::from_env()
                .map_err(|e| ("Configuration".to_owned(), e))?;
            cost_analysis::handle(&clients, &config, payload)
                .await
                .map_err(|e| (e.error_type().to_owned(), e.to_string()))
        }
        "PerformanceMonitorFunction" => {
            let config = performance_monitor::JobConfig::from_env();
            performance_monitor::handle(&clients, &config, payload)
                .await
                .map_err(|e| (e.error_type().to_owned(), e.to_string()))
        }
        "ApiFunction" | "ApiApplyFunction" => {
            let request = serde_json::from_value(payload).map_err(|e| {
                (
                    "InvalidEvent".to_owned(),
                    format!("not an API Gateway v2 request: {e}"),
                )
            })?;
            let config = analysis_api::ApiConfig::from_env();
            let response = analysis_api::handle(&clients, &config, request).await;
            serde_json::to_value(response).map_err(|e| ("Serialization".to_owned(), e.to_string()))
        }
        other => Err((
            "UnknownFunction".to_owned(),
            format!("no function with logical ID {other:?}; known: {FUNCTIONS}"),
        )),
    }
}

fn fail(kind: &str, message: &str) -> ExitCode {
    let body = LambdaErrorBody {
        error_type: kind.to_owned(),
        error_message: message.to_owned(),
    };
    eprintln!("{}", serde_json::to_string(&body).unwrap_or_default());
    ExitCode::FAILURE
}
