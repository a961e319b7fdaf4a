//! Cost Explorer (every request, each page too, costs $0.01: all are counted and budgeted per
//! day), the cache of fetched days in the decision table, and SNS alerts.

use std::collections::BTreeMap;

use aws_sdk_costexplorer::types::{
    DateInterval, Granularity, GroupDefinition, GroupDefinitionType,
};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use futures::StreamExt;
use trimtab_core::calendar::{format_date, parse_date};
pub use trimtab_core::cost::{CachedDay, CostRow};

use crate::schema::{DAY_PREFIX, Key, cost_partition, day_sort_key};
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

/// One page of daily costs of `metric` from `start_day` to `end_day` (exclusive), grouped; the
/// token of the next page, if any. Every page is a paid request.
pub async fn cost_page(
    c: &Clients,
    start_day: i64,
    end_day: i64,
    metric: &str,
    grouping: &Grouping,
    token: Option<String>,
) -> Result<(Vec<CostRow>, Option<String>), AwsError> {
    let op = "ce:GetCostAndUsage";
    let period = DateInterval::builder()
        .start(format_date(start_day))
        .end(format_date(end_day))
        .build()
        .map_err(|e| AwsError::invalid(op, "costs", e.to_string()))?;
    let page = c
        .costexplorer
        .get_cost_and_usage()
        .time_period(period)
        .granularity(Granularity::Daily)
        .metrics(metric)
        .group_by(grouping.definition())
        .set_next_page_token(token)
        .send()
        .await
        .map_err(|e| AwsError::new(op, "costs", e))?;
    let mut rows = Vec::new();
    for r in page.results_by_time() {
        let Some(day) = r.time_period().and_then(|p| parse_date(p.start())) else {
            continue;
        };
        for g in r.groups() {
            let usd = g
                .metrics()
                .and_then(|m| m.get(metric))
                .and_then(|v| v.amount())
                .and_then(|a| a.parse::<f64>().ok())
                .unwrap_or(0.0);
            rows.push(CostRow {
                day,
                key: g.keys().join(","),
                usd,
                estimated: r.estimated(),
            });
        }
    }
    Ok((rows, page.next_page_token().map(ToOwned::to_owned)))
}

/// Takes one request from the day's Cost Explorer budget (`ce-budget#<date>` in the decision
/// table, counted atomically across concurrent runs): the requests used so far today including
/// this one, or `None` when `daily_limit` are already used.
pub async fn take_ce_request(
    c: &Clients,
    table: &str,
    day: i64,
    daily_limit: u32,
) -> Result<Option<u32>, AwsError> {
    let op = "dynamodb:UpdateItem";
    let result = c
        .dynamodb
        .update_item()
        .table_name(table)
        .key("pk", s(Key::CostBudget { day }.pk()))
        .key("sk", s(Key::CostBudget { day }.sk()))
        .update_expression("ADD used :one SET purge_at = :purge")
        .condition_expression("attribute_not_exists(used) OR used < :limit")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .expression_attribute_values(":limit", AttributeValue::N(daily_limit.to_string()))
        // Kept a week past its day, then removed by the table's TTL (`purge_at`).
        .expression_attribute_values(
            ":purge",
            AttributeValue::N(((day + 8) * 86_400).to_string()),
        )
        .return_values(ReturnValue::UpdatedNew)
        .send()
        .await;
    match result {
        Ok(out) => Ok(out
            .attributes()
            .and_then(|a| a.get("used"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())),
        Err(e)
            if e.as_service_error()
                .is_some_and(|x| x.is_conditional_check_failed_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(AwsError::new(op, "ce-budget", e)),
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn cache_pk(metric: &str, grouping: &Grouping) -> String {
    cost_partition(metric, &grouping.name())
}

/// Days already fetched, from the decision table (closed days, and estimated ones with when they
/// were read).
pub async fn cached_days(
    c: &Clients,
    table: &str,
    metric: &str,
    grouping: &Grouping,
    from_day: i64,
    to_day: i64,
) -> Result<BTreeMap<i64, CachedDay>, AwsError> {
    let mut out = BTreeMap::new();
    let mut items = c
        .dynamodb
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk AND sk BETWEEN :a AND :b")
        .expression_attribute_values(":pk", s(cache_pk(metric, grouping)))
        .expression_attribute_values(":a", s(day_sort_key(from_day)))
        .expression_attribute_values(":b", s(day_sort_key(to_day)))
        .into_paginator()
        .items()
        .send();
    while let Some(item) = items
        .try_next()
        .await
        .map_err(|e| AwsError::new("dynamodb:Query", table, e))?
    {
        let day = item
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .and_then(|k| k.strip_prefix(DAY_PREFIX))
            .and_then(parse_date);
        let groups = item
            .get("groups")
            .and_then(|v| v.as_s().ok())
            .and_then(|j| serde_json::from_str::<BTreeMap<String, f64>>(j).ok());
        let flag = |k: &str| item.get(k).and_then(|v| v.as_bool().ok()).copied();
        let fetched_at_s = item
            .get("fetched_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if let (Some(day), Some(groups)) = (day, groups) {
            out.insert(
                day,
                CachedDay {
                    groups,
                    estimated: flag("estimated").unwrap_or(false),
                    fetched_at_s,
                },
            );
        }
    }
    Ok(out)
}

/// Stores fetched days, one `PutItem` each, eight at a time. (Not `BatchWriteItem`: that
/// permission also deletes, and the read-only API role that fills the cache must not.)
pub async fn store_days(
    c: &Clients,
    table: &str,
    metric: &str,
    grouping: &Grouping,
    days: &BTreeMap<i64, CachedDay>,
) -> Result<(), AwsError> {
    let pk = cache_pk(metric, grouping);
    let puts: Vec<_> = days
        .iter()
        .map(|(day, d)| {
            let groups = serde_json::to_string(&d.groups).unwrap_or_else(|_| "{}".into());
            c.dynamodb
                .put_item()
                .table_name(table)
                .item("pk", s(pk.clone()))
                .item("sk", s(day_sort_key(*day)))
                .item("groups", s(groups))
                .item("estimated", AttributeValue::Bool(d.estimated))
                .item("fetched_at", AttributeValue::N(d.fetched_at_s.to_string()))
        })
        .collect();
    let results: Vec<_> = futures::stream::iter(puts)
        .map(|put| put.send())
        .buffer_unordered(8)
        .collect()
        .await;
    for r in results {
        r.map_err(|e| AwsError::new("dynamodb:PutItem", table, e))?;
    }
    Ok(())
}

/// Claims an alert key so each alert goes out once: `true` the first time, or when the last
/// claim's publish failed (see [`unclaim_alert`]).
pub async fn claim_alert(c: &Clients, table: &str, key: &str) -> Result<bool, AwsError> {
    let k = Key::AlertClaim { key };
    let result = c
        .dynamodb
        .put_item()
        .table_name(table)
        .item("pk", s(k.pk()))
        .item("sk", s(k.sk()))
        .item("state", s("sent"))
        .condition_expression("attribute_not_exists(pk) OR #s = :failed")
        .expression_attribute_names("#s", "state")
        .expression_attribute_values(":failed", s("failed"))
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

/// Marks a claimed alert as not sent (its publish failed), so the next run claims and sends it.
pub async fn unclaim_alert(c: &Clients, table: &str, key: &str) -> Result<(), AwsError> {
    let k = Key::AlertClaim { key };
    c.dynamodb
        .update_item()
        .table_name(table)
        .key("pk", s(k.pk()))
        .key("sk", s(k.sk()))
        .update_expression("SET #s = :failed")
        .expression_attribute_names("#s", "state")
        .expression_attribute_values(":failed", s("failed"))
        .send()
        .await
        .map_err(|e| AwsError::new("dynamodb:UpdateItem", key, e))?;
    Ok(())
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
        .key("pk", s(Key::Result { job }.pk()))
        .key("sk", s(Key::Result { job }.sk()))
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
        .item("pk", s(Key::Result { job }.pk()))
        .item("sk", s(Key::Result { job }.sk()))
        .item("summary", s(summary.to_string()))
        .send()
        .await
        .map_err(|e| AwsError::new("dynamodb:PutItem", job, e))?;
    Ok(())
}
