//! Cluster capacity arithmetic for EC2-backed clusters, as pure functions: which Auto Scaling
//! group backs a cluster, how big a task is, how many tasks of one size fit on the registered
//! container instances, how many instances are missing, and which idle instance (if any) may go.

use std::collections::BTreeMap;

use autopilot::tags::{self, TagError, Tags};
use serde::{Deserialize, Serialize};

use crate::outcome::{CapacityCheck, GroupAction};

/// What DescribeClusters says of a cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservedCluster {
    /// Only tags that have a value: a tag without one names no group.
    pub tags: Tags,
    pub capacity_providers: Vec<String>,
}

/// One of the cluster's capacity providers, from DescribeCapacityProviders.
#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
}

/// What backs a capacity provider (CapacityProvider `type`, ECS API reference).
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderKind {
    /// EC2_AUTOSCALING: a customer's Auto Scaling group, scaled by ECS when managed scaling is on.
    AutoScalingGroup { group_arn: String, managed_scaling: bool },
    /// MANAGED_INSTANCES: "Amazon ECS manages the underlying Amazon EC2 instances on your
    /// behalf" (CapacityProvider.type); there is no customer Auto Scaling group at all.
    ManagedInstances,
    /// FARGATE, FARGATE_SPOT, or a type this code does not know: no instances of ours.
    Other,
}

/// Through what ECS owns a cluster's EC2 capacity, when it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EcsCapacityKind {
    /// An ECS Managed Instances capacity provider launches and terminates the instances.
    ManagedInstances,
    /// A capacity provider with managed scaling scales the `autopilot:asg` group.
    ManagedScaling,
}

/// The capacity provider through which ECS owns the cluster's capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsCapacity {
    pub provider: String,
    pub kind: EcsCapacityKind,
}

/// The group `autopilot:asg` names, if the cluster has the tag.
pub fn tagged_group(cluster: &ObservedCluster) -> Result<Option<String>, TagError> {
    cluster.tags.get(tags::TAG_ASG).map(|raw| tags::parse_asg(raw)).transpose()
}

/// Whether ECS owns the cluster's capacity, and through which provider: an ECS Managed Instances
/// provider on the cluster (its instances belong to no group of ours, and ECS launches what
/// tasks need), or a provider with managed scaling over `group` (ECS scales the group and we must
/// not fight it). Managed Instances come first: with one on the cluster, no group is grown or
/// shrunk by us, whatever `autopilot:asg` names.
pub fn ecs_owned_capacity(group: Option<&str>, providers: &[Provider]) -> Option<EcsCapacity> {
    if let Some(p) = providers.iter().find(|p| p.kind == ProviderKind::ManagedInstances) {
        return Some(EcsCapacity { provider: p.name.clone(), kind: EcsCapacityKind::ManagedInstances });
    }
    let group = group?;
    let owns_group = |p: &&Provider| match &p.kind {
        ProviderKind::AutoScalingGroup { group_arn, managed_scaling } => {
            *managed_scaling && (group_arn == group || group_arn.ends_with(&format!("autoScalingGroupName/{group}")))
        }
        _ => false,
    };
    providers.iter().find(owns_group).map(|p| EcsCapacity { provider: p.name.clone(), kind: EcsCapacityKind::ManagedScaling })
}

/// What DescribeAutoScalingGroups says of a group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservedGroup {
    pub desired: i64,
    pub min: i64,
    pub max: i64,
    /// EC2 instance id → what the group says of it.
    pub members: BTreeMap<String, GroupMember>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupMember {
    pub protected: bool,
    /// `InService`, `Terminating`, `Terminating:Wait`, `Standby`, `Pending`, … (LifecycleState).
    pub lifecycle: String,
}

impl ObservedGroup {
    /// Instances outside the group, or protected from scale-in, are never touched.
    pub fn protected(&self, ec2_id: &str) -> bool {
        self.members.get(ec2_id).is_none_or(|m| m.protected)
    }

    /// Only an InService instance is ours to terminate: one the group is already terminating
    /// (its own scale-in, a lifecycle hook), launching or keeping in Standby has had its desired
    /// capacity dealt with, and decrementing it again would shrink the group twice.
    pub fn in_service(&self, ec2_id: &str) -> bool {
        self.members.get(ec2_id).is_some_and(|m| m.lifecycle == "InService")
    }
}

/// The sizes a task definition declares (nothing else of it: no environment, no secrets).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskDefSizes {
    /// Task-level `cpu` and `memory`, as strings (ECS's shape).
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub containers: Vec<ContainerSize>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ContainerSize {
    pub cpu: i32,
    pub memory: Option<i32>,
    pub memory_reservation: Option<i32>,
}

/// CPU units and MiB of one task (task-level values, else the sum over its containers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSize {
    pub cpu: i64,
    pub memory: i64,
}

impl TaskSize {
    /// The larger of each dimension.
    pub fn max(self, other: TaskSize) -> TaskSize {
        TaskSize { cpu: self.cpu.max(other.cpu), memory: self.memory.max(other.memory) }
    }
}

pub fn task_size(td: &TaskDefSizes) -> TaskSize {
    let num = |s: Option<&str>| s.and_then(|v| v.trim().parse::<i64>().ok());
    let containers = &td.containers;
    let cpu = num(td.cpu.as_deref()).unwrap_or_else(|| containers.iter().map(|c| c.cpu as i64).sum());
    let memory = num(td.memory.as_deref()).unwrap_or_else(|| {
        containers.iter().map(|c| c.memory.or(c.memory_reservation).unwrap_or(0) as i64).sum()
    });
    TaskSize { cpu, memory }
}

/// What DescribeContainerInstances says of one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub arn: String,
    pub ec2_id: Option<String>,
    pub status: String,
    pub remaining_cpu: i64,
    pub remaining_memory: i64,
    pub registered_cpu: i64,
    pub registered_memory: i64,
    pub running_tasks: i64,
    pub pending_tasks: i64,
    /// registeredAt, epoch seconds.
    pub registered_at: Option<i64>,
}

impl Instance {
    pub fn is_active(&self) -> bool {
        self.status == "ACTIVE"
    }

    pub fn is_idle(&self) -> bool {
        self.running_tasks == 0 && self.pending_tasks == 0
    }
}

/// Tasks of `size` that fit in `cpu`/`memory`. A task without a CPU reservation is limited by
/// memory only; a task that reserves nothing is counted as fitting once per instance.
pub fn fits(cpu: i64, memory: i64, size: TaskSize) -> i64 {
    let by = |have: i64, need: i64| if need > 0 { Some(have.max(0) / need) } else { None };
    match (by(cpu, size.cpu), by(memory, size.memory)) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => 1,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Growth {
    /// Tasks of this size the ACTIVE instances can still take.
    pub fit_now: i64,
    /// Tasks one new instance takes (sized like the largest registered instance).
    pub per_new_instance: i64,
    /// Instances the group is already launching (desired capacity above registered instances).
    pub launching: i64,
    /// Instances to add for `to_place` tasks.
    pub missing: i64,
}

/// How many instances are missing to place `to_place` more tasks of `size`.
pub fn plan_growth(instances: &[Instance], size: TaskSize, to_place: i64, group_desired: i64) -> Growth {
    let active: Vec<&Instance> = instances.iter().filter(|i| i.is_active()).collect();
    let fit_now: i64 = active.iter().map(|i| fits(i.remaining_cpu, i.remaining_memory, size)).sum();
    let per_new_instance =
        instances.iter().map(|i| fits(i.registered_cpu, i.registered_memory, size)).max().unwrap_or(0);
    // Instances of the group not registered (yet) with the cluster are on their way.
    let launching = (group_desired - instances.len() as i64).max(0);
    let short = (to_place - fit_now).max(0);
    let missing = if short == 0 {
        0
    } else if per_new_instance <= 0 {
        // No registered instance to size a new one by, or the task is bigger than an instance:
        // one instance per task is the only honest guess.
        (short - launching).max(0)
    } else {
        let needed = (short + per_new_instance - 1) / per_new_instance;
        (needed - launching).max(0)
    };
    Growth { fit_now, per_new_instance, launching, missing }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    None,
    Grow { from: i64, to: i64, wanted: i64, capped: bool },
    AtMax { desired: i64, max: i64, wanted: i64 },
}

pub fn grow_group(desired: i64, max: i64, missing: i64) -> GroupChange {
    if missing <= 0 {
        return GroupChange::None;
    }
    let wanted = desired + missing;
    if desired >= max {
        return GroupChange::AtMax { desired, max, wanted };
    }
    let to = wanted.min(max);
    GroupChange::Grow { from: desired, to, wanted, capped: to < wanted }
}

/// The capacity check of `group` (desired and max capacity as given) for `to_place` more tasks
/// of `size`: what is missing, and whether the group grows, is at its max, or has room.
pub fn check(group: String, instances: &[Instance], size: TaskSize, to_place: i64, desired: i64, max: i64) -> CapacityCheck {
    let growth = plan_growth(instances, size, to_place, desired);
    let (action, to) = match grow_group(desired, max, growth.missing) {
        GroupChange::None => (GroupAction::None, None),
        GroupChange::Grow { to, .. } => (GroupAction::Grown, Some(to)),
        GroupChange::AtMax { .. } => (GroupAction::AtMax, None),
    };
    CapacityCheck { group, to_place, growth, action, desired, max, to }
}

/// What the scaler remembers of a cluster's instances between re-evaluations (`scale-idle` /
/// CLUSTER in the state table), epoch seconds by EC2 instance id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdleRecord {
    /// Since when each instance has been idle without interruption.
    #[serde(default)]
    pub idle_since: BTreeMap<String, i64>,
    /// Instances the scaler set DRAINING itself (the next run only terminates them).
    #[serde(default)]
    pub drained: BTreeMap<String, i64>,
}

/// The record after seeing `instances` at `now`: an idle instance keeps the time it was first
/// seen idle (or gets `now`); a busy or vanished one is forgotten, so idleness must last. A
/// drain mark stays only while its instance is DRAINING (someone may have set it ACTIVE again).
pub fn track_idle(prev: &IdleRecord, instances: &[Instance], now: i64) -> IdleRecord {
    let mut next = IdleRecord::default();
    for i in instances {
        let Some(id) = i.ec2_id.as_deref() else { continue };
        if i.is_idle() {
            next.idle_since.insert(id.to_string(), prev.idle_since.get(id).copied().unwrap_or(now));
        }
        if i.status == "DRAINING" {
            if let Some(t) = prev.drained.get(id) {
                next.drained.insert(id.to_string(), *t);
            }
        }
    }
    next
}

/// How long an instance must have been idle, and how old it must be (since registeredAt),
/// before it may go; `now` in epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdlePolicy {
    pub idle_for: i64,
    pub min_age: i64,
    pub now: i64,
}

/// An idle instance the group can lose: running and pending no task, InService in the group and
/// not protected from scale-in, the group above its minimum, and the remaining ACTIVE instances
/// still able to place `unplaced` tasks of `size` (tasks the cluster's services still owe).
/// An ACTIVE instance must also have been idle for `idle_for` (`record.idle_since`) and
/// registered at least `min_age` ago: a new instance is given time to receive tasks. A DRAINING
/// instance goes only if the scaler drained it (`record.drained`); one that ECS (managed
/// draining, a Spot interruption) or a person drains belongs to them, and the group may already
/// be terminating it with its desired capacity lowered.
pub fn pick_idle<'a>(
    instances: &'a [Instance],
    group: &ObservedGroup,
    record: &IdleRecord,
    policy: IdlePolicy,
    unplaced: i64,
    size: Option<TaskSize>,
) -> Option<&'a Instance> {
    if group.desired <= group.min {
        return None;
    }
    let eligible = |i: &Instance| -> bool {
        let Some(id) = i.ec2_id.as_deref() else { return false };
        if !i.is_idle() || group.protected(id) || !group.in_service(id) {
            return false;
        }
        match i.status.as_str() {
            "DRAINING" => record.drained.contains_key(id),
            "ACTIVE" => {
                let idle_long_enough = record.idle_since.get(id).is_some_and(|since| policy.now - since >= policy.idle_for);
                let old_enough = i.registered_at.is_some_and(|at| policy.now - at >= policy.min_age);
                idle_long_enough && old_enough
            }
            _ => false,
        }
    };
    // Prefer finishing an instance already drained by an earlier run.
    let mut candidates: Vec<&Instance> = instances.iter().filter(|i| eligible(i)).collect();
    candidates.sort_by_key(|i| if i.status == "DRAINING" { 0 } else { 1 });
    candidates.into_iter().find(|c| {
        if unplaced <= 0 {
            return true;
        }
        let Some(size) = size else { return false };
        let room: i64 = instances
            .iter()
            .filter(|i| i.is_active() && i.arn != c.arn)
            .map(|i| fits(i.remaining_cpu, i.remaining_memory, size))
            .sum();
        room >= unplaced
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(n: &str, rem_cpu: i64, rem_mem: i64, running: i64) -> Instance {
        Instance {
            arn: format!("arn:ci/{n}"),
            ec2_id: Some(format!("i-{n}")),
            status: "ACTIVE".into(),
            remaining_cpu: rem_cpu,
            remaining_memory: rem_mem,
            registered_cpu: 4096,
            registered_memory: 7482,
            running_tasks: running,
            pending_tasks: 0,
            registered_at: Some(0),
        }
    }

    const RANDOM: TaskSize = TaskSize { cpu: 512, memory: 512 };

    #[test]
    fn tasks_per_instance() {
        // (cpu, memory, size, fits)
        for (cpu, mem, size, want) in [
            (4096, 7482, RANDOM, 8),
            (4096, 7482, TaskSize { cpu: 256, memory: 1024 }, 7),
            (511, 7482, RANDOM, 0),
            (4096, 7482, TaskSize { cpu: 0, memory: 2048 }, 3),
            (0, 0, TaskSize { cpu: 0, memory: 0 }, 1),
            (-5, 100, RANDOM, 0),
        ] {
            assert_eq!(fits(cpu, mem, size), want, "{cpu}/{mem} {size:?}");
        }
    }

    #[test]
    fn missing_instances() {
        let full = [inst("a", 0, 6970, 2), inst("b", 0, 6970, 2)];
        // (instances, to place, group desired, fit now, missing)
        let cases: [(&[Instance], i64, i64, i64, i64); 7] = [
            (&full, 2, 2, 0, 1),
            (&full, 9, 2, 0, 2),
            (&full, 2, 3, 0, 0), // one instance already launching covers it
            (&full, 0, 2, 0, 0),
            (&[inst("a", 512, 7000, 7), inst("b", 0, 6000, 8)], 2, 2, 1, 1),
            (&[inst("a", 4096, 7482, 0), inst("b", 4096, 7482, 0)], 6, 2, 16, 0),
            (&[], 2, 0, 0, 2),
        ];
        for (instances, to_place, desired, fit_now, missing) in cases {
            let g = plan_growth(instances, RANDOM, to_place, desired);
            assert_eq!((g.fit_now, g.missing), (fit_now, missing), "{to_place} on {} instances", instances.len());
        }
        let mut draining = inst("c", 4096, 7482, 0);
        draining.status = "DRAINING".into();
        assert_eq!(plan_growth(&[draining], RANDOM, 1, 1).missing, 1, "a draining instance takes no task");
    }

    #[test]
    fn group_growth_within_max() {
        assert_eq!(grow_group(2, 6, 1), GroupChange::Grow { from: 2, to: 3, wanted: 3, capped: false });
        assert_eq!(grow_group(5, 6, 3), GroupChange::Grow { from: 5, to: 6, wanted: 8, capped: true });
        assert_eq!(grow_group(6, 6, 1), GroupChange::AtMax { desired: 6, max: 6, wanted: 7 });
        assert_eq!(grow_group(2, 6, 0), GroupChange::None);
    }

    #[test]
    fn task_sizes() {
        let c = |cpu, memory: Option<i32>, memory_reservation: Option<i32>| ContainerSize { cpu, memory, memory_reservation };
        // (task cpu, task memory, containers, size)
        let cases: [(Option<&str>, Option<&str>, Vec<ContainerSize>, TaskSize); 4] = [
            (None, None, vec![c(256, Some(512), None), c(128, None, Some(64))], TaskSize { cpu: 384, memory: 576 }),
            (Some("1024"), Some("2048"), vec![c(0, Some(10), None)], TaskSize { cpu: 1024, memory: 2048 }),
            (Some(" 512 "), Some("1GB"), vec![c(0, None, Some(300)), c(0, None, None)], TaskSize { cpu: 512, memory: 300 }),
            (None, None, vec![], TaskSize { cpu: 0, memory: 0 }),
        ];
        for (cpu, memory, containers, want) in cases {
            let td = TaskDefSizes { cpu: cpu.map(String::from), memory: memory.map(String::from), containers };
            assert_eq!(task_size(&td), want, "{td:?}");
        }
        assert_eq!(TaskSize { cpu: 512, memory: 128 }.max(TaskSize { cpu: 256, memory: 1024 }), TaskSize { cpu: 512, memory: 1024 });
    }

    #[test]
    fn the_group_behind_a_cluster() {
        let cluster = |tags: &[(&str, &str)]| ObservedCluster {
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            capacity_providers: vec![],
        };
        assert_eq!(tagged_group(&cluster(&[])), Ok(None));
        assert_eq!(tagged_group(&cluster(&[("autopilot:asg", " stage01-asg ")])), Ok(Some("stage01-asg".into())));
        assert_eq!(tagged_group(&cluster(&[("autopilot:asg", "")])).unwrap_err().tag, tags::TAG_ASG);
        let arn = "arn:aws:autoscaling:us-east-1:1:autoScalingGroup:uuid:autoScalingGroupName/stage01-asg";
        let asg = |name: &str, group_arn: &str, managed_scaling| Provider { name: name.into(), kind: ProviderKind::AutoScalingGroup { group_arn: group_arn.into(), managed_scaling } };
        let mi = Provider { name: "stage01-mi".into(), kind: ProviderKind::ManagedInstances };
        let fargate = Provider { name: "FARGATE".into(), kind: ProviderKind::Other };
        let owned = |provider: &str, kind| Some(EcsCapacity { provider: provider.into(), kind });
        // (tagged group, providers, owner)
        let cases: [(Option<&str>, Vec<Provider>, Option<EcsCapacity>); 9] = [
            (Some("stage01-asg"), vec![asg("cp", arn, true)], owned("cp", EcsCapacityKind::ManagedScaling)),
            (Some("stage01-asg"), vec![asg("cp", "stage01-asg", true)], owned("cp", EcsCapacityKind::ManagedScaling)),
            (Some("stage01-asg"), vec![asg("cp", arn, false)], None),
            (Some("stage01-asg"), vec![asg("cp", "arn:aws:autoscaling:us-east-1:1:autoScalingGroup:uuid:autoScalingGroupName/other", true)], None),
            (Some("stage01-asg"), vec![], None),
            (None, vec![asg("cp", arn, true)], None), // no group of ours to leave alone
            // ECS Managed Instances: no customer group at all, whatever autopilot:asg names.
            (Some("stage01-asg"), vec![asg("cp", arn, false), mi.clone()], owned("stage01-mi", EcsCapacityKind::ManagedInstances)),
            (None, vec![fargate.clone(), mi.clone()], owned("stage01-mi", EcsCapacityKind::ManagedInstances)),
            (Some("stage01-asg"), vec![fargate], None),
        ];
        for (group, providers, owner) in cases {
            assert_eq!(ecs_owned_capacity(group, &providers), owner, "{group:?} {providers:?}");
        }
        let member = |protected, lifecycle: &str| GroupMember { protected, lifecycle: lifecycle.into() };
        let g = ObservedGroup { members: [("i-a".to_string(), member(false, "InService")), ("i-b".to_string(), member(true, "Terminating:Wait"))].into(), ..Default::default() };
        assert_eq!((g.protected("i-a"), g.protected("i-b"), g.protected("i-elsewhere")), (false, true, true));
        assert_eq!((g.in_service("i-a"), g.in_service("i-b"), g.in_service("i-elsewhere")), (true, false, false));
    }

    #[test]
    fn capacity_checks() {
        let full = [inst("a", 0, 6970, 2), inst("b", 0, 6970, 2)];
        // (to place, desired, max, action, to)
        for (to_place, desired, max, action, to) in [
            (2, 2, 6, GroupAction::Grown, Some(3)),
            (20, 2, 3, GroupAction::Grown, Some(3)), // wants 3 more, capped at max 3
            (20, 5, 6, GroupAction::None, None),     // the 3 instances launching cover it
            (2, 2, 2, GroupAction::AtMax, None),
            (0, 2, 6, GroupAction::None, None),
        ] {
            let c = check("g".into(), &full, RANDOM, to_place, desired, max);
            assert_eq!((c.action, c.to, c.desired, c.max, c.to_place), (action, to, desired, max, to_place), "{to_place} {desired} {max}");
            assert_eq!(c.growth, plan_growth(&full, RANDOM, to_place, desired));
            assert_eq!(c.change(), grow_group(desired, max, c.growth.missing));
        }
    }

    /// A group of `desired` (min 2) whose members are `ids`, all InService and unprotected.
    fn group(desired: i64, ids: &[&Instance]) -> ObservedGroup {
        let members = ids.iter().map(|i| (i.ec2_id.clone().unwrap(), GroupMember { protected: false, lifecycle: "InService".into() })).collect();
        ObservedGroup { desired, min: 2, max: 10, members }
    }

    /// Idle for a long time, registered long ago: no wait left.
    const LONG_AGO: IdlePolicy = IdlePolicy { idle_for: 0, min_age: 0, now: 10_000 };

    fn seen_idle(instances: &[Instance], since: i64) -> IdleRecord {
        track_idle(&IdleRecord::default(), instances, since)
    }

    #[test]
    fn only_idle_unprotected_instances_go() {
        let busy = inst("busy", 3584, 6970, 1);
        let idle = inst("idle", 4096, 7482, 0);
        let mut pending = inst("pending", 4096, 7482, 0);
        pending.pending_tasks = 1;
        let all = [busy.clone(), idle.clone(), pending.clone()];
        let rec = seen_idle(&all, 0);
        let g3 = group(3, &[&busy, &idle, &pending]);
        let pick = |instances: &[Instance], g: &ObservedGroup, unplaced: i64| pick_idle(instances, g, &rec, LONG_AGO, unplaced, Some(RANDOM)).map(|i| i.arn.clone());
        assert_eq!(pick(&all, &g3, 0).as_deref(), Some("arn:ci/idle"));
        assert_eq!(pick(&all, &group(2, &[&busy, &idle, &pending]), 0), None, "group at its minimum");
        let mut protected = g3.clone();
        protected.members.get_mut("i-idle").unwrap().protected = true;
        assert_eq!(pick(&all, &protected, 0), None, "protected");
        assert_eq!(pick(&[busy.clone(), pending.clone()], &g3, 0), None, "busy instances never go");
        // Unplaced tasks must fit on what stays: busy has 7 slots.
        assert!(pick(&all, &g3, 7).is_some());
        assert!(pick(&[busy.clone(), idle.clone()], &g3, 8).is_none());
        // An instance the scaler drained in an earlier run is finished first.
        let mut drained = inst("drained", 4096, 7482, 0);
        drained.status = "DRAINING".into();
        let instances = [busy.clone(), idle.clone(), drained.clone()];
        let mut rec = seen_idle(&instances, 0);
        rec.drained.insert("i-drained".into(), 0);
        let g = group(3, &[&busy, &idle, &drained]);
        assert_eq!(pick_idle(&instances, &g, &rec, LONG_AGO, 0, None).map(|i| i.status.as_str()), Some("DRAINING"));
    }

    /// An instance goes only after it has been idle for `idle_for` and registered for
    /// `min_age`; one DRAINING because of ECS or the group, or no longer InService in the group,
    /// is left to them, so the group's desired capacity is never lowered twice.
    #[test]
    fn idle_instances_are_given_time_and_others_drains_are_left_alone() {
        let busy = inst("busy", 3584, 6970, 1);
        let mut idle = inst("idle", 4096, 7482, 0);
        idle.registered_at = Some(1_000);
        let policy = IdlePolicy { idle_for: 900, min_age: 600, now: 10_000 };
        let instances = [busy.clone(), idle.clone()];
        let g = group(3, &[&busy, &idle]);
        // (idle since, registered at, policy, lifecycle, status, drained by us, goes)
        type Case<'a> = (Option<i64>, Option<i64>, IdlePolicy, &'a str, &'a str, bool, bool);
        let cases: [Case; 12] = [
            (Some(9_100), Some(1_000), policy, "InService", "ACTIVE", false, true), // idle 900 s, registered 9000 s ago
            (Some(9_101), Some(1_000), policy, "InService", "ACTIVE", false, false), // idle 899 s
            (None, Some(1_000), policy, "InService", "ACTIVE", false, false), // never seen idle before
            (Some(0), Some(9_401), policy, "InService", "ACTIVE", false, false), // registered 599 s ago
            (Some(0), Some(9_400), policy, "InService", "ACTIVE", false, true),
            (Some(0), None, policy, "InService", "ACTIVE", false, false), // no registeredAt: not known to be old
            (Some(0), Some(0), policy, "Terminating:Wait", "ACTIVE", false, false), // the group is terminating it
            (Some(0), Some(0), policy, "Standby", "ACTIVE", false, false),
            (Some(0), Some(0), policy, "InService", "DRAINING", false, false), // drained by ECS or a person
            (Some(0), Some(0), policy, "Terminating", "DRAINING", true, false), // our terminate landed already
            (None, Some(9_999), policy, "InService", "DRAINING", true, true), // ours: finish it
            (Some(0), Some(0), policy, "InService", "REGISTERING", false, false),
        ];
        for (i, (since, registered_at, policy, lifecycle, status, ours, goes)) in cases.into_iter().enumerate() {
            let mut victim = idle.clone();
            victim.registered_at = registered_at;
            victim.status = status.into();
            let instances = [busy.clone(), victim];
            let mut g = g.clone();
            g.members.get_mut("i-idle").unwrap().lifecycle = lifecycle.into();
            let mut rec = IdleRecord::default();
            if let Some(t) = since {
                rec.idle_since.insert("i-idle".into(), t);
            }
            if ours {
                rec.drained.insert("i-idle".into(), 0);
            }
            assert_eq!(pick_idle(&instances, &g, &rec, policy, 0, None).is_some(), goes, "case {i}: {since:?} {registered_at:?} {lifecycle} {status} ours={ours}");
        }
        // With no waits configured the old behaviour holds: the first idle sighting is enough.
        let rec = track_idle(&IdleRecord::default(), &instances, 10_000);
        assert!(pick_idle(&instances, &g, &rec, IdlePolicy { idle_for: 0, min_age: 0, now: 10_000 }, 0, None).is_some());
    }

    #[test]
    fn idle_tracking_remembers_first_sighting_and_forgets_interruptions() {
        let busy = inst("a", 0, 0, 2);
        let idle = inst("b", 4096, 7482, 0);
        let mut draining = inst("c", 4096, 7482, 0);
        draining.status = "DRAINING".into();
        let first = track_idle(&IdleRecord::default(), &[busy.clone(), idle.clone(), draining.clone()], 100);
        assert_eq!(first.idle_since, [("i-b".to_string(), 100), ("i-c".to_string(), 100)].into());
        assert!(first.drained.is_empty(), "a drain mark is only what the scaler wrote");
        let mut ours = first.clone();
        ours.drained.insert("i-c".into(), 150);
        let later = track_idle(&ours, &[busy.clone(), idle.clone(), draining.clone()], 200);
        assert_eq!((later.idle_since["i-b"], later.drained.get("i-c")), (100, Some(&150)), "still idle since the first sighting");
        // b took a task: its idleness starts again next time; c is ACTIVE again: no drain mark.
        let mut b_busy = idle.clone();
        b_busy.running_tasks = 1;
        let mut c_active = draining.clone();
        c_active.status = "ACTIVE".into();
        let after = track_idle(&later, &[busy.clone(), b_busy, c_active], 300);
        assert_eq!((after.idle_since.get("i-b"), after.drained.get("i-c")), (None, None));
        let again = track_idle(&after, &[busy, idle], 400);
        assert_eq!(again.idle_since["i-b"], 400);
        // The record is stored as JSON with these keys.
        assert_eq!(serde_json::to_value(&later).unwrap(), serde_json::json!({"idleSince": {"i-b": 100, "i-c": 100}, "drained": {"i-c": 150}}));
    }
}
