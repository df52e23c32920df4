//! Why a target group's health checks fail, for the notification of an ELB health-check stop.

use autopilot::aws_sdk_elasticloadbalancingv2 as elbv2;
use autopilot::Error;
use elbv2::types::TargetHealthStateEnum;

/// What the target group says about its health right now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetGroupHealth {
    pub name: Option<String>,
    pub health_check_path: Option<String>,
    /// `Target.ResponseCodeMismatch: Health checks failed with these codes: [404]`
    pub reason: Option<String>,
    pub unhealthy: usize,
    pub total: usize,
}

impl TargetGroupHealth {
    /// One line for a person: the reason and the health-check path.
    pub fn summary(&self) -> String {
        let on = self.health_check_path.as_deref().map(|p| format!(" on {p}")).unwrap_or_default();
        match &self.reason {
            Some(reason) => format!("{reason}{on}"),
            None => format!("no unhealthy target right now ({} of {} healthy); health check{on}", self.total - self.unhealthy, self.total),
        }
    }
}

/// DescribeTargetHealth and DescribeTargetGroups on one target group. The reason is the first
/// unhealthy target's (a target being deregistered says nothing about the health check).
pub async fn target_group_health(client: &elbv2::Client, target_group_arn: &str) -> Result<TargetGroupHealth, Error> {
    let health = client
        .describe_target_health()
        .target_group_arn(target_group_arn)
        .send()
        .await
        .map_err(|e| Error::aws("elasticloadbalancing", "DescribeTargetHealth", e))?;
    let groups = client
        .describe_target_groups()
        .target_group_arns(target_group_arn)
        .send()
        .await
        .map_err(|e| Error::aws("elasticloadbalancing", "DescribeTargetGroups", e))?;
    let group = groups.target_groups().first();
    let descriptions = health.target_health_descriptions();
    let states: Vec<_> = descriptions.iter().filter_map(|d| d.target_health()).collect();
    let is_unhealthy = |s: Option<&TargetHealthStateEnum>| matches!(s, Some(TargetHealthStateEnum::Unhealthy));
    let reason = states
        .iter()
        .filter(|h| is_unhealthy(h.state()))
        .chain(states.iter().filter(|h| !is_unhealthy(h.state()) && !matches!(h.state(), Some(TargetHealthStateEnum::Healthy | TargetHealthStateEnum::Draining))))
        .find_map(|h| {
            let code = h.reason().map(|r| r.as_str().to_string());
            match (code, h.description()) {
                (Some(c), Some(d)) => Some(format!("{c}: {d}")),
                (Some(c), None) => Some(c),
                (None, Some(d)) => Some(d.to_string()),
                (None, None) => None,
            }
        });
    Ok(TargetGroupHealth {
        name: group.and_then(|g| g.target_group_name()).map(str::to_string),
        health_check_path: group.and_then(|g| g.health_check_path()).map(str::to_string),
        reason,
        unhealthy: states.iter().filter(|h| is_unhealthy(h.state())).count(),
        total: descriptions.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_mocks::{mock, MockResponseInterceptor, Rule};
    use elbv2::operation::describe_target_groups::DescribeTargetGroupsOutput;
    use elbv2::operation::describe_target_health::DescribeTargetHealthOutput;
    use elbv2::types::{TargetDescription, TargetGroup, TargetHealth, TargetHealthDescription, TargetHealthReasonEnum};

    const TG: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/random/3b8f2a9c7d1e4f50";

    // `mock_client!` needs the SDK crate's `test-util` feature, which would change feature
    // unification for the whole workspace; this builds the same client by hand.
    fn client(rules: &[&Rule]) -> elbv2::Client {
        let mut interceptor = MockResponseInterceptor::new();
        for rule in rules {
            interceptor = interceptor.with_rule(rule);
        }
        let conf = elbv2::Config::builder()
            .behavior_version(elbv2::config::BehaviorVersion::latest())
            .region(elbv2::config::Region::new("us-east-1"))
            .credentials_provider(elbv2::config::Credentials::new("test", "test", None, None, "test"))
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(interceptor)
            .build();
        elbv2::Client::from_conf(conf)
    }

    fn target(id: &str, port: i32, health: TargetHealth) -> TargetHealthDescription {
        TargetHealthDescription::builder().target(TargetDescription::builder().id(id).port(port).build()).target_health(health).build()
    }

    fn groups() -> Rule {
        mock!(elbv2::Client::describe_target_groups)
            .match_requests(|r| r.target_group_arns() == [TG.to_string()])
            .then_output(|| {
                DescribeTargetGroupsOutput::builder()
                    .target_groups(TargetGroup::builder().target_group_arn(TG).target_group_name("random").health_check_path("/random/").build())
                    .build()
            })
    }

    #[tokio::test]
    async fn unhealthy_target_reason_and_path() {
        let health = mock!(elbv2::Client::describe_target_health).match_requests(|r| r.target_group_arn() == Some(TG)).then_output(|| {
            DescribeTargetHealthOutput::builder()
                .target_health_descriptions(target("i-1", 32768, TargetHealth::builder().state(TargetHealthStateEnum::Healthy).build()))
                .target_health_descriptions(target(
                    "i-2",
                    32769,
                    TargetHealth::builder()
                        .state(TargetHealthStateEnum::Draining)
                        .reason(TargetHealthReasonEnum::DeregistrationInProgress)
                        .description("Target deregistration is in progress")
                        .build(),
                ))
                .target_health_descriptions(target(
                    "i-2",
                    32770,
                    TargetHealth::builder()
                        .state(TargetHealthStateEnum::Unhealthy)
                        .reason(TargetHealthReasonEnum::ResponseCodeMismatch)
                        .description("Health checks failed with these codes: [404]")
                        .build(),
                ))
                .build()
        });
        let groups = groups();
        let h = target_group_health(&client(&[&health, &groups]), TG).await.unwrap();
        assert_eq!(h.reason.as_deref(), Some("Target.ResponseCodeMismatch: Health checks failed with these codes: [404]"));
        assert_eq!(h.summary(), "Target.ResponseCodeMismatch: Health checks failed with these codes: [404] on /random/");
        assert_eq!((h.unhealthy, h.total), (1, 3));
        assert_eq!(health.num_calls(), 1);
    }

    #[tokio::test]
    async fn all_healthy_says_so() {
        let health = mock!(elbv2::Client::describe_target_health).then_output(|| {
            DescribeTargetHealthOutput::builder()
                .target_health_descriptions(target("i-1", 32768, TargetHealth::builder().state(TargetHealthStateEnum::Healthy).build()))
                .build()
        });
        let groups = groups();
        let h = target_group_health(&client(&[&health, &groups]), TG).await.unwrap();
        assert_eq!(h.reason, None);
        assert_eq!(h.summary(), "no unhealthy target right now (1 of 1 healthy); health check on /random/");
    }

    #[tokio::test]
    async fn errors_are_classified() {
        let health = mock!(elbv2::Client::describe_target_health).then_error(|| {
            elbv2::operation::describe_target_health::DescribeTargetHealthError::TargetGroupNotFoundException(
                elbv2::types::error::TargetGroupNotFoundException::builder().message("gone").build(),
            )
        });
        let err = target_group_health(&client(&[&health]), TG).await.unwrap_err();
        assert!(!err.retryable());
        assert!(err.to_string().contains("DescribeTargetHealth"), "{err}");
    }
}
