//! Seeds the demo account: a fleet of functions with 14 days of metrics, in the emulator named by
//! `AWS_ENDPOINT_URL` (loopback only).

use std::time::SystemTime;

use anyhow::{Context, bail};
use trimtab_tests::fleet::demo_fleet;
use trimtab_tests::moto::{is_loopback, sdk_config_for};
use trimtab_tests::seed::{Layout, Seeder, create_decision_table};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .context("AWS_ENDPOINT_URL must name the local emulator")?;
    if !is_loopback(&endpoint) {
        bail!("refusing to seed {endpoint}: the demo seeds a local emulator only");
    }
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(36);
    let sdk = sdk_config_for(&endpoint).await;
    let seeder = Seeder::new(&sdk).await?;
    // The decision table apply mode records to (template.yaml's DecisionTable).
    let table = std::env::var("TRIMTAB_TABLE").unwrap_or_else(|_| "trimtab-decisions-demo".into());
    create_decision_table(&sdk, &table).await?;
    let layout = Layout {
        interval_hours: 6,
        report_lines: 200,
        ..Layout::fourteen_days(SystemTime::now())
    };
    let fleet = demo_fleet(n);
    for w in &fleet {
        seeder.seed(w, layout).await?;
    }
    eprintln!(
        "seeded {} functions with {} days of metrics into {endpoint}",
        fleet.len(),
        layout.days
    );
    Ok(())
}
