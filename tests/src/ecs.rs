//! ECS in moto as the tests set it up and read it back: the standalone job the recovery stories
//! crash (its task definition, its runs, the STOPPED events ECS sends for them), new revisions
//! and tags of the seed world's services, and the services' state. One copy, so that the
//! deployer, recovery, reliability, security and bad-input tests crash the same job and read
//! the same state.
//!
//! Everything here talks to moto through the suite's endpoint ([`World::ecs`]), never through
//! a test's own fault-injecting proxy: set-up must not be what a fault hits.

use std::time::Duration;

use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::types::builders::ContainerDefinitionBuilder;
use aws_sdk_ecs::types::{
    ContainerDefinition, ContainerOverride, DeploymentController, DeploymentControllerType, KeyValuePair, LaunchType, Service, Tag, Task, TaskOverride,
};
use autopilot::runtime::Env;
use serde_json::{json, Value};

use crate::{for_world, sample_event, World};

/// The standalone job of the recovery stories: a nightly report an EventBridge rule runs on
/// stage01 (scripts/scenarios/recovery.sh runs the same job).
pub const JOB: &str = "nightly-report";
/// A secret-looking value in the job's task definition (`REPORT_DB_PASSWORD`): no log line,
/// outcome or notification may show it.
pub const JOB_ENV_SECRET: &str = "s3cr3t-job-env-b2c4e6";
/// A secret-looking value in the overrides the job runs with (`REPORT_TOKEN`): a re-run must
/// carry it, and nothing may show it.
pub const OVERRIDE_SECRET: &str = "s3cr3t-override-7d1f0a";

/// Send a RegisterTaskDefinition; the new revision's ARN.
pub async fn register(req: RegisterTaskDefinitionFluentBuilder) -> String {
    let out = req.send().await.expect("register_task_definition");
    out.task_definition().and_then(|td| td.task_definition_arn()).expect("the new revision's ARN").to_string()
}

/// The job's container: the seed world's random image with [`JOB_ENV_SECRET`] in its
/// environment, and its own memory (without it moto's RunTask answers 500). A test that needs
/// more (a `secrets` entry) adds it before [`register_job_with`].
pub fn job_container(w: &World) -> ContainerDefinitionBuilder {
    ContainerDefinition::builder()
        .name(JOB)
        .image(w.str("/images/random"))
        .memory(128)
        .essential(true)
        .environment(KeyValuePair::builder().name("REPORT_DB_PASSWORD").value(JOB_ENV_SECRET).build())
}

/// Register the job's task definition (`nightly-report:N`) with [`job_container`]; its ARN.
pub async fn register_job(w: &World) -> String {
    register_job_with(w, job_container(w).build()).await
}

/// Register the job's task definition with a container of the test's own; its ARN.
pub async fn register_job_with(w: &World, container: ContainerDefinition) -> String {
    register(w.ecs().register_task_definition().family(JOB).container_definitions(container)).await
}

/// A log-router sidecar (FireLens-style) for the job or a service: `essential` as its task
/// definition says (`None`: not set, which ECS reads as essential). ECS stops it (143, or 137
/// after the stop timeout) once the essential container has exited.
pub fn log_router(w: &World, essential: Option<bool>) -> ContainerDefinition {
    ContainerDefinition::builder().name("log-router").image(w.str("/images/random")).memory(64).set_essential(essential).build()
}

/// Register the job's task definition with [`job_container`] and a [`log_router`] sidecar; its ARN.
pub async fn register_job_with_sidecar(w: &World, essential: Option<bool>) -> String {
    register(w.ecs().register_task_definition().family(JOB).container_definitions(job_container(w).build()).container_definitions(log_router(w, essential))).await
}

/// The overrides the job runs with, as its EventBridge rule sends them: a command, and
/// [`OVERRIDE_SECRET`] in `REPORT_TOKEN`.
pub fn job_overrides() -> TaskOverride {
    TaskOverride::builder()
        .container_overrides(
            ContainerOverride::builder()
                .name(JOB)
                .command("php")
                .command("/var/www/bin/report.php")
                .command("--nightly")
                .environment(KeyValuePair::builder().name("REPORT_TOKEN").value(OVERRIDE_SECRET).build())
                .build(),
        )
        .build()
}

/// Run task definition `td` as the job's EventBridge rule does (EC2 on stage01, group
/// `batch:reports`, started by `events-rule/nightly`, [`job_overrides`]) with `tags`; the task
/// moto started. A re-run must keep all of these.
pub async fn run_job(w: &World, td: &str, tags: &[(&str, &str)]) -> Task {
    let mut req = w
        .ecs()
        .run_task()
        .cluster("stage01")
        .task_definition(td)
        .launch_type(LaunchType::Ec2)
        .group("batch:reports")
        .started_by("events-rule/nightly")
        .overrides(job_overrides());
    for (k, v) in tags {
        req = req.tags(Tag::builder().key(*k).value(*v).build());
    }
    let out = req.send().await.expect("run the job");
    out.tasks().first().expect("a task started").clone()
}

/// Stop a task the way a crash stops it (`Essential container in task exited`).
pub async fn stop_task(w: &World, arn: &str) {
    w.ecs().stop_task().cluster("stage01").task(arn).reason("Essential container in task exited").send().await.expect("stop task");
}

/// A STOPPED event for a task of `td` in `group`, shaped like the sample `sample` (fresh id, the
/// world's account): its one container, named after the family, exited with `exit_code` (`None`
/// keeps the sample's containers), and it carries the job's overrides with their environment
/// values, as ECS sends them (so a leak of [`OVERRIDE_SECRET`] would show).
pub fn stopped_event(w: &World, sample: &str, task_arn: &str, td: &str, group: &str, exit_code: Option<i64>) -> Value {
    let mut e = for_world(sample_event(sample), w);
    let d = &mut e["detail"];
    d["taskArn"] = json!(task_arn);
    d["clusterArn"] = json!(w.cluster_arn());
    d["taskDefinitionArn"] = json!(td);
    d["group"] = json!(group);
    d["attachments"] = json!([]);
    let container = td.rsplit('/').next().unwrap().split(':').next().unwrap().to_string();
    if let Some(code) = exit_code {
        d["containers"] = json!([{"name": container, "exitCode": code, "lastStatus": "STOPPED", "taskArn": task_arn}]);
    }
    d["overrides"] = json!({"containerOverrides": [{"name": container, "environment": [{"name": "REPORT_TOKEN", "value": OVERRIDE_SECRET}]}]});
    e["resources"] = json!([task_arn]);
    e
}

/// Run the job (task definition `td`) tagged `autopilot:restart=<restart>`, let it crash, and
/// return its STOPPED event (exit 1): what recovery is asked to re-run.
pub async fn crashed_job(w: &World, td: &str, restart: &str) -> Value {
    let task = run_job(w, td, &[("autopilot:restart", restart)]).await;
    let arn = task.task_arn().expect("task ARN");
    stop_task(w, arn).await;
    stopped_event(w, "ecs-task-stopped-crash.json", arn, td, "batch:reports", Some(1))
}

/// The ARN of the `n`-th made-up task of a service in stage01: recovery judges a service's
/// crashed tasks from their events, so they need not exist in moto.
pub fn service_task_arn(w: &World, n: usize) -> String {
    format!("arn:aws:ecs:{}:{}:task/stage01/{:032x}", w.region, w.account, 0xfeed_0000_u64 + n as u64)
}

/// Tasks of the job's family in stage01 (moto lists STOPPED ones too): the original and its
/// re-runs.
pub async fn job_tasks(w: &World) -> usize {
    w.ecs().list_tasks().cluster("stage01").family(JOB).send().await.expect("list tasks").task_arns().len()
}

/// A service of stage01 as DescribeServices shows it.
pub async fn service(w: &World, name: &str) -> Service {
    let out = w.ecs().describe_services().cluster("stage01").services(name).send().await.expect("describe_services");
    out.services().first().unwrap_or_else(|| panic!("no service {name} in stage01")).clone()
}

/// The task definition a service of stage01 runs (its ARN).
pub async fn service_td(w: &World, name: &str) -> String {
    service(w, name).await.task_definition().expect("the service's task definition").to_string()
}

/// Create service `name` in stage01 on task definition `td` (desired 1), tagged `tags`, with
/// deployment controller `controller` (`None`: ECS's default, rolling updates): a service next
/// to the seed world's, for what the seed does not have.
pub async fn create_service(w: &World, name: &str, td: &str, tags: &[(&str, &str)], controller: Option<DeploymentControllerType>) {
    let mut req = w.ecs().create_service().cluster("stage01").service_name(name).task_definition(td).desired_count(1);
    for (k, v) in tags {
        req = req.tags(Tag::builder().key(*k).value(*v).build());
    }
    if let Some(c) = controller {
        req = req.deployment_controller(DeploymentController::builder().r#type(c).build().expect("a deployment controller"));
    }
    req.send().await.unwrap_or_else(|e| panic!("create_service {name}: {e:?}"));
}

/// Tag one of the seed world's services (`/services/<name>`) with `key=value`.
pub async fn tag_service(w: &World, name: &str, key: &str, value: &str) {
    w.ecs()
        .tag_resource()
        .resource_arn(w.str(&format!("/services/{name}")))
        .tags(Tag::builder().key(key).value(value).build())
        .send()
        .await
        .expect("tag_resource");
}

/// What a deploy of random leaves behind, without the deployer: random:2 (random:1 on the image
/// tagged v2) registered, the service on it, and the records the deployer writes in `env`'s
/// state table (random:2 deployed 2 minutes ago over random:1, random:1 stable for a day). The
/// start of a crash loop after a deploy. Returns (random:1, random:2).
pub async fn deploy_random_v2(w: &World, env: &Env) -> (String, String) {
    let ecs = w.ecs();
    let v1 = w.str("/task_definitions/random");
    let base = ecs.describe_task_definition().task_definition(&v1).send().await.expect("describe random:1");
    let base = base.task_definition().expect("random:1");
    let mut container = base.container_definitions()[0].clone();
    container.image = Some(format!("{}:v2", w.str("/repositories/random/uri")));
    let v2 = register(
        ecs.register_task_definition()
            .family("random")
            .container_definitions(container)
            .set_requires_compatibilities(Some(base.requires_compatibilities().to_vec())),
    )
    .await;
    assert!(v2.ends_with("random:2"), "{v2}");
    ecs.update_service().cluster("stage01").service("random").task_definition(&v2).send().await.expect("update_service random");
    let now = autopilot::state::now_epoch();
    let (pk, sk) = autopilot::keys::deployment("stage01", "random");
    env.state.put(&pk, &sk, &json!({"taskDefinition": v2, "previous": v1, "at": now - 120}), Duration::from_secs(86400)).await.expect("deployment record");
    let (pk, sk) = autopilot::keys::stable_revision("stage01", "random");
    env.state.put(&pk, &sk, &json!({"taskDefinition": v1, "at": now - 86000}), Duration::from_secs(86400)).await.expect("stable record");
    (v1, v2)
}

/// Take the CPU of both container instances with four standalone `filler` tasks: moto never
/// starts service tasks, so this is how "the tasks no longer fit" happens. moto answers
/// launchType "" for these tasks, which the SDK cannot decode: the call's result is dropped, a
/// test that depends on it checks the instances.
pub async fn fill_instances(w: &World) {
    let ecs = w.ecs();
    ecs.register_task_definition()
        .family("filler")
        .container_definitions(ContainerDefinition::builder().name("filler").image("busybox").cpu(2048).memory(256).essential(true).build())
        .send()
        .await
        .expect("register filler");
    let _ = ecs.run_task().cluster("stage01").task_definition("filler").count(4).send().await;
}

/// Stop the `filler` tasks of [`fill_instances`]: the instances have room again. (moto's
/// StopTask answers with the task's launchType "", which the SDK cannot decode: the stop
/// happens, its answer is dropped.)
pub async fn free_instances(w: &World) {
    let ecs = w.ecs();
    let fillers = ecs.list_tasks().cluster("stage01").family("filler").send().await.expect("list the fillers");
    for arn in fillers.task_arns() {
        let _ = ecs.stop_task().cluster("stage01").task(arn).reason("room for the re-run").send().await;
    }
}

/// Have the suite's proxy answer DescribeServices (and UpdateService) for `service` with the
/// rollout ECS would report: its PRIMARY deployment in `rollout_state` (IN_PROGRESS, COMPLETED
/// or FAILED), with `active` ACTIVE deployments beside it (old tasks still being replaced);
/// `None` goes back to what a steady service shows. moto itself never rolls out
/// (tests/proxy/moto_compat.py: a steady service reads COMPLETED, a new one IN_PROGRESS).
pub fn show_rollout(w: &World, service: &str, rollout_state: Option<&str>, active: u32) {
    let body = json!({"account": w.str("/access_key_id"), "cluster": "stage01", "service": service, "rolloutState": rollout_state, "activeDeployments": active});
    tell_suite_proxy("/__proxy/ecs/rollouts", &body);
}

/// Have the suite's proxy answer ListServiceDeployments / DescribeServiceDeployments for
/// `service` of stage01 with `records` (ServiceDeployment objects, e.g. events/records/*.json
/// through `for_world`), as ECS keeps them; moto keeps none (tests/proxy/moto_compat.py).
pub fn show_service_deployments(w: &World, service: &str, records: Vec<Value>) {
    let body = json!({"account": w.str("/access_key_id"), "cluster": "stage01", "service": service, "serviceDeployments": records});
    tell_suite_proxy("/__proxy/ecs/service-deployments", &body);
}

/// A service deployment record of events/records/, for the world (its account in the ARNs).
pub fn deployment_record(w: &World, file: &str) -> Value {
    let path = crate::repo_root().join("events/records").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text.replace("123456789012", &w.account)).expect("a JSON record")
}

/// Have the suite's proxy show `config` as `service`'s deploymentConfiguration (a BLUE_GREEN,
/// LINEAR or CANARY strategy and its bake times), which moto drops; `None` stops.
pub fn show_deployment_configuration(w: &World, service: &str, config: Option<Value>) {
    let body = json!({"account": w.str("/access_key_id"), "cluster": "stage01", "service": service, "deploymentConfiguration": config});
    tell_suite_proxy("/__proxy/ecs/service-configuration", &body);
}

/// Have the suite's proxy show `service` as an Express Mode service (resourceManagementType ECS,
/// an empty taskDefinition) and carry out UpdateExpressGatewayService for it; `false` stops.
pub fn show_express(w: &World, service: &str, express: bool) {
    let mut body = json!({"account": w.str("/access_key_id"), "cluster": "stage01", "service": service});
    if express {
        body["resourceManagementType"] = json!("ECS");
    }
    tell_suite_proxy("/__proxy/ecs/service-configuration", &body);
}

/// POST `body` to a control endpoint of the suite's proxy (`--moto-compat`: what moto lacks,
/// tests/proxy/moto_compat.py), which must accept it.
pub fn tell_suite_proxy(path: &str, body: &Value) {
    let endpoint = crate::moto_endpoint();
    let addr = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let (status, answer) = crate::proxy::http_post(addr, path, body);
    assert_eq!(status, 200, "the suite's proxy at {endpoint} (--moto-compat) refused {path}: {answer}");
}

/// Start `count` tasks in stage01 standing for `service`'s (group `service:NAME`), and answer
/// their ARNs. moto never starts service tasks, and its ListTasks ignores `serviceName` (it lists
/// every task of the cluster), so these are the service's tasks as the scaler sees them. They run
/// a small task definition without host ports: moto places at most one task per instance of one
/// with fixed host ports, as the seed's services have. moto answers launchType "" for them, which
/// the SDK cannot decode: the RunTask answer is dropped and the tasks are listed instead.
pub async fn start_service_tasks(w: &World, service: &str, count: i32) -> Vec<String> {
    let ecs = w.ecs();
    let family = format!("{service}-tasks");
    ecs.register_task_definition()
        .family(&family)
        .container_definitions(ContainerDefinition::builder().name("app").image("busybox").cpu(128).memory(64).essential(true).build())
        .send()
        .await
        .expect("register the stand-in task definition");
    let _ = ecs.run_task().cluster("stage01").task_definition(&family).group(format!("service:{service}")).count(count).send().await;
    let listed = ecs.list_tasks().cluster("stage01").family(&family).send().await.expect("list the service's tasks");
    listed.task_arns().to_vec()
}

/// Have the suite's proxy answer GetTaskProtection for stage01 with `tasks` (task ARN,
/// protectionEnabled, expirationDate in epoch seconds), as ECS would after UpdateTaskProtection;
/// every other task reads unprotected. moto has no GetTaskProtection (tests/proxy/moto_compat.py).
pub fn show_task_protection(w: &World, tasks: &[(&str, bool, i64)]) {
    let endpoint = crate::moto_endpoint();
    let addr = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let protected: Vec<Value> = tasks.iter().map(|(arn, on, until)| json!({"taskArn": arn, "protectionEnabled": on, "expirationDate": until})).collect();
    let body = json!({"account": w.str("/access_key_id"), "cluster": "stage01", "protectedTasks": protected});
    let (status, answer) = crate::proxy::http_post(addr, "/__proxy/ecs/task-protection", &body);
    assert_eq!(status, 200, "the suite's proxy at {endpoint} (--moto-compat) must answer task protection: {answer}");
}

/// Have the suite's proxy answer DescribeCapacityProviders for the world's account with
/// `providers` (CapacityProvider objects as ECS answers them), and list them on stage01
/// (PutClusterCapacityProviders). moto cannot create an ECS Managed Instances provider
/// (tests/proxy/moto_compat.py).
pub async fn give_capacity_providers(w: &World, providers: Vec<Value>) {
    let endpoint = crate::moto_endpoint();
    let addr = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let names: Vec<String> = providers.iter().filter_map(|p| p["name"].as_str().map(String::from)).collect();
    let body = json!({"account": w.str("/access_key_id"), "capacityProviders": providers});
    let (status, answer) = crate::proxy::http_post(addr, "/__proxy/ecs/capacity-providers", &body);
    assert_eq!(status, 200, "the suite's proxy at {endpoint} (--moto-compat) must answer capacity providers: {answer}");
    w.ecs()
        .put_cluster_capacity_providers()
        .cluster("stage01")
        .set_capacity_providers(Some(names))
        .set_default_capacity_provider_strategy(Some(vec![]))
        .send()
        .await
        .expect("put the cluster's capacity providers");
}
