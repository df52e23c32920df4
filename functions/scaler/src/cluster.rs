//! The EC2 Auto Scaling group behind a cluster (`autopilot:asg`): grow it when tasks no longer
//! fit (a placement failure, or after a scale-out), shrink it by one instance per re-evaluation
//! that has been idle long enough. Observe (`aws.rs`), decide (`capacity.rs`), act, notify (`messages.rs`).
//!
//! Capacity that ECS owns is never ours to resize: an ECS Managed Instances capacity provider
//! (no customer Auto Scaling group exists; ECS launches the instances tasks need), or a capacity
//! provider with managed scaling over the tagged group. A placement failure there is told as
//! `capacity.ecs-managed`, naming the provider.

use std::time::Duration;

use autopilot::runtime::Env;
use autopilot::state::now_epoch;
use autopilot::Error;
use serde_json::json;

use crate::aws::Aws;
use crate::capacity::{self, EcsCapacity, GroupChange, IdlePolicy, IdleRecord, Instance, TaskSize};
use crate::decide::PlacementFailure;
use crate::messages;
use crate::outcome::{Capacity, ClusterChange, Outcome};

/// State-table partition of the per-cluster idle record (sort key: the cluster).
const IDLE_PK: &str = "scale-idle";
/// The idle record outlives any idle period and minimum age (at most 86400 s each).
const IDLE_MEMORY: Duration = Duration::from_secs(3 * 24 * 3600);

/// "ECS Service Action" SERVICE_TASK_PLACEMENT_FAILURE: grow the group if the tasks do not fit.
pub async fn on_placement_failure(env: &Env, aws: &Aws, failure: PlacementFailure) -> Result<Outcome, Error> {
    let PlacementFailure { cluster, service, reasons } = failure;
    if !env.config.manages_cluster(&cluster) {
        return Ok(Outcome::ignored(format!("cluster {cluster} is not managed")));
    }
    let Some(svc) = aws.describe_service(&cluster, &service).await? else {
        return Ok(Outcome::skipped(None, format!("service {cluster}/{service} not found")));
    };
    let Some(capacity) = ensure_capacity(env, aws, &cluster, &svc.task_definition, svc.to_place_after_placement_failure()).await? else {
        return Ok(Outcome::Ignored { alarm: None, service: Some(service), reason: format!("cluster {cluster} has no autopilot:asg group to grow") });
    };
    match messages::placement_failure(&cluster, &service, &reasons, &capacity) {
        // ECS reports a placement failure again while its own capacity catches up: once per
        // service and notification window is enough to say whose the capacity is.
        Some(n) if matches!(capacity, Capacity::EcsManaged { .. }) => {
            let key = format!("capacity-ecs-managed#{cluster}/{service}");
            env.notifier.publish_once(&env.state, &key, env.config.notification_window, &n).await?;
        }
        Some(n) => env.notifier.publish(&n).await?,
        None => tracing::info!(cluster, service, ?reasons, "placement failed but the instances have CPU and memory for the tasks: not a capacity problem"),
    }
    Ok(Outcome::PlacementFailure { cluster, service, capacity, dry_run: env.config.dry_run })
}

/// Grow the cluster's group when `to_place` tasks of `task_definition` do not fit.
/// `None`: the cluster has no group to manage; `Capacity::EcsManaged`: ECS owns the capacity.
pub async fn ensure_capacity(env: &Env, aws: &Aws, cluster: &str, task_definition: &str, to_place: i64) -> Result<Option<Capacity>, Error> {
    let group_name = match backing(aws, cluster, true).await? {
        Backing::None => return Ok(None),
        Backing::Ecs(owner) => return Ok(Some(Capacity::ecs_managed(owner))),
        Backing::Group(group) => group,
    };
    let size = size_of(aws, task_definition).await?;
    let instances = instances(aws, cluster).await?;
    let Some(group) = aws.describe_auto_scaling_group(&group_name).await? else {
        tracing::warn!(cluster, group = %group_name, "autopilot:asg names a group that does not exist");
        return Ok(Some(Capacity::group_not_found(group_name)));
    };
    let check = capacity::check(group_name, &instances, size, to_place, group.desired, group.max);
    if let GroupChange::Grow { to, .. } = check.change() {
        if !env.config.dry_run {
            aws.set_desired_capacity(&check.group, to).await?;
        }
    }
    Ok(Some(Capacity::Checked(check)))
}

/// Remove at most one idle instance per run (see `capacity::pick_idle`): one idle for
/// `AUTOPILOT_IDLE_INSTANCE_SECONDS` and registered `AUTOPILOT_MIN_INSTANCE_AGE_SECONDS` ago is
/// set DRAINING, then terminated in its group with the desired capacity decremented. When each
/// instance was first seen idle, and which ones the scaler drained, live in the state table.
pub async fn shrink(env: &Env, aws: &Aws, cluster: &str) -> Result<Option<ClusterChange>, Error> {
    let Backing::Group(group_name) = backing(aws, cluster, false).await? else { return Ok(None) };
    let instances = instances(aws, cluster).await?;
    let now = now_epoch() as i64;
    let stored = env.state.get(IDLE_PK, cluster).await?;
    let prev: IdleRecord = stored.as_ref().and_then(|r| serde_json::from_value(r.data.clone()).ok()).unwrap_or_default();
    let mut record = capacity::track_idle(&prev, &instances, now);
    if record != prev {
        env.state.put(IDLE_PK, cluster, &json!(record), IDLE_MEMORY).await?;
    }
    if !instances.iter().any(|i| i.is_idle()) {
        return Ok(None);
    }
    let Some(group) = aws.describe_auto_scaling_group(&group_name).await? else { return Ok(None) };
    let (unplaced, size) = unplaced(aws, cluster).await?;
    let policy = IdlePolicy { idle_for: env.config.idle_instance.as_secs() as i64, min_age: env.config.min_instance_age.as_secs() as i64, now };
    let Some(victim) = capacity::pick_idle(&instances, &group, &record, policy, unplaced, size) else {
        return Ok(None);
    };
    let ec2_id = victim.ec2_id.clone().unwrap_or_default();
    let dry = env.config.dry_run;
    if !dry {
        // An instance an earlier run drained is only terminated. The drain is recorded before it
        // is asked for, so a lost answer still leaves the instance ours to finish.
        if victim.status != "DRAINING" {
            record.drained.insert(ec2_id.clone(), now);
            env.state.put(IDLE_PK, cluster, &json!(record), IDLE_MEMORY).await?;
            aws.drain_container_instance(cluster, &victim.arn).await?;
        }
        aws.terminate_instance_in_auto_scaling_group(&ec2_id).await?;
    }
    env.notifier.publish(&messages::shrunk(cluster, &group_name, &ec2_id, group.desired)).await?;
    Ok(Some(ClusterChange::Shrunk { cluster: cluster.to_string(), group: group_name, instance: ec2_id, from: group.desired, to: group.desired - 1, dry_run: dry }))
}

/// What backs a cluster's capacity, as far as the scaler is concerned.
enum Backing {
    /// No `autopilot:asg` and no capacity of ECS's: nothing to grow or tell.
    None,
    /// The `autopilot:asg` group, ours to grow and shrink.
    Group(String),
    /// ECS owns the capacity (`capacity::ecs_owned_capacity`): never resized by us.
    Ecs(EcsCapacity),
}

/// `untagged_too`: whether a cluster without `autopilot:asg` is worth a DescribeCapacityProviders
/// (to tell a placement failure on ECS's capacity); the idle-instance pass has nothing to do on
/// such a cluster and leaves it at DescribeClusters.
async fn backing(aws: &Aws, cluster: &str, untagged_too: bool) -> Result<Backing, Error> {
    let Some(c) = aws.describe_cluster(cluster).await? else { return Ok(Backing::None) };
    let group = capacity::tagged_group(&c).map_err(|e| Error::tag(format!("cluster {cluster}"), e))?;
    if group.is_none() && !untagged_too {
        return Ok(Backing::None);
    }
    if !c.capacity_providers.is_empty() {
        let providers = aws.describe_capacity_providers(&c.capacity_providers).await?;
        if let Some(owner) = capacity::ecs_owned_capacity(group.as_deref(), &providers) {
            tracing::info!(cluster, ?group, provider = %owner.provider, kind = ?owner.kind, "ECS owns the cluster's capacity: left to ECS");
            return Ok(Backing::Ecs(owner));
        }
    }
    Ok(group.map_or(Backing::None, Backing::Group))
}

async fn instances(aws: &Aws, cluster: &str) -> Result<Vec<Instance>, Error> {
    let arns = aws.list_container_instances(cluster).await?;
    aws.describe_container_instances(cluster, &arns).await
}

async fn size_of(aws: &Aws, task_definition: &str) -> Result<TaskSize, Error> {
    Ok(aws.describe_task_definition(task_definition).await?.map(|td| capacity::task_size(&td)).unwrap_or(TaskSize { cpu: 0, memory: 0 }))
}

/// Tasks the cluster's services still owe (desired − running − pending) and the largest task
/// size among those services.
async fn unplaced(aws: &Aws, cluster: &str) -> Result<(i64, Option<TaskSize>), Error> {
    let arns = aws.list_services(cluster).await?;
    let (mut unplaced, mut size): (i64, Option<TaskSize>) = (0, None);
    for chunk in arns.chunks(10) {
        for s in aws.describe_services(cluster, chunk).await? {
            let owed = s.owed();
            if owed > 0 {
                unplaced += owed;
                let t = size_of(aws, &s.task_definition).await?;
                size = Some(size.map_or(t, |z| z.max(t)));
            }
        }
    }
    Ok((unplaced, size))
}
