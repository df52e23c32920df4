//! Typed EventBridge events for every source the functions react to.
//!
//! Parsing is lenient where AWS may add things (unknown fields are ignored, unknown enum values
//! become `Unknown`) and strict where we cannot act without a value (a missing `detail-type`, a
//! detail of the wrong shape): those give a classified [`EventError`], never a panic.

use std::collections::BTreeMap;
use std::fmt;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const DETAIL_ECR_IMAGE_ACTION: &str = "ECR Image Action";
pub const DETAIL_ECR_REPLICATION_ACTION: &str = "ECR Replication Action";
pub const DETAIL_TASK_STATE_CHANGE: &str = "ECS Task State Change";
pub const DETAIL_DEPLOYMENT_STATE_CHANGE: &str = "ECS Deployment State Change";
pub const DETAIL_SERVICE_ACTION: &str = "ECS Service Action";
pub const DETAIL_HOOK_STATE_CHANGE: &str = "ECS Hook State Change";
pub const DETAIL_ALARM_STATE_CHANGE: &str = "CloudWatch Alarm State Change";
pub const DETAIL_SCHEDULED: &str = "Scheduled Event";

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not an EventBridge event: {0}")]
    NotEventBridge(String),
    #[error("unsupported event: source {event_source:?}, detail-type {detail_type:?}")]
    Unsupported { event_source: String, detail_type: String },
    #[error("malformed {detail_type:?} detail at {path}: {message}")]
    MalformedDetail { detail_type: String, path: String, message: String },
}

/// `$body` for whichever event `$incoming` holds, bound to `$e` (an `EventBridgeEvent` of that
/// event's detail): the envelope fields every variant has, read once for all.
macro_rules! each_event {
    ($incoming:expr, $e:ident => $body:expr) => {
        match $incoming {
            Incoming::EcrImageAction($e) => $body,
            Incoming::TaskStateChange($e) => $body,
            Incoming::DeploymentStateChange($e) => $body,
            Incoming::HookStateChange($e) => $body,
            Incoming::ServiceAction($e) => $body,
            Incoming::AlarmStateChange($e) => $body,
            Incoming::Scheduled($e) => $body,
        }
    };
}

/// Every event any function may receive, by `detail-type`.
#[derive(Debug, Clone)]
pub enum Incoming {
    EcrImageAction(EventBridgeEvent<EcrImageAction>),
    TaskStateChange(EventBridgeEvent<TaskStateChange>),
    DeploymentStateChange(EventBridgeEvent<DeploymentStateChange>),
    HookStateChange(EventBridgeEvent<HookStateChange>),
    ServiceAction(EventBridgeEvent<ServiceAction>),
    AlarmStateChange(EventBridgeEvent<AlarmStateChange>),
    Scheduled(EventBridgeEvent<Value>),
}

impl Incoming {
    pub fn parse(value: Value) -> Result<Self, EventError> {
        let Value::Object(ref map) = value else {
            return Err(EventError::NotEventBridge(format!("expected a JSON object, got {}", json_kind(&value))));
        };
        let detail_type = map
            .get("detail-type")
            .and_then(Value::as_str)
            .ok_or_else(|| EventError::NotEventBridge("missing string field \"detail-type\"".into()))?
            .to_string();
        let source = map
            .get("source")
            .and_then(Value::as_str)
            .ok_or_else(|| EventError::NotEventBridge("missing string field \"source\"".into()))?
            .to_string();
        if !map.contains_key("detail") {
            return Err(EventError::NotEventBridge("missing field \"detail\"".into()));
        }
        match (source.as_str(), detail_type.as_str()) {
            ("aws.ecr", DETAIL_ECR_IMAGE_ACTION) => typed(value, &detail_type).map(Incoming::EcrImageAction),
            // Cross-account (or cross-Region) replication into this registry: the image arrives
            // as a push would, with action-type REPLICATE ("Amazon ECR events and EventBridge").
            ("aws.ecr", DETAIL_ECR_REPLICATION_ACTION) => typed(value, &detail_type).map(Incoming::EcrImageAction),
            ("aws.ecs", DETAIL_TASK_STATE_CHANGE) => typed(value, &detail_type).map(Incoming::TaskStateChange),
            ("aws.ecs", DETAIL_DEPLOYMENT_STATE_CHANGE) => typed(value, &detail_type).map(Incoming::DeploymentStateChange),
            ("aws.ecs", DETAIL_HOOK_STATE_CHANGE) => typed(value, &detail_type).map(Incoming::HookStateChange),
            ("aws.ecs", DETAIL_SERVICE_ACTION) => typed(value, &detail_type).map(Incoming::ServiceAction),
            ("aws.cloudwatch", DETAIL_ALARM_STATE_CHANGE) => typed(value, &detail_type).map(Incoming::AlarmStateChange),
            ("aws.events" | "aws.scheduler", DETAIL_SCHEDULED) => typed(value, &detail_type).map(Incoming::Scheduled),
            _ => Err(EventError::Unsupported { event_source: source, detail_type }),
        }
    }

    pub fn id(&self) -> Option<&str> {
        each_event!(self, e => e.id.as_deref())
    }

    /// The account the event comes from (EventBridge sets it; a member cannot name another).
    pub fn account(&self) -> Option<&str> {
        each_event!(self, e => e.account.as_deref())
    }

    /// The region the event comes from.
    pub fn region(&self) -> Option<&str> {
        each_event!(self, e => e.region.as_deref())
    }

    /// The event as JSON again (what the deployer puts on its work queue): the fields this code
    /// reads, under the names AWS gives them, so that parsing it again gives the same event.
    pub fn to_value(&self) -> Value {
        each_event!(self, e => serde_json::to_value(e)).unwrap_or(Value::Null)
    }

    pub fn detail_type(&self) -> &'static str {
        match self {
            Incoming::EcrImageAction(e) if e.detail.action_type == EcrActionType::Replicate => DETAIL_ECR_REPLICATION_ACTION,
            Incoming::EcrImageAction(_) => DETAIL_ECR_IMAGE_ACTION,
            Incoming::TaskStateChange(_) => DETAIL_TASK_STATE_CHANGE,
            Incoming::DeploymentStateChange(_) => DETAIL_DEPLOYMENT_STATE_CHANGE,
            Incoming::HookStateChange(_) => DETAIL_HOOK_STATE_CHANGE,
            Incoming::ServiceAction(_) => DETAIL_SERVICE_ACTION,
            Incoming::AlarmStateChange(_) => DETAIL_ALARM_STATE_CHANGE,
            Incoming::Scheduled(_) => DETAIL_SCHEDULED,
        }
    }
}

fn typed<T: serde::de::DeserializeOwned + Serialize>(value: Value, detail_type: &str) -> Result<EventBridgeEvent<T>, EventError> {
    serde_path_to_error::deserialize(value).map_err(|e| EventError::MalformedDetail {
        detail_type: detail_type.to_string(),
        path: e.path().to_string(),
        message: e.into_inner().to_string(),
    })
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value the code carries but never prints: task overrides hold environment values.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(transparent)]
pub struct Sensitive<T>(pub T);

impl<T> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $wire:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
        pub enum $name {
            $(#[serde(rename = $wire)] $variant,)*
            /// A value this code does not know (AWS added one): tolerated, never acted on.
            #[serde(other)]
            #[default]
            Unknown,
        }
    };
}

// ---------------------------------------------------------------- ECR

open_enum!(EcrActionType { Push = "PUSH", Delete = "DELETE", Replicate = "REPLICATE" });
open_enum!(EcrResult { Success = "SUCCESS", Failure = "FAILURE" });

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct EcrImageAction {
    #[serde(default)]
    pub result: EcrResult,
    #[serde(default)]
    pub action_type: EcrActionType,
    pub repository_name: String,
    #[serde(default)]
    pub image_digest: Option<String>,
    #[serde(default)]
    pub image_tag: Option<String>,
    #[serde(default)]
    pub manifest_media_type: Option<String>,
    #[serde(default)]
    pub artifact_media_type: Option<String>,
}

// ---------------------------------------------------------------- ECS task

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskStateChange {
    pub cluster_arn: String,
    pub task_arn: String,
    #[serde(default)]
    pub task_definition_arn: Option<String>,
    #[serde(default)]
    pub last_status: String,
    #[serde(default)]
    pub desired_status: Option<String>,
    #[serde(default)]
    pub stop_code: Option<String>,
    #[serde(default)]
    pub stopped_reason: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub started_by: Option<String>,
    #[serde(default)]
    pub launch_type: Option<String>,
    #[serde(default)]
    pub capacity_provider_name: Option<String>,
    #[serde(default)]
    pub platform_version: Option<String>,
    #[serde(default)]
    pub availability_zone: Option<String>,
    #[serde(default)]
    pub container_instance_arn: Option<String>,
    #[serde(default)]
    pub containers: Vec<TaskContainer>,
    /// Container overrides carry environment values: never logged.
    #[serde(default)]
    pub overrides: Option<Sensitive<Value>>,
    #[serde(default)]
    pub attachments: Option<Value>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub stopping_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub stopped_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub version: Option<i64>,
}

impl TaskStateChange {
    /// `service:NAME` groups belong to services, whose scheduler replaces their tasks.
    pub fn service_name(&self) -> Option<&str> {
        self.group.as_deref().and_then(|g| g.strip_prefix("service:"))
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskContainer {
    #[serde(default)]
    pub container_arn: Option<String>,
    pub name: String,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub image_digest: Option<String>,
    #[serde(default)]
    pub last_status: Option<String>,
    #[serde(default)]
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub essential: Option<bool>,
}

// ---------------------------------------------------------------- ECS deployment / service action

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStateChange {
    #[serde(default)]
    pub event_type: Option<String>,
    pub event_name: String,
    #[serde(default)]
    pub deployment_id: Option<String>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub reason: Option<String>,
}

open_enum!(DeploymentEventName {
    InProgress = "SERVICE_DEPLOYMENT_IN_PROGRESS",
    Completed = "SERVICE_DEPLOYMENT_COMPLETED",
    Failed = "SERVICE_DEPLOYMENT_FAILED",
});

impl DeploymentStateChange {
    pub fn name(&self) -> DeploymentEventName {
        serde_json::from_value(Value::String(self.event_name.clone())).unwrap_or_default()
    }
}

/// "ECS Hook State Change": a deployment lifecycle hook changed status. Shape from AWS's
/// documented example ("Amazon ECS service deployment hook state change events",
/// https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_hook_state_change_events.html,
/// and "Pause hooks for Amazon ECS service deployments",
/// https://docs.aws.amazon.com/AmazonECS/latest/developerguide/pause-lifecycle-hooks.html).
/// Everything but `eventName` is optional, and the timestamps are kept as sent (see
/// [`HookStateChange::expires_at`]): a field we cannot read must not lose the whole event.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookStateChange {
    #[serde(default)]
    pub event_type: Option<String>,
    pub event_name: String,
    /// What `ContinueServiceDeployment` needs, with the service deployment's ARN.
    #[serde(default)]
    pub hook_id: Option<String>,
    /// `PAUSE` or `AWS_LAMBDA`.
    #[serde(default)]
    pub hook_type: Option<String>,
    /// When ECS takes the hook's timeout action (RFC 3339 as sent).
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub lifecycle_stage: Option<String>,
    #[serde(default)]
    pub cluster_arn: Option<String>,
    #[serde(default)]
    pub service_arn: Option<String>,
    #[serde(default)]
    pub service_deployment_arn: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

open_enum!(HookEventName {
    InProgress = "HOOK_IN_PROGRESS",
    AwaitingAction = "HOOK_AWAITING_ACTION",
    Succeeded = "HOOK_SUCCEEDED",
    Failed = "HOOK_FAILED",
    TimedOut = "HOOK_TIMED_OUT",
});

/// The `hookType` of a hook that waits for a person (or a pipeline) to call ContinueServiceDeployment.
pub const HOOK_TYPE_PAUSE: &str = "PAUSE";

impl HookStateChange {
    pub fn name(&self) -> HookEventName {
        serde_json::from_value(Value::String(self.event_name.clone())).unwrap_or_default()
    }

    /// `expiresAt` as a time, when it reads as RFC 3339.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        rfc3339(self.expires_at.as_deref())
    }

    /// `updatedAt` as a time, when it reads as RFC 3339.
    pub fn updated_at(&self) -> Option<DateTime<Utc>> {
        rfc3339(self.updated_at.as_deref())
    }
}

fn rfc3339(s: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s?).ok().map(|t| t.with_timezone(&Utc))
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAction {
    #[serde(default)]
    pub event_type: Option<String>,
    pub event_name: String,
    #[serde(default)]
    pub cluster_arn: Option<String>,
    #[serde(default)]
    pub capacity_provider_arns: Vec<String>,
    #[serde(default)]
    pub container_instance_arns: Vec<String>,
    /// AWS documents one `reason` string (e.g. `RESOURCE:MEMORY`); see [`ServiceAction::reasons`].
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub reasons: Vec<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
}

impl ServiceAction {
    /// Every reason given, whether as `reason` or as a `reasons` list.
    pub fn all_reasons(&self) -> Vec<String> {
        self.reason.iter().chain(self.reasons.iter()).cloned().collect()
    }
}

pub const SERVICE_TASK_PLACEMENT_FAILURE: &str = "SERVICE_TASK_PLACEMENT_FAILURE";

// ---------------------------------------------------------------- CloudWatch alarm

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmStateChange {
    pub alarm_name: String,
    pub state: AlarmState,
    #[serde(default)]
    pub previous_state: Option<AlarmState>,
    #[serde(default)]
    pub configuration: AlarmConfiguration,
    /// The alarm's tags, when the alarm has tag propagation on (PutMetricAlarm's
    /// `ActionConfiguration.AlarmTagsPropagation`): "the event detail also includes an
    /// `alarmTags` object ... and an `alarmTagsStatus` field" (CloudWatch User Guide, "Alarm
    /// events and EventBridge"). Only [`AlarmStateChange::propagated_tags`] says whether they
    /// can be used.
    #[serde(default)]
    pub alarm_tags: Option<BTreeMap<String, String>>,
    /// `SUCCESS`: "The tags were retrieved and any key filter was applied" (CloudWatch User
    /// Guide, "Alarm tags in action payloads"); any other value means they are not complete.
    #[serde(default)]
    pub alarm_tags_status: Option<String>,
}

/// The one `alarmTagsStatus` that says the event's `alarmTags` are the alarm's tags.
pub const ALARM_TAGS_SUCCESS: &str = "SUCCESS";

open_enum!(AlarmStateValue { Ok = "OK", Alarm = "ALARM", InsufficientData = "INSUFFICIENT_DATA" });

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmState {
    #[serde(default)]
    pub value: AlarmStateValue,
    #[serde(default)]
    pub reason: Option<String>,
    /// JSON inside a string, as CloudWatch sends it. See [`AlarmState::reason_data`].
    #[serde(default)]
    pub reason_data: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub actions_suppressed_by: Option<String>,
}

impl AlarmState {
    /// The parsed `reasonData`; `None` when absent (composite alarms) or not valid JSON.
    pub fn reason_data(&self) -> Option<ReasonData> {
        self.reason_data.as_deref().and_then(|s| serde_json::from_str(s).ok())
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasonData {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub statistic: Option<String>,
    #[serde(default)]
    pub period: Option<i64>,
    /// Numbers as sent; non-numbers (null, "NaN") are dropped by [`ReasonData::datapoints`].
    #[serde(default)]
    pub recent_datapoints: Vec<Value>,
    #[serde(default)]
    pub threshold: Option<f64>,
    #[serde(default)]
    pub evaluated_datapoints: Vec<Value>,
}

impl ReasonData {
    pub fn datapoints(&self) -> Vec<f64> {
        self.recent_datapoints
            .iter()
            .filter_map(|v| match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.parse::<f64>().ok(),
                _ => None,
            })
            .filter(|f| f.is_finite())
            .collect()
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmConfiguration {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub metrics: Vec<AlarmMetric>,
    /// Present on composite alarms.
    #[serde(default)]
    pub alarm_rule: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmMetric {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub expression: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub metric_stat: Option<Value>,
    #[serde(default)]
    pub return_data: Option<bool>,
}

impl AlarmStateChange {
    pub fn is_composite(&self) -> bool {
        self.configuration.alarm_rule.is_some()
    }

    /// The alarm's tags as the event carries them, only when CloudWatch says they are complete
    /// (`alarmTagsStatus` SUCCESS); `None` means they must be read with ListTagsForResource.
    /// Keys starting with `aws:` are never propagated, and none of ours does.
    pub fn propagated_tags(&self) -> Option<&BTreeMap<String, String>> {
        match self.alarm_tags_status.as_deref() {
            Some(ALARM_TAGS_SUCCESS) => self.alarm_tags.as_ref(),
            _ => None,
        }
    }
}

/// Name of the resource an event is about: first `resources` entry's last path segment.
pub fn resource_name(resources: &Option<Vec<String>>) -> Option<&str> {
    resources.as_ref()?.first().map(|arn| arn.rsplit('/').next().unwrap_or(arn))
}

/// The rule a "Scheduled Event" comes from: its first resource, the rule's ARN (empty when it
/// names none). Each function tells its own schedule by a word in that ARN (template.yaml names
/// the rules `<stack>-deploy-reconcile`, `<stack>-scale-reevaluate`, `<stack>-recovery-summary`).
pub fn schedule_rule(ev: &EventBridgeEvent<Value>) -> String {
    ev.resources.as_ref().and_then(|r| r.first()).cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wrong_shapes_are_classified_not_panics() {
        for (input, want) in [
            (json!([]), "not an EventBridge event"),
            (json!({"source": "aws.ecr", "detail": {}}), "detail-type"),
            (json!({"detail-type": "ECR Image Action", "source": "aws.ecr"}), "missing field \"detail\""),
            (json!({"detail-type": "Nope", "source": "aws.ecr", "detail": {}}), "unsupported"),
            (json!({"detail-type": "ECR Image Action", "source": "aws.ecr", "detail": {"repository-name": 7}}), "malformed"),
            (json!({"detail-type": "ECS Task State Change", "source": "aws.ecs", "detail": "x"}), "malformed"),
        ] {
            let err = Incoming::parse(input.clone()).unwrap_err().to_string();
            assert!(err.contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn unknown_enum_values_and_fields_are_tolerated() {
        let ev = Incoming::parse(json!({
            "detail-type": "ECR Image Action", "source": "aws.ecr", "id": "1",
            "detail": {"result": "PARTIAL", "action-type": "RETAG", "repository-name": "auth", "brand-new": 1}
        }))
        .unwrap();
        let Incoming::EcrImageAction(e) = ev else { panic!("wrong variant") };
        assert_eq!(e.detail.result, EcrResult::Unknown);
        assert_eq!(e.detail.action_type, EcrActionType::Unknown);
    }

    /// AWS's documented "hook awaiting action" example (ecs_hook_state_change_events.html), plus
    /// a field and an event name AWS may add later: both tolerated.
    #[test]
    fn hook_state_change_parses_the_documented_example_and_tolerates_new_values() {
        let doc = json!({
            "version": "0", "id": "3329f79b-3dca-07f8-b1c2-5fe99f0b5e87", "detail-type": "ECS Hook State Change",
            "source": "aws.ecs", "account": "123456789012", "time": "2026-03-05T15:54:41Z", "region": "us-west-2",
            "resources": ["arn:aws:ecs:us-west-2:123456789012:service-deployment/my-cluster/my-service/0EYSiB0qap8xf0N76FsbE"],
            "detail": {
                "eventType": "INFO", "eventName": "HOOK_AWAITING_ACTION",
                "hookId": "ecs-pause-e7tK9G_WRJqNF_EOMjztDXfKenlJuEUVjsNStf4WLKw", "hookType": "PAUSE",
                "expiresAt": "2026-03-05T16:04:41Z", "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT",
                "clusterArn": "arn:aws:ecs:us-west-2:123456789012:cluster/my-cluster",
                "serviceArn": "arn:aws:ecs:us-west-2:123456789012:service/my-cluster/my-service",
                "serviceDeploymentArn": "arn:aws:ecs:us-west-2:123456789012:service-deployment/my-cluster/my-service/0EYSiB0qap8xf0N76FsbE",
                "updatedAt": "2026-03-05T15:54:41.618059641Z"
            }
        });
        let Incoming::HookStateChange(e) = Incoming::parse(doc.clone()).unwrap() else { panic!("wrong variant") };
        assert_eq!(e.detail.name(), HookEventName::AwaitingAction);
        assert_eq!(e.detail.hook_type.as_deref(), Some(HOOK_TYPE_PAUSE));
        assert_eq!(e.detail.expires_at().map(|t| t.to_rfc3339()), Some("2026-03-05T16:04:41+00:00".to_string()));
        assert!(e.detail.updated_at().is_some());

        let mut later = doc;
        later["detail"]["eventName"] = json!("HOOK_SKIPPED");
        later["detail"]["expiresAt"] = json!("tomorrow");
        later["detail"]["timeoutAction"] = json!("ROLLBACK");
        let Incoming::HookStateChange(e) = Incoming::parse(later).unwrap() else { panic!("wrong variant") };
        assert_eq!(e.detail.name(), HookEventName::Unknown);
        assert_eq!(e.detail.expires_at(), None, "an unreadable time is no time, not a failed event");
    }

    #[test]
    fn reason_data_drops_non_numbers() {
        let state = AlarmState {
            reason_data: Some(r#"{"recentDatapoints":[85.5,null,"NaN",90],"threshold":70.0}"#.into()),
            ..Default::default()
        };
        let rd = state.reason_data().unwrap();
        assert_eq!(rd.datapoints(), vec![85.5, 90.0]);
        assert_eq!(rd.threshold, Some(70.0));
    }

    /// CloudWatch User Guide, "Alarm tags in action payloads": only `alarmTagsStatus` SUCCESS
    /// means the event's `alarmTags` are the alarm's tags.
    #[test]
    fn alarm_tags_are_used_only_when_cloudwatch_says_success() {
        let detail = |extra: Value| -> AlarmStateChange {
            let mut d = json!({"alarmName": "a", "state": {"value": "ALARM"}});
            d.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            serde_json::from_value(d).unwrap()
        };
        let tags = json!({"autopilot:scale": "stage01/random"});
        let ok = detail(json!({"alarmTags": tags, "alarmTagsStatus": "SUCCESS"}));
        assert_eq!(ok.propagated_tags().and_then(|t| t.get("autopilot:scale")).map(String::as_str), Some("stage01/random"));
        let empty = detail(json!({"alarmTags": {}, "alarmTagsStatus": "SUCCESS"}));
        assert_eq!(empty.propagated_tags().map(|t| t.len()), Some(0), "SUCCESS with no tags: the alarm has none (after any key filter)");
        for extra in [json!({"alarmTags": tags, "alarmTagsStatus": "FAILURE"}), json!({"alarmTags": tags}), json!({}), json!({"tags": tags})] {
            assert!(detail(extra.clone()).propagated_tags().is_none(), "{extra}");
        }
    }

    #[test]
    fn overrides_never_print() {
        let t: TaskStateChange = serde_json::from_value(json!({
            "clusterArn": "c", "taskArn": "t",
            "overrides": {"containerOverrides": [{"environment": [{"name": "K", "value": "hunter2"}]}]}
        }))
        .unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));
    }
}
