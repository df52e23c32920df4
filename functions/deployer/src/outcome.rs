//! What the deployer answers for an event: typed here, serialised once (`lib.rs`). Invocation
//! results, log lines and the embedded-metric counts (`autopilot::metrics::count_actions`, which
//! counts `deployed` entries) all read this JSON.

use autopilot::config::cluster_name;
use autopilot::Error;
use serde::Serialize;
use serde_json::Value;

use crate::deploy::PushOutcome;
use crate::plan::{FamilyPlan, Push, Skip};

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Outcome {
    Ignored(Ignored),
    Push(PushReport),
    Reconcile(ReconcileReport),
    Rollout(RolloutReport),
    Hook(HookReport),
}

impl Outcome {
    /// Nothing to do, and why (logged once here).
    pub fn ignored(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        tracing::info!(%reason, "skip");
        Outcome::Ignored(Ignored::new(reason))
    }

    pub fn to_json(&self) -> Value {
        autopilot::runtime::to_json(self)
    }
}

/// The answer to a push or a reconcile pass: the report when every service could be dealt with,
/// else a failed invocation (retryable when any failure is) that the retry and the DLQ see.
/// The reconcile pass's answer (issue 17, item 3): a failure only a retry could fix fails the
/// invocation (with every failure in its summary); refusals alone do not. A refusal (a field the
/// copy cannot carry, a service ECS will not update) comes back on every tick until a person acts,
/// so failing on it would keep the error and DLQ alarms in ALARM for ever; it is told once per
/// digest and service instead (`deploy::REFUSAL_NOTICE_WINDOW`) and listed in the report.
pub fn conclude_reconcile(mut report: ReconcileReport, failures: Vec<(String, Error)>) -> Result<Outcome, Error> {
    if failures.iter().any(|(_, e)| e.retryable()) {
        let deployed = report.deployed.len();
        return conclude(Outcome::Reconcile(report), deployed, failures);
    }
    for (who, e) in &failures {
        tracing::warn!(service = %who, error_kind = e.kind(), error = %e, "reconcile: refused (not retried; told once per digest and service)");
    }
    report.refused = failures.into_iter().map(|(who, e)| Refusal { service: who, reason: e.to_string() }).collect();
    Ok(Outcome::Reconcile(report))
}

/// A service the reconcile pass could not deploy, for a reason no retry fixes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refusal {
    pub service: String,
    pub reason: String,
}

pub fn conclude(outcome: Outcome, deployed: usize, failures: Vec<(String, Error)>) -> Result<Outcome, Error> {
    if failures.is_empty() {
        return Ok(outcome);
    }
    tracing::error!(outcome = %outcome.to_json(), "some services were not deployed");
    Err(Error::Partial {
        failed: failures.len(),
        total: deployed + failures.len(),
        summary: crate::aws::summarize(&failures),
        retryable: failures.iter().any(|(_, e)| e.retryable()),
    })
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ignored {
    status: &'static str,
    pub reason: String,
}

impl Ignored {
    pub fn new(reason: String) -> Self {
        Ignored { status: "ignored", reason }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PushStatus {
    DryRun,
    Failed,
    Deployed,
    NothingToDo,
}

/// One pushed image (an ECR event, or one image the reconcile pass offers) over the services.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    pub status: PushStatus,
    pub image: ImageId,
    pub plan: Vec<PlannedFamily>,
    pub deployed: Vec<Deployed>,
    pub skipped: Vec<Skipped>,
    pub failed: Vec<Failed>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageId {
    pub repository: String,
    pub tag: String,
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedFamily {
    pub family: String,
    /// `family:revision` copied.
    pub base: String,
    /// The revision an earlier delivery registered, reused.
    pub reuse: Option<String>,
    pub images: Vec<ContainerImage>,
    /// `cluster/service`
    pub services: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerImage {
    pub container: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployed {
    pub cluster: String,
    pub service: String,
    pub family: String,
    pub task_definition: String,
    pub previous: String,
    pub digest: String,
    pub tag: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub cluster: String,
    pub service: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl From<&Skip> for Skipped {
    fn from(s: &Skip) -> Self {
        Skipped { cluster: cluster_name(&s.cluster).to_string(), service: s.service.clone(), reason: s.reason.clone(), fix: s.fix.clone() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failed {
    /// `cluster/service`
    pub service: String,
    pub error: String,
    pub retryable: bool,
}

impl Failed {
    pub fn of(who: &str, e: &Error) -> Self {
        Failed { service: who.to_string(), error: e.to_string(), retryable: e.retryable() }
    }
}

impl PlannedFamily {
    pub fn of(fam: &FamilyPlan) -> Self {
        use crate::plan::revision_name;
        PlannedFamily {
            family: fam.family.clone(),
            base: revision_name(&fam.base),
            reuse: fam.existing.as_deref().map(revision_name),
            images: fam.changes.iter().map(|c| ContainerImage { container: c.container.clone(), to: c.to.clone() }).collect(),
            services: fam.services.iter().map(|t| crate::deploy::who(&t.cluster, &t.service)).collect(),
        }
    }
}

impl PushReport {
    /// The report of one image: `failures` are the discovery's and the deploy's together.
    pub fn new(push: &Push, outcome: &PushOutcome, failures: &[(String, Error)], dry_run: bool) -> Self {
        let status = if dry_run {
            PushStatus::DryRun
        } else if !failures.is_empty() {
            PushStatus::Failed
        } else if !outcome.deployed.is_empty() {
            PushStatus::Deployed
        } else {
            PushStatus::NothingToDo
        };
        PushReport {
            status,
            image: ImageId { repository: push.repository.clone(), tag: push.tag.clone(), digest: push.digest.clone() },
            plan: outcome.planned.clone(),
            deployed: outcome.deployed.clone(),
            skipped: outcome.skipped.iter().map(Skipped::from).collect(),
            failed: failures.iter().map(|(w, e)| Failed::of(w, e)).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReconcileStatus {
    DryRun,
    Deployed,
    InSync,
}

/// The reconcile pass: every image it offered, and what was deployed in all.
#[derive(Debug, Clone, Serialize)]
pub struct ReconcileReport {
    pub status: ReconcileStatus,
    pub deployed: Vec<Deployed>,
    pub images: Vec<PushReport>,
    /// Rollouts of ours past their deadline ("cluster/service"), reported once each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stuck: Vec<String>,
    /// Services refused for a reason no retry fixes (told once per digest and service).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<Refusal>,
}

impl ReconcileReport {
    pub fn new(images: Vec<PushReport>, dry_run: bool) -> Self {
        let deployed: Vec<Deployed> = images.iter().flat_map(|r| r.deployed.iter().cloned()).collect();
        let status = if dry_run {
            ReconcileStatus::DryRun
        } else if !deployed.is_empty() {
            ReconcileStatus::Deployed
        } else {
            ReconcileStatus::InSync
        };
        ReconcileReport { status, deployed, images, stuck: Vec::new(), refused: Vec::new() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutStatus {
    /// The rollout completed: the revision is the service's last stable one.
    Stable,
    Failed,
    RollingBack,
    /// ECS rolled the rollout back and the rollback completed (ROLLBACK_SUCCESSFUL): never a
    /// success of the rollout, whatever "completed" event announced it.
    RolledBack,
    /// ECS's rollback failed too (ROLLBACK_FAILED).
    RollbackFailed,
    /// Someone stopped the deployment (STOPPED).
    Stopped,
}

/// An "ECS Deployment State Change" reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutReport {
    pub status: RolloutStatus,
    pub cluster: String,
    pub service: String,
    pub task_definition: String,
    pub notified: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookStatus {
    /// A deployment waits at a pause hook for ContinueServiceDeployment.
    AwaitingApproval,
}

/// An "ECS Hook State Change" HOOK_AWAITING_ACTION reported (`hook.rs`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookReport {
    pub status: HookStatus,
    pub cluster: String,
    pub service: String,
    pub service_deployment_arn: String,
    pub hook_id: String,
    pub expires_at: Option<String>,
    /// CONTINUE or ROLLBACK as DescribeServiceDeployments reports it; null when not read.
    pub timeout_action: Option<String>,
    pub notified: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployed() -> Deployed {
        Deployed {
            cluster: "stage01".into(),
            service: "auth".into(),
            family: "auth".into(),
            task_definition: "arn:aws:ecs:us-east-1:1:task-definition/auth:2".into(),
            previous: "arn:aws:ecs:us-east-1:1:task-definition/auth:1".into(),
            digest: "sha256:ab".into(),
            tag: "v2".into(),
        }
    }

    fn push_report(status: PushStatus) -> PushReport {
        PushReport {
            status,
            image: ImageId { repository: "auth".into(), tag: "v2".into(), digest: "sha256:ab".into() },
            plan: vec![PlannedFamily {
                family: "auth".into(),
                base: "auth:1".into(),
                reuse: None,
                images: vec![ContainerImage { container: "auth".into(), to: "r/auth@sha256:ab".into() }],
                services: vec!["stage01/auth".into()],
            }],
            deployed: vec![deployed()],
            skipped: vec![
                Skipped { cluster: "stage01".into(), service: "random".into(), reason: "tag v2 does not match".into(), fix: None },
                Skipped { cluster: "stage01".into(), service: "old".into(), reason: "old glob".into(), fix: Some("aws ecs tag-resource …".into()) },
            ],
            failed: vec![Failed { service: "stage01/doomed".into(), error: "gone".into(), retryable: false }],
        }
    }

    /// The JSON every caller reads (tests, logs, metrics): pinned field by field.
    #[test]
    fn each_outcome_serialises_as_callers_read_it() {
        assert_eq!(Outcome::Ignored(Ignored::new("why".into())).to_json(), json!({"status": "ignored", "reason": "why"}));
        let push = Outcome::Push(push_report(PushStatus::NothingToDo)).to_json();
        assert_eq!(
            push,
            json!({
                "status": "nothing-to-do",
                "image": {"repository": "auth", "tag": "v2", "digest": "sha256:ab"},
                "plan": [{"family": "auth", "base": "auth:1", "reuse": null, "images": [{"container": "auth", "to": "r/auth@sha256:ab"}], "services": ["stage01/auth"]}],
                "deployed": [{"cluster": "stage01", "service": "auth", "family": "auth", "taskDefinition": "arn:aws:ecs:us-east-1:1:task-definition/auth:2",
                              "previous": "arn:aws:ecs:us-east-1:1:task-definition/auth:1", "digest": "sha256:ab", "tag": "v2"}],
                "skipped": [{"cluster": "stage01", "service": "random", "reason": "tag v2 does not match"},
                            {"cluster": "stage01", "service": "old", "reason": "old glob", "fix": "aws ecs tag-resource …"}],
                "failed": [{"service": "stage01/doomed", "error": "gone", "retryable": false}],
            })
        );
        for (status, text) in [(PushStatus::DryRun, "dry-run"), (PushStatus::Failed, "failed"), (PushStatus::Deployed, "deployed")] {
            assert_eq!(Outcome::Push(push_report(status)).to_json()["status"], text);
        }
        let reconcile = Outcome::Reconcile(ReconcileReport::new(vec![push_report(PushStatus::Deployed)], false)).to_json();
        assert_eq!(reconcile["status"], "deployed");
        assert_eq!(reconcile["deployed"], json!([serde_json::to_value(deployed()).unwrap()]));
        assert_eq!(reconcile["images"][0]["status"], "deployed");
        assert_eq!(Outcome::Reconcile(ReconcileReport::new(vec![], false)).to_json(), json!({"status": "in-sync", "deployed": [], "images": []}));
        assert_eq!(Outcome::Reconcile(ReconcileReport::new(vec![push_report(PushStatus::DryRun)], true)).to_json()["status"], "dry-run");
        let rollout = RolloutReport { status: RolloutStatus::RollingBack, cluster: "stage01".into(), service: "random".into(), task_definition: "random:1".into(), notified: true };
        assert_eq!(
            Outcome::Rollout(rollout).to_json(),
            json!({"status": "rolling-back", "cluster": "stage01", "service": "random", "taskDefinition": "random:1", "notified": true})
        );
        let hook = HookReport {
            status: HookStatus::AwaitingApproval,
            cluster: "stage01".into(),
            service: "auth".into(),
            service_deployment_arn: "arn:sd".into(),
            hook_id: "ecs-pause-x".into(),
            expires_at: Some("2025-11-26T14:06:41Z".into()),
            timeout_action: None,
            notified: true,
        };
        assert_eq!(
            Outcome::Hook(hook).to_json(),
            json!({"status": "awaiting-approval", "cluster": "stage01", "service": "auth", "serviceDeploymentArn": "arn:sd", "hookId": "ecs-pause-x",
                   "expiresAt": "2025-11-26T14:06:41Z", "timeoutAction": null, "notified": true})
        );
    }

    /// A deploy counts once per deployed service in the metrics, and a dry run not at all.
    #[test]
    fn metrics_count_deployed_services() {
        let report = Outcome::Push(push_report(PushStatus::Deployed)).to_json();
        assert_eq!(autopilot::metrics::count_actions(&report), 1);
        let dry = Outcome::Push(push_report(PushStatus::DryRun)).to_json();
        assert_eq!(autopilot::metrics::count_actions(&dry), 0);
        let reconcile = Outcome::Reconcile(ReconcileReport::new(vec![push_report(PushStatus::Deployed)], false)).to_json();
        assert_eq!(autopilot::metrics::count_actions(&reconcile), 1);
    }
}

#[cfg(test)]
mod reconcile_tests {
    use super::*;

    /// Issue 17, item 3: reconcile fails the invocation only when a retry could help.
    #[test]
    fn reconcile_fails_only_on_what_a_retry_could_fix() {
        let refused = || ("stage01/auth".to_string(), Error::Refused("auth:3: field ulimitsX cannot be carried".into()));
        let throttled = || ("stage01/random".to_string(), Error::Aws { service: "ecs", operation: "UpdateService", code: "ThrottlingException".into(), message: "slow down".into(), retryable: true });
        let cases: Vec<(&str, Vec<(String, Error)>, Option<usize>)> = vec![
            ("nothing failed", vec![], Some(0)),
            ("a refusal alone", vec![refused()], Some(1)),
            ("a throttle", vec![throttled()], None),
            ("a refusal and a throttle", vec![refused(), throttled()], None),
        ];
        for (what, failures, want_refused) in cases {
            let got = conclude_reconcile(ReconcileReport::new(Vec::new(), false), failures);
            match (got, want_refused) {
                (Ok(Outcome::Reconcile(r)), Some(n)) => {
                    assert_eq!(r.refused.len(), n, "{what}");
                    assert!(r.refused.iter().all(|x| x.reason.contains("cannot be carried")), "{what}");
                }
                (Err(e), None) => {
                    assert!(e.retryable(), "{what}: {e}");
                    assert!(e.to_string().contains("stage01/random"), "{what}: every failure is in the summary: {e}");
                }
                (other, _) => panic!("{what}: {other:?}"),
            }
        }
    }
}
