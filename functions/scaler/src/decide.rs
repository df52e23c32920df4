//! What the scaler decides about events, alarms and services, from plain observed data: no AWS
//! call, no clock (callers pass `now` to `steps::decide`), no SDK type. The adapter (`aws.rs`)
//! observes, the handlers (`alarm.rs`, `reevaluate.rs`, `cluster.rs`) act on what is decided
//! here; `steps.rs` and `capacity.rs` hold the arithmetic.

use autopilot::aws_lambda_events::eventbridge::EventBridgeEvent;
use autopilot::config::cluster_name;
use autopilot::events::{AlarmStateChange, AlarmStateValue, EventError, ServiceAction, SERVICE_TASK_PLACEMENT_FAILURE};
use autopilot::tags::{self, ScaleTarget, Step, Steps, TagError, Tags};
use autopilot::Incoming;

use crate::outcome::Outcome;
use crate::steps;

/// What needs no AWS call: alarms in INSUFFICIENT_DATA, other schedules and service actions,
/// other event types. `None`: the event needs the handlers.
pub fn screen(incoming: &Incoming) -> Option<Outcome> {
    match incoming {
        // "The adjustments can continue for additional alarm breaches until the alarm state
        // returns to OK" (Application Auto Scaling User Guide, "How step scaling works"): OK ends
        // a scaling episode and never scales, whatever the steps say. Scale-in is a low alarm's
        // ALARM.
        Incoming::AlarmStateChange(e) if e.detail.state.value == AlarmStateValue::Ok => Some(Outcome::ignored_alarm(&e.detail.alarm_name, OK_ENDS_EPISODE)),
        Incoming::AlarmStateChange(e) if e.detail.state.value != AlarmStateValue::Alarm => {
            Some(Outcome::ignored_alarm(&e.detail.alarm_name, "state is neither ALARM nor OK"))
        }
        Incoming::AlarmStateChange(_) => None,
        Incoming::Scheduled(e) => {
            let rule = autopilot::events::schedule_rule(e);
            (!rule.contains("reevaluate")).then(|| Outcome::ignored(format!("schedule {rule} is not a re-evaluation schedule")))
        }
        Incoming::ServiceAction(e) if e.detail.event_name != SERVICE_TASK_PLACEMENT_FAILURE => {
            Some(Outcome::ignored(format!("service action {} is not handled", e.detail.event_name)))
        }
        Incoming::ServiceAction(_) => None,
        other => Some(not_handled(other)),
    }
}

/// Why an OK transition changes nothing.
pub const OK_ENDS_EPISODE: &str = "OK ends the scaling episode: Application Auto Scaling never scales on OK";

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
    /// The alarm's tags when the event carries them complete (`alarmTagsStatus` SUCCESS).
    pub tags: Option<Tags>,
    /// Which side of its threshold the alarm watches; `None` until known (an event does not
    /// say: its ComparisonOperator comes from DescribeAlarms when the steps need it).
    pub direction: Option<Direction>,
}

/// Which side of its threshold an alarm watches, from its ComparisonOperator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// GreaterThan…: a high alarm (scale-out, usually).
    Above,
    /// LessThan…: a low alarm (scale-in, usually).
    Below,
    /// Both sides (an anomaly band's LessThanLowerOrGreaterThanUpperThreshold), or no metric
    /// at all (composite alarms).
    Either,
}

impl Direction {
    /// CloudWatch's ComparisonOperator values (PutMetricAlarm).
    pub fn from_comparison(op: &str) -> Self {
        match op {
            "GreaterThanOrEqualToThreshold" | "GreaterThanThreshold" | "GreaterThanUpperThreshold" => Direction::Above,
            "LessThanThreshold" | "LessThanOrEqualToThreshold" | "LessThanLowerThreshold" => Direction::Below,
            _ => Direction::Either,
        }
    }
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
            tags: d.propagated_tags().cloned(),
            direction: d.is_composite().then_some(Direction::Either),
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
    /// No datapoints to measure the breach (composite alarms, some metric-math alarms, a metric
    /// that reports nothing now) and steps other than the bare shortcut.
    NoDatapoints,
    /// Datapoints but no threshold.
    NoThreshold,
    /// The breach lies in no step's interval.
    NoMatch { breach: f64 },
}

/// The steps as they apply to an alarm that watches `direction`: the bare shortcut (`+2`) is
/// one step from the threshold outwards, [0, +inf) on a high alarm and (-inf, 0] on a low one
/// (StepAdjustment: "The upper and lower bound can't be null in the same step adjustment");
/// on an alarm of either or no direction it stays open. Other steps are as written.
pub fn steps_for(steps: &Steps, direction: Direction) -> Steps {
    let Some(bare) = steps.bare() else { return steps.clone() };
    let step = match direction {
        Direction::Above => Step { lower: Some(0.0), ..bare },
        Direction::Below => Step { upper: Some(0.0), ..bare },
        Direction::Either => bare,
    };
    Steps(vec![step])
}

/// Whether the alarm's direction must be read before a step can be chosen: only the bare
/// shortcut depends on it, and only when there is a breach to place.
pub fn needs_direction(view: &AlarmView, steps: &Steps) -> bool {
    view.direction.is_none() && steps.bare().is_some() && !view.datapoints.is_empty()
}

/// The step the alarm's state selects (see `steps.rs` for AWS's interval rules). Without
/// datapoints only the bare shortcut applies: the alarm being in ALARM is then the signal.
pub fn alarm_step(view: &AlarmView, steps: &Steps) -> Result<Step, NoStep> {
    if view.datapoints.is_empty() {
        return steps.bare().ok_or(NoStep::NoDatapoints);
    }
    let breach = view.threshold.and_then(|t| steps::breach(&view.datapoints, t)).ok_or(NoStep::NoThreshold)?;
    steps::select_step(&steps_for(steps, view.direction.unwrap_or(Direction::Either)), breach).ok_or(NoStep::NoMatch { breach })
}

/// The window GetMetricData reads to re-evaluate an alarm now, as epoch seconds: its
/// evaluation periods back from `now`, and one period more, so that `periods` whole or partial
/// periods come back whatever the alignment (`recent` keeps the newest `periods`).
pub fn evaluation_window(now: i64, period: i64, periods: i64) -> (i64, i64) {
    let (period, periods) = (period.max(1), periods.max(1));
    (now - period * (periods + 1), now)
}

/// The newest `periods` values of a series listed newest first (GetMetricData's
/// TimestampDescending); non-finite values are dropped.
pub fn recent(newest_first: &[f64], periods: usize) -> Vec<f64> {
    newest_first.iter().copied().filter(|v| v.is_finite()).take(periods.max(1)).collect()
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

/// What GetTaskProtection says of one task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskProtection {
    pub task_arn: String,
    pub enabled: bool,
    /// expirationDate, epoch seconds ("The epoch time when protection for the task will
    /// expire"); `None` when ECS gives none.
    pub expires_at: Option<i64>,
}

/// Tasks protected from scale-in at `now`: `protectionEnabled` and not yet expired. ECS does not
/// stop them when the service scales in ("Protect your Amazon ECS tasks from being terminated by
/// scale-in events",
/// https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection.html:
/// protected tasks are not terminated "by scale-in events from either service auto scaling or
/// deployments"; protection lasts 1 minute to 48 hours and then clears itself), so they are a
/// floor under any desiredCount the scaler sets.
pub fn protected_tasks(tasks: &[TaskProtection], now: i64) -> u32 {
    tasks.iter().filter(|t| t.enabled && t.expires_at.is_none_or(|at| at > now)).count() as u32
}

/// A rollout is in progress (scale-in waits) when ECS says so: its PRIMARY deployment's
/// rolloutState is IN_PROGRESS ("When a service deployment is started, it begins in an
/// IN_PROGRESS state. When the service reaches a steady state, the deployment transitions to a
/// COMPLETED state", ECS API reference, Deployment), which covers tasks that run but are not yet
/// healthy behind the load balancer; or more than one deployment is live (PRIMARY plus the
/// ACTIVE ones whose tasks it is replacing). Running counts say nothing about it: a deployment
/// whose tasks all run may still be in progress.
pub fn rollout_in_progress(service: &ObservedService) -> bool {
    let deployments = &service.deployments;
    let live = deployments.iter().filter(|d| matches!(d.status.as_deref(), Some("PRIMARY") | Some("ACTIVE"))).count();
    live > 1 || deployments.iter().any(|d| d.status.as_deref() == Some("PRIMARY") && d.rollout_state.as_deref() == Some("IN_PROGRESS"))
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
    use autopilot::tags::Adjustment;
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

    /// Only enabled, unexpired protection counts (GetTaskProtection: protectionEnabled,
    /// expirationDate; task-scale-in-protection.html: protection clears itself when it expires).
    #[test]
    fn protected_task_count() {
        let t = |enabled, expires_at: Option<i64>| TaskProtection { task_arn: "arn:task".into(), enabled, expires_at };
        // (tasks, protected at now = 1000)
        for (tasks, want) in [
            (vec![], 0),
            (vec![t(true, Some(1001)), t(true, None), t(false, None)], 2),
            (vec![t(true, Some(1000)), t(true, Some(999))], 0), // expired: ECS may stop them
            (vec![t(false, Some(5000))], 0),
        ] {
            assert_eq!(protected_tasks(&tasks, 1000), want, "{tasks:?}");
        }
    }

    fn dep(status: &str, rollout_state: &str) -> ObservedDeployment {
        ObservedDeployment { status: Some(status.into()), rollout_state: Some(rollout_state.into()) }
    }

    /// ECS's own signals (API reference, Deployment: status and rolloutState): the PRIMARY
    /// deployment IN_PROGRESS, or more than one live deployment. Counts play no part.
    #[test]
    fn rollout_detection() {
        let svc = |deployments: Vec<ObservedDeployment>, desired_count: i32, running_count: i32| ObservedService {
            deployments,
            desired_count,
            running_count,
            ..Default::default()
        };
        // (deployments, desired, running, in progress)
        let cases = [
            // Tasks all running, not yet healthy behind the load balancer (or baking): ECS has
            // not called the deployment COMPLETED, so it is in progress.
            (vec![dep("PRIMARY", "IN_PROGRESS")], 4, 4, true),
            (vec![dep("PRIMARY", "IN_PROGRESS")], 4, 0, true),
            (vec![dep("PRIMARY", "IN_PROGRESS"), dep("ACTIVE", "COMPLETED")], 4, 4, true),
            (vec![dep("PRIMARY", "COMPLETED"), dep("ACTIVE", "COMPLETED")], 4, 4, true),
            // A steady service: a scale-out in flight (running below desired) is no rollout.
            (vec![dep("PRIMARY", "COMPLETED")], 4, 2, false),
            (vec![dep("PRIMARY", "COMPLETED"), dep("INACTIVE", "COMPLETED")], 4, 4, false),
            // A failed deployment (circuit breaker) launches nothing more; its rollback is a new
            // PRIMARY IN_PROGRESS.
            (vec![dep("PRIMARY", "FAILED")], 4, 4, false),
            (vec![dep("ACTIVE", "IN_PROGRESS")], 4, 4, false),
            (vec![], 4, 0, false),
        ];
        for (deployments, desired, running, want) in cases {
            let label = format!("{deployments:?} {desired}/{running}");
            assert_eq!(rollout_in_progress(&svc(deployments, desired, running)), want, "{label}");
        }
    }

    fn view(state: AlarmStateValue, datapoints: &[f64], threshold: Option<f64>) -> AlarmView {
        AlarmView { name: "a".into(), arn: None, state, timestamp: "1".into(), datapoints: datapoints.to_vec(), threshold, tags: None, direction: Some(Direction::Above) }
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

    /// The bare shortcut read in the alarm's direction: `+2` on a high alarm is [0, +inf), `-1`
    /// on a low alarm (LessThan…) is (-inf, 0]; an alarm of either direction (anomaly band,
    /// composite) keeps it open; without datapoints (composite alarms) it applies as is.
    #[test]
    fn a_bare_step_follows_the_alarms_direction() {
        let steps = |s: &str| Steps::parse(s).unwrap();
        let with = |direction: Option<Direction>, datapoints: &[f64]| AlarmView { direction, ..view(AlarmStateValue::Alarm, datapoints, Some(70.0)) };
        // (steps, direction, datapoints, the step's interval or why none)
        type Case<'a> = (&'a str, Option<Direction>, &'a [f64], Result<(Option<f64>, Option<f64>), NoStep>);
        let cases: [Case; 10] = [
            ("+2", Some(Direction::Above), &[90.0], Ok((Some(0.0), None))),
            ("+2", Some(Direction::Above), &[70.0], Ok((Some(0.0), None))),
            ("+2", Some(Direction::Above), &[60.0], Err(NoStep::NoMatch { breach: -10.0 })),
            ("-1", Some(Direction::Below), &[60.0], Ok((None, Some(0.0)))),
            ("-1", Some(Direction::Below), &[70.0], Ok((None, Some(0.0)))),
            ("-1", Some(Direction::Below), &[80.0], Err(NoStep::NoMatch { breach: 10.0 })),
            ("+2", Some(Direction::Either), &[60.0], Ok((None, None))),
            ("+2", None, &[60.0], Ok((None, None))),
            ("+2", Some(Direction::Above), &[], Ok((None, None))),
            ("0::+2", Some(Direction::Below), &[90.0], Ok((Some(0.0), None))),
        ];
        for (s, direction, datapoints, want) in cases {
            let got = alarm_step(&with(direction, datapoints), &steps(s)).map(|st| (st.lower, st.upper));
            assert_eq!(got, want, "{s} {direction:?} {datapoints:?}");
        }
        let comparisons = [
            ("GreaterThanThreshold", Direction::Above),
            ("GreaterThanOrEqualToThreshold", Direction::Above),
            ("GreaterThanUpperThreshold", Direction::Above),
            ("LessThanThreshold", Direction::Below),
            ("LessThanOrEqualToThreshold", Direction::Below),
            ("LessThanLowerThreshold", Direction::Below),
            ("LessThanLowerOrGreaterThanUpperThreshold", Direction::Either),
            ("SomethingNew", Direction::Either),
        ];
        for (op, want) in comparisons {
            assert_eq!(Direction::from_comparison(op), want, "{op}");
        }
        // Only a bare step with a breach to place needs the direction.
        assert!(needs_direction(&with(None, &[90.0]), &steps("+2")));
        assert!(!needs_direction(&with(None, &[]), &steps("+2")));
        assert!(!needs_direction(&with(None, &[90.0]), &steps("0::+2")));
        assert!(!needs_direction(&with(Some(Direction::Below), &[90.0]), &steps("+2")));
    }

    #[test]
    fn evaluation_windows_and_recent_values() {
        // (now, period, periods) -> (start, end)
        assert_eq!(evaluation_window(10_000, 60, 2), (10_000 - 180, 10_000));
        assert_eq!(evaluation_window(10_000, 300, 1), (10_000 - 600, 10_000));
        assert_eq!(evaluation_window(10_000, 0, 0), (10_000 - 2, 10_000), "never an empty window");
        assert_eq!(recent(&[95.0, 90.0, 50.0], 2), vec![95.0, 90.0], "the newest periods only");
        assert_eq!(recent(&[f64::NAN, 90.0], 2), vec![90.0]);
        assert_eq!(recent(&[], 3), Vec::<f64>::new());
        assert_eq!(recent(&[1.0, 2.0], 0), vec![1.0]);
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
            (alarm_event("OK"), Some(json!({"action": "ignored", "alarm": "a", "reason": OK_ENDS_EPISODE}))),
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
