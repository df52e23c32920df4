//! CloudWatch embedded metric format: one JSON line per handled event on stdout, which Lambda
//! ships to CloudWatch Logs and CloudWatch turns into metrics (no PutMetricData call, no cost in
//! latency). Namespace `ecs-autopilot`, dimension `Function`.

use serde_json::{json, Value};

pub const NAMESPACE: &str = "ecs-autopilot";

/// What one event amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventMetrics {
    pub failed: bool,
    pub rejected: bool,
    /// Services deployed, tasks restarted, services rolled back or scaled.
    pub actions: u64,
}

/// Count the changes an outcome reports: a deployer's `deployed` list, and every object whose
/// `action` is a change (`restarted`, `rolled-back`, `scaled`), however nested. Dry runs report
/// the same shapes with `dryRun`/`dry_run` set and are not counted.
pub fn count_actions(outcome: &Value) -> u64 {
    fn walk(v: &Value) -> u64 {
        match v {
            Value::Object(map) => {
                let dry = [map.get("dryRun"), map.get("dry_run")].into_iter().flatten().any(|d| d == &Value::Bool(true));
                let own = match map.get("action").and_then(Value::as_str) {
                    Some("restarted" | "rolled-back" | "scaled") if !dry => 1,
                    _ => 0,
                };
                own + map.iter().filter(|(k, _)| k.as_str() != "deployed").map(|(_, v)| walk(v)).sum::<u64>()
            }
            Value::Array(items) => items.iter().map(walk).sum(),
            _ => 0,
        }
    }
    let deployed = match outcome.get("status").and_then(Value::as_str) {
        Some("dry-run") => 0,
        _ => outcome.get("deployed").and_then(Value::as_array).map_or(0, |d| d.len() as u64),
    };
    deployed + walk(outcome)
}

pub fn emf_line(function: &str, m: EventMetrics, timestamp_ms: u64) -> Value {
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": [
                    {"Name": "Events", "Unit": "Count"},
                    {"Name": "Failures", "Unit": "Count"},
                    {"Name": "Rejected", "Unit": "Count"},
                    {"Name": "Actions", "Unit": "Count"}
                ]
            }]
        },
        "Function": function,
        "Events": 1,
        "Failures": u64::from(m.failed),
        "Rejected": u64::from(m.rejected),
        "Actions": m.actions,
    })
}

/// On stdout inside Lambda (where CloudWatch picks the line up); on stderr elsewhere, so tools
/// that run a handler in-process (`invoke`) keep stdout for the outcome alone.
pub fn emit(function: &str, m: EventMetrics) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let line = emf_line(function, m, now);
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        println!("{line}");
    } else {
        eprintln!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_changes_not_decisions() {
        assert_eq!(count_actions(&json!({"status": "deployed", "deployed": [{"service": "a"}, {"service": "b"}]})), 2);
        assert_eq!(count_actions(&json!({"status": "dry-run", "deployed": [{"service": "a"}]})), 0);
        assert_eq!(count_actions(&json!({"action": "scaled", "from": 4, "to": 6})), 1);
        assert_eq!(count_actions(&json!({"action": "scaled", "dry_run": true})), 0);
        assert_eq!(count_actions(&json!({"results": [{"action": "scaled"}, {"action": "refused"}, {"action": "scaled"}]})), 2);
        assert_eq!(count_actions(&json!({"action": "restarted"})), 1);
        assert_eq!(count_actions(&json!({"action": "none"})), 0);
    }

    #[test]
    fn emf_shape() {
        let line = emf_line("scaler", EventMetrics { failed: true, rejected: false, actions: 2 }, 5);
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        assert_eq!(line["Function"], "scaler");
        assert_eq!((line["Events"].as_u64(), line["Failures"].as_u64(), line["Actions"].as_u64()), (Some(1), Some(1), Some(2)));
    }
}
