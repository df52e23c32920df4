//! Why did a task stop? A pure function of the "ECS Task State Change" detail and, where it
//! matters, of which containers the task definition marks essential.
//!
//! The order of the checks matters: a specific cause in a container's reason or in the task's
//! stoppedReason (out of memory, a failed health check, an image that cannot be pulled) wins over
//! the generic stopCode, since ECS reports e.g. an OOM kill as `EssentialContainerExited` and an
//! ELB health-check failure as `ServiceSchedulerInitiated`.
//!
//! Essential containers: neither the event nor DescribeTasks says which containers are essential
//! (ECS's `Container` shape has no such member; the flag is `ContainerDefinition.essential` of the
//! task definition, "If this parameter is omitted, a container is assumed to be essential", ECS
//! API reference). A task whose essential containers all exited 0 did not fail, whatever its
//! sidecars exited with (a FireLens or agent sidecar is killed with 137 or 143 once the app has
//! exited). So [`classify`] takes the essential containers' names; without them (the screen, which
//! calls no AWS) it settles only what no task definition could change, and says when it cannot.

use std::collections::BTreeSet;
use std::fmt;

use autopilot::config::cluster_name;
use autopilot::events::{TaskContainer, TaskStateChange};

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
    /// The stopped task `t`, classified as `class` (see [`classify`]).
    pub fn new(t: &'a TaskStateChange, class: StopClass) -> Self {
        Stopped {
            t,
            class,
            cluster: cluster_name(&t.cluster_arn).to_string(),
            revision: t.task_definition_arn.as_deref().map(plan::revision).unwrap_or_else(|| "unknown".into()),
            task_id: plan::task_id(&t.task_arn).to_string(),
        }
    }

    /// The stopped task classified with every one of its containers counted as essential: what
    /// is left when the task definition cannot be read.
    pub fn every_container_essential(t: &'a TaskStateChange) -> Self {
        Self::new(t, classify(t, Some(&all_containers(t))).unwrap_or(StopClass::Unknown))
    }

    /// The task definition family (`random` of `random:4`).
    pub fn family(&self) -> &str {
        self.revision.rsplit_once(':').map_or(self.revision.as_str(), |(f, _)| f)
    }
}

/// The names of every container of the event: the essential set when the task definition cannot
/// be read (each container then counts, as ECS's default `essential: true` would have it).
pub fn all_containers(task: &TaskStateChange) -> BTreeSet<String> {
    task.containers.iter().map(|c| c.name.clone()).collect()
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
    /// ECS stopped the task to even the service out across Availability Zones (AZ rebalancing,
    /// on by default for services created since June 30, 2025): it starts one in another zone.
    AzRebalancing,
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
    /// stopCode `InfrastructureHealth` (ECS API `TaskStopCode`): by its name, the health of what
    /// the task ran on; AWS documents no stoppedReason for it.
    Health,
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
        matches!(self, StopClass::NormalExit | StopClass::UserStop | StopClass::ScaleIn | StopClass::DeploymentReplacement | StopClass::AzRebalancing)
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
            StopClass::AzRebalancing => "az-rebalancing",
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
                    InfraKind::Health => "infrastructure health",
                }
            ),
            other => f.write_str(other.label()),
        }
    }
}

/// Why the task stopped. `essential`: the names of the containers its task definition marks
/// essential; a container the task definition does not name (one ECS added) is not, and when the
/// set names none of the event's containers every container counts. `None` (the event alone):
/// the class when no task definition could change it, else `None`: a container's exit code or
/// out-of-memory reason decides, and whether that container is essential is not in the event.
pub fn classify(task: &TaskStateChange, essential: Option<&BTreeSet<String>>) -> Option<StopClass> {
    let reason = task.stopped_reason.as_deref().unwrap_or("").trim();
    let lower = reason.to_ascii_lowercase();
    let stop_code = task.stop_code.as_deref().unwrap_or("");
    let container_reasons = || task.containers.iter().filter_map(|c| c.reason.as_deref().map(|r| (c, r)));
    // Which of the event's containers are essential, when the task definition said.
    let counted = essential.map(|names| {
        let named: Vec<_> = task.containers.iter().filter(|c| names.contains(&c.name)).collect();
        if named.is_empty() {
            task.containers.iter().collect()
        } else {
            named
        }
    });

    // A container killed for its memory: the task's failure only if that container is essential
    // (a sidecar's OOM kill does not stop the task).
    let oom = |c: &TaskContainer| c.reason.as_deref().is_some_and(|r| r.starts_with("OutOfMemoryError"));
    match &counted {
        Some(counted) => {
            if let Some(c) = counted.iter().find(|c| oom(c)) {
                return Some(StopClass::OutOfMemory { container: Some(c.name.clone()) });
            }
        }
        None if task.containers.iter().any(oom) => return None,
        None => {}
    }
    if lower.starts_with("outofmemoryerror") {
        return Some(StopClass::OutOfMemory { container: None });
    }
    if lower.contains("failed elb health checks") {
        return Some(StopClass::ElbHealthCheck { target_group_arn: target_group_arn(reason) });
    }
    if lower.contains("failed container health checks") {
        return Some(StopClass::ContainerHealthCheck);
    }
    if let Some(kind) = start_failure(reason).or_else(|| container_reasons().find_map(|(_, r)| start_failure(r))) {
        return Some(StopClass::FailedToStart { kind });
    }
    if stop_code == "SpotInterruption" || lower.contains("spot task was interrupted") {
        return Some(StopClass::Infrastructure { kind: InfraKind::Spot });
    }
    if stop_code == "TerminationNotice" {
        return Some(StopClass::Infrastructure { kind: InfraKind::Termination });
    }
    // `InfrastructureHealth` is a value of ECS's TaskStopCode (botocore's ECS model; the Python
    // SDK v4 reference, https://docs.aws.amazon.com/sdk-for-python/v4/reference/clients/ecs/enums/TaskStopCode/).
    // AWS documents no stoppedReason text for it: the code alone decides, whatever the exits.
    if stop_code == "InfrastructureHealth" {
        return Some(StopClass::Infrastructure { kind: InfraKind::Health });
    }
    if lower.starts_with("host ec2") && (lower.contains("terminated") || lower.contains("stopped"))
        || lower.contains("container instance deregistration")
        || lower.contains("instance is being stopped")
    {
        return Some(StopClass::Infrastructure { kind: InfraKind::InstanceGone });
    }
    if lower.contains("deployment") && (lower.contains("replaced") || lower.contains("replacement")) {
        return Some(StopClass::DeploymentReplacement);
    }
    // AZ rebalancing. AWS documents the service events of a rebalancing, not the stopped task's
    // stoppedReason: TASKS_STOPPED says "<service> has stopped <n> running tasks in <AZ> due to
    // AZ rebalancing: <task ids>." ("Track Amazon ECS Availability Zone rebalancing",
    // https://docs.aws.amazon.com/AmazonECS/latest/developerguide/track-service-rebalancing.html).
    // So the wording decides, after every infrastructure cause (an Auto Scaling capacity
    // rebalance that takes the host away is the host's loss); a scheduler stop worded otherwise
    // is still silent (the ServiceSchedulerInitiated rule below).
    if lower.contains("rebalanc") && stop_code != "TaskFailedToStart" && stop_code != "EssentialContainerExited" {
        return Some(StopClass::AzRebalancing);
    }
    if reason.starts_with("Scaling activity initiated by") {
        // ECS writes this text both when a service scales in and when a rollout scales the old
        // deployment's tasks down; the event cannot tell them apart and both are normal stops.
        return Some(StopClass::ScaleIn);
    }
    if stop_code == "TaskFailedToStart" {
        return Some(StopClass::FailedToStart { kind: StartFailure::Other });
    }
    if stop_code == "UserInitiated" || lower.starts_with("task stopped by user") {
        return Some(StopClass::UserStop);
    }
    let essential_exited = lower.contains("essential container in task exited") || stop_code == "EssentialContainerExited";
    // The service scheduler stopped the task on purpose and not for its health (those reasons
    // were settled above): a scale-in, a deployment retiring the old tasks (rolling, or the blue
    // service revision or task set of a blue/green, linear or canary deployment, whose
    // stoppedReason AWS does not document) or an AZ rebalancing worded otherwise. The exit codes
    // are what SIGTERM or SIGKILL left (143, 137), not the task's failure; an essential
    // container that exits on its own stops the task as EssentialContainerExited.
    if stop_code == "ServiceSchedulerInitiated" && !lower.contains("health") && !essential_exited {
        return Some(StopClass::ScaleIn);
    }

    // Exit codes: essential containers only.
    match &counted {
        Some(essential) => {
            if let Some(c) = essential.iter().find(|c| c.exit_code.is_some_and(|code| code != 0)) {
                return Some(StopClass::Crash { container: Some(c.name.clone()), exit_code: c.exit_code });
            }
            let exited = essential.iter().filter(|c| c.exit_code.is_some()).count();
            if exited > 0 && (essential_exited || exited == essential.len()) {
                // Every essential container that reported an exit code reported 0.
                return Some(StopClass::NormalExit);
            }
        }
        None => {
            let exited = task.containers.iter().filter(|c| c.exit_code.is_some()).count();
            if exited > 0 && task.containers.iter().all(|c| c.exit_code == Some(0)) {
                // Every container exited 0: whichever are essential, they all did.
                return Some(StopClass::NormalExit);
            }
            if exited > 0 {
                // A non-zero exit, or some containers without one: it depends on which are essential.
                return None;
            }
        }
    }
    if essential_exited {
        return Some(StopClass::Crash { container: None, exit_code: None });
    }
    if stop_code == "ServiceSchedulerInitiated" {
        return Some(StopClass::ScaleIn);
    }
    Some(StopClass::Unknown)
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
            // Issue 15 item 8. InfrastructureHealth: a TaskStopCode value with no documented
            // stoppedReason (botocore's ECS model; Python SDK v4 reference, TaskStopCode).
            ("InfrastructureHealth", "", exited(143), StopClass::Infrastructure { kind: InfraKind::Health }),
            ("InfrastructureHealth", "", none.clone(), StopClass::Infrastructure { kind: InfraKind::Health }),
            // AZ rebalancing: AWS documents the TASKS_STOPPED service event ("… due to AZ
            // rebalancing: …", track-service-rebalancing.html), not the task's stoppedReason.
            (
                "ServiceSchedulerInitiated",
                "random has stopped 1 running tasks in us-east-1b due to AZ rebalancing: 0123456789abcdef.",
                exited(143),
                StopClass::AzRebalancing,
            ),
            ("ServiceSchedulerInitiated", "AZ Rebalancing", exited(137), StopClass::AzRebalancing),
            ("", "Availability Zone rebalancing", none.clone(), StopClass::AzRebalancing),
            ("TaskFailedToStart", "Task failed to start during AZ rebalancing", none.clone(), StopClass::FailedToStart { kind: StartFailure::Other }),
            ("SpotInterruption", "Capacity rebalancing: your Spot Task was interrupted.", none.clone(), StopClass::Infrastructure { kind: InfraKind::Spot }),
            // A scheduler stop in words AWS does not document (the blue service revision or task
            // set of a blue/green deployment retired): on purpose, whatever SIGTERM left.
            ("ServiceSchedulerInitiated", "A reason AWS does not document", exited(143), StopClass::ScaleIn),
            ("ServiceSchedulerInitiated", "A reason AWS does not document", exited(1), StopClass::ScaleIn),
            // …unless it names a health check: the task's own failure.
            (
                "ServiceSchedulerInitiated",
                "Task failed some new health checks",
                exited(143),
                StopClass::Crash { container: Some("random".into()), exit_code: Some(143) },
            ),
        ];
        for (code, reason, containers, want) in cases {
            // Task definitions that mark every container essential (ECS's default).
            let t = task(code, reason, containers);
            assert_eq!(classify(&t, Some(&all_containers(&t))), Some(want.clone()), "{code} / {reason}");
            // What the event alone settles is what the task definition would say.
            if let Some(from_event) = classify(&t, None) {
                assert_eq!(from_event, want, "event alone: {code} / {reason}");
            }
        }
    }

    #[test]
    fn exit_137_without_oom_reason_is_a_crash_and_classes_group() {
        let t = task("EssentialContainerExited", "Essential container in task exited", json!([{"name": "a", "exitCode": 137}]));
        let c = classify(&t, Some(&all_containers(&t))).unwrap();
        assert!(c.is_failure() && !c.is_normal());
        assert_eq!(c.to_string(), "crashed (exit 137)");
        assert!(StopClass::ScaleIn.is_normal() && StopClass::UserStop.is_normal() && StopClass::NormalExit.is_normal());
        assert!(StopClass::Infrastructure { kind: InfraKind::Spot }.is_infrastructure());
        let health = StopClass::Infrastructure { kind: InfraKind::Health };
        assert!(health.is_infrastructure() && !health.is_failure() && !health.is_normal());
        assert_eq!(health.to_string(), "stopped by infrastructure (infrastructure health)");
        assert!(StopClass::AzRebalancing.is_normal() && !StopClass::AzRebalancing.is_failure());
        assert_eq!((StopClass::AzRebalancing.label(), StopClass::AzRebalancing.to_string()), ("az-rebalancing", "az-rebalancing".to_string()));
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
            ("ecs-task-stopped-sidecar-killed.json", "normal-exit"),
            ("ecs-task-stopped-spot.json", "infrastructure"),
            ("ecs-task-stopped-user.json", "user-stop"),
            ("ecs-task-stopped-az-rebalancing.json", "az-rebalancing"),
            ("ecs-task-stopped-infrastructure-health.json", "infrastructure"),
        ];
        for (file, label) in want {
            let Ok(text) = std::fs::read_to_string(dir.join(file)) else { continue };
            let event: serde_json::Value = serde_json::from_str(&text).unwrap();
            let task: TaskStateChange = serde_json::from_value(event["detail"].clone()).unwrap();
            // The samples' task definitions mark their one container essential; the sidecar
            // sample's marks its log router `essential: false`.
            let essential: BTreeSet<String> = all_containers(&task).into_iter().filter(|n| n != "log-router").collect();
            assert_eq!(classify(&task, Some(&essential)).map(|c| c.label()), Some(label), "{file}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        for reason in ["(", "Scaling activity initiated by", "Task failed ELB health checks in (target-group arn:aws", "é", "arn:aws:"] {
            let t = task("", reason, json!([{"name": "x", "exitCode": -1, "reason": "\u{0}"}]));
            let _ = (classify(&t, None), classify(&t, Some(&all_containers(&t))), classify(&t, Some(&BTreeSet::new())));
        }
        assert_eq!(target_group_arn("Task failed ELB health checks in (target-group arn:aws:"), None);
    }

    fn names(n: &[&str]) -> BTreeSet<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    /// Issue 14 item 6: a sidecar's exit is not the task's failure. ECS's events carry no
    /// `essential` flag (ECS "Task state change events" sample; the `Container` shape of
    /// DescribeTasks), so every container used to count: an app that exited 0 and a FireLens
    /// sidecar killed with 137 made a crash (and a re-run, and a crash-loop count).
    #[test]
    fn essential_containers_come_from_the_task_definition() {
        let eec = |containers| task("EssentialContainerExited", "Essential container in task exited", containers);
        let app_and_router = |app: i64, router: Option<i64>| json!([{"name": "app", "exitCode": app}, {"name": "log-router", "exitCode": router}]);
        let cases: Vec<(&str, TaskStateChange, BTreeSet<String>, StopClass)> = vec![
            ("sidecar killed after the app exited 0", eec(app_and_router(0, Some(137))), names(&["app"]), StopClass::NormalExit),
            ("sidecar stopped with 143", eec(app_and_router(0, Some(143))), names(&["app"]), StopClass::NormalExit),
            ("sidecar without an exit code", eec(app_and_router(0, None)), names(&["app"]), StopClass::NormalExit),
            ("the app failed, the sidecar too", eec(app_and_router(2, Some(137))), names(&["app"]), StopClass::Crash { container: Some("app".into()), exit_code: Some(2) }),
            (
                "an essential sidecar (the flag absent in the task definition: essential)",
                eec(app_and_router(0, Some(137))),
                names(&["app", "log-router"]),
                StopClass::Crash { container: Some("log-router".into()), exit_code: Some(137) },
            ),
            (
                "a sidecar killed for its memory while the app exited 0",
                eec(json!([{"name": "app", "exitCode": 0}, {"name": "log-router", "exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory usage"}])),
                names(&["app"]),
                StopClass::NormalExit,
            ),
            (
                "the app killed for its memory",
                eec(json!([{"name": "app", "exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory usage"}, {"name": "log-router", "exitCode": 0}])),
                names(&["app"]),
                StopClass::OutOfMemory { container: Some("app".into()) },
            ),
            (
                "a container ECS added (not in the task definition) is not essential",
                eec(json!([{"name": "app", "exitCode": 0}, {"name": "ecs-service-connect-agent", "exitCode": 137}])),
                names(&["app", "log-router"]),
                StopClass::NormalExit,
            ),
            ("a task definition that names none of them: every container counts", eec(app_and_router(0, Some(137))), names(&["other"]), StopClass::Crash { container: Some("log-router".into()), exit_code: Some(137) }),
            // The event-level `essential` field (which ECS never sends) decides nothing.
            (
                "an `essential: false` in the event is not the task definition",
                eec(json!([{"name": "app", "exitCode": 0}, {"name": "log-router", "exitCode": 2, "essential": false}])),
                names(&["app", "log-router"]),
                StopClass::Crash { container: Some("log-router".into()), exit_code: Some(2) },
            ),
        ];
        for (what, t, essential, want) in cases {
            assert_eq!(classify(&t, Some(&essential)), Some(want), "{what}");
        }
    }

    /// The screen classifies from the event alone: it settles only what no task definition could
    /// change, and leaves to the handler (which reads the task definition) what it cannot know.
    #[test]
    fn the_event_alone_settles_only_what_no_task_definition_changes() {
        let eec = |containers| task("EssentialContainerExited", "Essential container in task exited", containers);
        let cases: Vec<(&str, TaskStateChange, Option<StopClass>)> = vec![
            ("every container exited 0", eec(json!([{"name": "app", "exitCode": 0}, {"name": "log-router", "exitCode": 0}])), Some(StopClass::NormalExit)),
            ("a non-zero exit: whose?", eec(json!([{"name": "app", "exitCode": 0}, {"name": "log-router", "exitCode": 137}])), None),
            ("the only container exited 1: still, is it essential?", eec(json!([{"name": "app", "exitCode": 1}])), None),
            ("a container without an exit code", eec(json!([{"name": "app", "exitCode": 0}, {"name": "log-router"}])), None),
            ("a container killed for its memory", eec(json!([{"name": "app", "exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory usage"}])), None),
            ("no exit codes at all", eec(json!([{"name": "app"}])), Some(StopClass::Crash { container: None, exit_code: None })),
            ("scale-in, whatever the exits", task("ServiceSchedulerInitiated", "Scaling activity initiated by (deployment ecs-svc/1)", json!([{"name": "app", "exitCode": 137}])), Some(StopClass::ScaleIn)),
            ("user stop, whatever the exits", task("UserInitiated", "Task stopped by user", json!([{"name": "app", "exitCode": 143}])), Some(StopClass::UserStop)),
            ("deployment replacement", task("ServiceSchedulerInitiated", "Task replaced by a newer deployment", json!([{"name": "app", "exitCode": 143}])), Some(StopClass::DeploymentReplacement)),
            ("ELB health checks", task("ServiceSchedulerInitiated", "Task failed ELB health checks in (target-group x)", json!([{"name": "app", "exitCode": 143}])), Some(StopClass::ElbHealthCheck { target_group_arn: None })),
            ("spot", task("SpotInterruption", "Your Spot Task was interrupted.", json!([{"name": "app", "exitCode": 143}])), Some(StopClass::Infrastructure { kind: InfraKind::Spot })),
            ("infrastructure health", task("InfrastructureHealth", "", json!([{"name": "app", "exitCode": 137}])), Some(StopClass::Infrastructure { kind: InfraKind::Health })),
            ("AZ rebalancing", task("ServiceSchedulerInitiated", "AZ Rebalancing", json!([{"name": "app", "exitCode": 143}])), Some(StopClass::AzRebalancing)),
            ("a scheduler stop worded otherwise", task("ServiceSchedulerInitiated", "A reason AWS does not document", json!([{"name": "app", "exitCode": 143}])), Some(StopClass::ScaleIn)),
            ("nothing recognisable", task("", "", json!([])), Some(StopClass::Unknown)),
        ];
        for (what, t, want) in cases {
            assert_eq!(classify(&t, None), want, "{what}");
        }
    }
}
