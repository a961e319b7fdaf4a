//! The writes apply mode makes, and the live reads that settle them: function memory and timeout
//! (conditional on the `RevisionId` read just before), the wait for Lambda's asynchronous update,
//! and provisioned concurrency on an alias with its Application Auto Scaling target, policy and
//! scheduled actions. Only ever called in apply mode, after the guards and after the record is
//! written; docs/aws-behaviour.md lists the AWS behaviours these rely on.

use std::time::Duration;

use aws_sdk_applicationautoscaling::types::{
    MetricType, PolicyType, PredefinedMetricSpecification, ScalableDimension, ServiceNamespace,
    TargetTrackingScalingPolicyConfiguration,
};
use aws_sdk_lambda::client::Waiters;
use aws_sdk_lambda::types::{LastUpdateStatus, ProvisionedConcurrencyStatusEnum};
use aws_smithy_runtime_api::client::waiters::error::WaiterError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use trimtab_core::actuation::{AllocationStatus, LiveFunction, ProvisionedLive, UpdateStatus};
use trimtab_core::concurrency::ProvisionedAdvice;
use trimtab_core::records::FunctionSettings;

use crate::{AwsError, Clients, ErrorKind};

/// Name of the target-tracking policy Trimtab puts on an alias.
pub const PROVISIONED_POLICY: &str = "trimtab-provisioned-utilization";

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// Reads a function's configuration now: settings, `LastUpdateStatus`, `RevisionId`.
/// `Ok(None)` when the function does not exist (any more).
pub async fn read_function(c: &Clients, function: &str) -> Result<Option<LiveFunction>, AwsError> {
    let out = match c
        .lambda
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => {
            let e = AwsError::new("lambda:GetFunctionConfiguration", function, e);
            return if e.is(ErrorKind::NotFound) {
                Ok(None)
            } else {
                Err(e)
            };
        }
    };
    let update = match out.last_update_status() {
        Some(LastUpdateStatus::Successful) => UpdateStatus::Successful,
        Some(LastUpdateStatus::InProgress) => UpdateStatus::InProgress,
        Some(LastUpdateStatus::Failed) => UpdateStatus::Failed(
            out.last_update_status_reason()
                .unwrap_or("no reason given")
                .to_owned(),
        ),
        _ => UpdateStatus::Unknown,
    };
    Ok(Some(LiveFunction {
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
        update,
        revision_id: out.revision_id().map(ToOwned::to_owned),
    }))
}

/// Starts an update of `$LATEST`'s memory (and timeout, where given), only if the function is
/// still at `revision_id` (412 `PreconditionFailedException` otherwise). Lambda applies it
/// asynchronously: see [`wait_for_update`].
pub async fn update_function(
    c: &Clients,
    function: &str,
    (memory_mb, timeout_s): (u32, Option<u32>),
    revision_id: Option<&str>,
) -> Result<(), AwsError> {
    c.lambda
        .update_function_configuration()
        .function_name(function)
        .memory_size(to_i32(memory_mb))
        .set_timeout(timeout_s.map(to_i32))
        .set_revision_id(revision_id.map(ToOwned::to_owned))
        .send()
        .await
        .map_err(|e| AwsError::new("lambda:UpdateFunctionConfiguration", function, e))?;
    Ok(())
}

/// Waits (the SDK's `FunctionUpdated` waiter: `GetFunctionConfiguration`, backing off from 5 s)
/// until the function's last update is no longer in progress, or `max_wait` has passed. The
/// caller reads the outcome afresh with [`read_function`]: the `RevisionId` can change again
/// when the update completes. (The V2 waiter polls faster but needs `lambda:GetFunction`, which
/// also hands out every function's code: not worth a few seconds.)
pub async fn wait_for_update(
    c: &Clients,
    function: &str,
    max_wait: Duration,
) -> Result<(), AwsError> {
    let waited = c
        .lambda
        .wait_until_function_updated()
        .function_name(function)
        .wait(max_wait)
        .await;
    match waited {
        Ok(_) | Err(WaiterError::FailureState(_)) | Err(WaiterError::ExceededMaxWait(_)) => Ok(()),
        Err(e) => Err(waiter_error(
            "lambda:GetFunctionConfiguration",
            function,
            &e,
        )),
    }
}

fn waiter_error<O, E: ProvideErrorMetadata>(
    operation: &'static str,
    resource: &str,
    e: &WaiterError<O, E>,
) -> AwsError {
    let code = e.code().map(ToOwned::to_owned);
    AwsError {
        operation,
        resource: resource.to_owned(),
        message: match (e.code(), e.message()) {
            (Some(code), Some(m)) => format!("{code}: {m}"),
            _ => e.to_string(),
        },
        kind: match code.as_deref() {
            Some(c) => crate::classify(Some(c), None),
            None => ErrorKind::NoAnswer,
        },
        code,
    }
}

/// Reserved concurrency, `None` when the function has none.
pub async fn reserved_concurrency(c: &Clients, function: &str) -> Result<Option<u32>, AwsError> {
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

/// The Application Auto Scaling resource id of an alias.
pub fn alias_resource_id(function: &str, alias: &str) -> String {
    format!("function:{function}:{alias}")
}

/// What the alias carries now: its provisioned-concurrency configuration, the scalable target,
/// Trimtab's target-tracking policy and scheduled actions, and anyone else's. `Ok(None)` when
/// the alias (or the function) no longer exists.
pub async fn provisioned_live(
    c: &Clients,
    function: &str,
    alias: &str,
) -> Result<Option<ProvisionedLive>, AwsError> {
    let qualified = format!("{function}:{alias}");
    let config = match c
        .lambda
        .get_provisioned_concurrency_config()
        .function_name(function)
        .qualifier(alias)
        .send()
        .await
    {
        Ok(out) => {
            let status = match out.status() {
                Some(ProvisionedConcurrencyStatusEnum::Ready) => AllocationStatus::Ready,
                Some(ProvisionedConcurrencyStatusEnum::Failed) => AllocationStatus::Failed,
                _ => AllocationStatus::InProgress,
            };
            let requested = out
                .requested_provisioned_concurrent_executions()
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0);
            Some((requested, status))
        }
        Err(e) => {
            let e = AwsError::new("lambda:GetProvisionedConcurrencyConfig", &qualified, e);
            // Two 404s: no configuration (fine), or no such alias or function (gone).
            match e.code.as_deref() {
                Some("ProvisionedConcurrencyConfigNotFoundException") => None,
                _ if e.is(ErrorKind::NotFound) => return Ok(None),
                _ => return Err(e),
            }
        }
    };
    let resource_id = alias_resource_id(function, alias);
    let dimension = ScalableDimension::LambdaFunctionProvisionedConcurrency;
    let targets = c
        .autoscaling
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Lambda)
        .resource_ids(&resource_id)
        .scalable_dimension(dimension.clone())
        .send()
        .await
        .map_err(|e| {
            AwsError::new(
                "application-autoscaling:DescribeScalableTargets",
                &resource_id,
                e,
            )
        })?;
    let target = targets.scalable_targets().first().map(|t| {
        (
            u32::try_from(t.min_capacity()).unwrap_or(0),
            u32::try_from(t.max_capacity()).unwrap_or(0),
        )
    });
    let policies: Vec<_> = c
        .autoscaling
        .describe_scaling_policies()
        .service_namespace(ServiceNamespace::Lambda)
        .resource_id(&resource_id)
        .scalable_dimension(dimension.clone())
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| {
            AwsError::new(
                "application-autoscaling:DescribeScalingPolicies",
                &resource_id,
                e,
            )
        })?;
    let scheduled: Vec<_> = c
        .autoscaling
        .describe_scheduled_actions()
        .service_namespace(ServiceNamespace::Lambda)
        .resource_id(&resource_id)
        .scalable_dimension(dimension)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| {
            AwsError::new(
                "application-autoscaling:DescribeScheduledActions",
                &resource_id,
                e,
            )
        })?;
    let ours = |name: &str| name.starts_with("trimtab-");
    let policy_target_fraction = policies
        .iter()
        .find(|p| p.policy_name() == PROVISIONED_POLICY)
        .and_then(|p| p.target_tracking_scaling_policy_configuration())
        .map(|t| t.target_value());
    let foreign = policies
        .iter()
        .map(|p| p.policy_name())
        .chain(scheduled.iter().map(|a| a.scheduled_action_name()))
        .filter(|n| !ours(n))
        .map(ToOwned::to_owned)
        .collect();
    Ok(Some(ProvisionedLive {
        config,
        target,
        policy_target_fraction,
        scheduled: scheduled
            .iter()
            .filter(|a| ours(a.scheduled_action_name()))
            .count(),
        scheduled_ranges: scheduled
            .iter()
            .filter(|a| ours(a.scheduled_action_name()))
            .filter_map(|a| {
                let r = a.scalable_target_action()?;
                let count = |n: Option<i32>| u32::try_from(n?).ok();
                Some((count(r.min_capacity())?, count(r.max_capacity())?))
            })
            .collect(),
        foreign,
    }))
}

/// One call of a provisioned-concurrency change, in the order they are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvisionStep {
    /// `PutProvisionedConcurrencyConfig` at the minimum.
    Config,
    /// `RegisterScalableTarget` with the range.
    Target,
    /// `PutScalingPolicy`: target tracking on `LambdaProvisionedConcurrencyUtilization`.
    Policy,
    /// `PutScheduledAction` number `n` of the advice's schedule.
    Schedule(usize),
}

impl ProvisionStep {
    /// Every step of `advice`, in order.
    pub fn all(advice: &ProvisionedAdvice) -> Vec<Self> {
        let mut steps = vec![Self::Config, Self::Target, Self::Policy];
        steps.extend((0..advice.schedule.len()).map(Self::Schedule));
        steps
    }

    pub fn name(self) -> String {
        match self {
            Self::Config => "lambda:PutProvisionedConcurrencyConfig".to_owned(),
            Self::Target => "application-autoscaling:RegisterScalableTarget".to_owned(),
            Self::Policy => "application-autoscaling:PutScalingPolicy".to_owned(),
            Self::Schedule(n) => format!("application-autoscaling:PutScheduledAction #{n}"),
        }
    }
}

/// Makes one step of provisioning `advice` on `function:alias`. A scalable target AWS has only
/// just registered may not be visible yet ("a brief delay until the operation achieves eventual
/// consistency ... retry the request"), and a pending update answers `ConcurrentUpdateException`
/// (which the SDK does not retry): those are tried again a few times, backing off.
pub async fn provision_step(
    c: &Clients,
    function: &str,
    alias: &str,
    advice: &ProvisionedAdvice,
    step: ProvisionStep,
) -> Result<(), AwsError> {
    let mut delay = Duration::from_millis(500);
    for attempt in 0.. {
        match provision_step_once(c, function, alias, advice, step).await {
            Err(e) if attempt < 3 && step != ProvisionStep::Config && not_yet_consistent(&e) => {
                tracing::info!(error = %e, "scalable target not consistent yet; trying again");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
    Ok(())
}

fn not_yet_consistent(e: &AwsError) -> bool {
    e.is(ErrorKind::Conflict)
        || e.is(ErrorKind::NotFound)
        || (e.code.as_deref() == Some("ValidationException")
            && e.message.contains("No scalable target"))
}

async fn provision_step_once(
    c: &Clients,
    function: &str,
    alias: &str,
    advice: &ProvisionedAdvice,
    step: ProvisionStep,
) -> Result<(), AwsError> {
    let resource_id = alias_resource_id(function, alias);
    let dimension = ScalableDimension::LambdaFunctionProvisionedConcurrency;
    match step {
        ProvisionStep::Config => {
            c.lambda
                .put_provisioned_concurrency_config()
                .function_name(function)
                .qualifier(alias)
                .provisioned_concurrent_executions(to_i32(advice.min_capacity))
                .send()
                .await
                .map_err(|e| {
                    AwsError::new(
                        "lambda:PutProvisionedConcurrencyConfig",
                        format!("{function}:{alias}"),
                        e,
                    )
                })?;
        }
        ProvisionStep::Target => {
            c.autoscaling
                .register_scalable_target()
                .service_namespace(ServiceNamespace::Lambda)
                .resource_id(&resource_id)
                .scalable_dimension(dimension)
                .min_capacity(to_i32(advice.min_capacity))
                .max_capacity(to_i32(advice.max_capacity))
                .send()
                .await
                .map_err(|e| {
                    AwsError::new(
                        "application-autoscaling:RegisterScalableTarget",
                        &resource_id,
                        e,
                    )
                })?;
        }
        ProvisionStep::Policy => {
            let op = "application-autoscaling:PutScalingPolicy";
            let build = |e: aws_sdk_applicationautoscaling::error::BuildError| {
                AwsError::invalid(op, &resource_id, e.to_string())
            };
            let tracking = TargetTrackingScalingPolicyConfiguration::builder()
                .target_value(advice.target_utilization_fraction)
                .predefined_metric_specification(
                    PredefinedMetricSpecification::builder()
                        .predefined_metric_type(MetricType::LambdaProvisionedConcurrencyUtilization)
                        .build()
                        .map_err(build)?,
                )
                .build()
                .map_err(build)?;
            c.autoscaling
                .put_scaling_policy()
                .policy_name(PROVISIONED_POLICY)
                .service_namespace(ServiceNamespace::Lambda)
                .resource_id(&resource_id)
                .scalable_dimension(dimension)
                .policy_type(PolicyType::TargetTrackingScaling)
                .target_tracking_scaling_policy_configuration(tracking)
                .send()
                .await
                .map_err(|e| AwsError::new(op, &resource_id, e))?;
        }
        ProvisionStep::Schedule(n) => {
            if let Some(action) = advice.schedule.get(n) {
                crate::dynamodb::put_scheduled_action(c, &resource_id, dimension.as_str(), action)
                    .await?;
            }
        }
    }
    Ok(())
}

/// Removes provisioned concurrency from `function:alias`: the scalable target (with its
/// policies and scheduled actions, which Application Auto Scaling deletes with it) and the
/// configuration. Parts already gone are fine, and one part failing does not keep the other:
/// this also cleans up after a half-made change.
pub async fn unprovision(c: &Clients, function: &str, alias: &str) -> Result<(), AwsError> {
    let resource_id = alias_resource_id(function, alias);
    let deregistered = c
        .autoscaling
        .deregister_scalable_target()
        .service_namespace(ServiceNamespace::Lambda)
        .resource_id(&resource_id)
        .scalable_dimension(ScalableDimension::LambdaFunctionProvisionedConcurrency)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            AwsError::new(
                "application-autoscaling:DeregisterScalableTarget",
                &resource_id,
                e,
            )
        });
    let deleted = c
        .lambda
        .delete_provisioned_concurrency_config()
        .function_name(function)
        .qualifier(alias)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| AwsError::new("lambda:DeleteProvisionedConcurrencyConfig", &resource_id, e));
    for result in [deregistered, deleted] {
        if let Err(e) = result
            && !e.is(ErrorKind::NotFound)
        {
            return Err(e);
        }
    }
    Ok(())
}

/// The version an alias routes to (`$LATEST` or a published version); `Ok(None)` when the alias
/// does not exist.
pub async fn alias_version(
    c: &Clients,
    function: &str,
    alias: &str,
) -> Result<Option<String>, AwsError> {
    Ok(crate::canary::read_alias(c, function, alias)
        .await?
        .map(|a| a.version))
}
