//! Configuration from the environment, validated once at start.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}={value:?} is not valid: expected {expected}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub expected: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Cluster names or ARNs to manage; empty means every cluster of the account and region.
    pub clusters: Vec<String>,
    pub state_table: Option<String>,
    pub topic_arn: Option<String>,
    pub dry_run: bool,
    /// Failed tasks of one service revision within `crash_loop_window` that make a crash loop.
    pub crash_loop_threshold: u32,
    pub crash_loop_window: Duration,
    /// How long notifications of one incident are folded into one.
    pub notification_window: Duration,
    /// scaler: how long a container instance must have been idle (no running or pending task)
    /// before it is drained and terminated.
    pub idle_instance: Duration,
    /// scaler: how long after it registered (registeredAt) a container instance may be removed.
    pub min_instance_age: Duration,
    /// deployer: how long a rollout it started may run (plus the strategy's bake times) before
    /// the reconcile pass reports it stuck. ECS reports no failure for a rollout without a
    /// circuit breaker: it retries for ever ("Amazon ECS service deployment state change events":
    /// SERVICE_DEPLOYMENT_FAILED is sent only with the circuit breaker on).
    pub rollout_deadline: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            clusters: Vec::new(),
            state_table: None,
            topic_arn: None,
            dry_run: false,
            crash_loop_threshold: 3,
            crash_loop_window: Duration::from_secs(600),
            notification_window: Duration::from_secs(600),
            idle_instance: Duration::from_secs(900),
            min_instance_age: Duration::from_secs(600),
            rollout_deadline: Duration::from_secs(1800),
        }
    }
}

pub const ENV_CLUSTERS: &str = "AUTOPILOT_CLUSTERS";
pub const ENV_STATE_TABLE: &str = "AUTOPILOT_STATE_TABLE";
pub const ENV_TOPIC_ARN: &str = "AUTOPILOT_TOPIC_ARN";
pub const ENV_DRY_RUN: &str = "AUTOPILOT_DRY_RUN";
pub const ENV_CRASH_LOOP_THRESHOLD: &str = "AUTOPILOT_CRASH_LOOP_THRESHOLD";
pub const ENV_CRASH_LOOP_WINDOW: &str = "AUTOPILOT_CRASH_LOOP_WINDOW_SECONDS";
pub const ENV_NOTIFICATION_WINDOW: &str = "AUTOPILOT_NOTIFICATION_WINDOW_SECONDS";
pub const ENV_IDLE_INSTANCE: &str = "AUTOPILOT_IDLE_INSTANCE_SECONDS";
pub const ENV_MIN_INSTANCE_AGE: &str = "AUTOPILOT_MIN_INSTANCE_AGE_SECONDS";
pub const ENV_ROLLOUT_DEADLINE: &str = "AUTOPILOT_ROLLOUT_DEADLINE_SECONDS";

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same as [`Config::from_env`] with any source of variables (tests use a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let mut config = Config::default();

        if let Some(raw) = get(ENV_CLUSTERS) {
            let clusters: Vec<String> = raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
            let valid = |c: &String| {
                c.starts_with("arn:aws") && c.contains(":cluster/")
                    || (!c.contains(':') && !c.contains('/') && c.len() <= 255 && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'))
            };
            if clusters.iter().any(|c| !valid(c)) {
                return Err(ConfigError { variable: ENV_CLUSTERS, value: raw, expected: "comma-separated ECS cluster names or cluster ARNs" });
            }
            config.clusters = clusters;
        }
        if let Some(table) = get(ENV_STATE_TABLE) {
            let ok = (3..=255).contains(&table.len()) && table.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
            if !ok {
                return Err(ConfigError { variable: ENV_STATE_TABLE, value: table, expected: "a DynamoDB table name (3-255 of a-z A-Z 0-9 _ - .)" });
            }
            config.state_table = Some(table);
        }
        if let Some(topic) = get(ENV_TOPIC_ARN) {
            if !(topic.starts_with("arn:") && topic.split(':').nth(2) == Some("sns") && topic.split(':').count() == 6) {
                return Err(ConfigError { variable: ENV_TOPIC_ARN, value: topic, expected: "an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)" });
            }
            config.topic_arn = Some(topic);
        }
        if let Some(raw) = get(ENV_DRY_RUN) {
            config.dry_run = match raw.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => return Err(ConfigError { variable: ENV_DRY_RUN, value: raw, expected: "true or false" }),
            };
        }
        if let Some(raw) = get(ENV_CRASH_LOOP_THRESHOLD) {
            config.crash_loop_threshold = raw
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or(ConfigError { variable: ENV_CRASH_LOOP_THRESHOLD, value: raw, expected: "a whole number of failed tasks, at least 1" })?;
        }
        for (variable, slot) in [(ENV_CRASH_LOOP_WINDOW, &mut config.crash_loop_window), (ENV_NOTIFICATION_WINDOW, &mut config.notification_window)] {
            if let Some(raw) = get(variable) {
                *slot = raw
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=86_400).contains(n))
                    .map(Duration::from_secs)
                    .ok_or(ConfigError { variable, value: raw, expected: "a number of seconds from 1 to 86400" })?;
            }
        }
        // 0 is allowed: an idle instance goes at the first re-evaluation that sees it.
        for (variable, slot) in [(ENV_IDLE_INSTANCE, &mut config.idle_instance), (ENV_MIN_INSTANCE_AGE, &mut config.min_instance_age)] {
            if let Some(raw) = get(variable) {
                *slot = raw
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n <= 86_400)
                    .map(Duration::from_secs)
                    .ok_or(ConfigError { variable, value: raw, expected: "a number of seconds from 0 to 86400" })?;
            }
        }
        if let Some(raw) = get(ENV_ROLLOUT_DEADLINE) {
            config.rollout_deadline = raw
                .parse::<u64>()
                .ok()
                .filter(|n| (60..=172_800).contains(n))
                .map(Duration::from_secs)
                .ok_or(ConfigError { variable: ENV_ROLLOUT_DEADLINE, value: raw, expected: "a number of seconds from 60 to 172800" })?;
        }
        Ok(config)
    }

    /// Whether a cluster (name or ARN) is managed.
    pub fn manages_cluster(&self, cluster: &str) -> bool {
        if self.clusters.is_empty() {
            return true;
        }
        let name = cluster_name(cluster);
        self.clusters.iter().any(|c| c == cluster || cluster_name(c) == name)
    }
}

/// `arn:aws:ecs:r:a:cluster/NAME` or `NAME` → `NAME`.
pub fn cluster_name(cluster: &str) -> &str {
    cluster.rsplit_once(":cluster/").map(|(_, n)| n).unwrap_or(cluster)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        assert_eq!(parse(&[]).unwrap(), Config::default());
    }

    #[test]
    fn valid_values() {
        let c = parse(&[
            (ENV_CLUSTERS, " stage01, arn:aws:ecs:us-east-1:123456789012:cluster/prod "),
            (ENV_STATE_TABLE, "autopilot-state"),
            (ENV_TOPIC_ARN, "arn:aws:sns:us-east-1:123456789012:autopilot"),
            (ENV_DRY_RUN, "TRUE"),
            (ENV_CRASH_LOOP_THRESHOLD, "5"),
            (ENV_IDLE_INSTANCE, "0"),
            (ENV_MIN_INSTANCE_AGE, "1800"),
            (ENV_ROLLOUT_DEADLINE, "3600"),
        ])
        .unwrap();
        assert_eq!(c.rollout_deadline, Duration::from_secs(3600));
        assert_eq!((c.idle_instance, c.min_instance_age), (Duration::ZERO, Duration::from_secs(1800)));
        assert_eq!(c.clusters, vec!["stage01", "arn:aws:ecs:us-east-1:123456789012:cluster/prod"]);
        assert!(c.dry_run);
        assert_eq!(c.crash_loop_threshold, 5);
        assert!(c.manages_cluster("arn:aws:ecs:us-east-1:123456789012:cluster/stage01"));
        assert!(c.manages_cluster("prod"));
        assert!(!c.manages_cluster("other"));
    }

    #[test]
    fn errors_name_the_variable_and_the_form() {
        for (var, value) in [
            (ENV_DRY_RUN, "maybe"),
            (ENV_TOPIC_ARN, "my-topic"),
            (ENV_CLUSTERS, "a b"),
            (ENV_STATE_TABLE, "x"),
            (ENV_CRASH_LOOP_THRESHOLD, "0"),
            (ENV_CRASH_LOOP_WINDOW, "-1"),
            (ENV_IDLE_INSTANCE, "15m"),
            (ENV_MIN_INSTANCE_AGE, "86401"),
            (ENV_ROLLOUT_DEADLINE, "30"),
            (ENV_ROLLOUT_DEADLINE, "1h"),
        ] {
            let err = parse(&[(var, value)]).unwrap_err();
            assert_eq!(err.variable, var);
            assert!(err.to_string().contains(var) && err.to_string().contains("expected"), "{err}");
        }
    }
}
