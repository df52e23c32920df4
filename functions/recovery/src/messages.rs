//! What recovery tells people: the subject, description and fields of every notification, and the
//! one-line account of what was done (`what`), which the outcome's `reason` repeats. Pure: built
//! from the classified stop and the decision only, never from overrides or container environment.

use autopilot::notify::{ecs_command, thread_id};
use autopilot::Notification;
use serde_json::{Map, Value};

use crate::classify::{StopClass, Stopped};
use crate::elb::TargetGroupHealth;
use crate::plan::{self, Emit, FailureWindow, ServiceFailure};
use crate::restart::RestartDecision;

/// What a service task's message says when its stop was not the revision's fault.
pub const REPLACED_BY_ECS: &str = "ECS replaces service tasks itself; autopilot did nothing";

/// A notification with what happened and why; `what` says what was done. Built only from chosen
/// fields (never overrides or container environment).
pub fn base(s: &Stopped, event_type: &str, subject: String, what: &str) -> Notification {
    let mut why = Vec::new();
    if let Some(r) = s.t.stopped_reason.as_deref().filter(|r| !r.is_empty()) {
        why.push(format!("Stopped reason: {r}"));
    }
    for c in &s.t.containers {
        match (c.exit_code, c.reason.as_deref()) {
            (Some(code), Some(r)) => why.push(format!("Container {}: exit {code}, {r}", c.name)),
            (Some(code), None) if code != 0 => why.push(format!("Container {}: exit {code}", c.name)),
            (None, Some(r)) => why.push(format!("Container {}: {r}", c.name)),
            _ => {}
        }
    }
    let description = format!("Task {} ({}) in {} {}.\n{}\nAction: {what}", s.task_id, s.revision, s.cluster, s.class, why.join("\n"));
    let mut context = Map::new();
    context.insert("cluster".into(), s.cluster.clone().into());
    context.insert("task".into(), s.t.task_arn.clone().into());
    context.insert("revision".into(), s.revision.clone().into());
    context.insert("class".into(), s.class.label().into());
    context.insert("action".into(), what.into());
    if let Some(r) = &s.t.stopped_reason {
        context.insert("stoppedReason".into(), r.clone().into());
    }
    if let Some(c) = &s.t.stop_code {
        context.insert("stopCode".into(), c.clone().into());
    }
    if let StopClass::Crash { container, exit_code } = &s.class {
        if let Some(code) = exit_code {
            context.insert("exitCode".into(), (*code).into());
        }
        if let Some(c) = container {
            context.insert("container".into(), c.clone().into());
        }
    }
    let mut n = Notification::new(event_type, subject, description);
    n.fields = context;
    let family = s.revision.split(':').next().unwrap_or_default().to_string();
    let tg = match &s.class {
        StopClass::ElbHealthCheck { target_group_arn } => target_group_arn.clone(),
        _ => None,
    };
    n.thread(incident_thread(&plan::incident_key(&scope(s), &s.class, &s.revision)))
        .keywords([s.cluster.clone()])
        .keywords(s.t.service_name().map(String::from))
        .keywords([family, s.class.label().to_string()])
        .related([s.t.cluster_arn.clone(), s.t.task_arn.clone()])
        .related(s.t.task_definition_arn.clone())
        .related(tg)
}

/// What an incident is keyed by (incident.rs): the service (`CLUSTER/SERVICE`) for a service's
/// task, the cluster's standalone tasks (`CLUSTER/task`) otherwise.
pub fn scope(s: &Stopped) -> String {
    match s.t.service_name() {
        Some(service) => plan::service_scope(&s.cluster, service),
        None => crate::restart::task_scope(&s.cluster),
    }
}

/// One incident, one thread (`metadata.threadId` of the custom-notification schema,
/// https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html): every message of
/// an incident (`plan::incident_key`: scope, class, revision), its first, its summaries, the
/// rollback that stands for it, a refused or exhausted re-run, is built by [`base`] into it.
pub fn incident_thread(incident_key: &str) -> String {
    thread_id("incident", incident_key)
}

/// `aws ecs describe-tasks` of the stopped task, with its tags (what a refused or exhausted
/// re-run is about): names and ARNs only, never its overrides.
pub fn describe_task(s: &Stopped) -> String {
    ecs_command("describe-tasks", &s.t.task_arn, &format!("--cluster {} --tasks {} --include TAGS", s.cluster, s.t.task_arn))
}

/// `aws ecs describe-services` of the stopped task's service.
pub fn describe_service(s: &Stopped, service: &str) -> String {
    ecs_command("describe-services", &s.t.cluster_arn, &format!("--cluster {} --services {service}", s.cluster))
}

/// `aws ecs update-service … --task-definition FAMILY:REV` (taskDefinition only).
pub fn update_service(s: &Stopped, service: &str, revision: &str) -> String {
    ecs_command("update-service", &s.t.cluster_arn, &format!("--cluster {} --service {service} --task-definition {revision}", s.cluster))
}

// ------------------------------------------------------------------ standalone re-runs

/// A re-run refused for a reason the task's owner must fix (its tags).
pub fn refused(s: &Stopped, name: &str, why: &str) -> Notification {
    base(s, "recovery.restart-refused", format!("{name}: task of {} {}, not re-run", s.revision, s.class), why).next_step(describe_task(s))
}

/// A dry run's account of a restart decision and its message; `None` when not opted in.
pub fn restart_dry_run(s: &Stopped, name: &str, decision: &RestartDecision) -> Option<(String, Notification)> {
    let (what, short) = match decision {
        RestartDecision::Rerun { attempt, limit, .. } => (format!("would re-run it (restart {attempt} of {limit})"), format!("would re-run {attempt} of {limit}")),
        RestartDecision::LimitReached { limit, .. } => (format!("would not re-run it: restart limit {limit} reached"), format!("restart limit {limit} reached")),
        RestartDecision::NotOptedIn => return None,
    };
    let n = base(s, "recovery.task-failed", format!("{name}: task of {} {}, {short}", s.revision, s.class), &what);
    Some((what, n))
}

/// A chain of re-runs that used all its restarts: what was (not) done, and its message.
pub fn restart_limit(s: &Stopped, name: &str, lineage: &str, limit: u32) -> (String, Notification) {
    let what = format!("not re-run: restart limit reached ({limit} of {limit} used by lineage {lineage})");
    let n = base(s, "recovery.restart-limit", format!("{name}: task of {} {}, restart limit {limit} reached", s.revision, s.class), &what)
        .field("lineage", lineage.to_string())
        .field("restartLimit", limit)
        .next_step(describe_task(s));
    (what, n)
}

/// What a re-run did (the incident message carries it), naming what the stopped task ran with
/// that the re-run could not be given (`restart::not_carried`).
pub fn restarted(new_task: &str, attempt: u32, limit: u32, not_carried: &[String]) -> String {
    let what = format!("re-run as task {} (restart {attempt} of {limit})", plan::task_id(new_task));
    if not_carried.is_empty() {
        return what;
    }
    format!("{what}; not carried over (ECS does not report it for a stopped task): {}", not_carried.join(", "))
}

/// The end of a re-run's subject.
pub fn restarted_short(attempt: u32, limit: u32) -> String {
    format!("re-run {attempt} of {limit}")
}

// ------------------------------------------------------------------ service tasks

/// What a failed service task amounts to, when no rollback happened in this invocation.
pub fn service_failure(revision: &str, w: &FailureWindow, failure: &ServiceFailure) -> String {
    let (count, minutes, threshold) = (w.failures, plan::minutes(w.window_secs), w.threshold);
    match failure {
        ServiceFailure::Replaced => format!("ECS replaces the task; {count} failed task(s) of {revision} in the last {minutes} min (a crash loop is {threshold})"),
        ServiceFailure::AlreadyRolledBack => format!("crash loop: {count} failed tasks of {revision} in the last {minutes} min; the service was already rolled back"),
        ServiceFailure::NotRolledBack(why) => format!("crash loop: {count} failed tasks of {revision} in the last {minutes} min; not rolled back: {why}"),
    }
}

/// The end of a failed service task's subject (said of the window: a crash loop already rolled
/// back is still "not rolled back" here).
pub fn service_failure_short(w: &FailureWindow) -> &'static str {
    if w.crash_loop() {
        "crash loop, not rolled back"
    } else {
        "replaced by ECS"
    }
}

/// A crash loop's rollback to `to_rev` (or, in a dry run, the one that would be): what was done,
/// and its message.
pub fn rollback(s: &Stopped, service: &str, failures: usize, window_secs: u64, to_rev: &str, dry_run: bool) -> (String, Notification) {
    let why = format!("{failures} failed tasks of {} in the last {} min after its deployment", s.revision, plan::minutes(window_secs));
    let (what, verb) = if dry_run {
        (format!("would roll the service back to {to_rev}: {why}"), "would roll back to")
    } else {
        (format!("rolled the service back to {to_rev}: {why}"), "rolled back to")
    };
    let subject = format!("{}/{service}: crash loop of {}, {verb} {to_rev}", s.cluster, s.revision);
    let n = base(s, "recovery.rollback", subject, &what)
        .field("service", service)
        .field("rolledBackFrom", s.revision.clone())
        .field("rolledBackTo", to_rev.to_string())
        .field("failuresInWindow", failures)
        .next_step(describe_service(s, service))
        .next_step(describe_task(s));
    // A dry run: the rollback it would make; a rollback made: forward again once the cause is
    // fixed (autopilot will not: a rollback is a verdict on the digest).
    let n = if dry_run { n.next_step(update_service(s, service, to_rev)) } else { n.next_step(update_service(s, service, &s.revision)) };
    (what, n)
}

// ------------------------------------------------------------------ incidents

/// The message for one more task of an incident, as debouncing decided: the first one, or a
/// summary of the tasks folded since; `None` when this one is folded too. `name` is what the
/// subject calls the service or task family; `fields` follow the common ones.
pub fn incident(s: &Stopped, name: &str, short: &str, what: &str, emit: &Emit, fields: &[(&str, Value)]) -> Option<Notification> {
    let (subject, event_type) = match emit {
        Emit::Suppress => return None,
        Emit::First => (format!("{name}: task of {} {}, {short}", s.revision, s.class), "recovery.task-failed"),
        Emit::Summary { tasks, since_secs } => {
            let noun = if *tasks == 1 { "task" } else { "tasks" };
            (format!("{name}: {tasks} more {noun} of {} {} in the last {} min", s.revision, s.class.verb(), plan::minutes(*since_secs)), "recovery.summary")
        }
    };
    let mut n = base(s, event_type, subject, what);
    for (key, value) in fields {
        n = n.field(key, value.clone());
    }
    if let Emit::Summary { tasks, since_secs } = emit {
        n = n.field("moreTasks", *tasks).field("sinceSeconds", *since_secs);
    }
    // A crash loop nobody rolled back is a person's to look at.
    let crash_loop = fields.iter().any(|(k, v)| *k == "crashLoop" && *v == Value::Bool(true));
    if let (true, Some(service)) = (crash_loop, s.t.service_name()) {
        n = n.next_step(describe_service(s, service)).next_step(describe_task(s));
    }
    Some(n)
}

/// An ELB health-check message names the target group and, when it could be read, why its
/// targets fail their health checks.
pub fn with_target_health(n: Notification, target_group_arn: &str, health: Option<&TargetGroupHealth>) -> Notification {
    let n = n.related([target_group_arn.to_string()]);
    let Some(h) = health else { return n.field("targetGroup", target_group_arn) };
    let summary = h.summary();
    let mut n = n.field("targetGroup", target_group_arn).field("targetHealth", summary.clone());
    if let Some(path) = &h.health_check_path {
        n = n.field("healthCheckPath", path.clone());
    }
    n.description = format!("{}\nTarget health: {summary}", n.description);
    n
}

/// The summary the schedule sends when an incident's window closed with `tasks` folded into it
/// (issue 17, item 6), worded from what the incident's tally kept (`plan::incident_context`):
/// there is no task at hand. The same subject as a summary sent by a later task.
/// `incident_key` is the incident's (plan::incident_key): the summary goes into the thread of the
/// incident's first message, as a straggler's summary does.
pub fn closed_incident_summary(incident_key: &str, ctx: &Value, tasks: u64, since_secs: u64) -> Notification {
    let text = |k: &str| ctx.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
    let (name, cluster, revision, verb) = (text("name"), text("cluster"), text("revision"), text("verb"));
    let noun = if tasks == 1 { "task" } else { "tasks" };
    let minutes = plan::minutes(since_secs);
    let subject = format!("{name}: {tasks} more {noun} of {revision} {verb} in the last {minutes} min");
    let description = format!(
        "{tasks} more {noun} of {revision} in {cluster} {verb} since the incident's first message {minutes} min ago; each was counted, not notified.\nAction: none (the incident's window closed)"
    );
    let mut n = Notification::new("recovery.summary", subject, description).thread(incident_thread(incident_key)).keywords(["recovery", "summary"]);
    for key in ["cluster", "revision", "class", "service"] {
        if let Some(v) = ctx.get(key) {
            n = n.field(key, v.clone());
        }
    }
    n.field("moreTasks", tasks).field("sinceSeconds", since_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use autopilot::events::TaskStateChange;
    use serde_json::json;

    fn event(group: &str, stop_code: &str, reason: &str, containers: Value) -> TaskStateChange {
        serde_json::from_value(json!({
            "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/stage01",
            "taskArn": "arn:aws:ecs:us-east-1:123456789012:task/stage01/0123abcd",
            "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/random:2",
            "group": group, "lastStatus": "STOPPED", "stopCode": stop_code, "stoppedReason": reason, "containers": containers,
            "overrides": {"containerOverrides": [{"name": "random", "environment": [{"name": "API_TOKEN", "value": "s3cr3t-override"}]}]}
        }))
        .unwrap()
    }

    fn crash() -> TaskStateChange {
        event("service:random", "EssentialContainerExited", "Essential container in task exited", json!([{"name": "random", "exitCode": 1}, {"name": "log-router", "exitCode": 0, "reason": "done"}]))
    }

    /// Subject, event type, description and fields as one text per message.
    fn text(n: &Notification) -> String {
        format!("{} | {} | {} | {}", n.subject, n.event_type, n.description, Value::Object(n.fields.clone()))
    }

    #[test]
    fn base_says_what_happened_and_why_but_nothing_of_the_environment() {
        let t = crash();
        let n = base(&Stopped::every_container_essential(&t), "recovery.task-failed", "subject".into(), "what was done");
        assert_eq!(
            text(&n),
            "subject | recovery.task-failed | Task 0123abcd (random:2) in stage01 crashed (exit 1).\nStopped reason: Essential container in task exited\nContainer random: exit 1\nContainer log-router: exit 0, done\nAction: what was done | \
             {\"cluster\":\"stage01\",\"task\":\"arn:aws:ecs:us-east-1:123456789012:task/stage01/0123abcd\",\"revision\":\"random:2\",\"class\":\"crash\",\"action\":\"what was done\",\
             \"stoppedReason\":\"Essential container in task exited\",\"stopCode\":\"EssentialContainerExited\",\"exitCode\":1,\"container\":\"random\"}"
        );
        assert!(!format!("{n:?}").contains("s3cr3t"));
    }

    #[test]
    fn restart_messages() {
        let t = event("family:nightly-report", "EssentialContainerExited", "", json!([{"name": "job", "exitCode": 3}]));
        let s = Stopped::every_container_essential(&t);
        let subject = |n: Option<(String, Notification)>| n.map(|(what, n)| (what, n.subject, n.event_type));
        let cases = [
            (RestartDecision::Rerun { lineage: "l".into(), attempt: 2, limit: 3 }, Some(("would re-run it (restart 2 of 3)", "stage01/job: task of random:2 crashed (exit 3), would re-run 2 of 3", "recovery.task-failed"))),
            (RestartDecision::LimitReached { lineage: "l".into(), limit: 3 }, Some(("would not re-run it: restart limit 3 reached", "stage01/job: task of random:2 crashed (exit 3), restart limit 3 reached", "recovery.task-failed"))),
            (RestartDecision::NotOptedIn, None),
        ];
        for (decision, want) in cases {
            assert_eq!(subject(restart_dry_run(&s, "stage01/job", &decision)), want.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())), "{decision:?}");
        }
        let (what, n) = restart_limit(&s, "stage01/job", "orig", 2);
        assert_eq!((what.as_str(), n.subject.as_str(), n.event_type.as_str()), ("not re-run: restart limit reached (2 of 2 used by lineage orig)", "stage01/job: task of random:2 crashed (exit 3), restart limit 2 reached", "recovery.restart-limit"));
        assert_eq!((n.fields["lineage"].clone(), n.fields["restartLimit"].clone()), (json!("orig"), json!(2)));
        let n = refused(&s, "stage01/job", "cannot re-run: why");
        assert_eq!((n.subject.as_str(), n.event_type.as_str(), n.fields["action"].as_str()), ("stage01/job: task of random:2 crashed (exit 3), not re-run", "recovery.restart-refused", Some("cannot re-run: why")));
        assert_eq!(restarted("arn:aws:ecs:us-east-1:1:task/stage01/feed", 1, 3, &[]), "re-run as task feed (restart 1 of 3)");
        assert_eq!(
            restarted("arn:aws:ecs:us-east-1:1:task/stage01/feed", 1, 3, &["volumeConfigurations (EBS volume data)".into()]),
            "re-run as task feed (restart 1 of 3); not carried over (ECS does not report it for a stopped task): volumeConfigurations (EBS volume data)"
        );
        assert_eq!(restarted_short(1, 3), "re-run 1 of 3");
    }

    #[test]
    fn service_failure_texts() {
        let w = |failures| FailureWindow { failures, threshold: 3, window_secs: 600 };
        let cases = [
            (w(1), ServiceFailure::Replaced, "ECS replaces the task; 1 failed task(s) of random:2 in the last 10 min (a crash loop is 3)", "replaced by ECS"),
            (w(3), ServiceFailure::AlreadyRolledBack, "crash loop: 3 failed tasks of random:2 in the last 10 min; the service was already rolled back", "crash loop, not rolled back"),
            (w(4), ServiceFailure::NotRolledBack("no stable revision".into()), "crash loop: 4 failed tasks of random:2 in the last 10 min; not rolled back: no stable revision", "crash loop, not rolled back"),
        ];
        for (w, failure, what, short) in cases {
            assert_eq!((service_failure("random:2", &w, &failure).as_str(), service_failure_short(&w)), (what, short), "{failure:?}");
        }
    }

    #[test]
    fn rollback_messages() {
        let t = crash();
        let s = Stopped::every_container_essential(&t);
        let (what, n) = rollback(&s, "random", 3, 600, "random:1", false);
        assert_eq!(what, "rolled the service back to random:1: 3 failed tasks of random:2 in the last 10 min after its deployment");
        assert_eq!((n.subject.as_str(), n.event_type.as_str()), ("stage01/random: crash loop of random:2, rolled back to random:1", "recovery.rollback"));
        let tail: Vec<(&String, &Value)> = n.fields.iter().skip_while(|(k, _)| *k != "service").collect();
        assert_eq!(format!("{tail:?}"), r#"[("service", String("random")), ("rolledBackFrom", String("random:2")), ("rolledBackTo", String("random:1")), ("failuresInWindow", Number(3))]"#);
        let (what, n) = rollback(&s, "random", 3, 600, "random:1", true);
        assert!(what.starts_with("would roll the service back to random:1: "), "{what}");
        assert_eq!(n.subject, "stage01/random: crash loop of random:2, would roll back to random:1");
    }

    #[test]
    fn incident_messages_by_debounce_decision() {
        let t = event("service:random", "ServiceSchedulerInitiated", "Task failed container health checks", json!([]));
        let s = Stopped::every_container_essential(&t);
        let fields = [("service", json!("random"))];
        let msg = |emit: Emit| incident(&s, "stage01/random", "replaced by ECS", "what", &emit, &fields).map(|n| (n.subject, n.event_type, n.fields.get("moreTasks").cloned(), n.fields.get("service").cloned()));
        assert_eq!(msg(Emit::Suppress), None);
        assert_eq!(msg(Emit::First), Some(("stage01/random: task of random:2 failed container health checks, replaced by ECS".into(), "recovery.task-failed".into(), None, Some(json!("random")))));
        assert_eq!(msg(Emit::Summary { tasks: 1, since_secs: 601 }).map(|m| m.0), Some("stage01/random: 1 more task of random:2 failed container health checks in the last 11 min".into()));
        let summary = incident(&s, "stage01/random", "x", "what", &Emit::Summary { tasks: 12, since_secs: 600 }, &fields).unwrap();
        assert_eq!(summary.subject, "stage01/random: 12 more tasks of random:2 failed container health checks in the last 10 min");
        assert_eq!(summary.event_type, "recovery.summary");
        let tail: Vec<&String> = summary.fields.keys().skip_while(|k| *k != "action").collect();
        assert_eq!(tail, ["action", "stoppedReason", "stopCode", "service", "moreTasks", "sinceSeconds"], "the message's own fields follow the common ones");
    }

    /// Issue 17 item 10: one incident, one thread (custom notifications' threadId,
    /// https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html): its first
    /// message, its summary and the rollback that stands for it share it; another revision's
    /// incident, or another class, is another thread.
    #[test]
    fn an_incidents_first_message_summary_and_rollback_share_one_thread() {
        let t = crash();
        let s = Stopped::every_container_essential(&t);
        let fields = [("service", json!("random")), ("crashLoop", json!(true))];
        let first = incident(&s, "stage01/random", "crash loop, not rolled back", "what", &Emit::First, &fields).unwrap().chatbot_body(false);
        let summary = incident(&s, "stage01/random", "x", "what", &Emit::Summary { tasks: 3, since_secs: 600 }, &fields).unwrap().chatbot_body(false);
        let (_, rolled_back) = rollback(&s, "random", 3, 600, "random:1", false);
        let thread = incident_thread(&plan::incident_key("stage01/random", &s.class, "random:2"));
        for b in [&first, &summary, &rolled_back.chatbot_body(false)] {
            assert_eq!(b["metadata"]["threadId"], thread.as_str(), "{b}");
        }
        assert_eq!(
            first["metadata"]["relatedResources"],
            json!(["arn:aws:ecs:us-east-1:123456789012:cluster/stage01", "arn:aws:ecs:us-east-1:123456789012:task/stage01/0123abcd", "arn:aws:ecs:us-east-1:123456789012:task-definition/random:2"])
        );
        let keywords = first["content"]["keywords"].as_array().unwrap();
        for k in ["recovery", "stage01", "random", "crash"] {
            assert!(keywords.contains(&json!(k)), "{k}: {keywords:?}");
        }
        assert_eq!(first["metadata"]["additionalContext"]["exitCode"], "1", "additionalContext values are strings");
        // The crash loop nobody rolled back: what to look at.
        assert_eq!(first["content"]["nextSteps"][0], "aws ecs describe-services --region us-east-1 --cluster stage01 --services random");
        // The rollback: forward again once fixed; in a dry run, the rollback it would make.
        let steps = rolled_back.chatbot_body(false)["content"]["nextSteps"].clone();
        assert_eq!(steps.as_array().unwrap().last().unwrap(), "aws ecs update-service --region us-east-1 --cluster stage01 --service random --task-definition random:2");
        let (_, dry) = rollback(&s, "random", 3, 600, "random:1", true);
        assert_eq!(dry.next_steps.last().unwrap(), "aws ecs update-service --region us-east-1 --cluster stage01 --service random --task-definition random:1");
        // Another class of stop of the same revision: another incident, another thread.
        let health = event("service:random", "ServiceSchedulerInitiated", "Task failed container health checks", json!([]));
        let other = base(&Stopped::every_container_essential(&health), "recovery.task-failed", "s".into(), "w");
        assert_ne!(other.thread_id.as_deref(), Some(thread.as_str()));
        // A replaced task (no crash loop) asks nothing of anyone.
        let replaced = incident(&s, "stage01/random", "replaced by ECS", "what", &Emit::First, &[("service", json!("random")), ("crashLoop", json!(false))]).unwrap();
        assert!(replaced.next_steps.is_empty());
    }

    /// A refused re-run: the command that shows the task and the tags the refusal is about, in
    /// the standalone tasks' incident thread; never an override (the event carries one).
    #[test]
    fn a_refused_restart_says_what_to_run() {
        let t = event("family:nightly-report", "EssentialContainerExited", "", json!([{"name": "job", "exitCode": 3}]));
        let s = Stopped::every_container_essential(&t);
        let b = refused(&s, "stage01/job", "cannot re-run: autopilot:restart is not valid").chatbot_body(false);
        assert_eq!(
            b["content"]["nextSteps"],
            json!(["aws ecs describe-tasks --region us-east-1 --cluster stage01 --tasks arn:aws:ecs:us-east-1:123456789012:task/stage01/0123abcd --include TAGS"])
        );
        assert_eq!(b["metadata"]["threadId"], incident_thread(&plan::incident_key("stage01/task", &s.class, "random:2")).as_str());
        assert!(!b.to_string().contains("s3cr3t") && !b.to_string().contains("API_TOKEN"), "{b}");
        let (_, limit) = restart_limit(&s, "stage01/job", "orig", 2);
        assert_eq!(limit.next_steps, b["content"]["nextSteps"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect::<Vec<_>>());
    }

    /// Issue 17, item 6: the schedule's summary, worded from what the incident's tally kept.
    #[test]
    fn closed_incident_summary_from_the_tally() {
        let t = event("service:random", "EssentialContainerExited", "Essential container in task exited", json!([{"name": "random", "exitCode": 1}]));
        let s = Stopped::every_container_essential(&t);
        let ctx = plan::incident_context(&s.cluster, "stage01/random", &s.revision, &s.class, &[("service", json!("random")), ("crashLoop", json!(false))]);
        let key = plan::incident_key("stage01/random", &s.class, &s.revision);
        let n = closed_incident_summary(&key, &ctx, 49, 610);
        assert_eq!((n.subject.as_str(), n.event_type.as_str()), ("stage01/random: 49 more tasks of random:2 crashed in the last 11 min", "recovery.summary"));
        assert_eq!(Value::Object(n.fields.clone()), json!({"cluster": "stage01", "revision": "random:2", "class": "crash", "service": "random", "moreTasks": 49, "sinceSeconds": 610}));
        let straggler = incident(&s, "stage01/random", "x", "what", &Emit::Summary { tasks: 49, since_secs: 610 }, &[]).unwrap();
        assert_eq!(straggler.subject, n.subject, "the same subject as a summary a later task sends");
        assert_eq!(n.thread_id, straggler.thread_id, "and the same thread: the incident's (issue 17, item 10)");
        assert!(n.thread_id.is_some());
        assert_eq!(closed_incident_summary(&key, &ctx, 1, 60).subject, "stage01/random: 1 more task of random:2 crashed in the last 1 min");
    }

    #[test]
    fn target_health_when_elb_says() {
        let t = crash();
        let n = || base(&Stopped::every_container_essential(&t), "recovery.task-failed", "s".into(), "w");
        let health = TargetGroupHealth { name: Some("random".into()), health_check_path: Some("/random/".into()), reason: Some("Target.Timeout: Request timed out".into()), unhealthy: 1, total: 2 };
        let with = with_target_health(n(), "arn:tg", Some(&health));
        assert_eq!((with.fields["targetGroup"].clone(), with.fields["targetHealth"].clone(), with.fields["healthCheckPath"].clone()), (json!("arn:tg"), json!("Target.Timeout: Request timed out on /random/"), json!("/random/")));
        assert!(with.description.ends_with("\nTarget health: Target.Timeout: Request timed out on /random/"), "{}", with.description);
        let without = with_target_health(n(), "arn:tg", None);
        assert_eq!((without.fields.get("targetGroup"), without.fields.get("targetHealth"), without.description), (Some(&json!("arn:tg")), None, n().description));
    }
}
