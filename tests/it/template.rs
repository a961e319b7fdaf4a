//! `template.yaml` held to what it promises: cfn-lint and checkov pass (both installed into .venv
//! by scripts/emulator.sh), and the security model (docs/security.md) holds in its IAM.

use std::process::Command;

use serde_json::Value;
use trimtab_tests::moto::{ensure_venv, workspace_root};
use trimtab_tests::template::{
    action_matches, can_change_the_estate, functions, load, resource_refs, statements, strings,
};

#[test]
fn template_passes_cfn_lint() {
    let bin = ensure_venv().expect("venv");
    let out = Command::new(bin.join("cfn-lint"))
        .arg("template.yaml")
        .current_dir(workspace_root())
        .output()
        .expect("running cfn-lint");
    assert!(
        out.status.success(),
        "cfn-lint found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn each_jobs_budget_is_its_functions_timeout_in_the_template() {
    let template = trimtab_tests::template::load().expect("template");
    for kind in analysis_api::Kind::ALL {
        let id = analysis_api::Jobs::logical_id(kind);
        let timeout = template["Resources"][id]["Properties"]["Timeout"].as_u64();
        assert_eq!(
            timeout,
            Some(analysis_api::Jobs::timeout(kind).as_secs()),
            "{id}: the CLI's budget must be the function's Timeout"
        );
    }
}

#[test]
fn the_apply_api_may_only_start_runs_and_record_them() {
    let template = trimtab_tests::template::load().expect("template");
    let mut actions = trimtab_tests::template::allowed_actions(&template, "ApiApplyFunction");
    actions.sort();
    assert_eq!(actions, ["dynamodb:PutItem", "lambda:InvokeFunction"]);
}

/// Every Allow statement of every function's role, with the function's logical id.
fn allows(template: &Value) -> Vec<(String, &Value)> {
    functions(template)
        .into_iter()
        .flat_map(|f| {
            statements(template, &f)
                .into_iter()
                .filter(|s| s["Effect"] == "Allow")
                .map(move |s| (f.clone(), s))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn sid(s: &Value) -> &str {
    s["Sid"].as_str().unwrap_or("(no Sid)")
}

fn is_read_only(action: &str) -> bool {
    let verb = action.split(':').nth(1).unwrap_or_default();
    [
        "Get", "List", "Describe", "BatchGet", "Query", "Filter", "Lookup", "Search",
    ]
    .iter()
    .any(|r| verb.starts_with(r))
        && !verb.contains('*')
}

/// Every logical id a value refers to (`Ref`, `Fn::GetAtt`), however deep.
fn refs_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            out.extend(resource_refs(v));
            for x in m.values() {
                refs_in(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs_in(x, out)),
        _ => {}
    }
}

#[test]
fn application_auto_scaling_writes_are_held_to_lambda_and_dynamodb() {
    let t = load().expect("template");
    let mut checked = 0;
    for (f, s) in allows(&t) {
        let writes: Vec<String> = strings(&s["Action"])
            .into_iter()
            .filter(|a| {
                action_matches(a, "application-autoscaling:RegisterScalableTarget")
                    || (a.starts_with("application-autoscaling:") && !is_read_only(a))
            })
            .collect();
        if writes.is_empty() {
            continue;
        }
        checked += 1;
        let namespaces =
            strings(&s["Condition"]["StringEquals"]["application-autoscaling:service-namespace"]);
        assert!(
            !namespaces.is_empty() && namespaces.iter().all(|n| n == "lambda" || n == "dynamodb"),
            "{f} {}: {writes:?} without an application-autoscaling:service-namespace condition of lambda or dynamodb",
            sid(s)
        );
    }
    assert!(checked >= 2, "the scaling roles were not found");
}

#[test]
fn no_write_is_allowed_on_every_resource_without_a_condition() {
    let t = load().expect("template");
    for (f, s) in allows(&t) {
        let everywhere = strings(&s["Resource"]).iter().any(|r| r == "*");
        if !everywhere || s.get("Condition").is_some() {
            continue;
        }
        let writes: Vec<String> = strings(&s["Action"])
            .into_iter()
            .filter(|a| !is_read_only(a))
            .collect();
        assert!(
            writes.is_empty(),
            "{f} {}: {writes:?} on Resource \"*\" without a condition",
            sid(s)
        );
    }
}

#[test]
fn the_read_only_api_cannot_delete_or_scan_and_only_lease_owners_delete() {
    let t = load().expect("template");
    for (f, s) in allows(&t) {
        for a in strings(&s["Action"]) {
            let deletes = [
                "dynamodb:DeleteItem",
                "dynamodb:BatchWriteItem",
                "dynamodb:PartiQLDelete",
                "dynamodb:DeleteTable",
            ]
            .iter()
            .any(|d| action_matches(&a, d));
            let scans = action_matches(&a, "dynamodb:Scan");
            assert!(!scans, "{f} {}: {a}: a scan reads every record", sid(s));
            if !deletes {
                continue;
            }
            assert_ne!(f, "ApiFunction", "the read-only API may delete: {a}");
            let keys =
                strings(&s["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]);
            assert!(
                !keys.is_empty() && keys.iter().all(|k| k.starts_with("lease#")),
                "{f} {}: {a} beyond its own lease: {keys:?}",
                sid(s)
            );
        }
    }
    assert_eq!(
        t["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]["TRIMTAB_RESULTS"],
        "off",
        "the API's analyses must not overwrite the jobs' results"
    );
    // What the read-only API writes at all: runs and the cost cache, by key prefix (its
    // analyses leave no results to stand in for the scheduled runs').
    for s in statements(&t, "ApiFunction") {
        let writes = strings(&s["Action"])
            .iter()
            .any(|a| a.starts_with("dynamodb:") && !is_read_only(a));
        if !writes {
            continue;
        }
        let keys = strings(&s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]);
        assert!(
            !keys.is_empty()
                && keys.iter().all(|k| ["run#", "ce#", "ce-budget#"]
                    .iter()
                    .any(|p| k.starts_with(p))),
            "ApiFunction {}: table writes beyond runs and the cost cache: {keys:?}",
            sid(s)
        );
    }
}

#[test]
fn the_alert_topics_key_lets_this_accounts_alarms_publish() {
    let t = load().expect("template");
    let r = &t["Resources"];
    let key = resource_refs(&r["AlertTopic"]["Properties"]["KmsMasterKeyId"]);
    assert_eq!(
        key,
        ["AlertKey"],
        "the topic must use the customer-managed key"
    );
    let grant = r["AlertKey"]["Properties"]["KeyPolicy"]["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["Effect"] == "Allow" && s["Principal"]["Service"] == "cloudwatch.amazonaws.com")
        .expect("a key policy statement for cloudwatch.amazonaws.com");
    let actions = strings(&grant["Action"]);
    for needed in ["kms:Decrypt", "kms:GenerateDataKey"] {
        assert!(
            actions.iter().any(|a| action_matches(a, needed)),
            "CloudWatch needs {needed}: {actions:?}"
        );
    }
    assert_eq!(
        grant["Condition"]["StringEquals"]["aws:SourceAccount"]["Ref"], "AWS::AccountId",
        "the grant is for this account's alarms only"
    );
}

#[test]
fn only_the_schedule_the_api_and_apply_principals_can_invoke_what_changes_the_estate() {
    let t = load().expect("template");
    let r = t["Resources"].as_object().expect("resources");
    let mut capable: Vec<String> = functions(&t)
        .into_iter()
        .filter(|f| can_change_the_estate(&t, f))
        .collect();
    capable.sort();
    assert_eq!(
        capable,
        [
            "ApiApplyFunction",
            "DynamoDBScalingFunction",
            "PerformanceMonitorFunction",
            "RightSizingFunction"
        ],
        "a function that changes the estate needs the invoke guard below"
    );
    for f in &capable {
        let policies: Vec<&Value> = r
            .values()
            .filter(|x| {
                x["Type"] == "AWS::Lambda::ResourcePolicy"
                    && resource_refs(&x["Properties"]["ResourceArn"]) == [f.clone()]
            })
            .collect();
        assert_eq!(policies.len(), 1, "{f}: one resource policy");
        let statements = policies[0]["Properties"]["PolicyDocument"]["Statement"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let deny = statements
            .iter()
            .find(|s| s["Effect"] == "Deny" && s["Principal"] == "*")
            .unwrap_or_else(|| panic!("{f}: no deny for other principals"));
        let denied = strings(&deny["Action"]);
        for a in ["lambda:InvokeFunction", "lambda:InvokeAsync"] {
            assert!(
                denied.iter().any(|d| action_matches(d, a)),
                "{f}: {a} not denied"
            );
        }
        assert_eq!(
            deny["Condition"]["BoolIfExists"]["aws:PrincipalIsAWSService"], "false",
            "{f}: the deny must spare only AWS services"
        );
        let mut exempt = Vec::new();
        refs_in(&deny["Condition"]["StringNotLike"], &mut exempt);
        exempt.sort();
        exempt.dedup();
        let allowed: &[&str] = if f == "ApiApplyFunction" {
            &[]
        } else {
            &["ApiApplyFunctionRole", "ApplyPrincipals"]
        };
        assert_eq!(exempt, allowed, "{f}: principals spared by the deny");
        for s in statements.iter().filter(|s| s["Effect"] == "Allow") {
            assert!(
                s["Principal"]["Service"].is_string() && s["Principal"].get("AWS").is_none(),
                "{f}: an allow for a non-service principal"
            );
            assert!(
                s["Condition"]["ArnLike"]["aws:SourceArn"].is_object(),
                "{f}: a service allowed without its source ARN"
            );
        }
        // The deny covers qualified invokes too (`:$LATEST`, an alias): Lambda matches the
        // qualifier against the statement's resource.
        let qualified = deny["Resource"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["Fn::Sub"].as_str() == Some(&format!("${{{f}.Arn}}:*")));
        assert!(qualified, "{f}: the deny leaves qualified ARNs open");
        // One writer of the function's policy: no SAM event (each adds an AWS::Lambda::Permission)
        // but the apply route, whose permission the resource policy is written after.
        let events = t["Resources"][f]["Properties"]["Events"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (name, e) in &events {
            assert!(
                f == "ApiApplyFunction" && e["Type"] == "HttpApi",
                "{f}: event {name} of type {} adds a permission beside the resource policy",
                e["Type"]
            );
        }
        for name in events.keys() {
            let generated = format!("{f}{name}Permission");
            let depends = strings(
                &r.values()
                    .find(|x| {
                        x["Type"] == "AWS::Lambda::ResourcePolicy"
                            && resource_refs(&x["Properties"]["ResourceArn"]) == [f.clone()]
                    })
                    .map(|x| x["DependsOn"].clone())
                    .unwrap_or_default(),
            );
            assert!(
                depends.contains(&generated),
                "{f}: the resource policy must be written after {generated}"
            );
        }
        assert!(
            !r.values().any(|x| x["Type"] == "AWS::Lambda::Permission"
                && resource_refs(&x["Properties"]["FunctionName"]) == [f.clone()]),
            "{f}: a permission outside its resource policy"
        );
    }
}

/// The functions a schedule starts: SAM `Schedule` events and EventBridge rules targeting them.
fn scheduled(t: &Value) -> Vec<String> {
    let mut out: Vec<String> = functions(t)
        .into_iter()
        .filter(|f| {
            t["Resources"][f]["Properties"]["Events"]
                .as_object()
                .is_some_and(|e| e.values().any(|e| e["Type"] == "Schedule"))
        })
        .collect();
    for rule in t["Resources"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, r)| r)
    {
        if rule["Type"] != "AWS::Events::Rule" {
            continue;
        }
        for target in rule["Properties"]["Targets"]
            .as_array()
            .into_iter()
            .flatten()
        {
            out.extend(resource_refs(&target["Arn"]));
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn scheduled_runs_that_change_things_fail_loudly_and_are_not_retried() {
    let t = load().expect("template");
    let all = scheduled(&t);
    assert_eq!(all.len(), 4, "the four scheduled jobs: {all:?}");
    for f in all {
        let p = &t["Resources"][&f]["Properties"];
        let config = &p["EventInvokeConfig"];
        assert_eq!(config["MaximumRetryAttempts"], 0, "{f}: retried runs");
        let destination = resource_refs(&config["DestinationConfig"]["OnFailure"]["Destination"]);
        assert_eq!(destination, ["AlertTopic"], "{f}: failures go nowhere");
        // The topic is encrypted: the role must be able to use its key.
        let can_encrypt = statements(&t, &f).iter().any(|s| {
            s["Effect"] == "Allow"
                && strings(&s["Action"])
                    .iter()
                    .any(|a| action_matches(a, "kms:GenerateDataKey"))
                && resource_refs(&s["Resource"]) == ["AlertKey"]
        });
        assert!(can_encrypt, "{f}: cannot encrypt for the alert topic");
    }
}

#[test]
fn the_api_is_logged_throttled_and_bounded_and_the_audit_trail_outlives_the_stack() {
    let t = load().expect("template");
    let r = &t["Resources"];
    let logs = &r["AnalysisApi"]["Properties"]["AccessLogSettings"];
    assert_eq!(
        resource_refs(&logs["DestinationArn"]),
        ["ApiAccessLogGroup"]
    );
    let format: Value =
        serde_json::from_str(logs["Format"].as_str().unwrap_or_default()).expect("JSON lines");
    for field in ["caller", "userArn", "status", "requestId"] {
        assert!(format.get(field).is_some(), "access log lacks {field}");
    }
    assert!(r["ApiAccessLogGroup"]["Properties"]["RetentionInDays"].is_object());
    for f in ["ApiFunction", "ApiApplyFunction"] {
        assert!(
            r[f]["Properties"]["ReservedConcurrentExecutions"]
                .as_u64()
                .is_some_and(|n| n > 0),
            "{f}: no reserved concurrency"
        );
    }
    for id in [
        "DecisionTable",
        "ApiApplyLogGroup",
        "RightSizingLogGroup",
        "DynamoDBScalingLogGroup",
    ] {
        assert_eq!(r[id]["DeletionPolicy"], "Retain", "{id}");
    }
}

#[test]
fn checkov_finds_nothing_and_every_skip_says_why() {
    let bin = ensure_venv().expect("venv");
    let out = Command::new(bin.join("checkov"))
        .args([
            "-f",
            "template.yaml",
            "--framework",
            "cloudformation",
            "--skip-download",
            "--quiet",
            "-o",
            "json",
        ])
        .env("BC_SKIP_MAPPING", "TRUE")
        .current_dir(workspace_root())
        .output()
        .expect("running checkov");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "checkov output is not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let results = &report["results"];
    let failed: Vec<String> = results["failed_checks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("{} {} ({})", c["check_id"], c["resource"], c["check_name"]))
        .collect();
    assert!(
        failed.is_empty(),
        "checkov failures:\n{}",
        failed.join("\n")
    );
    let skipped = results["skipped_checks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut ids: Vec<String> = skipped
        .iter()
        .map(|c| c["check_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert!(ids.len() <= 6, "the skip list grew: {ids:?}");
    for c in &skipped {
        assert!(
            c["check_result"]["suppress_comment"]
                .as_str()
                .is_some_and(|s| s.len() > 10),
            "{} {}: a skip without a reason",
            c["check_id"],
            c["resource"]
        );
    }
}

/// Actions CloudWatch accepts only from a permission on `*` (API reference, PutCompositeAlarm and
/// DescribeAlarms: "You can't create a composite alarms if your cloudwatch:PutCompositeAlarm
/// permission has a narrower scope").
#[test]
fn composite_alarm_rights_are_on_every_resource_as_cloudwatch_requires() {
    let t = load().expect("template");
    for f in functions(&t) {
        let st = statements(&t, &f);
        for action in ["cloudwatch:PutCompositeAlarm", "cloudwatch:DescribeAlarms"] {
            let grants: Vec<&&Value> = st
                .iter()
                .filter(|s| {
                    s["Effect"] == "Allow"
                        && strings(&s["Action"])
                            .iter()
                            .any(|a| action_matches(a, action))
                })
                .collect();
            let composites_used = f == "PerformanceMonitorFunction" || f == "ApiFunction";
            if grants.is_empty() || (action.ends_with("DescribeAlarms") && !composites_used) {
                continue;
            }
            assert!(
                grants
                    .iter()
                    .any(|s| strings(&s["Resource"]).iter().any(|r| r == "*")),
                "{f}: {action} must be granted on \"*\""
            );
        }
    }
}
