//! What an analysis found, before anything is acted on: one judged row per function.

use std::collections::HashMap;

use trimtab_aws::inventory::FunctionConfig;
use trimtab_aws::metrics::Window;
use trimtab_core::quota::CapacityRisk;
use trimtab_core::records::Health;
use trimtab_core::rightsizing::Recommendation;

/// One function, judged: its configuration as listed, the recommendation (which apply mode
/// updates with what it did), and its health over the window (the evidence a change is later
/// verified against).
pub(crate) struct Judged {
    pub function: FunctionConfig,
    pub recommendation: Recommendation,
    pub health: Health,
}

pub(crate) struct Analysis {
    pub window: Window,
    pub rows: Vec<Judged>,
    /// Functions whose tags could not be read (so whether they are locked is unknown): never
    /// changed this run.
    pub unreadable_tags: HashMap<String, String>,
    /// Functions apply mode may not change: Trimtab's own, or outside the managed pattern.
    pub not_managed: HashMap<String, String>,
    pub metric_queries: usize,
    pub notes: Vec<String>,
    /// The account's concurrency quota against the forecast of its peaks.
    pub capacity_risk: Option<CapacityRisk>,
}

impl Analysis {
    pub fn empty(window: Window) -> Self {
        Self {
            window,
            rows: Vec::new(),
            unreadable_tags: HashMap::new(),
            not_managed: HashMap::new(),
            metric_queries: 0,
            notes: Vec::new(),
            capacity_risk: None,
        }
    }

    /// Why apply mode may not touch `name` at all, if it may not.
    pub fn not_allowed(&self, name: &str) -> Option<&String> {
        self.unreadable_tags
            .get(name)
            .or_else(|| self.not_managed.get(name))
    }
}
