//! What recovery tells people: the subject, description and fields of every notification, and the
//! one-line account of what was done (`what`), which the outcome's `reason` repeats. Pure: built
//! from the classified stop and the decision only, never from overrides or container environment.

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
    n
}

// ------------------------------------------------------------------ standalone re-runs

/// A re-run refused for a reason the task's owner must fix (its tags).
pub fn refused(s: &Stopped, name: &str, why: &str) -> Notification {
    base(s, "recovery.restart-refused", format!("{name}: task of {} {}, not re-run", s.revision, s.class), why)
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
        .field("restartLimit", limit);
    (what, n)
}

/// What a re-run did (the incident message carries it).
pub fn restarted(new_task: &str, attempt: u32, limit: u32) -> String {
    format!("re-run as task {} (restart {attempt} of {limit})", plan::task_id(new_task))
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
        .field("failuresInWindow", failures);
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
    Some(n)
}

/// An ELB health-check message names the target group and, when it could be read, why its
/// targets fail their health checks.
pub fn with_target_health(n: Notification, target_group_arn: &str, health: Option<&TargetGroupHealth>) -> Notification {
    let Some(h) = health else { return n.field("targetGroup", target_group_arn) };
    let summary = h.summary();
    let mut n = n.field("targetGroup", target_group_arn).field("targetHealth", summary.clone());
    if let Some(path) = &h.health_check_path {
        n = n.field("healthCheckPath", path.clone());
    }
    n.description = format!("{}\nTarget health: {summary}", n.description);
    n
}
