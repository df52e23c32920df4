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

/// A scaler managing stage01 only, with CloudWatch scripted too.
fn scaler_with_cw(ecs_rules: &[&Rule], cw_rules: &[&Rule]) -> Scaler {
    let config = Config { clusters: vec!["stage01".into()], ..Config::default() };
    let env = Env::new(config, autopilot::aws_config::SdkConfig::builder().build());
    Scaler::with_clients(env, client!(ecs, ecs_rules), client!(cw, cw_rules), client!(asg, &[] as &[&Rule]))
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
            "alarmTags": {"autopilot:scale": "stage01/random", "autopilot:steps": steps},
            "alarmTagsStatus": "SUCCESS"
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

/// Re-evaluation measures a metric-math alarm now (item: "Re-evaluation measures the alarm's
/// metric now"): GetMetricData gets the alarm's `Metrics` exactly as DescribeAlarms listed them,
/// over its evaluation window, and the watched expression's newest values decide the step, not
/// the StateReasonData of the transition (CloudWatch API reference, MetricAlarm.Metrics and
/// GetMetricData). moto cannot compute `m1 / m2`, so the answer is scripted here.
#[tokio::test]
async fn reevaluation_reads_a_metric_math_alarm_now() {
    use cw::types::{Metric, MetricAlarm, MetricDataQuery, MetricDataResult, MetricStat};
    let stat = |name: &str| MetricStat::builder().metric(Metric::builder().namespace("AWS/ApplicationELB").metric_name(name).build()).period(60).stat("Sum").build();
    let queries = vec![
        MetricDataQuery::builder().id("m1").metric_stat(stat("RequestCount")).return_data(false).build(),
        MetricDataQuery::builder().id("m2").metric_stat(stat("HealthyHostCount")).return_data(false).build(),
        MetricDataQuery::builder().id("e1").expression("m1 / m2").label("requests per task").return_data(true).build(),
    ];
    let alarm = MetricAlarm::builder()
        .alarm_name("random-requests-per-task-high")
        .alarm_arn("arn:aws:cloudwatch:us-east-1:123456789012:alarm:random-requests-per-task-high")
        .set_metrics(Some(queries.clone()))
        .evaluation_periods(2)
        .threshold(500.0)
        .comparison_operator(cw::types::ComparisonOperator::GreaterThanThreshold)
        .state_value(cw::types::StateValue::Alarm)
        // The transition, hours ago: a breach of 10 (step +1). Not what counts now.
        .state_reason_data(r#"{"recentDatapoints":[510.0],"threshold":500.0}"#)
        .state_updated_timestamp(aws_smithy_types::DateTime::from_secs(1_764_000_000))
        .build();
    let describe = mock!(cw::Client::describe_alarms).then_output(move || cw::operation::describe_alarms::DescribeAlarmsOutput::builder().metric_alarms(alarm.clone()).build());
    let tags = mock!(cw::Client::list_tags_for_resource).then_output(|| {
        let tag = |k: &str, v: &str| cw::types::Tag::builder().key(k).value(v).build();
        cw::operation::list_tags_for_resource::ListTagsForResourceOutput::builder()
            .tags(tag("autopilot:scale", "stage01/random"))
            .tags(tag("autopilot:steps", "0:100:+1 100::+3"))
            .build()
    });
    let sent = queries.clone();
    let metric_data = mock!(cw::Client::get_metric_data)
        .match_requests(move |req| {
            let window = match (req.start_time(), req.end_time()) {
                (Some(a), Some(b)) => b.secs() - a.secs(),
                _ => 0,
            };
            req.metric_data_queries() == sent.as_slice() && window == 3 * 60 && req.scan_by() == Some(&cw::types::ScanBy::TimestampDescending)
        })
        .then_output(|| {
            cw::operation::get_metric_data::GetMetricDataOutput::builder()
                // Newest first: the two evaluation periods average 675, a breach of 175 (+3); the
                // older 510 is outside the window that counts.
                .metric_data_results(MetricDataResult::builder().id("e1").values(700.0).values(650.0).values(510.0).build())
                .build()
        });
    let describe_service = service(vec![dep("PRIMARY", DeploymentRolloutState::Completed)]);
    let update = mock!(ecs::Client::update_service)
        .match_requests(|req| req.desired_count() == Some(9))
        .then_output(|| ecs::operation::update_service::UpdateServiceOutput::builder().build());
    let no_cluster = mock!(ecs::Client::describe_clusters).then_output(|| ecs::operation::describe_clusters::DescribeClustersOutput::builder().build());
    let s = scaler_with_cw(&[&describe_service, &update, &no_cluster], &[&describe, &tags, &metric_data]);
    let schedule = json!({
        "id": "s1", "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012", "region": "us-east-1",
        "time": "2025-11-25T16:00:00Z", "resources": ["arn:aws:events:us-east-1:123456789012:rule/autopilot-scale-reevaluate"], "detail": {}
    });
    let out = s.handle(schedule).await.unwrap();
    let alarm = &out["alarms"][0];
    assert_eq!((alarm["action"].as_str(), alarm["from"].as_u64(), alarm["to"].as_u64(), alarm["step"].as_str()), (Some("scaled"), Some(6), Some(9), Some("+3")), "{out}");
    assert_eq!((metric_data.num_calls(), update.num_calls()), (1, 1));
}

/// A composite alarm that stays in ALARM is re-evaluated too: it has no metric, so only a bare
/// step applies, with the cooldowns a repeated scale-out meets (the second pass, within the
/// cooldown, adds nothing). moto 5.2.1 does not implement PutCompositeAlarm (HTTP 500), so
/// DescribeAlarms is scripted here.
#[tokio::test]
async fn composite_alarms_in_alarm_are_reevaluated_with_cooldowns() {
    use cw::types::CompositeAlarm;
    let composite = CompositeAlarm::builder()
        .alarm_name("stage01-degraded")
        .alarm_arn("arn:aws:cloudwatch:us-east-1:123456789012:alarm:stage01-degraded")
        .alarm_rule(r#"ALARM("random-cpu-high") OR ALARM("auth-cpu-high")"#)
        .state_value(cw::types::StateValue::Alarm)
        .state_transitioned_timestamp(aws_smithy_types::DateTime::from_millis(1764081313102))
        .build();
    let describe = mock!(cw::Client::describe_alarms)
        .match_requests(|req| req.alarm_types().contains(&cw::types::AlarmType::CompositeAlarm))
        .then_output(move || cw::operation::describe_alarms::DescribeAlarmsOutput::builder().composite_alarms(composite.clone()).build());
    let tags = mock!(cw::Client::list_tags_for_resource).then_output(|| {
        let tag = |k: &str, v: &str| cw::types::Tag::builder().key(k).value(v).build();
        cw::operation::list_tags_for_resource::ListTagsForResourceOutput::builder()
            .tags(tag("autopilot:scale", "stage01/random"))
            .tags(tag("autopilot:steps", "+1"))
            .tags(tag("autopilot:cooldown", "300"))
            .build()
    });
    let describe_service = service(vec![dep("PRIMARY", DeploymentRolloutState::Completed)]);
    let update = mock!(ecs::Client::update_service)
        .match_requests(|req| req.desired_count() == Some(7))
        .then_output(|| ecs::operation::update_service::UpdateServiceOutput::builder().build());
    let no_cluster = mock!(ecs::Client::describe_clusters).then_output(|| ecs::operation::describe_clusters::DescribeClustersOutput::builder().build());
    let s = scaler_with_cw(&[&describe_service, &update, &no_cluster], &[&describe, &tags]);
    let schedule = |id: &str| {
        json!({
            "id": id, "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012", "region": "us-east-1",
            "time": "2025-11-25T16:00:00Z", "resources": ["arn:aws:events:us-east-1:123456789012:rule/autopilot-scale-reevaluate"], "detail": {}
        })
    };
    let out = s.handle(schedule("s1")).await.unwrap();
    let alarm = &out["alarms"][0];
    assert_eq!((alarm["action"].as_str(), alarm["alarm"].as_str(), alarm["to"].as_u64()), (Some("scaled"), Some("stage01-degraded"), Some(7)), "{out}");
    // The next pass, within the cooldown: the +1 already added covers the same step.
    let out = s.handle(schedule("s2")).await.unwrap();
    assert_eq!(out["alarms"][0]["action"], "none", "{out}");
    assert_eq!(update.num_calls(), 1);
    // Issue 17, item 5: the second pass read the alarm's tags from the container's cache.
    assert_eq!(tags.num_calls(), 1, "one ListTagsForResource per alarm per TAG_CACHE_TTL");
}

fn tasks(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("arn:aws:ecs:us-east-1:123456789012:task/stage01/{i:032x}")).collect()
}

fn list_tasks(arns: Vec<String>) -> Rule {
    mock!(ecs::Client::list_tasks)
        .match_requests(|req| req.service_name() == Some("random") && req.desired_status() == Some(&ecs::types::DesiredStatus::Running))
        .then_output(move || ecs::operation::list_tasks::ListTasksOutput::builder().set_task_arns(Some(arns.clone())).build())
}

/// GetTaskProtection's answer: the first `protected` tasks protected until far in the future,
/// then one whose protection expired an hour ago, then the rest unprotected.
fn task_protection(arns: Vec<String>, protected: usize) -> Rule {
    use aws_smithy_types::DateTime;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    mock!(ecs::Client::get_task_protection).then_output(move || {
        let tasks = arns.iter().enumerate().map(|(i, arn)| {
            let t = ecs::types::ProtectedTask::builder().task_arn(arn);
            let t = match i {
                i if i < protected => t.protection_enabled(true).expiration_date(DateTime::from_secs(now + 3600)),
                i if i == protected => t.protection_enabled(true).expiration_date(DateTime::from_secs(now - 3600)),
                _ => t.protection_enabled(false),
            };
            t.build()
        });
        ecs::operation::get_task_protection::GetTaskProtectionOutput::builder().set_protected_tasks(Some(tasks.collect())).build()
    })
}

/// Task scale-in protection (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection.html,
/// GetTaskProtection): ECS does not stop a protected task on scale-in, so a scale-in stops at the
/// protected tasks (4 of the service's 6; a fifth's protection has expired), and desiredCount
/// says what will run. moto has no GetTaskProtection.
#[tokio::test]
async fn scale_in_stops_at_the_tasks_protected_from_scale_in() {
    let describe = service(vec![dep("PRIMARY", DeploymentRolloutState::Completed)]);
    let (list, protection) = (list_tasks(tasks(6)), task_protection(tasks(6), 4));
    let update = mock!(ecs::Client::update_service)
        .match_requests(|req| req.desired_count() == Some(4))
        .then_output(|| ecs::operation::update_service::UpdateServiceOutput::builder().build());
    let s = scaler(&[&describe, &list, &protection, &update]);
    // 10 against 30: -20, step -4 would take 6 to 2 (autopilot:min 2).
    let out = s.handle(event(":0:-4", "10", 30.0)).await.unwrap();
    assert_eq!((out["action"].as_str(), out["from"].as_u64(), out["to"].as_u64()), (Some("scaled"), Some(6), Some(4)), "{out}");
    assert_eq!((list.num_calls(), protection.num_calls(), update.num_calls()), (1, 1, 1));
}

/// Every task protected: the scale-in is refused (once per transition, like any refusal), and
/// desiredCount is left alone.
#[tokio::test]
async fn a_scale_in_with_every_task_protected_is_refused() {
    let describe = service(vec![dep("PRIMARY", DeploymentRolloutState::Completed)]);
    let (list, protection) = (list_tasks(tasks(6)), task_protection(tasks(6), 6));
    let update = mock!(ecs::Client::update_service).then_output(|| ecs::operation::update_service::UpdateServiceOutput::builder().build());
    let s = scaler(&[&describe, &list, &protection, &update]);
    let out = s.handle(event(":0:-1", "10", 30.0)).await.unwrap();
    assert_eq!((out["action"].as_str(), out["refusal"].as_str()), (Some("refused"), Some("tasks-protected")), "{out}");
    assert_eq!(out["reason"], "6 task(s) are protected from scale-in");
    assert_eq!(update.num_calls(), 0);
}

/// A scale-out needs no protection and reads none.
#[tokio::test]
async fn scale_out_reads_no_task_protection() {
    let describe = service(vec![dep("PRIMARY", DeploymentRolloutState::Completed)]);
    let (list, protection) = (list_tasks(tasks(6)), task_protection(tasks(6), 6));
    let update = mock!(ecs::Client::update_service).then_output(|| ecs::operation::update_service::UpdateServiceOutput::builder().build());
    let no_cluster = mock!(ecs::Client::describe_clusters).then_output(|| ecs::operation::describe_clusters::DescribeClustersOutput::builder().build());
    let s = scaler(&[&describe, &list, &protection, &update, &no_cluster]);
    let out = s.handle(event("0::+2", "90", 70.0)).await.unwrap();
    assert_eq!((out["action"].as_str(), out["to"].as_u64()), (Some("scaled"), Some(8)), "{out}");
    assert_eq!((list.num_calls(), protection.num_calls()), (0, 0));
}

/// stage01 tagged autopilot:asg, its capacity from an ECS Managed Instances provider (CapacityProvider
/// `type` MANAGED_INSTANCES, `managedInstancesProvider`; no customer Auto Scaling group exists).
fn managed_instances_cluster() -> (Rule, Rule) {
    use ecs::types::{CapacityProvider, CapacityProviderType, Cluster, ManagedInstancesProvider};
    let cluster = mock!(ecs::Client::describe_clusters).then_output(|| {
        ecs::operation::describe_clusters::DescribeClustersOutput::builder()
            .clusters(
                Cluster::builder()
                    .cluster_name("stage01")
                    .capacity_providers("stage01-mi")
                    .capacity_providers("FARGATE")
                    .tags(Tag::builder().key("autopilot:asg").value("stage01-asg").build())
                    .build(),
            )
            .build()
    });
    let providers = mock!(ecs::Client::describe_capacity_providers).then_output(|| {
        ecs::operation::describe_capacity_providers::DescribeCapacityProvidersOutput::builder()
            .capacity_providers(
                CapacityProvider::builder()
                    .name("stage01-mi")
                    .cluster("stage01")
                    .r#type(CapacityProviderType::ManagedInstances)
                    .managed_instances_provider(ManagedInstancesProvider::builder().infrastructure_role_arn("arn:aws:iam::123456789012:role/ecsInfrastructure").build())
                    .build(),
            )
            .capacity_providers(CapacityProvider::builder().name("FARGATE").r#type(CapacityProviderType::Fargate).build())
            .build()
    });
    (cluster, providers)
}

/// ECS Managed Instances own the capacity: a scale-out grows no group (the Auto Scaling client
/// has no rule: any call would fail the test) and says whose the capacity is.
#[tokio::test]
async fn scale_out_on_managed_instances_grows_no_group() {
    let describe = service(vec![dep("PRIMARY", DeploymentRolloutState::Completed)]);
    let update = mock!(ecs::Client::update_service).then_output(|| ecs::operation::update_service::UpdateServiceOutput::builder().build());
    let (cluster, providers) = managed_instances_cluster();
    let s = scaler(&[&describe, &update, &cluster, &providers]);
    let out = s.handle(event("0::+2", "90", 70.0)).await.unwrap();
    assert_eq!(out["action"], "scaled", "{out}");
    assert_eq!(out["capacity"], json!({"provider": "stage01-mi", "ecsManages": "managed-instances"}), "{out}");
    assert_eq!(providers.num_calls(), 1);
}

/// A placement failure on Managed Instances: no group grown, the answer names the provider.
#[tokio::test]
async fn placement_failure_on_managed_instances_names_the_provider() {
    let describe = service(vec![dep("PRIMARY", DeploymentRolloutState::Completed)]);
    let (cluster, providers) = managed_instances_cluster();
    let s = scaler(&[&describe, &cluster, &providers]);
    let failure = json!({
        "id": "p1", "detail-type": "ECS Service Action", "source": "aws.ecs", "account": "123456789012", "region": "us-east-1",
        "time": "2025-11-25T14:35:12Z", "resources": ["arn:aws:ecs:us-east-1:123456789012:service/stage01/random"],
        "detail": {"eventType": "ERROR", "eventName": "SERVICE_TASK_PLACEMENT_FAILURE", "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/stage01",
                   "capacityProviderArns": ["arn:aws:ecs:us-east-1:123456789012:capacity-provider/stage01-mi"], "reason": "RESOURCE:MEMORY"}
    });
    let out = s.handle(failure).await.unwrap();
    assert_eq!(out, json!({"action": "placement-failure", "cluster": "stage01", "service": "random", "capacity": {"provider": "stage01-mi", "ecsManages": "managed-instances"}, "dryRun": false}));
}
