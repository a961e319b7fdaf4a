//! `DynamoDBScalingFunction`: EventBridge schedule or direct invoke in, scaling report out.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    trimtab_lambda::serve_job::<dynamodb_scaling::DynamoDbScaling>().await
}
