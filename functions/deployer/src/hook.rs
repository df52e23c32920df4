//! "ECS Hook State Change" HOOK_AWAITING_ACTION: a deployment of an opted-in service waits at a
//! pause lifecycle hook until someone calls ContinueServiceDeployment (CONTINUE or ROLLBACK) or the
//! hook times out. The deployer tells people once per (deployment, hook), with the commands.
//!
//! AWS documents the event in "Amazon ECS service deployment hook state change events"
//! (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_hook_state_change_events.html)
//! and the hooks in "Pause hooks for Amazon ECS service deployments"
//! (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/pause-lifecycle-hooks.html). The
//! event names the hook, the deployment and `expiresAt`, but not the timeout action: that is read
//! from DescribeServiceDeployments (`lifecycleHookDetails`), which also says whether the hook
//! still waits (EventBridge may deliver the event late, after someone has acted).
//!
//! Nothing here calls ContinueServiceDeployment: a person decides. A dry run notifies the same,
//! since the message changes nothing.

use std::time::Duration;

use autopilot::aws_lambda_events::eventbridge::EventBridgeEvent;
use autopilot::config::cluster_name;
use autopilot::events::{EventError, HookEventName, HookStateChange, HOOK_TYPE_PAUSE};
use autopilot::runtime::Env;
use autopilot::tags::TAG_DEPLOY;
use autopilot::Error;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::aws::{Aws, HookDetail};
use crate::messages::awaiting_approval_notification;
use crate::outcome::{HookReport, HookStatus, Outcome};
use crate::rollout::parse_service_arn;

/// A pause hook waits at most 20,160 minutes (14 days; `timeoutConfiguration.timeoutInMinutes`,
/// API_DeploymentLifecycleHookTimeoutConfiguration): one message per hook for as long as it can wait.
pub const NOTIFY_ONCE: Duration = Duration::from_secs(15 * 24 * 3600);

/// The hook status DescribeServiceDeployments reports while a pause hook waits.
const AWAITING_ACTION: &str = "AWAITING_ACTION";

/// ECS's timeout action when a pause hook configures none (pause-lifecycle-hooks.html).
pub const DEFAULT_TIMEOUT_ACTION: &str = "ROLLBACK";

/// Everything a person needs to act on a paused deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct PausedHook {
    pub region: String,
    pub cluster: String,
    pub service: String,
    pub service_deployment_arn: String,
    pub hook_id: String,
    pub lifecycle_stage: Option<String>,
    /// When ECS takes the timeout action.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the hook started waiting (the event's `updatedAt`, else its `time`).
    pub paused_at: Option<DateTime<Utc>>,
    pub timeout_action: TimeoutAction,
}

/// What ECS does when nobody acts before `expires_at`.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeoutAction {
    /// As DescribeServiceDeployments reports it.
    Known(String),
    /// DescribeServiceDeployments could not be read or did not list the hook: why.
    Unknown(String),
}

/// `arn:aws:ecs:R:A:service-deployment/CLUSTER/SERVICE/ID` → (CLUSTER, SERVICE, ID).
pub fn parse_service_deployment_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let rest = arn.split_once(":service-deployment/")?.1;
    let mut parts = rest.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(c), Some(s), Some(id), None) if !c.is_empty() && !s.is_empty() && !id.is_empty() => Some((c, s, id)),
        _ => None,
    }
}

/// The AWS CLI command that answers the hook (ContinueServiceDeployment: `serviceDeploymentArn`
/// and `hookId` required, `action` CONTINUE or ROLLBACK, per botocore's ECS model). The region is
/// spelled out: the person runs it from wherever their CLI's default region points.
pub fn continue_command(region: &str, service_deployment_arn: &str, hook_id: &str, action: &str) -> String {
    format!("aws ecs continue-service-deployment --region {region} --service-deployment-arn {service_deployment_arn} --hook-id {hook_id} --action {action}")
}

/// Whether the event is one a person must answer, from the event alone: `Err` is why not.
pub fn awaiting_action(detail: &HookStateChange) -> Result<(), String> {
    if detail.name() != HookEventName::AwaitingAction {
        return Err(format!("{} needs no action", detail.event_name));
    }
    match detail.hook_type.as_deref() {
        None | Some(HOOK_TYPE_PAUSE) => Ok(()),
        Some(other) => Err(format!("a {other} hook awaits no person")),
    }
}

/// Whether what DescribeServiceDeployments says still calls for the message: `Err` is why not.
pub fn still_waiting(hook: Option<&HookDetail>) -> Result<(), String> {
    match hook.and_then(|h| h.status.as_deref()) {
        Some(status) if status != AWAITING_ACTION => Err(format!("the hook is already {status}")),
        _ => Ok(()),
    }
}

fn malformed(path: &str, message: &str) -> Error {
    Error::InvalidEvent(EventError::MalformedDetail { detail_type: autopilot::events::DETAIL_HOOK_STATE_CHANGE.into(), path: path.into(), message: message.into() })
}

pub async fn handle(env: &Env, aws: &Aws, ev: EventBridgeEvent<HookStateChange>) -> Result<Outcome, Error> {
    let d = &ev.detail;
    if let Err(reason) = awaiting_action(d) {
        return Ok(Outcome::ignored(reason));
    }
    let Some(hook_id) = d.hook_id.clone().filter(|h| !h.is_empty()) else {
        return Err(malformed("detail.hookId", "a hook awaiting action without a hookId"));
    };
    let Some(deployment_arn) = d.service_deployment_arn.clone().or_else(|| ev.resources.as_ref().and_then(|r| r.first()).cloned()).filter(|a| !a.is_empty()) else {
        return Err(malformed("detail.serviceDeploymentArn", "a hook awaiting action without its service deployment"));
    };
    // The service's cluster and name: from serviceArn, else from the deployment's ARN.
    let from_deployment = parse_service_deployment_arn(&deployment_arn);
    let (cluster, service) = match (d.service_arn.as_deref().and_then(parse_service_arn), from_deployment) {
        (Some((Some(c), s)), _) => (c.to_string(), s.to_string()),
        (_, Some((c, s, _))) => (c.to_string(), s.to_string()),
        _ => return Ok(Outcome::ignored(format!("{deployment_arn} names no service"))),
    };
    if !env.config.manages_cluster(&cluster) {
        return Ok(Outcome::ignored(format!("cluster {cluster} is not managed")));
    }
    let Some(info) = aws.describe_services(&cluster, std::slice::from_ref(&service)).await?.into_iter().find(|s| s.status != "INACTIVE" && s.observed.name == service) else {
        return Ok(Outcome::ignored(format!("service {service} not found")));
    };
    if !info.observed.tags.contains_key(TAG_DEPLOY) {
        return Ok(Outcome::ignored(format!("{service} is not opted in ({TAG_DEPLOY} absent)")));
    }
    // The timeout action and the hook's current status. A failed read still sends the message:
    // the event alone says what to run and until when, and the timeout clock is running.
    let (hook, timeout_action) = match aws.lifecycle_hook(&deployment_arn, &hook_id).await {
        Ok(Some(h)) => {
            let action = match &h.timeout_action {
                Some(a) => TimeoutAction::Known(a.clone()),
                None => TimeoutAction::Unknown("DescribeServiceDeployments reports none".into()),
            };
            (Some(h), action)
        }
        Ok(None) => (None, TimeoutAction::Unknown("DescribeServiceDeployments does not list the hook".into())),
        Err(e) => {
            tracing::warn!(service = %service, hook_id = %hook_id, error = %e, "cannot read the hook's timeout action; notifying without it");
            // The error's code only: its message may be anything the endpoint answered.
            let code = match &e {
                Error::Aws { code, .. } => code.clone(),
                other => other.kind().to_string(),
            };
            (None, TimeoutAction::Unknown(format!("DescribeServiceDeployments failed ({code})")))
        }
    };
    if let Err(reason) = still_waiting(hook.as_ref()) {
        return Ok(Outcome::ignored(format!("{service}: hook {hook_id}: {reason}")));
    }
    let expires_at = d.expires_at().or_else(|| hook.as_ref().and_then(|h| h.expires_at).and_then(DateTime::from_timestamp_millis));
    let paused = PausedHook {
        region: crate::region_or_own(env, &ev.region),
        cluster: cluster_name(&info.observed.cluster).to_string(),
        service: service.clone(),
        service_deployment_arn: deployment_arn.clone(),
        hook_id: hook_id.clone(),
        lifecycle_stage: d.lifecycle_stage.clone(),
        expires_at,
        paused_at: d.updated_at().or(ev.time),
        timeout_action,
    };
    tracing::info!(
        service = %service,
        deployment = %deployment_arn,
        hook_id = %hook_id,
        stage = ?paused.lifecycle_stage,
        expires_at = ?paused.expires_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
        "deployment paused at a lifecycle hook: awaiting approval"
    );
    let key = format!("hook#{deployment_arn}#{hook_id}");
    let mut n = awaiting_approval_notification(&paused);
    // A rollout a push of ours started (our record names the revision the service rolls onto):
    // its pause answers in the push's thread, as its end will (messages::rollout_end).
    let (pk, sk) = autopilot::keys::deployment(&info.observed.cluster, &service);
    match env.state.get(&pk, &sk).await {
        Ok(Some(r)) if r.data.get("taskDefinition").and_then(serde_json::Value::as_str).is_some_and(|t| crate::plan::same_revision(t, &info.observed.task_definition)) => {
            if let Some(t) = crate::messages::record_thread(&r.data) {
                n = n.thread(t);
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(service = %service, error = %e, "cannot read the deployment record; the pause gets the deployment's own thread"),
    }
    let notified = env.notifier.publish_once(&env.state, &key, NOTIFY_ONCE, &n).await?;
    Ok(Outcome::Hook(HookReport {
        status: HookStatus::AwaitingApproval,
        cluster: paused.cluster,
        service,
        service_deployment_arn: deployment_arn,
        hook_id,
        expires_at: paused.expires_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
        timeout_action: match paused.timeout_action {
            TimeoutAction::Known(a) => Some(a),
            TimeoutAction::Unknown(_) => None,
        },
        notified,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:ecs:us-east-1:123456789012:service-deployment/stage01/auth/0EYSiB0qap8xf0N76FsbE";

    #[test]
    fn service_deployment_arns() {
        assert_eq!(parse_service_deployment_arn(ARN), Some(("stage01", "auth", "0EYSiB0qap8xf0N76FsbE")));
        for bad in [
            "arn:aws:ecs:us-east-1:1:service/stage01/auth",
            "arn:aws:ecs:us-east-1:1:service-deployment/stage01/auth",
            "arn:aws:ecs:us-east-1:1:service-deployment/stage01/auth/x/y",
            "arn:aws:ecs:us-east-1:1:service-deployment//auth/x",
        ] {
            assert_eq!(parse_service_deployment_arn(bad), None, "{bad}");
        }
    }

    /// The CLI spelling of ContinueServiceDeployment (botocore's ECS model: members
    /// serviceDeploymentArn and hookId required, action in DeploymentLifecycleHookAction).
    #[test]
    fn continue_commands_name_the_deployment_the_hook_and_the_action() {
        for (action, want) in [
            ("CONTINUE", format!("aws ecs continue-service-deployment --region us-east-1 --service-deployment-arn {ARN} --hook-id ecs-pause-x --action CONTINUE")),
            ("ROLLBACK", format!("aws ecs continue-service-deployment --region us-east-1 --service-deployment-arn {ARN} --hook-id ecs-pause-x --action ROLLBACK")),
        ] {
            assert_eq!(continue_command("us-east-1", ARN, "ecs-pause-x", action), want);
        }
    }

    /// ecs_hook_state_change_events.html: HOOK_IN_PROGRESS, HOOK_AWAITING_ACTION, HOOK_SUCCEEDED,
    /// HOOK_FAILED, HOOK_TIMED_OUT; only a pause hook's HOOK_AWAITING_ACTION asks for a person.
    #[test]
    fn only_a_pause_hook_awaiting_action_is_told() {
        let detail = |name: &str, hook_type: Option<&str>| HookStateChange { event_name: name.into(), hook_type: hook_type.map(String::from), ..Default::default() };
        for (name, hook_type, told) in [
            ("HOOK_AWAITING_ACTION", Some("PAUSE"), true),
            ("HOOK_AWAITING_ACTION", None, true),
            ("HOOK_AWAITING_ACTION", Some("AWS_LAMBDA"), false),
            ("HOOK_IN_PROGRESS", Some("PAUSE"), false),
            ("HOOK_SUCCEEDED", Some("PAUSE"), false),
            ("HOOK_FAILED", Some("PAUSE"), false),
            ("HOOK_TIMED_OUT", Some("PAUSE"), false),
            ("HOOK_SOMETHING_NEW", Some("PAUSE"), false),
        ] {
            assert_eq!(awaiting_action(&detail(name, hook_type)).is_ok(), told, "{name} {hook_type:?}");
        }
    }

    /// A late delivery about a hook someone already answered (or that timed out) tells nobody.
    #[test]
    fn a_hook_already_answered_is_not_told() {
        let hook = |s: &str| HookDetail { status: Some(s.into()), ..Default::default() };
        assert!(still_waiting(None).is_ok(), "unknown: the event is news");
        assert!(still_waiting(Some(&HookDetail::default())).is_ok());
        assert!(still_waiting(Some(&hook("AWAITING_ACTION"))).is_ok());
        for s in ["SUCCEEDED", "FAILED", "TIMED_OUT", "IN_PROGRESS"] {
            assert_eq!(still_waiting(Some(&hook(s))), Err(format!("the hook is already {s}")));
        }
    }
}
