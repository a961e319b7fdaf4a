//! Lambda list prices, one table per region, and the arithmetic of tiered duration pricing.
//!
//! Prices are US dollars. The us-east-1 table is AWS's public list price
//! (<https://aws.amazon.com/lambda/pricing/>); other regions are loaded from configuration
//! ([`PriceTable`] is `Deserialize`), never guessed.

use serde::{Deserialize, Serialize};

/// Instruction set of a function. Prices and tiers differ between the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    #[serde(rename = "x86_64")]
    X86_64,
    Arm64,
}

impl Architecture {
    /// Parses the names the Lambda API uses (`x86_64`, `arm64`).
    pub fn from_api_name(name: &str) -> Option<Self> {
        match name {
            "x86_64" => Some(Self::X86_64),
            "arm64" => Some(Self::Arm64),
            _ => None,
        }
    }

    pub fn api_name(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Arm64 => "arm64",
        }
    }
}

/// One band of the monthly duration tiers: usage up to `up_to_gb_s` (cumulative, per account, per
/// region, per architecture, per month) is charged `usd_per_gb_s`. `None` means unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DurationTier {
    pub up_to_gb_s: Option<f64>,
    pub usd_per_gb_s: f64,
}

/// The prices of one architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchitecturePrices {
    /// On-demand duration tiers, ascending.
    pub duration_tiers: Vec<DurationTier>,
    /// Provisioned concurrency: price per GB-second of configured concurrency.
    pub provisioned_concurrency_usd_per_gb_s: f64,
    /// Duration price per GB-second while running on provisioned concurrency.
    pub provisioned_duration_usd_per_gb_s: f64,
}

/// A region's Lambda price list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    pub region: String,
    pub x86_64: ArchitecturePrices,
    pub arm64: ArchitecturePrices,
    pub request_usd_per_million: f64,
    /// Ephemeral storage above the free 512 MB, per GB-second.
    pub ephemeral_storage_usd_per_gb_s: f64,
}

/// Seconds in the month AWS prices against (730 hours).
pub const SECONDS_PER_MONTH: f64 = 730.0 * 3600.0;

/// Ephemeral storage included in the price of every function.
pub const FREE_EPHEMERAL_STORAGE_MB: u32 = 512;

impl PriceTable {
    /// AWS list prices for us-east-1.
    pub fn us_east_1() -> Self {
        Self {
            region: "us-east-1".to_owned(),
            x86_64: ArchitecturePrices {
                duration_tiers: vec![
                    DurationTier {
                        up_to_gb_s: Some(6.0e9),
                        usd_per_gb_s: 0.000_016_666_7,
                    },
                    DurationTier {
                        up_to_gb_s: Some(15.0e9),
                        usd_per_gb_s: 0.000_015,
                    },
                    DurationTier {
                        up_to_gb_s: None,
                        usd_per_gb_s: 0.000_013_333_4,
                    },
                ],
                provisioned_concurrency_usd_per_gb_s: 0.000_004_166_7,
                provisioned_duration_usd_per_gb_s: 0.000_009_722_2,
            },
            arm64: ArchitecturePrices {
                duration_tiers: vec![
                    DurationTier {
                        up_to_gb_s: Some(7.5e9),
                        usd_per_gb_s: 0.000_013_333_4,
                    },
                    DurationTier {
                        up_to_gb_s: Some(18.75e9),
                        usd_per_gb_s: 0.000_012_000_1,
                    },
                    DurationTier {
                        up_to_gb_s: None,
                        usd_per_gb_s: 0.000_010_666_7,
                    },
                ],
                provisioned_concurrency_usd_per_gb_s: 0.000_003_333_4,
                provisioned_duration_usd_per_gb_s: 0.000_007_777_8,
            },
            request_usd_per_million: 0.20,
            ephemeral_storage_usd_per_gb_s: 0.000_000_030_9,
        }
    }

    /// The built-in table for `region`, if there is one.
    pub fn for_region(region: &str) -> Option<Self> {
        (region == "us-east-1").then(Self::us_east_1)
    }

    pub fn architecture(&self, arch: Architecture) -> &ArchitecturePrices {
        match arch {
            Architecture::X86_64 => &self.x86_64,
            Architecture::Arm64 => &self.arm64,
        }
    }

    /// Cost of `gb_s` of on-demand duration in one month, for an account that already used
    /// `account_gb_s_before` GB-s of the same architecture that month. The difference of two
    /// cumulative tier sums: the marginal cost of this usage on top of the rest of the account.
    pub fn duration_usd(&self, arch: Architecture, account_gb_s_before: f64, gb_s: f64) -> f64 {
        let tiers = &self.architecture(arch).duration_tiers;
        cumulative_tier_usd(tiers, account_gb_s_before + gb_s)
            - cumulative_tier_usd(tiers, account_gb_s_before)
    }

    pub fn requests_usd(&self, requests: f64) -> f64 {
        requests / 1.0e6 * self.request_usd_per_million
    }

    /// Ephemeral storage cost for `run_s` seconds of execution with `storage_mb` configured.
    pub fn ephemeral_storage_usd(&self, storage_mb: u32, run_s: f64) -> f64 {
        let billable_gb = f64::from(storage_mb.saturating_sub(FREE_EPHEMERAL_STORAGE_MB)) / 1024.0;
        billable_gb * run_s * self.ephemeral_storage_usd_per_gb_s
    }
}

/// Total price of `gb_s` of usage starting from zero, walking the tiers.
fn cumulative_tier_usd(tiers: &[DurationTier], gb_s: f64) -> f64 {
    let mut usd = 0.0;
    let mut floor = 0.0;
    for tier in tiers {
        let ceiling = tier.up_to_gb_s.unwrap_or(f64::INFINITY);
        if gb_s <= floor {
            break;
        }
        usd += (gb_s.min(ceiling) - floor) * tier.usd_per_gb_s;
        floor = ceiling;
    }
    usd
}

/// Billed milliseconds for a run of `duration_ms`: Lambda rounds every invocation up to the next
/// whole millisecond, with a minimum of 1 ms.
pub fn billed_duration_ms(duration_ms: f64) -> f64 {
    duration_ms.ceil().max(1.0)
}

/// Expected billed milliseconds per invocation when only the mean duration is known. Rounding up
/// a duration whose fractional part is spread evenly adds half a millisecond on average.
pub fn expected_billed_duration_ms(mean_duration_ms: f64) -> f64 {
    (mean_duration_ms + 0.5).max(1.0)
}

/// GB-seconds of `billed_ms` milliseconds at `memory_mb`.
pub fn gb_seconds(memory_mb: u32, billed_ms: f64) -> f64 {
    f64::from(memory_mb) / 1024.0 * billed_ms / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_tier_price_matches_the_list() {
        let p = PriceTable::us_east_1();
        // 1,000,000 invocations of 1 s at 1,024 MB = 1,000,000 GB-s.
        let usd = p.duration_usd(Architecture::X86_64, 0.0, 1.0e6);
        assert!((usd - 16.6667).abs() < 1e-9, "{usd}");
        let usd = p.duration_usd(Architecture::Arm64, 0.0, 1.0e6);
        assert!((usd - 13.3334).abs() < 1e-9, "{usd}");
    }

    #[test]
    fn usage_that_crosses_a_tier_is_split_between_them() {
        let p = PriceTable::us_east_1();
        // 1 B GB-s starting at 5.5 B: half at tier 1, half at tier 2.
        let usd = p.duration_usd(Architecture::X86_64, 5.5e9, 1.0e9);
        let expected = 0.5e9 * 0.000_016_666_7 + 0.5e9 * 0.000_015;
        assert!((usd - expected).abs() < 1e-3, "{usd} vs {expected}");
        // Above 15 B x86: the cheapest tier only.
        let usd = p.duration_usd(Architecture::X86_64, 20.0e9, 1.0e6);
        assert!((usd - 13.3334).abs() < 1e-6, "{usd}");
        // arm64 tiers are wider: 7 B is still the first tier.
        let usd = p.duration_usd(Architecture::Arm64, 7.0e9, 1.0e6);
        assert!((usd - 13.3334).abs() < 1e-6, "{usd}");
    }

    #[test]
    fn billed_duration_rounds_up_to_the_millisecond() {
        assert_eq!(billed_duration_ms(0.2), 1.0);
        assert_eq!(billed_duration_ms(102.25), 103.0);
        assert_eq!(billed_duration_ms(103.0), 103.0);
        assert_eq!(expected_billed_duration_ms(0.1), 1.0);
        assert_eq!(expected_billed_duration_ms(10.0), 10.5);
    }

    #[test]
    fn requests_and_ephemeral_storage() {
        let p = PriceTable::us_east_1();
        assert!((p.requests_usd(5.0e6) - 1.0).abs() < 1e-12);
        assert_eq!(p.ephemeral_storage_usd(512, 1.0e6), 0.0);
        let usd = p.ephemeral_storage_usd(1536, 1.0e6);
        assert!((usd - 0.0309).abs() < 1e-9, "{usd}");
    }

    #[test]
    fn price_table_round_trips_through_json_for_overrides() {
        let p = PriceTable::us_east_1();
        let json = serde_json::to_string(&p).expect("serialise");
        let back: PriceTable = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(p, back);
        assert_eq!(PriceTable::for_region("eu-west-1"), None);
    }
}
