//! What the deployer tells people: notifications built from plans and outcomes, pure (no AWS).
//! Only fields the code chooses go in (names, revisions, digests, reasons): never a task
//! definition's environment or secrets.

use std::collections::BTreeSet;

use autopilot::config::cluster_name;
pub use autopilot::notify::{ecs_command, region_of, service_thread};
use autopilot::notify::{push_thread, thread_id};
use autopilot::Notification;
use serde_json::Value;

use crate::deploy::who;
use crate::hook::{continue_command, PausedHook, TimeoutAction, DEFAULT_TIMEOUT_ACTION};
use crate::plan::{revision_name, FamilyPlan, Push, Skip, CODE_DEPLOY_MIGRATION};
use crate::rollout::human_duration;

// ------------------------------------------------------------------ threads, ARNs, commands
//
// Threads (`metadata.threadId`, notify.rs): one push is one thread, [`push_thread`] of its
// repository and digest: the `deploy.started` message sent once for every service the push set
// rolling, its refusals and holds, and the end of each of those rollouts (rollout.rs, from the
// deployment record deploy.rs writes: [`record_thread`]). A rollout someone else started is a
// thread of its own ([`rollout_thread`]); a service's tag problem too ([`service_thread`]).
// Commands (`content.nextSteps`) name clusters, services, revisions and ARNs only: never an
// environment value, secret or override.

/// The service's ARN from its cluster's ARN (`…:cluster/C` → `…:service/C/S`); `None` when the
/// cluster is not an ARN.
pub fn service_arn(cluster: &str, service: &str) -> Option<String> {
    let (head, name) = cluster.split_once(":cluster/")?;
    Some(format!("{head}:service/{name}/{service}"))
}

/// `aws ecs describe-services` of services of one cluster.
pub fn describe_services(cluster: &str, services: &[&str]) -> String {
    ecs_command("describe-services", cluster, &format!("--cluster {} --services {}", cluster_name(cluster), services.join(" ")))
}

/// `aws ecs update-service … --task-definition FAMILY:REV`: move the service onto a revision
/// (taskDefinition only, as the deployer does: never desiredCount, never an override).
pub fn update_service(cluster: &str, service: &str, task_definition: &str) -> String {
    ecs_command("update-service", cluster, &format!("--cluster {} --service {service} --task-definition {}", cluster_name(cluster), revision_name(task_definition)))
}

/// The thread of the push a deployment record (`keys::deployment`) came from: the record names
/// the repository and digest deploy.rs deployed. `None` for a record without them (a rollback's,
/// or one written before records named the repository).
pub fn record_thread(record: &Value) -> Option<String> {
    let s = |k: &str| record.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
    Some(push_thread(s("repository")?, s("digest")?))
}

/// The thread of one ECS service deployment (its ARN): its pause hooks and its end, when no push
/// of ours started it.
pub fn deployment_thread(service_deployment_arn: &str) -> String {
    thread_id("rollout", service_deployment_arn)
}

/// The thread of one rollout of a service that no push of ours started (or whose record does not
/// say which): its cluster, service and deployment.
pub fn rollout_thread(cluster: &str, service: &str, deployment: &str) -> String {
    thread_id("rollout", &format!("{}/{service}/{deployment}", cluster_name(cluster)))
}

/// Thread, keywords and related ARNs of a message about a push's services.
fn about_push<'a>(n: Notification, push: &Push, targets: impl Iterator<Item = &'a crate::plan::Target> + Clone) -> Notification {
    n.thread(push_thread(&push.repository, &push.digest))
        .keywords(targets.clone().map(|t| cluster_name(&t.cluster).to_string()))
        .keywords(targets.clone().map(|t| t.service.clone()))
        .keywords([push.repository.clone(), push.tag.clone()])
        .related(targets.clone().map(|t| t.cluster.clone()))
        .related(targets.map(|t| t.service_arn.clone()))
}

pub fn family_notification(fam: &FamilyPlan, push: &Push, event_type: &str, outcome: &str, revision: Option<&str>) -> Notification {
    let names: Vec<&str> = fam.services.iter().map(|t| t.service.as_str()).collect();
    let clusters: BTreeSet<&str> = fam.services.iter().map(|t| cluster_name(&t.cluster)).collect();
    let subject = format!("{}: {outcome}", names.join(", "));
    let description = format!(
        "{} in {}: {outcome}. Image {}/{} {}. Previous: {}.",
        names.join(", "),
        clusters.iter().copied().collect::<Vec<_>>().join(", "),
        push.registry,
        push.repository,
        push.label(),
        fam.services.iter().map(|t| revision_name(&t.from)).collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>().join(", "),
    );
    let mut n = Notification::new(event_type, subject, description)
        .field("cluster", clusters.iter().copied().collect::<Vec<_>>().join(","))
        .field("service", names.join(","))
        .field("family", fam.family.clone())
        .field("imageTag", push.tag.clone())
        .field("digest", push.digest.clone())
        .field("repository", push.repository.clone());
    if let Some(r) = revision {
        n = n.field("revision", revision_name(r)).field("taskDefinition", r.to_string()).related([r.to_string()]);
    }
    n = about_push(n, push, fam.services.iter()).keywords([fam.family.clone()]);
    if event_type == "deploy.failed" {
        // What ECS says of the services now, cluster by cluster.
        for c in &clusters {
            let names: Vec<&str> = fam.services.iter().filter(|t| cluster_name(&t.cluster) == *c).map(|t| t.service.as_str()).collect();
            if let Some(t) = fam.services.iter().find(|t| cluster_name(&t.cluster) == *c) {
                n = n.next_step(describe_services(&t.cluster, &names));
            }
        }
    }
    n
}

/// One `deploy.started` message for everything a push set rolling: a fan-out over 50 families
/// is one message, not 50. Each service's rollout still reports its own end.
pub fn push_notification(push: &Push, started: &[(FamilyPlan, String)]) -> Notification {
    if let [(fam, arn)] = started {
        let label = format!("{} ({})", revision_name(arn), push.label());
        return family_notification(fam, push, "deploy.started", &format!("deploying {label}"), Some(arn));
    }
    let names: Vec<&str> = started.iter().flat_map(|(f, _)| f.services.iter().map(|t| t.service.as_str())).collect();
    let clusters: BTreeSet<&str> = started.iter().flat_map(|(f, _)| f.services.iter().map(|t| cluster_name(&t.cluster))).collect();
    let subject = format!("{}: deploying {} to {} services", names.join(", "), push.label(), names.len());
    let lines: Vec<String> = started
        .iter()
        .map(|(f, arn)| {
            let services: Vec<&str> = f.services.iter().map(|t| t.service.as_str()).collect();
            let previous: BTreeSet<String> = f.services.iter().map(|t| revision_name(&t.from)).collect();
            format!("{} → {} (previous {})", services.join(", "), revision_name(arn), previous.into_iter().collect::<Vec<_>>().join(", "))
        })
        .collect();
    let description = format!(
        "{} service(s) in {}: deploying image {}/{} {}.\n{}",
        names.len(),
        clusters.iter().copied().collect::<Vec<_>>().join(", "),
        push.registry,
        push.repository,
        push.label(),
        lines.join("\n")
    );
    let n = Notification::new("deploy.started", subject, description)
        .field("cluster", clusters.iter().copied().collect::<Vec<_>>().join(","))
        .field("service", names.join(","))
        .field("family", started.iter().map(|(f, _)| f.family.as_str()).collect::<Vec<_>>().join(","))
        .field("imageTag", push.tag.clone())
        .field("digest", push.digest.clone())
        .field("repository", push.repository.clone())
        .related(started.iter().map(|(_, arn)| arn.clone()));
    about_push(n, push, started.iter().flat_map(|(f, _)| f.services.iter()))
}

/// A rollout's end, as rollout.rs reports it from "ECS Deployment State Change".
pub struct RolloutEnd<'a> {
    /// The cluster's ARN (or name).
    pub cluster: &'a str,
    pub service: &'a str,
    pub service_arn: &'a str,
    pub status: crate::outcome::RolloutStatus,
    /// The revision the service runs now.
    pub current: &'a str,
    /// ECS's deployment id (`ecs-svc/…`).
    pub deployment_id: &'a str,
    /// ECS's service-deployment ARN, when its record was read.
    pub service_deployment: Option<&'a str>,
    /// The deployer's deployment record, when this rollout (or its rollback) is one a push of
    /// ours started: its repository and digest name the push's thread, its `previous` and
    /// `taskDefinition` the revisions to go back or forward to.
    pub ours: Option<&'a Value>,
}

/// Thread, keywords, ARNs and next steps of a rollout's end: the push's thread when a push of
/// ours started it (one push, one thread: its `deploy.started` and every end of its rollouts),
/// else the rollout's own; for an end a person must look at, the commands that show it and the
/// one that moves the service back (failed, rollback failed) or forward again (rolled back).
pub fn rollout_end(n: Notification, e: &RolloutEnd) -> Notification {
    use crate::outcome::RolloutStatus as S;
    let thread = e.ours.and_then(record_thread).or_else(|| e.service_deployment.map(deployment_thread)).unwrap_or_else(|| rollout_thread(e.cluster, e.service, e.deployment_id));
    let recorded = |k: &str| e.ours.and_then(|r| r.get(k)).and_then(Value::as_str).filter(|v| !v.is_empty() && !crate::plan::same_revision(v, e.current));
    let mut n = n
        .thread(thread)
        .keywords([cluster_name(e.cluster).to_string(), e.service.to_string(), "rollout".to_string()])
        .keywords(e.ours.and_then(|r| r.get("tag")).and_then(Value::as_str).map(String::from))
        .related([e.cluster.to_string(), e.service_arn.to_string(), e.current.to_string()])
        .related(e.service_deployment.map(String::from))
        .related(recorded("taskDefinition").map(String::from));
    if e.status == S::Stable {
        return n;
    }
    n = n.next_step(describe_services(e.cluster, &[e.service]));
    if let Some(d) = e.service_deployment {
        n = n.next_step(ecs_command("describe-service-deployments", d, &format!("--service-deployment-arns {d}")));
    }
    match e.status {
        // Back to the revision the service ran before our rollout.
        S::Failed | S::RollbackFailed => {
            if let Some(previous) = recorded("previous") {
                n = n.next_step(update_service(e.cluster, e.service, previous));
            }
        }
        // Forward again to the revision ECS rolled back, once its cause is fixed (autopilot will
        // not: a rollback is a verdict on the digest).
        S::RolledBack => {
            if let Some(ours) = recorded("taskDefinition") {
                n = n.next_step(update_service(e.cluster, e.service, ours));
            }
        }
        _ => {}
    }
    n
}

/// The strategies of the services a push set rolling, when not ROLLING: `(service, strategy,
/// bake minutes)`. Blue/green, linear and canary rollouts shift traffic in stages and bake on
/// purpose ("Amazon ECS blue/green deployments"), so their end comes later; the message says so.
pub fn with_strategies(mut n: Notification, strategies: &[(String, String, u64)]) -> Notification {
    if strategies.is_empty() {
        return n;
    }
    for (service, strategy, bake) in strategies {
        let kind = strategy.to_lowercase().replace('_', "/");
        let wait = if *bake > 0 { format!(", then bakes {bake} min") } else { String::new() };
        n.description.push_str(&format!("\n{service}: a {kind} deployment; ECS shifts traffic in stages{wait}, and its end is reported when ECS records it."));
    }
    let names: Vec<String> = strategies.iter().map(|(s, k, _)| format!("{s}={k}")).collect();
    n.field("strategy", names.join(" "))
}

/// A service whose `autopilot:` tags cannot be read, with the reason (which says what to write)
/// and, when the right value is known, the command that sets it.
pub fn misconfigured_notification(s: &Skip) -> Notification {
    let service = who(&s.cluster, &s.service);
    let subject = format!("{}: not deployed, its autopilot:deploy tags are invalid", s.service);
    let mut description = format!("{service} is left alone until its tags are fixed: {}.", s.reason);
    if let Some(fix) = &s.fix {
        description.push_str(&format!("\nTo fix it:\n```\n{fix}\n```"));
    }
    let mut n = Notification::new("deploy.invalid-tag", subject, description)
        .field("cluster", cluster_name(&s.cluster).to_string())
        .field("service", s.service.clone())
        .field("reason", s.reason.clone());
    if let Some(fix) = &s.fix {
        n = n.field("fix", fix.clone()).next_step(fix.clone());
    }
    let arn = service_arn(&s.cluster, &s.service);
    if let Some(arn) = &arn {
        // The tags as ECS has them now.
        n = n.next_step(ecs_command("list-tags-for-resource", arn, &format!("--resource-arn {arn}")));
    }
    n.thread(service_thread(&s.cluster, &s.service))
        .keywords([cluster_name(&s.cluster).to_string(), s.service.clone(), "autopilot:deploy".to_string()])
        .related([s.cluster.clone()])
        .related(arn)
}

/// A service the pushed digest is held back from (DESIGN.md: a rollback is a verdict on a digest):
/// who moved it off, and that only a newer push deploys there.
/// `table` is the state table (`AUTOPILOT_STATE_TABLE`), for the command that allows the digest
/// again; without one (state in memory) there is no such command.
pub fn held_back_notification(s: &Skip, push: &Push, table: Option<&str>) -> Notification {
    let Some(h) = &s.held_back else {
        return Notification::new("deploy.held-back", format!("{}: not deployed", s.service), s.reason.clone())
            .thread(push_thread(&push.repository, &push.digest))
            .keywords([cluster_name(&s.cluster).to_string(), s.service.clone(), push.repository.clone(), push.tag.clone()]);
    };
    let from = revision_name(&h.verdict.task_definition);
    let why = match h.verdict.by.as_str() {
        autopilot::keys::BY_CIRCUIT_BREAKER => format!("ECS's deployment circuit breaker failed or rolled back {from}"),
        autopilot::keys::BY_RECOVERY => format!("recovery rolled {from} back after a crash loop"),
        _ => format!("the service was moved off {from}{}", h.verdict.to.as_deref().map(|t| format!(" to {}", revision_name(t))).unwrap_or_default()),
    };
    let subject = format!("{}: {} held back, it was rolled back", s.service, push.label());
    let (pk, sk) = autopilot::keys::rolled_back(&s.cluster, &s.service, &h.digest);
    let description = format!(
        "{} is not deployed {}/{} {} again: {why}. A rollback is a verdict on a digest: neither the reconcile pass nor a repeated push puts it back; a newer push deploys. To allow it again, delete the state-table item pk `{pk}`, sk `{sk}`.",
        who(&s.cluster, &s.service),
        push.registry,
        push.repository,
        push.label(),
    );
    let n = Notification::new("deploy.held-back", subject, description)
        .field("cluster", cluster_name(&s.cluster).to_string())
        .field("service", s.service.clone())
        .field("repository", push.repository.clone())
        .field("imageTag", push.tag.clone())
        .field("digest", h.digest.clone())
        .field("rolledBackBy", h.verdict.by.clone())
        .field("revision", from)
        .thread(push_thread(&push.repository, &push.digest))
        .keywords([cluster_name(&s.cluster).to_string(), s.service.clone(), push.repository.clone(), push.tag.clone()])
        .related([s.cluster.clone()])
        .related(service_arn(&s.cluster, &s.service))
        .related([h.verdict.task_definition.clone()]);
    // What to run to allow the digest again (the state table's key attributes are pk and sk,
    // template.yaml).
    match table {
        Some(table) => {
            let region = region_of(&s.cluster).map(|r| format!(" --region {r}")).unwrap_or_default();
            n.next_step(format!("aws dynamodb delete-item{region} --table-name {table} --key '{{\"pk\":{{\"S\":\"{pk}\"}},\"sk\":{{\"S\":\"{sk}\"}}}}'"))
        }
        None => n,
    }
}

/// A rollout of ours past its deadline (`deploy.stuck`): how long, the task counts of its
/// deployment, and ECS's newest service event, which usually names the cause (a task that cannot
/// be placed, a failing health check).
/// `record` is the deployment record (`keys::deployment`): its tag names the image, and its
/// repository and digest the push's thread.
pub fn stuck(s: &crate::plan::ObservedService, ours: &crate::plan::OurDeploy, record: &Value, running_secs: u64, deadline_secs: u64, p: &crate::aws::RolloutProgress) -> Notification {
    let tag = record.get("tag").and_then(Value::as_str);
    let rev = revision_name(&ours.task_definition);
    let image = [tag.map(String::from), Some(crate::plan::short_digest(&ours.digest))].into_iter().flatten().collect::<Vec<_>>().join(", ");
    let took = crate::rollout::human_duration(running_secs as i64);
    let subject = format!("{}: rollout of {rev} ({image}) stuck for {took}", s.name);
    let counts = format!("{} of {} tasks running, {} pending", p.running, p.desired, p.pending);
    let strategy = p.strategy.as_deref().filter(|s| *s != "ROLLING").map(|s| format!(" {} rollout,", s.to_lowercase().replace('_', "/"))).unwrap_or_default();
    let event = p.latest_event.as_deref().map(|e| format!(" ECS's latest service event: \"{e}\".")).unwrap_or_else(|| " ECS reported no service event.".into());
    let description = format!(
        "{subject} in {}:{strategy} ECS still reports it IN_PROGRESS past the deadline of {} ({counts}).{event} Without a deployment circuit breaker ECS keeps retrying and never reports a failure.",
        cluster_name(&s.cluster),
        crate::rollout::human_duration(deadline_secs as i64),
    );
    let mut n = Notification::new("deploy.stuck", subject, description)
        .field("cluster", cluster_name(&s.cluster).to_string())
        .field("service", s.name.clone())
        .field("revision", rev)
        .field("taskDefinition", ours.task_definition.clone())
        .field("digest", ours.digest.clone())
        .field("runningSeconds", running_secs)
        .field("runningCount", p.running)
        .field("desiredCount", p.desired)
        .field("pendingCount", p.pending);
    if let Some(e) = &p.latest_event {
        n = n.field("latestServiceEvent", e.clone());
    }
    let thread = record_thread(record).unwrap_or_else(|| rollout_thread(&s.cluster, &s.name, &ours.task_definition));
    n = n
        .thread(thread)
        .keywords([cluster_name(&s.cluster).to_string(), s.name.clone(), "rollout".to_string()])
        .keywords(tag.map(String::from))
        .related([s.cluster.clone(), s.arn.clone(), ours.task_definition.clone()])
        .next_step(describe_services(&s.cluster, &[&s.name]))
        .next_step(ecs_command("list-service-deployments", &s.cluster, &format!("--cluster {} --service {}", cluster_name(&s.cluster), s.name)));
    // Back to the revision it ran before ours, when the record says which.
    if let Some(previous) = record.get("previous").and_then(Value::as_str).filter(|p| !p.is_empty() && !crate::plan::same_revision(p, &ours.task_definition)) {
        n = n.next_step(update_service(&s.cluster, &s.name, previous));
    }
    n
}

/// A deployment paused at a pause lifecycle hook (`deploy.awaiting-approval`): what waits, until
/// when, what ECS does then, and the two commands that answer it. Amazon Q Developer in chat
/// applications renders the description's code blocks as copyable commands.
pub fn awaiting_approval_notification(p: &PausedHook) -> Notification {
    let stage = p.lifecycle_stage.as_deref().unwrap_or("a lifecycle stage");
    let subject = format!("{}: deployment paused at {stage}, awaiting approval", p.service);
    let deployment_id = crate::hook::parse_service_deployment_arn(&p.service_deployment_arn).map(|(_, _, id)| id).unwrap_or(&p.service_deployment_arn);
    let deadline = match (p.expires_at, p.paused_at) {
        (Some(e), Some(at)) if e >= at => format!("until {} ({} after it paused)", e.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), human_duration((e - at).num_seconds())),
        (Some(e), _) => format!("until {}", e.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        (None, _) => "until the hook's timeout".to_string(),
    };
    let then = match &p.timeout_action {
        TimeoutAction::Known(a) if a == "ROLLBACK" => "then ECS rolls the deployment back (the hook's timeout action, ROLLBACK)".to_string(),
        TimeoutAction::Known(a) if a == "CONTINUE" => "then ECS continues the deployment (the hook's timeout action, CONTINUE)".to_string(),
        TimeoutAction::Known(a) => format!("then ECS takes the hook's timeout action, {a}"),
        TimeoutAction::Unknown(why) => format!("then ECS takes the hook's timeout action (not known: {why}; ECS's default is {DEFAULT_TIMEOUT_ACTION})"),
    };
    let go = continue_command(&p.region, &p.service_deployment_arn, &p.hook_id, "CONTINUE");
    let back = continue_command(&p.region, &p.service_deployment_arn, &p.hook_id, "ROLLBACK");
    let description = format!(
        "{}: service deployment {deployment_id} is paused by pause hook {} at {stage} and waits {deadline}; {then}.\nTo continue the deployment:\n```\n{go}\n```\nTo roll it back to the previous service revision:\n```\n{back}\n```",
        who(&p.cluster, &p.service),
        p.hook_id,
    );
    let mut n = Notification::new("deploy.awaiting-approval", subject, description)
        .field("cluster", p.cluster.clone())
        .field("service", p.service.clone())
        .field("serviceDeploymentArn", p.service_deployment_arn.clone())
        .field("hookId", p.hook_id.clone())
        .field("continueCommand", go.clone())
        .field("rollbackCommand", back.clone());
    if let Some(stage) = &p.lifecycle_stage {
        n = n.field("lifecycleStage", stage.clone());
    }
    if let Some(e) = p.expires_at {
        n = n.field("expiresAt", e.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    if let TimeoutAction::Known(a) = &p.timeout_action {
        n = n.field("timeoutAction", a.clone());
    }
    // The deployment's own thread: its pause, and the end rollout.rs reports when no push of
    // ours started it (hook.rs puts it in the push's thread when one did).
    n.thread(deployment_thread(&p.service_deployment_arn))
        .keywords([p.cluster.clone(), p.service.clone()])
        .keywords(p.lifecycle_stage.clone())
        .related([p.service_deployment_arn.clone()])
        .next_step(go)
        .next_step(back)
}

/// A service autopilot never deploys because CodeDeploy controls its deployments
/// (`deploy.code-deploy-skipped`): why, and AWS's documented way to ECS-native blue/green.
pub fn code_deploy_notification(s: &Skip) -> Notification {
    let subject = format!("{}: not deployed, its deployments are controlled by CodeDeploy", s.service);
    let description = format!(
        "{} has deploymentController CODE_DEPLOY: ECS refuses a task-definition change through UpdateService for it, and a new revision must go through a CodeDeploy deployment, so autopilot leaves it alone. \
         Amazon ECS now has blue/green deployments of its own (deploymentController ECS, strategy BLUE_GREEN); once the service is migrated, autopilot deploys it. \
         AWS's migration guide: {CODE_DEPLOY_MIGRATION}",
        who(&s.cluster, &s.service),
    );
    Notification::new("deploy.code-deploy-skipped", subject, description)
        .field("cluster", cluster_name(&s.cluster).to_string())
        .field("service", s.service.clone())
        .field("deploymentController", "CODE_DEPLOY")
        .field("reason", s.reason.clone())
        .field("migrationGuide", CODE_DEPLOY_MIGRATION)
        .thread(service_thread(&s.cluster, &s.service))
        .keywords([cluster_name(&s.cluster).to_string(), s.service.clone(), "CODE_DEPLOY".to_string()])
        .related([s.cluster.clone()])
        .related(service_arn(&s.cluster, &s.service))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `REPOSITORY:v2` (digest `sha256:aaaa…`) pushed to the test account's registry.
    fn pushed(repository: &str, fresh: bool) -> Push {
        Push {
            registry: autopilot::image::EcrRegistry::new("123456789012", "us-east-1"),
            repository: repository.into(),
            tag: "v2".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            pushed_at: None,
            fresh,
        }
    }

    fn family(name: &str, services: &[&str], from: &str) -> FamilyPlan {
        FamilyPlan {
            family: name.into(),
            claim: format!("{name}#claim"),
            base: format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{from}"),
            base_revision: 1,
            existing: None,
            changes: Vec::new(),
            services: services
                .iter()
                .map(|s| crate::plan::Target {
                    cluster: "arn:aws:ecs:us-east-1:123456789012:cluster/stage01".into(),
                    service: (*s).into(),
                    service_arn: format!("arn:aws:ecs:us-east-1:123456789012:service/stage01/{s}"),
                    from: format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{from}"),
                })
                .collect(),
        }
    }

    #[test]
    fn a_held_back_digest_is_told_with_who_rolled_it_back() {
        use crate::plan::{HeldBack, Verdict};
        let push = pushed("auth", false);
        let td = |r: &str| format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{r}");
        for (by, to, says) in [
            ("circuit-breaker", None, "ECS's deployment circuit breaker failed or rolled back auth:2"),
            ("recovery", Some(td("auth:1")), "recovery rolled auth:2 back after a crash loop"),
            ("moved", Some(td("auth:1")), "the service was moved off auth:2 to auth:1"),
        ] {
            let held = HeldBack { digest: push.digest.clone(), verdict: Verdict { by: by.into(), task_definition: td("auth:2"), to }, new: false };
            let skip = Skip {
                cluster: "arn:aws:ecs:us-east-1:123456789012:cluster/stage01".into(),
                service: "auth".into(),
                reason: crate::plan::held_back_reason(&held),
                misconfigured: false,
                code_deploy: false,
                fix: None,
                held_back: Some(held),
            };
            let n = held_back_notification(&skip, &push, Some("autopilot-state"));
            assert!(held_back_notification(&skip, &push, None).next_steps.is_empty(), "no table, no command");
            assert_eq!(n.event_type, "deploy.held-back");
            assert!(n.subject.starts_with("auth: v2, sha256:aaaa") && n.subject.ends_with("held back, it was rolled back") && n.subject.len() < 100, "{}", n.subject);
            assert!(n.description.contains(says), "{by}: {}", n.description);
            assert!(n.description.contains(&format!("sk `stage01/auth@{}`", push.digest)), "{}", n.description);
            let body = n.chatbot_body(false);
            assert_eq!(body["metadata"]["additionalContext"]["rolledBackBy"], by);
            assert_eq!(body["metadata"]["additionalContext"]["digest"], push.digest);
            assert_eq!(body["metadata"]["threadId"], push_thread("auth", &push.digest).as_str(), "the push's thread");
            let step = body["content"]["nextSteps"][0].as_str().unwrap();
            assert!(step.starts_with("aws dynamodb delete-item --region us-east-1 --table-name autopilot-state --key '{\"pk\":{\"S\":\"rolled-back\"}"), "{step}");
            assert!(serde_json::from_str::<Value>(step.split('\'').nth(1).unwrap()).is_ok(), "the key is JSON: {step}");
        }
    }

    #[test]
    fn one_started_message_per_push_names_every_service_and_revision() {
        let push = pushed("web", true);
        let arn = |r: &str| format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{r}");
        let single = push_notification(&push, &[(family("auth", &["auth"], "auth:1"), arn("auth:2"))]);
        assert!(single.subject.starts_with("auth: deploying auth:2 (v2, sha256:"), "{}", single.subject);

        let started = [(family("auth", &["auth", "auth-admin"], "auth:1"), arn("auth:2")), (family("random", &["random"], "random:4"), arn("random:5"))];
        let n = push_notification(&push, &started);
        assert_eq!(n.event_type, "deploy.started");
        assert!(n.subject.starts_with("auth, auth-admin, random: deploying v2"), "{}", n.subject);
        assert!(n.subject.contains("to 3 services"), "{}", n.subject);
        assert!(n.description.contains("auth, auth-admin → auth:2 (previous auth:1)"), "{}", n.description);
        assert!(n.description.contains("random → random:5 (previous random:4)"), "{}", n.description);
        let body = n.chatbot_body(false);
        assert_eq!(body["metadata"]["additionalContext"]["family"], "auth,random");
        assert_eq!(body["metadata"]["additionalContext"]["service"], "auth,auth-admin,random");
    }

    /// Issue 17 item 10: one push is one thread (custom notifications' threadId,
    /// https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html). The push's one
    /// `deploy.started` for all its services and each service's later rollout end (rollout.rs,
    /// from the deployment record deploy.rs writes) share it; another push is another thread.
    #[test]
    fn a_push_and_the_ends_of_its_rollouts_share_one_thread() {
        use crate::outcome::RolloutStatus;
        let push = pushed("web", true);
        let arn = |r: &str| format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{r}");
        let started = [(family("auth", &["auth", "auth-admin"], "auth:1"), arn("auth:2")), (family("random", &["random"], "random:4"), arn("random:5"))];
        let announced = push_notification(&push, &started).chatbot_body(false);
        let thread = announced["metadata"]["threadId"].as_str().unwrap().to_string();
        let related = announced["metadata"]["relatedResources"].as_array().unwrap();
        for a in [arn("auth:2"), "arn:aws:ecs:us-east-1:123456789012:service/stage01/random".into(), "arn:aws:ecs:us-east-1:123456789012:cluster/stage01".into()] {
            assert!(related.contains(&Value::String(a.clone())), "{a}: {related:?}");
        }
        let keywords = announced["content"]["keywords"].as_array().unwrap();
        for k in ["deploy", "started", "stage01", "auth", "random", "web", "v2"] {
            assert!(keywords.contains(&Value::String(k.into())), "{k}: {keywords:?}");
        }
        // The record deploy.rs writes for each service it updated.
        let record = serde_json::json!({"taskDefinition": arn("random:5"), "previous": arn("random:4"), "at": 1, "digest": push.digest, "tag": "v2", "repository": "web"});
        let cluster = "arn:aws:ecs:us-east-1:123456789012:cluster/stage01";
        let service_arn = "arn:aws:ecs:us-east-1:123456789012:service/stage01/random";
        let end = |status, current: &str, ours: Option<&Value>| {
            let e = RolloutEnd { cluster, service: "random", service_arn, status, current, deployment_id: "ecs-svc/1", service_deployment: None, ours };
            rollout_end(Notification::new("deploy.x", "random: …", "…"), &e).chatbot_body(false)
        };
        let completed = end(RolloutStatus::Stable, &arn("random:5"), Some(&record));
        assert_eq!(completed["metadata"]["threadId"], thread.as_str(), "deploy.completed in the push's thread");
        assert!(completed["content"].get("nextSteps").is_none(), "nothing to do after a completed rollout");
        let rolled_back = end(RolloutStatus::RolledBack, &arn("random:4"), Some(&record));
        assert_eq!(rolled_back["metadata"]["threadId"], thread.as_str(), "its rollback too");
        let steps = rolled_back["content"]["nextSteps"].as_array().unwrap();
        assert_eq!(steps[0], "aws ecs describe-services --region us-east-1 --cluster stage01 --services random");
        assert_eq!(steps.last().unwrap(), "aws ecs update-service --region us-east-1 --cluster stage01 --service random --task-definition random:5", "forward again once fixed");
        let failed = end(RolloutStatus::Failed, &arn("random:5"), Some(&record));
        assert_eq!(failed["content"]["nextSteps"].as_array().unwrap().last().unwrap(), "aws ecs update-service --region us-east-1 --cluster stage01 --service random --task-definition random:4", "back to the previous revision");
        // A failed registration of that push (deploy.rs) and a held-back service too.
        let refused = family_notification(&started[0].0, &push, "deploy.failed", "deploy refused", None).chatbot_body(false);
        assert_eq!(refused["metadata"]["threadId"], thread.as_str());
        assert_eq!(refused["content"]["nextSteps"], serde_json::json!(["aws ecs describe-services --region us-east-1 --cluster stage01 --services auth auth-admin"]));
        // A rollout no push of ours started: its own thread; another push: another thread.
        let foreign = end(RolloutStatus::Stable, &arn("random:9"), None);
        assert_ne!(foreign["metadata"]["threadId"], thread.as_str());
        assert_eq!(foreign["metadata"]["threadId"], rollout_thread(cluster, "random", "ecs-svc/1").as_str());
        let next = Push { digest: format!("sha256:{}", "b".repeat(64)), ..push.clone() };
        assert_ne!(push_notification(&next, &started).chatbot_body(false)["metadata"]["threadId"], thread.as_str());
    }

    #[test]
    fn commands_name_the_resources_only() {
        assert_eq!(region_of("arn:aws:ecs:eu-west-1:1:cluster/c"), Some("eu-west-1"));
        assert_eq!(region_of("stage01"), None);
        assert_eq!(service_arn("arn:aws:ecs:eu-west-1:1:cluster/c", "s").as_deref(), Some("arn:aws:ecs:eu-west-1:1:service/c/s"));
        assert_eq!(update_service("stage01", "auth", "arn:aws:ecs:eu-west-1:1:task-definition/auth:3"), "aws ecs update-service --cluster stage01 --service auth --task-definition auth:3");
        let skip = Skip {
            cluster: "arn:aws:ecs:us-east-1:111122223333:cluster/stage01".into(),
            service: "auth".into(),
            reason: "old glob".into(),
            misconfigured: true,
            code_deploy: false,
            fix: Some("aws ecs tag-resource --resource-arn arn:aws:ecs:us-east-1:111122223333:service/stage01/auth --tags 'key=autopilot:deploy,value=prefix:v'".into()),
            held_back: None,
        };
        let b = misconfigured_notification(&skip).chatbot_body(false);
        assert_eq!(b["content"]["nextSteps"][0], skip.fix.as_deref().unwrap(), "the fix first");
        assert_eq!(b["content"]["nextSteps"][1], "aws ecs list-tags-for-resource --region us-east-1 --resource-arn arn:aws:ecs:us-east-1:111122223333:service/stage01/auth");
        assert_eq!(b["metadata"]["relatedResources"], serde_json::json!(["arn:aws:ecs:us-east-1:111122223333:cluster/stage01", "arn:aws:ecs:us-east-1:111122223333:service/stage01/auth"]));
        assert_eq!(b["metadata"]["threadId"], service_thread(&skip.cluster, "auth").as_str());
    }

    #[test]
    fn strategies_are_named_with_their_bake_time() {
        let n = Notification::new("deploy.started", "auth: deploying auth:2 (v2)", "deploying.");
        let n = with_strategies(n, &[("auth".into(), "BLUE_GREEN".into(), 15), ("random".into(), "CANARY".into(), 0)]);
        assert!(n.description.contains("\nauth: a blue/green deployment; ECS shifts traffic in stages, then bakes 15 min"), "{}", n.description);
        assert!(n.description.contains("\nrandom: a canary deployment; ECS shifts traffic in stages, and its end"), "{}", n.description);
        assert_eq!(n.fields["strategy"], "auth=BLUE_GREEN random=CANARY");
        let plain = with_strategies(Notification::new("deploy.started", "s", "d."), &[]);
        assert_eq!((plain.description.as_str(), plain.fields.get("strategy")), ("d.", None));
    }

    fn paused(action: TimeoutAction) -> PausedHook {
        let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
        PausedHook {
            region: "us-east-1".into(),
            cluster: "stage01".into(),
            service: "auth".into(),
            service_deployment_arn: "arn:aws:ecs:us-east-1:123456789012:service-deployment/stage01/auth/0EYSiB0qap8xf0N76FsbE".into(),
            hook_id: "ecs-pause-e7tK9G_WRJqNF_EOMjztDXfKenlJuEUVjsNStf4WLKw".into(),
            lifecycle_stage: Some("POST_TEST_TRAFFIC_SHIFT".into()),
            expires_at: Some(t("2025-11-26T14:06:41Z")),
            paused_at: Some(t("2025-11-25T14:06:41.618Z")),
            timeout_action: action,
        }
    }

    /// Pause hooks (pause-lifecycle-hooks.html): the message names the service, the deployment,
    /// the hook, its timeout and timeout action, and both ContinueServiceDeployment commands.
    #[test]
    fn a_paused_deployment_is_told_with_its_deadline_and_both_commands() {
        let arn = "arn:aws:ecs:us-east-1:123456789012:service-deployment/stage01/auth/0EYSiB0qap8xf0N76FsbE";
        let hook = "ecs-pause-e7tK9G_WRJqNF_EOMjztDXfKenlJuEUVjsNStf4WLKw";
        for (action, says, field) in [
            (TimeoutAction::Known("ROLLBACK".into()), "then ECS rolls the deployment back (the hook's timeout action, ROLLBACK)", Some("ROLLBACK")),
            (TimeoutAction::Known("CONTINUE".into()), "then ECS continues the deployment (the hook's timeout action, CONTINUE)", Some("CONTINUE")),
            (
                TimeoutAction::Unknown("DescribeServiceDeployments failed (AccessDeniedException)".into()),
                "not known: DescribeServiceDeployments failed (AccessDeniedException); ECS's default is ROLLBACK",
                None,
            ),
        ] {
            let n = awaiting_approval_notification(&paused(action));
            assert_eq!(n.event_type, "deploy.awaiting-approval");
            assert_eq!(n.subject, "auth: deployment paused at POST_TEST_TRAFFIC_SHIFT, awaiting approval");
            assert!(n.sns_subject().len() < 100);
            assert!(n.description.starts_with(&format!("stage01/auth: service deployment 0EYSiB0qap8xf0N76FsbE is paused by pause hook {hook} at POST_TEST_TRAFFIC_SHIFT")), "{}", n.description);
            assert!(n.description.contains("waits until 2025-11-26T14:06:41Z (23h59m after it paused)"), "{}", n.description);
            assert!(n.description.contains(says), "{}", n.description);
            for a in ["CONTINUE", "ROLLBACK"] {
                let cmd = format!("aws ecs continue-service-deployment --region us-east-1 --service-deployment-arn {arn} --hook-id {hook} --action {a}");
                assert!(n.description.contains(&format!("```\n{cmd}\n```")), "{a}: {}", n.description);
            }
            let body = n.chatbot_body(false);
            let ctx = &body["metadata"]["additionalContext"];
            assert_eq!(body["version"], "1.0");
            assert_eq!(body["source"], "custom");
            assert_eq!(ctx["serviceDeploymentArn"], arn);
            assert_eq!(ctx["hookId"], hook);
            assert_eq!(ctx["expiresAt"], "2025-11-26T14:06:41Z");
            assert_eq!(ctx["lifecycleStage"], "POST_TEST_TRAFFIC_SHIFT");
            assert_eq!(ctx["timeoutAction"].as_str(), field);
            assert!(ctx["continueCommand"].as_str().unwrap().ends_with("--action CONTINUE"));
            assert!(ctx["rollbackCommand"].as_str().unwrap().ends_with("--action ROLLBACK"));
            assert_eq!(body["content"]["nextSteps"], serde_json::json!([ctx["continueCommand"], ctx["rollbackCommand"]]));
            assert_eq!(body["metadata"]["relatedResources"], serde_json::json!([arn]));
            // The deployment's thread, which its end shares when no push of ours started it.
            let end = RolloutEnd {
                cluster: "arn:aws:ecs:us-east-1:123456789012:cluster/stage01",
                service: "auth",
                service_arn: "arn:aws:ecs:us-east-1:123456789012:service/stage01/auth",
                status: crate::outcome::RolloutStatus::Stable,
                current: "arn:aws:ecs:us-east-1:123456789012:task-definition/auth:3",
                deployment_id: "ecs-svc/1",
                service_deployment: Some(arn),
                ours: None,
            };
            assert_eq!(rollout_end(Notification::new("deploy.completed", "s", "d"), &end).thread_id.as_deref(), body["metadata"]["threadId"].as_str());
        }
        let unknown_deadline = PausedHook { expires_at: None, lifecycle_stage: None, ..paused(TimeoutAction::Known("ROLLBACK".into())) };
        let n = awaiting_approval_notification(&unknown_deadline);
        assert_eq!(n.subject, "auth: deployment paused at a lifecycle stage, awaiting approval");
        assert!(n.description.contains("waits until the hook's timeout;"), "{}", n.description);
    }

    #[test]
    fn a_code_deploy_service_is_told_why_and_where_the_migration_is() {
        let skip = Skip {
            cluster: "arn:aws:ecs:us-east-1:123456789012:cluster/stage01".into(),
            service: "auth-bg".into(),
            reason: crate::plan::code_deploy_reason(),
            misconfigured: false,
            code_deploy: true,
            fix: None,
            held_back: None,
        };
        let n = code_deploy_notification(&skip);
        assert_eq!(n.event_type, "deploy.code-deploy-skipped");
        assert_eq!(n.subject, "auth-bg: not deployed, its deployments are controlled by CodeDeploy");
        assert!(n.description.starts_with("stage01/auth-bg has deploymentController CODE_DEPLOY"), "{}", n.description);
        assert!(n.description.ends_with("https://docs.aws.amazon.com/AmazonECS/latest/developerguide/migrate-codedeploy-to-ecs-bluegreen.html"), "{}", n.description);
        let body = n.chatbot_body(false);
        assert_eq!(body["metadata"]["additionalContext"]["migrationGuide"], CODE_DEPLOY_MIGRATION);
        assert_eq!(body["metadata"]["additionalContext"]["deploymentController"], "CODE_DEPLOY");
    }
}
