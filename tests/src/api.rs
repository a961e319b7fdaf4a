//! API Gateway HTTP API (payload v2) requests, as API Gateway sends them to the function.

use serde_json::{Value, json};

/// A request; `caller` is the IAM identity (user ARN) when the request was signed.
pub fn request(
    method: &str,
    path: &str,
    query: &str,
    body: Option<&str>,
    caller: Option<&str>,
) -> Value {
    let mut context = json!({
        "accountId": "123456789012", "apiId": "trimtab", "domainName": "trimtab.example", "domainPrefix": "trimtab",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "tests"},
        "requestId": "req-1", "routeKey": "$default", "stage": "$default",
        "time": "24/Nov/2026:10:00:00 +0000", "timeEpoch": 1795000000000_i64
    });
    if let Some(arn) = caller {
        context["authorizer"] = json!({"iam": {
            "accessKey": "AKIAEXAMPLE", "accountId": "123456789012", "callerId": "AIDAEXAMPLE",
            "principalOrgId": null, "userArn": arn, "userId": "AIDAEXAMPLE"
        }});
    }
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": {"content-type": "application/json"}, "requestContext": context,
        "body": body, "isBase64Encoded": false
    })
}
