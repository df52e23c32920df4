//! Adapter tests: the whole handler over SDK clients mocked with aws-smithy-mocks, for what moto
//! cannot produce (a real rolling update, a failing UpdateService).

use autopilot::aws_sdk_autoscaling as asg;
use autopilot::aws_sdk_cloudwatch as cw;
use autopilot::runtime::{Env, Function};
use autopilot::Config;
use aws_sdk_ecs as ecs;
use serde_json::{json, Value};

use crate::steps::Cooldowns;
use crate::{transition_id, Scaler};
use aws_smithy_mocks::{mock, MockResponseInterceptor, Rule, RuleMode};
use ecs::operation::describe_services::DescribeServicesOutput;
use ecs::types::{Deployment, DeploymentRolloutState, Service, Tag};

// Built by hand: `mock_client!` needs the SDK's `test-util` feature (workspace-wide unification).
macro_rules! client {
    ($sdk:ident, $rules:expr) => {{
        let mut i = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for r in $rules {
            i = i.with_rule(r);
        }
        $sdk::Client::from_conf(
            $sdk::Config::builder()
                .behavior_version($sdk::config::BehaviorVersion::latest())
                .region($sdk::config::Region::new("us-east-1"))
                .credentials_provider($sdk::config::Credentials::new("t", "t", None, None, "t"))
                .http_client(aws_smithy_mocks::create_mock_http_client())
                .interceptor(i)
                .build(),
        )
    }};
}

fn scaler(ecs_rules: &[&Rule]) -> Scaler {
    let env = Env::new(Config::default(), autopilot::aws_config::SdkConfig::builder().build());
    Scaler::with_clients(env, client!(ecs, ecs_rules), client!(cw, &[] as &[&Rule]), client!(asg, &[] as &[&Rule]))
}

fn service(deployments: Vec<Deployment>) -> Rule {
    mock!(ecs::Client::describe_services).then_output(move || {
        DescribeServicesOutput::builder()
            .services(
                Service::builder()
                    .service_name("random")
                    .status("ACTIVE")
                    .desired_count(6)
                    .running_count(6)
                    .task_definition("random:2")
                    .set_deployments(Some(deployments.clone()))
                    .tags(Tag::builder().key("autopilot:min").value("2").build())
                    .build(),
            )
            .build()
    })
}

fn event(steps: &str, datapoints: &str, threshold: f64) -> Value {
    let reason = format!(r#"{{"recentDatapoints":[{datapoints}],"threshold":{threshold}}}"#);
    json!({
        "id": "e1", "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch", "account": "123456789012",
        "region": "us-east-1", "time": "2025-11-25T14:35:12Z",
        "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:random-cpu-low"],
        "detail": {
            "alarmName": "random-cpu-low",
            "state": {"value": "ALARM", "reasonData": reason, "timestamp": "2025-11-25T14:35:12.748+0000"},
            "tags": {"autopilot:scale": "stage01/random", "autopilot:steps": steps}
        }
    })
}

fn dep(status: &str, state: DeploymentRolloutState) -> Deployment {
    Deployment::builder().status(status).rollout_state(state).desired_count(6).running_count(3).build()
}

/// Two deployments (a real rolling update; moto cannot produce one): scale-in waits.
#[tokio::test]
async fn scale_in_waits_for_a_rolling_update() {
    let describe = service(vec![dep("PRIMARY", DeploymentRolloutState::InProgress), dep("ACTIVE", DeploymentRolloutState::Completed)]);
    let update = mock!(ecs::Client::update_service).then_output(|| ecs::operation::update_service::UpdateServiceOutput::builder().build());
    let s = scaler(&[&describe, &update]);
    let out = s.handle(event(":0:-2", "10", 30.0)).await.unwrap();
    assert_eq!(out["refusal"], "rollout-in-progress", "{out}");
    assert_eq!(update.num_calls(), 0);
}

/// A failed UpdateService fails the invocation (retryable), releases the transition and
/// leaves no cooldown behind, so EventBridge's retry scales.
#[tokio::test]
async fn failed_update_leaves_no_cooldown_and_releases_the_transition() {
    let describe = service(vec![dep("PRIMARY", DeploymentRolloutState::Completed)]);
    let update = mock!(ecs::Client::update_service)
        .then_error(|| ecs::operation::update_service::UpdateServiceError::ServerException(ecs::types::error::ServerException::builder()
            .message("boom")
            .meta(aws_smithy_types::error::ErrorMetadata::builder().code("ServerException").message("boom").build())
            .build()));
    let s = scaler(&[&describe, &update]);
    let err = s.handle(event("0::+2", "90", 70.0)).await.unwrap_err();
    assert!(err.retryable(), "{err}");
    assert_eq!(update.num_calls(), 1);
    let rec = s.env.state.get("scale", "stage01/random").await.unwrap();
    let cooldowns: Cooldowns = rec.map(|r| serde_json::from_value(r.data).unwrap()).unwrap_or_default();
    assert_eq!(cooldowns.last_scale_out_at, None, "no cooldown recorded for a scale that did not happen");
    assert!(s.env.state.get("scale-transition", &format!("random-cpu-low#{}", transition_id("2025-11-25T14:35:12.748+0000"))).await.unwrap().is_none());
}
