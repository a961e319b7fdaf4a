//! A realistic Cost Explorer dataset (several services, weekly seasonality, noise, one planted
//! anomaly, the last days estimated) canned into moto as GetCostAndUsage answers.

use serde_json::{Value, json};
use trimtab_core::calendar::format_date;

use crate::seed::Noise;

/// Daily cost of each service: (service, day number, USD, estimated).
#[derive(Debug, Clone)]
pub struct Dataset {
    pub rows: Vec<(String, i64, f64, bool)>,
    pub anomaly: (String, i64),
}

/// `days` days ending the day before `today`, the last two estimated, an anomaly 10 days back.
pub fn dataset(today: i64, days: i64) -> Dataset {
    let services: [(&str, f64, f64); 5] = [
        ("AWS Lambda", 40.0, 0.6),
        ("Amazon DynamoDB", 22.0, 0.9),
        ("Amazon API Gateway", 11.0, 0.4),
        ("AmazonCloudWatch", 3.2, 1.0),
        ("Amazon Simple Storage Service", 1.4, 1.0),
    ];
    let mut noise = Noise::new("costs");
    let anomaly = ("AWS Lambda".to_owned(), today - 10);
    let mut rows = Vec::new();
    for day in today - days..today {
        let weekend = (day + 3).rem_euclid(7) >= 5;
        for (service, weekday_usd, weekend_factor) in services {
            let base = if weekend {
                weekday_usd * weekend_factor
            } else {
                weekday_usd
            };
            let mut usd = (base * noise.between(0.95, 1.05) * 100.0).round() / 100.0;
            if (service.to_owned(), day) == anomaly {
                usd += 150.0;
            }
            rows.push((service.to_owned(), day, usd, day >= today - 2));
        }
    }
    Dataset { rows, anomaly }
}

/// One GetCostAndUsage answer (grouped by SERVICE) for the days in `from..to`.
pub fn answer(d: &Dataset, metric: &str, from: i64, to: i64, next_page: Option<&str>) -> Value {
    let by_time: Vec<Value> = (from..to)
        .map(|day| {
            let groups: Vec<Value> = d
                .rows
                .iter()
                .filter(|r| r.1 == day)
                .map(|(s, _, usd, _)| json!({"Keys": [s], "Metrics": {metric: {"Amount": format!("{usd:.10}"), "Unit": "USD"}}}))
                .collect();
            let estimated = d.rows.iter().any(|r| r.1 == day && r.3);
            json!({
                "TimePeriod": {"Start": format_date(day), "End": format_date(day + 1)},
                "Total": {},
                "Groups": groups,
                "Estimated": estimated
            })
        })
        .collect();
    let mut a = json!({"ResultsByTime": by_time, "DimensionValueAttributes": [], "GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}]});
    if let Some(t) = next_page {
        a["NextPageToken"] = json!(t);
    }
    a
}

/// Queues answers in moto; each new request body takes the next one.
pub fn queue(endpoint: &str, answers: Vec<Value>) -> anyhow::Result<()> {
    let body = json!({"results": answers}).to_string();
    crate::moto::post(
        endpoint,
        "/moto-api/static/ce/cost-and-usage-results",
        &body,
    )?;
    Ok(())
}

/// Answers for a 90-day run (two pages) and a repeat run the same day (the estimated days).
pub fn demo_answers(d: &Dataset, today: i64) -> Vec<Value> {
    let metric = "UnblendedCost";
    vec![
        answer(d, metric, today - 90, today - 45, Some("page-2")),
        answer(d, metric, today - 45, today, None),
        answer(d, metric, today - 2, today, None),
    ]
}
