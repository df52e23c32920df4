//! The scaler on the seed world in moto: alarm → desiredCount, cooldowns, replays, re-evaluation,
//! rollouts, and the EC2 Auto Scaling group behind stage01.

use std::time::Duration;

use autopilot::runtime::{Env, Function};
use autopilot_scaler::Scaler;
use aws_sdk_cloudwatch::types::ComparisonOperator;
use harness::cloudwatch::{alarm_event, alarm_reason_data, publish_cpu, put_cpu_alarm, random_cpu_high, set_alarm};
use harness::ecs::{service, show_rollout};
use harness::proxy::AwsProxy;
use harness::{for_world, sample_event, World};
use serde_json::{json, Value};

async fn run(world: &World, event: Value) -> Value {
    run_with(world.env(), event).await
}

async fn run_with(env: Env, event: Value) -> Value {
    Scaler::new(env).handle(event).await.expect("scaler handles the event")
}

/// The world's configuration with idle instances removed at first sight (no idle period, no
/// minimum age), for tests about which instance goes rather than when.
fn no_idle_waits(world: &World) -> Env {
    world.env_with(autopilot::Config { idle_instance: Duration::ZERO, min_instance_age: Duration::ZERO, ..world.config() })
}

async fn desired(world: &World, name: &str) -> i32 {
    service(world, name).await.desired_count()
}

fn asg(world: &World) -> aws_sdk_autoscaling::Client {
    aws_sdk_autoscaling::Client::new(&world.sdk)
}

async fn group(world: &World) -> aws_sdk_autoscaling::types::AutoScalingGroup {
    asg(world).describe_auto_scaling_groups().auto_scaling_group_names("stage01-asg").send().await.unwrap().auto_scaling_groups()[0].clone()
}

/// Take every CPU unit of both container instances with standalone tasks
/// ([`harness::ecs::fill_instances`]), and check on the instances that they did.
async fn fill_instances(world: &World) {
    harness::ecs::fill_instances(world).await;
    for ci in container_instances(world).await {
        let cpu = ci.remaining_resources().iter().find(|r| r.name() == Some("CPU")).map(|r| r.integer_value());
        assert_eq!(cpu, Some(0), "filler tasks took every CPU unit");
    }
}

async fn container_instances(world: &World) -> Vec<aws_sdk_ecs::types::ContainerInstance> {
    let ecs = world.ecs();
    let arns = ecs.list_container_instances().cluster("stage01").send().await.unwrap().container_instance_arns().to_vec();
    ecs.describe_container_instances().cluster("stage01").set_container_instances(Some(arns)).send().await.unwrap().container_instances().to_vec()
}

async fn reeval_capacity(world: &World) -> Value {
    run_with(no_idle_waits(world), reevaluate_event(world)).await
}

fn reevaluate_event(world: &World) -> Value {
    for_world(sample_event("schedule-reevaluate.json"), world)
}

#[tokio::test]
async fn cpu_alarm_scales_random_and_grows_the_group_when_tasks_no_longer_fit() {
    let world = World::seed().await;
    fill_instances(&world).await;
    let out = run(&world, random_cpu_high(&world)).await;
    assert_eq!(out["action"], "scaled", "{out}");
    assert_eq!((out["from"].as_u64(), out["to"].as_u64()), (Some(4), Some(6)), "{out}");
    assert_eq!(desired(&world, "random").await, 6);
    assert_eq!(out["capacity"]["action"], "grown", "{out}");
    assert_eq!(group(&world).await.desired_capacity(), Some(3));
    let notes = world.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].0, "random 4 -> 6 (alarm random-cpu-high: 87.5 > 70 for 2 datapoints; step +2)");
    assert!(notes[0].1["content"]["description"].as_str().unwrap().contains("stage01-asg 2 → 3"), "{:?}", notes[0].1);
}

#[tokio::test]
async fn room_on_the_instances_leaves_the_group_alone() {
    let world = World::seed().await;
    let out = run(&world, alarm_event(&world, "random-cpu-high", "ALARM", &[75.0, 80.0], 70.0, "t1", None)).await;
    assert_eq!((out["from"].as_u64(), out["to"].as_u64()), (Some(4), Some(5)), "{out}");
    assert_eq!(out["capacity"]["action"], "none", "{out}");
    assert_eq!(group(&world).await.desired_capacity(), Some(2));
}

#[tokio::test]
async fn bounds_hold() {
    let world = World::seed().await;
    world.ecs().update_service().cluster("stage01").service("random").desired_count(11).send().await.unwrap();
    let out = run(&world, alarm_event(&world, "random-cpu-high", "ALARM", &[90.0, 90.0], 70.0, "t1", None)).await;
    assert_eq!((out["from"].as_u64(), out["to"].as_u64()), (Some(11), Some(12)), "{out}");
    // The cooldown is over (old record): the next transition wants +2 and meets max 12.
    world.env().state.put("scale", "stage01/random", &json!({"lastScaleOutAt": 1, "lastScaleOutAdded": 1, "scaleOutCooldown": 120}), std::time::Duration::from_secs(3600)).await.unwrap();
    let out = run(&world, alarm_event(&world, "random-cpu-high", "ALARM", &[90.0, 90.0], 70.0, "t2", None)).await;
    assert_eq!(out["action"], "refused", "{out}");
    assert_eq!(out["refusal"], "at-max", "{out}");
    assert_eq!(desired(&world, "random").await, 12);
    // Scale-in stops at min 2.
    world.ecs().update_service().cluster("stage01").service("random").desired_count(3).send().await.unwrap();
    world.env().state.delete("scale", "stage01/random").await.unwrap();
    let tags = json!({"autopilot:scale": "stage01/random", "autopilot:steps": ":0:-3"});
    let out = run(&world, alarm_event(&world, "random-cpu-low", "ALARM", &[5.0], 20.0, "t3", Some(tags))).await;
    assert_eq!((out["from"].as_u64(), out["to"].as_u64()), (Some(3), Some(2)), "{out}");
    assert_eq!(desired(&world, "random").await, 2);
}

#[tokio::test]
async fn a_replayed_transition_does_nothing() {
    let world = World::seed().await;
    let first = random_cpu_high(&world);
    let replay = random_cpu_high(&world);
    assert_ne!(first["id"], replay["id"]);
    assert_eq!(run(&world, first.clone()).await["action"], "scaled");
    assert_eq!(run(&world, first).await["status"], "replay", "same event id");
    assert_eq!(run(&world, replay).await["action"], "replay", "same transition, new event id");
    assert_eq!(desired(&world, "random").await, 6);
    assert_eq!(world.notifications().await.len(), 1);
}

#[tokio::test]
async fn reevaluation_scales_again_after_the_cooldown_not_before() {
    let world = World::seed().await;
    // The SDK speaks RPC v2 CBOR; the suite's proxy translates it for moto (tests/proxy/rpcv2.py).
    let cw = aws_sdk_cloudwatch::Client::new(&world.sdk);
    let reason_data = alarm_reason_data(&[85.0, 90.0], 70.0);
    cw.set_alarm_state().alarm_name("random-cpu-high").state_value(aws_sdk_cloudwatch::types::StateValue::Alarm).state_reason("test").state_reason_data(reason_data).send().await.unwrap();
    // The re-evaluation measures the metric now: ECS still reports 85 and 90.
    publish_cpu(&world, "random", &[85.0, 90.0]).await;
    let out = run(&world, reevaluate_event(&world)).await;
    assert_eq!(out["alarms"][0]["action"], "scaled", "{out}");
    assert_eq!(desired(&world, "random").await, 6);
    // Within the cooldown the same step adds nothing.
    let out = run(&world, reevaluate_event(&world)).await;
    assert_eq!(out["alarms"][0]["action"], "none", "{out}");
    assert_eq!(desired(&world, "random").await, 6);
    // Simulate the cooldown's end with an old record.
    let env = world.env();
    let rec = env.state.get("scale", "stage01/random").await.unwrap().expect("cooldown record");
    let mut data = rec.data.clone();
    data["lastScaleOutAt"] = json!(autopilot::state::now_epoch() as i64 - 121);
    env.state.put("scale", "stage01/random", &data, std::time::Duration::from_secs(3600)).await.unwrap();
    let out = run(&world, reevaluate_event(&world)).await;
    assert_eq!(out["alarms"][0]["action"], "scaled", "{out}");
    assert_eq!(desired(&world, "random").await, 8);
}

#[tokio::test]
async fn scale_in_waits_during_a_rollout_scale_out_does_not() {
    let world = World::seed().await;
    // A freshly created service in moto: PRIMARY IN_PROGRESS with no task running yet.
    world
        .ecs()
        .create_service()
        .cluster("stage01")
        .service_name("canary")
        .task_definition("random:1")
        .desired_count(4)
        .tags(aws_sdk_ecs::types::Tag::builder().key("autopilot:min").value("1").build())
        .send()
        .await
        .unwrap();
    let low = json!({"autopilot:scale": "stage01/canary", "autopilot:steps": ":0:-1"});
    let out = run(&world, alarm_event(&world, "canary-low", "ALARM", &[10.0], 30.0, "t1", Some(low))).await;
    assert_eq!(out["refusal"], "rollout-in-progress", "{out}");
    assert_eq!(desired(&world, "canary").await, 4);
    let notes = world.notifications().await;
    assert_eq!(notes.len(), 1);
    assert!(notes[0].0.contains("rollout"), "{}", notes[0].0);
    let high = json!({"autopilot:scale": "stage01/canary", "autopilot:steps": "+1"});
    let out = run(&world, alarm_event(&world, "canary-high", "ALARM", &[90.0], 70.0, "t2", Some(high))).await;
    assert_eq!(out["action"], "scaled", "{out}");
    assert_eq!(desired(&world, "canary").await, 5);
}

#[tokio::test]
async fn an_empty_instance_is_removed_and_a_busy_one_never_is() {
    let world = World::seed().await;
    asg(&world).update_auto_scaling_group().auto_scaling_group_name("stage01-asg").min_size(1).send().await.unwrap();
    let cis = container_instances(&world).await;
    assert_eq!(cis.len(), 2);
    let (busy, idle) = (&cis[0], &cis[1]);
    // Decoding moto's answer fails on launchType "" (as with run_task); the task is placed.
    let _ = world
        .ecs()
        .start_task()
        .cluster("stage01")
        .task_definition("random:1")
        .container_instances(busy.container_instance_arn().unwrap())
        .send()
        .await;
    // Protected from scale-in: kept.
    let idle_id = idle.ec2_instance_id().unwrap().to_string();
    asg(&world).set_instance_protection().auto_scaling_group_name("stage01-asg").instance_ids(&idle_id).protected_from_scale_in(true).send().await.unwrap();
    let out = reeval_capacity(&world).await;
    assert_eq!(out["capacity"], json!([]), "{out}");
    assert_eq!(group(&world).await.desired_capacity(), Some(2), "a protected instance is never removed");
    asg(&world).set_instance_protection().auto_scaling_group_name("stage01-asg").instance_ids(&idle_id).protected_from_scale_in(false).send().await.unwrap();
    let out = reeval_capacity(&world).await;
    assert_eq!(out["capacity"][0]["instance"], idle_id.as_str(), "{out}");
    let g = group(&world).await;
    assert_eq!(g.desired_capacity(), Some(1), "the idle instance went");
    assert!(g.instances().iter().all(|i| i.instance_id() != Some(idle_id.as_str())));
    let after = container_instances(&world).await;
    let drained = after.iter().find(|c| c.ec2_instance_id() == Some(idle_id.as_str()));
    assert!(drained.is_none_or(|c| c.status() != Some("ACTIVE")), "the idle instance was drained");
    // The busy instance stays, however often the schedule runs.
    let out = reeval_capacity(&world).await;
    assert_eq!(out["capacity"], json!([]), "{out}");
    assert_eq!(group(&world).await.desired_capacity(), Some(1));
    let busy_id = busy.ec2_instance_id().unwrap();
    assert!(group(&world).await.instances().iter().any(|i| i.instance_id() == Some(busy_id)));
}

#[tokio::test]
async fn placement_failure_grows_the_group() {
    let world = World::seed().await;
    fill_instances(&world).await;
    let out = run(&world, for_world(sample_event("ecs-service-action-placement-failure.json"), &world)).await;
    assert_eq!(out["capacity"]["action"], "grown", "{out}");
    assert_eq!(group(&world).await.desired_capacity(), Some(3));
    let notes = world.notifications().await;
    assert_eq!(notes.len(), 1);
    assert!(notes[0].0.starts_with("stage01-asg 2 -> 3"), "{}", notes[0].0);
    // At max, it says so.
    asg(&world).update_auto_scaling_group().auto_scaling_group_name("stage01-asg").max_size(3).send().await.unwrap();
    fill_instances(&world).await; // nothing more fits: moto places none, the group is already 3
    let out = run(&world, for_world(sample_event("ecs-service-action-placement-failure.json"), &world)).await;
    assert_eq!(group(&world).await.desired_capacity(), Some(3), "{out}");
}

#[tokio::test]
async fn an_alarm_without_the_tag_is_ignored() {
    let world = World::seed().await;
    let out = run(&world, alarm_event(&world, "auth-latency-high", "ALARM", &[1.5, 2.0, 2.5], 0.5, "t1", None)).await;
    assert_eq!(out["action"], "ignored", "{out}");
    assert_eq!(desired(&world, "auth").await, 2);
    assert!(world.notifications().await.is_empty());
}

#[tokio::test]
async fn malformed_tags_fail_with_the_tag_named_and_change_nothing() {
    let world = World::seed().await;
    let tags = json!({"autopilot:scale": "stage01/random", "autopilot:steps": "lots"});
    let err = Scaler::new(world.env()).handle(alarm_event(&world, "random-cpu-bad", "ALARM", &[90.0], 70.0, "t1", Some(tags))).await.unwrap_err();
    assert!(err.to_string().contains("random-cpu-bad") && err.to_string().contains("autopilot:steps"), "{err}");
    assert_eq!(desired(&world, "random").await, 4);
    assert_eq!(world.notifications().await.len(), 1);
}

#[tokio::test]
async fn dry_run_decides_and_notifies_without_changing_anything() {
    let world = World::seed().await;
    fill_instances(&world).await;
    let env = world.env_with(autopilot::Config { dry_run: true, ..world.config() });
    let out = Scaler::new(env).handle(alarm_event(&world, "random-cpu-high", "ALARM", &[85.0, 90.0], 70.0, "t1", None)).await.unwrap();
    assert_eq!((out["to"].as_u64(), out["dryRun"].as_bool()), (Some(6), Some(true)), "{out}");
    assert_eq!(out["capacity"]["action"], "grown", "{out}");
    assert_eq!(desired(&world, "random").await, 4);
    assert_eq!(group(&world).await.desired_capacity(), Some(2));
    let notes = world.notifications().await;
    assert!(notes[0].0.starts_with("[dry run] random 4 -> 6"), "{}", notes[0].0);
}

#[tokio::test]
async fn ok_transition_does_nothing_for_a_scale_out_alarm() {
    let world = World::seed().await;
    let out = run(&world, alarm_event(&world, "random-cpu-high", "OK", &[48.25, 52.5], 70.0, "t1", None)).await;
    assert_ne!(out["action"], "scaled", "{out}");
    assert_eq!(desired(&world, "random").await, 4);
}


#[tokio::test]
async fn sample_events_that_must_not_scale() {
    let world = World::seed().await;
    for file in ["cloudwatch-alarm-alarm-to-ok.json", "cloudwatch-alarm-insufficient-data.json"] {
        let out = run(&world, for_world(sample_event(file), &world)).await;
        assert_ne!(out["action"], "scaled", "{file}: {out}");
    }
    // A composite alarm carries no datapoints: only a single open step can apply.
    let mut composite = for_world(sample_event("cloudwatch-alarm-composite.json"), &world);
    composite["detail"]["alarmTags"] = json!({"autopilot:scale": "stage01/random", "autopilot:steps": "0:15:+1,15::+2"});
    composite["detail"]["alarmTagsStatus"] = json!("SUCCESS");
    let out = run(&world, composite.clone()).await;
    assert_eq!(out["action"], "skipped", "{out}");
    assert_eq!(desired(&world, "random").await, 4);
    composite["id"] = json!("composite-open-step");
    composite["detail"]["state"]["timestamp"] = json!("2025-11-25T14:35:13.000+0000");
    composite["detail"]["alarmTags"] = json!({"autopilot:scale": "stage01/random", "autopilot:steps": "+1"});
    let out = run(&world, composite).await;
    assert_eq!((out["action"].as_str(), out["to"].as_u64()), (Some("scaled"), Some(5)), "{out}");
    assert_eq!(desired(&world, "random").await, 5);
}

// ------------------------------------------------------------------ issue 14

/// OK never scales (Application Auto Scaling User Guide, "How step scaling works": the
/// adjustments continue "until the alarm state returns to OK"). A scale-in alarm with a bare
/// step (`-1`) used to scale in on ALARM and again on OK, removing capacity as load returned.
#[tokio::test]
async fn ok_ends_a_scaling_episode_and_never_scales() {
    let world = World::seed().await;
    let tags = [("autopilot:scale", "stage01/random"), ("autopilot:steps", "-1"), ("autopilot:cooldown", "0")];
    put_cpu_alarm(&world, "random-cpu-low", "random", ComparisonOperator::LessThanThreshold, 30.0, &tags).await;
    let event_tags = json!({"autopilot:scale": "stage01/random", "autopilot:steps": "-1", "autopilot:cooldown": "0"});
    let out = run(&world, alarm_event(&world, "random-cpu-low", "ALARM", &[10.0, 12.0], 30.0, "2025-11-25T15:00:00.000+0000", Some(event_tags.clone()))).await;
    assert_eq!((out["action"].as_str(), out["to"].as_u64()), (Some("scaled"), Some(3)), "{out}");
    world.notifications().await;
    // Load returns: the alarm goes back to OK. Nothing moves, nothing is said.
    let out = run(&world, alarm_event(&world, "random-cpu-low", "OK", &[45.0, 50.0], 30.0, "2025-11-25T15:10:00.000+0000", Some(event_tags))).await;
    assert_eq!(out["action"], "ignored", "{out}");
    assert!(out["reason"].as_str().unwrap().contains("never scales on OK"), "{out}");
    assert_eq!(desired(&world, "random").await, 3);
    assert!(world.notifications().await.is_empty());
}

/// `autopilot:steps` is validated as Application Auto Scaling validates StepAdjustments (API
/// reference, "StepAdjustment"): `0:10:+1` has a positive upper bound and no step without an
/// upper bound, which AAS refuses, so it is a `scale.invalid-tag` notification, not a silent
/// "matches no step" above 80. The notification comes once per alarm and value.
#[tokio::test]
async fn invalid_steps_are_told_once_per_alarm_and_value() {
    let world = World::seed().await;
    let bad = |steps: &str| json!({"autopilot:scale": "stage01/random", "autopilot:steps": steps});
    let scaler = Scaler::new(world.env());
    let e1 = alarm_event(&world, "random-cpu-gap", "ALARM", &[95.0], 70.0, "2025-11-25T15:00:00.000+0000", Some(bad("0:10:+1")));
    let err = scaler.handle(e1).await.expect_err("invalid steps fail the invocation");
    assert!(!err.retryable(), "{err}");
    assert!(err.to_string().contains("autopilot:steps") && err.to_string().contains("empty upper bound"), "{err}");
    let notes = world.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].1["metadata"]["eventType"], "scale.invalid-tag", "{:?}", notes[0].1);
    // The same value again (a later transition, or every re-evaluation): said already.
    let e2 = alarm_event(&world, "random-cpu-gap", "ALARM", &[95.0], 70.0, "2025-11-25T15:05:00.000+0000", Some(bad("0:10:+1")));
    assert!(scaler.handle(e2).await.is_err());
    assert!(world.notifications().await.is_empty());
    // Another mistake (a gap between steps) is told.
    let e3 = alarm_event(&world, "random-cpu-gap", "ALARM", &[95.0], 70.0, "2025-11-25T15:10:00.000+0000", Some(bad("0:10:+1 20::+2")));
    let err = scaler.handle(e3).await.expect_err("a gap");
    assert!(err.to_string().contains("gap"), "{err}");
    assert_eq!(world.notifications().await.len(), 1);
    assert_eq!(desired(&world, "random").await, 4);
}

/// The bare shortcut is read in the alarm's direction (its ComparisonOperator, from
/// DescribeAlarms): `+2` on a high alarm is [0, +inf), so an M-of-N alarm in ALARM whose mean is
/// below the threshold adds nothing; `-1` on a low alarm is (-inf, 0].
#[tokio::test]
async fn a_bare_step_is_read_in_the_alarms_direction() {
    let world = World::seed().await;
    let tags = |steps: &str| json!({"autopilot:scale": "stage01/random", "autopilot:steps": steps, "autopilot:cooldown": "0"});
    put_cpu_alarm(&world, "random-cpu-2of3", "random", ComparisonOperator::GreaterThanThreshold, 70.0, &[]).await;
    let out = run(&world, alarm_event(&world, "random-cpu-2of3", "ALARM", &[40.0, 75.0, 80.0], 70.0, "2025-11-25T15:00:00.000+0000", Some(tags("+2")))).await;
    assert_eq!(out["action"], "none", "mean 65 is below the threshold: [0, +inf) holds no breach: {out}");
    assert_eq!(desired(&world, "random").await, 4);
    let out = run(&world, alarm_event(&world, "random-cpu-2of3", "ALARM", &[75.0, 80.0], 70.0, "2025-11-25T15:01:00.000+0000", Some(tags("+2")))).await;
    assert_eq!((out["action"].as_str(), out["to"].as_u64()), (Some("scaled"), Some(6)), "{out}");
    put_cpu_alarm(&world, "random-cpu-quiet", "random", ComparisonOperator::LessThanThreshold, 30.0, &[]).await;
    let out = run(&world, alarm_event(&world, "random-cpu-quiet", "ALARM", &[35.0, 40.0], 30.0, "2025-11-25T15:02:00.000+0000", Some(tags("-1")))).await;
    assert_eq!(out["action"], "none", "mean 37.5 is above a low alarm's threshold: (-inf, 0] holds no breach: {out}");
    let out = run(&world, alarm_event(&world, "random-cpu-quiet", "ALARM", &[20.0, 25.0], 30.0, "2025-11-25T15:03:00.000+0000", Some(tags("-1")))).await;
    assert_eq!((out["action"].as_str(), out["to"].as_u64()), (Some("scaled"), Some(5)), "{out}");
}

/// An event that carries the alarm's tags (`alarmTags` with `alarmTagsStatus` SUCCESS: tag
/// propagation on; CloudWatch User Guide, "Alarm events and EventBridge") needs no
/// ListTagsForResource; without SUCCESS the tags are not complete and are read.
#[tokio::test]
async fn alarm_tags_in_the_event_are_used_when_cloudwatch_says_they_are_complete() {
    let world = World::seed().await;
    let proxy = AwsProxy::start();
    let env = || world.env_via(&proxy, world.config());
    let event = for_world(sample_event("cloudwatch-alarm-ok-to-alarm-tags.json"), &world);
    let out = run_with(env(), event.clone()).await;
    assert_eq!((out["action"].as_str(), out["to"].as_u64()), (Some("scaled"), Some(6)), "{out}");
    assert_eq!(proxy.count("monitoring:ListTagsForResource", "calls"), 0, "{}", proxy.stats());
    // The same alarm, its tags not retrieved (any status but SUCCESS): read from CloudWatch.
    let mut partial = for_world(sample_event("cloudwatch-alarm-ok-to-alarm-tags.json"), &world);
    partial["detail"]["alarmTagsStatus"] = json!("FAILURE");
    partial["detail"]["alarmTags"] = json!({});
    partial["detail"]["state"]["timestamp"] = json!("2025-11-25T15:00:00.000+0000");
    let out = run_with(env(), partial).await;
    assert_eq!(proxy.count("monitoring:ListTagsForResource", "calls"), 1, "{}", proxy.stats());
    assert_ne!(out["action"], "ignored", "the alarm's own tags opt it in: {out}");
}

/// Re-evaluation measures the alarm's metric now (GetMetricData over its evaluation window),
/// not the reason data of the transition: a breach that grows while the alarm stays in ALARM
/// reaches the larger step, as Application Auto Scaling's policy does.
#[tokio::test]
async fn reevaluation_measures_the_metric_now() {
    let world = World::seed().await;
    // The transition, a while ago: 75 and 80 (breach 7.5: step +1).
    set_alarm(&world, "random-cpu-high", &[75.0, 80.0], 70.0).await;
    // Now ECS reports 90 and 95 (breach 22.5: step +2).
    publish_cpu(&world, "random", &[90.0, 95.0]).await;
    let out = run(&world, reevaluate_event(&world)).await;
    let alarm = &out["alarms"][0];
    assert_eq!((alarm["action"].as_str(), alarm["to"].as_u64(), alarm["step"].as_str()), (Some("scaled"), Some(6), Some("+2")), "{out}");
    let notes = world.notifications().await;
    assert!(notes[0].0.contains("92.5 > 70 for 2 datapoints"), "{}", notes[0].0);
    // No datapoints now (the metric stopped reporting): nothing to measure, nothing done.
    let world = World::seed().await;
    set_alarm(&world, "random-cpu-high", &[85.0, 90.0], 70.0).await;
    let out = run(&world, reevaluate_event(&world)).await;
    assert_eq!(out["alarms"][0]["action"], "skipped", "{out}");
    assert_eq!(desired(&world, "random").await, 4);
}

/// A rollout is in progress when ECS says so: the PRIMARY deployment IN_PROGRESS with every
/// task running (not yet healthy behind the load balancer, or baking) holds scale-in back, and
/// so does an old ACTIVE deployment beside it; once ECS reports COMPLETED, scale-in proceeds.
/// (The suite's proxy answers DescribeServices as ECS would: tests/proxy/moto_compat.py.)
#[tokio::test]
async fn scale_in_waits_while_ecs_reports_a_rollout() {
    let world = World::seed().await;
    let low = |ts: &str| {
        let tags = json!({"autopilot:scale": "stage01/random", "autopilot:steps": ":0:-1", "autopilot:cooldown": "0"});
        alarm_event(&world, "random-cpu-low", "ALARM", &[10.0], 30.0, ts, Some(tags))
    };
    let svc = service(&world, "random").await;
    assert_eq!((svc.running_count(), svc.desired_count()), (4, 4));
    assert_eq!(svc.deployments()[0].rollout_state().map(|r| r.as_str()), Some("COMPLETED"), "a steady service, as ECS reports it");
    show_rollout(&world, "random", Some("IN_PROGRESS"), 0);
    let out = run(&world, low("2025-11-25T15:00:00.000+0000")).await;
    assert_eq!(out["refusal"], "rollout-in-progress", "{out}");
    show_rollout(&world, "random", Some("COMPLETED"), 1);
    let out = run(&world, low("2025-11-25T15:01:00.000+0000")).await;
    assert_eq!(out["refusal"], "rollout-in-progress", "an ACTIVE deployment's tasks are still being replaced: {out}");
    assert_eq!(desired(&world, "random").await, 4);
    show_rollout(&world, "random", None, 0);
    let out = run(&world, low("2025-11-25T15:02:00.000+0000")).await;
    assert_eq!((out["action"].as_str(), out["to"].as_u64()), (Some("scaled"), Some(3)), "{out}");
}

/// Idle instances are given time: one goes only after it has been idle for the configured
/// period (AUTOPILOT_IDLE_INSTANCE_SECONDS, 900 s by default, counted from when the state table
/// first recorded it idle) and registered at least the minimum age ago
/// (AUTOPILOT_MIN_INSTANCE_AGE_SECONDS, 600 s: the seed's instances registered seconds ago).
#[tokio::test]
async fn an_idle_instance_waits_its_idle_period_and_minimum_age() {
    let world = World::seed().await;
    asg(&world).update_auto_scaling_group().auto_scaling_group_name("stage01-asg").min_size(1).send().await.unwrap();
    let out = run(&world, reevaluate_event(&world)).await;
    assert_eq!(out["capacity"], json!([]), "first seen idle just now: {out}");
    let env = world.env();
    let rec = env.state.get("scale-idle", "stage01").await.unwrap().expect("the idle record");
    let since = rec.data["idleSince"].as_object().expect("idleSince").clone();
    assert_eq!(since.len(), 2, "{rec:?}");
    // Fifteen minutes later (the record backdated): idle long enough, but registered too recently.
    let long_ago = autopilot::state::now_epoch() as i64 - 901;
    let backdated = json!({"idleSince": since.keys().map(|k| (k.clone(), json!(long_ago))).collect::<serde_json::Map<_, _>>()});
    env.state.put("scale-idle", "stage01", &backdated, Duration::from_secs(3600)).await.unwrap();
    let out = run(&world, reevaluate_event(&world)).await;
    assert_eq!(out["capacity"], json!([]), "younger than the minimum age: {out}");
    assert_eq!(group(&world).await.desired_capacity(), Some(2));
    // Without the minimum age, the instance idle for 901 s goes.
    let older = world.env_with(autopilot::Config { min_instance_age: Duration::ZERO, ..world.config() });
    let out = run_with(older, reevaluate_event(&world)).await;
    assert_eq!(out["capacity"][0]["action"], "shrunk", "{out}");
    assert_eq!(group(&world).await.desired_capacity(), Some(1));
}

/// An instance already DRAINING because of ECS (managed draining, a Spot interruption) or a
/// person is theirs: the scaler neither drains it again nor terminates it with the group's
/// desired capacity decremented a second time (ECS API reference, UpdateContainerInstancesState;
/// EC2 Auto Scaling, TerminateInstanceInAutoScalingGroup).
#[tokio::test]
async fn an_instance_drained_by_someone_else_is_left_alone() {
    let world = World::seed().await;
    asg(&world).update_auto_scaling_group().auto_scaling_group_name("stage01-asg").min_size(1).send().await.unwrap();
    let cis = container_instances(&world).await;
    let (busy, other) = (&cis[0], &cis[1]);
    // Decoding moto's answer fails on launchType "" (as with run_task); the task is placed.
    let _ = world.ecs().start_task().cluster("stage01").task_definition("random:1").container_instances(busy.container_instance_arn().unwrap()).send().await;
    world
        .ecs()
        .update_container_instances_state()
        .cluster("stage01")
        .container_instances(other.container_instance_arn().unwrap())
        .status(aws_sdk_ecs::types::ContainerInstanceStatus::Draining)
        .send()
        .await
        .unwrap();
    let out = reeval_capacity(&world).await;
    assert_eq!(out["capacity"], json!([]), "{out}");
    assert_eq!(group(&world).await.desired_capacity(), Some(2), "the group's desired capacity is not lowered for someone else's drain");
    let other_id = other.ec2_instance_id().unwrap();
    assert!(group(&world).await.instances().iter().any(|i| i.instance_id() == Some(other_id)));
}

/// Task scale-in protection ("Protect your Amazon ECS tasks from being terminated by scale-in
/// events", https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection.html):
/// ECS does not stop a protected task when desiredCount drops, so the scaler never sets a count
/// below the service's protected tasks, and says why; with every task protected it refuses. The
/// suite's proxy answers GetTaskProtection (moto has none).
#[tokio::test]
async fn scale_in_never_goes_below_the_tasks_protected_from_scale_in() {
    let world = World::seed().await;
    // Under the Runtime API: the scaler binary as the template configures it.
    let lambda = harness::lambda::LocalLambda::start("scaler", &world.lambda_env());
    world.ecs().update_service().cluster("stage01").service("random").desired_count(6).send().await.unwrap();
    let tasks = harness::ecs::start_service_tasks(&world, "random", 6).await;
    assert_eq!(tasks.len(), 6, "{tasks:?}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    // Three protected for an hour; a fourth's protection expired a minute ago (ECS may stop it).
    let protection: Vec<(&str, bool, i64)> = tasks.iter().enumerate().map(|(i, t)| (t.as_str(), i < 4, if i < 3 { now + 3600 } else { now - 60 })).collect();
    harness::ecs::show_task_protection(&world, &protection);
    // 5 against 20: step -4 wants 6 -> 2 (autopilot:min 2); three tasks stay whatever we say.
    let low = json!({"autopilot:scale": "stage01/random", "autopilot:steps": ":0:-4"});
    let out = lambda.invoke(&alarm_event(&world, "random-cpu-low", "ALARM", &[5.0], 20.0, "t1", Some(low.clone()))).unwrap();
    assert_eq!((out["action"].as_str(), out["from"].as_u64(), out["to"].as_u64()), (Some("scaled"), Some(6), Some(3)), "{out}");
    assert_eq!(desired(&world, "random").await, 3);
    let notes = world.notifications().await;
    assert_eq!(notes.len(), 1);
    assert!(notes[0].1.to_string().contains("3 task(s) are protected from scale-in"), "{notes:?}");
    // Every task protected now: the next scale-in is refused and desiredCount stays.
    let all: Vec<(&str, bool, i64)> = tasks.iter().map(|t| (t.as_str(), true, now + 3600)).collect();
    harness::ecs::show_task_protection(&world, &all);
    world.env().state.delete("scale", "stage01/random").await.unwrap();
    let out = lambda.invoke(&alarm_event(&world, "random-cpu-low", "ALARM", &[5.0], 20.0, "t2", Some(low))).unwrap();
    assert_eq!((out["action"].as_str(), out["refusal"].as_str()), (Some("refused"), Some("tasks-protected")), "{out}");
    assert_eq!(desired(&world, "random").await, 3);
}

/// ECS Managed Instances own stage01's capacity (a capacity provider of `type` MANAGED_INSTANCES:
/// ECS launches and terminates the instances; there is no customer Auto Scaling group). The
/// scaler never grows or shrinks stage01-asg then, though autopilot:asg still names it: a
/// scale-out and a placement failure say whose the capacity is, naming the provider, and an
/// idle instance stays. The suite's proxy answers DescribeCapacityProviders (moto cannot create
/// such a provider).
#[tokio::test]
async fn ecs_managed_instances_capacity_is_never_grown_or_shrunk() {
    let world = World::seed().await;
    let provider = json!({
        "capacityProviderArn": format!("arn:aws:ecs:{}:{}:capacity-provider/stage01-mi", world.region, world.account),
        "name": "stage01-mi", "cluster": "stage01", "status": "ACTIVE", "type": "MANAGED_INSTANCES",
        "managedInstancesProvider": {"infrastructureRoleArn": format!("arn:aws:iam::{}:role/ecsInfrastructureRole", world.account)},
    });
    harness::ecs::give_capacity_providers(&world, vec![provider]).await;
    fill_instances(&world).await;
    // Under the Runtime API: the scaler binary as the template configures it.
    let lambda = harness::lambda::LocalLambda::start("scaler", &world.lambda_env());
    let out = lambda.invoke(&random_cpu_high(&world)).unwrap();
    assert_eq!((out["action"].as_str(), out["to"].as_u64()), (Some("scaled"), Some(6)), "{out}");
    assert_eq!(out["capacity"], json!({"provider": "stage01-mi", "ecsManages": "managed-instances"}), "{out}");
    assert_eq!(group(&world).await.desired_capacity(), Some(2), "no group of ours is grown");
    let notes = world.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].1["content"]["description"].as_str().unwrap().contains("capacity provider stage01-mi, ECS Managed Instances"), "{:?}", notes[0].1);
    // Tasks that cannot be placed: told once per service and window, the provider named.
    let failure = for_world(sample_event("ecs-service-action-placement-failure.json"), &world);
    let out = lambda.invoke(&failure).unwrap();
    assert_eq!(out["capacity"], json!({"provider": "stage01-mi", "ecsManages": "managed-instances"}), "{out}");
    let mut again = failure;
    again["id"] = json!("a-second-placement-failure");
    lambda.invoke(&again).unwrap();
    assert_eq!(group(&world).await.desired_capacity(), Some(2));
    let notes = world.notifications().await;
    assert_eq!(notes.iter().map(|n| n.0.as_str()).collect::<Vec<_>>(), ["random tasks cannot be placed in stage01: ECS manages the capacity (stage01-mi)"]);
    // An idle instance is ECS's to remove, not ours.
    harness::ecs::free_instances(&world).await;
    asg(&world).update_auto_scaling_group().auto_scaling_group_name("stage01-asg").min_size(1).send().await.unwrap();
    let out = reeval_capacity(&world).await;
    assert_eq!(out["capacity"], json!([]), "{out}");
    assert_eq!(group(&world).await.desired_capacity(), Some(2));
}
