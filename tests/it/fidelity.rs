//! The AWS fidelity layer itself: one test per behaviour docs/aws-behaviour.md lists, each
//! checked through the SDK the way production code sees it.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_lambda::types::{LastUpdateStatus, ProvisionedConcurrencyStatusEnum};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use trimtab_aws::Clients;
use trimtab_tests::fidelity::{Fault, FaultKind};
use trimtab_tests::moto::Moto;
use trimtab_tests::seed::{Seeder, Workload, create_decision_table};

async fn with_function(name: &str) -> (Moto, SdkConfig) {
    let moto = Moto::start().expect("moto");
    let sdk = moto.sdk_config().await;
    let seeder = Seeder::new(&sdk).await.expect("seeder");
    seeder
        .create_function(&Workload::new(name, 1024))
        .await
        .expect("function");
    (moto, sdk)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_functions_omits_state_and_last_update_status() {
    let (_moto, sdk) = with_function("listed").await;
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let listed = lambda.list_functions().send().await.expect("list");
    let f = &listed.functions()[0];
    assert_eq!(f.last_update_status(), None);
    assert_eq!(f.state(), None);
    assert!(f.revision_id().is_some());
    let got = lambda
        .get_function_configuration()
        .function_name("listed")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.last_update_status(),
        Some(&LastUpdateStatus::Successful)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_stays_in_progress_a_second_conflicts_and_a_stale_revision_is_refused() {
    let (moto, sdk) = with_function("updated").await;
    moto.fidelity
        .set_update_duration(Duration::from_millis(1500));
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let read = || async {
        lambda
            .get_function_configuration()
            .function_name("updated")
            .send()
            .await
            .expect("get")
    };
    let r1 = read().await.revision_id().map(ToOwned::to_owned);
    let sent = lambda
        .update_function_configuration()
        .function_name("updated")
        .memory_size(512)
        .set_revision_id(r1.clone())
        .send()
        .await
        .expect("update");
    assert_eq!(
        sent.last_update_status(),
        Some(&LastUpdateStatus::InProgress)
    );
    let during = read().await;
    assert_eq!(
        during.last_update_status(),
        Some(&LastUpdateStatus::InProgress)
    );
    let conflict = lambda
        .update_function_configuration()
        .function_name("updated")
        .timeout(10)
        .send()
        .await
        .expect_err("in progress");
    assert_eq!(conflict.code(), Some("ResourceConflictException"));
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let after = read().await;
    assert_eq!(
        after.last_update_status(),
        Some(&LastUpdateStatus::Successful)
    );
    // The revision moved with the update, and again when it completed.
    assert_ne!(after.revision_id(), sent.revision_id());
    assert_ne!(after.revision_id().map(ToOwned::to_owned), r1);
    let stale = lambda
        .update_function_configuration()
        .function_name("updated")
        .timeout(10)
        .set_revision_id(r1)
        .send()
        .await
        .expect_err("stale revision");
    assert_eq!(stale.code(), Some("PreconditionFailedException"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioned_concurrency_is_allocated_later_and_needs_a_published_alias() {
    let (moto, sdk) = with_function("warm").await;
    moto.fidelity
        .set_allocation_duration(Duration::from_millis(800));
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let latest = lambda
        .put_provisioned_concurrency_config()
        .function_name("warm")
        .qualifier("$LATEST")
        .provisioned_concurrent_executions(2)
        .send()
        .await
        .expect_err("unpublished");
    assert_eq!(latest.code(), Some("InvalidParameterValueException"));
    let missing = lambda
        .get_provisioned_concurrency_config()
        .function_name("warm")
        .qualifier("live")
        .send()
        .await
        .expect_err("none yet");
    assert_eq!(
        missing.code(),
        Some("ProvisionedConcurrencyConfigNotFoundException")
    );
    let v = lambda
        .publish_version()
        .function_name("warm")
        .send()
        .await
        .expect("version");
    lambda
        .create_alias()
        .function_name("warm")
        .name("live")
        .function_version(v.version().unwrap_or("1"))
        .send()
        .await
        .expect("alias");
    let put = lambda
        .put_provisioned_concurrency_config()
        .function_name("warm")
        .qualifier("live")
        .provisioned_concurrent_executions(2)
        .send()
        .await
        .expect("put");
    assert_eq!(
        put.status(),
        Some(&ProvisionedConcurrencyStatusEnum::InProgress)
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    let got = lambda
        .get_provisioned_concurrency_config()
        .function_name("warm")
        .qualifier("live")
        .send()
        .await
        .expect("get");
    assert_eq!(got.status(), Some(&ProvisionedConcurrencyStatusEnum::Ready));
    assert_eq!(got.allocated_provisioned_concurrent_executions(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_in_each_protocol_is_retried_by_the_sdk_and_counted() {
    let (moto, sdk) = with_function("busy").await;
    create_decision_table(&sdk, "throttled")
        .await
        .expect("table");
    for op in [
        "lambda:GetFunctionConfiguration",
        "dynamodb:GetItem",
        "cloudwatch:GetMetricData",
    ] {
        moto.fidelity.inject(Fault::new(op, FaultKind::Throttle));
    }
    let clients = Clients::new(&sdk);
    let (results, calls) = trimtab_aws::counted(async {
        let lambda = trimtab_aws::changes::read_function(&clients, "busy").await;
        let ddb = clients
            .dynamodb
            .get_item()
            .table_name("throttled")
            .key("pk", AttributeValue::S("x".into()))
            .key("sk", AttributeValue::S("y".into()))
            .send()
            .await
            .map(|_| ());
        let window = trimtab_aws::metrics::Window {
            start_epoch_s: 1_700_000_000,
            end_epoch_s: 1_700_003_600,
        };
        let cw = trimtab_aws::metrics::fetch(
            &clients,
            trimtab_aws::metrics::health_queries(&["busy"], false),
            window,
        )
        .await;
        (lambda.is_ok(), ddb.is_ok(), cw.is_ok())
    })
    .await;
    assert_eq!(results, (true, true, true));
    for op in [
        "lambda:GetFunctionConfiguration",
        "dynamodb:GetItem",
        "cloudwatch:GetMetricData",
    ] {
        assert_eq!(calls.get(op), Some(&2), "{op}: {calls:?}");
        let seen: Vec<u16> = moto.fidelity.seen(op).iter().map(|s| s.status).collect();
        assert_eq!(seen[0], if op.starts_with("lambda") { 429 } else { 400 });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_answer_is_lost_has_still_happened() {
    let (moto, sdk) = with_function("lost").await;
    create_decision_table(&sdk, "lost-answers")
        .await
        .expect("table");
    moto.fidelity
        .inject(Fault::new("dynamodb:PutItem", FaultKind::LoseResponse));
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let put = ddb
        .put_item()
        .table_name("lost-answers")
        .item("pk", AttributeValue::S("a".into()))
        .item("sk", AttributeValue::S("b".into()))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .expect_err("the retry meets its own write");
    assert_eq!(put.code(), Some("ConditionalCheckFailedException"));
    let statuses: Vec<u16> = moto
        .fidelity
        .seen("dynamodb:PutItem")
        .iter()
        .map(|s| s.status)
        .collect();
    assert_eq!(statuses, [0, 400]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_tag_denies_trimtabs_writes() {
    let (_moto, sdk) = with_function("locked").await;
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    lambda
        .tag_resource()
        .resource("arn:aws:lambda:us-east-1:123456789012:function:locked")
        .tags("trimtab:lock", "true")
        .send()
        .await
        .expect("tag");
    let denied = lambda
        .update_function_configuration()
        .function_name("locked")
        .memory_size(512)
        .send()
        .await
        .expect_err("denied");
    assert_eq!(denied.code(), Some("AccessDeniedException"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregistering_a_scalable_target_takes_its_policies_and_a_missing_one_is_not_found() {
    let moto = Moto::start().expect("moto");
    let sdk = moto.sdk_config().await;
    let clients = Clients::new(&sdk);
    let dim = "dynamodb:table:ReadCapacityUnits";
    trimtab_aws::dynamodb::register_target(&clients, "table/t", dim, 1.0, 10.0)
        .await
        .expect("register");
    trimtab_aws::dynamodb::put_policy(
        &clients,
        "table/t",
        dim,
        trimtab_core::capacity::Dimension::Read,
        "p",
        70.0,
    )
    .await
    .expect("policy");
    let aas = aws_sdk_applicationautoscaling::Client::new(&sdk);
    let deregister = || {
        aas.deregister_scalable_target()
            .service_namespace(ServiceNamespace::Dynamodb)
            .resource_id("table/t")
            .scalable_dimension(ScalableDimension::from(dim))
            .send()
    };
    deregister().await.expect("deregistered");
    let policies = aas
        .describe_scaling_policies()
        .service_namespace(ServiceNamespace::Dynamodb)
        .send()
        .await
        .expect("policies");
    assert!(policies.scaling_policies().is_empty());
    let again = deregister().await.expect_err("gone");
    assert_eq!(again.code(), Some("ObjectNotFoundException"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_action_needs_a_registered_target_and_a_missing_one_is_not_found() {
    use trimtab_core::scaling_plan::ScheduledAction;
    let moto = Moto::start().expect("moto");
    let clients = Clients::new(&moto.sdk_config().await);
    let dim = "dynamodb:table:WriteCapacityUnits";
    let action = ScheduledAction {
        name: "trimtab-weekdays-0748".into(),
        schedule: "cron(48 7 ? * MON-FRI *)".into(),
        timezone: "UTC".into(),
        min_capacity: 40.0,
        max_capacity: 100.0,
    };
    let put = trimtab_aws::dynamodb::put_scheduled_action(&clients, "table/s", dim, &action)
        .await
        .expect_err("no target");
    assert!(put.to_string().contains("ObjectNotFoundException"), "{put}");
    trimtab_aws::dynamodb::register_target(&clients, "table/s", dim, 1.0, 100.0)
        .await
        .expect("register");
    trimtab_aws::dynamodb::put_scheduled_action(&clients, "table/s", dim, &action)
        .await
        .expect("put");
    let key = ("table/s".to_owned(), dim.to_owned());
    let live = trimtab_aws::dynamodb::existing(&clients, Some(&key))
        .await
        .expect("read");
    assert_eq!(live.scheduled_action(&key, &action.name), Some(&action));
    let delete =
        || trimtab_aws::dynamodb::delete_scheduled_action(&clients, "table/s", dim, &action.name);
    delete().await.expect("deleted");
    let again = delete().await.expect_err("gone");
    assert!(
        again.to_string().contains("ObjectNotFoundException"),
        "{again}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_alarms_are_listed_only_when_asked_for_and_deleted_one_a_call() {
    use aws_sdk_cloudwatch::types::AlarmType;
    let moto = Moto::start().expect("moto");
    let cw = aws_sdk_cloudwatch::Client::new(&moto.sdk_config().await);
    for name in ["child-long", "child-short"] {
        cw.put_metric_alarm()
            .alarm_name(name)
            .namespace("AWS/Lambda")
            .metric_name("Errors")
            .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
            .period(300)
            .evaluation_periods(1)
            .threshold(1.0)
            .comparison_operator(
                aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanOrEqualToThreshold,
            )
            .send()
            .await
            .expect("child");
    }
    for name in ["page-a", "page-b"] {
        cw.put_composite_alarm()
            .alarm_name(name)
            .alarm_description("pages & more")
            .alarm_rule("ALARM(\"child-long\") AND ALARM(\"child-short\")")
            .alarm_actions("arn:aws:sns:us-east-1:123456789012:alerts")
            .send()
            .await
            .expect("composite");
    }
    let plain = cw.describe_alarms().send().await.expect("describe");
    assert_eq!(plain.metric_alarms().len(), 2);
    assert!(plain.composite_alarms().is_empty());
    let both = cw
        .describe_alarms()
        .alarm_name_prefix("page-")
        .alarm_types(AlarmType::CompositeAlarm)
        .send()
        .await
        .expect("describe");
    let composites = both.composite_alarms();
    assert_eq!(composites.len(), 2);
    assert_eq!(composites[0].alarm_description(), Some("pages & more"));
    assert_eq!(
        composites[0].alarm_actions(),
        ["arn:aws:sns:us-east-1:123456789012:alerts"]
    );
    let err = cw
        .delete_alarms()
        .alarm_names("page-a")
        .alarm_names("page-b")
        .send()
        .await
        .expect_err("two composites in one call");
    assert_eq!(err.code(), Some("ValidationError"));
    cw.delete_alarms()
        .alarm_names("page-a")
        .send()
        .await
        .expect("one composite");
    let left = cw
        .describe_alarms()
        .alarm_types(AlarmType::CompositeAlarm)
        .send()
        .await
        .expect("describe");
    assert_eq!(left.composite_alarms().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_of_more_than_500_widgets_is_refused() {
    let moto = Moto::start().expect("moto");
    let cw = aws_sdk_cloudwatch::Client::new(&moto.sdk_config().await);
    let body = |n: usize| {
        let widget = serde_json::json!({"type": "text", "x": 0, "y": 0, "width": 6, "height": 2,
            "properties": {"markdown": "w"}});
        serde_json::json!({"widgets": vec![widget; n]}).to_string()
    };
    cw.put_dashboard()
        .dashboard_name("fits")
        .dashboard_body(body(500))
        .send()
        .await
        .expect("500 widgets fit");
    let err = cw
        .put_dashboard()
        .dashboard_name("too-big")
        .dashboard_body(body(501))
        .send()
        .await
        .expect_err("501 widgets are refused");
    assert_eq!(
        aws_sdk_cloudwatch::error::ProvideErrorMetadata::code(&err),
        Some("InvalidParameterInput")
    );
}
