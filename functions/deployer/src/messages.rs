//! What the deployer tells people: notifications built from plans and outcomes, pure (no AWS).
//! Only fields the code chooses go in (names, revisions, digests, reasons): never a task
//! definition's environment or secrets.

use std::collections::BTreeSet;

use autopilot::config::cluster_name;
use autopilot::Notification;

use crate::deploy::who;
use crate::hook::{continue_command, PausedHook, TimeoutAction, DEFAULT_TIMEOUT_ACTION};
use crate::plan::{revision_name, FamilyPlan, Push, Skip, CODE_DEPLOY_MIGRATION};
use crate::rollout::human_duration;

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
        n = n.field("revision", revision_name(r)).field("taskDefinition", r.to_string());
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
    Notification::new("deploy.started", subject, description)
        .field("cluster", clusters.iter().copied().collect::<Vec<_>>().join(","))
        .field("service", names.join(","))
        .field("family", started.iter().map(|(f, _)| f.family.as_str()).collect::<Vec<_>>().join(","))
        .field("imageTag", push.tag.clone())
        .field("digest", push.digest.clone())
        .field("repository", push.repository.clone())
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
        n = n.field("fix", fix.clone());
    }
    n
}

/// A service the pushed digest is held back from (DESIGN.md: a rollback is a verdict on a digest):
/// who moved it off, and that only a newer push deploys there.
pub fn held_back_notification(s: &Skip, push: &Push) -> Notification {
    let Some(h) = &s.held_back else {
        return Notification::new("deploy.held-back", format!("{}: not deployed", s.service), s.reason.clone());
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
    Notification::new("deploy.held-back", subject, description)
        .field("cluster", cluster_name(&s.cluster).to_string())
        .field("service", s.service.clone())
        .field("repository", push.repository.clone())
        .field("imageTag", push.tag.clone())
        .field("digest", h.digest.clone())
        .field("rolledBackBy", h.verdict.by.clone())
        .field("revision", from)
}

/// A rollout of ours past its deadline (`deploy.stuck`): how long, the task counts of its
/// deployment, and ECS's newest service event, which usually names the cause (a task that cannot
/// be placed, a failing health check).
pub fn stuck(s: &crate::plan::ObservedService, ours: &crate::plan::OurDeploy, tag: Option<&str>, running_secs: u64, deadline_secs: u64, p: &crate::aws::RolloutProgress) -> Notification {
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
        .field("continueCommand", go)
        .field("rollbackCommand", back);
    if let Some(stage) = &p.lifecycle_stage {
        n = n.field("lifecycleStage", stage.clone());
    }
    if let Some(e) = p.expires_at {
        n = n.field("expiresAt", e.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    if let TimeoutAction::Known(a) = &p.timeout_action {
        n = n.field("timeoutAction", a.clone());
    }
    n
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let push = Push {
            registry: autopilot::image::EcrRegistry::new("123456789012", "us-east-1"),
            repository: "auth".into(),
            tag: "v2".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            pushed_at: None,
            fresh: false,
        };
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
            let n = held_back_notification(&skip, &push);
            assert_eq!(n.event_type, "deploy.held-back");
            assert!(n.subject.starts_with("auth: v2, sha256:aaaa") && n.subject.ends_with("held back, it was rolled back") && n.subject.len() < 100, "{}", n.subject);
            assert!(n.description.contains(says), "{by}: {}", n.description);
            assert!(n.description.contains(&format!("sk `stage01/auth@{}`", push.digest)), "{}", n.description);
            let body = n.chatbot_body(false);
            assert_eq!(body["metadata"]["additionalContext"]["rolledBackBy"], by);
            assert_eq!(body["metadata"]["additionalContext"]["digest"], push.digest);
        }
    }

    #[test]
    fn one_started_message_per_push_names_every_service_and_revision() {
        let push = Push {
            registry: autopilot::image::EcrRegistry::new("123456789012", "us-east-1"),
            repository: "web".into(),
            tag: "v2".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            pushed_at: None,
            fresh: true,
        };
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
