//! Which notification the scaler sends with which text, and the keys that debounce them: pure,
//! so each text is pinned by a test here. Texts are built from names, counts, the alarm's numbers
//! and the tag at fault only: no environment value can reach them.

use autopilot::notify::{region_of, service_thread, thread_id};
use autopilot::tags::{Adjustment, Bounds, TagError};
use autopilot::Notification;

use crate::capacity::{EcsCapacityKind, GroupChange};
use crate::decide::AlarmView;
use crate::outcome::Capacity;
use crate::steps::{Held, Refusal};

pub fn fmt_num(x: f64) -> String {
    let r = (x * 100.0).round() / 100.0;
    format!("{r}")
}

/// Describe what the alarm measured, for notifications.
pub fn why(view: &AlarmView, step: Option<Adjustment>) -> String {
    let mean = if view.datapoints.is_empty() { None } else { Some(view.datapoints.iter().sum::<f64>() / view.datapoints.len() as f64) };
    let mut s = format!("alarm {}", view.name);
    if let (Some(m), Some(t)) = (mean, view.threshold) {
        let op = if m >= t { ">" } else { "<" };
        let n = view.datapoints.len();
        s += &format!(": {} {op} {} for {n} datapoint{}", fmt_num(m), fmt_num(t), if n == 1 { "" } else { "s" });
    }
    if let Some(a) = step {
        s += &format!("; step {a}");
    }
    s
}

/// A malformed tag on an alarm: once per alarm and value (the key holds the value, so a new
/// mistake is told again and the same one is not repeated by every re-evaluation).
/// `arn` (when known) points the message at the alarm and names the commands' region.
pub fn invalid_alarm_tag(alarm: &str, arn: Option<&str>, e: &TagError) -> (String, Notification) {
    let mut n = Notification::new("scale.invalid-tag", format!("alarm {alarm}: tag {} is not valid", e.tag), e.to_string())
        .field("alarm", alarm)
        .field("tag", e.tag)
        .thread(alarm_thread(alarm))
        .keywords([alarm.to_string(), e.tag.to_string()]);
    if let Some(arn) = arn {
        // The alarm's tags as CloudWatch has them, and the command that sets the tag again.
        let region = region_of(arn).map(|r| format!(" --region {r}")).unwrap_or_default();
        n = n
            .related([arn.to_string()])
            .next_step(format!("aws cloudwatch list-tags-for-resource{region} --resource-arn {arn}"))
            .next_step(format!("aws cloudwatch tag-resource{region} --resource-arn {arn} --tags Key={},Value=<a valid value>", e.tag));
    }
    (format!("scale-tag#{alarm}#{}#{}", e.tag, e.value), n)
}

/// A malformed `autopilot:min`/`autopilot:max` on the service: once per service and tag.
pub fn invalid_service_tag(cluster: &str, service: &str, e: &TagError) -> (String, Notification) {
    let n = Notification::new("scale.invalid-tag", format!("{service}: tag {} is not valid", e.tag), e.to_string())
        .field("service", service)
        .thread(service_thread(cluster, service))
        .keywords([cluster.to_string(), service.to_string(), e.tag.to_string()])
        .next_step(describe_service_tags(cluster, service));
    (format!("scale-tag#{cluster}/{service}#{}", e.tag), n)
}

// Threads (`metadata.threadId` of the custom-notification schema,
// https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html): one alarm
// transition (name and state timestamp, the identity the refusal keys use) is one thread, its
// scaling decisions and refusals in it; an alarm's tag problems one thread; a service's tag
// problems the thread the deployer uses too (`service_thread`); a service's placement failures
// one; a group's shrinking one.

/// The thread of an alarm's tag problems.
pub fn alarm_thread(alarm: &str) -> String {
    thread_id("alarm", alarm)
}

/// The thread of one transition of an alarm: what it made the scaler do or refuse.
pub fn transition_thread(view: &AlarmView) -> String {
    thread_id("scaling", &format!("{}#{}", view.name, view.timestamp))
}

/// `aws ecs describe-services --include TAGS`: the service's `autopilot:min`/`max` as ECS has
/// them (the scaler's alarms name a cluster and service, not their ARNs).
pub fn describe_service_tags(cluster: &str, service: &str) -> String {
    format!("aws ecs describe-services --cluster {cluster} --services {service} --include TAGS")
}

/// What a person can run about the capacity a message reports: the group's max to raise when it
/// is at its max, the group to look for when it does not exist.
pub fn capacity_steps(capacity: Option<&Capacity>) -> Vec<String> {
    match capacity {
        Some(Capacity::Checked(c)) => match c.change() {
            GroupChange::AtMax { wanted, .. } => vec![format!("aws autoscaling update-auto-scaling-group --auto-scaling-group-name {} --max-size {wanted}", c.group)],
            _ => Vec::new(),
        },
        Some(Capacity::GroupNotFound { group, .. }) => vec![format!("aws autoscaling describe-auto-scaling-groups --auto-scaling-group-names {group}")],
        _ => Vec::new(),
    }
}

/// One alarm's decision about one service: what its refusal or its change says.
pub struct Scaling<'a> {
    pub view: &'a AlarmView,
    pub cluster: &'a str,
    pub service: &'a str,
    pub step: Adjustment,
}

impl Scaling<'_> {
    /// A refused change: once per alarm transition and refusal (the key), however often the
    /// schedule re-evaluates.
    pub fn refused(&self, from: u32, wanted: i64, refusal: Refusal, detail: &str) -> (String, Notification) {
        let (view, cluster, service) = (self.view, self.cluster, self.service);
        let subject = format!("{service} stays at {from}: {detail} ({})", why(view, Some(self.step)));
        let n = Notification::new("scale.refused", &subject, format!("{service} in {cluster} wanted {from} -> {wanted}; {detail}."))
            .field("cluster", cluster)
            .field("service", service)
            .field("alarm", view.name.as_str())
            .field("desired", from)
            .field("wanted", wanted)
            .field("refusal", refusal.as_str())
            .thread(transition_thread(view))
            .keywords([cluster.to_string(), service.to_string(), view.name.clone(), refusal.as_str().to_string()])
            .related(view.arn.clone());
        // At a bound: the tag that sets it is the person's to change.
        let n = match refusal {
            Refusal::AtMax | Refusal::AtMin => n.next_step(describe_service_tags(cluster, service)),
            _ => n,
        };
        (format!("scale-refused#{}#{}#{}", view.name, view.timestamp, refusal.as_str()), n)
    }

    /// desiredCount `from` → `to` (`held`: short of the step, at a bound or at the tasks
    /// protected from scale-in), with what the cluster's group did about it (`capacity`).
    pub fn scaled(&self, from: u32, to: u32, bounds: Bounds, held: Option<Held>, capacity: Option<&Capacity>) -> Notification {
        let (cluster, service, why) = (self.cluster, self.service, why(self.view, Some(self.step)));
        let bound = match held {
            None => String::new(),
            Some(Held::AtMax) => format!(" (held at max {})", bounds.max),
            Some(Held::AtMin) => format!(" (held at min {})", bounds.min),
            Some(Held::Protected(n)) => format!(" (held at {n}: {n} task(s) are protected from scale-in, ECS would not stop them)"),
        };
        let subject = format!("{service} {from} -> {to} ({why})");
        let extra = capacity_text(capacity);
        let mut n = Notification::new(if to > from { "scale.out" } else { "scale.in" }, &subject, format!("{service} in {cluster}: desiredCount {from} → {to}{bound}.{extra}"))
            .field("cluster", cluster)
            .field("service", service)
            .field("alarm", self.view.name.as_str())
            .field("from", from)
            .field("to", to)
            .field("step", self.step.to_string())
            .thread(transition_thread(self.view))
            .keywords([cluster.to_string(), service.to_string(), self.view.name.clone()])
            .related(self.view.arn.clone());
        for step in capacity_steps(capacity) {
            n = n.next_step(step);
        }
        n.title = format!("{service} {from} → {to} ({why})");
        n
    }
}

/// The sentence a capacity check adds to a notification ("" when there is nothing to say).
pub fn capacity_text(capacity: Option<&Capacity>) -> String {
    match capacity {
        None => String::new(),
        Some(Capacity::Unchecked { error }) => format!(" Cluster capacity could not be checked: {error}."),
        Some(Capacity::GroupNotFound { group, .. }) => format!(" Auto Scaling group {group} (autopilot:asg) does not exist."),
        Some(Capacity::EcsManaged { provider, kind }) => format!(" {}", ecs_managed_text(provider, *kind)),
        Some(Capacity::Checked(c)) => match c.change() {
            GroupChange::None => String::new(),
            GroupChange::Grow { from, to, wanted, capped } => {
                let cap = if capped { format!("; it wanted {wanted} but its max is {}", c.max) } else { String::new() };
                format!(" {} {from} → {to}: {} task(s) need room, the instances fit {}{cap}.", c.group, c.to_place, c.growth.fit_now)
            }
            GroupChange::AtMax { desired, max, wanted } => format!(
                " {} is at its max {max} (desired {desired}, {wanted} needed): {} task(s) will not be placed.",
                c.group,
                (c.to_place - c.growth.fit_now).max(0)
            ),
        },
    }
}

/// Whose the capacity is when ECS's: the sentence scale-outs and placement failures carry.
fn ecs_managed_text(provider: &str, kind: EcsCapacityKind) -> String {
    match kind {
        EcsCapacityKind::ManagedInstances => {
            format!("ECS manages this cluster's capacity (capacity provider {provider}, ECS Managed Instances): there is no Auto Scaling group for the scaler to grow.")
        }
        EcsCapacityKind::ManagedScaling => {
            format!("ECS manages this cluster's capacity (capacity provider {provider}, managed scaling of the Auto Scaling group): the scaler leaves the group to ECS.")
        }
    }
}

/// A placement failure the group grew for, or cannot grow for, or that ECS's own capacity must
/// answer; `None` when the instances have room (not a capacity problem) or the group does not
/// exist.
pub fn placement_failure(cluster: &str, service: &str, reasons: &[String], capacity: &Capacity) -> Option<Notification> {
    if let Capacity::EcsManaged { provider, kind } = capacity {
        let subject = format!("{service} tasks cannot be placed in {cluster}: ECS manages the capacity ({provider})");
        let text = ecs_managed_text(provider, *kind);
        let n = Notification::new("capacity.ecs-managed", subject, format!("{service} in {cluster}: task placement failed ({}). {text}", reasons.join("; ")))
            .field("cluster", cluster)
            .field("service", service)
            .field("capacityProvider", provider.as_str())
            .thread(placement_thread(cluster, service))
            .keywords([cluster.to_string(), service.to_string(), provider.clone()]);
        return Some(n);
    }
    let Capacity::Checked(c) = capacity else { return None };
    let (event_type, subject) = match c.change() {
        GroupChange::None => return None,
        GroupChange::Grow { from, to, .. } => ("capacity.grow", format!("{} {from} -> {to} for {service} (tasks could not be placed)", c.group)),
        GroupChange::AtMax { max, .. } => ("capacity.at-max", format!("{} at max {max}: {service} tasks cannot be placed", c.group)),
    };
    let text = capacity_text(Some(capacity));
    let n = Notification::new(event_type, subject, format!("{service} in {cluster}: task placement failed ({}).{text}", reasons.join("; ")))
        .field("cluster", cluster)
        .field("service", service)
        .field("group", c.group.as_str())
        .thread(placement_thread(cluster, service))
        .keywords([cluster.to_string(), service.to_string(), c.group.clone()]);
    let n = capacity_steps(Some(capacity)).into_iter().fold(n, Notification::next_step);
    Some(n)
}

/// The thread of a service's placement failures.
pub fn placement_thread(cluster: &str, service: &str) -> String {
    thread_id("placement", &format!("{cluster}/{service}"))
}

/// An idle instance drained and terminated, the group's desired capacity `desired` − 1.
pub fn shrunk(cluster: &str, group: &str, ec2_id: &str, desired: i64) -> Notification {
    Notification::new(
        "capacity.shrink",
        format!("{group} {desired} -> {}: idle instance {ec2_id} removed", desired - 1),
        format!("Cluster {cluster}: container instance {ec2_id} ran no task; drained and terminated, {group} desired {desired} → {}.", desired - 1),
    )
    .field("cluster", cluster)
    .field("group", group)
    .field("instance", ec2_id)
    .thread(thread_id("group", &format!("{cluster}/{group}")))
    .keywords([cluster, group, ec2_id])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::Growth;
    use crate::outcome::{CapacityCheck, GroupAction};
    use autopilot::events::AlarmStateValue;
    use serde_json::json;

    fn view(datapoints: &[f64], threshold: Option<f64>) -> AlarmView {
        AlarmView {
            name: "random-cpu-high".into(),
            arn: None,
            state: AlarmStateValue::Alarm,
            timestamp: "1764081312748".into(),
            datapoints: datapoints.to_vec(),
            threshold,
            tags: None,
            direction: None,
        }
    }

    fn check(to_place: i64, fit_now: i64, missing: i64, desired: i64, max: i64) -> CapacityCheck {
        let mut c = CapacityCheck {
            group: "stage01-asg".into(),
            to_place,
            growth: Growth { fit_now, per_new_instance: 8, launching: 0, missing },
            action: GroupAction::None,
            desired,
            max,
            to: None,
        };
        (c.action, c.to) = match c.change() {
            GroupChange::None => (GroupAction::None, None),
            GroupChange::Grow { to, .. } => (GroupAction::Grown, Some(to)),
            GroupChange::AtMax { .. } => (GroupAction::AtMax, None),
        };
        c
    }

    #[test]
    fn numbers_and_what_the_alarm_measured() {
        assert_eq!(fmt_num(87.5), "87.5");
        assert_eq!(fmt_num(70.0), "70");
        assert_eq!(fmt_num(1.0 / 3.0), "0.33");
        // (datapoints, threshold, step, text)
        for (datapoints, threshold, step, want) in [
            (&[85.0, 90.0][..], Some(70.0), Some(Adjustment::Change(2)), "alarm random-cpu-high: 87.5 > 70 for 2 datapoints; step +2"),
            (&[10.0][..], Some(30.0), Some(Adjustment::Change(-1)), "alarm random-cpu-high: 10 < 30 for 1 datapoint; step -1"),
            (&[][..], None, Some(Adjustment::Change(1)), "alarm random-cpu-high; step +1"),
            (&[70.0][..], Some(70.0), None, "alarm random-cpu-high: 70 > 70 for 1 datapoint"),
        ] {
            assert_eq!(why(&view(datapoints, threshold), step), want);
        }
    }

    #[test]
    fn invalid_tags() {
        let e = autopilot::tags::Steps::parse("lots").unwrap_err();
        let (key, n) = invalid_alarm_tag("random-cpu-bad", None, &e);
        assert_eq!((key.as_str(), n.event_type.as_str(), n.subject.as_str()), ("scale-tag#random-cpu-bad#autopilot:steps#lots", "scale.invalid-tag", "alarm random-cpu-bad: tag autopilot:steps is not valid"));
        assert_eq!((n.description.clone(), json!(n.fields)), (e.to_string(), json!({"alarm": "random-cpu-bad", "tag": "autopilot:steps"})));
        // Another wrong value of the same tag is another notification.
        let other = autopilot::tags::Steps::parse("0:10:+1").unwrap_err();
        assert_ne!(invalid_alarm_tag("random-cpu-bad", None, &other).0, key);
        // With the alarm's ARN: the commands that show and set its tags, in its region.
        let arn = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:random-cpu-bad";
        let b = invalid_alarm_tag("random-cpu-bad", Some(arn), &e).1.chatbot_body(false);
        assert_eq!(
            b["content"]["nextSteps"],
            json!([
                format!("aws cloudwatch list-tags-for-resource --region eu-west-1 --resource-arn {arn}"),
                format!("aws cloudwatch tag-resource --region eu-west-1 --resource-arn {arn} --tags Key=autopilot:steps,Value=<a valid value>")
            ])
        );
        assert_eq!((b["metadata"]["relatedResources"].clone(), b["metadata"]["threadId"].clone()), (json!([arn]), json!(alarm_thread("random-cpu-bad"))));
        let e = Bounds::parse(Some("many"), None).unwrap_err();
        let (key, n) = invalid_service_tag("stage01", "random", &e);
        assert_eq!((key.as_str(), n.subject.as_str()), ("scale-tag#stage01/random#autopilot:min", "random: tag autopilot:min is not valid"));
        assert_eq!(json!(n.fields), json!({"service": "random"}));
        assert_eq!(n.next_steps, ["aws ecs describe-services --cluster stage01 --services random --include TAGS"]);
        assert_eq!(n.thread_id, Some(service_thread("stage01", "random")), "the thread the deployer's tag problems of the service use");
    }

    /// One alarm transition, one thread: its refusals and its scaling (custom notifications'
    /// threadId, https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html);
    /// the next transition another; values of additionalContext are strings.
    #[test]
    fn one_alarm_transition_is_one_thread() {
        let high = AlarmView { arn: Some("arn:aws:cloudwatch:us-east-1:123456789012:alarm:random-cpu-high".into()), ..view(&[85.0, 90.0], Some(70.0)) };
        let say = Scaling { view: &high, cluster: "stage01", service: "random", step: Adjustment::Change(2) };
        let (_, refused) = say.refused(12, 14, Refusal::AtMax, "at max 12 (autopilot:max)");
        let scaled = say.scaled(4, 6, Bounds { min: 2, max: 12 }, None, Some(&Capacity::Checked(check(3, 1, 1, 6, 6))));
        let (r, s) = (refused.chatbot_body(false), scaled.chatbot_body(false));
        assert_eq!(r["metadata"]["threadId"], s["metadata"]["threadId"]);
        assert_eq!(r["metadata"]["threadId"], transition_thread(&high).as_str());
        let next = AlarmView { timestamp: "1764081999999".into(), ..high.clone() };
        assert_ne!(transition_thread(&next), transition_thread(&high));
        assert_eq!(r["content"]["nextSteps"], json!(["aws ecs describe-services --cluster stage01 --services random --include TAGS"]));
        assert_eq!(s["content"]["nextSteps"], json!(["aws autoscaling update-auto-scaling-group --auto-scaling-group-name stage01-asg --max-size 7"]), "the group at its max: raise it");
        assert_eq!(s["metadata"]["relatedResources"], json!(["arn:aws:cloudwatch:us-east-1:123456789012:alarm:random-cpu-high"]));
        assert_eq!((s["metadata"]["additionalContext"]["from"].as_str(), s["metadata"]["additionalContext"]["to"].as_str()), (Some("4"), Some("6")));
        let kw = s["content"]["keywords"].as_array().unwrap();
        for k in ["scale", "out", "stage01", "random", "random-cpu-high"] {
            assert!(kw.contains(&json!(k)), "{k}: {kw:?}");
        }
    }

    #[test]
    fn refusals() {
        let low = AlarmView { name: "canary-low".into(), ..view(&[10.0], Some(30.0)) };
        let say = Scaling { view: &low, cluster: "stage01", service: "canary", step: Adjustment::Change(-1) };
        let (key, n) = say.refused(4, 3, Refusal::RolloutInProgress, "a rollout is in progress");
        assert_eq!(key, "scale-refused#canary-low#1764081312748#rollout-in-progress");
        assert_eq!((n.event_type.as_str(), n.subject.as_str()), ("scale.refused", "canary stays at 4: a rollout is in progress (alarm canary-low: 10 < 30 for 1 datapoint; step -1)"));
        assert_eq!(n.title, n.subject);
        assert_eq!(n.description, "canary in stage01 wanted 4 -> 3; a rollout is in progress.");
        assert_eq!(json!(n.fields), json!({"cluster": "stage01", "service": "canary", "alarm": "canary-low", "desired": 4, "wanted": 3, "refusal": "rollout-in-progress"}));
        let (key, n) = say.refused(12, 14, Refusal::AtMax, "at max 12 (autopilot:max)");
        assert_eq!((key.as_str(), n.subject.as_str()), ("scale-refused#canary-low#1764081312748#at-max", "canary stays at 12: at max 12 (autopilot:max) (alarm canary-low: 10 < 30 for 1 datapoint; step -1)"));
    }

    #[test]
    fn scaling_texts() {
        let high = view(&[85.0, 90.0], Some(70.0));
        let say = Scaling { view: &high, cluster: "stage01", service: "random", step: Adjustment::Change(2) };
        let bounds = Bounds { min: 2, max: 12 };
        let grown = Capacity::Checked(check(2, 0, 1, 2, 6));
        let n = say.scaled(4, 6, bounds, None, Some(&grown));
        assert_eq!((n.event_type.as_str(), n.subject.as_str()), ("scale.out", "random 4 -> 6 (alarm random-cpu-high: 87.5 > 70 for 2 datapoints; step +2)"));
        assert_eq!(n.title, "random 4 → 6 (alarm random-cpu-high: 87.5 > 70 for 2 datapoints; step +2)");
        assert_eq!(n.description, "random in stage01: desiredCount 4 → 6. stage01-asg 2 → 3: 2 task(s) need room, the instances fit 0.");
        assert_eq!(json!(n.fields), json!({"cluster": "stage01", "service": "random", "alarm": "random-cpu-high", "from": 4, "to": 6, "step": "+2"}));
        // (from, to, held, capacity, event type, description)
        let unchecked = Capacity::Unchecked { error: "ecs DescribeClusters: boom".into() };
        let mi = Capacity::EcsManaged { provider: "stage01-mi".into(), kind: EcsCapacityKind::ManagedInstances };
        for (from, to, held, capacity, event_type, description) in [
            (11, 12, Some(Held::AtMax), None, "scale.out", "random in stage01: desiredCount 11 → 12 (held at max 12)."),
            (3, 2, Some(Held::AtMin), None, "scale.in", "random in stage01: desiredCount 3 → 2 (held at min 2)."),
            (6, 5, None, None, "scale.in", "random in stage01: desiredCount 6 → 5."),
            (8, 6, Some(Held::Protected(6)), None, "scale.in", "random in stage01: desiredCount 8 → 6 (held at 6: 6 task(s) are protected from scale-in, ECS would not stop them)."),
            (4, 6, None, Some(&unchecked), "scale.out", "random in stage01: desiredCount 4 → 6. Cluster capacity could not be checked: ecs DescribeClusters: boom."),
            (4, 6, None, Some(&mi), "scale.out", "random in stage01: desiredCount 4 → 6. ECS manages this cluster's capacity (capacity provider stage01-mi, ECS Managed Instances): there is no Auto Scaling group for the scaler to grow."),
        ] {
            let n = say.scaled(from, to, bounds, held, capacity);
            assert_eq!((n.event_type.as_str(), n.description.as_str()), (event_type, description));
        }
    }

    #[test]
    fn capacity_texts() {
        // (capacity, text)
        for (capacity, want) in [
            (None, ""),
            (Some(Capacity::Checked(check(1, 7, 0, 2, 6))), ""),
            (Some(Capacity::Checked(check(2, 0, 1, 2, 6))), " stage01-asg 2 → 3: 2 task(s) need room, the instances fit 0."),
            (Some(Capacity::Checked(check(20, 1, 3, 5, 6))), " stage01-asg 5 → 6: 20 task(s) need room, the instances fit 1; it wanted 8 but its max is 6."),
            (Some(Capacity::Checked(check(3, 1, 1, 6, 6))), " stage01-asg is at its max 6 (desired 6, 7 needed): 2 task(s) will not be placed."),
            (Some(Capacity::group_not_found("gone".into())), " Auto Scaling group gone (autopilot:asg) does not exist."),
            (Some(Capacity::Unchecked { error: "boom".into() }), " Cluster capacity could not be checked: boom."),
        ] {
            assert_eq!(capacity_text(capacity.as_ref()), want, "{capacity:?}");
        }
    }

    #[test]
    fn placement_failure_texts() {
        let reasons = ["RESOURCE:CPU".to_string(), "RESOURCE:MEMORY".to_string()];
        let n = placement_failure("stage01", "random", &reasons, &Capacity::Checked(check(2, 0, 1, 2, 6))).unwrap();
        assert_eq!((n.event_type.as_str(), n.subject.as_str()), ("capacity.grow", "stage01-asg 2 -> 3 for random (tasks could not be placed)"));
        assert_eq!(n.description, "random in stage01: task placement failed (RESOURCE:CPU; RESOURCE:MEMORY). stage01-asg 2 → 3: 2 task(s) need room, the instances fit 0.");
        assert_eq!(json!(n.fields), json!({"cluster": "stage01", "service": "random", "group": "stage01-asg"}));
        let n = placement_failure("stage01", "random", &reasons[..1], &Capacity::Checked(check(1, 0, 1, 3, 3))).unwrap();
        assert_eq!((n.event_type.as_str(), n.subject.as_str()), ("capacity.at-max", "stage01-asg at max 3: random tasks cannot be placed"));
        assert_eq!(n.description, "random in stage01: task placement failed (RESOURCE:CPU). stage01-asg is at its max 3 (desired 3, 4 needed): 1 task(s) will not be placed.");
        assert_eq!(placement_failure("stage01", "random", &reasons, &Capacity::Checked(check(1, 7, 0, 2, 6))), None, "room on the instances");
        assert_eq!(placement_failure("stage01", "random", &reasons, &Capacity::group_not_found("gone".into())), None);
        // ECS owns the capacity: said so, with the provider, never a group of ours.
        let mi = Capacity::EcsManaged { provider: "stage01-mi".into(), kind: EcsCapacityKind::ManagedInstances };
        let n = placement_failure("stage01", "random", &reasons, &mi).unwrap();
        assert_eq!((n.event_type.as_str(), n.subject.as_str()), ("capacity.ecs-managed", "random tasks cannot be placed in stage01: ECS manages the capacity (stage01-mi)"));
        assert_eq!(n.description, "random in stage01: task placement failed (RESOURCE:CPU; RESOURCE:MEMORY). ECS manages this cluster's capacity (capacity provider stage01-mi, ECS Managed Instances): there is no Auto Scaling group for the scaler to grow.");
        assert_eq!(json!(n.fields), json!({"cluster": "stage01", "service": "random", "capacityProvider": "stage01-mi"}));
        let scaling = Capacity::EcsManaged { provider: "stage01-cp".into(), kind: EcsCapacityKind::ManagedScaling };
        let n = placement_failure("stage01", "random", &reasons[..1], &scaling).unwrap();
        assert_eq!(n.description, "random in stage01: task placement failed (RESOURCE:CPU). ECS manages this cluster's capacity (capacity provider stage01-cp, managed scaling of the Auto Scaling group): the scaler leaves the group to ECS.");
    }

    #[test]
    fn shrink_text() {
        let n = shrunk("stage01", "stage01-asg", "i-0abc", 2);
        assert_eq!((n.event_type.as_str(), n.subject.as_str()), ("capacity.shrink", "stage01-asg 2 -> 1: idle instance i-0abc removed"));
        assert_eq!(n.description, "Cluster stage01: container instance i-0abc ran no task; drained and terminated, stage01-asg desired 2 → 1.");
        assert_eq!(json!(n.fields), json!({"cluster": "stage01", "group": "stage01-asg", "instance": "i-0abc"}));
    }
}
