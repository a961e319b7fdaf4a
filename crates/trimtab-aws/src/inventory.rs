//! Lambda inventory: every function in scope with the configuration right-sizing needs.

use std::collections::BTreeMap;

use trimtab_core::pricing::Architecture;

use crate::{AwsError, Clients};

/// Which functions a run looks at. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionFilter {
    pub name_prefix: Option<String>,
    /// Explicit names; when non-empty, only these.
    pub names: Vec<String>,
    /// Every tag here must be present with this value.
    pub tags: BTreeMap<String, String>,
}

impl FunctionFilter {
    fn admits_name(&self, name: &str) -> bool {
        self.name_prefix
            .as_deref()
            .is_none_or(|p| name.starts_with(p))
            && (self.names.is_empty() || self.names.iter().any(|n| n == name))
    }
}

/// A function's configuration as right-sizing sees it, from `ListFunctions`. That listing carries
/// no `State*` or `LastUpdateStatus*` fields (AWS returns a subset of the configuration there):
/// whether a function may be changed is read just before the change, with
/// [`crate::changes::read_function`].
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionConfig {
    pub name: String,
    pub arn: String,
    pub architecture: Architecture,
    pub memory_mb: u32,
    pub timeout_s: u32,
    pub ephemeral_storage_mb: u32,
    pub tags: BTreeMap<String, String>,
    /// When `$LATEST`'s code or configuration last changed (`LastModified`), epoch seconds.
    pub last_modified_epoch_s: Option<i64>,
}

fn from_listing(f: &aws_sdk_lambda::types::FunctionConfiguration) -> Option<FunctionConfig> {
    let name = f.function_name()?;
    Some(FunctionConfig {
        name: name.to_owned(),
        arn: f.function_arn().unwrap_or_default().to_owned(),
        architecture: f
            .architectures()
            .first()
            .and_then(|a| Architecture::from_api_name(a.as_str()))
            .unwrap_or(Architecture::X86_64),
        memory_mb: f
            .memory_size()
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(128),
        timeout_s: f.timeout().and_then(|t| u32::try_from(t).ok()).unwrap_or(3),
        ephemeral_storage_mb: f
            .ephemeral_storage()
            .and_then(|e| u32::try_from(e.size()).ok())
            .unwrap_or(512),
        tags: BTreeMap::new(),
        last_modified_epoch_s: f
            .last_modified()
            .and_then(trimtab_core::calendar::parse_instant),
    })
}

/// Lists every function that passes `filter` (the SDK's paginator, 50 a page as Lambda allows).
/// Tags are read (one `ListTags` per function) only when the filter asks for them; a function
/// whose tags cannot be read is left out of a tag-filtered run (and logged).
pub async fn list_functions(
    clients: &Clients,
    filter: &FunctionFilter,
) -> Result<Vec<FunctionConfig>, AwsError> {
    let listed: Vec<aws_sdk_lambda::types::FunctionConfiguration> = clients
        .lambda
        .list_functions()
        .max_items(50)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| AwsError::new("lambda:ListFunctions", "functions", e))?;
    let mut out: Vec<FunctionConfig> = listed
        .iter()
        .filter_map(from_listing)
        .filter(|f| filter.admits_name(&f.name))
        .collect();
    if !filter.tags.is_empty() {
        let failed = read_tags(clients, &mut out).await;
        for (name, e) in &failed {
            tracing::warn!(function = %name, error = %e, "tags unreadable; left out of a tag-filtered run");
        }
        out.retain(|f| {
            !failed.iter().any(|(n, _)| n == &f.name)
                && filter.tags.iter().all(|(k, v)| f.tags.get(k) == Some(v))
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

async fn list_tags(clients: &Clients, arn: &str) -> Result<BTreeMap<String, String>, AwsError> {
    let tags = clients
        .lambda
        .list_tags()
        .resource(arn)
        .send()
        .await
        .map_err(|e| AwsError::new("lambda:ListTags", arn, e))?;
    Ok(tags
        .tags()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect())
}

/// Reads the tags of every function (one `ListTags` each, eight at a time). Returns the
/// functions whose tags could not be read, with why: one failure does not stop the others.
pub async fn read_tags(
    clients: &Clients,
    functions: &mut [FunctionConfig],
) -> Vec<(String, AwsError)> {
    use futures::stream::{self, StreamExt};
    let arns: Vec<(usize, String)> = functions
        .iter()
        .enumerate()
        .map(|(i, f)| (i, f.arn.clone()))
        .collect();
    type Tagged = (usize, Result<BTreeMap<String, String>, AwsError>);
    let tags: Vec<Tagged> = stream::iter(arns)
        .map(|(i, arn)| async move { (i, list_tags(clients, &arn).await) })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut failed = Vec::new();
    for (i, t) in tags {
        match t {
            Ok(t) => functions[i].tags = t,
            Err(e) => failed.push((functions[i].name.clone(), e)),
        }
    }
    failed
}

/// The account's concurrency quota in this region (`GetAccountSettings`:
/// `AccountLimit.ConcurrentExecutions`, 1,000 by default, raisable through Service Quotas).
pub async fn concurrency_quota(c: &Clients) -> Result<f64, AwsError> {
    let op = "lambda:GetAccountSettings";
    let out = c
        .lambda
        .get_account_settings()
        .send()
        .await
        .map_err(|e| AwsError::new(op, "account", e))?;
    out.account_limit()
        .map(|l| f64::from(l.concurrent_executions()))
        .ok_or_else(|| AwsError::invalid(op, "account".to_owned(), "no AccountLimit".to_owned()))
}
