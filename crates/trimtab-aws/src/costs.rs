//! Cost Explorer (every request, each page too, costs $0.01: all are counted), the cache of
//! closed days in the decision table, and SNS alerts.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_costexplorer::types::{
    DateInterval, Granularity, GroupDefinition, GroupDefinitionType,
};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use trimtab_core::cost::{format_date, parse_date};

use crate::{AwsError, Clients};

/// What costs are grouped by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    Service,
    UsageType,
    /// A cost-allocation tag key (per environment, per tenant).
    Tag(String),
}

impl Grouping {
    fn definition(&self) -> GroupDefinition {
        let (kind, key) = match self {
            Self::Service => (GroupDefinitionType::Dimension, "SERVICE".to_owned()),
            Self::UsageType => (GroupDefinitionType::Dimension, "USAGE_TYPE".to_owned()),
            Self::Tag(k) => (GroupDefinitionType::Tag, k.clone()),
        };
        GroupDefinition::builder().r#type(kind).key(key).build()
    }

    /// A stable name for cache keys.
    pub fn name(&self) -> String {
        match self {
            Self::Service => "SERVICE".to_owned(),
            Self::UsageType => "USAGE_TYPE".to_owned(),
            Self::Tag(k) => format!("TAG:{k}"),
        }
    }
}

/// One day of one group.
#[derive(Debug, Clone, PartialEq)]
pub struct CostRow {
    pub day: i64,
    pub key: String,
    pub usd: f64,
    pub estimated: bool,
}

/// Daily costs of `metric` from `start_day` to `end_day` (exclusive), grouped, every page.
pub async fn daily_costs(
    c: &Clients,
    start_day: i64,
    end_day: i64,
    metric: &str,
    grouping: &Grouping,
) -> Result<Vec<CostRow>, AwsError> {
    let op = "ce:GetCostAndUsage";
    let mut rows = Vec::new();
    let mut token: Option<String> = None;
    let period = DateInterval::builder()
        .start(format_date(start_day))
        .end(format_date(end_day))
        .build()
        .map_err(|e| AwsError::invalid(op, "costs", e.to_string()))?;
    loop {
        let page = c
            .costexplorer
            .get_cost_and_usage()
            .time_period(period.clone())
            .granularity(Granularity::Daily)
            .metrics(metric)
            .group_by(grouping.definition())
            .set_next_page_token(token.take())
            .send()
            .await
            .map_err(|e| AwsError::new(op, "costs", e))?;
        for r in page.results_by_time() {
            let Some(day) = r.time_period().and_then(|p| parse_date(p.start())) else {
                continue;
            };
            for g in r.groups() {
                let key = g.keys().join(",");
                let usd = g
                    .metrics()
                    .and_then(|m| m.get(metric))
                    .and_then(|v| v.amount())
                    .and_then(|a| a.parse::<f64>().ok())
                    .unwrap_or(0.0);
                rows.push(CostRow {
                    day,
                    key,
                    usd,
                    estimated: r.estimated(),
                });
            }
        }
        token = page.next_page_token().map(ToOwned::to_owned);
        if token.is_none() {
            break;
        }
    }
    Ok(rows)
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn cache_pk(metric: &str, grouping: &Grouping) -> String {
    format!("ce#{metric}#{}", grouping.name())
}

/// Closed days already fetched, from the decision table: day -> (group -> USD).
pub async fn cached_days(
    c: &Clients,
    table: &str,
    metric: &str,
    grouping: &Grouping,
    from_day: i64,
    to_day: i64,
) -> Result<BTreeMap<i64, BTreeMap<String, f64>>, AwsError> {
    let mut out = BTreeMap::new();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let page = c
            .dynamodb
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :a AND :b")
            .expression_attribute_values(":pk", s(cache_pk(metric, grouping)))
            .expression_attribute_values(":a", s(format!("day#{}", format_date(from_day))))
            .expression_attribute_values(":b", s(format!("day#{}", format_date(to_day))))
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| AwsError::new("dynamodb:Query", table, e))?;
        for item in page.items() {
            let day = item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .and_then(|k| k.strip_prefix("day#"))
                .and_then(parse_date);
            let groups = item
                .get("groups")
                .and_then(|v| v.as_s().ok())
                .and_then(|j| serde_json::from_str::<BTreeMap<String, f64>>(j).ok());
            if let (Some(day), Some(groups)) = (day, groups) {
                out.insert(day, groups);
            }
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    Ok(out)
}

/// Stores closed days (25 to a `BatchWriteItem`, unprocessed items retried).
pub async fn store_days(
    c: &Clients,
    table: &str,
    metric: &str,
    grouping: &Grouping,
    days: &BTreeMap<i64, BTreeMap<String, f64>>,
) -> Result<(), AwsError> {
    let requests: Vec<WriteRequest> = days
        .iter()
        .filter_map(|(day, groups)| {
            let put = PutRequest::builder()
                .item("pk", s(cache_pk(metric, grouping)))
                .item("sk", s(format!("day#{}", format_date(*day))))
                .item("groups", s(serde_json::to_string(groups).ok()?))
                .build()
                .ok()?;
            Some(WriteRequest::builder().put_request(put).build())
        })
        .collect();
    for chunk in requests.chunks(25) {
        let mut pending = chunk.to_vec();
        for _ in 0..5 {
            let out = c
                .dynamodb
                .batch_write_item()
                .request_items(table, pending.clone())
                .send()
                .await
                .map_err(|e| AwsError::new("dynamodb:BatchWriteItem", table, e))?;
            pending = out
                .unprocessed_items()
                .and_then(|u| u.get(table))
                .cloned()
                .unwrap_or_default();
            if pending.is_empty() {
                break;
            }
        }
    }
    Ok(())
}

/// Claims an alert key so each alert goes out once: `true` the first time.
pub async fn claim_alert(c: &Clients, table: &str, key: &str) -> Result<bool, AwsError> {
    let result = c
        .dynamodb
        .put_item()
        .table_name(table)
        .item("pk", s("alert#cost"))
        .item("sk", s(key))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|x| x.is_conditional_check_failed_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(AwsError::new("dynamodb:PutItem", key, e)),
    }
}

/// Publishes an alert to an SNS topic.
pub async fn publish(
    c: &Clients,
    topic_arn: &str,
    subject: &str,
    message: &str,
) -> Result<(), AwsError> {
    c.sns
        .publish()
        .topic_arn(topic_arn)
        .subject(subject.chars().take(99).collect::<String>())
        .message(message)
        .send()
        .await
        .map_err(|e| AwsError::new("sns:Publish", topic_arn, e))?;
    Ok(())
}

/// The latest result summary a job left in the decision table (`pk = result#<job>`).
pub async fn latest_result(
    c: &Clients,
    table: &str,
    job: &str,
) -> Result<Option<serde_json::Value>, AwsError> {
    let out = c
        .dynamodb
        .get_item()
        .table_name(table)
        .key("pk", s(format!("result#{job}")))
        .key("sk", s("latest"))
        .send()
        .await
        .map_err(|e| AwsError::new("dynamodb:GetItem", job, e))?;
    Ok(out
        .item()
        .and_then(|i| i.get("summary"))
        .and_then(|v| v.as_s().ok())
        .and_then(|j| serde_json::from_str(j).ok()))
}

/// Leaves a job's result summary for the other jobs (cost analysis, the API) to read.
pub async fn store_result(
    c: &Clients,
    table: &str,
    job: &str,
    summary: &serde_json::Value,
) -> Result<(), AwsError> {
    c.dynamodb
        .put_item()
        .table_name(table)
        .item("pk", s(format!("result#{job}")))
        .item("sk", s("latest"))
        .item("summary", s(summary.to_string()))
        .send()
        .await
        .map_err(|e| AwsError::new("dynamodb:PutItem", job, e))?;
    Ok(())
}
