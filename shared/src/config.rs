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
    /// Organization mode (issue 16): the role, with its path (`ecs-autopilot/ecs-autopilot-deployer`),
    /// the function assumes in the account an event names when that is not its own. `None`:
    /// single-account mode, where events of other accounts are ignored.
    pub member_role: Option<String>,
    /// Organization mode: the accounts the function may act in (empty: every account whose events
    /// reach it). The schedules visit each of them.
    pub accounts: Vec<String>,
    /// The regions the schedules visit in each account (empty: the function's own region).
    pub regions: Vec<String>,
    /// deployer, organization mode: the SQS FIFO queue its work goes through, one message group
    /// per account and region, so concurrent invocations never overrun one account's ECS buckets.
    pub queue_url: Option<String>,
    /// recovery: notify about every service's failed tasks (`all`, the default) or only about
    /// services opted in to autopilot (`opted-in`: tagged `autopilot:deploy`, `autopilot:rollback`,
    /// `autopilot:min` or `autopilot:max`). Standalone tasks are told about only when tagged
    /// `autopilot:restart` either way.
    pub recovery_notify_opted_in: bool,
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
            member_role: None,
            accounts: Vec::new(),
            regions: Vec::new(),
            queue_url: None,
            recovery_notify_opted_in: false,
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
pub const ENV_MEMBER_ROLE: &str = "AUTOPILOT_MEMBER_ROLE";
pub const ENV_ACCOUNTS: &str = "AUTOPILOT_ACCOUNTS";
pub const ENV_REGIONS: &str = "AUTOPILOT_REGIONS";
pub const ENV_QUEUE_URL: &str = "AUTOPILOT_QUEUE_URL";
pub const ENV_RECOVERY_NOTIFY: &str = "AUTOPILOT_RECOVERY_NOTIFY";

/// Space- or comma-separated items.
fn list(raw: &str) -> Vec<String> {
    raw.split([' ', ',', '\t', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// A region name as AWS spells them (`us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`).
pub fn is_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts.len() <= 5
        && parts[0].len() == 2
        && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        && parts.last().is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
}

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
        if let Some(role) = get(ENV_MEMBER_ROLE) {
            // IAM: a path of `/`-separated segments and a name of at most 64 of [\w+=,.@-].
            let name = role.rsplit('/').next().unwrap_or_default();
            let ok = !role.starts_with('/')
                && !role.starts_with("arn:")
                && role.len() <= 512
                && (1..=64).contains(&name.len())
                && role.split('/').all(|seg| !seg.is_empty() && seg.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)));
            if !ok {
                return Err(ConfigError { variable: ENV_MEMBER_ROLE, value: role, expected: "an IAM role name with its path, e.g. ecs-autopilot/ecs-autopilot-deployer (no leading /, no ARN)" });
            }
            config.member_role = Some(role);
        }
        if let Some(raw) = get(ENV_ACCOUNTS) {
            let accounts = list(&raw);
            if accounts.iter().any(|a| !crate::image::is_account_id(a)) {
                return Err(ConfigError { variable: ENV_ACCOUNTS, value: raw, expected: "12-digit AWS account ids separated by spaces or commas" });
            }
            config.accounts = accounts;
        }
        if let Some(raw) = get(ENV_REGIONS) {
            let regions = list(&raw);
            if regions.iter().any(|r| !is_region(r)) {
                return Err(ConfigError { variable: ENV_REGIONS, value: raw, expected: "AWS region names (us-east-1 eu-west-1 ...) separated by spaces or commas" });
            }
            config.regions = regions;
        }
        if let Some(url) = get(ENV_QUEUE_URL) {
            let ok = (url.starts_with("https://") || url.starts_with("http://")) && url.ends_with(".fifo") && !url.contains(char::is_whitespace);
            if !ok {
                return Err(ConfigError { variable: ENV_QUEUE_URL, value: url, expected: "an SQS FIFO queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME.fifo)" });
            }
            config.queue_url = Some(url);
        }
        if let Some(raw) = get(ENV_RECOVERY_NOTIFY) {
            config.recovery_notify_opted_in = match raw.to_ascii_lowercase().as_str() {
                "all" => false,
                "opted-in" => true,
                _ => return Err(ConfigError { variable: ENV_RECOVERY_NOTIFY, value: raw, expected: "all or opted-in" }),
            };
        }
        Ok(config)
    }

    /// Organization mode: the function may act in accounts other than its own.
    pub fn organization(&self) -> bool {
        self.member_role.is_some()
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
            (ENV_MEMBER_ROLE, "ecs-autopilot/ecs-autopilot-deployer"),
            (ENV_ACCOUNTS, "111122223333, 444455556666 777788889999"),
            (ENV_REGIONS, "us-east-1 eu-west-1,us-gov-west-1"),
            (ENV_QUEUE_URL, "https://sqs.us-east-1.amazonaws.com/123456789012/ecs-autopilot-deployer.fifo"),
            (ENV_RECOVERY_NOTIFY, "opted-in"),
        ])
        .unwrap();
        assert!(c.recovery_notify_opted_in);
        assert_eq!(c.member_role.as_deref(), Some("ecs-autopilot/ecs-autopilot-deployer"));
        assert_eq!(c.accounts, ["111122223333", "444455556666", "777788889999"]);
        assert_eq!(c.regions, ["us-east-1", "eu-west-1", "us-gov-west-1"]);
        assert!(c.organization() && c.queue_url.is_some());
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
            (ENV_MEMBER_ROLE, "arn:aws:iam::111122223333:role/x"),
            (ENV_MEMBER_ROLE, "/ecs-autopilot/deployer"),
            (ENV_MEMBER_ROLE, "role with spaces"),
            (ENV_ACCOUNTS, "1111-2222-3333"),
            (ENV_REGIONS, "us_east_1"),
            (ENV_REGIONS, "eu-west"),
            (ENV_QUEUE_URL, "https://sqs.us-east-1.amazonaws.com/123456789012/standard-queue"),
            (ENV_RECOVERY_NOTIFY, "some"),
        ] {
            let err = parse(&[(var, value)]).unwrap_err();
            assert_eq!(err.variable, var);
            assert!(err.to_string().contains(var) && err.to_string().contains("expected"), "{err}");
        }
    }
}
