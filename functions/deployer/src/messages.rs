//! What the deployer tells people: notifications built from plans and outcomes, pure (no AWS).
//! Only fields the code chooses go in (names, revisions, digests, reasons): never a task
//! definition's environment or secrets.

use std::collections::BTreeSet;

use autopilot::config::cluster_name;
use autopilot::Notification;

use crate::deploy::who;
use crate::plan::{revision_name, FamilyPlan, Push, Skip, CODE_DEPLOY_MIGRATION};

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
