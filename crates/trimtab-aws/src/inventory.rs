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

/// A function's configuration as right-sizing sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionConfig {
    pub name: String,
    pub arn: String,
    pub architecture: Architecture,
    pub memory_mb: u32,
    pub timeout_s: u32,
    pub ephemeral_storage_mb: u32,
    pub last_update_status: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// Lists every function that passes `filter`, following `NextMarker` to the end. Tags are read
/// (one `ListTags` per function) only when the filter asks for them.
pub async fn list_functions(
    clients: &Clients,
    filter: &FunctionFilter,
) -> Result<Vec<FunctionConfig>, AwsError> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        clients.record("lambda:ListFunctions");
        let page = clients
            .lambda
            .list_functions()
            .set_marker(marker.take())
            .max_items(50)
            .send()
            .await
            .map_err(|e| AwsError::new("lambda:ListFunctions", "functions", e))?;
        for f in page.functions() {
            let Some(name) = f.function_name() else {
                continue;
            };
            if !filter.admits_name(name) {
                continue;
            }
            let architecture = f
                .architectures()
                .first()
                .and_then(|a| Architecture::from_api_name(a.as_str()))
                .unwrap_or(Architecture::X86_64);
            out.push(FunctionConfig {
                name: name.to_owned(),
                arn: f.function_arn().unwrap_or_default().to_owned(),
                architecture,
                memory_mb: f
                    .memory_size()
                    .and_then(|m| u32::try_from(m).ok())
                    .unwrap_or(128),
                timeout_s: f.timeout().and_then(|t| u32::try_from(t).ok()).unwrap_or(3),
                ephemeral_storage_mb: f
                    .ephemeral_storage()
                    .and_then(|e| u32::try_from(e.size()).ok())
                    .unwrap_or(512),
                last_update_status: f.last_update_status().map(|s| s.as_str().to_owned()),
                tags: BTreeMap::new(),
            });
        }
        marker = page.next_marker().map(ToOwned::to_owned);
        if marker.is_none() {
            break;
        }
    }
    if !filter.tags.is_empty() {
        let mut kept = Vec::with_capacity(out.len());
        for mut f in out {
            f.tags = list_tags(clients, &f.arn).await?;
            if filter.tags.iter().all(|(k, v)| f.tags.get(k) == Some(v)) {
                kept.push(f);
            }
        }
        out = kept;
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

async fn list_tags(clients: &Clients, arn: &str) -> Result<BTreeMap<String, String>, AwsError> {
    clients.record("lambda:ListTags");
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

/// Reads the tags of every function (one `ListTags` each, eight at a time). Needed only where a
/// run acts: the `trimtab:lock`, `trimtab:alias` and `trimtab:latency-objective-ms` tags.
pub async fn read_tags(
    clients: &Clients,
    functions: &mut [FunctionConfig],
) -> Result<(), AwsError> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    let tags: Vec<(usize, BTreeMap<String, String>)> = stream::iter(functions.iter().enumerate())
        .map(|(i, f)| async move { list_tags(clients, &f.arn).await.map(|t| (i, t)) })
        .buffer_unordered(8)
        .try_collect()
        .await?;
    for (i, t) in tags {
        functions[i].tags = t;
    }
    Ok(())
}
