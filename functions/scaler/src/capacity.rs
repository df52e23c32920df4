//! Cluster capacity arithmetic for EC2-backed clusters, as pure functions: how many tasks of one
//! size fit on the registered container instances, how many instances are missing, and which
//! idle instance (if any) may go.

/// CPU units and MiB of one task (task-level values, else the sum over its containers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSize {
    pub cpu: i64,
    pub memory: i64,
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

#[derive(Debug, Clone, PartialEq, Eq)]
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

/// An idle instance the group can lose: ACTIVE or DRAINING, running and pending no task, not
/// protected from scale-in, the group above its minimum, and the remaining ACTIVE instances
/// still able to place `unplaced` tasks of `size` (tasks the cluster's services still owe).
/// `protected` holds the EC2 ids protected from scale-in (or unknown to the group).
pub fn pick_idle<'a>(
    instances: &'a [Instance],
    protected: &dyn Fn(&str) -> bool,
    group_desired: i64,
    group_min: i64,
    unplaced: i64,
    size: Option<TaskSize>,
) -> Option<&'a Instance> {
    if group_desired <= group_min {
        return None;
    }
    let candidates = instances.iter().filter(|i| {
        i.is_idle() && (i.is_active() || i.status == "DRAINING") && i.ec2_id.as_deref().is_some_and(|id| !protected(id))
    });
    // Prefer finishing an instance already DRAINING (an earlier run drained it and stopped).
    let mut candidates: Vec<&Instance> = candidates.collect();
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
    fn only_idle_unprotected_instances_go() {
        let busy = inst("busy", 3584, 6970, 1);
        let idle = inst("idle", 4096, 7482, 0);
        let mut pending = inst("pending", 4096, 7482, 0);
        pending.pending_tasks = 1;
        let none = |_: &str| false;
        let all = [busy.clone(), idle.clone(), pending.clone()];
        assert_eq!(pick_idle(&all, &none, 3, 2, 0, Some(RANDOM)).map(|i| i.arn.as_str()), Some("arn:ci/idle"));
        assert_eq!(pick_idle(&all, &none, 2, 2, 0, Some(RANDOM)), None, "group at its minimum");
        assert_eq!(pick_idle(&all, &|id: &str| id == "i-idle", 3, 2, 0, Some(RANDOM)), None, "protected");
        assert_eq!(pick_idle(&[busy.clone(), pending.clone()], &none, 3, 2, 0, Some(RANDOM)), None, "busy instances never go");
        // Unplaced tasks must fit on what stays: busy has 7 slots.
        assert!(pick_idle(&all, &none, 3, 2, 7, Some(RANDOM)).is_some());
        assert!(pick_idle(&[busy.clone(), idle.clone()], &none, 3, 2, 8, Some(RANDOM)).is_none());
        let mut drained = idle.clone();
        drained.status = "DRAINING".into();
        assert_eq!(pick_idle(&[busy, idle, drained], &none, 3, 2, 0, None).map(|i| i.status.as_str()), Some("DRAINING"));
    }
}
