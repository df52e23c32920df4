//! Pure decisions about service tasks and incidents: the failure window of a service revision,
//! notification debouncing, rollback eligibility, and the keys they are recorded under. Inputs are
//! plain values (state records, what aws.rs observed, `now`); service.rs and incident.rs read them
//! and execute the result. A standalone task's re-run is decided in restart.rs.

use serde_json::{json, Value};

use autopilot::tags::{parse_rollback, Tags, TAG_ROLLBACK};

use crate::classify::StopClass;

// Where they always were: tests and benches name them `plan::…`.
pub use crate::restart::{client_token, decide_restart, RestartDecision};

/// A rollback only follows a deployment this recent.
pub const RECENT_DEPLOYMENT_SECS: u64 = 3600;
/// Failure records kept per revision (a burst beyond this is still a crash loop).
const MAX_FAILURES_KEPT: usize = 200;

/// `arn:aws:ecs:r:a:task-definition/random:2` or `random:2` → `random:2`.
pub fn revision(task_definition: &str) -> String {
    task_definition.rsplit_once(":task-definition/").map(|(_, r)| r).unwrap_or(task_definition).to_string()
}

/// `arn:aws:ecs:r:a:task/stage01/abc` → `abc`.
pub fn task_id(task_arn: &str) -> &str {
    task_arn.rsplit('/').next().unwrap_or(task_arn)
}

// ------------------------------------------------------------------ failure window

/// Add one failed task to a revision's window (idempotent per task) and drop what is older than
/// `window_secs`. Returns the new record and the number of failures in the window.
pub fn record_failure(previous: Option<&Value>, task: &str, now: u64, window_secs: u64) -> (Value, usize) {
    let mut entries: Vec<(String, u64)> = previous
        .and_then(|v| v.get("failures"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|e| Some((e.get("task")?.as_str()?.to_string(), e.get("at")?.as_u64()?))).collect())
        .unwrap_or_default();
    entries.retain(|(_, at)| at + window_secs > now);
    if !entries.iter().any(|(t, _)| t == task) {
        entries.push((task.to_string(), now));
    }
    if entries.len() > MAX_FAILURES_KEPT {
        entries.drain(..entries.len() - MAX_FAILURES_KEPT);
    }
    let count = entries.len();
    let failures: Vec<Value> = entries.into_iter().map(|(t, at)| json!({"task": t, "at": at})).collect();
    (json!({ "failures": failures }), count)
}

// ------------------------------------------------------------------ notification debouncing

/// What to send for one more task of an incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emit {
    /// The first message of an incident.
    First,
    /// The incident went on after the last message's window: `tasks` more tasks (the suppressed
    /// ones and this one) since `since_secs` ago.
    Summary { tasks: u64, since_secs: u64 },
    /// Inside the window of the last message: counted, not sent.
    Suppress,
}

/// Debounce rule: one message per incident key per window. Tasks within the window are counted;
/// the first task after the window closes sends a summary of them (itself included) and opens
/// a new window; if nothing was suppressed, it is a new incident. Returns the new record.
pub fn debounce(previous: Option<&Value>, now: u64, window_secs: u64) -> (Value, Emit) {
    let sent = previous.and_then(|v| v.get("sent")).and_then(Value::as_u64);
    let suppressed = previous.and_then(|v| v.get("suppressed")).and_then(Value::as_u64).unwrap_or(0);
    match sent {
        Some(sent) if now < sent + window_secs => (json!({"sent": sent, "suppressed": suppressed + 1}), Emit::Suppress),
        Some(sent) if suppressed > 0 => (json!({"sent": now, "suppressed": 0}), Emit::Summary { tasks: suppressed + 1, since_secs: now.saturating_sub(sent) }),
        _ => (json!({"sent": now, "suppressed": 0}), Emit::First),
    }
}

pub fn minutes(secs: u64) -> u64 {
    secs.div_ceil(60).max(1)
}

// ------------------------------------------------------------------ rollback of a crash loop

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackDecision {
    RollBack { to: String },
    /// Notify only, with the reason no rollback happens.
    NotifyOnly(String),
}

pub struct RollbackInputs<'a> {
    /// Revision (family:rev) of the failing tasks.
    pub failing: &'a str,
    /// The service's current task definition (ARN or family:rev).
    pub service_task_definition: Option<&'a str>,
    pub rollback_tag: Result<bool, String>,
    /// The deployment record (keys::deployment).
    pub deployment: Option<&'a Value>,
    /// The stable record (keys::stable_revision).
    pub stable: Option<&'a Value>,
    /// CODE_DEPLOY or EXTERNAL controllers are not ours to drive.
    pub controller: Option<&'a str>,
    pub now: u64,
}

/// A service as DescribeServices shows it, as far as a rollback decision goes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservedService {
    /// The service's current task definition (ARN).
    pub task_definition: Option<String>,
    /// The deployment controller's type (`ECS`, `CODE_DEPLOY`, `EXTERNAL`).
    pub controller: Option<String>,
    pub tags: Tags,
    /// deploymentConfiguration.strategy: ROLLING, BLUE_GREEN, LINEAR, CANARY.
    pub strategy: Option<String>,
    /// The PRIMARY deployment's rolloutState is IN_PROGRESS.
    pub rolling_out: bool,
}

impl<'a> RollbackInputs<'a> {
    /// The inputs for the failing revision of an observed service, with the state records it has.
    pub fn new(failing: &'a str, service: &'a ObservedService, deployment: Option<&'a Value>, stable: Option<&'a Value>, now: u64) -> Self {
        RollbackInputs {
            failing,
            service_task_definition: service.task_definition.as_deref(),
            rollback_tag: parse_rollback(service.tags.get(TAG_ROLLBACK).map(String::as_str)).map_err(|e| e.to_string()),
            deployment,
            stable,
            controller: service.controller.as_deref(),
            now,
        }
    }
}

/// A service revision's failed tasks in the crash-loop window, against the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureWindow {
    pub failures: usize,
    pub threshold: usize,
    pub window_secs: u64,
}

impl FailureWindow {
    /// As many failed tasks of one revision within the window as the threshold: a crash loop.
    pub fn crash_loop(&self) -> bool {
        self.failures >= self.threshold
    }
}

/// What a failed service task amounts to when this invocation rolls nothing back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceFailure {
    /// Below the crash-loop threshold: ECS replaces the task.
    Replaced,
    /// A crash loop whose revision was rolled back before (by an earlier task of it).
    AlreadyRolledBack,
    /// A crash loop that is not rolled back, and why.
    NotRolledBack(String),
}

/// The deployment record (keys::deployment) a rollback leaves, in the deployer's shape, so that
/// the deployer and the next rollback decision see the stable revision as the one deployed.
pub fn rollback_record(to: &str, previous: &str, now: u64) -> Value {
    json!({"taskDefinition": to, "previous": previous, "at": now, "by": "recovery", "reason": "rollback"})
}

pub fn decide_rollback(i: &RollbackInputs) -> RollbackDecision {
    use RollbackDecision::NotifyOnly;
    match &i.rollback_tag {
        Ok(true) => {}
        Ok(false) => return NotifyOnly("the service is not tagged autopilot:rollback=on".into()),
        Err(e) => return NotifyOnly(format!("the autopilot:rollback tag is invalid: {e}")),
    }
    if let Some(c) = i.controller.filter(|c| *c != "ECS") {
        return NotifyOnly(format!("the service uses the {c} deployment controller"));
    }
    if i.service_task_definition.map(revision).as_deref() != Some(i.failing) {
        return NotifyOnly(format!("the service no longer runs {}", i.failing));
    }
    let td = |v: Option<&Value>| v.and_then(|v| v.get("taskDefinition")).and_then(Value::as_str).map(str::to_string);
    let deployed = td(i.deployment);
    if deployed.as_deref().map(revision).as_deref() != Some(i.failing) {
        return NotifyOnly(format!("{} was not deployed by autopilot", i.failing));
    }
    let at = i.deployment.and_then(|v| v.get("at")).and_then(Value::as_u64).unwrap_or(0);
    if i.now.saturating_sub(at) > RECENT_DEPLOYMENT_SECS {
        return NotifyOnly(format!("{} was deployed more than {} min ago", i.failing, RECENT_DEPLOYMENT_SECS / 60));
    }
    match td(i.stable) {
        None => NotifyOnly("no stable revision is recorded for the service".into()),
        Some(stable) if revision(&stable) == i.failing => NotifyOnly(format!("{} is the last stable revision itself", i.failing)),
        Some(stable) => RollbackDecision::RollBack { to: stable },
    }
}

/// How a crash loop is rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackMethod {
    /// StopServiceDeployment with stopType ROLLBACK: ECS's own rollback of a BLUE_GREEN, LINEAR or
    /// CANARY deployment in progress, which shifts traffic back to the source revision
    /// (StopServiceDeployment, API reference). An UpdateService would start another staged
    /// deployment from a service half shifted.
    StopDeployment,
    /// UpdateService to the last stable revision: a rolling service, or no deployment in progress.
    UpdateService,
}

pub fn rollback_method(strategy: Option<&str>, rolling_out: bool) -> RollbackMethod {
    match strategy {
        Some("BLUE_GREEN" | "LINEAR" | "CANARY") if rolling_out => RollbackMethod::StopDeployment,
        _ => RollbackMethod::UpdateService,
    }
}

// ------------------------------------------------------------------ keys (see lib.rs for the tables)

/// `CLUSTER/SERVICE`: what a service's incidents are scoped to and its messages call it.
/// Whether a service is opted in to autopilot: it carries one of the service tags of DESIGN.md
/// (`autopilot:deploy`, `autopilot:rollback`, `autopilot:min`, `autopilot:max`), whatever its
/// value (a malformed value is still someone's intent, and its own notification says so).
pub fn opted_in(tags: &Tags) -> bool {
    use autopilot::tags::{TAG_DEPLOY, TAG_MAX, TAG_MIN, TAG_ROLLBACK};
    [TAG_DEPLOY, TAG_ROLLBACK, TAG_MIN, TAG_MAX].iter().any(|k| tags.contains_key(*k))
}

pub fn service_scope(cluster: &str, service: &str) -> String {
    format!("{cluster}/{service}")
}

/// `CLUSTER/SERVICE#FAMILY:REV`: a service revision's failure window, and its rollback claim.
pub fn revision_key(cluster: &str, service: &str, revision: &str) -> String {
    format!("{}#{revision}", service_scope(cluster, service))
}

/// `SCOPE#CLASS#FAMILY:REV`: one incident, debounced as one.
pub fn incident_key(scope: &str, class: &StopClass, revision: &str) -> String {
    format!("{scope}#{}#{revision}", class.label())
}

/// The `notify` key of a dry run's rollback message (one per revision claim key).
pub fn rollback_dry_run_key(revision_key: &str) -> String {
    format!("rollback-dry-run#{revision_key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_and_tokens() {
        assert_eq!(revision("arn:aws:ecs:us-east-1:1:task-definition/random:2"), "random:2");
        assert_eq!(revision("random:2"), "random:2");
        assert_eq!(task_id("arn:aws:ecs:us-east-1:1:task/stage01/abc"), "abc");
        let t = client_token("arn:aws:ecs:us-east-1:1:task/stage01/0123456789abcdef0123456789abcdef", 1);
        assert_eq!(t, "autopilot-0123456789abcdef0123456789abcdef");
        assert!(client_token(&format!("arn:x:task/c/{}", "a".repeat(200)), 1).len() <= 64);
    }

    #[test]
    fn failure_window_slides_and_ignores_repeats() {
        let (r, n) = record_failure(None, "t1", 1000, 600);
        assert_eq!(n, 1);
        let (r, n) = record_failure(Some(&r), "t1", 1001, 600);
        assert_eq!(n, 1, "the same task twice is one failure");
        let (r, n) = record_failure(Some(&r), "t2", 1300, 600);
        assert_eq!(n, 2);
        let (_, n) = record_failure(Some(&r), "t3", 1650, 600);
        assert_eq!(n, 2, "t1 fell out of the window");
        let mut r = None;
        for i in 0..300 {
            r = Some(record_failure(r.as_ref(), &format!("t{i}"), 5000, 600).0);
        }
        assert_eq!(record_failure(r.as_ref(), "x", 5000, 600).1, 200);
    }

    #[test]
    fn debounce_one_message_then_a_summary() {
        let (r, e) = debounce(None, 100, 600);
        assert_eq!(e, Emit::First);
        let mut r = r;
        for t in 101..112 {
            let (n, e) = debounce(Some(&r), t, 600);
            assert_eq!(e, Emit::Suppress);
            r = n;
        }
        let (r, e) = debounce(Some(&r), 700, 600);
        assert_eq!(e, Emit::Summary { tasks: 12, since_secs: 600 });
        // Quiet for a window: the next one starts a new incident.
        let (_, e) = debounce(Some(&r), 1400, 600);
        assert_eq!(e, Emit::First);
        assert_eq!(minutes(600), 10);
        assert_eq!(minutes(1), 1);
    }

    #[test]
    fn rollback_only_for_a_recent_autopilot_deployment_with_the_tag() {
        let deployed = json!({"taskDefinition": "arn:aws:ecs:us-east-1:1:task-definition/random:2", "at": 10_000});
        let stable = json!({"taskDefinition": "arn:aws:ecs:us-east-1:1:task-definition/random:1", "at": 5_000});
        let base = || RollbackInputs {
            failing: "random:2",
            service_task_definition: Some("random:2"),
            rollback_tag: Ok(true),
            deployment: Some(&deployed),
            stable: Some(&stable),
            controller: Some("ECS"),
            now: 10_600,
        };
        assert_eq!(decide_rollback(&base()), RollbackDecision::RollBack { to: "arn:aws:ecs:us-east-1:1:task-definition/random:1".into() });
        let not = |i: RollbackInputs| match decide_rollback(&i) {
            RollbackDecision::NotifyOnly(why) => why,
            other => panic!("expected no rollback, got {other:?}"),
        };
        assert!(not(RollbackInputs { rollback_tag: Ok(false), ..base() }).contains("autopilot:rollback=on"));
        assert!(not(RollbackInputs { rollback_tag: Err("bad".into()), ..base() }).contains("invalid"));
        assert!(not(RollbackInputs { controller: Some("CODE_DEPLOY"), ..base() }).contains("CODE_DEPLOY"));
        assert!(not(RollbackInputs { service_task_definition: Some("random:1"), ..base() }).contains("no longer runs"));
        assert!(not(RollbackInputs { now: 10_000 + 3601, ..base() }).contains("more than 60 min"));
        assert!(not(RollbackInputs { deployment: None, ..base() }).contains("not deployed"));
        assert!(not(RollbackInputs { stable: None, ..base() }).contains("no stable"));
        let same = json!({"taskDefinition": "random:2"});
        assert!(not(RollbackInputs { stable: Some(&same), ..base() }).contains("stable revision itself"));
    }

    #[test]
    fn rollback_inputs_from_the_observed_service() {
        let deployed = json!({"taskDefinition": "arn:aws:ecs:us-east-1:1:task-definition/random:2", "at": 10_000});
        let stable = json!({"taskDefinition": "arn:aws:ecs:us-east-1:1:task-definition/random:1", "at": 5_000});
        let service = |tag: Option<&str>, controller: Option<&str>| ObservedService {
            task_definition: Some("arn:aws:ecs:us-east-1:1:task-definition/random:2".into()),
            controller: controller.map(str::to_string),
            tags: tag.map(|v| [("autopilot:rollback".to_string(), v.to_string())].into_iter().collect()).unwrap_or_default(),
            strategy: None,
            rolling_out: false,
        };
        let decide = |svc: &ObservedService| decide_rollback(&RollbackInputs::new("random:2", svc, Some(&deployed), Some(&stable), 10_600));
        let back = RollbackDecision::RollBack { to: "arn:aws:ecs:us-east-1:1:task-definition/random:1".into() };
        let only = |d: RollbackDecision, needle: &str| matches!(&d, RollbackDecision::NotifyOnly(why) if why.contains(needle));
        assert_eq!(decide(&service(Some("on"), None)), back, "no controller reported is ECS's");
        assert_eq!(decide(&service(Some("on"), Some("ECS"))), back);
        assert!(only(decide(&service(None, None)), "autopilot:rollback=on"));
        assert!(only(decide(&service(Some("maybe"), None)), "invalid"));
        assert!(only(decide(&service(Some("on"), Some("EXTERNAL"))), "EXTERNAL"));
    }

    #[test]
    fn crash_loop_window_and_rollback_record() {
        let w = |failures| FailureWindow { failures, threshold: 3, window_secs: 600 };
        assert_eq!([w(0), w(2), w(3), w(7)].map(|w| w.crash_loop()), [false, false, true, true]);
        assert_eq!(
            rollback_record("arn:td/random:1", "arn:td/random:2", 42).to_string(),
            r#"{"taskDefinition":"arn:td/random:1","previous":"arn:td/random:2","at":42,"by":"recovery","reason":"rollback"}"#
        );
    }

    #[test]
    fn keys() {
        assert_eq!(service_scope("stage01", "random"), "stage01/random");
        assert_eq!(revision_key("stage01", "random", "random:2"), "stage01/random#random:2");
        assert_eq!(incident_key("stage01/random", &StopClass::ContainerHealthCheck, "random:2"), "stage01/random#container-health-check#random:2");
        assert_eq!(incident_key("stage01/task", &StopClass::Crash { container: None, exit_code: Some(1) }, "job:1"), "stage01/task#crash#job:1");
        assert_eq!(rollback_dry_run_key("stage01/random#random:2"), "rollback-dry-run#stage01/random#random:2");
    }

    /// Issue 15, item 9: ECS's own rollback (StopServiceDeployment ROLLBACK) for a staged
    /// deployment in progress; UpdateService otherwise.
    #[test]
    fn staged_deployments_in_progress_are_rolled_back_by_ecs() {
        use RollbackMethod::*;
        for (strategy, rolling_out, want) in [
            (Some("BLUE_GREEN"), true, StopDeployment),
            (Some("LINEAR"), true, StopDeployment),
            (Some("CANARY"), true, StopDeployment),
            (Some("BLUE_GREEN"), false, UpdateService),
            (Some("ROLLING"), true, UpdateService),
            (None, true, UpdateService),
            (Some("A_STRATEGY_FROM_2027"), true, UpdateService),
        ] {
            assert_eq!(rollback_method(strategy, rolling_out), want, "{strategy:?} {rolling_out}");
        }
    }
}
