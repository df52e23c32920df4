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

/// ECS reads that more than one function makes. Each function's adapter (`aws.rs`) turns what
/// these return into its own plain observed data.
pub mod ecs {
    use aws_sdk_ecs::types::{Service, ServiceField};
    use aws_sdk_ecs::Client;

    use crate::error::Error;

    /// Every cluster ARN of the account and region (ListClusters, 100 a page).
    pub async fn cluster_arns(ecs: &Client) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = ecs.list_clusters().set_next_token(token).max_results(100).send().await.map_err(|e| Error::aws("ecs", "ListClusters", e))?;
            out.extend(page.cluster_arns().iter().cloned());
            token = page.next_token().map(String::from);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// Every service ARN of a cluster (ListServices, 100 a page: ECS's default page is 10), each
    /// page waiting for a token of `pacer` (ListServices shares DescribeServices' bucket) when
    /// one is given.
    pub async fn service_arns(ecs: &Client, cluster: &str, pacer: Option<&crate::pacer::Pacer>) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            if let Some(p) = pacer {
                p.acquire().await;
            }
            let page = ecs.list_services().cluster(cluster).max_results(100).set_next_token(token).send().await.map_err(|e| Error::aws("ecs", "ListServices", e))?;
            out.extend(page.service_arns().iter().cloned());
            token = page.next_token().map(String::from);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// DescribeServices of one service, with its tags: what ECS describes under that name
    /// (INACTIVE ones included; the caller decides).
    pub async fn service(ecs: &Client, cluster: &str, service: &str) -> Result<Vec<Service>, Error> {
        let out = ecs
            .describe_services()
            .cluster(cluster)
            .services(service)
            .include(ServiceField::Tags)
            .send()
            .await
            .map_err(|e| Error::aws("ecs", "DescribeServices", e))?;
        Ok(out.services().to_vec())
    }
}

