//! Starting a run in another function: Lambda's asynchronous invoke (`InvocationType: Event`,
//! HTTP 202). Lambda queues the event and answers at once; the function's retry and failure
//! destination settings say what happens if it fails.

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;

use crate::{AwsError, Clients};

/// Queues `payload` for `function` and returns once Lambda has accepted it.
pub async fn invoke_async(
    c: &Clients,
    function: &str,
    payload: &serde_json::Value,
) -> Result<(), AwsError> {
    c.lambda
        .invoke()
        .function_name(function)
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(payload.to_string()))
        .send()
        .await
        .map_err(|e| AwsError::new("lambda:InvokeFunction", function, e))?;
    Ok(())
}
