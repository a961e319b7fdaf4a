//! The right-sizing event and its validation into a plan.

use std::collections::BTreeMap;

use serde::Deserialize;
use trimtab_aws::inventory::FunctionFilter;
use trimtab_core::apply::Guards;
use trimtab_core::rightsizing::{Settings, Strategy};
use trimtab_lambda::{EventError, Mode};

/// What a run is asked to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Analyse the functions in scope (and, in apply mode, act on the advice).
    #[default]
    Run,
    /// Restore a function's recorded configuration (`function_name`, optional `record_id`).
    Rollback,
    /// List a function's decision records (`function_name`).
    History,
}

/// The right-sizing event. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub action: Option<Action>,
    pub mode: Option<Mode>,
    pub strategy: Option<Strategy>,
    /// Days of metrics to judge by (1..=90; default 14).
    pub lookback_days: Option<i64>,
    pub function_name_prefix: Option<String>,
    /// Only these functions.
    pub function_names: Option<Vec<String>>,
    /// Only functions with all of these tags.
    pub tags: Option<BTreeMap<String, String>>,
    /// Largest allowed p99 slowdown in percent (0..=1000; default 10).
    pub latency_guard_pct: Option<f64>,
    /// Memory kept free above peak use, percent of the peak (0..=400; default 20).
    pub memory_headroom_pct: Option<f64>,
    /// Fewest invocations in the window to judge a function (default 100).
    pub min_invocations: Option<u64>,
    /// Ask CloudWatch for p50/p95/p99 of Duration (default true).
    pub percentiles: Option<bool>,
    /// Page budget per function for reading REPORT lines when Lambda Insights is off
    /// (0..=20; default 3; 0 turns the scan off).
    pub log_scan_pages: Option<u32>,
    /// Most functions whose REPORT lines one run reads (0..=500; default 25), the costliest
    /// first: the log reads a run makes stay bounded however large the fleet.
    pub log_scan_functions: Option<u32>,
    /// Apply guard: smallest monthly saving worth a change, USD (default 1).
    pub min_monthly_savings_usd: Option<f64>,
    /// Apply guard: smallest confidence, 0..1 (default 0.5).
    pub min_confidence: Option<f64>,
    /// Apply guard: largest memory factor per run, 1.1..=10 (default 2).
    pub max_step_factor: Option<f64>,
    /// For `rollback` and `history`: the function.
    pub function_name: Option<String>,
    /// For `rollback`: the record to restore the `before` of (default: the latest applied).
    pub record_id: Option<String>,
    /// For `rollback`: restore even though the function was changed outside Trimtab since.
    pub force: Option<bool>,
}

/// A request with defaults filled in and ranges checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub mode: Mode,
    pub settings: Settings,
    pub guards: Guards,
    pub lookback_days: u32,
    pub filter: FunctionFilter,
    pub percentiles: bool,
    pub log_scan_pages: u32,
    pub log_scan_functions: u32,
}

/// What the event asks for, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run(Plan),
    Rollback {
        function_name: String,
        record_id: Option<String>,
        force: bool,
    },
    History {
        function_name: String,
    },
}

fn range(field: &str, v: f64, lo: f64, hi: f64) -> Result<f64, EventError> {
    if v.is_finite() && (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(EventError::new(
            field,
            format!("must be between {lo} and {hi}, got {v}"),
        ))
    }
}

impl Request {
    /// Validates the request. `mode` is the mode this run is allowed (see `handle`).
    pub fn command(&self, mode: Mode) -> Result<Command, EventError> {
        let function = || {
            self.function_name
                .clone()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| EventError::new("function_name", "required for this action"))
        };
        match self.action.unwrap_or_default() {
            Action::Run => self.plan(mode).map(Command::Run),
            Action::Rollback => Ok(Command::Rollback {
                function_name: function()?,
                record_id: self.record_id.clone(),
                force: self.force.unwrap_or(false),
            }),
            Action::History => Ok(Command::History {
                function_name: function()?,
            }),
        }
    }

    /// Validates a `run` request.
    pub fn plan(&self, mode: Mode) -> Result<Plan, EventError> {
        let defaults = Settings::default();
        let guard_defaults = Guards::default();
        let lookback = self.lookback_days.unwrap_or(14);
        if !(1..=90).contains(&lookback) {
            return Err(EventError::new(
                "lookback_days",
                format!("must be a whole number of days from 1 to 90, got {lookback}"),
            ));
        }
        let pages = self.log_scan_pages.unwrap_or(3);
        if pages > 20 {
            return Err(EventError::new(
                "log_scan_pages",
                format!("must be 0..=20, got {pages}"),
            ));
        }
        let scanned = self.log_scan_functions.unwrap_or(25);
        if scanned > 500 {
            return Err(EventError::new(
                "log_scan_functions",
                format!("must be 0..=500, got {scanned}"),
            ));
        }
        if self.function_name_prefix.as_deref() == Some("") {
            return Err(EventError::new(
                "function_name_prefix",
                "must not be empty; omit it for all functions",
            ));
        }
        Ok(Plan {
            mode,
            settings: Settings {
                strategy: self.strategy.unwrap_or(defaults.strategy),
                latency_guard_pct: range(
                    "latency_guard_pct",
                    self.latency_guard_pct.unwrap_or(defaults.latency_guard_pct),
                    0.0,
                    1000.0,
                )?,
                memory_headroom_pct: range(
                    "memory_headroom_pct",
                    self.memory_headroom_pct
                        .unwrap_or(defaults.memory_headroom_pct),
                    0.0,
                    400.0,
                )?,
                min_invocations: self
                    .min_invocations
                    .map_or(defaults.min_invocations, |n| n as f64),
                ..defaults
            },
            guards: Guards {
                min_monthly_savings_usd: range(
                    "min_monthly_savings_usd",
                    self.min_monthly_savings_usd
                        .unwrap_or(guard_defaults.min_monthly_savings_usd),
                    0.0,
                    1.0e9,
                )?,
                min_confidence: range(
                    "min_confidence",
                    self.min_confidence.unwrap_or(guard_defaults.min_confidence),
                    0.0,
                    1.0,
                )?,
                max_step_factor: range(
                    "max_step_factor",
                    self.max_step_factor
                        .unwrap_or(guard_defaults.max_step_factor),
                    1.1,
                    10.0,
                )?,
            },
            lookback_days: lookback as u32,
            filter: FunctionFilter {
                name_prefix: self.function_name_prefix.clone(),
                names: self.function_names.clone().unwrap_or_default(),
                tags: self.tags.clone().unwrap_or_default(),
            },
            percentiles: self.percentiles.unwrap_or(true),
            log_scan_pages: pages,
            log_scan_functions: scanned,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> Result<Command, EventError> {
        let r: Request = trimtab_lambda::parse_request(v)?;
        r.command(Mode::Recommend)
    }

    #[test]
    fn defaults_and_ranges() {
        let Ok(Command::Run(p)) = parse(serde_json::json!({})) else {
            panic!("defaults")
        };
        assert_eq!(p.lookback_days, 14);
        assert_eq!(p.settings.strategy, Strategy::Cost);
        assert_eq!(p.guards, Guards::default());
        for (event, field) in [
            (serde_json::json!({"lookback_days": 0}), "lookback_days"),
            (serde_json::json!({"lookback_days": 91}), "lookback_days"),
            (
                serde_json::json!({"memory_headroom_pct": 500}),
                "memory_headroom_pct",
            ),
            (serde_json::json!({"min_confidence": 2}), "min_confidence"),
            (serde_json::json!({"max_step_factor": 1}), "max_step_factor"),
            (serde_json::json!({"log_scan_pages": 21}), "log_scan_pages"),
            (
                serde_json::json!({"log_scan_functions": 501}),
                "log_scan_functions",
            ),
            (
                serde_json::json!({"function_name_prefix": ""}),
                "function_name_prefix",
            ),
            (serde_json::json!({"action": "rollback"}), "function_name"),
            (serde_json::json!({"action": "delete"}), "action"),
        ] {
            let e = parse(event.clone()).expect_err("refused");
            assert_eq!(e.field, field, "{event}: {e}");
        }
    }

    #[test]
    fn rollback_and_history_commands() {
        let c = parse(
            serde_json::json!({"action": "rollback", "function_name": "f", "record_id": "r"}),
        );
        assert_eq!(
            c,
            Ok(Command::Rollback {
                function_name: "f".into(),
                record_id: Some("r".into()),
                force: false,
            })
        );
        let c = parse(serde_json::json!({"action": "history", "function_name": "f"}));
        assert_eq!(
            c,
            Ok(Command::History {
                function_name: "f".into()
            })
        );
    }
}
