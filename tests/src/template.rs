//! `template.yaml` as data, for tests that hold it against what the code does: moto enforces no
//! IAM, so a call missing from a role would pass every emulator test and fail on AWS. The
//! template is decoded by cfn-lint's own loader (intrinsic functions included) from `.venv`.

use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::moto::{ensure_venv, workspace_root};

/// The template as JSON (intrinsics such as `!Sub` become `{"Fn::Sub": ...}`).
pub fn load() -> anyhow::Result<Value> {
    let bin = ensure_venv()?;
    let script = "import json,sys\nfrom cfnlint.decode import decode\nt,m=decode(sys.argv[1])\nif t is None: sys.exit(str(m))\nprint(json.dumps(t, default=str))";
    let out = Command::new(bin.join("python"))
        .args(["-c", script, "template.yaml"])
        .current_dir(workspace_root())
        .output()
        .context("running python")?;
    if !out.status.success() {
        bail!(
            "template.yaml did not decode: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Every statement of a function's inline policies.
pub fn statements<'a>(template: &'a Value, logical_id: &str) -> Vec<&'a Value> {
    template["Resources"][logical_id]["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["Statement"].as_array().into_iter().flatten())
        .collect()
}

/// A string or a list of strings as a list (IAM accepts both).
pub fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(Into::into))
            .collect(),
        _ => vec![],
    }
}

/// Whether `pattern` (IAM wildcards `*` and `?`) matches `action`, case-insensitively as IAM
/// compares actions.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    fn go(p: &[u8], a: &[u8]) -> bool {
        match (p.first(), a.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], a) || (!a.is_empty() && go(p, &a[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &a[1..]),
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => go(&p[1..], &a[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), action.as_bytes())
}

/// The DynamoDB requests (operation, index, partition key) that no statement of a function's
/// role allows with its `dynamodb:LeadingKeys` condition: a statement counts where its action
/// matches and its resource is the table (or, for an index query, the index), and its condition
/// (if any) lists a pattern the key matches.
pub fn keys_not_allowed(
    template: &Value,
    logical_id: &str,
    requests: &[(String, Option<String>, String)],
) -> Vec<String> {
    let allows = |op: &str, index: Option<&str>, key: &str| {
        statements(template, logical_id).into_iter().any(|s| {
            let on_index = s["Resource"].to_string().contains("/index/");
            let resource_fits = match index {
                Some(i) => on_index && s["Resource"].to_string().contains(i),
                None => !on_index,
            };
            let keys: Vec<String> = ["ForAllValues:StringLike", "ForAllValues:StringEquals"]
                .iter()
                .flat_map(|c| strings(&s["Condition"][c]["dynamodb:LeadingKeys"]))
                .collect();
            s["Effect"] == "Allow"
                && strings(&s["Action"]).iter().any(|a| action_matches(a, op))
                && resource_fits
                && (keys.is_empty() || keys.iter().any(|k| action_matches(k, key)))
        })
    };
    let mut missing: Vec<String> = requests
        .iter()
        .filter(|(op, index, key)| !allows(op, index.as_deref(), key))
        .map(|(op, index, key)| {
            format!(
                "{op} on {} with key {key}",
                index.as_deref().unwrap_or("the table")
            )
        })
        .collect();
    missing.sort();
    missing.dedup();
    missing
}

/// The actions a function's role allows (any resource, any condition).
pub fn allowed_actions(template: &Value, logical_id: &str) -> Vec<String> {
    statements(template, logical_id)
        .into_iter()
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(|s| strings(&s["Action"]))
        .collect()
}

/// Every function (SAM `AWS::Serverless::Function`) in the template, by logical id.
pub fn functions(template: &Value) -> Vec<String> {
    template["Resources"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(id, _)| id.clone())
        .collect()
}

/// Whether a function's role may change the estate outside Trimtab's own table and topic:
/// function settings, capacity, scaling, alarms, or start a function that can.
pub fn can_change_the_estate(template: &Value, logical_id: &str) -> bool {
    const CHANGES: [&str; 8] = [
        "lambda:UpdateFunctionConfiguration",
        "lambda:PutProvisionedConcurrencyConfig",
        "dynamodb:UpdateTable",
        "application-autoscaling:RegisterScalableTarget",
        "application-autoscaling:PutScalingPolicy",
        "cloudwatch:PutMetricAlarm",
        "cloudwatch:PutCompositeAlarm",
        "cloudwatch:DeleteAlarms",
    ];
    let allowed = allowed_actions(template, logical_id);
    let direct = CHANGES
        .iter()
        .any(|c| allowed.iter().any(|p| action_matches(p, c)));
    // Or it may invoke another function that can.
    let starts = statements(template, logical_id).into_iter().any(|s| {
        s["Effect"] == "Allow"
            && strings(&s["Action"])
                .iter()
                .any(|a| action_matches(a, "lambda:InvokeFunction"))
            && resource_refs(&s["Resource"])
                .iter()
                .any(|id| id != logical_id && can_change_the_estate(template, id))
    });
    direct || starts
}

/// The logical ids a `Resource` names through `!GetAtt X.Arn` or `!Ref X`.
pub fn resource_refs(v: &Value) -> Vec<String> {
    let one = |x: &Value| -> Option<String> {
        if let Some(a) = x.get("Fn::GetAtt") {
            return match a {
                Value::Array(parts) => parts.first().and_then(Value::as_str).map(Into::into),
                Value::String(s) => s.split('.').next().map(Into::into),
                _ => None,
            };
        }
        x.get("Ref").and_then(Value::as_str).map(Into::into)
    };
    match v {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        other => one(other).into_iter().collect(),
    }
}

/// The IAM action an API call needs, from the fidelity layer's `service:Operation`.
pub fn iam_action(operation: &str) -> String {
    match operation {
        "lambda:Invoke" => "lambda:InvokeFunction".to_owned(),
        op => op.to_owned(),
    }
}

/// The calls among `operations` that `logical_id`'s role does not allow.
pub fn not_allowed(template: &Value, logical_id: &str, operations: &[String]) -> Vec<String> {
    let allowed = allowed_actions(template, logical_id);
    let mut missing: Vec<String> = operations
        .iter()
        .map(|op| iam_action(op))
        .filter(|action| !allowed.iter().any(|p| action_matches(p, action)))
        .collect();
    missing.sort();
    missing.dedup();
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_iam_does() {
        assert!(action_matches("lambda:Get*", "lambda:GetFunction"));
        assert!(action_matches("dynamodb:putitem", "dynamodb:PutItem"));
        assert!(!action_matches(
            "lambda:Get*",
            "lambda:UpdateFunctionConfiguration"
        ));
        assert!(action_matches("*", "sns:Publish"));
    }
}
