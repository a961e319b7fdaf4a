//! Seeds the demo account: a fleet of functions with 14 days of metrics, in the emulator named by
//! `AWS_ENDPOINT_URL` (loopback only).

use std::time::SystemTime;

use anyhow::{Context, bail};
use trimtab_tests::demo;
use trimtab_tests::moto::{is_loopback, sdk_config_for};

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
    let table = std::env::var("TRIMTAB_TABLE").unwrap_or_else(|_| "trimtab-decisions-demo".into());
    let summary = demo::seed(&sdk, &endpoint, n, &table, SystemTime::now()).await?;
    eprintln!("{summary} into {endpoint}");
    Ok(())
}
