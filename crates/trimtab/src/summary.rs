//! A job's report as text an operator reads at a glance.

use std::fmt::Write;

use anyhow::{Context, bail};
use serde_json::Value;

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The elements of the list at `key`; none when it is missing or not a list.
fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// One line `<label>: <text>` for each string in the list at `key` (notes, errors).
fn write_lines(out: &mut String, v: &Value, key: &str, label: &str) -> std::fmt::Result {
    for line in items(v, key) {
        writeln!(out, "{label}: {}", line.as_str().unwrap_or_default())?;
    }
    Ok(())
}

/// The adapter's request counts, `service:Action xN`, on one line.
fn write_api_calls(out: &mut String, report: &Value) -> std::fmt::Result {
    if let Some(calls) = report.get("api_calls").and_then(Value::as_object) {
        let list: Vec<String> = calls.iter().map(|(k, v)| format!("{k} x{v}")).collect();
        writeln!(out, "AWS requests: {}", list.join(", "))?;
    }
    Ok(())
}

/// Renders a report as a table: right-sizing (`functions`) or DynamoDB scaling (`resources`).
pub fn render(report: &Value) -> anyhow::Result<String> {
    match report.get("job").and_then(Value::as_str) {
        Some("cost") => return render_costs(report),
        Some("performance") => return render_performance(report),
        _ => {}
    }
    if let Some(resources) = report.get("resources").and_then(Value::as_array) {
        return render_tables(report, resources);
    }
    let Some(functions) = report.get("functions").and_then(Value::as_array) else {
        bail!("not a Trimtab report: no `functions` or `resources` list");
    };
    let mut rows: Vec<&Value> = functions.iter().collect();
    rows.sort_by(|a, b| {
        let s = |v: &Value| num(v, "monthly_savings_usd").unwrap_or(0.0);
        s(b).total_cmp(&s(a))
    });
    let width = rows
        .iter()
        .map(|r| text(r, "function_name").len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut out = String::new();
    writeln!(
        out,
        "{:<width$}  {:>24}  {:>11}  {:>12}  {:>23}  {:>10}  {:<17}",
        "function",
        "memory MB",
        "timeout s",
        "duration ms",
        "monthly cost USD",
        "savings",
        "status"
    )?;
    for r in rows {
        let recommended = num(r, "recommended_memory_mb").unwrap_or(0.0);
        let mem = match r.get("applied").and_then(|a| num(a, "memory_mb")) {
            // Apply mode moved part of the way: what was set, then where it is heading.
            Some(set) if set != recommended => format!(
                "{} -> {set} ({recommended})",
                num(r, "current_memory_mb").unwrap_or(0.0)
            ),
            _ => format!(
                "{} -> {recommended}",
                num(r, "current_memory_mb").unwrap_or(0.0)
            ),
        };
        let timeout = format!(
            "{} -> {}",
            num(r, "current_timeout_s").unwrap_or(0.0),
            num(r, "recommended_timeout_s").unwrap_or(0.0)
        );
        let duration = match (
            num(r, "current_duration_ms"),
            num(r, "predicted_duration_ms"),
        ) {
            (Some(a), Some(b)) => format!("{a:.0} -> {b:.0}"),
            _ => "-".to_owned(),
        };
        let cost = format!(
            "{:.2} -> {:.2}",
            num(r, "current_monthly_cost_usd").unwrap_or(0.0),
            num(r, "projected_monthly_cost_usd").unwrap_or(0.0)
        );
        writeln!(
            out,
            "{:<width$}  {:>24}  {:>11}  {:>12}  {:>23}  {:>10.2}  {:<17}",
            text(r, "function_name"),
            mem,
            timeout,
            duration,
            cost,
            num(r, "monthly_savings_usd").unwrap_or(0.0),
            text(r, "status"),
        )?;
    }
    let totals = report.get("totals").context("report has no totals")?;
    writeln!(
        out,
        "\n{} functions: {} to change, {} unchanged, {} without enough data. Monthly cost ${:.2} -> ${:.2}: saves ${:.2}/month.",
        num(totals, "functions").unwrap_or(0.0),
        num(totals, "recommended").unwrap_or(0.0),
        num(totals, "unchanged").unwrap_or(0.0),
        num(totals, "insufficient_data").unwrap_or(0.0),
        num(totals, "current_monthly_cost_usd").unwrap_or(0.0),
        num(totals, "projected_monthly_cost_usd").unwrap_or(0.0),
        num(totals, "monthly_savings_usd").unwrap_or(0.0),
    )?;
    write_provisioned(&mut out, functions)?;
    write_api_calls(&mut out, report)?;
    write_lines(&mut out, report, "notes", "note")?;
    Ok(out)
}

/// A row's `recommended_scheduled_actions`, one line each: name, schedule, zone, minimum.
fn write_scheduled_actions(out: &mut String, row: &Value) -> std::fmt::Result {
    for a in items(row, "recommended_scheduled_actions") {
        writeln!(
            out,
            "    {} {} {}: min {}",
            text(a, "name"),
            text(a, "schedule"),
            text(a, "timezone"),
            num(a, "min_capacity").unwrap_or(0.0)
        )?;
    }
    Ok(())
}

/// Provisioned concurrency with its forecast schedule against target tracking alone, for each
/// function that has the comparison: costs, cold starts, and the scheduled actions.
fn write_provisioned(out: &mut String, functions: &[Value]) -> std::fmt::Result {
    let judged: Vec<&Value> = functions
        .iter()
        .filter(|r| r["concurrency"].get("predictive").is_some())
        .collect();
    if judged.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\nProvisioned concurrency (forecast schedule + target tracking vs target tracking alone):"
    )?;
    for r in judged {
        let c = &r["concurrency"];
        let (p, f) = (&c["predictive"], &c["forecast"]);
        let side = |usd: &str, cold: &str| match num(p, usd) {
            Some(u) => format!(
                "${u:.2}/month, {:.0} cold starts",
                num(p, cold).unwrap_or(0.0)
            ),
            None => "-".to_owned(),
        };
        writeln!(
            out,
            "  {}: {} (forecast {} WAPE {:.1}%): predictive {} vs reactive {}",
            text(r, "function_name"),
            text(p, "chosen"),
            text(f, "method"),
            num(f, "backtest_wape_pct").unwrap_or(0.0),
            side("predictive_cost_usd", "predictive_cold_starts"),
            side("reactive_cost_usd", "reactive_cold_starts"),
        )?;
        write_scheduled_actions(out, c)?;
    }
    Ok(())
}

/// A performance report: each subject against its objectives, then health, bottlenecks, upkeep.
fn render_performance(r: &Value) -> anyhow::Result<String> {
    let subjects = r
        .get("subjects")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let width = subjects
        .iter()
        .map(|x| text(x, "id").len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut out = String::new();
    writeln!(
        out,
        "{:<width$}  {:>12}  {:>8}  {:>12}  {:>12}  {:>10}  alerts",
        "subject", "requests", "errors", "latency ms", "budget left", "burn 1h"
    )?;
    for x in &subjects {
        let alerts: Vec<String> = items(x, "alerts")
            .map(|a| format!("{} ({})", text(a, "severity"), text(a, "rule")))
            .collect();
        writeln!(
            out,
            "{:<width$}  {:>12.0}  {:>7.2}%  {:>12}  {:>11.1}%  {:>10.2}  {}",
            text(x, "id"),
            num(x, "requests").unwrap_or(0.0),
            num(x, "error_rate_pct").unwrap_or(0.0),
            num(x, "latency_p95_ms").map_or("-".to_owned(), |l| format!(
                "{l:.0} {}",
                text(x, "latency_statistic")
            )),
            num(&x["error_budget"], "remaining_pct").unwrap_or(0.0),
            num(&x["burn_rates"], "1h").unwrap_or(0.0),
            alerts.join(", ")
        )?;
    }
    writeln!(
        out,
        "\nHealth {:.1}/100 ({} paging, {} ticketing).",
        num(r, "health_score").unwrap_or(0.0),
        num(r, "pages").unwrap_or(0.0),
        num(r, "tickets").unwrap_or(0.0)
    )?;
    for b in items(r, "bottlenecks") {
        let share = if b["measurable"] == false {
            format!(
                "low traffic, its objective allows {:.2} bad events in the window",
                num(b, "budget_events").unwrap_or(0.0)
            )
        } else {
            format!(
                "spends {:.1}% of its budget",
                num(b, "budget_pct").unwrap_or(0.0)
            )
        };
        writeln!(
            out,
            "Bottleneck {} ({}): {share}; {}. Action: {} [{}].",
            text(b, "resource"),
            text(b, "kind"),
            text(b, "evidence"),
            text(b, "action"),
            text(b, "job")
        )?;
    }
    write_api_capacity(&mut out, r)?;
    let count = |k: &str| r.get(k).and_then(Value::as_array).map_or(0, Vec::len);
    writeln!(
        out,
        "Dashboard {}{}; alarms: {} written, {} deleted, {} unchanged.",
        text(r, "dashboard"),
        if r["dashboard_changed"] == true {
            " (updated)"
        } else {
            " (in step)"
        },
        count("alarms_put"),
        count("alarms_deleted"),
        num(r, "alarms_unchanged").unwrap_or(0.0)
    )?;
    write_lines(&mut out, r, "notes", "note")?;
    Ok(out)
}

/// API stage capacity: each stage's peak rate against the limit that binds, with the day its
/// trend reaches 80% of it, then the account's.
fn write_api_capacity(out: &mut String, r: &Value) -> std::fmt::Result {
    let Some(c) = r.get("api_capacity").filter(|c| c.is_object()) else {
        return Ok(());
    };
    let crossing = |risk: &Value| match risk.get("crosses_on").and_then(Value::as_str) {
        Some(day) => format!("80% reached {day}"),
        None if risk.is_object() => "not within 90 days".to_owned(),
        None => "no limit known".to_owned(),
    };
    for s in items(c, "stages") {
        let f = &s["forecast"];
        let forecast = if text(f, "method") == "none" {
            format!("no forecast ({})", text(f, "reason"))
        } else {
            format!(
                "forecast {} WAPE {:.1}%",
                text(f, "method"),
                num(f, "backtest_wape_pct").unwrap_or(0.0)
            )
        };
        writeln!(
            out,
            "API capacity {}/{}: peak {:.0} req/s, limit {} req/s; {forecast}; {}.",
            text(s, "api"),
            text(s, "stage"),
            num(s, "peak_rps").unwrap_or(0.0),
            num(&s["risk"], "quota").map_or("-".to_owned(), |q| format!("{q:.0}")),
            crossing(&s["risk"])
        )?;
    }
    if let Some(limit) = num(c, "account_rate_limit_rps") {
        writeln!(
            out,
            "API capacity, account: {limit:.0} req/s shared by every API; {}.",
            crossing(&c["account"])
        )?;
    }
    Ok(())
}

/// A cost report: spend by service, forecast, budgets, anomalies, savings.
fn render_costs(r: &Value) -> anyhow::Result<String> {
    let mut out = String::new();
    writeln!(
        out,
        "{} to {} ({}): ${:.2}",
        text(r, "window_start"),
        text(r, "window_end"),
        text(r, "metric"),
        num(r, "total_usd").unwrap_or(0.0)
    )?;
    let mut services: Vec<(&String, f64)> = r
        .get("by_service")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k, v.as_f64().unwrap_or(0.0)))
                .collect()
        })
        .unwrap_or_default();
    services.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (name, usd) in services {
        writeln!(out, "  {name:<34} {usd:>12.2}")?;
    }
    let pct = |k: &str| num(r, k).map_or("n/a".to_owned(), |p| format!("{p:+.1}%"));
    writeln!(
        out,
        "Week over week {}, month over month {}.",
        pct("week_over_week_pct"),
        pct("month_over_month_pct")
    )?;
    if let Some(f) = r.get("forecast") {
        writeln!(
            out,
            "{}: ${:.2} so far; month end ${:.2} (90%: ${:.2} to ${:.2}; backtest error {}).",
            text(f, "month"),
            num(f, "month_to_date_usd").unwrap_or(0.0),
            num(f, "month_end_usd").unwrap_or(0.0),
            num(f, "low_usd").unwrap_or(0.0),
            num(f, "high_usd").unwrap_or(0.0),
            num(f, "backtest_mape_pct").map_or("n/a".to_owned(), |m| format!("{m:.1}%"))
        )?;
    }
    for b in items(r, "budgets") {
        let crossed: Vec<String> = items(b, "crossed_pct").map(|v| format!("{v}%")).collect();
        let predicted: Vec<String> = items(b, "predicted")
            .map(|p| format!("{}% on {}", p["threshold_pct"], text(p, "date")))
            .collect();
        writeln!(
            out,
            "Budget {}: {:.1}% of ${:.2} used; crossed [{}]; forecast crosses [{}].",
            text(b, "budget"),
            num(b, "used_pct").unwrap_or(0.0),
            num(b, "monthly_usd").unwrap_or(0.0),
            crossed.join(", "),
            predicted.join(", ")
        )?;
    }
    for a in items(r, "anomalies") {
        writeln!(
            out,
            "Anomaly {} {}: ${:.2} vs ${:.2} expected ({:+.2}).",
            text(a, "date"),
            text(a, "service"),
            num(a, "actual_usd").unwrap_or(0.0),
            num(a, "expected_usd").unwrap_or(0.0),
            num(a, "impact_usd").unwrap_or(0.0)
        )?;
    }
    for s in items(r, "recommendations") {
        writeln!(
            out,
            "Saving ${:.2}/month: {}",
            num(s, "estimated_monthly_savings_usd").unwrap_or(0.0),
            text(s, "basis")
        )?;
    }
    writeln!(
        out,
        "Cost Explorer requests: {} (${:.2}).",
        num(r, "cost_explorer_requests").unwrap_or(0.0),
        0.01 * num(r, "cost_explorer_requests").unwrap_or(0.0)
    )?;
    write_lines(&mut out, r, "notes", "note")?;
    Ok(out)
}

/// A DynamoDB scaling report: one row per table or index and dimension, then the plan.
/// Predictive against reactive per dimension that has the comparison: both sides, or why the
/// forecast declined.
fn write_predictive(
    out: &mut String,
    resources: &[Value],
    name: &dyn Fn(&Value) -> String,
) -> std::fmt::Result {
    let judged: Vec<&Value> = resources
        .iter()
        .filter(|r| r.get("predictive").is_some())
        .collect();
    if judged.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\nPredictive scaling (forecast schedule + target tracking vs target tracking alone):"
    )?;
    for r in judged {
        let p = &r["predictive"];
        let f = &r["forecast"];
        let who = format!("{} {}", name(r), text(r, "dimension"));
        if text(f, "method") == "none" {
            writeln!(out, "  {who}: reactive; no forecast: {}", text(f, "reason"))?;
            continue;
        }
        let side = |usd: &str, pct: &str| match (num(p, usd), num(p, pct)) {
            (Some(u), Some(t)) => format!("${u:.2}/month, {t:.3}% throttled"),
            _ => "-".to_owned(),
        };
        writeln!(
            out,
            "  {who}: {} (forecast {} WAPE {:.1}%, interval coverage {:.0}%): predictive {} vs reactive {}",
            text(p, "chosen"),
            text(f, "method"),
            num(f, "backtest_wape_pct").unwrap_or(0.0),
            num(f, "interval_coverage_pct").unwrap_or(0.0),
            side("predictive_cost_usd", "predictive_throttled_pct"),
            side("reactive_cost_usd", "reactive_throttled_pct"),
        )?;
        write_scheduled_actions(out, r)?;
    }
    Ok(())
}

fn render_tables(report: &Value, resources: &[Value]) -> anyhow::Result<String> {
    let name = |r: &Value| match r.get("index_name").and_then(Value::as_str) {
        Some(i) => format!("{}/{i}", text(r, "table_name")),
        None => text(r, "table_name").to_owned(),
    };
    let width = resources
        .iter()
        .map(|r| name(r).len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mode = |r: &Value, key: &str| match text(r, key) {
        "PAY_PER_REQUEST" => "on-demand",
        "PROVISIONED" => "provisioned",
        other => {
            if other.is_empty() {
                "-"
            } else {
                "?"
            }
        }
    };
    let mut out = String::new();
    writeln!(
        out,
        "{:<width$}  {:<5}  {:>28}  {:>6}  {:>12}  {:>19}  {:>14}  {:>16}",
        "table/index",
        "dim",
        "billing mode",
        "target",
        "min..max",
        "monthly cost USD",
        "seeds' 70% USD",
        "throttled/month"
    )?;
    for r in resources {
        let range = match (
            num(r, "recommended_min_capacity"),
            num(r, "recommended_max_capacity"),
        ) {
            (Some(a), Some(b)) => format!("{a}..{b}"),
            _ => "-".to_owned(),
        };
        let target =
            num(r, "recommended_target_utilization").map_or("-".to_owned(), |t| format!("{t}%"));
        writeln!(
            out,
            "{:<width$}  {:<5}  {:>28}  {:>6}  {:>12}  {:>19}  {:>14.2}  {:>16}",
            name(r),
            text(r, "dimension"),
            format!(
                "{} -> {}",
                mode(r, "current_billing_mode"),
                mode(r, "recommended_billing_mode")
            ),
            target,
            range,
            format!(
                "{:.2} -> {:.2}",
                num(r, "current_monthly_cost_usd").unwrap_or(0.0),
                num(r, "projected_monthly_cost_usd").unwrap_or(0.0)
            ),
            num(r, "seeds_policy_monthly_cost_usd").unwrap_or(0.0),
            format!(
                "{:.0} (70%: {:.0})",
                num(r, "projected_throttled_requests").unwrap_or(0.0),
                num(r, "seeds_policy_throttled_requests").unwrap_or(0.0)
            ),
        )?;
    }
    write_predictive(&mut out, resources, &name)?;
    writeln!(
        out,
        "\nSaves ${:.2}/month.",
        num(report, "monthly_savings_usd").unwrap_or(0.0)
    )?;
    let plan = report
        .get("plan")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let applied = report
        .get("applied")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if plan.is_empty() {
        writeln!(out, "Target tracking is in step: nothing to change.")?;
    } else {
        writeln!(
            out,
            "Target tracking plan ({} of {} applied):",
            applied,
            plan.len()
        )?;
        for step in plan {
            writeln!(out, "  {}", step.as_str().unwrap_or_default())?;
        }
    }
    write_lines(&mut out, report, "errors", "error")?;
    write_api_calls(&mut out, report)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rows_sorted_by_savings_and_totals() {
        let report = serde_json::json!({
            "functions": [
                {"function_name": "small", "current_memory_mb": 128, "recommended_memory_mb": 128,
                 "current_timeout_s": 3, "recommended_timeout_s": 3, "monthly_savings_usd": 0.0,
                 "current_monthly_cost_usd": 1.0, "projected_monthly_cost_usd": 1.0, "status": "unchanged"},
                {"function_name": "api-orders", "current_memory_mb": 1024, "recommended_memory_mb": 222,
                 "current_timeout_s": 30, "recommended_timeout_s": 3, "current_duration_ms": 250.0,
                 "predicted_duration_ms": 274.9, "monthly_savings_usd": 12.5,
                 "current_monthly_cost_usd": 16.0, "projected_monthly_cost_usd": 3.5, "status": "recommended"}
            ],
            "totals": {"functions": 2, "recommended": 1, "unchanged": 1, "insufficient_data": 0,
                       "current_monthly_cost_usd": 17.0, "projected_monthly_cost_usd": 4.5, "monthly_savings_usd": 12.5},
            "api_calls": {"cloudwatch:GetMetricData": 1}
        });
        let out = render(&report).expect("renders");
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[1].starts_with("api-orders"), "{out}");
        assert!(
            lines[1].contains("1024 -> 222") && lines[1].contains("250 -> 275"),
            "{out}"
        );
        assert!(out.contains("saves $12.50/month"), "{out}");
        assert!(out.contains("cloudwatch:GetMetricData x1"), "{out}");
        assert!(render(&serde_json::json!({})).is_err());
    }

    #[test]
    fn an_applied_step_shows_what_was_set_and_where_it_is_heading() {
        let report = serde_json::json!({
            "functions": [{"function_name": "api", "current_memory_mb": 1536, "recommended_memory_mb": 439,
                "applied": {"memory_mb": 768, "timeout_s": 3}, "current_timeout_s": 30,
                "recommended_timeout_s": 3, "monthly_savings_usd": 70.0, "status": "applied"}],
            "totals": {"functions": 1}
        });
        let out = render(&report).expect("renders");
        assert!(out.contains("1536 -> 768 (439)"), "{out}");
    }

    #[test]
    fn provisioned_concurrency_shows_both_sides_and_its_schedule() {
        let report = serde_json::json!({
            "functions": [{"function_name": "checkout", "current_memory_mb": 512, "recommended_memory_mb": 512,
                "monthly_savings_usd": 0.0, "status": "unchanged",
                "concurrency": {
                    "forecast": {"method": "weekly_profile", "backtest_wape_pct": 3.2},
                    "predictive": {"chosen": "predictive", "predictive_cost_usd": 30.5,
                        "predictive_cold_starts": 0.0, "reactive_cost_usd": 36.8, "reactive_cold_starts": 1620.0},
                    "recommended_scheduled_actions": [{"name": "trimtab-weekdays-0847",
                        "schedule": "cron(47 8 ? * MON-FRI *)", "timezone": "UTC", "min_capacity": 45.0}]}}],
            "totals": {"functions": 1}
        });
        let out = render(&report).expect("renders");
        assert!(
            out.contains("checkout: predictive (forecast weekly_profile WAPE 3.2%): predictive $30.50/month, 0 cold starts vs reactive $36.80/month, 1620 cold starts"),
            "{out}"
        );
        assert!(
            out.contains("trimtab-weekdays-0847 cron(47 8 ? * MON-FRI *) UTC: min 45"),
            "{out}"
        );
    }

    #[test]
    fn api_capacity_dates_the_limit_that_binds() {
        let report = serde_json::json!({
            "job": "performance", "health_score": 100.0, "pages": 0, "tickets": 0, "subjects": [],
            "api_capacity": {"account_rate_limit_rps": 10000.0, "account": {"quota": 10000.0, "crosses_on": null},
                "stages": [{"api": "orders", "stage": "prod", "peak_rps": 276.0,
                    "forecast": {"method": "daily_profile", "backtest_wape_pct": 1.67},
                    "risk": {"quota": 500.0, "crosses_on": "2026-12-04"}}]}
        });
        let out = render(&report).expect("renders");
        assert!(
            out.contains("API capacity orders/prod: peak 276 req/s, limit 500 req/s; forecast daily_profile WAPE 1.7%; 80% reached 2026-12-04."),
            "{out}"
        );
        assert!(
            out.contains(
                "API capacity, account: 10000 req/s shared by every API; not within 90 days."
            ),
            "{out}"
        );
    }

    #[test]
    fn renders_a_performance_report() {
        let report = serde_json::json!({
            "job": "performance", "health_score": 42.0, "pages": 1, "tickets": 0,
            "subjects": [{"id": "fn-checkout", "requests": 864000.0, "error_rate_pct": 0.12,
                "latency_p95_ms": 120.0, "latency_statistic": "p95",
                "error_budget": {"remaining_pct": 42.0}, "burn_rates": {"1h": 30.0},
                "alerts": [{"severity": "page", "rule": "60m/5m >= 14.4"}]}],
            "bottlenecks": [{"resource": "orders", "kind": "DynamoDB throttling", "budget_pct": 60.0,
                "measurable": true,
                "evidence": "900 throttle events", "action": "let the DynamoDB job choose", "job": "dynamodb-scaling"},
                {"resource": "nightly", "kind": "cold starts", "budget_pct": 2000.0, "budget_events": 0.45,
                "measurable": false, "evidence": "9 cold starts", "action": "provisioned concurrency", "job": "rightsizing"}],
            "dashboard": "trimtab-prod", "dashboard_changed": false, "alarms_put": [], "alarms_deleted": [],
            "alarms_unchanged": 5
        });
        let out = render(&report).expect("renders");
        assert!(out.contains("page (60m/5m >= 14.4)"), "{out}");
        assert!(out.contains("Health 42.0/100 (1 paging"), "{out}");
        assert!(out.contains("[dynamodb-scaling]"), "{out}");
        assert!(out.contains("spends 60.0% of its budget"), "{out}");
        assert!(
            out.contains("(cold starts): low traffic, its objective allows 0.45 bad events"),
            "{out}"
        );
        assert!(!out.contains("2000.0%"), "{out}");
        assert!(
            out.contains("(in step); alarms: 0 written, 0 deleted, 5 unchanged"),
            "{out}"
        );
    }

    #[test]
    fn renders_a_cost_report() {
        let report = serde_json::json!({
            "job": "cost", "total_usd": 5000.0, "window_start": "2026-08-26", "window_end": "2026-11-24",
            "metric": "UnblendedCost", "by_service": {"AWS Lambda": 3000.0, "Amazon DynamoDB": 2000.0},
            "forecast": {"month": "2026-11", "month_to_date_usd": 1500.0, "month_end_usd": 2000.0,
                         "low_usd": 1900.0, "high_usd": 2100.0, "backtest_mape_pct": 3.2},
            "budgets": [{"budget": "total", "used_pct": 60.0, "monthly_usd": 2500.0, "crossed_pct": [50.0],
                         "predicted": [{"threshold_pct": 80.0, "date": "2026-11-27"}]}],
            "anomalies": [{"date": "2026-11-14", "service": "AWS Lambda", "actual_usd": 190.0,
                           "expected_usd": 40.0, "impact_usd": 150.0}],
            "recommendations": [{"estimated_monthly_savings_usd": 455.57, "basis": "Lambda right-sizing"}],
            "cost_explorer_requests": 2
        });
        let out = render(&report).expect("renders");
        assert!(
            out.contains("month end $2000.00 (90%: $1900.00 to $2100.00"),
            "{out}"
        );
        assert!(
            out.contains("crossed [50.0%]; forecast crosses [80.0% on 2026-11-27]"),
            "{out}"
        );
        assert!(out.contains("Anomaly 2026-11-14 AWS Lambda"), "{out}");
        assert!(out.contains("Saving $455.57/month"), "{out}");
    }

    #[test]
    fn renders_a_dynamodb_report() {
        let report = serde_json::json!({
            "resources": [{"table_name": "orders", "index_name": "by-user", "dimension": "read",
                "current_billing_mode": "PROVISIONED", "recommended_billing_mode": "PAY_PER_REQUEST",
                "current_monthly_cost_usd": 19.0, "projected_monthly_cost_usd": 1.13,
                "seeds_policy_monthly_cost_usd": 2.38, "seeds_policy_throttled_requests": 6351000.0,
                "projected_throttled_requests": 0.0}],
            "plan": ["+ table/orders ..."], "applied": [], "monthly_savings_usd": 17.87
        });
        let out = render(&report).expect("renders");
        assert!(out.contains("orders/by-user"), "{out}");
        assert!(out.contains("provisioned -> on-demand"), "{out}");
        assert!(out.contains("0 (70%: 6351000)"), "{out}");
        assert!(out.contains("plan (0 of 1 applied)"), "{out}");
        let predictive = serde_json::json!({
            "resources": [
                {"table_name": "office", "dimension": "write",
                 "forecast": {"method": "weekly_profile", "backtest_wape_pct": 4.2, "interval_coverage_pct": 81.0},
                 "predictive": {"chosen": "predictive", "predictive_cost_usd": 40.0, "predictive_throttled_pct": 0.0,
                                "reactive_cost_usd": 55.5, "reactive_throttled_pct": 0.2},
                 "recommended_scheduled_actions": [{"name": "trimtab-weekdays-0748",
                    "schedule": "cron(48 7 ? * MON-FRI *)", "timezone": "UTC", "min_capacity": 420.0, "max_capacity": 900.0}]},
                {"table_name": "new", "dimension": "read",
                 "forecast": {"method": "none", "reason": "24 hours of history"},
                 "predictive": {"chosen": "reactive"}}],
            "plan": [], "applied": [], "monthly_savings_usd": 0.0
        });
        let out = render(&predictive).expect("renders");
        assert!(
            out.contains("predictive $40.00/month, 0.000% throttled vs reactive $55.50/month, 0.200% throttled"),
            "{out}"
        );
        assert!(
            out.contains("trimtab-weekdays-0748 cron(48 7 ? * MON-FRI *) UTC: min 420"),
            "{out}"
        );
        assert!(
            out.contains("new read: reactive; no forecast: 24 hours of history"),
            "{out}"
        );
    }
}
