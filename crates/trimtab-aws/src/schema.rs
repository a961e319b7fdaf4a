//! The decision table's key schema, in one place: every partition and sort key Trimtab writes
//! or reads is made here (docs/decision-table.md lists them with what each item holds).

use trimtab_core::calendar::format_date;

/// The items the decision table holds, by key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// A function's decision record: `fn#<function>` / `rec#<record id>`.
    Decision {
        function: &'a str,
        record_id: &'a str,
    },
    /// An autoscaling change record: `res#<resource> <dimension>` / `rec#<record id>`.
    Change {
        resource: &'a str,
        record_id: &'a str,
    },
    /// The job's lease: `lease#<job>` / `lease`.
    Lease { job: &'a str },
    /// A run's status: `run#<run id>` / `status`.
    RunStatus { run_id: &'a str },
    /// A piece of a run's report: `run#<run id>` / `part#<nnnn>`.
    RunPart { run_id: &'a str, part: usize },
    /// A job's latest fleet-wide headline: `result#<job>` / `latest`.
    Result { job: &'a str },
    /// A day of Cost Explorer data: `ce#<metric>#<grouping>` / `day#<yyyy-mm-dd>`.
    CostDay {
        metric: &'a str,
        grouping: &'a str,
        day: i64,
    },
    /// The day's paid Cost Explorer requests: `ce-budget#<yyyy-mm-dd>` / `requests`.
    CostBudget { day: i64 },
    /// A cost alert already sent: `alert#cost` / `<alert key>`.
    AlertClaim { key: &'a str },
}

/// The headline a job that finds savings (right-sizing, DynamoDB scaling) leaves under
/// [`Key::Result`], which the cost job reads as measured savings and the API shows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SavingsHeadline {
    pub generated_at_epoch_s: i64,
    /// The same moment's UTC date, `YYYY-MM-DD`.
    pub generated_at: String,
    /// `recommend` or `apply`.
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub monthly_savings_usd: f64,
    /// Resources judged (functions, or table and index dimensions).
    pub resources: usize,
    pub detail: String,
}

impl SavingsHeadline {
    /// A headline as of `now_s` (epoch seconds).
    pub fn at(now_s: i64, mode: &str, monthly_savings_usd: f64, resources: usize) -> Self {
        Self {
            generated_at_epoch_s: now_s,
            generated_at: format_date(now_s.div_euclid(86_400)),
            mode: mode.to_owned(),
            run_id: None,
            monthly_savings_usd,
            resources,
            detail: String::new(),
        }
    }
}

/// Sort-key prefix of decision and change records.
pub const RECORD_PREFIX: &str = "rec#";
/// Sort-key prefix of cached Cost Explorer days.
pub const DAY_PREFIX: &str = "day#";
/// Sort key of a run's status item.
pub const RUN_STATUS_SK: &str = "status";

impl Key<'_> {
    pub fn pk(&self) -> String {
        match *self {
            Key::Decision { function, .. } => function_partition(function),
            Key::Change { resource, .. } => resource_partition(resource),
            Key::Lease { job } => format!("lease#{job}"),
            Key::RunStatus { run_id } | Key::RunPart { run_id, .. } => run_partition(run_id),
            Key::Result { job } => format!("result#{job}"),
            Key::CostDay {
                metric, grouping, ..
            } => cost_partition(metric, grouping),
            Key::CostBudget { day } => format!("ce-budget#{}", format_date(day)),
            Key::AlertClaim { .. } => "alert#cost".to_owned(),
        }
    }

    pub fn sk(&self) -> String {
        match *self {
            Key::Decision { record_id, .. } | Key::Change { record_id, .. } => {
                format!("{RECORD_PREFIX}{record_id}")
            }
            Key::Lease { .. } => "lease".to_owned(),
            Key::RunStatus { .. } => RUN_STATUS_SK.to_owned(),
            Key::RunPart { part, .. } => format!("part#{part:04}"),
            Key::Result { .. } => "latest".to_owned(),
            Key::CostDay { day, .. } => day_sort_key(day),
            Key::CostBudget { .. } => "requests".to_owned(),
            Key::AlertClaim { key } => key.to_owned(),
        }
    }
}

/// The partition holding a function's decision records.
pub fn function_partition(function: &str) -> String {
    format!("fn#{function}")
}

/// The partition holding a scalable resource's change records.
pub fn resource_partition(resource: &str) -> String {
    format!("res#{resource}")
}

/// The partition holding a run's status and report.
pub fn run_partition(run_id: &str) -> String {
    format!("run#{run_id}")
}

/// The partition holding one Cost Explorer series' cached days.
pub fn cost_partition(metric: &str, grouping: &str) -> String {
    format!("ce#{metric}#{grouping}")
}

/// The sort key of a cached day.
pub fn day_sort_key(day: i64) -> String {
    format!("{DAY_PREFIX}{}", format_date(day))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_as_the_docs_list_it() {
        let k = |key: Key<'_>| (key.pk(), key.sk());
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            k(Key::Decision {
                function: "f",
                record_id: "1-r"
            }),
            pair("fn#f", "rec#1-r")
        );
        assert_eq!(
            k(Key::Change {
                resource: "table/t dynamodb:table:ReadCapacityUnits",
                record_id: "2-r"
            }),
            pair("res#table/t dynamodb:table:ReadCapacityUnits", "rec#2-r")
        );
        assert_eq!(
            k(Key::Lease { job: "rightsizing" }),
            pair("lease#rightsizing", "lease")
        );
        assert_eq!(k(Key::RunStatus { run_id: "a1" }), pair("run#a1", "status"));
        assert_eq!(
            k(Key::RunPart {
                run_id: "a1",
                part: 3
            }),
            pair("run#a1", "part#0003")
        );
        assert_eq!(
            k(Key::Result { job: "cost" }),
            pair("result#cost", "latest")
        );
        assert_eq!(
            k(Key::CostDay {
                metric: "UnblendedCost",
                grouping: "SERVICE",
                day: 0
            }),
            pair("ce#UnblendedCost#SERVICE", "day#1970-01-01")
        );
        assert_eq!(
            k(Key::CostBudget { day: 1 }),
            pair("ce-budget#1970-01-02", "requests")
        );
        assert_eq!(k(Key::AlertClaim { key: "x" }), pair("alert#cost", "x"));
    }
}
