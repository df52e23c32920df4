//! The scaler on the seed world in moto: alarm → desiredCount, cooldowns, replays, re-evaluation,
//! rollouts, and the EC2 Auto Scaling group behind stage01.

use autopilot::runtime::Function;
use autopilot_scaler::Scaler;
use harness::cloudwatch::{alarm_event, alarm_reason_data, random_cpu_high};
use harness::ecs::service;
use harness::{for_world, sample_event, World};
use serde_json::{json, Value};

async fn run(world: &World, event: Value) -> Value {
    Scaler::new(world.env()).handle(event).await.expect("scaler handles the event")
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
    run(world, reevaluate_event(world)).await
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
    composite["detail"]["tags"] = json!({"autopilot:scale": "stage01/random", "autopilot:steps": "0:15:+1,15::+2"});
    let out = run(&world, composite.clone()).await;
    assert_eq!(out["action"], "skipped", "{out}");
    assert_eq!(desired(&world, "random").await, 4);
    composite["id"] = json!("composite-open-step");
    composite["detail"]["state"]["timestamp"] = json!("2025-11-25T14:35:13.000+0000");
    composite["detail"]["tags"] = json!({"autopilot:scale": "stage01/random", "autopilot:steps": "+1"});
    let out = run(&world, composite).await;
    assert_eq!((out["action"].as_str(), out["to"].as_u64()), (Some("scaled"), Some(5)), "{out}");
    assert_eq!(desired(&world, "random").await, 5);
}
