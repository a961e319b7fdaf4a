//! Provisioned concurrency through Application Auto Scaling: moto lacks
//! `PutProvisionedConcurrencyConfig`, so these paths run on the SDK's mock interceptor, with
//! responses shaped like AWS's.

use aws_sdk_applicationautoscaling::operation::put_scaling_policy::PutScalingPolicyOutput;
use aws_sdk_applicationautoscaling::operation::put_scheduled_action::PutScheduledActionOutput;
use aws_sdk_applicationautoscaling::operation::register_scalable_target::RegisterScalableTargetOutput;
use aws_sdk_applicationautoscaling::types::{MetricType, ScalableDimension, ServiceNamespace};
use aws_sdk_lambda::config::retry::RetryConfig;
use aws_sdk_lambda::operation::put_provisioned_concurrency_config::PutProvisionedConcurrencyConfigOutput;
use aws_sdk_lambda::types::ProvisionedConcurrencyStatusEnum;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use trimtab_aws::Clients;
use trimtab_aws::changes::{ProvisionStep, provision_step};
use trimtab_core::concurrency::ProvisionedAdvice;
use trimtab_core::scaling_plan::ScheduledAction;

fn advice() -> ProvisionedAdvice {
    ProvisionedAdvice {
        min_capacity: 5,
        max_capacity: 40,
        target_utilization_fraction: 0.7,
        on_demand_monthly_usd: 300.0,
        provisioned_monthly_usd: 260.0,
        schedule: vec![ScheduledAction {
            name: "trimtab-weekdays-0847".into(),
            schedule: "cron(47 8 ? * MON-FRI *)".into(),
            timezone: "UTC".into(),
            min_capacity: 20.0,
            max_capacity: 40.0,
        }],
        reason: "pays".into(),
    }
}

fn sdk() -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build()
}

#[tokio::test]
async fn provisioning_sets_the_minimum_registers_the_range_and_tracks_utilisation() {
    let put_pc = mock!(aws_sdk_lambda::Client::put_provisioned_concurrency_config)
        .match_requests(|r| {
            r.function_name() == Some("checkout")
                && r.qualifier() == Some("live")
                && r.provisioned_concurrent_executions() == Some(5)
        })
        .then_output(|| {
            PutProvisionedConcurrencyConfigOutput::builder()
                .requested_provisioned_concurrent_executions(5)
                .status(ProvisionedConcurrencyStatusEnum::InProgress)
                .build()
        });
    let register = mock!(aws_sdk_applicationautoscaling::Client::register_scalable_target)
        .match_requests(|r| {
            r.service_namespace() == Some(&ServiceNamespace::Lambda)
                && r.resource_id() == Some("function:checkout:live")
                && r.scalable_dimension()
                    == Some(&ScalableDimension::LambdaFunctionProvisionedConcurrency)
                && r.min_capacity() == Some(5)
                && r.max_capacity() == Some(40)
        })
        .then_output(|| RegisterScalableTargetOutput::builder().build());
    let policy = mock!(aws_sdk_applicationautoscaling::Client::put_scaling_policy)
        .match_requests(|r| {
            let tt = r.target_tracking_scaling_policy_configuration();
            tt.map(|t| t.target_value()) == Some(0.7)
                && tt
                    .and_then(|t| t.predefined_metric_specification())
                    .map(|p| p.predefined_metric_type().clone())
                    == Some(MetricType::LambdaProvisionedConcurrencyUtilization)
        })
        .then_output(|| {
            PutScalingPolicyOutput::builder()
                .policy_arn("arn:aws:autoscaling:policy")
                .build()
                .expect("arn set")
        });
    let scheduled = mock!(aws_sdk_applicationautoscaling::Client::put_scheduled_action)
        .match_requests(|r| {
            r.schedule() == Some("cron(47 8 ? * MON-FRI *)")
                && r.scheduled_action_name() == Some("trimtab-weekdays-0847")
                && r.timezone() == Some("UTC")
                && r.service_namespace() == Some(&ServiceNamespace::Lambda)
                && r.scalable_target_action()
                    .is_some_and(|a| (a.min_capacity(), a.max_capacity()) == (Some(20), Some(40)))
        })
        .then_output(|| PutScheduledActionOutput::builder().build());
    let lambda = mock_client!(aws_sdk_lambda, RuleMode::MatchAny, &[&put_pc]);
    let aas = mock_client!(
        aws_sdk_applicationautoscaling,
        RuleMode::MatchAny,
        &[&register, &policy, &scheduled]
    );
    let clients = Clients::new(&sdk())
        .with_lambda(lambda)
        .with_autoscaling(aas);
    let steps = ProvisionStep::all(&advice());
    assert_eq!(steps.len(), 4);
    for step in steps {
        provision_step(&clients, "checkout", "live", &advice(), step)
            .await
            .expect("provisioned");
    }
    assert_eq!(put_pc.num_calls(), 1);
    assert_eq!(register.num_calls(), 1);
    assert_eq!(policy.num_calls(), 1);
    assert_eq!(scheduled.num_calls(), 1);
}

#[tokio::test]
async fn a_backend_without_provisioned_concurrency_fails_with_a_clear_reason() {
    let refused = mock!(aws_sdk_lambda::Client::put_provisioned_concurrency_config)
        .sequence()
        .http_status(404, Some("<html>Not Found</html>".into()))
        .build();
    let lambda = mock_client!(aws_sdk_lambda, RuleMode::Sequential, &[&refused], |c| {
        c.retry_config(RetryConfig::disabled())
    });
    let clients = Clients::new(&sdk()).with_lambda(lambda);
    let err = provision_step(
        &clients,
        "checkout",
        "live",
        &advice(),
        ProvisionStep::Config,
    )
    .await
    .expect_err("refused");
    assert_eq!(err.operation, "lambda:PutProvisionedConcurrencyConfig");
    assert_eq!(err.resource, "checkout:live");
    assert!(err.message.contains("404"), "{}", err.message);
    assert_eq!(err.kind, trimtab_aws::ErrorKind::NotFound);
}
