//! One `SdkConfig` for every client: pinned behaviour version, retries and timeouts sized for a
//! Lambda invocation, endpoint from `AWS_ENDPOINT_URL` (so moto works with no code change).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// Pinned so an SDK upgrade cannot silently change retry or timeout defaults.
pub fn behavior_version() -> BehaviorVersion {
    BehaviorVersion::v2026_01_12()
}

pub fn retry_config() -> RetryConfig {
    // RegisterTaskDefinition refills at 1/s: backoff up to 20 s absorbs a burst of throttling.
    RetryConfig::standard().with_max_attempts(6).with_initial_backoff(Duration::from_millis(200)).with_max_backoff(Duration::from_secs(20))
}

pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(60))
        .build()
}

/// Load the shared configuration from the environment (credentials, region, endpoint).
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(behavior_version()).retry_config(retry_config()).timeout_config(timeout_config()).load().await
}
