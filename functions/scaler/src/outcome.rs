//! What the scaler answers for one event, as types, serialised in one place ([`Outcome::to_json`]).
//!
//! The JSON is a contract: the integration tests, the `invoke` tool and the embedded-metric
//! counting (`autopilot::metrics::count_actions`: every object whose `action` is `scaled` and
//! whose `dryRun` is not true, however nested) read it. Key order is part of what a reader sees
//! in the logs: serde_json keeps insertion order in this workspace (its `preserve_order` feature
//! is on), so fields are declared in the order the answers have always listed them, and the tests
//! below compare serialised strings, not just values.

use serde::Serialize;
use serde_json::Value;

use crate::capacity::{grow_group, EcsCapacity, EcsCapacityKind, GroupChange, Growth};
use crate::steps::Refusal;

/// The answer to one event. `action` names the variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Outcome {
    /// Not the scaler's business: an event it does not handle (settled by `screen`), an alarm
    /// without `autopilot:scale`, a cluster that is not managed, a cluster without a group.
    Ignored {
        #[serde(skip_serializing_if = "Option::is_none")]
        alarm: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        service: Option<String>,
        reason: String,
    },
    /// This alarm transition was handled already (EventBridge redelivered it under a new id).
    Replay { alarm: String, transition: String },
    /// The alarm cannot be measured, or the service it names does not exist.
    Skipped {
        #[serde(skip_serializing_if = "Option::is_none")]
        alarm: Option<String>,
        reason: String,
    },
    /// The alarm's step asks for no change now. `desired` and `origin` come with the answers of
    /// the scaling decision itself (`steps::Decision::Nothing`).
    #[serde(rename = "none")]
    Unchanged {
        alarm: String,
        service: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        desired: Option<u32>,
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        origin: Option<Origin>,
    },
    /// A change was asked for and is refused for now (bounds, cooldown, rollout).
    Refused { alarm: String, service: String, from: u32, wanted: i64, refusal: Refusal, reason: String, origin: Origin },
    Scaled(Scaled),
    /// The schedule's pass: one answer per alarm in ALARM that scales something, and the idle
    /// instances removed.
    ReEvaluated { alarms: Vec<Outcome>, capacity: Vec<ClusterChange> },
    /// "ECS Service Action" SERVICE_TASK_PLACEMENT_FAILURE, with what the cluster's group did.
    PlacementFailure {
        cluster: String,
        service: String,
        capacity: Capacity,
        #[serde(rename = "dryRun")]
        dry_run: bool,
    },
}

impl Outcome {
    pub fn to_json(&self) -> Value {
        // Strings, integers, booleans and string-keyed maps only: serialising cannot fail.
        serde_json::to_value(self).expect("an outcome is plain data")
    }

    pub fn ignored(reason: impl Into<String>) -> Self {
        Outcome::Ignored { alarm: None, service: None, reason: reason.into() }
    }

    pub fn ignored_alarm(alarm: &str, reason: impl Into<String>) -> Self {
        Outcome::Ignored { alarm: Some(alarm.to_string()), service: None, reason: reason.into() }
    }

    pub fn skipped(alarm: Option<&str>, reason: impl Into<String>) -> Self {
        Outcome::Skipped { alarm: alarm.map(String::from), reason: reason.into() }
    }

    pub fn unchanged(alarm: &str, service: &str, reason: impl Into<String>) -> Self {
        Outcome::Unchanged { alarm: alarm.into(), service: service.into(), desired: None, reason: reason.into(), origin: None }
    }
}

/// What brought an alarm to a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// A "CloudWatch Alarm State Change" event.
    Alarm,
    /// The re-evaluation schedule, for an alarm that stays in ALARM.
    ReEvaluation,
}

/// desiredCount changed (or would have, in a dry run).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scaled {
    pub alarm: String,
    pub cluster: String,
    pub service: String,
    pub from: u32,
    pub to: u32,
    /// The step adjustment applied, as the tag spells it (`+2`, `-10%`, `=4`).
    pub step: String,
    #[serde(rename = "dryRun")]
    pub dry_run: bool,
    /// `null` for a scale-in, or for a cluster without an `autopilot:asg` group to manage.
    pub capacity: Option<Capacity>,
    pub origin: Origin,
}

/// What the re-evaluation did to a cluster's capacity.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum ClusterChange {
    /// One idle instance drained and terminated, the group's desired capacity one lower.
    Shrunk {
        cluster: String,
        group: String,
        instance: String,
        from: i64,
        to: i64,
        #[serde(rename = "dryRun")]
        dry_run: bool,
    },
}

/// The capacity check of the cluster's Auto Scaling group (after a scale-out, or for a
/// placement failure).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Capacity {
    Checked(CapacityCheck),
    /// `autopilot:asg` names a group that does not exist. `error` is always [`GROUP_NOT_FOUND`].
    GroupNotFound { group: String, error: &'static str },
    /// The check itself failed; the scale-out before it stands.
    Unchecked { error: String },
    /// ECS owns the cluster's capacity through `provider` (ECS Managed Instances, or managed
    /// scaling of the `autopilot:asg` group): no group is grown or shrunk by the scaler.
    EcsManaged {
        provider: String,
        #[serde(rename = "ecsManages")]
        kind: EcsCapacityKind,
    },
}

pub const GROUP_NOT_FOUND: &str = "group not found";

impl Capacity {
    pub fn group_not_found(group: String) -> Self {
        Capacity::GroupNotFound { group, error: GROUP_NOT_FOUND }
    }

    pub fn ecs_managed(owner: EcsCapacity) -> Self {
        Capacity::EcsManaged { provider: owner.provider, kind: owner.kind }
    }
}

/// The group's numbers and what they decide (see [`crate::capacity::check`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CapacityCheck {
    pub group: String,
    pub to_place: i64,
    #[serde(flatten)]
    pub growth: Growth,
    pub action: GroupAction,
    pub desired: i64,
    pub max: i64,
    /// The new desired capacity, when the group grows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<i64>,
}

impl CapacityCheck {
    /// The decision `action` and `to` summarise.
    pub fn change(&self) -> GroupChange {
        grow_group(self.desired, self.max, self.growth.missing)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupAction {
    None,
    Grown,
    AtMax,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Each variant against the `json!` literal the handlers returned before outcomes were types:
    /// same keys, values, omissions and order.
    fn pins(outcome: &Outcome, was: Value) {
        assert_eq!(outcome.to_json().to_string(), was.to_string());
    }

    /// The capacity value as `ensure_capacity` built it: the base, then action, desired, max, to.
    fn grown_was() -> Value {
        let mut grown = json!({"group": "stage01-asg", "toPlace": 2, "fitNow": 0, "perNewInstance": 8, "launching": 0, "missing": 1});
        grown["action"] = json!("grown");
        grown["desired"] = json!(2);
        grown["max"] = json!(6);
        grown["to"] = json!(3);
        grown
    }

    fn check() -> CapacityCheck {
        CapacityCheck {
            group: "stage01-asg".into(),
            to_place: 2,
            growth: Growth { fit_now: 0, per_new_instance: 8, launching: 0, missing: 1 },
            action: GroupAction::Grown,
            desired: 2,
            max: 6,
            to: Some(3),
        }
    }

    #[test]
    fn ignored() {
        pins(&Outcome::ignored_alarm("a", "state is neither ALARM nor OK"), json!({"action": "ignored", "alarm": "a", "reason": "state is neither ALARM nor OK"}));
        pins(&Outcome::ignored("schedule r is not a re-evaluation schedule"), json!({"action": "ignored", "reason": "schedule r is not a re-evaluation schedule"}));
        let no_group = Outcome::Ignored { alarm: None, service: Some("random".into()), reason: "cluster stage01 has no autopilot:asg group to grow".into() };
        pins(&no_group, json!({"action": "ignored", "service": "random", "reason": "cluster stage01 has no autopilot:asg group to grow"}));
    }

    #[test]
    fn replay() {
        pins(&Outcome::Replay { alarm: "a".into(), transition: "1764081312748".into() }, json!({"action": "replay", "alarm": "a", "transition": "1764081312748"}));
    }

    #[test]
    fn skipped() {
        pins(&Outcome::skipped(Some("a"), "no threshold in the alarm's reasonData"), json!({"action": "skipped", "alarm": "a", "reason": "no threshold in the alarm's reasonData"}));
        pins(&Outcome::skipped(None, "service stage01/random not found"), json!({"action": "skipped", "reason": "service stage01/random not found"}));
    }

    #[test]
    fn unchanged() {
        pins(&Outcome::unchanged("a", "random", "breach -3 matches no step"), json!({"action": "none", "alarm": "a", "service": "random", "reason": "breach -3 matches no step"}));
        let decided = Outcome::Unchanged { alarm: "a".into(), service: "random".into(), desired: Some(6), reason: "r".into(), origin: Some(Origin::ReEvaluation) };
        pins(&decided, json!({"action": "none", "alarm": "a", "service": "random", "desired": 6, "reason": "r", "origin": "re-evaluation"}));
    }

    #[test]
    fn refused() {
        let o = Outcome::Refused {
            alarm: "a".into(),
            service: "random".into(),
            from: 12,
            wanted: 14,
            refusal: Refusal::AtMax,
            reason: "at max 12 (autopilot:max)".into(),
            origin: Origin::Alarm,
        };
        pins(&o, json!({"action": "refused", "alarm": "a", "service": "random", "from": 12, "wanted": 14, "refusal": "at-max", "reason": "at max 12 (autopilot:max)", "origin": "alarm"}));
    }

    #[test]
    fn scaled_with_each_capacity() {
        let scaled = |capacity: Option<Capacity>, dry_run: bool| {
            Outcome::Scaled(Scaled {
                alarm: "a".into(),
                cluster: "stage01".into(),
                service: "random".into(),
                from: 4,
                to: 6,
                step: "+2".into(),
                dry_run,
                capacity,
                origin: Origin::Alarm,
            })
        };
        let was = |capacity: Value, dry: bool| {
            json!({
                "action": "scaled", "alarm": "a", "cluster": "stage01", "service": "random", "from": 4, "to": 6,
                "step": "+2", "dryRun": dry, "capacity": capacity, "origin": "alarm",
            })
        };
        pins(&scaled(None, false), was(Value::Null, false));
        pins(&scaled(Some(Capacity::Checked(check())), true), was(grown_was(), true));
        let mut none = json!({"group": "stage01-asg", "toPlace": 1, "fitNow": 7, "perNewInstance": 8, "launching": 0, "missing": 0});
        none["action"] = json!("none");
        none["desired"] = json!(2);
        none["max"] = json!(6);
        let room = CapacityCheck {
            to_place: 1,
            growth: Growth { fit_now: 7, per_new_instance: 8, launching: 0, missing: 0 },
            action: GroupAction::None,
            to: None,
            ..check()
        };
        pins(&scaled(Some(Capacity::Checked(room)), false), was(none, false));
        pins(&scaled(Some(Capacity::group_not_found("gone".into())), false), was(json!({"group": "gone", "error": "group not found"}), false));
        pins(&scaled(Some(Capacity::Unchecked { error: "boom".into() }), false), was(json!({"error": "boom"}), false));
    }

    #[test]
    fn re_evaluated_with_a_shrunk_cluster() {
        let shrunk = ClusterChange::Shrunk { cluster: "stage01".into(), group: "stage01-asg".into(), instance: "i-1".into(), from: 2, to: 1, dry_run: false };
        let alarm = Outcome::unchanged("a", "random", "r");
        let o = Outcome::ReEvaluated { alarms: vec![alarm.clone()], capacity: vec![shrunk] };
        let shrunk_was = json!({"action": "shrunk", "cluster": "stage01", "group": "stage01-asg", "instance": "i-1", "from": 2, "to": 1, "dryRun": false});
        pins(&o, json!({"action": "re-evaluated", "alarms": [alarm.to_json()], "capacity": [shrunk_was]}));
        pins(&Outcome::ReEvaluated { alarms: vec![], capacity: vec![] }, json!({"action": "re-evaluated", "alarms": [], "capacity": []}));
    }

    #[test]
    fn placement_failure() {
        let o = Outcome::PlacementFailure { cluster: "stage01".into(), service: "random".into(), capacity: Capacity::Checked(check()), dry_run: false };
        pins(&o, json!({"action": "placement-failure", "cluster": "stage01", "service": "random", "capacity": grown_was(), "dryRun": false}));
        let full = CapacityCheck { desired: 6, action: GroupAction::AtMax, to: None, ..check() };
        let mut at_max = json!({"group": "stage01-asg", "toPlace": 2, "fitNow": 0, "perNewInstance": 8, "launching": 0, "missing": 1});
        at_max["action"] = json!("at-max");
        at_max["desired"] = json!(6);
        at_max["max"] = json!(6);
        let o = Outcome::PlacementFailure { cluster: "stage01".into(), service: "random".into(), capacity: Capacity::Checked(full), dry_run: false };
        pins(&o, json!({"action": "placement-failure", "cluster": "stage01", "service": "random", "capacity": at_max, "dryRun": false}));
        let ecs = Capacity::ecs_managed(EcsCapacity { provider: "stage01-mi".into(), kind: EcsCapacityKind::ManagedInstances });
        let o = Outcome::PlacementFailure { cluster: "stage01".into(), service: "random".into(), capacity: ecs, dry_run: false };
        pins(&o, json!({"action": "placement-failure", "cluster": "stage01", "service": "random", "capacity": {"provider": "stage01-mi", "ecsManages": "managed-instances"}, "dryRun": false}));
        let scaling = Capacity::ecs_managed(EcsCapacity { provider: "stage01-cp".into(), kind: EcsCapacityKind::ManagedScaling });
        assert_eq!(serde_json::to_value(&scaling).unwrap(), json!({"provider": "stage01-cp", "ecsManages": "managed-scaling"}));
        let missing = Outcome::PlacementFailure { cluster: "stage01".into(), service: "random".into(), capacity: Capacity::group_not_found("gone".into()), dry_run: true };
        pins(&missing, json!({"action": "placement-failure", "cluster": "stage01", "service": "random", "capacity": {"group": "gone", "error": "group not found"}, "dryRun": true}));
    }

    /// Dry runs are not counted as actions; real scale-outs are, nested in a re-evaluation too.
    #[test]
    fn metrics_count_what_scaled() {
        let scaled = |dry_run| {
            Outcome::Scaled(Scaled {
                alarm: "a".into(),
                cluster: "c".into(),
                service: "s".into(),
                from: 1,
                to: 2,
                step: "+1".into(),
                dry_run,
                capacity: None,
                origin: Origin::ReEvaluation,
            })
        };
        let pass = Outcome::ReEvaluated { alarms: vec![scaled(false), scaled(true), Outcome::unchanged("a", "s", "r")], capacity: vec![] };
        assert_eq!(autopilot::metrics::count_actions(&pass.to_json()), 1);
    }
}
