//! `trimtab`: the operator CLI.
//!
//! - `trimtab invoke <LogicalId> --event <file>` runs the real handler of the function with that
//!   logical ID in `template.yaml`, in-process, with AWS configuration from the standard chain.
//!   The handler's JSON goes to stdout and the process exits 0; a handler error prints the Lambda
//!   error shape `{"errorType", "errorMessage"}` on stderr and exits 1. Logs go to stderr.
//! - `trimtab rollback <function> [--to <record-id>] [--force]` restores a recorded
//!   configuration (`--force`: even over a change made outside Trimtab since), and
//!   `trimtab history <function>` lists a function's decision records: both are the
//!   right-sizing function's `rollback` and `history` events, run the same way.
//! - `trimtab summary <report.json>` prints any job's report as tables.

mod summary;

use std::process::ExitCode;

use analysis_api::Jobs;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use trimtab_aws::Clients;
use trimtab_lambda::{Invocation, LambdaErrorBody};

const USAGE: &str = "usage:
  trimtab invoke <LogicalId> --event <event.json>
  trimtab rollback <function> [--to <record-id>] [--force]
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
        Some("rollback") => match rollback_event(&args[1..]) {
            Some(event) => run("RightSizingFunction", event),
            None => usage(),
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

/// `<function> [--to <record-id>] [--force]` as a right-sizing rollback event.
fn rollback_event(args: &[String]) -> Option<Value> {
    let (function, rest) = args.split_first()?;
    let mut event = json!({"action": "rollback", "function_name": function});
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        match flag.as_str() {
            "--to" => event["record_id"] = json!(rest.next()?),
            "--force" => event["force"] = json!(true),
            _ => return None,
        }
    }
    Some(event)
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

/// Runs the handler behind `logical_id`, its requests counted as one invocation, within the
/// function's own timeout (Lambda's deadline, here a budget).
async fn dispatch(logical_id: &str, payload: Value) -> Result<Value, (String, String)> {
    let sdk = trimtab_aws::load_config().await;
    let clients = Clients::new(&sdk);
    let region = clients.region.clone();
    let fail = |k: &str, m: String| (k.to_owned(), m);
    if let Some(kind) = Jobs::kind_of(logical_id) {
        let jobs = Jobs::from_env(region.as_deref(), None).map_err(|e| fail("Configuration", e))?;
        let requested_by = match trimtab_aws::caller_identity(&clients).await {
            Ok(arn) => format!("{arn} (trimtab invoke)"),
            Err(e) => format!("trimtab invoke (caller unknown: {e})"),
        };
        let invocation = Invocation {
            requested_by: Some(requested_by),
            ..Invocation::with_budget(Jobs::timeout(kind))
        };
        let (result, _) =
            trimtab_aws::counted(jobs.invoke(kind, &clients, invocation, payload)).await;
        return result.map_err(|f| fail(f.kind.error_type(), f.message));
    }
    match logical_id {
        "ApiFunction" | "ApiApplyFunction" => {
            let config = analysis_api::ApiConfig::from_env(region.as_deref())
                .map_err(|e| fail("Configuration", e))?;
            if let Some(run) = trimtab_lambda::AsyncRun::from_payload(&payload) {
                let run = run.map_err(|e| fail("InvalidEvent", e.to_string()))?;
                let deadline = trimtab_lambda::Deadline::after(std::time::Duration::from_secs(600));
                let work = analysis_api::handle_async(&clients, &config, run, deadline);
                let (result, _) = trimtab_aws::counted(work).await;
                return result.map_err(|f| fail(f.kind.error_type(), f.message));
            }
            let request = serde_json::from_value(payload).map_err(|e| {
                fail(
                    "InvalidEvent",
                    format!("not an API Gateway v2 request: {e}"),
                )
            })?;
            let (response, _) =
                trimtab_aws::counted(analysis_api::handle(&clients, &config, request)).await;
            // A run the request started goes on in this process: wait for it before exiting.
            analysis_api::wait_for_runs(&config).await;
            serde_json::to_value(response).map_err(|e| fail("Serialization", e.to_string()))
        }
        other => Err(fail(
            "UnknownFunction",
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
