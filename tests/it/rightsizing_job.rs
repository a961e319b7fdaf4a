//! The right-sizing job end to end on the archetypes the acceptance names.

use std::time::SystemTime;

use serde_json::json;
use trimtab_tests::fleet;
use trimtab_tests::moto::Moto;
use trimtab_tests::seed::{Layout, Seeder, Workload};

use crate::{f64_of, row, run_rightsizing};

/// The seeds' formula: memory = peak used x 1.2.
fn seeds_memory_mb(w: &Workload) -> u32 {
    ((w.peak_memory_mb * 1.2).ceil() as u32).max(128)
}

fn recommended(report: &serde_json::Value, w: &Workload) -> u32 {
    f64_of(row(report, &w.name), "recommended_memory_mb") as u32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommends_memory_and_timeout_for_each_archetype() {
    let moto = Moto::start().expect("moto");
    let seeder = Seeder::new(&moto.sdk_config().await).await.expect("seeder");
    let cpu = fleet::cpu_bound("cpu-thumbnailer");
    let io = fleet::io_bound_over_provisioned("io-orders-api");
    let near = fleet::near_memory_limit("mem-report");
    let rare = fleet::too_little_data("rare-cron");
    let logs_only = fleet::io_bound_without_insights("logs-webhook");
    let mt = Workload {
        wait_ms: 10.0,
        ..fleet::multithreaded("mt-transcoder")
    };
    let layout = Layout::fourteen_days(SystemTime::now());
    for w in [&cpu, &io, &near, &rare, &logs_only, &mt] {
        seeder.seed(w, layout).await.expect("seed");
    }

    let report = run_rightsizing(&moto, json!({"lookback_days": 14}))
        .await
        .expect("report");
    assert_eq!(report["functions"].as_array().map(Vec::len), Some(6));

    // CPU-bound: the seeds' cut makes it 9x slower; we keep it within the 10% guard.
    let r = recommended(&report, &cpu);
    assert!((931..=1024).contains(&r), "cpu-bound got {r} MB");
    let seeds = seeds_memory_mb(&cpu);
    assert!(cpu.duration_ms(seeds) > 5.0 * cpu.duration_ms(1024));
    assert!(cpu.monthly_cost_usd(r) <= cpu.monthly_cost_usd(1024) * 1.001);

    // Multi-threaded CPU-bound: shrinking to its memory use raises the true cost; not recommended.
    let r = recommended(&report, &mt);
    assert!(mt.monthly_cost_usd(seeds_memory_mb(&mt)) > mt.monthly_cost_usd(mt.memory_mb));
    assert!(r >= 2735, "multi-threaded got {r} MB");

    // I/O-bound and over-provisioned: close to the true cheapest size within the guard, and far
    // cheaper than today; the seeds' formula would break the guard.
    let r = recommended(&report, &io);
    let best = io.true_optimum_mb(10.0, 20.0);
    let (cost_r, cost_best) = (io.monthly_cost_usd(r), io.monthly_cost_usd(best));
    assert!(
        cost_r <= cost_best * 1.05,
        "{r} MB ${cost_r:.2} vs best {best} MB ${cost_best:.2}"
    );
    assert!(io.duration_ms(r) <= io.duration_ms(io.memory_mb) * 1.1);
    assert!(io.duration_ms(seeds_memory_mb(&io)) > io.duration_ms(io.memory_mb) * 1.1);
    let row_io = row(&report, &io.name);
    assert_eq!(row_io["status"], "recommended");
    assert!(
        f64_of(row_io, "monthly_savings_usd") > 0.6 * f64_of(row_io, "current_monthly_cost_usd")
    );
    let true_saving = io.monthly_cost_usd(io.memory_mb) - cost_r;
    let reported = f64_of(row_io, "monthly_savings_usd");
    assert!(
        (reported - true_saving).abs() < 0.1 * true_saving,
        "reported {reported} vs true {true_saving}"
    );
    // Longest run ~1.1 s: 1.5x margin and a whole second -> 2..3 s, down from 30.
    let t = f64_of(row_io, "recommended_timeout_s");
    assert!((2.0..=3.0).contains(&t), "timeout {t}");

    // Near its memory limit: raised to peak + 20%, whatever it costs.
    let r = recommended(&report, &near);
    assert!((576..=600).contains(&r), "near-limit got {r} MB");
    assert!(
        row(&report, &near.name)["reasons"]
            .to_string()
            .contains("headroom")
    );

    // Too little data: judged not at all, with the reason.
    let rare_row = row(&report, &rare.name);
    assert_eq!(rare_row["status"], "insufficient_data");
    assert!(
        rare_row["reasons"][0]
            .as_str()
            .unwrap_or_default()
            .contains("invocations")
    );

    // No Lambda Insights: peak memory read from REPORT lines, but without CPU time the model
    // assumes a cut slows it in proportion, so only a measured step is offered: the smallest
    // size the 10% guard allows even if the run were all computing.
    let r = recommended(&report, &logs_only);
    assert!((931..1024).contains(&r), "logs-only got {r} MB");
    let reasons = row(&report, &logs_only.name)["reasons"].to_string();
    assert!(
        reasons.contains("no Lambda Insights cpu_total_time")
            && reasons.contains("a measured step"),
        "{reasons}"
    );
    assert_eq!(
        f64_of(row(&report, &logs_only.name), "peak_memory_used_mb"),
        70.0
    );

    // Fleet totals add up; the run's own AWS bill is in the report.
    let savings: f64 = report["functions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| f64_of(r, "monthly_savings_usd"))
        .sum();
    assert!((f64_of(&report["totals"], "monthly_savings_usd") - savings).abs() < 1e-6);
    assert_eq!(report["api_calls"]["logs:FilterLogEvents"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_by_prefix_names_and_tags() {
    let moto = Moto::start().expect("moto");
    let seeder = Seeder::new(&moto.sdk_config().await).await.expect("seeder");
    let tagged = |name: &str, team: &str| Workload {
        tags: vec![("team".into(), team.into())],
        ..fleet::io_bound_over_provisioned(name)
    };
    for w in [
        tagged("shop-a", "shop"),
        tagged("shop-b", "search"),
        tagged("billing-c", "shop"),
    ] {
        seeder.create_function(&w).await.expect("create");
    }
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["functions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["function_name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let r = run_rightsizing(&moto, json!({"function_name_prefix": "shop-"}))
        .await
        .expect("prefix");
    assert_eq!(names(&r), ["shop-a", "shop-b"]);
    let r = run_rightsizing(&moto, json!({"tags": {"team": "shop"}}))
        .await
        .expect("tags");
    assert_eq!(names(&r), ["billing-c", "shop-a"]);
    let r = run_rightsizing(&moto, json!({"function_names": ["shop-b"]}))
        .await
        .expect("names");
    assert_eq!(names(&r), ["shop-b"]);
    // No metrics at all: insufficient data, not an error.
    assert_eq!(r["functions"][0]["status"], "insufficient_data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_are_refused_naming_the_field_before_any_aws_call() {
    let moto = Moto::start().expect("moto");
    for (event, field) in [
        (json!({"lookback_days": -3}), "lookback_days"),
        (json!({"lookback_days": "14"}), "lookback_days"),
        (json!({"strategy": "fastest"}), "strategy"),
        (json!({"latency_guard_pct": -1}), "latency_guard_pct"),
        (json!({"lookback_dayz": 14}), "lookback_dayz"),
        (json!({"mode": "yolo"}), "mode"),
    ] {
        let err = run_rightsizing(&moto, event.clone())
            .await
            .expect_err("refused");
        assert_eq!(err.error_type(), "InvalidEvent", "{event}");
        assert!(err.to_string().contains(field), "{event}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_invocations_of_one_warm_process_each_report_their_own_requests() {
    let moto = Moto::start().expect("moto");
    let sdk = moto.sdk_config().await;
    let seeder = Seeder::new(&sdk).await.expect("seeder");
    seeder
        .seed(
            &fleet::io_bound_over_provisioned("warm-api"),
            Layout::fourteen_days(SystemTime::now()),
        )
        .await
        .expect("seed");
    // One process, one set of clients (as a warm Lambda keeps them), two invocations.
    let clients = trimtab_aws::Clients::new(&sdk);
    let config = rightsizing::JobConfig::with_table(None);
    let mut counts = Vec::new();
    for _ in 0..2 {
        let report = crate::invoke(rightsizing::handle(
            &clients,
            &config,
            &trimtab_lambda::Invocation::default(),
            json!({}),
        ))
        .await
        .expect("report");
        counts.push((
            report["api_calls"].clone(),
            report["own_cost"].clone(),
            report["metric_queries"].as_u64().unwrap_or(0),
        ));
    }
    // Each counts its own requests, not the process's running total (retries may differ), and
    // prices its own: the metrics it requested, at $0.01 per 1,000.
    for (c, cost, queries) in &counts {
        assert_eq!(c["lambda:ListFunctions"], 1, "{c:#}");
        assert!(c.get("lambda:GetFunctionConcurrency").is_none(), "{c:#}");
        assert!(
            c["cloudwatch:GetMetricData"].as_u64().unwrap_or(0) >= 1,
            "{c:#}"
        );
        let metrics = &cost["lines"][0];
        assert_eq!(metrics["what"], "cloudwatch:GetMetricData", "{cost:#}");
        assert!(
            metrics["quantity"].as_f64().unwrap_or(0.0) >= *queries as f64,
            "{cost:#}"
        );
        let usd = cost["usd"].as_f64().unwrap_or(0.0);
        assert!((usd - metrics["quantity"].as_f64().unwrap_or(0.0) * 0.00001).abs() < 1e-9);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_concurrency_quota_is_judged_against_the_trend_of_its_peaks() {
    let moto = Moto::start().expect("moto");
    let sdk = moto.sdk_config().await;
    let seeder = Seeder::new(&sdk).await.expect("seeder");
    seeder
        .create_function(&fleet::io_bound_over_provisioned("quota-api"))
        .await
        .expect("create");
    moto.fidelity.set_concurrency_quota(100);
    // The account's own ConcurrentExecutions (no dimension), hourly for 14 days: a daily peak
    // at 14:00 UTC of 35 growing 3 a day, 4 the rest of the time.
    let now = trimtab_act::epoch_s(SystemTime::now());
    let first = now / 3600 * 3600 - 14 * 86_400;
    let points: Vec<(i64, f64)> = (0..14 * 24)
        .map(|h| {
            let t = first + 3600 * h + 1800;
            let day = h as f64 / 24.0;
            let busy = (t.rem_euclid(86_400) / 3600) == 14;
            (t, if busy { 35.0 + 3.0 * day } else { 4.0 })
        })
        .collect();
    let cw = aws_sdk_cloudwatch::Client::new(&sdk);
    trimtab_tests::seed::put_series(&cw, "AWS/Lambda", "ConcurrentExecutions", &[], &points)
        .await
        .expect("account peaks");
    moto.fidelity.clear_seen();
    let report = run_rightsizing(&moto, json!({"lookback_days": 14}))
        .await
        .expect("report");
    crate::assert_role_allows(&moto, "RightSizingFunction");
    let risk = &report["capacity_risk"];
    assert_eq!(risk["quota"], 100.0, "{risk:#}");
    assert_eq!(risk["quota_name"], "lambda_concurrent_executions");
    assert!(
        (risk["trend_per_day"].as_f64().unwrap_or(0.0) - 3.0).abs() < 0.5,
        "{risk:#}"
    );
    // 74 to 77 today, 80 within a few days: the crossing is this week, not "never".
    let on = risk["crosses_on"].as_str().expect("a crossing date");
    let in_days = trimtab_core::calendar::parse_date(on).expect("date") - now / 86_400;
    assert!((1..=4).contains(&in_days), "{risk:#}");
}
