//! What Application Auto Scaling should hold for each provisioned table and index, and the
//! smallest set of writes that gets it there from what it holds now. An empty plan means a run
//! changes nothing.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::actuation::Settlement;
use crate::capacity::Dimension;
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
}

impl Step {
    /// The scalable target it writes to.
    pub fn key(&self) -> TargetKey {
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
            } => (resource_id.clone(), scalable_dimension.clone()),
        }
    }

    /// The scalable target it writes to: `<resource id> <scalable dimension>`.
    pub fn resource(&self) -> String {
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
            } => format!("{resource_id} {scalable_dimension}"),
        }
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
        }
    }
}

/// Whether a scaling policy is one Trimtab made (its names start `trimtab-`).
pub fn is_trimtab_policy(name: &str) -> bool {
    name.starts_with("trimtab-")
}

/// A scalable target with scaling policies someone else made, left alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Foreign {
    pub resource_id: String,
    pub scalable_dimension: String,
    pub policies: Vec<String>,
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
        if !foreign.is_empty() && !d.adopt {
            out.foreign.push(Foreign {
                resource_id: d.resource_id.clone(),
                scalable_dimension: d.scalable_dimension.clone(),
                policies: foreign,
            });
            continue;
        }
        let steps = &mut out.steps;
        let s = d.settings;
        let registered = existing.targets.get(&key).copied();
        let same_range = registered.is_some_and(|(lo, hi)| {
            (lo - s.min_capacity).abs() < EPSILON && (hi - s.max_capacity).abs() < EPSILON
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
        if tracking {
            continue;
        }
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
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(target: f64) -> Desired {
        Desired {
            adopt: false,
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

    #[test]
    fn nothing_there_means_register_and_put() {
        let steps = plan(&[desired(70.0)], &Existing::default()).steps;
        assert_eq!(steps.len(), 2);
        assert!(steps[0].describe().starts_with("+ table/orders"));
    }

    #[test]
    fn in_step_means_no_writes() {
        let mut e = Existing::default();
        e.targets.insert(key(), (5.0, 100.0));
        e.policies
            .insert(key(), vec![("trimtab-read-utilization".into(), Some(70.0))]);
        assert_eq!(plan(&[desired(70.0)], &e), PlanOutcome::default());
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
}
