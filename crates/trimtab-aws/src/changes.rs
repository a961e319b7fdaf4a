//! The writes right-sizing may make: function memory and timeout, and provisioned concurrency
//! through Application Auto Scaling. Only ever called in apply mode, after the guards and after
//! the decision record is written.

use aws_sdk_applicationautoscaling::types::{
    MetricType, PolicyType, PredefinedMetricSpecification, ScalableDimension, ScalableTargetAction,
    ServiceNamespace, TargetTrackingScalingPolicyConfiguration,
};
use trimtab_core::apply::FunctionSettings;
use trimtab_core::concurrency::ProvisionedAdvice;

use crate::{AwsError, Clients};

/// Live configuration of one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveConfig {
    pub settings: FunctionSettings,
    pub last_update_status: Option<String>,
}

pub async fn get_configuration(c: &Clients, function: &str) -> Result<LiveConfig, AwsError> {
    c.record("lambda:GetFunctionConfiguration");
    let out = c
        .lambda
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
        .map_err(|e| AwsError::new("lambda:GetFunctionConfiguration", function, e))?;
    Ok(LiveConfig {
        settings: FunctionSettings {
            memory_mb: out
                .memory_size()
                .and_then(|m| u32::try_from(m).ok())
                .unwrap_or(128),
            timeout_s: out
                .timeout()
                .and_then(|t| u32::try_from(t).ok())
                .unwrap_or(3),
        },
        last_update_status: out.last_update_status().map(|s| s.as_str().to_owned()),
    })
}

pub async fn set_configuration(
    c: &Clients,
    function: &str,
    to: FunctionSettings,
) -> Result<(), AwsError> {
    c.record("lambda:UpdateFunctionConfiguration");
    c.lambda
        .update_function_configuration()
        .function_name(function)
        .memory_size(i32::try_from(to.memory_mb).unwrap_or(i32::MAX))
        .timeout(i32::try_from(to.timeout_s).unwrap_or(i32::MAX))
        .send()
        .await
        .map_err(|e| AwsError::new("lambda:UpdateFunctionConfiguration", function, e))?;
    Ok(())
}

/// Reserved concurrency, `None` when the function has none.
pub async fn reserved_concurrency(c: &Clients, function: &str) -> Result<Option<u32>, AwsError> {
    c.record("lambda:GetFunctionConcurrency");
    let out = c
        .lambda
        .get_function_concurrency()
        .function_name(function)
        .send()
        .await
        .map_err(|e| AwsError::new("lambda:GetFunctionConcurrency", function, e))?;
    Ok(out
        .reserved_concurrent_executions()
        .and_then(|n| u32::try_from(n).ok()))
}

/// Provisions concurrency on `function:alias` and hands it to Application Auto Scaling: the
/// minimum is provisioned now, a scalable target holds the range, a target-tracking policy on
/// `LambdaProvisionedConcurrencyUtilization` moves within it, and business-hours scheduled
/// actions move the range where the load is periodic.
pub async fn provision(
    c: &Clients,
    function: &str,
    alias: &str,
    advice: &ProvisionedAdvice,
) -> Result<(), AwsError> {
    let qualified = format!("{function}:{alias}");
    c.record("lambda:PutProvisionedConcurrencyConfig");
    c.lambda
        .put_provisioned_concurrency_config()
        .function_name(function)
        .qualifier(alias)
        .provisioned_concurrent_executions(i32::try_from(advice.min_capacity).unwrap_or(i32::MAX))
        .send()
        .await
        .map_err(|e| AwsError::new("lambda:PutProvisionedConcurrencyConfig", &qualified, e))?;

    let resource_id = format!("function:{qualified}");
    let op = "application-autoscaling:RegisterScalableTarget";
    c.record(op);
    c.autoscaling
        .register_scalable_target()
        .service_namespace(ServiceNamespace::Lambda)
        .resource_id(&resource_id)
        .scalable_dimension(ScalableDimension::LambdaFunctionProvisionedConcurrency)
        .min_capacity(i32::try_from(advice.min_capacity).unwrap_or(i32::MAX))
        .max_capacity(i32::try_from(advice.max_capacity).unwrap_or(i32::MAX))
        .send()
        .await
        .map_err(|e| AwsError::new(op, &resource_id, e))?;

    let op = "application-autoscaling:PutScalingPolicy";
    c.record(op);
    let tracking = TargetTrackingScalingPolicyConfiguration::builder()
        .target_value(advice.target_utilization)
        .predefined_metric_specification(
            PredefinedMetricSpecification::builder()
                .predefined_metric_type(MetricType::LambdaProvisionedConcurrencyUtilization)
                .build()
                .map_err(|e| AwsError {
                    operation: op,
                    resource: resource_id.clone(),
                    message: e.to_string(),
                })?,
        )
        .build()
        .map_err(|e| AwsError {
            operation: op,
            resource: resource_id.clone(),
            message: e.to_string(),
        })?;
    c.autoscaling
        .put_scaling_policy()
        .policy_name("trimtab-provisioned-utilization")
        .service_namespace(ServiceNamespace::Lambda)
        .resource_id(&resource_id)
        .scalable_dimension(ScalableDimension::LambdaFunctionProvisionedConcurrency)
        .policy_type(PolicyType::TargetTrackingScaling)
        .target_tracking_scaling_policy_configuration(tracking)
        .send()
        .await
        .map_err(|e| AwsError::new(op, &resource_id, e))?;

    for action in &advice.schedule {
        let op = "application-autoscaling:PutScheduledAction";
        c.record(op);
        c.autoscaling
            .put_scheduled_action()
            .service_namespace(ServiceNamespace::Lambda)
            .scheduled_action_name(format!("trimtab-{}", action.name))
            .resource_id(&resource_id)
            .scalable_dimension(ScalableDimension::LambdaFunctionProvisionedConcurrency)
            .schedule(&action.schedule)
            .scalable_target_action(
                ScalableTargetAction::builder()
                    .min_capacity(i32::try_from(action.min_capacity).unwrap_or(i32::MAX))
                    .max_capacity(i32::try_from(action.max_capacity).unwrap_or(i32::MAX))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| AwsError::new(op, &resource_id, e))?;
    }
    Ok(())
}

/// Undoes [`provision`]: the scalable target (with its policy and scheduled actions) is
/// deregistered and the alias's provisioned concurrency deleted.
pub async fn unprovision(c: &Clients, function: &str, alias: &str) -> Result<(), AwsError> {
    let resource_id = format!("function:{function}:{alias}");
    let op = "application-autoscaling:DeregisterScalableTarget";
    c.record(op);
    c.autoscaling
        .deregister_scalable_target()
        .service_namespace(ServiceNamespace::Lambda)
        .resource_id(&resource_id)
        .scalable_dimension(ScalableDimension::LambdaFunctionProvisionedConcurrency)
        .send()
        .await
        .map_err(|e| AwsError::new(op, &resource_id, e))?;
    c.record("lambda:DeleteProvisionedConcurrencyConfig");
    c.lambda
        .delete_provisioned_concurrency_config()
        .function_name(function)
        .qualifier(alias)
        .send()
        .await
        .map_err(|e| AwsError::new("lambda:DeleteProvisionedConcurrencyConfig", &resource_id, e))?;
    Ok(())
}
