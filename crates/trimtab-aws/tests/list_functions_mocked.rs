//! ListFunctions paging (moto answers in one page), driven through the SDK's mock interceptor.

use aws_sdk_lambda::Client;
use aws_sdk_lambda::operation::list_functions::ListFunctionsOutput;
use aws_sdk_lambda::types::{Architecture, EphemeralStorage, FunctionConfiguration};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use trimtab_aws::Clients;
use trimtab_aws::inventory::{FunctionFilter, list_functions};

fn page(names: &[&str], next: Option<&str>) -> ListFunctionsOutput {
    let functions = names
        .iter()
        .map(|n| {
            FunctionConfiguration::builder()
                .function_name(*n)
                .function_arn(format!(
                    "arn:aws:lambda:us-east-1:123456789012:function:{n}"
                ))
                .memory_size(1769)
                .timeout(60)
                .architectures(Architecture::Arm64)
                .ephemeral_storage(
                    EphemeralStorage::builder()
                        .size(2048)
                        .build()
                        .expect("size set"),
                )
                .build()
        })
        .collect();
    ListFunctionsOutput::builder()
        .set_functions(Some(functions))
        .set_next_marker(next.map(Into::into))
        .build()
}

#[tokio::test]
async fn every_page_is_read_and_the_prefix_applied() {
    let first = mock!(Client::list_functions)
        .match_requests(|r| r.marker().is_none())
        .then_output(|| page(&["app-a", "other-b"], Some("m2")));
    let second = mock!(Client::list_functions)
        .match_requests(|r| r.marker() == Some("m2"))
        .then_output(|| page(&["app-c"], None));
    let lambda = mock_client!(aws_sdk_lambda, RuleMode::MatchAny, &[&first, &second]);
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build();
    let clients = Clients::new(&sdk).with_lambda(lambda);
    let filter = FunctionFilter {
        name_prefix: Some("app-".into()),
        ..FunctionFilter::default()
    };
    let (listed, calls) = trimtab_aws::counted(list_functions(&clients, &filter)).await;
    let functions = listed.expect("listed");
    let names: Vec<&str> = functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["app-a", "app-c"]);
    assert_eq!(functions[0].memory_mb, 1769);
    assert_eq!(functions[0].ephemeral_storage_mb, 2048);
    assert_eq!(
        functions[0].architecture,
        trimtab_core::pricing::Architecture::Arm64
    );
    assert_eq!(calls.get("lambda:ListFunctions"), Some(&2));
}
