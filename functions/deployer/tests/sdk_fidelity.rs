//! The SDK path of task-definition fidelity (moto drops unknown fields, so this runs on
//! aws-smithy-mocks): fields no SDK release knows survive DescribeTaskDefinition →
//! RegisterTaskDefinition byte for byte through the interceptors, and the signed request
//! carries exactly the body we built.

use std::sync::{Arc, Mutex};

use autopilot_deployer::aws::Aws;
use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_mocks::{mock, MockResponseInterceptor, RuleMode};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::{json, Value};

/// Records every request as transmitted (after signing).
#[derive(Debug, Clone, Default)]
struct Sent(Arc<Mutex<Vec<(String, Vec<u8>)>>>);

impl Intercept for Sent {
    fn name(&self) -> &'static str {
        "Sent"
    }
    fn read_before_transmit(&self, ctx: &BeforeTransmitInterceptorContextRef<'_>, _: &RuntimeComponents, _: &mut ConfigBag) -> Result<(), BoxError> {
        let r = ctx.request();
        let target = r.headers().get("x-amz-target").unwrap_or_default().to_string();
        let auth = r.headers().get("authorization").unwrap_or_default().to_string();
        assert!(auth.starts_with("AWS4-HMAC-SHA256"), "the request is signed");
        self.0.lock().unwrap().push((target, r.body().bytes().unwrap_or_default().to_vec()));
        Ok(())
    }
}

fn ok(body: Value) -> HttpResponse {
    HttpResponse::new(StatusCode::try_from(200).unwrap(), SdkBody::from(body.to_string()))
}

/// An `Aws` whose ECS client answers from `rules`, one after the other, and records what it sends.
fn mocked(rules: &[&aws_smithy_mocks::Rule], sent: &Sent) -> Aws {
    mocked_in(RuleMode::Sequential, rules, sent)
}

/// [`mocked`], with the rules applied in `mode`.
fn mocked_in(mode: RuleMode, rules: &[&aws_smithy_mocks::Rule], sent: &Sent) -> Aws {
    let mut mocks = MockResponseInterceptor::new().rule_mode(mode);
    for rule in rules {
        mocks = mocks.with_rule(rule);
    }
    let conf = aws_sdk_ecs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .http_client(aws_smithy_mocks::create_mock_http_client())
        .interceptor(mocks)
        .interceptor(sent.clone())
        .build();
    let ecr_conf = autopilot::aws_sdk_ecr::Config::builder().behavior_version(BehaviorVersion::latest()).region(Region::new("us-east-1")).build();
    Aws::from_clients(aws_sdk_ecs::Client::from_conf(conf), autopilot::aws_sdk_ecr::Client::from_conf(ecr_conf))
}

/// A copy AWS accepts, through the SDK: `trustedExecutionConfiguration`, a member of ECS's model
/// that aws-sdk-ecs 1.157.0 does not have, reaches RegisterTaskDefinition; `deleteRequestedAt`
/// (output-only in the model) and the tags AWS reserves (`aws:` keys, which describe answers
/// carry and RegisterTaskDefinition refuses: ECS's tag restrictions) do not.
#[tokio::test]
async fn a_member_the_sdk_lacks_goes_through_and_what_aws_refuses_does_not() {
    let described = json!({
        "taskDefinition": {
            "taskDefinitionArn": "arn:aws:ecs:us-east-1:111122223333:task-definition/secure:7",
            "family": "secure", "revision": 7, "status": "DELETE_IN_PROGRESS",
            "containerDefinitions": [{"name": "app", "image": "111122223333.dkr.ecr.us-east-1.amazonaws.com/app:v1", "memory": 512}],
            "requiresCompatibilities": ["MANAGED_INSTANCES"],
            "trustedExecutionConfiguration": {"isolationMode": "ENABLED", "attestationPolicy": {"policyArn": "arn:aws:ecs:us-east-1:111122223333:policy/x"}},
            "compatibilities": ["MANAGED_INSTANCES"], "registeredAt": 1.7e9, "deleteRequestedAt": 1.71e9, "registeredBy": "arn:aws:iam::111122223333:root"
        },
        "tags": [{"key": "aws:cloudformation:stack-name", "value": "web"}, {"key": "team", "value": "platform"}, {"key": "AWS:Owner", "value": "x"}]
    });
    let describe_rule = mock!(aws_sdk_ecs::Client::describe_task_definition).then_http_response({
        let d = described.clone();
        move || ok(d.clone())
    });
    let register_rule = mock!(aws_sdk_ecs::Client::register_task_definition).then_http_response(|| {
        ok(json!({"taskDefinition": {"taskDefinitionArn": "arn:aws:ecs:us-east-1:111122223333:task-definition/secure:8", "family": "secure", "revision": 8}}))
    });
    let sent = Sent::default();
    let aws = mocked(&[&describe_rule, &register_rule], &sent);

    let raw = aws.describe_task_definition("secure:7").await.expect("describe");
    assert!(raw.unknown_fields().is_empty(), "{:?}", raw.unknown_fields());
    let image = "111122223333.dkr.ecr.us-east-1.amazonaws.com/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let request = raw.register_request(&[("app".into(), image.into())]).unwrap();
    aws.register_task_definition(&request, 7, &[("app".into(), image.into())]).await.expect("register");

    let sent = sent.0.lock().unwrap();
    let (_, body) = sent.iter().find(|(t, _)| t.ends_with("RegisterTaskDefinition")).expect("register was sent");
    let body: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(
        body,
        json!({
            "family": "secure",
            "containerDefinitions": [{"name": "app", "image": image, "memory": 512}],
            "requiresCompatibilities": ["MANAGED_INSTANCES"],
            "trustedExecutionConfiguration": {"isolationMode": "ENABLED", "attestationPolicy": {"policyArn": "arn:aws:ecs:us-east-1:111122223333:policy/x"}},
            "tags": [{"key": "team", "value": "platform"}]
        })
    );
}

#[tokio::test]
async fn unknown_fields_pass_through_the_sdk_unchanged() {
    let described = json!({
        "taskDefinition": {
            "taskDefinitionArn": "arn:aws:ecs:us-east-1:111122223333:task-definition/auth:3",
            "family": "auth", "revision": 3, "status": "ACTIVE",
            "containerDefinitions": [{
                "name": "auth", "image": "111122223333.dkr.ecr.us-east-1.amazonaws.com/auth:v1", "memory": 512,
                "environment": [{"name": "DB_PASSWORD", "value": "hunter2"}],
                "containerFieldFrom2030": {"mode": "strict"}
            }],
            "taskFieldFrom2030": {"enabled": true, "level": 3},
            "compatibilities": ["EC2"], "registeredAt": 1.7e9
        },
        "tags": [{"key": "team", "value": "platform"}]
    });
    let describe_rule = mock!(aws_sdk_ecs::Client::describe_task_definition).then_http_response({
        let d = described.clone();
        move || ok(d.clone())
    });
    let register_rule = mock!(aws_sdk_ecs::Client::register_task_definition).then_http_response(|| {
        ok(json!({"taskDefinition": {"taskDefinitionArn": "arn:aws:ecs:us-east-1:111122223333:task-definition/auth:4", "family": "auth", "revision": 4}}))
    });
    let sent = Sent::default();
    let conf = aws_sdk_ecs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .http_client(aws_smithy_mocks::create_mock_http_client())
        .interceptor(MockResponseInterceptor::new().rule_mode(RuleMode::Sequential).with_rule(&describe_rule).with_rule(&register_rule))
        .interceptor(sent.clone())
        .build();
    let ecr_conf = autopilot::aws_sdk_ecr::Config::builder().behavior_version(BehaviorVersion::latest()).region(Region::new("us-east-1")).build();
    let aws = Aws::from_clients(aws_sdk_ecs::Client::from_conf(conf), autopilot::aws_sdk_ecr::Client::from_conf(ecr_conf));

    let raw = aws.describe_task_definition("auth:3").await.expect("describe");
    assert_eq!(raw.0, described, "the raw answer is captured whole");
    assert_eq!(raw.unknown_fields(), vec!["taskFieldFrom2030".to_string()]);
    let new_image = "111122223333.dkr.ecr.us-east-1.amazonaws.com/auth@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let request = raw.register_request(&[("auth".into(), new_image.into())]).unwrap();
    let arn = aws.register_task_definition(&request, 3, &[("auth".into(), new_image.into())]).await.expect("register");
    assert_eq!(arn, "arn:aws:ecs:us-east-1:111122223333:task-definition/auth:4");

    let sent = sent.0.lock().unwrap();
    let (target, body) = sent.iter().find(|(t, _)| t.ends_with("RegisterTaskDefinition")).expect("register was sent");
    assert!(target.starts_with("AmazonEC2ContainerServiceV20141113."));
    let body: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(
        body,
        json!({
            "family": "auth",
            "containerDefinitions": [{
                "name": "auth", "image": new_image, "memory": 512,
                "environment": [{"name": "DB_PASSWORD", "value": "hunter2"}],
                "containerFieldFrom2030": {"mode": "strict"}
            }],
            "taskFieldFrom2030": {"enabled": true, "level": 3},
            "tags": [{"key": "team", "value": "platform"}]
        })
    );
}

/// The repository index may name a cluster deleted since its build. ECS answers DescribeServices
/// there with ClusterNotFoundException (ECS API reference, DescribeServices, Errors) where moto
/// answers an empty list, so this runs on aws-smithy-mocks: the indexed push describes the
/// other clusters and leaves the deleted one's services out, instead of failing until the next
/// reconcile.
#[tokio::test]
async fn a_deleted_cluster_in_the_index_leaves_its_services_out() {
    use autopilot::runtime::Env;
    let gone = mock!(aws_sdk_ecs::Client::describe_services).match_requests(|r| r.cluster() == Some("stage02")).then_http_response(|| {
        HttpResponse::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(json!({"__type": "ClusterNotFoundException", "message": "Cluster not found."}).to_string()),
        )
    });
    let here = mock!(aws_sdk_ecs::Client::describe_services).match_requests(|r| r.cluster() == Some("stage01")).then_http_response(|| {
        ok(json!({"services": [{
            "serviceArn": "arn:aws:ecs:us-east-1:111122223333:service/stage01/auth", "serviceName": "auth",
            "clusterArn": "arn:aws:ecs:us-east-1:111122223333:cluster/stage01", "status": "ACTIVE",
            "taskDefinition": "arn:aws:ecs:us-east-1:111122223333:task-definition/auth:1",
            "tags": [{"key": "autopilot:deploy", "value": "semver"}], "deployments": []
        }], "failures": []}))
    });
    let td = mock!(aws_sdk_ecs::Client::describe_task_definition).then_http_response(|| {
        ok(json!({"taskDefinition": {
            "taskDefinitionArn": "arn:aws:ecs:us-east-1:111122223333:task-definition/auth:1", "family": "auth", "revision": 1,
            "containerDefinitions": [{"name": "auth", "image": "111122223333.dkr.ecr.us-east-1.amazonaws.com/auth:v1", "memory": 256}]
        }}))
    });
    let aws = mocked_in(RuleMode::MatchAny, &[&gone, &here, &td], &Sent::default());
    let sdk = autopilot::aws_config::SdkConfig::builder().behavior_version(autopilot::aws_config::BehaviorVersion::latest()).build();
    let env = Env::from_parts(autopilot::Config::default(), sdk, autopilot::state::StateStore::memory(), autopilot::Notifier::log_only(false));
    let indexed = [
        ("stage01".to_string(), "arn:aws:ecs:us-east-1:111122223333:service/stage01/auth".to_string()),
        ("stage02".to_string(), "arn:aws:ecs:us-east-1:111122223333:service/stage02/auth-copy".to_string()),
    ];
    let disc = autopilot_deployer::deploy::discover_only(&env, &aws, &indexed).await.expect("the deleted cluster fails nothing");
    assert_eq!(disc.services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["auth"]);
    assert!(disc.failures.is_empty());
    assert_eq!((gone.num_calls(), here.num_calls()), (1, 1));
}
