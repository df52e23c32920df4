//! What the scaler decides about events, alarms and services, from plain observed data: no AWS
//! call, no clock (callers pass `now` to `steps::decide`), no SDK type. The adapter (`aws.rs`)
//! observes, the handlers (`alarm.rs`, `reevaluate.rs`, `cluster.rs`) act on what is decided
//! here; `steps.rs` and `capacity.rs` hold the arithmetic.

use autopilot::aws_lambda_events::eventbridge::EventBridgeEvent;
use autopilot::config::cluster_name;
use autopilot::events::{AlarmStateChange, AlarmStateValue, EventError, ServiceAction, SERVICE_TASK_PLACEMENT_FAILURE};
use autopilot::tags::{self, Adjustment, ScaleTarget, Step, Steps, TagError, Tags};
use autopilot::Incoming;

use crate::outcome::Outcome;
use crate::steps;

/// What needs no AWS call: alarms in INSUFFICIENT_DATA, other schedules and service actions,
/// other event types. `None`: the event needs the handlers.
pub fn screen(incoming: &Incoming) -> Option<Outcome> {
    match incoming {
        Incoming::AlarmStateChange(e) if !matches!(e.detail.state.value, AlarmStateValue::Alarm | AlarmStateValue::Ok) => {
            Some(Outcome::ignored_alarm(&e.detail.alarm_name, "state is neither ALARM nor OK"))
        }
        Incoming::AlarmStateChange(_) => None,
        Incoming::Scheduled(e) => {
            let rule = e.resources.as_ref().and_then(|r| r.first()).cloned().unwrap_or_default();
            (!rule.contains("reevaluate")).then(|| Outcome::ignored(format!("schedule {rule} is not a re-evaluation schedule")))
        }
        Incoming::ServiceAction(e) if e.detail.event_name != SERVICE_TASK_PLACEMENT_FAILURE => {
            Some(Outcome::ignored(format!("service action {} is not handled", e.detail.event_name)))
        }
        Incoming::ServiceAction(_) => None,
        other => Some(not_handled(other)),
    }
}

/// The answer to an event type the scaler does not handle.
pub fn not_handled(incoming: &Incoming) -> Outcome {
    Outcome::ignored(format!("{} is not handled by scaler", incoming.detail_type()))
}

/// One alarm as seen by the scaler, from a state-change event or from DescribeAlarms.
#[derive(Debug, Clone)]
pub struct AlarmView {
    pub name: String,
    pub arn: Option<String>,
    pub state: AlarmStateValue,
    /// The state's timestamp: with the name, the identity of one transition.
    pub timestamp: String,
    pub datapoints: Vec<f64>,
    pub threshold: Option<f64>,
    pub tags: Option<Tags>,
}

impl AlarmView {
    /// The alarm of a state-change event. Without `resources` its ARN is built from the event's
    /// account and region (else `own_region`), to read its tags.
    pub fn from_event(e: &EventBridgeEvent<AlarmStateChange>, own_region: &str) -> Self {
        let d = &e.detail;
        let arn = e.resources.as_ref().and_then(|r| r.first()).cloned().or_else(|| {
            let (region, account) = (e.region.clone().unwrap_or_else(|| own_region.to_string()), e.account.clone()?);
            Some(format!("arn:aws:cloudwatch:{region}:{account}:alarm:{}", d.alarm_name))
        });
        let rd = d.state.reason_data();
        AlarmView {
            name: d.alarm_name.clone(),
            arn,
            state: d.state.value.clone(),
            timestamp: transition_id(&d.state.timestamp.clone().unwrap_or_else(|| e.time.map(|t| t.to_rfc3339()).unwrap_or_default())),
            datapoints: rd.as_ref().map(|r| r.datapoints()).unwrap_or_default(),
            threshold: rd.as_ref().and_then(|r| r.threshold),
            tags: d.tags.clone(),
        }
    }

    /// State-table key of this transition (`scale-transition`): replays never scale twice.
    pub fn transition_key(&self) -> String {
        format!("{}#{}", self.name, self.timestamp)
    }
}

/// One alarm transition's identity: its state timestamp in epoch milliseconds, the same whether
/// it comes from an event (`2025-11-25T14:35:12.748+0000`) or from DescribeAlarms.
pub fn transition_id(timestamp: &str) -> String {
    let parsed = chrono::DateTime::parse_from_rfc3339(timestamp).or_else(|_| chrono::DateTime::parse_from_str(timestamp, "%Y-%m-%dT%H:%M:%S%.f%z"));
    parsed.map(|t| t.timestamp_millis().to_string()).unwrap_or_else(|_| timestamp.to_string())
}

/// The scaling configuration an alarm's tags give.
#[derive(Debug, Clone)]
pub struct AlarmTags {
    pub target: ScaleTarget,
    pub steps: Steps,
    pub cooldown: u64,
}

/// `None` without `autopilot:scale`; else the configuration, or the first tag that is wrong.
pub fn parse_alarm_tags(tags: &Tags) -> Option<Result<AlarmTags, TagError>> {
    let scale = tags.get(tags::TAG_SCALE)?;
    Some((|| {
        let target = ScaleTarget::parse(scale)?;
        let steps = match tags.get(tags::TAG_STEPS) {
            Some(s) => Steps::parse(s)?,
            None => {
                return Err(TagError::new(tags::TAG_STEPS, "", "step adjustments, e.g. 0:15:+1 15::+2 (the tag is missing)"))
            }
        };
        let cooldown = tags::parse_cooldown(tags.get(tags::TAG_COOLDOWN).map(String::as_str))?;
        Ok(AlarmTags { target, steps, cooldown })
    })())
}

/// Why an alarm's state selects no step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NoStep {
    /// No datapoints in reasonData (composite alarms, some metric-math alarms) and more than a
    /// single open step: the breach cannot be measured.
    NoDatapoints,
    /// Datapoints but no threshold.
    NoThreshold,
    /// The breach lies in no step's interval.
    NoMatch { breach: f64 },
}

/// The step the alarm's state selects (see `steps.rs` for AWS's interval rules).
pub fn alarm_step(view: &AlarmView, steps: &Steps) -> Result<Step, NoStep> {
    if view.datapoints.is_empty() {
        return steps::open_step(steps).ok_or(NoStep::NoDatapoints);
    }
    let breach = view.threshold.and_then(|t| steps::breach(&view.datapoints, t)).ok_or(NoStep::NoThreshold)?;
    steps::select_step(steps, breach).ok_or(NoStep::NoMatch { breach })
}

/// Application Auto Scaling never raises capacity on an OK transition (an M-of-N alarm can be OK
/// with a mean above its threshold); only a step that lowers desiredCount acts on OK.
pub fn ok_keeps_capacity(state: &AlarmStateValue, current: u32, adjustment: Adjustment) -> bool {
    *state == AlarmStateValue::Ok && steps::raw_target(current, adjustment) >= current as i64
}

/// What DescribeServices says of a service, as far as scaling goes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservedService {
    pub task_definition: String,
    pub desired_count: i32,
    pub running_count: i32,
    pub pending_count: i32,
    pub tags: Tags,
    pub deployments: Vec<ObservedDeployment>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservedDeployment {
    /// PRIMARY, ACTIVE or INACTIVE.
    pub status: Option<String>,
    /// COMPLETED, FAILED or IN_PROGRESS.
    pub rollout_state: Option<String>,
}

impl ObservedService {
    /// desiredCount as the step arithmetic counts it.
    pub fn current(&self) -> u32 {
        self.desired_count.max(0) as u32
    }

    /// Tasks the service still owes (desired − running − pending), never negative.
    pub fn owed(&self) -> i64 {
        (self.desired_count - self.running_count - self.pending_count).max(0) as i64
    }

    /// Tasks to find room for after a scale-out `from` → `to`: what the service now owes, and at
    /// least the tasks the scale-out added.
    pub fn to_place_after_scale_out(&self, from: u32, to: u32) -> i64 {
        let to_place = to as i64 - self.running_count as i64 - self.pending_count as i64;
        to_place.max((to - from) as i64)
    }

    /// Tasks to find room for after a placement failure: the event says at least one task could
    /// not be placed.
    pub fn to_place_after_placement_failure(&self) -> i64 {
        (self.desired_count as i64 - self.running_count as i64 - self.pending_count as i64).max(1)
    }
}

/// Rollout in progress (scale-in waits): more than one deployment, or the PRIMARY deployment
/// IN_PROGRESS while the service runs fewer tasks than it wants. moto keeps one PRIMARY
/// IN_PROGRESS deployment forever, so rolloutState alone cannot be the signal.
pub fn rollout_in_progress(service: &ObservedService) -> bool {
    let deployments = &service.deployments;
    let live = deployments.iter().filter(|d| matches!(d.status.as_deref(), Some("PRIMARY") | Some("ACTIVE"))).count();
    if live > 1 {
        return true;
    }
    deployments.iter().any(|d| {
        d.status.as_deref() == Some("PRIMARY") && d.rollout_state.as_deref() == Some("IN_PROGRESS") && service.running_count < service.desired_count
    })
}

/// The service a SERVICE_TASK_PLACEMENT_FAILURE names, and why its tasks were not placed.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementFailure {
    pub cluster: String,
    pub service: String,
    pub reasons: Vec<String>,
}

pub fn placement_failure(e: &EventBridgeEvent<ServiceAction>) -> Result<PlacementFailure, EventError> {
    let service_arn = e.resources.as_ref().and_then(|r| r.first()).cloned().unwrap_or_default();
    let Some((arn_cluster, service)) = service_arn_parts(&service_arn) else {
        return Err(EventError::MalformedDetail {
            detail_type: "ECS Service Action".into(),
            path: "resources[0]".into(),
            message: format!("{service_arn:?} is not an ECS service ARN"),
        });
    };
    let cluster = e.detail.cluster_arn.as_deref().map(|c| cluster_name(c).to_string()).unwrap_or(arn_cluster);
    Ok(PlacementFailure { cluster, service, reasons: e.detail.all_reasons() })
}

fn service_arn_parts(arn: &str) -> Option<(String, String)> {
    // arn:aws:ecs:REGION:ACCOUNT:service/CLUSTER/NAME (the old form has no cluster)
    let rest = arn.split_once(":service/")?.1;
    match rest.split_once('/') {
        Some((c, s)) => Some((c.to_string(), s.to_string())),
        None => Some(("default".into(), rest.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn t(pairs: &[(&str, &str)]) -> Tags {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn alarm_tags_parse_or_name_the_tag() {
        assert!(parse_alarm_tags(&t(&[("team", "x")])).is_none());
        let ok = parse_alarm_tags(&t(&[("autopilot:scale", "stage01/random"), ("autopilot:steps", "0:15:+1,15::+2")])).unwrap().unwrap();
        assert_eq!((ok.target.service.as_str(), ok.cooldown), ("random", 300));
        let e = parse_alarm_tags(&t(&[("autopilot:scale", "stage01/random")])).unwrap().unwrap_err();
        assert_eq!(e.tag, tags::TAG_STEPS);
        let e = parse_alarm_tags(&t(&[("autopilot:scale", "stage01/random"), ("autopilot:steps", "+1"), ("autopilot:cooldown", "soon")])).unwrap().unwrap_err();
        assert_eq!(e.tag, tags::TAG_COOLDOWN);
    }

    fn dep(status: &str, rollout_state: &str) -> ObservedDeployment {
        ObservedDeployment { status: Some(status.into()), rollout_state: Some(rollout_state.into()) }
    }

    #[test]
    fn rollout_detection() {
        let svc = |deployments: Vec<ObservedDeployment>, desired_count: i32, running_count: i32| ObservedService {
            deployments,
            desired_count,
            running_count,
            ..Default::default()
        };
        // moto's eternal PRIMARY IN_PROGRESS with the service running what it wants: no rollout.
        assert!(!rollout_in_progress(&svc(vec![dep("PRIMARY", "IN_PROGRESS")], 4, 4)));
        assert!(rollout_in_progress(&svc(vec![dep("PRIMARY", "IN_PROGRESS")], 4, 0)));
        assert!(rollout_in_progress(&svc(vec![dep("PRIMARY", "IN_PROGRESS"), dep("ACTIVE", "COMPLETED")], 4, 4)));
        assert!(!rollout_in_progress(&svc(vec![dep("PRIMARY", "COMPLETED")], 4, 2)));
        assert!(!rollout_in_progress(&svc(vec![dep("PRIMARY", "COMPLETED"), dep("INACTIVE", "COMPLETED")], 4, 4)), "an INACTIVE deployment is over");
        assert!(!rollout_in_progress(&svc(vec![], 4, 0)));
    }

    fn view(state: AlarmStateValue, datapoints: &[f64], threshold: Option<f64>) -> AlarmView {
        AlarmView { name: "a".into(), arn: None, state, timestamp: "1".into(), datapoints: datapoints.to_vec(), threshold, tags: None }
    }

    #[test]
    fn the_step_an_alarm_selects() {
        let steps = |s: &str| Steps::parse(s).unwrap();
        let adj = |r: Result<Step, NoStep>| r.map(|s| s.adjustment);
        let alarm = AlarmStateValue::Alarm;
        // (datapoints, threshold, steps, step or why none)
        let cases: [(&[f64], Option<f64>, &str, Result<Adjustment, NoStep>); 7] = [
            (&[85.0, 90.0], Some(70.0), "0:15:+1,15::+2", Ok(Adjustment::Change(2))),
            (&[75.0, 80.0], Some(70.0), "0:15:+1,15::+2", Ok(Adjustment::Change(1))),
            (&[60.0], Some(70.0), "0:15:+1,15::+2", Err(NoStep::NoMatch { breach: -10.0 })),
            (&[], Some(70.0), "+2", Ok(Adjustment::Change(2))),
            (&[], None, "0::+2", Err(NoStep::NoDatapoints)),
            (&[80.0], None, "+2", Err(NoStep::NoThreshold)),
            (&[10.0], Some(30.0), ":0:-1", Ok(Adjustment::Change(-1))),
        ];
        for (datapoints, threshold, s, want) in cases {
            assert_eq!(adj(alarm_step(&view(alarm.clone(), datapoints, threshold), &steps(s))), want, "{datapoints:?} {threshold:?} {s}");
        }
    }

    #[test]
    fn ok_lowers_or_does_nothing() {
        use AlarmStateValue::{Alarm, Ok};
        // (state, current, adjustment, keeps capacity)
        for (state, current, a, keeps) in [
            (Ok, 4, Adjustment::Change(2), true),
            (Ok, 4, Adjustment::Change(0), true),
            (Ok, 4, Adjustment::Change(-1), false),
            (Ok, 4, Adjustment::Exact(2), false),
            (Ok, 4, Adjustment::Exact(4), true),
            (Alarm, 4, Adjustment::Change(2), false),
        ] {
            assert_eq!(ok_keeps_capacity(&state, current, a), keeps, "{state:?} {current} {a}");
        }
    }

    #[test]
    fn tasks_to_place() {
        let svc = ObservedService { desired_count: 6, running_count: 3, pending_count: 1, ..Default::default() };
        assert_eq!((svc.current(), svc.owed(), svc.to_place_after_placement_failure()), (6, 2, 2));
        assert_eq!(svc.to_place_after_scale_out(4, 6), 2);
        assert_eq!(svc.to_place_after_scale_out(2, 6), 4, "at least what the scale-out added");
        let settled = ObservedService { desired_count: 4, running_count: 4, ..Default::default() };
        assert_eq!((settled.owed(), settled.to_place_after_placement_failure()), (0, 1));
        let odd = ObservedService { desired_count: -1, running_count: 2, ..Default::default() };
        assert_eq!((odd.current(), odd.owed()), (0, 0));
    }

    fn event(detail_type: &str, source: &str, resources: Value, detail: Value) -> Incoming {
        Incoming::parse(json!({
            "id": "e1", "detail-type": detail_type, "source": source, "account": "123456789012", "region": "us-east-1",
            "time": "2025-11-25T14:35:12Z", "resources": resources, "detail": detail,
        }))
        .unwrap()
    }

    fn alarm_event(state: &str) -> Incoming {
        event("CloudWatch Alarm State Change", "aws.cloudwatch", json!([]), json!({"alarmName": "a", "state": {"value": state}}))
    }

    fn service_action(name: &str) -> Incoming {
        let detail = json!({"eventType": "WARN", "eventName": name, "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/stage01"});
        event("ECS Service Action", "aws.ecs", json!(["arn:aws:ecs:us-east-1:123456789012:service/stage01/random"]), detail)
    }

    #[test]
    fn screening() {
        let schedule = |rule: &str| event("Scheduled Event", "aws.events", json!([rule]), json!({}));
        let ecr = event("ECR Image Action", "aws.ecr", json!([]), json!({"action-type": "PUSH", "result": "SUCCESS", "repository-name": "r"}));
        // (event, settled answer)
        let cases = [
            (alarm_event("ALARM"), None),
            (alarm_event("OK"), None),
            (alarm_event("INSUFFICIENT_DATA"), Some(json!({"action": "ignored", "alarm": "a", "reason": "state is neither ALARM nor OK"}))),
            (schedule("arn:aws:events:us-east-1:1:rule/autopilot-reevaluate"), None),
            (schedule("arn:aws:events:us-east-1:1:rule/reconcile"), Some(json!({"action": "ignored", "reason": "schedule arn:aws:events:us-east-1:1:rule/reconcile is not a re-evaluation schedule"}))),
            (service_action(SERVICE_TASK_PLACEMENT_FAILURE), None),
            (service_action("SERVICE_STEADY_STATE"), Some(json!({"action": "ignored", "reason": "service action SERVICE_STEADY_STATE is not handled"}))),
            (ecr, Some(json!({"action": "ignored", "reason": "ECR Image Action is not handled by scaler"}))),
        ];
        for (incoming, want) in cases {
            assert_eq!(screen(&incoming).map(|o| o.to_json()), want, "{}", incoming.detail_type());
        }
    }

    #[test]
    fn alarm_views_from_events() {
        let Incoming::AlarmStateChange(mut e) = alarm_event("ALARM") else { panic!() };
        e.detail.state.timestamp = Some("2025-11-25T14:35:12.748+0000".into());
        e.detail.state.reason_data = Some(r#"{"recentDatapoints":[85.0,"90",null],"threshold":70.0}"#.into());
        let v = AlarmView::from_event(&e, "eu-west-1");
        assert_eq!(v.arn.as_deref(), Some("arn:aws:cloudwatch:us-east-1:123456789012:alarm:a"), "built from the event's account and region");
        assert_eq!((v.timestamp.as_str(), v.datapoints.as_slice(), v.threshold), ("1764081312748", &[85.0, 90.0][..], Some(70.0)));
        assert_eq!(v.transition_key(), "a#1764081312748");
        e.region = None;
        assert_eq!(AlarmView::from_event(&e, "eu-west-1").arn.as_deref(), Some("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:a"));
        e.account = None;
        assert_eq!(AlarmView::from_event(&e, "eu-west-1").arn, None);
        e.resources = Some(vec!["arn:aws:cloudwatch:us-east-1:1:alarm:from-resources".into()]);
        assert_eq!(AlarmView::from_event(&e, "eu-west-1").arn.as_deref(), Some("arn:aws:cloudwatch:us-east-1:1:alarm:from-resources"));
        e.detail.state.timestamp = None;
        assert_eq!(AlarmView::from_event(&e, "eu-west-1").timestamp, transition_id("2025-11-25T14:35:12+00:00"), "the event's time");
    }

    #[test]
    fn placement_failures_name_their_service() {
        let Incoming::ServiceAction(mut e) = service_action(SERVICE_TASK_PLACEMENT_FAILURE) else { panic!() };
        e.detail.reason = Some("RESOURCE:CPU".into());
        let p = placement_failure(&e).unwrap();
        assert_eq!((p.cluster.as_str(), p.service.as_str(), p.reasons), ("stage01", "random", vec!["RESOURCE:CPU".to_string()]));
        e.detail.cluster_arn = None;
        e.resources = Some(vec!["arn:aws:ecs:us-east-1:1:service/random".into()]);
        assert_eq!(placement_failure(&e).unwrap().cluster, "default", "the old ARN form has no cluster");
        e.resources = Some(vec!["nope".into()]);
        assert!(matches!(placement_failure(&e), Err(EventError::MalformedDetail { .. })));
        e.resources = None;
        assert!(placement_failure(&e).is_err());
    }

    #[test]
    fn service_arns_and_transitions() {
        assert_eq!(service_arn_parts("arn:aws:ecs:us-east-1:1:service/stage01/random"), Some(("stage01".into(), "random".into())));
        assert_eq!(service_arn_parts("arn:aws:ecs:us-east-1:1:service/random"), Some(("default".into(), "random".into())));
        assert_eq!(service_arn_parts("nope"), None);
        assert_eq!(transition_id("2025-11-25T14:35:12.748+0000"), transition_id("2025-11-25T14:35:12.748Z"));
        assert_eq!(transition_id("2025-11-25T14:35:12.748+0000"), "1764081312748");
        assert_eq!(transition_id("t1"), "t1");
    }
}
