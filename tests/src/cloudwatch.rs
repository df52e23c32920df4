//! CloudWatch alarm transitions as EventBridge delivers them to the scaler. One copy, so the
//! scaler, reliability, security and bad-input tests build the same events.

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, MetricDatum, StandardUnit, StateValue, Statistic, Tag};
use serde_json::{json, Value};

use crate::{for_world, sample_event, World};

/// When events/cloudwatch-alarm-ok-to-alarm.json says random-cpu-high went to ALARM.
pub const SAMPLE_ALARM_TIME: &str = "2025-11-25T14:35:12.748+0000";

/// The `reasonData` CloudWatch writes for a metric alarm's transition (a JSON document in a
/// string): the datapoints the scaler weighs against the threshold.
pub fn alarm_reason_data(datapoints: &[f64], threshold: f64) -> String {
    json!({"version": "1.0", "statistic": "Average", "period": 60, "recentDatapoints": datapoints, "threshold": threshold}).to_string()
}

/// The state change of metric alarm `alarm` to `state` at `timestamp` (the transition's
/// identity: the same timestamp is the same transition), shaped like
/// events/cloudwatch-alarm-ok-to-alarm.json, in the world's account with a fresh id. `tags`
/// puts the alarm's tags in the event as CloudWatch does for an alarm with tag propagation on
/// (`alarmTags`, `alarmTagsStatus` SUCCESS: events/cloudwatch-alarm-ok-to-alarm-tags.json);
/// without them the scaler reads them with ListTagsForResource.
pub fn alarm_event(w: &World, alarm: &str, state: &str, datapoints: &[f64], threshold: f64, timestamp: &str, tags: Option<Value>) -> Value {
    let mut e = sample_event("cloudwatch-alarm-ok-to-alarm.json");
    e["resources"] = json!([format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{alarm}")]);
    e["detail"]["alarmName"] = json!(alarm);
    e["detail"]["state"]["value"] = json!(state);
    e["detail"]["state"]["timestamp"] = json!(timestamp);
    e["detail"]["state"]["reasonData"] = json!(alarm_reason_data(datapoints, threshold));
    if let Some(t) = tags {
        e["detail"]["alarmTags"] = t;
        e["detail"]["alarmTagsStatus"] = json!("SUCCESS");
    }
    for_world(e, w)
}

/// A metric alarm on a service's CPU (AWS/ECS CPUUtilization, Average, 60 s, 2 periods),
/// compared with `comparison` (e.g. `LessThanThreshold` for a scale-in alarm) and tagged `tags`.
pub async fn put_cpu_alarm(w: &World, alarm: &str, service: &str, comparison: ComparisonOperator, threshold: f64, tags: &[(&str, &str)]) {
    let cw = aws_sdk_cloudwatch::Client::new(&w.sdk);
    let dim = |n: &str, v: &str| Dimension::builder().name(n).value(v).build();
    let mut req = cw
        .put_metric_alarm()
        .alarm_name(alarm)
        .namespace("AWS/ECS")
        .metric_name("CPUUtilization")
        .dimensions(dim("ClusterName", "stage01"))
        .dimensions(dim("ServiceName", service))
        .statistic(Statistic::Average)
        .period(60)
        .evaluation_periods(2)
        .threshold(threshold)
        .comparison_operator(comparison);
    for (k, v) in tags {
        req = req.tags(Tag::builder().key(*k).value(*v).build());
    }
    req.send().await.expect("put_metric_alarm");
}

/// Put a metric alarm in ALARM, with the reason data CloudWatch would have written then.
pub async fn set_alarm(w: &World, alarm: &str, datapoints: &[f64], threshold: f64) {
    let cw = aws_sdk_cloudwatch::Client::new(&w.sdk);
    cw.set_alarm_state()
        .alarm_name(alarm)
        .state_value(StateValue::Alarm)
        .state_reason("test")
        .state_reason_data(alarm_reason_data(datapoints, threshold))
        .send()
        .await
        .expect("set_alarm_state");
}

/// What ECS publishes every minute for a service: AWS/ECS CPUUtilization by ClusterName and
/// ServiceName, here `values` one minute apart, the last half a minute ago. In AWS, ECS writes
/// this namespace (PutMetricData: "you should not specify a namespace that begins with AWS/");
/// in the test bed the test plays ECS's part.
pub async fn publish_cpu(w: &World, service: &str, values: &[f64]) {
    let cw = aws_sdk_cloudwatch::Client::new(&w.sdk);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let dim = |n: &str, v: &str| Dimension::builder().name(n).value(v).build();
    let mut req = cw.put_metric_data().namespace("AWS/ECS");
    for (i, v) in values.iter().enumerate() {
        let age = 30 + 60 * (values.len() - 1 - i) as i64;
        req = req.metric_data(
            MetricDatum::builder()
                .metric_name("CPUUtilization")
                .dimensions(dim("ClusterName", "stage01"))
                .dimensions(dim("ServiceName", service))
                .unit(StandardUnit::Percent)
                .value(*v)
                .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from_secs(now - age))
                .build(),
        );
    }
    req.send().await.expect("put_metric_data");
}

/// The sample transition: random-cpu-high goes to ALARM on 85 and 90 over 70 (random 4 → 6 by
/// the seed world's steps), at [`SAMPLE_ALARM_TIME`].
pub fn random_cpu_high(w: &World) -> Value {
    alarm_event(w, "random-cpu-high", "ALARM", &[85.0, 90.0], 70.0, SAMPLE_ALARM_TIME, None)
}
