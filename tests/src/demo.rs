//! The demo account: a fleet of functions with 14 days of metrics, three tables with a day of
//! per-minute traffic and an office API's with three weeks, a shop checkout function and an office REST
//! API stage with three weeks of hourly traffic, and the decision table. Used by `seed-demo` and the CLI tests.

use std::time::SystemTime;

use crate::fleet::demo_fleet;
use crate::seed::{
    Layout, Seeder, bursty, business_day, create_decision_table, create_table, put_consumed,
    put_series,
};

/// Seeds everything; returns a one-line summary.
pub async fn seed(
    sdk: &aws_config::SdkConfig,
    endpoint: &str,
    functions: usize,
    decision_table: &str,
    now: SystemTime,
) -> anyhow::Result<String> {
    let seeder = Seeder::new(sdk).await?;
    create_decision_table(sdk, decision_table).await?;
    let layout = Layout {
        interval_hours: 6,
        report_lines: 200,
        ..Layout::fourteen_days(now)
    };
    let fleet = demo_fleet(functions);
    for w in &fleet {
        seeder.seed(w, layout).await?;
    }

    let end = now.duration_since(SystemTime::UNIX_EPOCH)?.as_secs() as i64 / 60 * 60;
    let day = 1440;
    let cw = &seeder.cloudwatch;
    let (read, write) = ("ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits");
    let prod = [("environment", "prod")];
    // A busy business-hours table with a GSI, over-provisioned and without autoscaling.
    create_table(
        sdk,
        "shop-orders",
        Some((400, 100)),
        &["by-customer"],
        &prod,
    )
    .await?;
    put_consumed(
        cw,
        "shop-orders",
        None,
        read,
        &business_day(day, end, 20.0, 260.0, "or"),
        end,
    )
    .await?;
    put_consumed(
        cw,
        "shop-orders",
        None,
        write,
        &business_day(day, end, 5.0, 60.0, "ow"),
        end,
    )
    .await?;
    let gsi = Some("by-customer");
    put_consumed(
        cw,
        "shop-orders",
        gsi,
        read,
        &business_day(day, end, 4.0, 50.0, "gr"),
        end,
    )
    .await?;
    put_consumed(
        cw,
        "shop-orders",
        gsi,
        write,
        &business_day(day, end, 5.0, 60.0, "gw"),
        end,
    )
    .await?;
    // Mostly idle with bursts: on-demand's table.
    create_table(sdk, "shop-sessions", Some((200, 200)), &[], &prod).await?;
    put_consumed(
        cw,
        "shop-sessions",
        None,
        read,
        &bursty(day, 400.0, "sr"),
        end,
    )
    .await?;
    put_consumed(
        cw,
        "shop-sessions",
        None,
        write,
        &bursty(day, 150.0, "sw"),
        end,
    )
    .await?;
    // Steady and busy, but on-demand: provisioning's table.
    create_table(sdk, "billing-ledger", None, &[], &prod).await?;
    put_consumed(
        cw,
        "billing-ledger",
        None,
        read,
        &business_day(day, end, 150.0, 300.0, "lr"),
        end,
    )
    .await?;
    put_consumed(
        cw,
        "billing-ledger",
        None,
        write,
        &business_day(day, end, 80.0, 160.0, "lw"),
        end,
    )
    .await?;
    // An office API with three weeks of history (the last four days by the minute): its write
    // forecast turns into scheduled minimums ahead of the weekday ramps.
    create_table(sdk, "office-api", Some((5, 300)), &[], &prod).await?;
    crate::seed::put_office_writes(cw, "office-api", end, (21, 4), (4.0, 300.0)).await?;
    // The shop's checkout: cold starts past its latency objective call for provisioned
    // concurrency on its `live` alias (the apply sample provisions it), and three weeks of
    // hourly peaks (4 at night, 40 in office hours) for the forecast schedule.
    shop_checkout(sdk, &seeder, layout, end).await?;
    // The office's REST API: three weeks of hourly requests growing toward its stage's
    // throttle limit.
    crate::seed::create_rest_stage(sdk, ("office", "prod"), Some(500.0)).await?;
    let requests: Vec<(i64, f64)> = crate::seed::office_hourly(end, 21, (5.0, 200.0, 4.0))
        .into_iter()
        .map(|(t, rps)| (t, rps * 3600.0))
        .collect();
    let stage = [("ApiName", "office"), ("Stage", "prod")];
    put_series(cw, "AWS/ApiGateway", "Count", &stage, &requests).await?;
    // Cost Explorer: 90 days of five services, canned for a first and a repeat run.
    let today = now.duration_since(SystemTime::UNIX_EPOCH)?.as_secs() as i64 / 86_400;
    crate::costs::queue(
        endpoint,
        crate::costs::demo_answers(&crate::costs::dataset(today, 90), today),
    )?;
    Ok(format!(
        "seeded {} functions ({} days of metrics; one with three weeks of hourly peaks), 3 tables with a day of per-minute traffic, one with three weeks, an API stage with three weeks of requests, and 90 days of costs",
        fleet.len() + 1,
        layout.days
    ))
}

/// `shop-checkout`: a function whose cold starts break its 150 ms objective, with a `live`
/// alias for provisioned concurrency and three weeks of hourly peak concurrency.
async fn shop_checkout(
    sdk: &aws_config::SdkConfig,
    seeder: &Seeder,
    layout: Layout,
    end: i64,
) -> anyhow::Result<()> {
    let name = "shop-checkout";
    seeder
        .seed(&crate::fleet::cold_starts_past_objective(name), layout)
        .await?;
    crate::seed::publish_alias(sdk, name, "live").await?;
    let peaks = crate::seed::office_hourly(end, 21, (4.0, 40.0, 0.0));
    let dims = [("FunctionName", name)];
    put_series(
        &seeder.cloudwatch,
        "AWS/Lambda",
        "ConcurrentExecutions",
        &dims,
        &peaks,
    )
    .await
}
