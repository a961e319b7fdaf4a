//! The Lambda calls of a canary: a version published at another memory size, a share of an
//! alias's traffic routed to it (`RoutingConfig.AdditionalVersionWeights`), per-version metrics
//! (`ExecutedVersion`), and promotion or removal.
//!
//! AWS's rules (docs/aws-behaviour.md): a weighted alias routes to at most two published
//! versions (never `$LATEST`) with the same execution role and dead-letter configuration; a
//! version takes `$LATEST`'s code and configuration when published, so a version at another size
//! is made by changing `$LATEST`, publishing (conditional on its `RevisionId` and `CodeSha256`),
//! and changing `$LATEST` back.

use std::collections::HashMap;

use aws_sdk_lambda::client::Waiters;
use aws_sdk_lambda::types::AliasRoutingConfiguration;
use trimtab_core::evidence::VersionStats;

use crate::metrics::{self, Fold, Query, Window};
use crate::{AwsError, Clients, ErrorKind};

/// An alias as read.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasState {
    pub version: String,
    /// Additional versions and their weights.
    pub weights: HashMap<String, f64>,
    pub revision_id: Option<String>,
}

/// One version's (or `$LATEST`'s) configuration, as far as a canary needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionConfig {
    pub version: String,
    pub memory_mb: u32,
    pub code_sha256: Option<String>,
    /// Everything else a published version takes from `$LATEST` (handler, runtime, timeout,
    /// role, environment, layers, VPC, dead-letter queue, storage, architecture, tracing, keys,
    /// logging, image, SnapStart), as one comparable text: a canary must differ in memory only.
    pub fingerprint: String,
    /// `LastUpdateStatus` is `Successful` (or absent: a version that was never updated).
    pub settled: bool,
    pub revision_id: Option<String>,
}

fn version_config(
    out: &aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput,
) -> VersionConfig {
    let env: std::collections::BTreeMap<&String, &String> = out
        .environment()
        .and_then(|e| e.variables())
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    let layers: Vec<&str> = out.layers().iter().filter_map(|l| l.arn()).collect();
    let fingerprint = format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        out.handler(),
        out.runtime(),
        out.timeout(),
        out.role(),
        env,
        layers,
        out.vpc_config()
            .map(|v| (v.subnet_ids(), v.security_group_ids())),
        out.dead_letter_config().and_then(|d| d.target_arn()),
        out.ephemeral_storage().map(|e| e.size()),
        out.architectures(),
        out.tracing_config().and_then(|t| t.mode()),
        out.kms_key_arn(),
        out.logging_config()
            .map(|l| (l.log_format(), l.log_group())),
        out.image_config_response().and_then(|i| i.image_config()),
        out.snap_start().map(|s| s.apply_on()),
        out.package_type(),
    );
    VersionConfig {
        version: out.version().unwrap_or_default().to_owned(),
        memory_mb: out
            .memory_size()
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(128),
        code_sha256: out.code_sha256().map(ToOwned::to_owned),
        fingerprint,
        settled: out
            .last_update_status()
            .is_none_or(|s| *s == aws_sdk_lambda::types::LastUpdateStatus::Successful),
        revision_id: out.revision_id().map(ToOwned::to_owned),
    }
}

/// The alias, `None` when it does not exist.
pub async fn read_alias(
    c: &Clients,
    function: &str,
    alias: &str,
) -> Result<Option<AliasState>, AwsError> {
    match c
        .lambda
        .get_alias()
        .function_name(function)
        .name(alias)
        .send()
        .await
    {
        Ok(out) => Ok(Some(AliasState {
            version: out.function_version().unwrap_or_default().to_owned(),
            weights: out
                .routing_config()
                .and_then(|r| r.additional_version_weights())
                .cloned()
                .unwrap_or_default(),
            revision_id: out.revision_id().map(ToOwned::to_owned),
        })),
        Err(e) => {
            let e = AwsError::new("lambda:GetAlias", format!("{function}:{alias}"), e);
            if e.is(ErrorKind::NotFound) {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

/// A version's configuration (`qualifier`), or `$LATEST`'s without one.
pub async fn read_version(
    c: &Clients,
    function: &str,
    qualifier: Option<&str>,
) -> Result<VersionConfig, AwsError> {
    let out = c
        .lambda
        .get_function_configuration()
        .function_name(function)
        .set_qualifier(qualifier.map(ToOwned::to_owned))
        .send()
        .await
        .map_err(|e| AwsError::new("lambda:GetFunctionConfiguration", function, e))?;
    Ok(version_config(&out))
}

/// Waits (the SDK's `PublishedVersionActive` waiter) until a new version can be invoked: a
/// version starts `Pending` (functions in a VPC, with EFS or SnapStart take a while), and
/// traffic routed to it before it is `Active` fails.
pub async fn wait_active(
    c: &Clients,
    function: &str,
    version: &str,
    max_wait: std::time::Duration,
) -> Result<(), String> {
    c.lambda
        .wait_until_published_version_active()
        .function_name(function)
        .qualifier(version)
        .wait(max_wait)
        .await
        .map(|_| ())
        .map_err(|e| format!("version {version} did not become Active: {e}"))
}

/// Publishes `$LATEST` as a version, only if it still has `code_sha256` and `revision_id`;
/// returns what was published (Lambda hands back the latest version instead when nothing
/// changed since it).
pub async fn publish(
    c: &Clients,
    function: &str,
    code_sha256: Option<&str>,
    revision_id: Option<&str>,
    description: &str,
) -> Result<(String, u32, Option<String>), AwsError> {
    let out = c
        .lambda
        .publish_version()
        .function_name(function)
        .set_code_sha256(code_sha256.map(ToOwned::to_owned))
        .set_revision_id(revision_id.map(ToOwned::to_owned))
        .description(description)
        .send()
        .await
        .map_err(|e| AwsError::new("lambda:PublishVersion", function, e))?;
    Ok((
        out.version().unwrap_or_default().to_owned(),
        out.memory_size()
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(0),
        out.code_sha256().map(ToOwned::to_owned),
    ))
}

/// Points the alias at `version` with `extra` routed to another (none: all traffic to
/// `version`), conditional on the alias's `RevisionId`.
pub async fn route(
    c: &Clients,
    function: &str,
    alias: &str,
    version: &str,
    extra: Option<(&str, f64)>,
    revision_id: Option<&str>,
) -> Result<(), AwsError> {
    let weights: HashMap<String, f64> = extra
        .map(|(v, w)| HashMap::from([(v.to_owned(), w)]))
        .unwrap_or_default();
    c.lambda
        .update_alias()
        .function_name(function)
        .name(alias)
        .function_version(version)
        .routing_config(
            AliasRoutingConfiguration::builder()
                .set_additional_version_weights(Some(weights))
                .build(),
        )
        .set_revision_id(revision_id.map(ToOwned::to_owned))
        .send()
        .await
        .map_err(|e| AwsError::new("lambda:UpdateAlias", format!("{function}:{alias}"), e))?;
    Ok(())
}

/// Invocations, errors and mean duration of each version behind `function:alias` since `start`,
/// from the metrics Lambda emits with `FunctionName`, `Resource` (`function:alias`) and
/// `ExecutedVersion`: one batched call.
pub async fn version_stats(
    c: &Clients,
    function: &str,
    alias: &str,
    versions: &[&str],
    window: Window,
) -> Result<(Vec<VersionStats>, usize), AwsError> {
    let resource = format!("{function}:{alias}");
    let mut queries = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let dims = vec![
            ("FunctionName".to_owned(), function.to_owned()),
            ("Resource".to_owned(), resource.clone()),
            ("ExecutedVersion".to_owned(), (*v).to_owned()),
        ];
        for (suffix, metric, stat) in [
            ("inv", "Invocations", "Sum"),
            ("err", "Errors", "Sum"),
            ("dur", "Duration", "Average"),
        ] {
            queries.push(Query {
                id: format!("v{i}_{suffix}"),
                namespace: "AWS/Lambda",
                metric_name: metric,
                dimensions: dims.clone(),
                stat,
            });
        }
    }
    // Minutes for a canary's hours; coarser for a whole window (at most 1,440 datapoints).
    let period = i32::try_from((window.seconds() / 1440 + 59) / 60 * 60)
        .unwrap_or(86_400)
        .max(60);
    let (series, fetched) = metrics::fetch_with_period(c, queries, window, period).await?;
    let stats = (0..versions.len())
        .map(|i| {
            let id = |s: &str| format!("v{i}_{s}");
            VersionStats {
                invocations: metrics::fold(&series, &id("inv"), Fold::Sum, None).unwrap_or(0.0),
                errors: metrics::fold(&series, &id("err"), Fold::Sum, None).unwrap_or(0.0),
                duration_avg_ms: metrics::fold(&series, &id("dur"), Fold::Mean, Some(&id("inv"))),
            }
        })
        .collect();
    Ok((stats, fetched.queries))
}
