//! CloudWatch alarm transitions as EventBridge delivers them to the scaler. One copy, so the
//! scaler, reliability, security and bad-input tests build the same events.

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
/// puts the alarm's tags in the event; without them the scaler reads them with
/// ListTagsForResource.
pub fn alarm_event(w: &World, alarm: &str, state: &str, datapoints: &[f64], threshold: f64, timestamp: &str, tags: Option<Value>) -> Value {
    let mut e = sample_event("cloudwatch-alarm-ok-to-alarm.json");
    e["resources"] = json!([format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{alarm}")]);
    e["detail"]["alarmName"] = json!(alarm);
    e["detail"]["state"]["value"] = json!(state);
    e["detail"]["state"]["timestamp"] = json!(timestamp);
    e["detail"]["state"]["reasonData"] = json!(alarm_reason_data(datapoints, threshold));
    if let Some(t) = tags {
        e["detail"]["tags"] = t;
    }
    for_world(e, w)
}

/// The sample transition: random-cpu-high goes to ALARM on 85 and 90 over 70 (random 4 → 6 by
/// the seed world's steps), at [`SAMPLE_ALARM_TIME`].
pub fn random_cpu_high(w: &World) -> Value {
    alarm_event(w, "random-cpu-high", "ALARM", &[85.0, 90.0], 70.0, SAMPLE_ALARM_TIME, None)
}
