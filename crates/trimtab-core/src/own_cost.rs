//! What a run itself costs in AWS charges: the requests it made, priced. Most control-plane
//! requests are free (Lambda, Application Auto Scaling, API Gateway management, STS, and reading
//! CloudWatch Logs with `FilterLogEvents`); CloudWatch bills `GetMetricData` by the metrics
//! requested and its other APIs by the request, Cost Explorer by the request, DynamoDB on demand
//! by request units, SNS by the publish.

use std::collections::BTreeMap;

use serde::Serialize;

/// Request prices, USD (us-east-1 list prices; free tiers are not subtracted).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RequestPrices {
    pub get_metric_data_per_1000_metrics: f64,
    pub cloudwatch_per_1000_requests: f64,
    pub cost_explorer_per_request: f64,
    /// On-demand write request unit (an item up to 1 KB).
    pub dynamodb_per_million_writes: f64,
    /// On-demand read request unit (a strongly consistent read up to 4 KB).
    pub dynamodb_per_million_reads: f64,
    pub sns_per_million_publishes: f64,
}

impl RequestPrices {
    pub fn us_east_1() -> Self {
        Self {
            get_metric_data_per_1000_metrics: 0.01,
            cloudwatch_per_1000_requests: 0.01,
            cost_explorer_per_request: 0.01,
            dynamodb_per_million_writes: 0.625,
            dynamodb_per_million_reads: 0.125,
            sns_per_million_publishes: 0.50,
        }
    }
}

/// One priced kind of request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostLine {
    pub what: String,
    pub quantity: f64,
    pub unit: &'static str,
    pub usd: f64,
}

/// A run's own AWS charges.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OwnCost {
    pub usd: f64,
    /// Only the kinds that cost something.
    pub lines: Vec<CostLine>,
    pub prices: &'static str,
}

/// Prices the requests of one run: `calls` by `service:Operation` (every attempt) and the
/// metrics its `GetMetricData` calls requested. DynamoDB writes and reads are counted at one
/// request unit each (items over 1 KB written, or 4 KB read, cost more).
pub fn own_cost(
    calls: &BTreeMap<String, u64>,
    metrics_requested: u64,
    p: &RequestPrices,
) -> OwnCost {
    let mut lines = Vec::new();
    let mut line = |what: &str, quantity: f64, unit: &'static str, usd: f64| {
        if quantity > 0.0 {
            lines.push(CostLine {
                what: what.to_owned(),
                quantity,
                unit,
                usd,
            });
        }
    };
    let sum = |pred: &dyn Fn(&str) -> bool| -> f64 {
        calls
            .iter()
            .filter(|(k, _)| pred(k))
            .map(|(_, n)| *n as f64)
            .sum()
    };
    let metrics = metrics_requested as f64;
    line(
        "cloudwatch:GetMetricData",
        metrics,
        "metrics requested",
        metrics / 1000.0 * p.get_metric_data_per_1000_metrics,
    );
    let cloudwatch = sum(&|k| k.starts_with("cloudwatch:") && k != "cloudwatch:GetMetricData");
    line(
        "cloudwatch (other APIs)",
        cloudwatch,
        "requests",
        cloudwatch / 1000.0 * p.cloudwatch_per_1000_requests,
    );
    let ce = sum(&|k| k.starts_with("ce:"));
    line(
        "ce:GetCostAndUsage",
        ce,
        "requests",
        ce * p.cost_explorer_per_request,
    );
    let writes = sum(&|k| {
        matches!(
            k,
            "dynamodb:PutItem" | "dynamodb:UpdateItem" | "dynamodb:DeleteItem"
        )
    });
    line(
        "dynamodb writes",
        writes,
        "write request units (at least)",
        writes / 1e6 * p.dynamodb_per_million_writes,
    );
    let reads = sum(&|k| matches!(k, "dynamodb:GetItem" | "dynamodb:Query"));
    line(
        "dynamodb reads",
        reads,
        "read request units (at least)",
        reads / 1e6 * p.dynamodb_per_million_reads,
    );
    let publishes = sum(&|k| k == "sns:Publish");
    line(
        "sns:Publish",
        publishes,
        "publishes",
        publishes / 1e6 * p.sns_per_million_publishes,
    );
    let usd = lines.iter().map(|l| l.usd).sum::<f64>();
    OwnCost {
        usd: (usd * 1e6).round() / 1e6,
        lines,
        prices: "us-east-1 list prices, free tiers not subtracted; Lambda, Application Auto Scaling, API Gateway, STS and FilterLogEvents requests are free",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_requested_and_paid_requests_are_priced_and_free_ones_are_not() {
        let calls = BTreeMap::from([
            ("cloudwatch:GetMetricData".to_owned(), 5),
            ("cloudwatch:PutMetricAlarm".to_owned(), 1000),
            ("ce:GetCostAndUsage".to_owned(), 2),
            ("lambda:ListFunctions".to_owned(), 200),
            ("logs:FilterLogEvents".to_owned(), 25),
            ("dynamodb:PutItem".to_owned(), 2_000_000),
        ]);
        let c = own_cost(&calls, 2400, &RequestPrices::us_east_1());
        // 2,400 metrics: $0.024; 1,000 alarm writes: $0.01; 2 Cost Explorer requests: $0.02;
        // 2 M writes: $1.25. Listing and log reads: nothing.
        assert!(
            (c.usd - (0.024 + 0.01 + 0.02 + 1.25)).abs() < 1e-9,
            "{c:#?}"
        );
        assert_eq!(c.lines.len(), 4);
        assert!(c.lines.iter().all(|l| !l.what.starts_with("lambda")));
        assert_eq!(
            own_cost(&BTreeMap::new(), 0, &RequestPrices::us_east_1()).usd,
            0.0
        );
    }
}
