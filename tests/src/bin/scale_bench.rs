//! The scale benchmark (`scripts/bench-scale.sh`): runs a job in this process against the AWS
//! stub (`trimtab_tests::stub`, in a child process so that this process's peak memory is the
//! job's) and prints one JSON line: wall time, peak resident memory, requests by operation as the
//! job counted them (`api_calls`: every attempt, retries of throttled requests included) and as
//! the stub answered them (`stub`).
//!
//!   scale-bench rightsizing <functions>
//!   scale-bench dynamodb <tables>
//!   scale-bench performance <functions>    (the SLO monitor, recommend mode)
//!   scale-bench stub <functions> <tables>      (the child: serves until killed)

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{Value, json};
use trimtab_aws::Clients;
use trimtab_tests::stub::{Estate, Stub};

/// Peak resident memory of this process, MB (Linux `VmHWM`).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| {
        args.get(i)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
    };
    match args.first().map(String::as_str) {
        Some("stub") => {
            let stub = Stub::start(Estate::new(arg(1), arg(2))).await?;
            println!("{}", stub.endpoint());
            std::future::pending::<()>().await;
            Ok(())
        }
        Some(job @ ("rightsizing" | "dynamodb" | "performance")) => {
            let n = arg(1);
            let (functions, tables) = if job == "dynamodb" { (0, n) } else { (n, 0) };
            let mut child = Command::new(std::env::current_exe()?)
                .args(["stub", &functions.to_string(), &tables.to_string()])
                .stdout(Stdio::piped())
                .spawn()?;
            let mut endpoint = String::new();
            if let Some(out) = child.stdout.take() {
                BufReader::new(out).read_line(&mut endpoint)?;
            }
            let sdk = trimtab_tests::moto::sdk_config_for(endpoint.trim()).await;
            let clients = Clients::new(&sdk);
            let started = Instant::now();
            let (report, _) = trimtab_aws::counted(run(job, &clients)).await;
            let wall_s = started.elapsed().as_secs_f64();
            let answered = stub_counts(endpoint.trim()).unwrap_or(Value::Null);
            let _ = child.kill();
            let report = report?;
            let resources = ["functions", "resources", "subjects"]
                .iter()
                .find_map(|k| report[*k].as_array().map(Vec::len))
                .unwrap_or(0);
            println!(
                "{}",
                json!({
                    "job": job,
                    "asked": n,
                    "judged_rows": resources,
                    "wall_s": (wall_s * 10.0).round() / 10.0,
                    "peak_rss_mb": peak_rss_mb().round(),
                    "api_calls": report["api_calls"],
                    "stub": answered,
                    "metric_queries": report["metric_queries"],
                    "own_cost_usd": report["own_cost_usd"],
                    "notes": report["notes"].as_array().map_or(0, Vec::len),
                })
            );
            Ok(())
        }
        _ => {
            eprintln!(
                "usage: scale-bench rightsizing <functions> | dynamodb <tables> | performance <functions>"
            );
            std::process::exit(2);
        }
    }
}

/// What the stub answered, and how many requests it throttled (`GET /__stub/counts`).
fn stub_counts(endpoint: &str) -> anyhow::Result<Value> {
    use std::io::{Read, Write};
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr)?;
    write!(
        stream,
        "GET {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
        trimtab_tests::stub::COUNTS_PATH
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok(serde_json::from_str(body)?)
}

async fn run(job: &str, clients: &Clients) -> anyhow::Result<Value> {
    let invocation = trimtab_act::Invocation::default();
    Ok(match job {
        "rightsizing" => {
            let config = rightsizing::JobConfig::with_table(None);
            rightsizing::handle(clients, &config, &invocation, json!({})).await?
        }
        "performance" => {
            // As deployed: the template's default AlarmBudgetUsd.
            let config = performance_monitor::JobConfig {
                alarm_budget_usd: Some(100.0),
                ..performance_monitor::JobConfig::from_env()
            };
            performance_monitor::handle(clients, &config, json!({})).await?
        }
        _ => {
            let config = dynamodb_scaling::JobConfig::from_env();
            dynamodb_scaling::handle(clients, &config, &invocation, json!({})).await?
        }
    })
}
