//! What Application Auto Scaling should hold for each provisioned table and index, and the
//! smallest set of writes that gets it there from what it holds now. An empty plan means a run
//! changes nothing.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::actuation::Settlement;
use crate::capacity::{Dimension, ScheduledRange};
use crate::environment::Environment;
use crate::tags::{MAX_CAPACITY_TAG, MIN_CAPACITY_TAG, TARGET_TAG};

/// Policy settings for one scalable target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScalingSettings {
    pub target_pct: f64,
    pub min_capacity: f64,
    pub max_capacity: f64,
}

/// Defaults by environment, when there is no traffic to choose from: production keeps more
/// capacity in hand, development less.
pub fn environment_defaults(environment: Environment) -> ScalingSettings {
    match environment {
        Environment::Prod => ScalingSettings {
            target_pct: 70.0,
            min_capacity: 5.0,
            max_capacity: 4000.0,
        },
        Environment::Staging => ScalingSettings {
            target_pct: 75.0,
            min_capacity: 2.0,
            max_capacity: 1000.0,
        },
        Environment::Dev => ScalingSettings {
            target_pct: 85.0,
            min_capacity: 1.0,
            max_capacity: 200.0,
        },
    }
}

/// Per-table overrides from tags: `trimtab:target` (20..=90), `trimtab:min`, `trimtab:max`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Overrides {
    pub target_pct: Option<f64>,
    pub min_capacity: Option<f64>,
    pub max_capacity: Option<f64>,
}

impl Overrides {
    /// Reads the tags; a malformed value is an error naming the tag.
    pub fn from_tags(tags: &BTreeMap<String, String>) -> Result<Self, String> {
        let num = |key: &str, lo: f64, hi: f64| -> Result<Option<f64>, String> {
            match tags.get(key) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<f64>() {
                    Ok(x) if (lo..=hi).contains(&x) => Ok(Some(x)),
                    _ => Err(format!(
                        "tag {key}={v}: expected a number from {lo} to {hi}"
                    )),
                },
            }
        };
        let o = Self {
            target_pct: num(TARGET_TAG, 20.0, 90.0)?,
            min_capacity: num(MIN_CAPACITY_TAG, 1.0, 40_000.0)?,
            max_capacity: num(MAX_CAPACITY_TAG, 1.0, 40_000.0)?,
        };
        if let (Some(lo), Some(hi)) = (o.min_capacity, o.max_capacity)
            && lo > hi
        {
            return Err(format!("tags trimtab:min={lo} > trimtab:max={hi}"));
        }
        Ok(o)
    }

    /// Applies the overrides on top of `base`, keeping min <= max.
    pub fn apply(&self, base: ScalingSettings) -> ScalingSettings {
        let min = self.min_capacity.unwrap_or(base.min_capacity).max(1.0);
        let max = self.max_capacity.unwrap_or(base.max_capacity).max(min);
        ScalingSettings {
            target_pct: self.target_pct.unwrap_or(base.target_pct),
            min_capacity: min,
            max_capacity: max,
        }
    }
}

/// The desired state of one scalable target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    pub resource_id: String,
    /// `dynamodb:table:ReadCapacityUnits` and so on.
    pub scalable_dimension: String,
    pub dimension: Dimension,
    pub settings: ScalingSettings,
    /// Take over scaling policies Trimtab did not create (the table's `trimtab:managed=true`
    /// tag, or `adopt` in the event). Without it a target with a foreign policy is left alone.
    #[serde(default)]
    pub adopt: bool,
    /// Trimtab's scheduled actions for the target (predictive scaling); empty: none, and any it
    /// made before are removed.
    #[serde(default)]
    pub scheduled_actions: Vec<ScheduledAction>,
    /// What the target should hold where the schedule cannot be written (someone else's
    /// scheduled actions are on it): target tracking alone. `None`: `settings`.
    #[serde(default)]
    pub unscheduled: Option<ScalingSettings>,
}

/// A scheduled action exactly as `PutScheduledAction` takes it: `schedule` in Application Auto
/// Scaling's six-field `cron(minutes hours day-of-month month day-of-week year)`, `timezone` an
/// IANA name, and the range it sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledAction {
    pub name: String,
    pub schedule: String,
    pub timezone: String,
    pub min_capacity: f64,
    pub max_capacity: f64,
}

/// The time zone Trimtab's schedules are written in unless a resource names its own
/// (`trimtab:timezone`).
pub const SCHEDULE_TIMEZONE: &str = "UTC";

impl ScheduledAction {
    /// The action that sets `r`'s range at its minute, every day or Monday to Friday, in
    /// `timezone` (IANA). The name (`trimtab-weekdays-0748`, `trimtab-daily-0000`) is unique on
    /// the target, and stable while the time is: a changed range is written under the same name.
    pub fn from_range(r: &ScheduledRange, timezone: &str) -> Self {
        let (hour, minute) = (r.minute_of_day / 60 % 24, r.minute_of_day % 60);
        let (days, dom, dow) = if r.weekdays_only {
            ("weekdays", "?", "MON-FRI")
        } else {
            ("daily", "*", "?")
        };
        Self {
            name: format!("trimtab-{days}-{hour:02}{minute:02}"),
            schedule: format!("cron({minute} {hour} {dom} * {dow} *)"),
            timezone: timezone.to_owned(),
            min_capacity: r.min_capacity.max(1.0),
            max_capacity: r.max_capacity.max(r.min_capacity.max(1.0)),
        }
    }

    /// Same schedule, time zone and range.
    fn same(&self, other: &Self) -> bool {
        self.name == other.name
            && self.schedule == other.schedule
            && self.timezone == other.timezone
            && (self.min_capacity - other.min_capacity).abs() < EPSILON
            && (self.max_capacity - other.max_capacity).abs() < EPSILON
    }
}

/// (resource id, scalable dimension): how Application Auto Scaling names a scalable target.
pub type TargetKey = (String, String);

/// A scaling policy by name, with its target where it is target tracking.
pub type NamedPolicy = (String, Option<f64>);

/// What Application Auto Scaling holds now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Existing {
    /// (min, max) of each registered target.
    pub targets: HashMap<TargetKey, (f64, f64)>,
    pub policies: HashMap<TargetKey, Vec<NamedPolicy>>,
    /// Every scheduled action of each target, Trimtab's and anyone else's.
    pub scheduled: HashMap<TargetKey, Vec<ScheduledAction>>,
}

impl Existing {
    /// The scheduled action `name` of a target, if there is one.
    pub fn scheduled_action(&self, key: &TargetKey, name: &str) -> Option<&ScheduledAction> {
        self.scheduled.get(key)?.iter().find(|a| a.name == name)
    }
}

/// The name Trimtab gives the policies it creates.
pub fn policy_name(d: Dimension) -> &'static str {
    match d {
        Dimension::Read => "trimtab-read-utilization",
        Dimension::Write => "trimtab-write-utilization",
    }
}

/// One write, with what it replaces (`None`: nothing there yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Step {
    RegisterScalableTarget {
        resource_id: String,
        scalable_dimension: String,
        min_capacity: f64,
        max_capacity: f64,
        was: Option<(f64, f64)>,
    },
    PutScalingPolicy {
        resource_id: String,
        scalable_dimension: String,
        dimension: Dimension,
        policy_name: String,
        target_pct: f64,
        was: Option<f64>,
    },
    PutScheduledAction {
        resource_id: String,
        scalable_dimension: String,
        scheduled_action: ScheduledAction,
        was: Option<ScheduledAction>,
    },
    DeleteScheduledAction {
        resource_id: String,
        scalable_dimension: String,
        was: ScheduledAction,
    },
}

impl Step {
    /// The scalable target it writes to.
    pub fn key(&self) -> TargetKey {
        let (r, d) = self.target();
        (r.to_owned(), d.to_owned())
    }

    fn target(&self) -> (&str, &str) {
        match self {
            Self::RegisterScalableTarget {
                resource_id,
                scalable_dimension,
                ..
            }
            | Self::PutScalingPolicy {
                resource_id,
                scalable_dimension,
                ..
            }
            | Self::PutScheduledAction {
                resource_id,
                scalable_dimension,
                ..
            }
            | Self::DeleteScheduledAction {
                resource_id,
                scalable_dimension,
                ..
            } => (resource_id, scalable_dimension),
        }
    }

    /// The scalable target it writes to: `<resource id> <scalable dimension>`.
    pub fn resource(&self) -> String {
        let (r, d) = self.target();
        format!("{r} {d}")
    }

    /// What it replaces, as JSON (`null`: nothing), enough to restore it.
    pub fn before(&self) -> serde_json::Value {
        match self {
            Self::RegisterScalableTarget { was, .. } => {
                serde_json::json!(was.map(
                    |(min, max)| serde_json::json!({"min_capacity": min, "max_capacity": max})
                ))
            }
            Self::PutScalingPolicy {
                policy_name, was, ..
            } => {
                serde_json::json!(
                    was.map(|t| serde_json::json!({"policy_name": policy_name, "target_pct": t}))
                )
            }
            Self::PutScheduledAction { was, .. } => serde_json::json!(was),
            Self::DeleteScheduledAction { was, .. } => serde_json::json!(was),
        }
    }

    /// A one-line diff for the operator.
    pub fn describe(&self) -> String {
        match self {
            Self::RegisterScalableTarget {
                resource_id,
                scalable_dimension,
                min_capacity,
                max_capacity,
                was,
            } => match was {
                Some((lo, hi)) => format!(
                    "~ {resource_id} {scalable_dimension}: min {lo} -> {min_capacity}, max {hi} -> {max_capacity}"
                ),
                None => format!(
                    "+ {resource_id} {scalable_dimension}: scalable target min {min_capacity}, max {max_capacity}"
                ),
            },
            Self::PutScalingPolicy {
                resource_id,
                scalable_dimension,
                policy_name,
                target_pct,
                was,
                ..
            } => match was {
                Some(old) => format!(
                    "~ {resource_id} {scalable_dimension}: {policy_name} target {old}% -> {target_pct}%"
                ),
                None => format!(
                    "+ {resource_id} {scalable_dimension}: {policy_name} target {target_pct}%"
                ),
            },
            Self::PutScheduledAction {
                scheduled_action: a,
                was,
                ..
            } => {
                let (r, d) = self.target();
                let what = format!(
                    "{} {} {}: min {}, max {}",
                    a.name, a.schedule, a.timezone, a.min_capacity, a.max_capacity
                );
                match was {
                    Some(_) => format!("~ {r} {d}: scheduled action {what}"),
                    None => format!("+ {r} {d}: scheduled action {what}"),
                }
            }
            Self::DeleteScheduledAction { was, .. } => {
                let (r, d) = self.target();
                format!("- {r} {d}: scheduled action {} {}", was.name, was.schedule)
            }
        }
    }
}

const EPSILON: f64 = 1e-6;

impl Step {
    /// Settles a recorded write from what Application Auto Scaling holds now: the write's value
    /// there means it happened, the value it replaced means it did not, anything else means
    /// someone else has written since.
    pub fn settle(&self, live: &Existing) -> Settlement {
        match self {
            Self::RegisterScalableTarget {
                resource_id,
                scalable_dimension,
                min_capacity,
                max_capacity,
                was,
            } => {
                let key = (resource_id.clone(), scalable_dimension.clone());
                let now = live.targets.get(&key).copied();
                let same = |a: Option<(f64, f64)>, b: Option<(f64, f64)>| match (a, b) {
                    (Some((a0, a1)), Some((b0, b1))) => {
                        (a0 - b0).abs() < EPSILON && (a1 - b1).abs() < EPSILON
                    }
                    (None, None) => true,
                    _ => false,
                };
                if same(now, Some((*min_capacity, *max_capacity))) {
                    Settlement::Applied
                } else if same(now, *was) {
                    Settlement::NotApplied("the scalable target is as it was".to_owned())
                } else {
                    Settlement::Superseded(format!(
                        "the scalable target is now {now:?}: changed by someone else"
                    ))
                }
            }
            Self::PutScalingPolicy {
                resource_id,
                scalable_dimension,
                policy_name,
                target_pct,
                was,
                ..
            } => {
                let key = (resource_id.clone(), scalable_dimension.clone());
                let now = live
                    .policies
                    .get(&key)
                    .and_then(|ps| ps.iter().find(|(n, _)| n == policy_name))
                    .and_then(|(_, t)| *t);
                let same = |a: Option<f64>, b: Option<f64>| match (a, b) {
                    (Some(a), Some(b)) => (a - b).abs() < EPSILON,
                    (None, None) => true,
                    _ => false,
                };
                if same(now, Some(*target_pct)) {
                    Settlement::Applied
                } else if same(now, *was) {
                    Settlement::NotApplied(format!("policy {policy_name} is as it was"))
                } else {
                    Settlement::Superseded(format!(
                        "policy {policy_name} now targets {now:?}: changed by someone else"
                    ))
                }
            }
            Self::PutScheduledAction {
                scheduled_action: a,
                was,
                ..
            } => settle_scheduled(live, &self.key(), &a.name, Some(a), was.as_ref()),
            Self::DeleteScheduledAction { was, .. } => {
                settle_scheduled(live, &self.key(), &was.name, None, Some(was))
            }
        }
    }
}

/// Settles a scheduled-action write: `to` is what the write leaves (`None`: deleted), `was`
/// what it replaced.
fn settle_scheduled(
    live: &Existing,
    key: &TargetKey,
    name: &str,
    to: Option<&ScheduledAction>,
    was: Option<&ScheduledAction>,
) -> Settlement {
    let now = live.scheduled_action(key, name);
    let same = |a: Option<&ScheduledAction>, b: Option<&ScheduledAction>| match (a, b) {
        (Some(a), Some(b)) => a.same(b),
        (None, None) => true,
        _ => false,
    };
    if same(now, to) {
        Settlement::Applied
    } else if same(now, was) {
        Settlement::NotApplied(format!("scheduled action {name} is as it was"))
    } else {
        Settlement::Superseded(format!(
            "scheduled action {name} is now {:?}: changed by someone else",
            now.map(|a| (&a.schedule, a.min_capacity, a.max_capacity))
        ))
    }
}

/// Whether a scaling policy is one Trimtab made (its names start `trimtab-`).
pub fn is_trimtab_policy(name: &str) -> bool {
    name.starts_with("trimtab-")
}

/// A scalable target with scaling policies or scheduled actions someone else made. Foreign
/// policies leave the whole target alone (unless adopted); foreign scheduled actions are never
/// touched, and Trimtab adds no schedule of its own beside them (two schedules would move the
/// minimum against each other).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Foreign {
    pub resource_id: String,
    pub scalable_dimension: String,
    pub policies: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scheduled_actions: Vec<String>,
}

/// The writes a run would make, and the targets it leaves to their owners.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanOutcome {
    pub steps: Vec<Step>,
    pub foreign: Vec<Foreign>,
}

/// The writes that bring `existing` to `desired`. A target carrying a policy Trimtab did not
/// make is left alone (and reported) unless adopted; a target whose policy already tracks the
/// desired value is left alone; a drifted policy is replaced under its own name, so a target
/// never ends up with two target-tracking policies pulling apart.
pub fn plan(desired: &[Desired], existing: &Existing) -> PlanOutcome {
    let mut out = PlanOutcome::default();
    for d in desired {
        let key = (d.resource_id.clone(), d.scalable_dimension.clone());
        let foreign: Vec<String> = existing
            .policies
            .get(&key)
            .into_iter()
            .flatten()
            .map(|(n, _)| n.clone())
            .filter(|n| !is_trimtab_policy(n))
            .collect();
        let foreign_scheduled: Vec<String> = existing
            .scheduled
            .get(&key)
            .into_iter()
            .flatten()
            .map(|a| a.name.clone())
            .filter(|n| !is_trimtab_policy(n))
            .collect();
        if (!foreign.is_empty() && !d.adopt) || !foreign_scheduled.is_empty() {
            out.foreign.push(Foreign {
                resource_id: d.resource_id.clone(),
                scalable_dimension: d.scalable_dimension.clone(),
                policies: foreign.clone(),
                scheduled_actions: foreign_scheduled.clone(),
            });
        }
        if !foreign.is_empty() && !d.adopt {
            continue;
        }
        let steps = &mut out.steps;
        // Trimtab's own schedule: nothing beside someone else's, and then the settings that hold
        // without it.
        let (wanted, s): (&[ScheduledAction], ScalingSettings) = if foreign_scheduled.is_empty() {
            (&d.scheduled_actions, d.settings)
        } else {
            (&[], d.unscheduled.unwrap_or(d.settings))
        };
        let all: &[ScheduledAction] = existing.scheduled.get(&key).map_or(&[], Vec::as_slice);
        // While a scheduled action holds the range (one of Trimtab's that stays, or someone
        // else's), the range is left to it: registering the base range would undo it mid-day.
        let holders = all
            .iter()
            .filter(|a| !is_trimtab_policy(&a.name) || wanted.iter().any(|w| w.name == a.name));
        let registered = existing.targets.get(&key).copied();
        let same_range = registered.is_some_and(|(lo, hi)| {
            let is = |min: f64, max: f64| (lo - min).abs() < EPSILON && (hi - max).abs() < EPSILON;
            is(s.min_capacity, s.max_capacity)
                || holders.clone().any(|a| is(a.min_capacity, a.max_capacity))
        });
        if !same_range {
            steps.push(Step::RegisterScalableTarget {
                resource_id: d.resource_id.clone(),
                scalable_dimension: d.scalable_dimension.clone(),
                min_capacity: s.min_capacity,
                max_capacity: s.max_capacity,
                was: registered,
            });
        }
        let policies = existing
            .policies
            .get(&key)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let tracking = policies
            .iter()
            .any(|(_, t)| t.is_some_and(|t| (t - s.target_pct).abs() < EPSILON));
        if !tracking {
            let (name, was) = policies
                .iter()
                .find(|(_, t)| t.is_some())
                .map(|(n, t)| (n.clone(), *t))
                .unwrap_or_else(|| (policy_name(d.dimension).to_owned(), None));
            steps.push(Step::PutScalingPolicy {
                resource_id: d.resource_id.clone(),
                scalable_dimension: d.scalable_dimension.clone(),
                dimension: d.dimension,
                policy_name: name,
                target_pct: s.target_pct,
                was,
            });
        }
        steps.extend(scheduled_steps(&key, wanted, all));
    }
    out
}

/// The writes that bring the scheduled actions on a target Trimtab registered itself (a
/// provisioned alias) to `wanted`, and its range back to `base` where no action that stays holds
/// the range it has now (a raise that fired and is no longer wanted would otherwise leave the
/// minimum up for good: deleting an action undoes nothing it did). `Err` says why the target is
/// left alone: someone else's scheduled action or scaling policy on it, or the target gone.
pub fn reschedule(
    key: &TargetKey,
    wanted: &[ScheduledAction],
    existing: &Existing,
    (base_min, base_max): (f64, f64),
) -> Result<Vec<Step>, String> {
    let all: &[ScheduledAction] = existing.scheduled.get(key).map_or(&[], Vec::as_slice);
    let foreign: Vec<&str> = all
        .iter()
        .map(|a| a.name.as_str())
        .chain(
            existing
                .policies
                .get(key)
                .into_iter()
                .flatten()
                .map(|(n, _)| n.as_str()),
        )
        .filter(|n| !is_trimtab_policy(n))
        .collect();
    if !foreign.is_empty() {
        return Err(format!(
            "someone else's autoscaling is on it ({})",
            foreign.join(", ")
        ));
    }
    let Some((lo, hi)) = existing.targets.get(key).copied() else {
        return Err("its scalable target is gone".to_owned());
    };
    let is = |min: f64, max: f64| (lo - min).abs() < EPSILON && (hi - max).abs() < EPSILON;
    let held = is(base_min, base_max)
        || all
            .iter()
            .filter(|a| wanted.iter().any(|w| w.name == a.name))
            .any(|a| is(a.min_capacity, a.max_capacity));
    let mut steps = Vec::new();
    if !held {
        steps.push(Step::RegisterScalableTarget {
            resource_id: key.0.clone(),
            scalable_dimension: key.1.clone(),
            min_capacity: base_min,
            max_capacity: base_max,
            was: Some((lo, hi)),
        });
    }
    steps.extend(scheduled_steps(key, wanted, all));
    Ok(steps)
}

/// The writes that bring a target's scheduled actions (`all`, Trimtab's and anyone else's) to
/// `wanted`: each wanted action put where it is missing or differs, each of Trimtab's own
/// (`trimtab-`) that is no longer wanted deleted. Anyone else's is never written or deleted.
pub fn scheduled_steps(
    (resource_id, scalable_dimension): &TargetKey,
    wanted: &[ScheduledAction],
    all: &[ScheduledAction],
) -> Vec<Step> {
    let ours: Vec<&ScheduledAction> = all.iter().filter(|a| is_trimtab_policy(&a.name)).collect();
    let mut steps = Vec::new();
    for w in wanted {
        let now = ours.iter().find(|a| a.name == w.name);
        if now.is_some_and(|a| a.same(w)) {
            continue;
        }
        steps.push(Step::PutScheduledAction {
            resource_id: resource_id.clone(),
            scalable_dimension: scalable_dimension.clone(),
            scheduled_action: w.clone(),
            was: now.map(|a| (*a).clone()),
        });
    }
    for a in ours {
        if !wanted.iter().any(|w| w.name == a.name) {
            steps.push(Step::DeleteScheduledAction {
                resource_id: resource_id.clone(),
                scalable_dimension: scalable_dimension.clone(),
                was: a.clone(),
            });
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(target: f64) -> Desired {
        Desired {
            adopt: false,
            scheduled_actions: Vec::new(),
            unscheduled: None,
            resource_id: "table/orders".into(),
            scalable_dimension: "dynamodb:table:ReadCapacityUnits".into(),
            dimension: Dimension::Read,
            settings: ScalingSettings {
                target_pct: target,
                min_capacity: 5.0,
                max_capacity: 100.0,
            },
        }
    }

    fn key() -> (String, String) {
        (
            "table/orders".into(),
            "dynamodb:table:ReadCapacityUnits".into(),
        )
    }

    /// The target in step with `desired(70.0)`: its range, and Trimtab's policy at 70%.
    fn in_step() -> Existing {
        let mut e = Existing::default();
        e.targets.insert(key(), (5.0, 100.0));
        e.policies
            .insert(key(), vec![("trimtab-read-utilization".into(), Some(70.0))]);
        e
    }

    #[test]
    fn nothing_there_means_register_and_put() {
        let steps = plan(&[desired(70.0)], &Existing::default()).steps;
        assert_eq!(steps.len(), 2);
        assert!(steps[0].describe().starts_with("+ table/orders"));
    }

    #[test]
    fn in_step_means_no_writes() {
        assert_eq!(plan(&[desired(70.0)], &in_step()), PlanOutcome::default());
    }

    #[test]
    fn a_foreign_policy_is_left_alone_and_reported_unless_adopted() {
        let mut e = Existing::default();
        e.targets.insert(key(), (1.0, 100.0));
        e.policies
            .insert(key(), vec![("console-made".into(), Some(50.0))]);
        let out = plan(&[desired(70.0)], &e);
        assert!(out.steps.is_empty());
        assert_eq!(out.foreign[0].policies, ["console-made"]);
        let adopted = Desired {
            adopt: true,
            ..desired(70.0)
        };
        assert_eq!(plan(&[adopted], &e).steps.len(), 2);
    }

    #[test]
    fn a_recorded_write_is_settled_from_what_is_there_now() {
        let step = Step::RegisterScalableTarget {
            resource_id: "table/orders".into(),
            scalable_dimension: "dynamodb:table:ReadCapacityUnits".into(),
            min_capacity: 5.0,
            max_capacity: 100.0,
            was: Some((1.0, 100.0)),
        };
        let mut e = Existing::default();
        e.targets.insert(key(), (5.0, 100.0));
        assert_eq!(step.settle(&e), Settlement::Applied);
        e.targets.insert(key(), (1.0, 100.0));
        assert!(matches!(step.settle(&e), Settlement::NotApplied(_)));
        e.targets.insert(key(), (3.0, 30.0));
        assert!(matches!(step.settle(&e), Settlement::Superseded(_)));
    }

    #[test]
    fn drift_is_corrected_under_the_existing_policy_name() {
        let mut e = Existing::default();
        e.targets.insert(key(), (1.0, 100.0));
        e.policies
            .insert(key(), vec![("legacy".into(), Some(50.0))]);
        let adopted = Desired {
            adopt: true,
            ..desired(70.0)
        };
        let steps = plan(&[adopted], &e).steps;
        assert_eq!(steps.len(), 2);
        assert_eq!(
            steps[0].describe(),
            "~ table/orders dynamodb:table:ReadCapacityUnits: min 1 -> 5, max 100 -> 100"
        );
        let Step::PutScalingPolicy {
            policy_name, was, ..
        } = &steps[1]
        else {
            panic!("policy step")
        };
        assert_eq!((policy_name.as_str(), *was), ("legacy", Some(50.0)));
    }

    #[test]
    fn tags_override_and_bad_tags_are_named() {
        let tags: BTreeMap<String, String> = [
            ("trimtab:target".to_owned(), "60".to_owned()),
            ("trimtab:min".to_owned(), "10".to_owned()),
        ]
        .into();
        let o = Overrides::from_tags(&tags).expect("valid");
        let s = o.apply(environment_defaults(Environment::Dev));
        assert_eq!(
            (s.target_pct, s.min_capacity, s.max_capacity),
            (60.0, 10.0, 200.0)
        );
        let bad: BTreeMap<String, String> = [("trimtab:target".to_owned(), "95".to_owned())].into();
        assert!(
            Overrides::from_tags(&bad)
                .expect_err("out of range")
                .contains("trimtab:target")
        );
        assert_eq!(environment_defaults(Environment::Prod).min_capacity, 5.0);
    }

    fn weekday_raise() -> ScheduledAction {
        ScheduledAction::from_range(
            &ScheduledRange {
                minute_of_day: 7 * 60 + 48,
                weekdays_only: true,
                min_capacity: 400.0,
                max_capacity: 100.0,
            },
            SCHEDULE_TIMEZONE,
        )
    }

    #[test]
    fn a_provisioned_aliases_schedule_is_brought_back_and_a_stale_raise_undone() {
        let key = (
            "function:checkout:live".to_owned(),
            "lambda:function:ProvisionedConcurrency".to_owned(),
        );
        let raise = ScheduledAction {
            name: "trimtab-weekdays-0847".into(),
            schedule: "cron(47 8 ? * MON-FRI *)".into(),
            timezone: "UTC".into(),
            min_capacity: 45.0,
            max_capacity: 60.0,
        };
        let mut e = Existing::default();
        e.targets.insert(key.clone(), (45.0, 60.0));
        e.scheduled.insert(key.clone(), vec![raise.clone()]);
        // In step, mid-morning: the raise that stays holds the range; nothing to write.
        let same = reschedule(&key, std::slice::from_ref(&raise), &e, (6.0, 60.0));
        assert_eq!(same, Ok(vec![]));
        // The forecast no longer wants it: deleted, and the raised minimum put back.
        let steps = reschedule(&key, &[], &e, (6.0, 60.0)).expect("ours");
        assert!(
            matches!(&steps[0], Step::RegisterScalableTarget { min_capacity, .. } if *min_capacity == 6.0),
            "{steps:?}"
        );
        assert!(
            matches!(&steps[1], Step::DeleteScheduledAction { .. }),
            "{steps:?}"
        );
        // Someone else's policy on the alias, or the target gone: left alone.
        let mut theirs = e.clone();
        theirs
            .policies
            .insert(key.clone(), vec![("team-scaling".into(), Some(50.0))]);
        assert!(reschedule(&key, &[], &theirs, (6.0, 60.0)).is_err());
        assert!(reschedule(&key, &[], &Existing::default(), (6.0, 60.0)).is_err());
    }

    #[test]
    fn scheduled_actions_are_in_put_scheduled_actions_own_format() {
        let a = weekday_raise();
        assert_eq!(a.name, "trimtab-weekdays-0748");
        assert_eq!(a.schedule, "cron(48 7 ? * MON-FRI *)");
        assert_eq!(a.timezone, "UTC");
        // min <= max always.
        assert_eq!((a.min_capacity, a.max_capacity), (400.0, 400.0));
        let daily = ScheduledAction::from_range(
            &ScheduledRange {
                minute_of_day: 0,
                weekdays_only: false,
                min_capacity: 5.0,
                max_capacity: 100.0,
            },
            "Europe/Berlin",
        );
        assert_eq!(daily.timezone, "Europe/Berlin");
        assert_eq!(
            (daily.name.as_str(), daily.schedule.as_str()),
            ("trimtab-daily-0000", "cron(0 0 * * ? *)")
        );
    }

    #[test]
    fn a_schedule_is_written_once_kept_while_in_force_and_removed_when_no_longer_wanted() {
        let want = Desired {
            scheduled_actions: vec![weekday_raise()],
            ..desired(70.0)
        };
        let mut e = in_step();
        let steps = plan(std::slice::from_ref(&want), &e).steps;
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert!(steps[0].describe().starts_with(
            "+ table/orders dynamodb:table:ReadCapacityUnits: scheduled action trimtab-weekdays-0748"
        ));
        // Written, and in force (the raise holds the range): nothing to do.
        e.scheduled.insert(key(), vec![weekday_raise()]);
        e.targets.insert(key(), (400.0, 400.0));
        assert_eq!(
            plan(std::slice::from_ref(&want), &e),
            PlanOutcome::default()
        );
        assert_eq!(steps[0].settle(&e), Settlement::Applied);
        // No longer wanted: removed, and the range put back.
        let steps = plan(&[desired(70.0)], &e).steps;
        assert_eq!(steps.len(), 2, "{steps:?}");
        assert!(matches!(steps[1], Step::DeleteScheduledAction { .. }));
        e.scheduled.clear();
        assert_eq!(steps[1].settle(&e), Settlement::Applied);
    }

    #[test]
    fn someone_elses_scheduled_actions_are_never_touched_and_get_no_neighbour() {
        let want = Desired {
            scheduled_actions: vec![weekday_raise()],
            ..desired(70.0)
        };
        let mut e = in_step();
        let theirs = ScheduledAction {
            name: "month-end".into(),
            schedule: "cron(0 6 L * ? *)".into(),
            timezone: "Europe/Berlin".into(),
            min_capacity: 50.0,
            max_capacity: 100.0,
        };
        e.scheduled.insert(key(), vec![theirs]);
        let out = plan(std::slice::from_ref(&want), &e);
        assert!(out.steps.is_empty(), "{:?}", out.steps);
        assert_eq!(out.foreign[0].scheduled_actions, ["month-end"]);
        // Their action holding the range is left to it; without the schedule, target tracking
        // alone is what the target gets.
        e.targets.insert(key(), (50.0, 100.0));
        assert!(plan(std::slice::from_ref(&want), &e).steps.is_empty());
        let alone = Desired {
            settings: ScalingSettings {
                target_pct: 90.0,
                ..want.settings
            },
            unscheduled: Some(want.settings),
            ..want.clone()
        };
        assert!(plan(&[alone], &e).steps.is_empty());
        // A changed schedule of ours is replaced under its name; the record keeps the old one.
        let mut e = in_step();
        let old = ScheduledAction {
            min_capacity: 300.0,
            max_capacity: 300.0,
            ..weekday_raise()
        };
        e.scheduled.insert(key(), vec![old.clone()]);
        let want = Desired {
            scheduled_actions: vec![weekday_raise()],
            ..desired(70.0)
        };
        let steps = plan(std::slice::from_ref(&want), &e).steps;
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].before()["min_capacity"], 300.0);
        assert!(matches!(steps[0].settle(&e), Settlement::NotApplied(_)));
        // Mid-day, the old raise holds the range: the new one is written, the range left alone
        // (the base range now would drop the minimum until tomorrow's raise).
        e.targets.insert(key(), (300.0, 300.0));
        let steps = plan(std::slice::from_ref(&want), &e).steps;
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert!(matches!(steps[0], Step::PutScheduledAction { .. }));
        // An action of ours on its way out holds nothing: the range goes back with it.
        let steps = plan(&[desired(70.0)], &e).steps;
        assert!(
            matches!(steps[0], Step::RegisterScalableTarget { .. }),
            "{steps:?}"
        );
    }
}
