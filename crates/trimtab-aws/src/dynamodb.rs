//! DynamoDB inventory and Application Auto Scaling for tables and indexes: what exists, what is
//! registered, and the writes that bring it to a plan.

use std::collections::BTreeMap;

use aws_sdk_applicationautoscaling::types::{
    MetricType, PolicyType, PredefinedMetricSpecification, ScalableDimension, ScalableTargetAction,
    ServiceNamespace, TargetTrackingScalingPolicyConfiguration,
};
use aws_sdk_dynamodb::types::BillingMode;
use trimtab_core::actuation::Settlement;
use trimtab_core::capacity::Dimension;
use trimtab_core::scaling_plan::{Existing, ScheduledAction, Step, TargetKey};

use crate::metrics::Query;
use crate::{AwsError, Clients};

/// One index's provisioned throughput (zero when on-demand).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexInfo {
    pub name: String,
    pub read_capacity: f64,
    pub write_capacity: f64,
}

/// A table as scaling sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    pub name: String,
    pub arn: String,
    pub on_demand: bool,
    pub read_capacity: f64,
    pub write_capacity: f64,
    pub indexes: Vec<IndexInfo>,
    pub tags: BTreeMap<String, String>,
}

/// Lists tables whose names start with `prefix` (the SDK's paginator).
pub async fn list_tables(c: &Clients, prefix: Option<&str>) -> Result<Vec<String>, AwsError> {
    let names: Vec<String> = c
        .dynamodb
        .list_tables()
        .limit(100)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| AwsError::new("dynamodb:ListTables", "tables", e))?;
    Ok(names
        .into_iter()
        .filter(|n| prefix.is_none_or(|p| n.starts_with(p)))
        .collect())
}

/// Describes a table and reads its tags.
pub async fn describe_table(c: &Clients, name: &str) -> Result<TableInfo, AwsError> {
    let out = c
        .dynamodb
        .describe_table()
        .table_name(name)
        .send()
        .await
        .map_err(|e| AwsError::new("dynamodb:DescribeTable", name, e))?;
    let t = out.table().ok_or_else(|| {
        AwsError::invalid(
            "dynamodb:DescribeTable",
            name.to_owned(),
            "no table in the answer".to_owned(),
        )
    })?;
    let on_demand = t
        .billing_mode_summary()
        .and_then(|b| b.billing_mode())
        .is_some_and(|m| *m == BillingMode::PayPerRequest);
    let throughput = |p: Option<&aws_sdk_dynamodb::types::ProvisionedThroughputDescription>| {
        (
            p.and_then(|p| p.read_capacity_units()).unwrap_or(0) as f64,
            p.and_then(|p| p.write_capacity_units()).unwrap_or(0) as f64,
        )
    };
    let (read_capacity, write_capacity) = throughput(t.provisioned_throughput());
    let indexes = t
        .global_secondary_indexes()
        .iter()
        .map(|g| {
            let (r, w) = throughput(g.provisioned_throughput());
            IndexInfo {
                name: g.index_name().unwrap_or_default().to_owned(),
                read_capacity: r,
                write_capacity: w,
            }
        })
        .collect();
    let arn = t.table_arn().unwrap_or_default().to_owned();
    let tags = table_tags(c, &arn).await?;
    Ok(TableInfo {
        name: name.to_owned(),
        arn,
        on_demand,
        read_capacity,
        write_capacity,
        indexes,
        tags,
    })
}

async fn table_tags(c: &Clients, arn: &str) -> Result<BTreeMap<String, String>, AwsError> {
    // ListTagsOfResource has no paginator in the SDK model: follow NextToken by hand.
    let mut out = BTreeMap::new();
    let mut token: Option<String> = None;
    loop {
        let page = c
            .dynamodb
            .list_tags_of_resource()
            .resource_arn(arn)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| AwsError::new("dynamodb:ListTagsOfResource", arn, e))?;
        for t in page.tags() {
            out.insert(t.key().to_owned(), t.value().to_owned());
        }
        token = page.next_token().map(ToOwned::to_owned);
        if token.is_none() {
            break;
        }
    }
    Ok(out)
}

/// The Application Auto Scaling resource id of a table or index.
pub fn resource_id(table: &str, index: Option<&str>) -> String {
    match index {
        Some(i) => format!("table/{table}/index/{i}"),
        None => format!("table/{table}"),
    }
}

/// The scalable dimension of a table or index, read or write, by its API name.
pub fn scalable_dimension(index: bool, d: Dimension) -> &'static str {
    match (index, d) {
        (false, Dimension::Read) => "dynamodb:table:ReadCapacityUnits",
        (false, Dimension::Write) => "dynamodb:table:WriteCapacityUnits",
        (true, Dimension::Read) => "dynamodb:index:ReadCapacityUnits",
        (true, Dimension::Write) => "dynamodb:index:WriteCapacityUnits",
    }
}

fn metric_type(d: Dimension) -> MetricType {
    match d {
        Dimension::Read => MetricType::DynamoDbReadCapacityUtilization,
        Dimension::Write => MetricType::DynamoDbWriteCapacityUtilization,
    }
}

/// What Application Auto Scaling holds for DynamoDB: every scalable target, scaling policy and
/// scheduled action (the SDK's paginators; `DescribeScalingPolicies` pages hold at most 10,
/// `DescribeScheduledActions` 50), or only those of one target (of any namespace: a Lambda
/// alias's too).
pub async fn existing(c: &Clients, only: Option<&TargetKey>) -> Result<Existing, AwsError> {
    let op = "application-autoscaling:DescribeScalableTargets";
    let namespace = only.map_or(ServiceNamespace::Dynamodb, |(_, d)| namespace_of(d));
    let mut targets = c
        .autoscaling
        .describe_scalable_targets()
        .service_namespace(namespace.clone());
    let mut policies = c
        .autoscaling
        .describe_scaling_policies()
        .service_namespace(namespace.clone());
    let mut scheduled = c
        .autoscaling
        .describe_scheduled_actions()
        .service_namespace(namespace);
    if let Some((resource, dimension)) = only {
        scheduled = scheduled
            .resource_id(resource)
            .scalable_dimension(ScalableDimension::from(dimension.as_str()));
        targets = targets
            .resource_ids(resource)
            .scalable_dimension(ScalableDimension::from(dimension.as_str()));
        policies = policies
            .resource_id(resource)
            .scalable_dimension(ScalableDimension::from(dimension.as_str()));
    }
    let targets: Vec<aws_sdk_applicationautoscaling::types::ScalableTarget> = targets
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| AwsError::new(op, "dynamodb", e))?;
    let op = "application-autoscaling:DescribeScalingPolicies";
    let policies: Vec<aws_sdk_applicationautoscaling::types::ScalingPolicy> = policies
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| AwsError::new(op, "dynamodb", e))?;
    let op = "application-autoscaling:DescribeScheduledActions";
    let scheduled: Vec<aws_sdk_applicationautoscaling::types::ScheduledAction> = scheduled
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| AwsError::new(op, "dynamodb", e))?;
    let mut e = Existing::default();
    for a in scheduled {
        let Some(dimension) = a.scalable_dimension() else {
            continue;
        };
        let range = a.scalable_target_action();
        let min = range.and_then(|r| r.min_capacity());
        let max = range.and_then(|r| r.max_capacity());
        e.scheduled
            .entry((a.resource_id().to_owned(), dimension.as_str().to_owned()))
            .or_default()
            .push(ScheduledAction {
                name: a.scheduled_action_name().to_owned(),
                schedule: a.schedule().to_owned(),
                // AWS reports no time zone for an action put without one: UTC.
                timezone: a.timezone().unwrap_or("UTC").to_owned(),
                min_capacity: min.map_or(-1.0, f64::from),
                max_capacity: max.map_or(-1.0, f64::from),
            });
    }
    for t in targets {
        e.targets.insert(
            (
                t.resource_id().to_owned(),
                t.scalable_dimension().as_str().to_owned(),
            ),
            (f64::from(t.min_capacity()), f64::from(t.max_capacity())),
        );
    }
    for p in policies {
        e.policies
            .entry((
                p.resource_id().to_owned(),
                p.scalable_dimension().as_str().to_owned(),
            ))
            .or_default()
            .push((
                p.policy_name().to_owned(),
                p.target_tracking_scaling_policy_configuration()
                    .map(|t| t.target_value()),
            ));
    }
    Ok(e)
}

/// Registers (or updates) a scalable target.
pub async fn register_target(
    c: &Clients,
    resource: &str,
    dimension: &str,
    min: f64,
    max: f64,
) -> Result<(), AwsError> {
    let namespace = namespace_of(dimension);
    let dimension = ScalableDimension::from(dimension);
    let op = "application-autoscaling:RegisterScalableTarget";
    c.autoscaling
        .register_scalable_target()
        .service_namespace(namespace)
        .resource_id(resource)
        .scalable_dimension(dimension)
        .min_capacity(min as i32)
        .max_capacity(max as i32)
        .send()
        .await
        .map_err(|e| AwsError::new(op, resource, e))?;
    Ok(())
}

/// Puts (creates or replaces) the target-tracking policy of a scalable target.
pub async fn put_policy(
    c: &Clients,
    resource: &str,
    dimension: &str,
    d: Dimension,
    name: &str,
    target_pct: f64,
) -> Result<(), AwsError> {
    let dimension = ScalableDimension::from(dimension);
    let op = "application-autoscaling:PutScalingPolicy";
    let build_err = |e: aws_sdk_applicationautoscaling::error::BuildError| {
        AwsError::invalid(op, resource.to_owned(), e.to_string())
    };
    let config = TargetTrackingScalingPolicyConfiguration::builder()
        .target_value(target_pct)
        .predefined_metric_specification(
            PredefinedMetricSpecification::builder()
                .predefined_metric_type(metric_type(d))
                .build()
                .map_err(build_err)?,
        )
        .build()
        .map_err(build_err)?;
    c.autoscaling
        .put_scaling_policy()
        .policy_name(name)
        .service_namespace(ServiceNamespace::Dynamodb)
        .resource_id(resource)
        .scalable_dimension(dimension)
        .policy_type(PolicyType::TargetTrackingScaling)
        .target_tracking_scaling_policy_configuration(config)
        .send()
        .await
        .map_err(|e| AwsError::new(op, resource, e))?;
    Ok(())
}

/// Puts (creates or replaces, by name) a scheduled action on a registered scalable target.
pub async fn put_scheduled_action(
    c: &Clients,
    resource: &str,
    dimension: &str,
    a: &ScheduledAction,
) -> Result<(), AwsError> {
    let op = "application-autoscaling:PutScheduledAction";
    c.autoscaling
        .put_scheduled_action()
        .service_namespace(namespace_of(dimension))
        .scheduled_action_name(&a.name)
        .resource_id(resource)
        .scalable_dimension(ScalableDimension::from(dimension))
        .schedule(&a.schedule)
        .timezone(&a.timezone)
        .scalable_target_action(
            ScalableTargetAction::builder()
                .min_capacity(a.min_capacity as i32)
                .max_capacity(a.max_capacity as i32)
                .build(),
        )
        .send()
        .await
        .map_err(|e| AwsError::new(op, resource, e))?;
    Ok(())
}

/// The service namespace a scalable dimension belongs to (`dynamodb:table:...` -> `dynamodb`,
/// `lambda:function:ProvisionedConcurrency` -> `lambda`).
fn namespace_of(dimension: &str) -> ServiceNamespace {
    ServiceNamespace::from(dimension.split(':').next().unwrap_or_default())
}

/// Deletes a scheduled action (`ObjectNotFoundException` when it is not there).
pub async fn delete_scheduled_action(
    c: &Clients,
    resource: &str,
    dimension: &str,
    name: &str,
) -> Result<(), AwsError> {
    let op = "application-autoscaling:DeleteScheduledAction";
    c.autoscaling
        .delete_scheduled_action()
        .service_namespace(namespace_of(dimension))
        .scheduled_action_name(name)
        .resource_id(resource)
        .scalable_dimension(ScalableDimension::from(dimension))
        .send()
        .await
        .map_err(|e| AwsError::new(op, resource, e))?;
    Ok(())
}

/// Per-minute consumed-units queries for a table (`index` None) or an index: ids `{prefix}r`,
/// `{prefix}w`.
pub fn consumed_queries(prefix: &str, table: &str, index: Option<&str>) -> Vec<Query> {
    let mut dims = vec![("TableName".to_owned(), table.to_owned())];
    if let Some(i) = index {
        dims.push(("GlobalSecondaryIndexName".to_owned(), i.to_owned()));
    }
    vec![
        Query {
            id: format!("{prefix}r"),
            namespace: "AWS/DynamoDB",
            metric_name: "ConsumedReadCapacityUnits",
            dimensions: dims.clone(),
            stat: "Sum",
        },
        Query {
            id: format!("{prefix}w"),
            namespace: "AWS/DynamoDB",
            metric_name: "ConsumedWriteCapacityUnits",
            dimensions: dims,
            stat: "Sum",
        },
    ]
}

/// Lays datapoints `(epoch s, value)` on a per-minute grid from `start_epoch_s`; a datapoint of
/// a longer period (5-minute data older than 15 days) is spread evenly over its minutes. Missing
/// minutes are zero (DynamoDB publishes nothing for an idle minute).
pub fn per_minute(
    points: &[(i64, f64)],
    start_epoch_s: i64,
    minutes: usize,
    period_s: i64,
) -> Vec<f64> {
    let mut grid = vec![0.0; minutes];
    let span = (period_s / 60).max(1) as usize;
    for &(t, v) in points {
        let first = (t - start_epoch_s).div_euclid(60);
        if first < 0 {
            continue;
        }
        for k in 0..span {
            if let Some(slot) = grid.get_mut(first as usize + k) {
                *slot += v / span as f64;
            }
        }
    }
    grid
}

/// Hourly sums (`points` with a period of 3600 s) on a grid of `hours` from `start_epoch_s`.
pub fn per_hour(points: &[(i64, f64)], start_epoch_s: i64, hours: usize) -> Vec<f64> {
    let mut grid = vec![0.0; hours];
    for &(t, v) in points {
        let h = (t - start_epoch_s).div_euclid(3600);
        if let Some(slot) = usize::try_from(h).ok().and_then(|h| grid.get_mut(h)) {
            *slot += v;
        }
    }
    grid
}

/// Makes one planned write.
pub async fn carry_out(clients: &Clients, step: &Step) -> Result<(), AwsError> {
    match step {
        Step::RegisterScalableTarget {
            resource_id,
            scalable_dimension,
            min_capacity,
            max_capacity,
            ..
        } => {
            register_target(
                clients,
                resource_id,
                scalable_dimension,
                *min_capacity,
                *max_capacity,
            )
            .await
        }
        Step::PutScalingPolicy {
            resource_id,
            scalable_dimension,
            dimension,
            policy_name,
            target_pct,
            ..
        } => {
            put_policy(
                clients,
                resource_id,
                scalable_dimension,
                *dimension,
                policy_name,
                *target_pct,
            )
            .await
        }
        Step::PutScheduledAction {
            resource_id,
            scalable_dimension,
            scheduled_action,
            ..
        } => put_scheduled_action(clients, resource_id, scalable_dimension, scheduled_action).await,
        Step::DeleteScheduledAction {
            resource_id,
            scalable_dimension,
            was,
        } => delete_scheduled_action(clients, resource_id, scalable_dimension, &was.name).await,
    }
}

/// Settles a planned write from what Application Auto Scaling holds for its target now.
pub async fn settle_live(c: &Clients, step: &Step) -> Result<Settlement, AwsError> {
    let key = step.key();
    let live = existing(c, Some(&key)).await?;
    Ok(step.settle(&live))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_dimensions() {
        assert_eq!(resource_id("orders", None), "table/orders");
        assert_eq!(
            resource_id("orders", Some("by-user")),
            "table/orders/index/by-user"
        );
        assert_eq!(
            scalable_dimension(true, Dimension::Write),
            "dynamodb:index:WriteCapacityUnits"
        );
        assert_eq!(
            ScalableDimension::from(scalable_dimension(false, Dimension::Read)),
            ScalableDimension::DynamoDbTableReadCapacityUnits
        );
    }

    #[test]
    fn datapoints_land_on_their_minutes_and_five_minute_ones_spread() {
        let grid = per_minute(&[(60, 6.0), (180, 3.0), (600, 50.0)], 0, 20, 60);
        assert_eq!(grid[1], 6.0);
        assert_eq!(grid[3], 3.0);
        assert_eq!(grid[10], 50.0);
        let grid = per_minute(&[(0, 50.0)], 0, 10, 300);
        assert_eq!(&grid[..6], &[10.0, 10.0, 10.0, 10.0, 10.0, 0.0]);
    }
}
