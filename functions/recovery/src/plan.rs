//! Pure decisions about service tasks and incidents: the failure window of a service revision,
//! notification debouncing, rollback eligibility, and the keys they are recorded under. Inputs are
//! plain values (state records, what aws.rs observed, `now`); service.rs and incident.rs read them
//! and execute the result. A standalone task's re-run is decided in restart.rs.

use serde_json::{json, Value};

use autopilot::state::{Counted, Tally};
use autopilot::tags::{parse_rollback, Tags, TAG_ROLLBACK};

use crate::classify::StopClass;

// Where they always were: tests and benches name them `plan::…`.
pub use crate::restart::{client_token, decide_restart, RestartDecision};

/// A rollback only follows a deployment this recent.
pub const RECENT_DEPLOYMENT_SECS: u64 = 3600;

/// `arn:aws:ecs:r:a:task-definition/random:2` or `random:2` → `random:2`.
pub fn revision(task_definition: &str) -> String {
    task_definition.rsplit_once(":task-definition/").map(|(_, r)| r).unwrap_or(task_definition).to_string()
}

/// `arn:aws:ecs:r:a:task/stage01/abc` → `abc`.
pub fn task_id(task_arn: &str) -> &str {
    task_arn.rsplit('/').next().unwrap_or(task_arn)
}

// ------------------------------------------------------------------ failure window

/// What a revision's failure window keeps when the next one opens: the closed window's count and
/// start, so that the failures of the last `window_secs` can still be estimated.
pub fn failure_window_data(closed: &Tally) -> Value {
    json!({"previous": closed.count, "previousSince": closed.since})
}

/// The failures of a revision in the last `window_secs`, from its tally (one `ADD` per failed
/// task, `StateStore::tally`): the current window's count, plus the previous window's in
/// proportion to how much of it the last `window_secs` still cover (the "sliding window counter"
/// estimate: failures spread evenly over the previous window). A window opens with the first
/// failure after the previous one closed.
pub fn failures_in_window(t: &Tally, now: u64, window_secs: u64) -> usize {
    let previous = t.data.get("previous").and_then(Value::as_u64).unwrap_or(0);
    let previous_since = t.data.get("previousSince").and_then(Value::as_u64).unwrap_or(0);
    let window = window_secs.max(1);
    // The part of [previous_since, previous_since + window) after now - window.
    let covered = previous_since.saturating_add(2 * window).saturating_sub(now).min(window);
    (t.count + previous * covered / window) as usize
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

/// What a task's count in its incident's tally (`StateStore::tally`, one UpdateItem) means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncidentStep {
    /// Counted in the open window: send this (`Emit::First` only for the one delivery that
    /// opened the window, a retry of it included; every other one is folded).
    Emit(Emit),
    /// The window closed before this task: open the next one (`StateStore::reopen`), claiming
    /// the closed window's summary when it has one not told yet, then send `then`: the summary
    /// of the folded tasks and this one, or, when there is nothing to summarise (or the schedule
    /// told it already), the first message of a new incident.
    Reopen { claim_summary: bool, then: Emit },
}

/// Debounce rule: one message per incident key per window, decided from the tally's answer.
/// The delivery that opens a window sends the incident's first message; the others in the
/// window are counted, not sent; the schedule tells the window's count when it closes
/// ([`closing`]); a task after the window opens the next one, and sends the summary itself if
/// the schedule has not yet (never a second summary of the same counts).
pub fn incident_step(counted: &Counted, opener: &str, now: u64) -> IncidentStep {
    match counted {
        Counted::Open(t) if t.opened_by(opener) => IncidentStep::Emit(Emit::First),
        Counted::Open(_) => IncidentStep::Emit(Emit::Suppress),
        Counted::Closed(t) if t.count > 1 && !t.told() => IncidentStep::Reopen { claim_summary: true, then: Emit::Summary { tasks: t.count, since_secs: now.saturating_sub(t.since) } },
        Counted::Closed(_) => IncidentStep::Reopen { claim_summary: false, then: Emit::First },
    }
}

/// What the summary schedule does about one open incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closing {
    /// Its window is still open: look again next time.
    Open,
    /// Its window closed with `tasks` folded since its first message `since_secs` ago: claim the
    /// summary (`StateStore::tell`) and send it.
    Tell { since: u64, tasks: u64, since_secs: u64 },
    /// Nothing (more) to tell: forget the incident.
    Done,
}

/// The schedule's decision for an incident's tally (`None`: expired or never written).
pub fn closing(tally: Option<&Tally>, now: u64, window_secs: u64) -> Closing {
    match tally {
        None => Closing::Done,
        Some(t) if t.since.saturating_add(window_secs) > now => Closing::Open,
        Some(t) if t.count > 1 && !t.told() => Closing::Tell { since: t.since, tasks: t.count - 1, since_secs: now.saturating_sub(t.since) },
        Some(_) => Closing::Done,
    }
}

/// What an incident's tally keeps for whoever words its summary (the schedule has no task).
pub fn incident_context(cluster: &str, name: &str, revision: &str, class: &StopClass, fields: &[(&str, Value)]) -> Value {
    let mut ctx = json!({"name": name, "cluster": cluster, "revision": revision, "class": class.label(), "verb": class.verb()});
    for (key, value) in fields.iter().filter(|(k, _)| *k == "service") {
        ctx[*key] = value.clone();
    }
    ctx
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

    fn tally(since: u64, count: u64, told: Option<u64>, opener: &str) -> Tally {
        Tally { since, count, told, opener: Some(opener.into()), data: json!({}) }
    }

    /// Issue 17, item 6: a revision's failures in the last window, from its tally.
    #[test]
    fn failures_in_the_last_window() {
        let with = |since, count, data: Value| Tally { since, count, told: None, opener: None, data };
        let previous = |count: u64, since: u64| failure_window_data(&with(since, count, json!({})));
        let cases = [
            (with(1000, 1, json!({})), 1000, 1),
            (with(1000, 3, json!({})), 1500, 3),
            // 50 failures from 0 to 490; at 700 the last 600 s cover 5/6 of that window.
            (with(700, 1, previous(50, 0)), 700, 42),
            (with(700, 2, previous(50, 0)), 1200, 2),
            (with(5000, 1, previous(50, 0)), 5000, 1),
            (with(600, 1, previous(3, 0)), 600, 4),
        ];
        for (t, now, want) in cases {
            assert_eq!(failures_in_window(&t, now, 600), want, "{t:?} at {now}");
        }
    }

    /// Issue 17, item 6: event + the tally's answer → what this task sends.
    #[test]
    fn debounce_one_message_then_a_summary() {
        use IncidentStep::Reopen;
        let cases = [
            (Counted::Open(tally(100, 1, None, "e-1")), "e-1", 100, IncidentStep::Emit(Emit::First)),
            (Counted::Open(tally(100, 7, None, "e-1")), "e-1", 101, IncidentStep::Emit(Emit::First)),
            (Counted::Open(tally(100, 2, None, "e-1")), "e-2", 101, IncidentStep::Emit(Emit::Suppress)),
            (Counted::Closed(tally(100, 12, None, "e-1")), "e-13", 700, Reopen { claim_summary: true, then: Emit::Summary { tasks: 12, since_secs: 600 } }),
            (Counted::Closed(tally(100, 12, Some(100), "e-1")), "e-13", 700, Reopen { claim_summary: false, then: Emit::First }),
            (Counted::Closed(tally(100, 12, Some(50), "e-1")), "e-13", 700, Reopen { claim_summary: true, then: Emit::Summary { tasks: 12, since_secs: 600 } }),
            (Counted::Closed(tally(100, 1, None, "e-1")), "e-2", 1400, Reopen { claim_summary: false, then: Emit::First }),
        ];
        for (counted, opener, now, want) in cases {
            assert_eq!(incident_step(&counted, opener, now), want, "{counted:?} {opener}");
        }
        assert_eq!(minutes(600), 10);
        assert_eq!(minutes(1), 1);
    }

    #[test]
    fn the_schedule_tells_each_closed_window_once() {
        let cases = [
            (None, 1000, Closing::Done),
            (Some(tally(500, 40, None, "e")), 1000, Closing::Open),
            (Some(tally(400, 40, None, "e")), 1000, Closing::Tell { since: 400, tasks: 39, since_secs: 600 }),
            (Some(tally(400, 40, Some(400), "e")), 1000, Closing::Done),
            (Some(tally(400, 1, None, "e")), 1000, Closing::Done),
        ];
        for (t, now, want) in cases {
            assert_eq!(closing(t.as_ref(), now, 600), want, "{t:?}");
        }
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
