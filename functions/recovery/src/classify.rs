//! Why did a task stop? A pure function of the "ECS Task State Change" detail.
//!
//! The order of the checks matters: a specific cause in a container's reason or in the task's
//! stoppedReason (out of memory, a failed health check, an image that cannot be pulled) wins over
//! the generic stopCode, since ECS reports e.g. an OOM kill as `EssentialContainerExited` and an
//! ELB health-check failure as `ServiceSchedulerInitiated`.

use std::fmt;

use autopilot::config::cluster_name;
use autopilot::events::TaskStateChange;

use crate::plan;

/// Everything about one stopped task that the decisions, messages and outcomes need: the event,
/// its class and the names derived from it.
pub struct Stopped<'a> {
    pub t: &'a TaskStateChange,
    pub class: StopClass,
    pub cluster: String,
    /// `family:rev`, or `unknown` when the event names no task definition.
    pub revision: String,
    pub task_id: String,
}

impl<'a> Stopped<'a> {
    pub fn new(t: &'a TaskStateChange) -> Self {
        Stopped {
            t,
            class: classify(t),
            cluster: cluster_name(&t.cluster_arn).to_string(),
            revision: t.task_definition_arn.as_deref().map(plan::revision).unwrap_or_else(|| "unknown".into()),
            task_id: plan::task_id(&t.task_arn).to_string(),
        }
    }

    /// The task definition family (`random` of `random:4`).
    pub fn family(&self) -> &str {
        self.revision.rsplit_once(':').map_or(self.revision.as_str(), |(f, _)| f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopClass {
    /// Every essential container exited 0.
    NormalExit,
    /// An essential container exited non-zero (137 alone is SIGKILL, not proof of OOM).
    Crash { container: Option<String>, exit_code: Option<i64> },
    OutOfMemory { container: Option<String> },
    ElbHealthCheck { target_group_arn: Option<String> },
    ContainerHealthCheck,
    FailedToStart { kind: StartFailure },
    Infrastructure { kind: InfraKind },
    UserStop,
    ScaleIn,
    DeploymentReplacement,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFailure {
    ImagePull,
    ResourceInit,
    Secrets,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfraKind {
    Spot,
    Termination,
    InstanceGone,
}

impl StopClass {
    /// The task's own fault (its image, code, configuration or health): what crash loops count.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            StopClass::Crash { .. } | StopClass::OutOfMemory { .. } | StopClass::ElbHealthCheck { .. } | StopClass::ContainerHealthCheck | StopClass::FailedToStart { .. }
        )
    }

    pub fn is_infrastructure(&self) -> bool {
        matches!(self, StopClass::Infrastructure { .. })
    }

    /// Stops that are part of normal operation: never notified, never acted on.
    pub fn is_normal(&self) -> bool {
        matches!(self, StopClass::NormalExit | StopClass::UserStop | StopClass::ScaleIn | StopClass::DeploymentReplacement)
    }

    /// Stable machine-readable label (outcomes, notification metadata, debounce keys).
    pub fn label(&self) -> &'static str {
        match self {
            StopClass::NormalExit => "normal-exit",
            StopClass::Crash { .. } => "crash",
            StopClass::OutOfMemory { .. } => "out-of-memory",
            StopClass::ElbHealthCheck { .. } => "elb-health-check",
            StopClass::ContainerHealthCheck => "container-health-check",
            StopClass::FailedToStart { .. } => "failed-to-start",
            StopClass::Infrastructure { .. } => "infrastructure",
            StopClass::UserStop => "user-stop",
            StopClass::ScaleIn => "scale-in",
            StopClass::DeploymentReplacement => "deployment-replacement",
            StopClass::Unknown => "unknown",
        }
    }

    /// Past-tense verb for "N tasks of random:4 …".
    pub fn verb(&self) -> &'static str {
        match self {
            StopClass::Crash { .. } => "crashed",
            StopClass::OutOfMemory { .. } => "ran out of memory",
            StopClass::ElbHealthCheck { .. } => "failed ELB health checks",
            StopClass::ContainerHealthCheck => "failed container health checks",
            StopClass::FailedToStart { .. } => "failed to start",
            StopClass::Infrastructure { .. } => "lost their infrastructure",
            _ => "stopped",
        }
    }
}

impl fmt::Display for StopClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopClass::Crash { container, exit_code } => {
                write!(f, "crashed")?;
                match (exit_code, container) {
                    (Some(code), _) => write!(f, " (exit {code})"),
                    (None, _) => Ok(()),
                }
            }
            StopClass::OutOfMemory { .. } => write!(f, "ran out of memory"),
            StopClass::ElbHealthCheck { .. } => write!(f, "failed ELB health checks"),
            StopClass::ContainerHealthCheck => write!(f, "failed container health checks"),
            StopClass::FailedToStart { kind } => write!(
                f,
                "failed to start ({})",
                match kind {
                    StartFailure::ImagePull => "image pull",
                    StartFailure::ResourceInit => "resource initialization",
                    StartFailure::Secrets => "secrets or registry auth",
                    StartFailure::Other => "container start",
                }
            ),
            StopClass::Infrastructure { kind } => write!(
                f,
                "stopped by infrastructure ({})",
                match kind {
                    InfraKind::Spot => "spot interruption",
                    InfraKind::Termination => "termination notice",
                    InfraKind::InstanceGone => "instance gone",
                }
            ),
            other => f.write_str(other.label()),
        }
    }
}

pub fn classify(task: &TaskStateChange) -> StopClass {
    let reason = task.stopped_reason.as_deref().unwrap_or("").trim();
    let lower = reason.to_ascii_lowercase();
    let stop_code = task.stop_code.as_deref().unwrap_or("");
    let container_reasons = || task.containers.iter().filter_map(|c| c.reason.as_deref().map(|r| (c, r)));

    if let Some((c, _)) = container_reasons().find(|(_, r)| r.starts_with("OutOfMemoryError")) {
        return StopClass::OutOfMemory { container: Some(c.name.clone()) };
    }
    if lower.starts_with("outofmemoryerror") {
        return StopClass::OutOfMemory { container: None };
    }
    if lower.contains("failed elb health checks") {
        return StopClass::ElbHealthCheck { target_group_arn: target_group_arn(reason) };
    }
    if lower.contains("failed container health checks") {
        return StopClass::ContainerHealthCheck;
    }
    if let Some(kind) = start_failure(reason).or_else(|| container_reasons().find_map(|(_, r)| start_failure(r))) {
        return StopClass::FailedToStart { kind };
    }
    if stop_code == "SpotInterruption" || lower.contains("spot task was interrupted") {
        return StopClass::Infrastructure { kind: InfraKind::Spot };
    }
    if stop_code == "TerminationNotice" {
        return StopClass::Infrastructure { kind: InfraKind::Termination };
    }
    if lower.starts_with("host ec2") && (lower.contains("terminated") || lower.contains("stopped"))
        || lower.contains("container instance deregistration")
        || lower.contains("instance is being stopped")
    {
        return StopClass::Infrastructure { kind: InfraKind::InstanceGone };
    }
    if lower.contains("deployment") && (lower.contains("replaced") || lower.contains("replacement")) {
        return StopClass::DeploymentReplacement;
    }
    if reason.starts_with("Scaling activity initiated by") {
        // ECS writes this text both when a service scales in and when a rollout scales the old
        // deployment's tasks down; the event cannot tell them apart and both are normal stops.
        return StopClass::ScaleIn;
    }
    if stop_code == "TaskFailedToStart" {
        return StopClass::FailedToStart { kind: StartFailure::Other };
    }
    if stop_code == "UserInitiated" || lower.starts_with("task stopped by user") {
        return StopClass::UserStop;
    }

    // Exit codes: essential containers only, when the event says which are essential.
    let essential: Vec<_> = task.containers.iter().filter(|c| c.essential != Some(false)).collect();
    if let Some(c) = essential.iter().find(|c| c.exit_code.is_some_and(|code| code != 0)) {
        return StopClass::Crash { container: Some(c.name.clone()), exit_code: c.exit_code };
    }
    let exited = essential.iter().filter(|c| c.exit_code.is_some()).count();
    if exited > 0 && (stop_code == "EssentialContainerExited" || lower.contains("essential container in task exited") || exited == essential.len()) {
        // Every essential container that reported an exit code reported 0.
        return StopClass::NormalExit;
    }
    if stop_code == "EssentialContainerExited" || lower.contains("essential container in task exited") {
        return StopClass::Crash { container: None, exit_code: None };
    }
    if stop_code == "ServiceSchedulerInitiated" {
        return StopClass::ScaleIn;
    }
    StopClass::Unknown
}

fn start_failure(text: &str) -> Option<StartFailure> {
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("cannotpullcontainererror") || lower.contains("pull image manifest") || lower.starts_with("cannotpullimagemanifesterror") {
        return Some(StartFailure::ImagePull);
    }
    if lower.starts_with("resourceinitializationerror") {
        return Some(if lower.contains("secrets") || lower.contains("registry auth") || lower.contains("ssm") || lower.contains("secretsmanager") {
            StartFailure::Secrets
        } else {
            StartFailure::ResourceInit
        });
    }
    if ["cannotstartcontainererror", "cannotcreatecontainererror", "cannotinspectcontainererror", "containerruntimeerror", "dockertimeouterror"]
        .iter()
        .any(|p| lower.starts_with(p))
    {
        return Some(StartFailure::Other);
    }
    None
}

/// `… (target-group arn:aws:elasticloadbalancing:…:targetgroup/random/abc)` → the ARN.
pub fn target_group_arn(reason: &str) -> Option<String> {
    let start = reason.find("arn:aws")?;
    let arn: String = reason[start..].chars().take_while(|c| !c.is_whitespace() && *c != ')' && *c != ',').collect();
    arn.contains(":targetgroup/").then_some(arn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(stop_code: &str, reason: &str, containers: serde_json::Value) -> TaskStateChange {
        serde_json::from_value(json!({
            "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/stage01",
            "taskArn": "arn:aws:ecs:us-east-1:123456789012:task/stage01/0123456789abcdef",
            "lastStatus": "STOPPED",
            "stopCode": if stop_code.is_empty() { serde_json::Value::Null } else { json!(stop_code) },
            "stoppedReason": reason,
            "startedBy": "ecs-svc/111",
            "containers": containers,
        }))
        .unwrap()
    }

    const TG: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/random/6d0ecf831eec9f09";

    #[test]
    fn table_of_real_stop_reasons() {
        let exited = |code: i64| json!([{"name": "random", "exitCode": code, "lastStatus": "STOPPED"}]);
        let none = json!([]);
        let elb_reason = format!("Task failed ELB health checks in (target-group {TG})");
        let cases: Vec<(&str, &str, serde_json::Value, StopClass)> = vec![
            ("EssentialContainerExited", "Essential container in task exited", exited(1), StopClass::Crash { container: Some("random".into()), exit_code: Some(1) }),
            ("EssentialContainerExited", "Essential container in task exited", exited(137), StopClass::Crash { container: Some("random".into()), exit_code: Some(137) }),
            ("EssentialContainerExited", "Essential container in task exited", exited(0), StopClass::NormalExit),
            (
                "EssentialContainerExited",
                "Essential container in task exited",
                json!([{"name": "app", "exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory usage"}]),
                StopClass::OutOfMemory { container: Some("app".into()) },
            ),
            (
                "EssentialContainerExited",
                "Essential container in task exited",
                json!([{"name": "app", "exitCode": 0}, {"name": "log-router", "exitCode": 2, "essential": false}]),
                StopClass::NormalExit,
            ),
            (
                "EssentialContainerExited",
                "Essential container in task exited",
                json!([{"name": "app", "exitCode": 0}, {"name": "sidecar", "exitCode": 3}]),
                StopClass::Crash { container: Some("sidecar".into()), exit_code: Some(3) },
            ),
            ("EssentialContainerExited", "Essential container in task exited", none.clone(), StopClass::Crash { container: None, exit_code: None }),
            (
                "ServiceSchedulerInitiated",
                &elb_reason,
                none.clone(),
                StopClass::ElbHealthCheck { target_group_arn: Some(TG.into()) },
            ),
            ("ServiceSchedulerInitiated", "Task failed container health checks", none.clone(), StopClass::ContainerHealthCheck),
            (
                "TaskFailedToStart",
                "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref docker.io/library/nope:latest: not found",
                none.clone(),
                StopClass::FailedToStart { kind: StartFailure::ImagePull },
            ),
            (
                "TaskFailedToStart",
                "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from asm",
                none.clone(),
                StopClass::FailedToStart { kind: StartFailure::Secrets },
            ),
            (
                "TaskFailedToStart",
                "ResourceInitializationError: failed to validate logger args: create stream has been retried 1 times",
                none.clone(),
                StopClass::FailedToStart { kind: StartFailure::ResourceInit },
            ),
            (
                "TaskFailedToStart",
                "Task failed to start",
                json!([{"name": "app", "reason": "CannotStartContainerError: Error response from daemon: OCI runtime create failed"}]),
                StopClass::FailedToStart { kind: StartFailure::Other },
            ),
            ("TaskFailedToStart", "Timeout waiting for network interface provisioning to complete.", none.clone(), StopClass::FailedToStart { kind: StartFailure::Other }),
            ("SpotInterruption", "Your Spot Task was interrupted.", none.clone(), StopClass::Infrastructure { kind: InfraKind::Spot }),
            ("TerminationNotice", "Task stopped due to instance termination", none.clone(), StopClass::Infrastructure { kind: InfraKind::Termination }),
            ("", "Host EC2 (instance i-0abc) terminated.", none.clone(), StopClass::Infrastructure { kind: InfraKind::InstanceGone }),
            ("", "Host EC2 (instance i-0abc) stopped/terminated.", none.clone(), StopClass::Infrastructure { kind: InfraKind::InstanceGone }),
            ("ServiceSchedulerInitiated", "Scaling activity initiated by (deployment ecs-svc/111)", exited(143), StopClass::ScaleIn),
            ("ServiceSchedulerInitiated", "Scaling activity initiated by (deployment ecs-svc/222)", exited(0), StopClass::ScaleIn),
            ("ServiceSchedulerInitiated", "Task replaced by a newer deployment", exited(143), StopClass::DeploymentReplacement),
            ("UserInitiated", "Task stopped by user", exited(143), StopClass::UserStop),
            ("UserInitiated", "nightly maintenance", none.clone(), StopClass::UserStop),
            ("", "Task stopped by user", none.clone(), StopClass::UserStop),
            ("", "", none.clone(), StopClass::Unknown),
            ("SomethingNew", "A reason from the future", none.clone(), StopClass::Unknown),
        ];
        for (code, reason, containers, want) in cases {
            assert_eq!(classify(&task(code, reason, containers)), want, "{code} / {reason}");
        }
    }

    #[test]
    fn exit_137_without_oom_reason_is_a_crash_and_classes_group() {
        let c = classify(&task("EssentialContainerExited", "Essential container in task exited", json!([{"name": "a", "exitCode": 137}])));
        assert!(c.is_failure() && !c.is_normal());
        assert_eq!(c.to_string(), "crashed (exit 137)");
        assert!(StopClass::ScaleIn.is_normal() && StopClass::UserStop.is_normal() && StopClass::NormalExit.is_normal());
        assert!(StopClass::Infrastructure { kind: InfraKind::Spot }.is_infrastructure());
        assert!(!StopClass::Unknown.is_failure() && !StopClass::Unknown.is_normal());
    }

    #[test]
    fn sample_events_of_the_repository() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events");
        let want = [
            ("ecs-task-stopped-container-health.json", "container-health-check"),
            ("ecs-task-stopped-crash.json", "crash"),
            ("ecs-task-stopped-deployment-replaced.json", "scale-in"),
            ("ecs-task-stopped-elb-health.json", "elb-health-check"),
            ("ecs-task-stopped-exit0.json", "normal-exit"),
            ("ecs-task-stopped-image-pull.json", "failed-to-start"),
            ("ecs-task-stopped-instance-gone.json", "infrastructure"),
            ("ecs-task-stopped-oom.json", "out-of-memory"),
            ("ecs-task-stopped-scale-in.json", "scale-in"),
            ("ecs-task-stopped-spot.json", "infrastructure"),
            ("ecs-task-stopped-user.json", "user-stop"),
        ];
        for (file, label) in want {
            let Ok(text) = std::fs::read_to_string(dir.join(file)) else { continue };
            let event: serde_json::Value = serde_json::from_str(&text).unwrap();
            let task: TaskStateChange = serde_json::from_value(event["detail"].clone()).unwrap();
            assert_eq!(classify(&task).label(), label, "{file}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        for reason in ["(", "Scaling activity initiated by", "Task failed ELB health checks in (target-group arn:aws", "é", "arn:aws:"] {
            let _ = classify(&task("", reason, json!([{"name": "x", "exitCode": -1, "reason": "\u{0}"}])));
        }
        assert_eq!(target_group_arn("Task failed ELB health checks in (target-group arn:aws:"), None);
    }
}
