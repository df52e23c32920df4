//! What recovery answers for an event: the invocation's result, which the logs show, integration
//! tests read and `autopilot::metrics::count_actions` counts (an `action` of `restarted` or
//! `rolled-back`, unless `dryRun`). Serialised once, by `Recovery::handle` and `Recovery::screen`.
//! The declaration order of fields is the order of the JSON's keys.

use serde::Serialize;
use serde_json::Value;

use crate::classify::Stopped;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Outcome {
    /// Not an event for recovery: another detail type, a task that is not STOPPED, a cluster that
    /// is not managed.
    Ignored { reason: String },
    /// A stopped task: what it was, what was done about it and why.
    Handled(Handled),
    /// The summary schedule's pass over the listed incidents (incident.rs): still `open`,
    /// `closed` and forgotten, of which `summarized` had their summary sent now.
    Summaries { open: usize, closed: usize, summarized: usize },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Handled {
    /// `StopClass::label`.
    pub class: &'static str,
    /// The class as people read it (`crashed (exit 137)`).
    pub detail: String,
    /// The stopped task's ARN.
    pub task: String,
    /// `family:rev`.
    pub revision: String,
    #[serde(flatten)]
    pub action: Action,
}

/// What was done, with `reason` saying what and why (the notification's `what`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Nothing done and nothing sent: a normal stop, a task not opted in, a replay of a re-run,
    /// a message folded into its incident.
    None {
        reason: String,
        #[serde(flatten)]
        about: About,
    },
    /// A message sent and nothing else done: a report, a limit reached, a dry run.
    Notified {
        reason: String,
        #[serde(flatten)]
        about: About,
    },
    /// A standalone task re-run; `notified` is whether its incident's message went out;
    /// `notCarried` (absent when empty) names what the stopped task ran with that the re-run
    /// could not be given.
    #[serde(rename_all = "camelCase")]
    Restarted {
        reason: String,
        new_task: String,
        restart: u32,
        restart_limit: u32,
        lineage: String,
        notified: bool,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        not_carried: Vec<String>,
    },
    /// A service rolled back to its last stable revision (always announced).
    #[serde(rename_all = "camelCase")]
    RolledBack { reason: String, service: String, rollback_to: String, notified: bool },
}

/// The facts a `none` or `notified` outcome adds after its reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum About {
    /// None: the task is all there is to say.
    Task,
    /// The stopped task was handled by an earlier delivery; `newTask` is its re-run (null when it
    /// was not re-run).
    #[serde(rename_all = "camelCase")]
    AlreadyHandled { new_task: Option<String> },
    /// A dry run's restart decision (`dryRun` is always true: metrics count no dry run).
    #[serde(rename_all = "camelCase")]
    RestartDryRun { dry_run: bool },
    /// The lineage whose restart limit was reached.
    RestartLimit { lineage: String },
    /// A service task; failed ones say how many failed in the window.
    Service {
        service: String,
        #[serde(flatten)]
        window: Option<Window>,
    },
    /// A dry run's rollback decision (`dryRun` is always true).
    #[serde(rename_all = "camelCase")]
    RollbackDryRun { service: String, dry_run: bool, rollback_to: String },
}

/// A failed service task's revision in the crash-loop window.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    pub failures_in_window: usize,
    pub crash_loop: bool,
}

impl Outcome {
    pub fn ignored(reason: impl Into<String>) -> Self {
        Outcome::Ignored { reason: reason.into() }
    }

    pub fn handled(s: &Stopped, action: Action) -> Self {
        Outcome::Handled(Handled { class: s.class.label(), detail: s.class.to_string(), task: s.t.task_arn.clone(), revision: s.revision.clone(), action })
    }

    /// The invocation's result.
    pub fn to_json(&self) -> Value {
        // Strings, numbers and booleans under string keys: serde_json cannot fail on them.
        serde_json::to_value(self).expect("an outcome is plain data")
    }
}

impl Action {
    /// Nothing done, nothing sent, and nothing more to say than why.
    pub fn none(reason: impl Into<String>) -> Self {
        Action::None { reason: reason.into(), about: About::Task }
    }

    /// `notified` when the message went out, else `none` (folded into its incident).
    pub fn notified_if(sent: bool, reason: String, about: About) -> Self {
        if sent {
            Action::Notified { reason, about }
        } else {
            Action::None { reason, about }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Each outcome's JSON, key order included, as the handlers returned it before these types
    //! existed (integration tests and the metrics read it).
    use super::*;
    use autopilot::events::TaskStateChange;
    use autopilot::metrics::count_actions;

    const TASK: &str = "arn:aws:ecs:us-east-1:123456789012:task/stage01/0123456789abcdef";
    const HEAD: &str = r#""status":"handled","class":"crash","detail":"crashed (exit 1)","task":"arn:aws:ecs:us-east-1:123456789012:task/stage01/0123456789abcdef","revision":"random:4""#;

    fn crashed() -> TaskStateChange {
        serde_json::from_value(serde_json::json!({
            "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/stage01", "taskArn": TASK,
            "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/random:4", "lastStatus": "STOPPED",
            "stopCode": "EssentialContainerExited", "containers": [{"name": "random", "exitCode": 1}]
        }))
        .unwrap()
    }

    /// The outcome's JSON text, and the actions the metrics count in it.
    fn text(o: Outcome) -> (String, u64) {
        let v = o.to_json();
        (v.to_string(), count_actions(&v))
    }

    fn handled(action: Action) -> (String, u64) {
        let t = crashed();
        text(Outcome::handled(&Stopped::every_container_essential(&t), action))
    }

    #[test]
    fn ignored() {
        assert_eq!(text(Outcome::ignored("lastStatus RUNNING is not STOPPED")), (r#"{"status":"ignored","reason":"lastStatus RUNNING is not STOPPED"}"#.into(), 0));
    }

    #[test]
    fn none_about_the_task() {
        assert_eq!(handled(Action::none("a normal stop")), (format!(r#"{{{HEAD},"action":"none","reason":"a normal stop"}}"#), 0));
    }

    #[test]
    fn none_already_handled() {
        let reason = "already handled: this stopped task was re-run or refused before";
        let (json, n) = handled(Action::None { reason: reason.into(), about: About::AlreadyHandled { new_task: Some("arn:new".into()) } });
        assert_eq!((json, n), (format!(r#"{{{HEAD},"action":"none","reason":"{reason}","newTask":"arn:new"}}"#), 0));
        let (json, _) = handled(Action::None { reason: reason.into(), about: About::AlreadyHandled { new_task: None } });
        assert_eq!(json, format!(r#"{{{HEAD},"action":"none","reason":"{reason}","newTask":null}}"#), "a refused or limited task has no re-run");
    }

    #[test]
    fn notified_restart_dry_run() {
        let (json, n) = handled(Action::Notified { reason: "would re-run it (restart 1 of 3)".into(), about: About::RestartDryRun { dry_run: true } });
        assert_eq!((json, n), (format!(r#"{{{HEAD},"action":"notified","reason":"would re-run it (restart 1 of 3)","dryRun":true}}"#), 0));
    }

    #[test]
    fn notified_restart_limit() {
        let (json, n) = handled(Action::Notified { reason: "not re-run".into(), about: About::RestartLimit { lineage: "abc".into() } });
        assert_eq!((json, n), (format!(r#"{{{HEAD},"action":"notified","reason":"not re-run","lineage":"abc"}}"#), 0));
    }

    #[test]
    fn restarted() {
        let (json, n) = handled(Action::Restarted { reason: "re-run".into(), new_task: "arn:new".into(), restart: 1, restart_limit: 2, lineage: "abc".into(), notified: false, not_carried: vec![] });
        assert_eq!((json, n), (format!(r#"{{{HEAD},"action":"restarted","reason":"re-run","newTask":"arn:new","restart":1,"restartLimit":2,"lineage":"abc","notified":false}}"#), 1));
        let not_carried = vec!["volumeConfigurations (EBS volume data)".to_string()];
        let (json, _) = handled(Action::Restarted { reason: "re-run".into(), new_task: "arn:new".into(), restart: 1, restart_limit: 2, lineage: "abc".into(), notified: true, not_carried });
        assert!(json.ends_with(r#""notified":true,"notCarried":["volumeConfigurations (EBS volume data)"]}"#), "{json}");
    }

    #[test]
    fn service_task_notified_or_folded() {
        let about = || About::Service { service: "random".into(), window: None };
        let (json, n) = handled(Action::notified_if(true, "replaced".into(), about()));
        assert_eq!((json, n), (format!(r#"{{{HEAD},"action":"notified","reason":"replaced","service":"random"}}"#), 0));
        let (json, _) = handled(Action::notified_if(false, "replaced".into(), about()));
        assert_eq!(json, format!(r#"{{{HEAD},"action":"none","reason":"replaced","service":"random"}}"#));
    }

    #[test]
    fn failed_service_task_with_its_window() {
        let about = About::Service { service: "random".into(), window: Some(Window { failures_in_window: 3, crash_loop: true }) };
        let (json, n) = handled(Action::notified_if(true, "crash loop".into(), about));
        assert_eq!((json, n), (format!(r#"{{{HEAD},"action":"notified","reason":"crash loop","service":"random","failuresInWindow":3,"crashLoop":true}}"#), 0));
    }

    #[test]
    fn notified_rollback_dry_run() {
        let about = About::RollbackDryRun { service: "random".into(), dry_run: true, rollback_to: "random:3".into() };
        let (json, n) = handled(Action::Notified { reason: "would roll back".into(), about });
        assert_eq!((json, n), (format!(r#"{{{HEAD},"action":"notified","reason":"would roll back","service":"random","dryRun":true,"rollbackTo":"random:3"}}"#), 0));
    }

    #[test]
    fn rolled_back() {
        let (json, n) = handled(Action::RolledBack { reason: "rolled back".into(), service: "random".into(), rollback_to: "random:3".into(), notified: true });
        assert_eq!((json, n), (format!(r#"{{{HEAD},"action":"rolled-back","reason":"rolled back","service":"random","rollbackTo":"random:3","notified":true}}"#), 1));
    }
}
