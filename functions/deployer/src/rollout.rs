//! "ECS Deployment State Change": record the last stable revision and report the rollout.

use std::time::Duration;

use autopilot::aws_lambda_events::eventbridge::EventBridgeEvent;
use autopilot::config::cluster_name;
use autopilot::events::{DeploymentEventName, DeploymentStateChange};
use autopilot::runtime::Env;
use autopilot::state::now_epoch;
use autopilot::tags::TAG_DEPLOY;
use autopilot::{keys, Error, Notification};
use serde_json::{json, Value};

use crate::aws::Aws;
use crate::outcome::{Outcome, RolloutReport, RolloutStatus};
use crate::plan::{revision_name, rollout_verdict, same_revision, short_digest, OurDeploy};

const STABLE_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
const NOTIFY_ONCE: Duration = Duration::from_secs(2 * 24 * 3600);

/// `arn:aws:ecs:R:A:service/CLUSTER/NAME` → (Some(CLUSTER), NAME); the old format has no cluster.
pub fn parse_service_arn(arn: &str) -> Option<(Option<&str>, &str)> {
    let rest = arn.split_once(":service/")?.1;
    match rest.split_once('/') {
        Some((c, s)) if !c.is_empty() && !s.is_empty() && !s.contains('/') => Some((Some(c), s)),
        None if !rest.is_empty() => Some((None, rest)),
        _ => None,
    }
}

/// "3m12s", "45s", "1h02m".
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    match (secs / 3600, (secs % 3600) / 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// How a rollout ended. ECS's deployment record decides when it has a final word (the
/// "ServiceDeployment" status, API reference): a rollout that ECS rolled back is reported as
/// rolled back even when the event that announced it was SERVICE_DEPLOYMENT_COMPLETED (the
/// rollback's own deployment completing). Without a record, or while it is still in progress,
/// the event decides.
pub fn rollout_end(event: DeploymentEventName, rollback_in_reason: bool, record_status: Option<&str>) -> Option<RolloutStatus> {
    match record_status {
        Some("SUCCESSFUL") => return Some(RolloutStatus::Stable),
        Some("ROLLBACK_SUCCESSFUL") => return Some(RolloutStatus::RolledBack),
        Some("ROLLBACK_FAILED") => return Some(RolloutStatus::RollbackFailed),
        Some("STOPPED") => return Some(RolloutStatus::Stopped),
        Some("ROLLBACK_REQUESTED" | "ROLLBACK_IN_PROGRESS") => return Some(RolloutStatus::RollingBack),
        _ => {}
    }
    match event {
        DeploymentEventName::Completed => Some(RolloutStatus::Stable),
        DeploymentEventName::Failed => Some(RolloutStatus::Failed),
        _ if rollback_in_reason => Some(RolloutStatus::RollingBack),
        _ => None,
    }
}

/// The last path segment of a service revision ARN (`…:service-revision/CLUSTER/SERVICE/ID`).
fn revision_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Add an eligible service to the repository index under the repositories `task_definition`
/// runs (one DescribeTaskDefinition). Best effort: the next reconcile rebuilds the index whole.
async fn refresh_index(env: &Env, aws: &Aws, ev: &EventBridgeEvent<DeploymentStateChange>, s: &crate::plan::ObservedService, task_definition: &str) {
    if !matches!(crate::plan::eligibility(s), crate::plan::Eligibility::Eligible { .. }) || task_definition.is_empty() {
        return;
    }
    let Some(account) = ev.account.clone().filter(|a| !a.is_empty()) else { return };
    let registry = autopilot::image::EcrRegistry::new(account, crate::region_or_own(env, &ev.region));
    let observed = match aws.describe_task_definition(task_definition).await.and_then(|raw| raw.observed().map_err(|e| Error::Refused(e.to_string()))) {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(task_definition = %revision_name(task_definition), error = %e, "cannot read the task definition: the repository index waits for the next reconcile");
            return;
        }
    };
    crate::index::remember(env, &crate::index::repositories_of(&observed, &registry), &s.arn, &s.cluster).await;
}

fn ignored(reason: String) -> Result<Outcome, Error> {
    Ok(Outcome::ignored(reason))
}

pub async fn handle(env: &Env, aws: &Aws, ev: EventBridgeEvent<DeploymentStateChange>) -> Result<Outcome, Error> {
    let name = ev.detail.name();
    let rollback = ev.detail.reason.as_deref().is_some_and(|r| r.contains("rolling back"));
    if !matches!(name, DeploymentEventName::Completed | DeploymentEventName::Failed) && !rollback {
        return ignored(format!("{} needs no action", ev.detail.event_name));
    }
    let Some(arn) = ev.resources.as_ref().and_then(|r| r.first()).cloned() else {
        return Err(Error::InvalidEvent(autopilot::events::EventError::MalformedDetail {
            detail_type: "ECS Deployment State Change".into(),
            path: "resources".into(),
            message: "no service ARN".into(),
        }));
    };
    let Some((cluster, service)) = parse_service_arn(&arn) else {
        return ignored(format!("{arn} is not a service ARN"));
    };
    let clusters: Vec<String> = match cluster {
        Some(c) if env.config.manages_cluster(c) => vec![c.to_string()],
        Some(c) => return ignored(format!("cluster {c} is not managed")),
        None => aws.clusters(&env.config.clusters).await?,
    };
    let mut found = None;
    for c in &clusters {
        if let Some(info) = aws.describe_services(c, &[service.to_string()]).await?.into_iter().find(|s| s.status != "INACTIVE" && s.observed.name == service) {
            found = Some(info);
            break;
        }
    }
    let Some(info) = found else { return ignored(format!("service {service} not found")) };
    let s = &info.observed;
    if !s.tags.contains_key(TAG_DEPLOY) {
        return ignored(format!("{service} is not opted in ({TAG_DEPLOY} absent)"));
    }
    let deployment_id = ev.detail.deployment_id.clone().unwrap_or_default();
    let this = info.deployments.iter().find(|d| d.id == deployment_id);
    let primary = info.deployments.iter().find(|d| d.status == "PRIMARY");
    // The service's taskDefinition is its PRIMARY deployment's; if a newer rollout has already
    // replaced the one this event is about, that deployment's own revision is the one meant.
    let current = match this {
        Some(d) if d.status != "PRIMARY" && !d.task_definition.is_empty() => d.task_definition.clone(),
        _ => s.task_definition.clone(),
    };
    // What we deployed onto this revision, if it was us: tag and digest for the message.
    let (pk, sk) = keys::deployment(&s.cluster, service);
    let record = env.state.get(&pk, &sk).await?.map(|r| r.data);
    let image = record
        .as_ref()
        .filter(|r| r.get("taskDefinition").and_then(Value::as_str).is_some_and(|t| same_revision(t, &current)))
        .map(|r| {
            let tag = r.get("tag").and_then(Value::as_str);
            let digest = r.get("digest").and_then(Value::as_str).map(short_digest);
            [tag.map(String::from), digest].into_iter().flatten().collect::<Vec<_>>().join(", ")
        })
        .filter(|s| !s.is_empty());
    // ECS's own record of the deployment: the outcome it reports, stage, revisions, duration.
    let deployment = aws.latest_deployment_record(&s.cluster, service).await?;
    let Some(status) = rollout_end(name, rollback, deployment.as_ref().map(|d| d.status.as_str())) else {
        return ignored(format!("{} needs no action", ev.detail.event_name));
    };
    // A rollout of ours that failed, or that ECS rolled back: a verdict on the digest we
    // deployed (DESIGN.md). Recorded before the message, so a retry records it too.
    let ours = record.as_ref().and_then(OurDeploy::from_record);
    let verdict = match status {
        RolloutStatus::Failed => rollout_verdict(false, &current, ours.as_ref()),
        RolloutStatus::RollingBack | RolloutStatus::RolledBack => rollout_verdict(true, &current, ours.as_ref()),
        RolloutStatus::RollbackFailed => ours.clone(),
        RolloutStatus::Stable | RolloutStatus::Stopped => None,
    };
    if let Some(ours) = &verdict {
        let (pk, sk) = keys::rolled_back(&s.cluster, service, &ours.digest);
        let to = matches!(status, RolloutStatus::RollingBack | RolloutStatus::RolledBack).then_some(current.as_str());
        let data = keys::verdict_record(&ours.digest, &ours.task_definition, keys::BY_CIRCUIT_BREAKER, to, now_epoch());
        if env.state.create(&pk, &sk, &data, keys::VERDICT_TTL).await? {
            tracing::info!(service, digest = %ours.digest, revision = %revision_name(&ours.task_definition), "rollout failed: its digest is not deployed to the service again");
        }
    }
    let rev = revision_name(&current);
    let on = match &image {
        Some(i) => format!("{rev} ({i})"),
        None => rev.clone(),
    };
    // What was rolled back: our revision (with its image) when we deployed it.
    let from = ours.as_ref().filter(|o| !same_revision(&o.task_definition, &current)).map(|o| {
        let tag = record.as_ref().and_then(|r| r.get("tag")).and_then(Value::as_str);
        let what = [tag.map(String::from), Some(short_digest(&o.digest))].into_iter().flatten().collect::<Vec<_>>().join(", ");
        format!("{} ({what})", revision_name(&o.task_definition))
    });
    let cluster_label = cluster_name(&s.cluster).to_string();
    let started = deployment.as_ref().and_then(|d| d.started_at.or(d.created_at)).or_else(|| this.or(primary).and_then(|d| d.created_at));
    let ended = deployment.as_ref().and_then(|d| d.finished_at).or_else(|| ev.detail.updated_at.map(|t| t.timestamp_millis())).or_else(|| ev.time.map(|t| t.timestamp_millis()));
    let took = match (started, ended) {
        (Some(a), Some(b)) if b >= a => format!(" in {}", human_duration((b - a) / 1000)),
        _ => String::new(),
    };
    let strategy = deployment.as_ref().and_then(|d| d.strategy.clone()).filter(|s| s != "ROLLING");
    let by = strategy.as_deref().map(|s| format!(" ({} deployment)", s.to_lowercase().replace('_', "/"))).unwrap_or_default();
    let rolled_back_from = from.as_deref().map(|f| format!(" rollout of {f}")).unwrap_or_else(|| " rollout".into());
    // A completed rollout, or a completed rollback (the revision ECS went back to): the service's
    // last stable revision.
    if matches!(status, RolloutStatus::Stable | RolloutStatus::RolledBack) {
        let (pk, sk) = keys::stable_revision(&s.cluster, service);
        env.state.put(&pk, &sk, &json!({"taskDefinition": current, "at": now_epoch(), "deploymentId": deployment_id}), STABLE_TTL).await?;
    }
    // A revision somebody else rolled out (a new service, CI or IaC changing the task
    // definition) may run a repository the index does not list the service under yet.
    if status == RolloutStatus::Stable && image.is_none() {
        refresh_index(env, aws, &ev, s, &current).await;
    }
    let (event_type, subject) = match status {
        RolloutStatus::Stable => ("deploy.completed", format!("{service} rolled onto {on}{took}{by}")),
        RolloutStatus::Failed => ("deploy.failed", format!("{service}: rollout failed, running {on}")),
        RolloutStatus::RollingBack => ("deploy.rollback", format!("{service}: ECS rolling back{rolled_back_from} to {on}")),
        RolloutStatus::RolledBack => ("deploy.rolled-back", format!("{service}:{rolled_back_from} rolled back by ECS, running {on}{took}")),
        RolloutStatus::RollbackFailed => ("deploy.rollback-failed", format!("{service}:{rolled_back_from} failed and ECS's rollback failed too, running {on}")),
        RolloutStatus::Stopped => ("deploy.stopped", format!("{service}:{rolled_back_from} was stopped, running {on}")),
    };
    let reason = ev.detail.reason.clone().or_else(|| this.and_then(|d| d.rollout_state_reason.clone()));
    let held_back = verdict.as_ref().map(|o| format!(" autopilot will not deploy {} to {service} again; a newer push will.", short_digest(&o.digest))).unwrap_or_default();
    let mut n = Notification::new(
        event_type,
        subject.clone(),
        format!("{subject}. Cluster {cluster_label}, deployment {deployment_id}.{}{held_back}", reason.as_deref().map(|r| format!(" Reason: {r}")).unwrap_or_default()),
    )
    .field("cluster", cluster_label.clone())
    .field("service", service)
    .field("family", rev.split(':').next().unwrap_or_default())
    .field("revision", rev.clone())
    .field("taskDefinition", current.clone())
    .field("deploymentId", deployment_id.clone());
    if let Some(r) = &record {
        for k in ["tag", "digest"] {
            if let Some(v) = r.get(k).filter(|_| image.is_some()) {
                n = n.field(if k == "tag" { "imageTag" } else { k }, v.clone());
            }
        }
    }
    if let Some(r) = &reason {
        n = n.field("reason", r.clone());
    }
    if let Some(o) = &verdict {
        n = n.field("heldBack", o.digest.clone());
    }
    if let Some(d) = &deployment {
        n = n.field("serviceDeployment", d.arn.clone()).field("deploymentStatus", d.status.clone());
        if let Some(stage) = &d.lifecycle_stage {
            n = n.field("lifecycleStage", stage.clone());
        }
        if let Some(strategy) = &d.strategy {
            n = n.field("strategy", strategy.clone());
        }
        if let Some(target) = &d.target_revision {
            n = n.field("targetServiceRevision", revision_id(target));
        }
        if !d.source_revisions.is_empty() {
            n = n.field("sourceServiceRevisions", d.source_revisions.iter().map(|r| revision_id(r)).collect::<Vec<_>>().join(" "));
        }
        if let Some((why, _)) = &d.rollback {
            if let Some(why) = why {
                n = n.field("rollbackReason", why.clone());
            }
        }
    }
    // Ours when the record is about this rollout or about the revision it rolled back: then the
    // message goes to the push's thread (messages::rollout_end).
    let ours_rollout = image.is_some() || verdict.is_some();
    let n = crate::messages::rollout_end(
        n,
        &crate::messages::RolloutEnd {
            cluster: &s.cluster,
            service,
            service_arn: &arn,
            status,
            current: &current,
            deployment_id: &deployment_id,
            service_deployment: deployment.as_ref().map(|d| d.arn.as_str()),
            ours: record.as_ref().filter(|_| ours_rollout),
        },
    );
    let key = format!("deploy#{deployment_id}#{}", ev.detail.event_name);
    let sent = env.notifier.publish_once(&env.state, &key, NOTIFY_ONCE, &n).await?;
    Ok(Outcome::Rollout(RolloutReport { status, cluster: cluster_label, service: service.to_string(), task_definition: current, notified: sent }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_arns_and_durations() {
        assert_eq!(parse_service_arn("arn:aws:ecs:us-east-1:1:service/stage01/auth"), Some((Some("stage01"), "auth")));
        assert_eq!(parse_service_arn("arn:aws:ecs:us-east-1:1:service/auth"), Some((None, "auth")));
        assert_eq!(parse_service_arn("arn:aws:ecs:us-east-1:1:cluster/stage01"), None);
        assert_eq!(parse_service_arn("arn:aws:ecs:us-east-1:1:service/"), None);
        assert_eq!(human_duration(192), "3m12s");
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(3720), "1h02m");
        assert_eq!(human_duration(-5), "0s");
    }

    /// Issue 15, item 1: ECS's deployment record ("ServiceDeployment" status, API reference)
    /// decides how a rollout ended; a rollback is never a success, whatever event announced it.
    #[test]
    fn the_deployment_record_decides_how_a_rollout_ended() {
        use DeploymentEventName::{Completed, Failed, InProgress};
        for (event, rollback_reason, record, want) in [
            (Completed, false, Some("SUCCESSFUL"), Some(RolloutStatus::Stable)),
            (Completed, false, Some("ROLLBACK_SUCCESSFUL"), Some(RolloutStatus::RolledBack)),
            (Completed, false, Some("ROLLBACK_FAILED"), Some(RolloutStatus::RollbackFailed)),
            (Completed, false, Some("STOPPED"), Some(RolloutStatus::Stopped)),
            (Failed, false, Some("ROLLBACK_IN_PROGRESS"), Some(RolloutStatus::RollingBack)),
            (InProgress, true, Some("ROLLBACK_REQUESTED"), Some(RolloutStatus::RollingBack)),
            (Completed, false, Some("IN_PROGRESS"), Some(RolloutStatus::Stable)),
            (Completed, false, Some("A_STATUS_FROM_2027"), Some(RolloutStatus::Stable)),
            (Completed, false, None, Some(RolloutStatus::Stable)),
            (Failed, false, None, Some(RolloutStatus::Failed)),
            (InProgress, true, None, Some(RolloutStatus::RollingBack)),
            (InProgress, false, None, None),
            (InProgress, false, Some("IN_PROGRESS"), None),
        ] {
            let label = format!("{event:?} {record:?}");
            assert_eq!(rollout_end(event, rollback_reason, record), want, "{label}");
        }
        assert_eq!(revision_id("arn:aws:ecs:us-east-1:123456789012:service-revision/stage01/auth/4980306466373577095"), "4980306466373577095");
    }
}
