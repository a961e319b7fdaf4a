//! API stage capacity, once a day: four weeks of each stage's hourly requests (one batched
//! GetMetricData pass at a 3600 s period), forecast and dated against the stage's and the
//! account's throttle limits in the core ([`trimtab_core::api_capacity`]).

use serde::Serialize;
use trimtab_aws::Clients;
use trimtab_aws::dynamodb::per_hour;
use trimtab_aws::metrics::{self, Query, Window};
use trimtab_aws::monitoring::{ApiStage, account_rate_limit};
use trimtab_core::api_capacity::{Limits, StageCapacity, account_capacity, stage_capacity};
use trimtab_core::predictive::HISTORY_DAYS;
use trimtab_core::quota::CapacityRisk;

use crate::JobError;

/// The section of the report.
#[derive(Debug, Clone, Serialize)]
pub struct ApiCapacity {
    /// The account's per-Region API Gateway limit, requests a second (null when unread).
    pub account_rate_limit_rps: Option<f64>,
    /// Every stage's traffic together against that limit, which they share (null in a run
    /// scoped by API name, which does not see every stage).
    pub account: Option<CapacityRisk>,
    pub stages: Vec<StageCapacity>,
}

/// Whether a run at `now_s` (epoch seconds, on a 5-minute boundary) judges capacity: when asked
/// (`Some(true)`), never when told not to, and otherwise only in the day's first five minutes
/// (UTC), so a monitor that runs every five minutes reads four weeks of hourly requests once a
/// day, not 288 times.
pub fn wanted(asked: Option<bool>, now_s: i64) -> bool {
    asked.unwrap_or(now_s.rem_euclid(86_400) < 300)
}

/// Forecasts and dates every stage. One stage's missing data is zeros, not a failed run; an
/// unreadable account limit is a note (the stages' own limits are still judged).
/// The account's risk needs every stage of the Region (`whole_region`: the run is not scoped by
/// API name); a scoped run reports the stages only.
pub async fn judge(
    clients: &Clients,
    stages: &[ApiStage],
    (end_epoch_s, whole_region): (i64, bool),
    (metric_queries, notes): (&mut usize, &mut Vec<String>),
) -> Result<ApiCapacity, JobError> {
    let history = Window {
        start_epoch_s: end_epoch_s,
        end_epoch_s,
    }
    .hours_before_end(HISTORY_DAYS);
    let queries: Vec<Query> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| Query {
            id: format!("k{i}"),
            namespace: "AWS/ApiGateway",
            metric_name: "Count",
            dimensions: s.kind.dimensions(&s.dimension_value, &s.stage),
            stat: "Sum",
        })
        .collect();
    let (series, fetched) = if queries.is_empty() {
        Default::default()
    } else {
        metrics::fetch_with_period(clients, queries, history, 3600).await?
    };
    *metric_queries += fetched.queries;
    let account_rps = match account_rate_limit(clients).await {
        Ok(limit) => limit,
        Err(e) => {
            notes.push(format!(
                "API Gateway account limit not read, so stages are judged on their own limits only: {e}"
            ));
            None
        }
    };
    let hours = usize::try_from(history.seconds() / 3600).unwrap_or(0);
    let grids: Vec<Vec<f64>> = (0..stages.len())
        .map(|i| {
            let points = series.get(&format!("k{i}")).map_or(&[][..], Vec::as_slice);
            per_hour(points, history.start_epoch_s, hours)
        })
        .collect();
    let judged = stages
        .iter()
        .zip(&grids)
        .map(|(s, grid)| {
            let limits = Limits {
                stage_rps: s.rate_limit_rps,
                account_rps,
            };
            stage_capacity((&s.name, &s.stage), grid, history.start_epoch_s, limits)
        })
        .collect();
    Ok(ApiCapacity {
        account_rate_limit_rps: account_rps,
        account: account_rps
            .filter(|_| whole_region)
            .map(|a| account_capacity(&grids, history.start_epoch_s, a)),
        stages: judged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_judged_once_a_day_unless_asked() {
        let midnight = 1_795_046_400; // 2026-11-19 00:00 UTC
        assert!(wanted(None, midnight));
        assert!(!wanted(None, midnight + 300));
        assert!(wanted(Some(true), midnight + 300));
        assert!(!wanted(Some(false), midnight));
    }
}
