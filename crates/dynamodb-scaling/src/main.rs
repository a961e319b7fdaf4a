//! `DynamoDBScalingFunction`: EventBridge schedule or direct invoke in, scaling report out.

use dynamodb_scaling::{JobConfig, handle};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    trimtab_lambda::serve_job(|_| Ok(JobConfig::from_env()), handle).await
}
