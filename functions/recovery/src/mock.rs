//! SDK clients answered by `aws_smithy_mocks` rules, for the handler tests where moto cannot help
//! (an unhealthy target group, an awsvpc task). `mock_client!` needs the SDK crates' `test-util`
//! feature, which would change feature unification for the whole workspace; these build the same
//! clients by hand.

use autopilot::aws_sdk_ecs as ecs;
use autopilot::aws_sdk_elasticloadbalancingv2 as elbv2;
use autopilot::aws_sdk_sns as sns;
use aws_smithy_mocks::{MockResponseInterceptor, Rule};

pub fn interceptor(rules: &[&Rule]) -> MockResponseInterceptor {
    rules.iter().fold(MockResponseInterceptor::new(), |i, r| i.with_rule(r))
}

pub fn sdk() -> autopilot::aws_config::SdkConfig {
    autopilot::aws_config::SdkConfig::builder()
        .behavior_version(autopilot::aws_config::BehaviorVersion::latest())
        .region(autopilot::aws_config::Region::new("us-east-1"))
        .build()
}

pub fn elb_client(rules: &[&Rule]) -> elbv2::Client {
    let conf = elbv2::Config::builder()
        .behavior_version(elbv2::config::BehaviorVersion::latest())
        .region(elbv2::config::Region::new("us-east-1"))
        .credentials_provider(elbv2::config::Credentials::new("test", "test", None, None, "test"))
        .http_client(aws_smithy_mocks::create_mock_http_client())
        .interceptor(interceptor(rules))
        .build();
    elbv2::Client::from_conf(conf)
}

pub fn sns_client(rules: &[&Rule]) -> sns::Client {
    let conf = sns::Config::builder()
        .behavior_version(sns::config::BehaviorVersion::latest())
        .region(sns::config::Region::new("us-east-1"))
        .credentials_provider(sns::config::Credentials::new("test", "test", None, None, "test"))
        .http_client(aws_smithy_mocks::create_mock_http_client())
        .interceptor(interceptor(rules))
        .build();
    sns::Client::from_conf(conf)
}

pub fn ecs_client(rules: &[&Rule]) -> ecs::Client {
    let conf = ecs::Config::builder()
        .behavior_version(ecs::config::BehaviorVersion::latest())
        .region(ecs::config::Region::new("us-east-1"))
        .credentials_provider(ecs::config::Credentials::new("test", "test", None, None, "test"))
        .http_client(aws_smithy_mocks::create_mock_http_client())
        .interceptor(interceptor(rules))
        .build();
    ecs::Client::from_conf(conf)
}

/// The same, without the SDK's retries: each rule's answer is what the handler sees.
pub fn ecs_client_without_retries(rules: &[&Rule]) -> ecs::Client {
    let conf = ecs_client(rules).config().to_builder().retry_config(ecs::config::retry::RetryConfig::disabled()).build();
    ecs::Client::from_conf(conf)
}
