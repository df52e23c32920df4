//! The deployer on the seed world (moto): push-to-deploy, rollout reports, reconcile.
//! Each test has its own world (own moto account); assertions read the real state back.

use autopilot::runtime::Function;
use autopilot::Config;
use autopilot_deployer::Deployer;
use aws_sdk_ecs::types::{DeploymentControllerType, ServiceField, Tag, TaskDefinitionField};
use harness::ecr::{fake_sha256, push_event, push_image, put_manifest};
use harness::ecs::{create_service, service_td, tag_service};
use harness::{for_world, sample_event, World};
use serde_json::{json, Value};

// ------------------------------------------------------------------ helpers (local to this file)

fn uri(w: &World, repo: &str) -> String {
    w.str(&format!("/repositories/{repo}/uri"))
}

async fn images_of(w: &World, td: &str) -> Vec<(String, String)> {
    let out = w.ecs().describe_task_definition().task_definition(td).send().await.expect("describe_task_definition");
    out.task_definition()
        .unwrap()
        .container_definitions()
        .iter()
        .map(|c| (c.name().unwrap().to_string(), c.image().unwrap().to_string()))
        .collect()
}

async fn revisions(w: &World, family: &str) -> usize {
    w.ecs().list_task_definitions().family_prefix(family).send().await.expect("list_task_definitions").task_definition_arns().len()
}

async fn deploy(w: &World, config: Config, event: Value) -> Result<Value, autopilot::Error> {
    Deployer::new(w.env_with(config)).handle(event).await
}

/// Run Python/boto3 against the world (for set-ups the typed SDK makes long-winded).
async fn boto(w: &World, script: &str) -> Value {
    let prelude = format!(
        "import boto3, json, sys\ns = boto3.session.Session(aws_access_key_id={:?}, aws_secret_access_key={:?}, region_name={:?})\necs = s.client('ecs', endpoint_url={:?})\n",
        w.str("/access_key_id"),
        w.str("/secret_access_key"),
        w.region,
        w.endpoint
    );
    let out = tokio::process::Command::new(harness::python()).arg("-c").arg(format!("{prelude}{script}")).output().await.expect("python");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// The seed world with one more service in stage01, `name`, running auth's task definition
/// (so it shares auth's family and repository) and tagged `autopilot:deploy=<rule>`; the world
/// and that task definition's ARN.
async fn seed_with_auth_twin(name: &str, rule: &str) -> (World, String) {
    let w = World::seed().await;
    let td = service_td(&w, "auth").await;
    create_service(&w, name, &td, &[("autopilot:deploy", rule)], None).await;
    (w, td)
}

fn assert_no_secrets(w: &World, what: &str, text: &str) {
    for v in w.secret_values() {
        assert!(!text.contains(&v), "{what} leaks a secret value");
    }
}

// ------------------------------------------------------------------ push-to-deploy

#[tokio::test]
async fn push_v2_rolls_auth_onto_the_digest_and_leaves_random_alone() {
    let w = World::seed().await;
    let auth_before = service_td(&w, "auth").await;
    let random_before = service_td(&w, "random").await;
    let digest = push_image(&w, "auth", "v2", "a").await;

    let out = deploy(&w, w.config(), push_event(&w, "auth", Some("v2"), &digest)).await.expect("deployer");
    assert_eq!(out["status"], "deployed", "{out:#}");
    assert_eq!(out["deployed"].as_array().unwrap().len(), 1, "{out:#}");

    let auth_after = service_td(&w, "auth").await;
    assert_ne!(auth_after, auth_before);
    assert!(auth_after.ends_with("task-definition/auth:2"), "{auth_after}");
    assert_eq!(images_of(&w, &auth_after).await, vec![("auth".to_string(), format!("{}@{digest}", uri(&w, "auth")))]);
    assert_eq!(service_td(&w, "random").await, random_before, "random does not run auth");
    assert_eq!(revisions(&w, "random").await, 1);

    // The service keeps its deployment configuration, load balancer and desired count.
    let svc = w.ecs().describe_services().cluster("stage01").services("auth").include(ServiceField::Tags).send().await.unwrap();
    let svc = &svc.services()[0];
    assert_eq!(svc.desired_count(), 2);
    let dc = svc.deployment_configuration().expect("deployment configuration");
    assert_eq!((dc.maximum_percent(), dc.minimum_healthy_percent()), (Some(200), Some(50)));
    assert_eq!(svc.load_balancers().len(), 1);

    // The copy keeps tags, environment and everything else.
    let new = w.ecs().describe_task_definition().task_definition(&auth_after).include(TaskDefinitionField::Tags).send().await.unwrap();
    let old = w.ecs().describe_task_definition().task_definition(&auth_before).include(TaskDefinitionField::Tags).send().await.unwrap();
    assert_eq!(new.tags(), old.tags());
    assert_eq!(new.task_definition().unwrap().container_definitions()[0].environment(), old.task_definition().unwrap().container_definitions()[0].environment());

    // Recorded for recovery, and reported once.
    let (pk, sk) = autopilot::keys::deployment("stage01", "auth");
    let rec = w.env().state.get(&pk, &sk).await.unwrap().expect("deployment record");
    assert_eq!(rec.data["taskDefinition"], json!(auth_after));
    assert_eq!(rec.data["previous"], json!(auth_before));
    let notes = w.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].0.starts_with("auth: deploying auth:2 (v2, sha256:"), "{}", notes[0].0);
    let ctx = &notes[0].1["metadata"]["additionalContext"];
    assert_eq!((ctx["service"].as_str(), ctx["family"].as_str(), ctx["revision"].as_str(), ctx["imageTag"].as_str()), (Some("auth"), Some("auth"), Some("auth:2"), Some("v2")));
    assert_eq!(ctx["digest"], json!(digest));
    assert_no_secrets(&w, "notification", &notes[0].1.to_string());
    assert_no_secrets(&w, "outcome", &out.to_string());
}

#[tokio::test]
async fn replays_register_nothing() {
    let w = World::seed().await;
    let digest = push_image(&w, "auth", "v2", "a").await;
    let event = push_event(&w, "auth", Some("v2"), &digest);
    deploy(&w, w.config(), event.clone()).await.expect("first delivery");
    assert_eq!(revisions(&w, "auth").await, 2);
    let td = service_td(&w, "auth").await;

    let same_id = deploy(&w, w.config(), event.clone()).await.expect("replay");
    assert_eq!(same_id["status"], "replay");
    // Same image announced again under another event id (EventBridge duplicate): no change.
    let again = deploy(&w, w.config(), push_event(&w, "auth", Some("v2"), &digest)).await.expect("duplicate");
    assert_eq!(again["status"], "nothing-to-do", "{again:#}");
    assert!(again["skipped"][0]["reason"].as_str().unwrap().contains("already runs"), "{again:#}");
    assert_eq!(revisions(&w, "auth").await, 2);
    assert_eq!(service_td(&w, "auth").await, td);
    assert_eq!(w.notifications().await.len(), 1);
}

#[tokio::test]
async fn two_services_sharing_a_family_get_one_revision() {
    let (w, _) = seed_with_auth_twin("auth-b", "semver").await;
    let digest = push_image(&w, "auth", "v2", "a").await;
    let out = deploy(&w, w.config(), push_event(&w, "auth", Some("v2"), &digest)).await.expect("deployer");
    assert_eq!(out["deployed"].as_array().unwrap().len(), 2, "{out:#}");
    assert_eq!(revisions(&w, "auth").await, 2, "exactly one new revision");
    let a = service_td(&w, "auth").await;
    assert_eq!(service_td(&w, "auth-b").await, a);
    assert!(a.ends_with(":2"));
}

#[tokio::test]
async fn sidecars_from_other_repositories_stay() {
    let w = World::seed().await;
    let sidecar = format!("{}:v1", uri(&w, "random"));
    let script = format!(
        "td = ecs.describe_task_definition(taskDefinition='auth', include=['TAGS'])\n\
         c = td['taskDefinition']['containerDefinitions'][0]\n\
         side = {{'name': 'metrics', 'image': {sidecar:?}, 'memory': 64, 'essential': False}}\n\
         envoy = {{'name': 'envoy', 'image': 'public.ecr.aws/envoy/envoy:v1.29', 'memory': 64, 'essential': False}}\n\
         r = ecs.register_task_definition(family='auth', containerDefinitions=[c, side, envoy], requiresCompatibilities=['EC2'], tags=td['tags'])\n\
         ecs.update_service(cluster='stage01', service='auth', taskDefinition=r['taskDefinition']['taskDefinitionArn'])\n\
         print(json.dumps(r['taskDefinition']['taskDefinitionArn']))\n"
    );
    boto(&w, &script).await;
    let digest = push_image(&w, "auth", "v2", "a").await;
    deploy(&w, w.config(), push_event(&w, "auth", Some("v2"), &digest)).await.expect("deployer");
    let images = images_of(&w, &service_td(&w, "auth").await).await;
    assert_eq!(
        images,
        vec![
            ("auth".to_string(), format!("{}@{digest}", uri(&w, "auth"))),
            ("metrics".to_string(), sidecar),
            ("envoy".to_string(), "public.ecr.aws/envoy/envoy:v1.29".to_string()),
        ]
    );
    // random runs random:v1, the sidecar's image: a push of auth must not touch it either.
    assert_eq!(revisions(&w, "random").await, 1);
}

#[tokio::test]
async fn every_optional_field_round_trips() {
    let w = World::seed().await;
    let image = format!("{}:v1", uri(&w, "auth"));
    let script = format!(
        r#"
td = dict(
    family='full',
    taskRoleArn='arn:aws:iam::{acct}:role/task',
    executionRoleArn='arn:aws:iam::{acct}:role/exec',
    networkMode='awsvpc',
    containerDefinitions=[dict(
        name='app', image={image:?}, cpu=256, memory=512, memoryReservation=256, essential=True,
        portMappings=[dict(containerPort=8080, hostPort=8080, protocol='tcp', name='http', appProtocol='http')],
        environment=[dict(name='DB_PASSWORD', value='s3cr3t-auth-db-9f4c2e')],
        environmentFiles=[dict(value='arn:aws:s3:::bucket/app.env', type='s3')],
        secrets=[dict(name='TOKEN', valueFrom='arn:aws:ssm:us-east-1:{acct}:parameter/token')],
        healthCheck=dict(command=['CMD-SHELL', 'curl -f http://localhost:8080/ || exit 1'], interval=10, timeout=5, retries=3, startPeriod=20),
        restartPolicy=dict(enabled=True, ignoredExitCodes=[0], restartAttemptPeriod=60),
        versionConsistency='disabled',
        logConfiguration=dict(logDriver='awslogs', options={{'awslogs-group': '/ecs/full', 'awslogs-region': 'us-east-1', 'awslogs-stream-prefix': 'app'}}),
        mountPoints=[dict(sourceVolume='data', containerPath='/data', readOnly=False)],
        ulimits=[dict(name='nofile', softLimit=1024, hardLimit=4096)],
        dockerLabels={{'team': 'platform'}},
        linuxParameters=dict(initProcessEnabled=True),
        stopTimeout=30, startTimeout=60, readonlyRootFilesystem=True, user='1000',
        dependsOn=[dict(containerName='log', condition='START')],
    ), dict(name='log', image='public.ecr.aws/aws-observability/aws-for-fluent-bit:stable', memory=64, essential=False,
            firelensConfiguration=dict(type='fluentbit'))],
    volumes=[dict(name='data', efsVolumeConfiguration=dict(fileSystemId='fs-123', rootDirectory='/'))],
    placementConstraints=[dict(type='memberOf', expression='attribute:ecs.instance-type =~ t3.*')],
    requiresCompatibilities=['EC2', 'FARGATE'],
    cpu='1024', memory='2048', pidMode='task', ipcMode='none',
    proxyConfiguration=dict(type='APPMESH', containerName='app', properties=[dict(name='IgnoredUID', value='1337')]),
    inferenceAccelerators=[dict(deviceName='d1', deviceType='eia2.medium')],
    runtimePlatform=dict(cpuArchitecture='ARM64', operatingSystemFamily='LINUX'),
    ephemeralStorage=dict(sizeInGiB=30),
    tags=[dict(key='team', value='platform'), dict(key='cost-center', value='42')],
)
r = ecs.register_task_definition(**td)
arn = r['taskDefinition']['taskDefinitionArn']
ecs.create_service(cluster='stage01', serviceName='full', taskDefinition=arn, desiredCount=1,
                   tags=[dict(key='autopilot:deploy', value='semver')])
print(json.dumps(arn))
"#,
        acct = w.account
    );
    let before_arn = boto(&w, &script).await.as_str().unwrap().to_string();
    let digest = push_image(&w, "auth", "v2", "a").await;
    let out = deploy(&w, w.config(), push_event(&w, "auth", Some("v2"), &digest)).await.expect("deployer");
    let after_arn = service_td(&w, "full").await;
    assert_ne!(after_arn, before_arn, "{out:#}");

    let describe = |arn: String| {
        let w = &w;
        async move {
            let script = format!("print(json.dumps(ecs.describe_task_definition(taskDefinition={arn:?}, include=['TAGS']), default=str))");
            boto(w, &script).await
        }
    };
    let mut before = describe(before_arn).await;
    let mut after = describe(after_arn).await;
    assert_eq!(after["taskDefinition"]["containerDefinitions"][0]["image"], json!(format!("{}@{digest}", uri(&w, "auth"))));
    assert_eq!(after["taskDefinition"]["containerDefinitions"][1]["image"], before["taskDefinition"]["containerDefinitions"][1]["image"]);
    for v in [&mut before, &mut after] {
        v.as_object_mut().unwrap().remove("ResponseMetadata");
        let td = v["taskDefinition"].as_object_mut().unwrap();
        for k in ["taskDefinitionArn", "revision", "registeredAt"] {
            td.remove(k);
        }
        td["containerDefinitions"][0].as_object_mut().unwrap().remove("image");
    }
    assert_eq!(after, before, "only the image, revision, ARN and registration time may differ");
    // Sanity: the fields the issue names are really in there (moto stored them).
    let td = &after["taskDefinition"];
    for k in ["runtimePlatform", "ephemeralStorage", "proxyConfiguration", "volumes", "placementConstraints"] {
        assert!(td.get(k).is_some_and(|v| !v.is_null()), "moto did not keep {k}: {td:#}");
    }
    for k in ["restartPolicy", "versionConsistency", "healthCheck", "secrets"] {
        assert!(td["containerDefinitions"][0].get(k).is_some(), "moto did not keep container {k}");
    }
    assert_eq!(after["tags"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn an_older_push_never_downgrades() {
    let w = World::seed().await;
    let v2 = push_image(&w, "auth", "v2", "a").await;
    let v3 = push_image(&w, "auth", "v3", "a").await;
    deploy(&w, w.config(), push_event(&w, "auth", Some("v3"), &v3)).await.expect("v3");
    let td = service_td(&w, "auth").await;
    // The v2 event arrives late.
    let out = deploy(&w, w.config(), push_event(&w, "auth", Some("v2"), &v2)).await.expect("late v2");
    assert_eq!(out["status"], "nothing-to-do", "{out:#}");
    let reason = out["skipped"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("never downgrade") && reason.contains("v3"), "{reason}");
    assert_eq!(service_td(&w, "auth").await, td);
    assert_eq!(revisions(&w, "auth").await, 2);
}

#[tokio::test]
async fn same_tag_new_digest_is_deployed() {
    let w = World::seed().await;
    let first = push_image(&w, "auth", "v2", "a").await;
    deploy(&w, w.config(), push_event(&w, "auth", Some("v2"), &first)).await.expect("first");
    let second = push_image(&w, "auth", "v2", "rebuilt").await;
    assert_ne!(first, second);
    let out = deploy(&w, w.config(), push_event(&w, "auth", Some("v2"), &second)).await.expect("second");
    assert_eq!(out["status"], "deployed", "{out:#}");
    let images = images_of(&w, &service_td(&w, "auth").await).await;
    assert_eq!(images[0].1, format!("{}@{second}", uri(&w, "auth")));
    assert_eq!(revisions(&w, "auth").await, 3);
}

#[tokio::test]
async fn code_deploy_services_are_skipped() {
    let w = World::seed().await;
    let td = service_td(&w, "auth").await;
    create_service(&w, "auth-bg", &td, &[("autopilot:deploy", "any")], Some(DeploymentControllerType::CodeDeploy)).await;
    let digest = push_image(&w, "auth", "v2", "a").await;
    let out = deploy(&w, w.config(), push_event(&w, "auth", Some("v2"), &digest)).await.expect("deployer");
    let skip = out["skipped"].as_array().unwrap().iter().find(|s| s["service"] == "auth-bg").expect("auth-bg skipped");
    assert!(skip["reason"].as_str().unwrap().contains("CODE_DEPLOY"), "{skip}");
    assert_eq!(service_td(&w, "auth-bg").await, td, "moto would accept it; we must not send it");
    assert_ne!(service_td(&w, "auth").await, td);
    // Told once per service why, with AWS's migration guide to ECS-native blue/green.
    let notes = w.notifications().await;
    let told: Vec<&(String, Value)> = notes.iter().filter(|(_, b)| b["metadata"]["eventType"] == "deploy.code-deploy-skipped").collect();
    assert_eq!(told.len(), 1, "{notes:?}");
    assert_eq!(told[0].0, "auth-bg: not deployed, its deployments are controlled by CodeDeploy");
    assert!(told[0].1["content"]["description"].as_str().unwrap().contains(autopilot_deployer::plan::CODE_DEPLOY_MIGRATION), "{:#}", told[0].1);
    let digest = push_image(&w, "auth", "v3", "b").await;
    deploy(&w, w.config(), push_event(&w, "auth", Some("v3"), &digest)).await.expect("deployer");
    let notes = w.notifications().await;
    assert!(notes.iter().all(|(_, b)| b["metadata"]["eventType"] != "deploy.code-deploy-skipped"), "once per service: {notes:?}");
}

#[tokio::test]
async fn dry_run_changes_nothing_but_reports_the_plan() {
    let w = World::seed().await;
    let td = service_td(&w, "auth").await;
    let digest = push_image(&w, "auth", "v2", "a").await;
    let config = Config { dry_run: true, ..w.config() };
    let out = deploy(&w, config, push_event(&w, "auth", Some("v2"), &digest)).await.expect("dry run");
    assert_eq!(out["status"], "dry-run", "{out:#}");
    assert_eq!(out["plan"][0]["family"], "auth");
    assert_eq!(service_td(&w, "auth").await, td);
    assert_eq!(revisions(&w, "auth").await, 1);
    let notes = w.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].0.starts_with("[dry run] auth: would deploy auth"), "{}", notes[0].0);
    // The real run afterwards is not blocked by anything the dry run wrote.
    let out = deploy(&w, w.config(), push_event(&w, "auth", Some("v2"), &digest)).await.expect("real run");
    assert_eq!(out["status"], "deployed", "{out:#}");
}

#[tokio::test]
async fn a_failing_service_does_not_block_the_others_and_fails_the_invocation() {
    let w = World::seed().await;
    // `doomed` runs auth from a task definition that no longer exists: reading it fails.
    let image = format!("{}:v1", uri(&w, "auth"));
    let script = format!(
        "r = ecs.register_task_definition(family='doomed', containerDefinitions=[dict(name='app', image={image:?}, memory=128)])\n\
         arn = r['taskDefinition']['taskDefinitionArn']\n\
         ecs.create_service(cluster='stage01', serviceName='doomed', taskDefinition=arn, desiredCount=1, tags=[dict(key='autopilot:deploy', value='any')])\n\
         ecs.deregister_task_definition(taskDefinition=arn)\n\
         ecs.delete_task_definitions(taskDefinitions=[arn])\n\
         print(json.dumps(arn))\n"
    );
    boto(&w, &script).await;
    let before = service_td(&w, "auth").await;
    let digest = push_image(&w, "auth", "v2", "a").await;
    let err = deploy(&w, w.config(), push_event(&w, "auth", Some("v2"), &digest)).await.expect_err("the invocation fails");
    assert_eq!(err.kind(), "PartialFailure", "{err}");
    assert!(err.to_string().contains("stage01/doomed"), "{err}");
    assert!(!err.retryable(), "a missing task definition does not come back by retrying: {err}");
    assert_ne!(service_td(&w, "auth").await, before, "auth is deployed all the same");
}

// ------------------------------------------------------------------ rollout reports

#[tokio::test]
async fn completed_rollout_records_the_stable_revision_and_notifies_once() {
    let w = World::seed().await;
    let digest = push_image(&w, "auth", "v2", "a").await;
    deploy(&w, w.config(), push_event(&w, "auth", Some("v2"), &digest)).await.expect("deploy");
    let started = w.notifications().await;
    assert_eq!(started.len(), 1, "{started:?}");
    let push_thread = started[0].1["metadata"]["threadId"].as_str().expect("the push's threadId").to_string();
    let td = service_td(&w, "auth").await;
    let svc = w.ecs().describe_services().cluster("stage01").services("auth").send().await.unwrap();
    let dep_id = svc.services()[0].deployments()[0].id().unwrap().to_string();

    let mut event = for_world(sample_event("ecs-deployment-completed.json"), &w);
    event["detail"]["deploymentId"] = json!(dep_id);
    let out = deploy(&w, w.config(), event.clone()).await.expect("completed");
    assert_eq!(out["status"], "stable", "{out:#}");
    let (pk, sk) = autopilot::keys::stable_revision("stage01", "auth");
    let rec = w.env().state.get(&pk, &sk).await.unwrap().expect("stable record");
    assert!(autopilot_deployer::plan::same_revision(rec.data["taskDefinition"].as_str().unwrap(), &td), "{rec:?}");
    let notes = w.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].0.starts_with("auth rolled onto auth:2 (v2, sha256:"), "{}", notes[0].0);
    // Issue 17 item 10: one push, one chat thread (custom notifications' threadId,
    // https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html): the rollout's end
    // answers in the thread of the push that started it, found through the deployment record.
    assert_eq!(notes[0].1["metadata"]["threadId"], push_thread.as_str(), "{:#}", notes[0].1);
    assert_eq!(push_thread, autopilot::notify::push_thread("auth", &digest));
    let related = notes[0].1["metadata"]["relatedResources"].as_array().expect("relatedResources");
    assert!(related.contains(&json!(w.str("/services/auth"))) && related.iter().any(|a| a.as_str().is_some_and(|a| a.contains(":task-definition/auth:2"))), "{related:?}");
    assert!(notes[0].1["content"].get("nextSteps").is_none(), "a completed rollout asks nothing: {:#}", notes[0].1);

    // The same deployment reported again under another event id: no second notification.
    let mut dup = for_world(sample_event("ecs-deployment-completed.json"), &w);
    dup["detail"]["deploymentId"] = json!(dep_id);
    deploy(&w, w.config(), dup).await.expect("duplicate");
    assert!(w.notifications().await.is_empty());
}

#[tokio::test]
async fn failed_rollout_is_reported_with_reason_and_services_not_opted_in_are_ignored() {
    let w = World::seed().await;
    let event = for_world(sample_event("ecs-deployment-failed.json"), &w);
    let out = deploy(&w, w.config(), event).await.expect("failed event");
    assert_eq!(out["status"], "failed", "{out:#}");
    let notes = w.notifications().await;
    assert_eq!(notes.len(), 1);
    assert!(notes[0].0.starts_with("random: rollout failed, running random:1"), "{}", notes[0].0);
    assert!(notes[0].1["metadata"]["additionalContext"]["reason"].as_str().unwrap().contains("circuit breaker"));

    w.ecs().untag_resource().resource_arn(w.str("/services/random")).tag_keys("autopilot:deploy").send().await.unwrap();
    let out = deploy(&w, w.config(), for_world(sample_event("ecs-deployment-failed.json"), &w)).await.expect("not opted in");
    assert_eq!(out["status"], "ignored", "{out:#}");
    assert!(w.notifications().await.is_empty());
}

// ------------------------------------------------------------------ deployments paused at a pause hook
// events/ecs-hook-awaiting-action.json is AWS's documented "hook awaiting action" example
// (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_hook_state_change_events.html)
// in the seed world: auth's deployment paused at POST_TEST_TRAFFIC_SHIFT.

#[tokio::test]
async fn a_deployment_paused_at_a_pause_hook_is_told_once_with_the_commands_to_continue_or_roll_back() {
    let w = World::seed().await;
    let event = for_world(sample_event("ecs-hook-awaiting-action.json"), &w);
    let arn = event["detail"]["serviceDeploymentArn"].as_str().unwrap().to_string();
    let hook = event["detail"]["hookId"].as_str().unwrap().to_string();
    let out = deploy(&w, w.config(), event).await.expect("hook event");
    assert_eq!(out["status"], "awaiting-approval", "{out:#}");
    assert_eq!((out["service"].as_str(), out["hookId"].as_str(), out["notified"].as_bool()), (Some("auth"), Some(hook.as_str()), Some(true)), "{out:#}");
    assert_eq!(out["expiresAt"], "2025-11-26T14:06:41Z");
    let notes = w.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    let (subject, body) = &notes[0];
    assert_eq!(subject, "auth: deployment paused at POST_TEST_TRAFFIC_SHIFT, awaiting approval");
    assert_eq!(body["metadata"]["eventType"], "deploy.awaiting-approval");
    let description = body["content"]["description"].as_str().unwrap();
    for action in ["CONTINUE", "ROLLBACK"] {
        let cmd = format!("aws ecs continue-service-deployment --region {} --service-deployment-arn {arn} --hook-id {hook} --action {action}", w.region);
        assert!(description.contains(&cmd), "{action}: {description}");
    }
    assert!(description.contains("waits until 2025-11-26T14:06:41Z"), "{description}");
    // moto has no DescribeServiceDeployments: the message goes out all the same, saying so.
    assert!(description.contains("ECS's default is ROLLBACK"), "{description}");
    assert_no_secrets(&w, "the notification", &body.to_string());

    // The same hook delivered again under another event id: no second message.
    let out = deploy(&w, w.config(), for_world(sample_event("ecs-hook-awaiting-action.json"), &w)).await.expect("again");
    assert_eq!(out["notified"], false, "{out:#}");
    assert!(w.notifications().await.is_empty());

    // A dry run tells the same (the message changes nothing), for the next hook.
    let mut next = for_world(sample_event("ecs-hook-awaiting-action.json"), &w);
    next["detail"]["hookId"] = json!("ecs-pause-next");
    let out = deploy(&w, Config { dry_run: true, ..w.config() }, next).await.expect("dry run");
    assert_eq!(out["notified"], true, "{out:#}");
    let notes = w.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].0.starts_with("[dry run] auth: deployment paused"), "{}", notes[0].0);
    assert!(notes[0].1["content"]["description"].as_str().unwrap().contains("--hook-id ecs-pause-next --action CONTINUE"));
    // Issue 17 item 10: the two commands are its nextSteps; a rollout no push of ours started is
    // the deployment's own thread (its end, rollout.rs, answers there too).
    assert_eq!(body["content"]["nextSteps"].as_array().map(Vec::len), Some(2), "{body:#}");
    assert_eq!(body["metadata"]["threadId"], autopilot_deployer::messages::deployment_thread(&arn).as_str());

    // A rollout a push of ours started: its pause answers in the push's thread.
    let (digest, _) = push_and_deploy(&w, "auth", "v2", "a").await;
    w.notifications().await;
    let mut ours = for_world(sample_event("ecs-hook-awaiting-action.json"), &w);
    ours["detail"]["hookId"] = json!("ecs-pause-ours");
    deploy(&w, w.config(), ours).await.expect("a pause of our rollout");
    let notes = w.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].1["metadata"]["threadId"], autopilot::notify::push_thread("auth", &digest).as_str(), "{:#}", notes[0].1);
}

#[tokio::test]
async fn hook_events_that_ask_nothing_or_concern_services_not_opted_in_tell_no_one() {
    let w = World::seed().await;
    for name in ["HOOK_SUCCEEDED", "HOOK_FAILED", "HOOK_TIMED_OUT", "HOOK_IN_PROGRESS"] {
        let mut event = for_world(sample_event("ecs-hook-awaiting-action.json"), &w);
        event["detail"]["eventName"] = json!(name);
        let out = deploy(&w, w.config(), event).await.expect(name);
        assert_eq!(out["status"], "ignored", "{name}: {out:#}");
    }
    let out = deploy(&w, Config { clusters: vec!["prod".into()], ..w.config() }, for_world(sample_event("ecs-hook-awaiting-action.json"), &w)).await.expect("unmanaged");
    assert_eq!(out["reason"], "cluster stage01 is not managed", "{out:#}");
    w.ecs().untag_resource().resource_arn(w.str("/services/auth")).tag_keys("autopilot:deploy").send().await.unwrap();
    let out = deploy(&w, w.config(), for_world(sample_event("ecs-hook-awaiting-action.json"), &w)).await.expect("not opted in");
    assert_eq!(out["reason"], "auth is not opted in (autopilot:deploy absent)", "{out:#}");
    assert!(w.notifications().await.is_empty());
}

// ------------------------------------------------------------------ reconcile and skips

#[tokio::test]
async fn reconcile_deploys_what_a_lost_event_left_behind() {
    let w = World::seed().await;
    let digest = push_image(&w, "auth", "v2", "a").await;
    push_image(&w, "auth", "latest", "x").await; // newer, but auth deploys semver tags only
    let random_before = service_td(&w, "random").await;
    let out = deploy(&w, w.config(), for_world(sample_event("schedule-reconcile.json"), &w)).await.expect("reconcile");
    assert_eq!(out["status"], "deployed", "{out:#}");
    assert_eq!(images_of(&w, &service_td(&w, "auth").await).await[0].1, format!("{}@{digest}", uri(&w, "auth")));
    assert_eq!(service_td(&w, "random").await, random_before, "random already runs its newest image");
    // A second run finds everything in sync.
    let out = deploy(&w, w.config(), for_world(sample_event("schedule-reconcile.json"), &w)).await.expect("reconcile again");
    assert_eq!(out["status"], "in-sync", "{out:#}");
    assert_eq!(revisions(&w, "auth").await, 2);
}

#[tokio::test]
async fn skips_touch_nothing() {
    let w = World::seed().await;
    let td = service_td(&w, "auth").await;
    let digest = push_image(&w, "auth", "latest", "a").await;
    for (name, event) in [
        ("failed push", for_world(sample_event("ecr-push-failed.json"), &w)),
        ("delete", for_world(sample_event("ecr-delete.json"), &w)),
        ("tag outside the rules", push_event(&w, "auth", Some("latest"), &digest)),
        ("untagged", push_event(&w, "auth", None, &digest)),
        ("nobody runs it", push_event(&w, "nobody", Some("v2"), &digest)),
        ("other schedule", for_world(sample_event("schedule-reevaluate.json"), &w)),
    ] {
        let out = deploy(&w, w.config(), event).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(["ignored", "nothing-to-do"].contains(&out["status"].as_str().unwrap()), "{name}: {out:#}");
    }
    assert_eq!(service_td(&w, "auth").await, td);
    assert_eq!(revisions(&w, "auth").await, 1);
    assert!(w.notifications().await.is_empty());
}

#[tokio::test]
async fn pin_tag_deploys_the_tag_and_follows_a_moved_tag() {
    let w = World::seed().await;
    tag_service(&w, "auth", "autopilot:pin", "tag").await;
    let first = push_image(&w, "auth", "v2", "a").await;
    deploy(&w, w.config(), push_event(&w, "auth", Some("v2"), &first)).await.expect("first");
    let td = service_td(&w, "auth").await;
    assert_eq!(images_of(&w, &td).await[0].1, format!("{}:v2", uri(&w, "auth")));
    // A duplicate of the same push (new event id) registers nothing.
    let dup = deploy(&w, w.config(), push_event(&w, "auth", Some("v2"), &first)).await.expect("duplicate");
    assert_eq!(dup["status"], "nothing-to-do", "{dup:#}");
    assert_eq!(revisions(&w, "auth").await, 2);
    // v2 rebuilt: same image string, but a new revision so ECS resolves the tag again.
    let second = push_image(&w, "auth", "v2", "rebuilt").await;
    let out = deploy(&w, w.config(), push_event(&w, "auth", Some("v2"), &second)).await.expect("rebuilt");
    assert_eq!(out["status"], "deployed", "{out:#}");
    assert_eq!(revisions(&w, "auth").await, 3);
    assert_ne!(service_td(&w, "auth").await, td);
}

// ------------------------------------------------------------------ the autopilot:deploy rules
// DESIGN.md, "Opt-in lives on the resources": space-separated rules ECS accepts as a tag value.

/// Push `repo:tag` and deliver its event; the deployer's outcome.
async fn push_and_deploy(w: &World, repo: &str, tag: &str, salt: &str) -> (String, Value) {
    let digest = push_image(w, repo, tag, salt).await;
    let out = deploy(w, w.config(), push_event(w, repo, Some(tag), &digest)).await.unwrap_or_else(|e| panic!("push {repo}:{tag}: {e}"));
    (digest, out)
}

fn skip_reason<'a>(out: &'a Value, service: &str) -> &'a str {
    out["skipped"].as_array().and_then(|s| s.iter().find(|s| s["service"] == service)).and_then(|s| s["reason"].as_str()).unwrap_or_else(|| panic!("{service} not skipped: {out:#}"))
}

fn deployed_services(out: &Value) -> Vec<String> {
    out["deployed"].as_array().map(|d| d.iter().map(|d| d["service"].as_str().unwrap_or_default().to_string()).collect()).unwrap_or_default()
}

#[tokio::test]
async fn semver_deploys_newer_releases_only() {
    let w = World::seed().await; // auth: autopilot:deploy=semver, runs auth:v1
    let (v2, out) = push_and_deploy(&w, "auth", "v2", "a").await;
    assert_eq!(deployed_services(&out), ["auth"], "{out:#}");
    let (v3, out) = push_and_deploy(&w, "auth", "v3", "a").await;
    assert_eq!(deployed_services(&out), ["auth"], "{out:#}");
    assert_ne!(v2, v3);
    assert_eq!(images_of(&w, &service_td(&w, "auth").await).await[0].1, format!("{}@{v3}", uri(&w, "auth")));

    let (_, out) = push_and_deploy(&w, "auth", "v3.1.0-rc.1", "a").await;
    assert_eq!(out["status"], "nothing-to-do", "{out:#}");
    assert!(skip_reason(&out, "auth").contains("tag v3.1.0-rc.1 does not match autopilot:deploy=\"semver\""), "{out:#}");
    // A v2 hotfix pushed after v3 is newer in time, older in version: never a downgrade.
    let (_, out) = push_and_deploy(&w, "auth", "v2.5.0", "a").await;
    assert_eq!(out["status"], "nothing-to-do", "{out:#}");
    assert!(skip_reason(&out, "auth").contains("never downgrade: pushed v2.5.0 is older than running v3"), "{out:#}");

    assert_eq!(images_of(&w, &service_td(&w, "auth").await).await[0].1, format!("{}@{v3}", uri(&w, "auth")));
    assert_eq!(revisions(&w, "auth").await, 3, "v2 and v3, nothing else");
    // The reconcile pass agrees: v3 is the newest release, the rc and the hotfix are not.
    let out = deploy(&w, w.config(), for_world(sample_event("schedule-reconcile.json"), &w)).await.expect("reconcile");
    assert_eq!(out["status"], "in-sync", "{out:#}");
}

#[tokio::test]
async fn prefix_deploys_matching_tags_and_not_main() {
    let (w, td) = seed_with_auth_twin("auth-release", "prefix:release-").await;
    let (digest, out) = push_and_deploy(&w, "auth", "release-42", "a").await;
    assert_eq!(deployed_services(&out), ["auth-release"], "{out:#}");
    assert!(skip_reason(&out, "auth").contains("does not match autopilot:deploy=\"semver\""), "{out:#}");
    assert_eq!(images_of(&w, &service_td(&w, "auth-release").await).await[0].1, format!("{}@{digest}", uri(&w, "auth")));

    let (_, out) = push_and_deploy(&w, "auth", "main", "a").await;
    assert_eq!(out["status"], "nothing-to-do", "{out:#}");
    assert!(skip_reason(&out, "auth-release").contains("tag main does not match autopilot:deploy=\"prefix:release-\""), "{out:#}");
    assert_eq!(service_td(&w, "auth").await, td, "auth deploys semver tags only");
    assert_eq!(revisions(&w, "auth").await, 2);
}

#[tokio::test]
async fn a_literal_tag_redeploys_a_repush_with_a_new_digest() {
    let (w, _) = seed_with_auth_twin("auth-edge", "latest").await;
    let (first, out) = push_and_deploy(&w, "auth", "latest", "a").await;
    assert_eq!(deployed_services(&out), ["auth-edge"], "{out:#}");
    let (second, out) = push_and_deploy(&w, "auth", "latest", "rebuilt").await;
    assert_ne!(first, second);
    assert_eq!(deployed_services(&out), ["auth-edge"], "{out:#}");
    assert_eq!(images_of(&w, &service_td(&w, "auth-edge").await).await[0].1, format!("{}@{second}", uri(&w, "auth")));
    let (_, out) = push_and_deploy(&w, "auth", "v9-latest", "a").await;
    assert!(deployed_services(&out).is_empty(), "v9-latest is a pre-release to semver: {out:#}");
    assert!(skip_reason(&out, "auth-edge").contains("does not match autopilot:deploy=\"latest\""), "{out:#}");
}

/// An artifact in ECR next to the images: an OCI manifest, under `tag` or untagged (moto keeps it
/// like an image).
async fn push_artifact(w: &World, repo: &str, tag: Option<&str>) -> String {
    let seed = tag.unwrap_or("untagged");
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 233, "digest": fake_sha256(&format!("{seed}:config"))},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "size": 250, "digest": fake_sha256(&format!("{repo}:{seed}:sig"))}],
    });
    put_manifest(w, repo, tag, &manifest).await
}

#[tokio::test]
async fn any_deploys_a_new_tag_but_never_an_artifact() {
    let (w, _) = seed_with_auth_twin("auth-any", "any").await;
    let (feature, out) = push_and_deploy(&w, "auth", "feature-x", "a").await;
    assert_eq!(deployed_services(&out), ["auth-any"], "{out:#}");
    let on_feature = service_td(&w, "auth-any").await;

    // cosign's classic signature of that image: an OCI image config, so only its tag gives it away
    // (events/ecr-push-cosign-signature.json).
    let sig_tag = format!("sha256-{}.sig", feature.trim_start_matches("sha256:"));
    let sig = push_artifact(&w, "auth", Some(&sig_tag)).await;
    let mut event = for_world(sample_event("ecr-push-cosign-signature.json"), &w);
    event["detail"]["image-tag"] = json!(sig_tag);
    event["detail"]["image-digest"] = json!(sig);
    let out = deploy(&w, w.config(), event).await.expect("signature push");
    assert_eq!(out["status"], "ignored", "{out:#}");
    assert!(out["reason"].as_str().unwrap().contains("not a runnable image") && out["reason"].as_str().unwrap().contains("signature"), "{out:#}");

    // An SBOM pushed with a tag of its own (events/ecr-push-sbom-artifact.json): its media types say so.
    let out = deploy(&w, w.config(), for_world(sample_event("ecr-push-sbom-artifact.json"), &w)).await.expect("sbom push");
    assert_eq!(out["status"], "ignored", "{out:#}");
    assert!(out["reason"].as_str().unwrap().contains("application/vnd.cncf.oras.artifact.manifest.v1+json is not a container image's"), "{out:#}");

    // buildx's attestation manifests are pushed untagged (events/ecr-push-untagged.json).
    let attestation = push_artifact(&w, "auth", None).await;
    let out = deploy(&w, w.config(), push_event(&w, "auth", None, &attestation)).await.expect("untagged push");
    assert_eq!(out["status"], "ignored", "{out:#}");
    assert!(out["reason"].as_str().unwrap().contains("untagged push"), "{out:#}");

    // The reconcile pass sees the signature as the newest image tagged in the repository, and
    // leaves it alone too.
    let out = deploy(&w, w.config(), for_world(sample_event("schedule-reconcile.json"), &w)).await.expect("reconcile");
    assert_eq!(out["status"], "in-sync", "{out:#}");
    assert_eq!(service_td(&w, "auth-any").await, on_feature);
    assert_eq!(revisions(&w, "auth").await, 2, "one revision, for feature-x");
    assert_eq!(w.notifications().await.len(), 1, "one deploy.started, nothing for the artifacts");
}

#[tokio::test]
async fn an_old_glob_value_leaves_the_service_alone_and_says_what_to_write() {
    let w = World::seed().await;
    let td = service_td(&w, "auth").await;
    // ECS refuses `*` and `,` in tag values, so this value can only be stored past the validating
    // proxy: it shows the deployer's answer to the form the old README taught.
    let raw = aws_sdk_ecs::Client::new(&w.raw_moto_sdk());
    raw.tag_resource().resource_arn(w.str("/services/auth")).tags(Tag::builder().key("autopilot:deploy").value("v*,main").build()).send().await.unwrap();

    let (_, out) = push_and_deploy(&w, "auth", "v2", "a").await;
    assert_eq!(out["status"], "nothing-to-do", "{out:#}");
    let reason = skip_reason(&out, "auth");
    assert!(reason.contains("tag autopilot:deploy=\"v*,main\"") && reason.contains("write autopilot:deploy=\"prefix:v main\" instead"), "{reason}");
    let skip = out["skipped"].as_array().unwrap().iter().find(|s| s["service"] == "auth").unwrap();
    assert_eq!(skip["fix"], json!(format!("aws ecs tag-resource --resource-arn {} --tags 'key=autopilot:deploy,value=prefix:v main'", w.str("/services/auth"))));
    assert_eq!(service_td(&w, "auth").await, td);
    assert_eq!(revisions(&w, "auth").await, 1);

    let notes = w.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].0, "auth: not deployed, its autopilot:deploy tags are invalid");
    let description = notes[0].1["content"]["description"].as_str().unwrap();
    assert!(description.contains("stage01/auth") && description.contains("prefix:v main") && description.contains("aws ecs tag-resource"), "{description}");
    // Once, not at every push.
    push_and_deploy(&w, "auth", "v3", "a").await;
    assert!(w.notifications().await.is_empty());
}

/// With the repository index, a push no longer sees services no push can deploy: reconcile
/// tells about them instead, as rarely as a push did (once a day per service and value).
#[tokio::test]
async fn reconcile_tells_about_invalid_tags_once() {
    let w = World::seed().await;
    let raw = aws_sdk_ecs::Client::new(&w.raw_moto_sdk());
    raw.tag_resource().resource_arn(w.str("/services/auth")).tags(Tag::builder().key("autopilot:deploy").value("v*,main").build()).send().await.unwrap();
    reconcile(&w).await;
    let notes = w.notifications().await;
    assert_eq!(notes.iter().map(|n| n.0.as_str()).collect::<Vec<_>>(), ["auth: not deployed, its autopilot:deploy tags are invalid"]);
    reconcile(&w).await;
    assert!(w.notifications().await.is_empty());
}

// ------------------------------------------------------------------ a rollback is a verdict on a digest
// DESIGN.md: once ECS's circuit breaker, a crash-loop rollback or a person has moved a service off
// a revision autopilot deployed, neither a replayed push nor the reconcile pass may put that
// digest back on that service; only a newer push can.

async fn reconcile(w: &World) -> Value {
    deploy(w, w.config(), for_world(sample_event("schedule-reconcile.json"), w)).await.expect("reconcile")
}

/// An "ECS Deployment State Change" sample (events/) about the seed world's `service`.
fn deployment_event(w: &World, sample: &str, service: &str) -> Value {
    let mut event = for_world(sample_event(sample), w);
    event["resources"] = json!([w.str(&format!("/services/{service}"))]);
    event
}

/// The verdict recorded on `digest` for a service of stage01, if any.
async fn verdict_on(w: &World, service: &str, digest: &str) -> Option<Value> {
    let (pk, sk) = autopilot::keys::rolled_back("stage01", service, digest);
    w.env().state.get(&pk, &sk).await.expect("read the verdict").map(|r| r.data)
}

/// Move auth onto `td` the way ECS's rollback or a person's UpdateService does.
async fn move_auth(w: &World, td: &str) {
    w.ecs().update_service().cluster("stage01").service("auth").task_definition(td).send().await.expect("update_service auth");
}

/// After a verdict on v2 for auth (which runs `v1_td` again): the reconcile pass holds v2 back and
/// says so once, a repeated v2 push (another event id) deploys nothing and says nothing more, and
/// a newer push, v3, deploys. `why` is what the message says moved auth off v2.
async fn v2_is_held_back_until_v3(w: &World, v1_td: &str, v2: &str, why: &str) {
    w.notifications().await;
    let out = reconcile(w).await;
    assert_eq!(out["status"], "in-sync", "{out:#}");
    let skipped = &out["images"][0]["skipped"][0];
    assert_eq!((skipped["service"].as_str(), out["images"][0]["image"]["digest"].as_str()), (Some("auth"), Some(v2)), "{out:#}");
    assert!(skipped["reason"].as_str().unwrap().starts_with("held back:"), "{out:#}");
    assert_eq!(service_td(w, "auth").await, v1_td, "v2 is not put back");
    let notes = w.notifications().await;
    assert_eq!(notes.len(), 1, "one message: {notes:?}");
    assert!(notes[0].0.starts_with("auth: v2, sha256:") && notes[0].0.ends_with("held back, it was rolled back"), "{}", notes[0].0);
    assert_eq!(notes[0].1["metadata"]["eventType"], "deploy.held-back");
    assert_eq!(notes[0].1["metadata"]["additionalContext"]["digest"], json!(v2));
    let description = notes[0].1["content"]["description"].as_str().unwrap();
    assert!(description.contains(why), "{description}");
    // The command that lets it deploy again, on the stack's own state table.
    let step = notes[0].1["content"]["nextSteps"][0].as_str().unwrap_or_default();
    assert!(step.starts_with("aws dynamodb delete-item") && step.contains(&format!("--table-name {} ", w.table())) && step.contains("rolled-back"), "{:#}", notes[0].1);
    assert_no_secrets(w, "notification", &notes[0].1.to_string());

    // Every 10 minutes the pass holds it back again, silently.
    let out = reconcile(w).await;
    assert_eq!(out["status"], "in-sync", "{out:#}");
    // The same push again (EventBridge delivers at least once; or the tag re-pushed).
    let out = deploy(w, w.config(), push_event(w, "auth", Some("v2"), v2)).await.expect("v2 again");
    assert_eq!(out["status"], "nothing-to-do", "{out:#}");
    assert!(skip_reason(&out, "auth").starts_with("held back:"), "{out:#}");
    assert_eq!(service_td(w, "auth").await, v1_td);
    assert!(w.notifications().await.is_empty(), "held back once per service and digest");

    let (v3, out) = push_and_deploy(w, "auth", "v3", "a").await;
    assert_eq!(deployed_services(&out), ["auth"], "a newer push deploys: {out:#}");
    assert_eq!(images_of(w, &service_td(w, "auth").await).await[0].1, format!("{}@{v3}", uri(w, "auth")));
}

/// Guards the circuit-breaker loop: on main, after ECS rolled v2 back, the reconcile pass put v2
/// back every 10 minutes (deploy, fail, roll back, redeploy). The rollout of v2 fails
/// (SERVICE_DEPLOYMENT_FAILED while auth still runs auth:2, events/ecs-deployment-failed.json),
/// ECS rolls back to auth:1 (moto's service moved as ECS moves it) and says so
/// (events/ecs-deployment-rollback.json).
#[tokio::test]
async fn a_circuit_breaker_rollback_is_a_verdict_on_the_digest() {
    let w = World::seed().await;
    let v1_td = service_td(&w, "auth").await;
    let (v2, _) = push_and_deploy(&w, "auth", "v2", "a").await;
    let v2_td = service_td(&w, "auth").await;
    assert_ne!(v2_td, v1_td);

    let out = deploy(&w, w.config(), deployment_event(&w, "ecs-deployment-failed.json", "auth")).await.expect("failed");
    assert_eq!(out["status"], "failed", "{out:#}");
    let verdict = verdict_on(&w, "auth", &v2).await.expect("the failed rollout is a verdict on v2");
    assert_eq!((verdict["by"].as_str(), verdict["taskDefinition"].as_str()), (Some("circuit-breaker"), Some(v2_td.as_str())), "{verdict}");
    move_auth(&w, &v1_td).await;
    let out = deploy(&w, w.config(), deployment_event(&w, "ecs-deployment-rollback.json", "auth")).await.expect("rollback");
    assert_eq!(out["status"], "rolling-back", "{out:#}");
    let notes = w.notifications().await;
    let failed = notes.iter().find(|(s, _)| s.starts_with("auth: rollout failed")).expect("the failure is reported");
    assert_eq!(failed.1["metadata"]["additionalContext"]["heldBack"], json!(v2), "{failed:?}");

    v2_is_held_back_until_v3(&w, &v1_td, &v2, "ECS's deployment circuit breaker failed or rolled back").await;
}

/// The same when only the rollback's event arrives (the FAILED one lost, or ECS already on auth:1
/// when it is read): rolling back to another revision than ours is the verdict.
#[tokio::test]
async fn a_circuit_breaker_rollback_event_alone_is_a_verdict() {
    let w = World::seed().await;
    let v1_td = service_td(&w, "auth").await;
    let (v2, _) = push_and_deploy(&w, "auth", "v2", "a").await;
    move_auth(&w, &v1_td).await;
    deploy(&w, w.config(), deployment_event(&w, "ecs-deployment-rollback.json", "auth")).await.expect("rollback");
    let verdict = verdict_on(&w, "auth", &v2).await.expect("the rollback is a verdict on v2");
    assert_eq!((verdict["by"].as_str(), verdict["to"].as_str()), (Some("circuit-breaker"), Some(v1_td.as_str())), "{verdict}");
    v2_is_held_back_until_v3(&w, &v1_td, &v2, "ECS's deployment circuit breaker failed or rolled back").await;
}

/// Guards the crash-loop case: on main, after recovery rolled v2 back (auth is tagged
/// `autopilot:rollback=on`), the reconcile pass put v2 back and the second rollback was refused,
/// leaving auth crash-looping. auth:1 is stable (its rollout completed), v2 is deployed as auth:2,
/// three of its tasks crash within the window, recovery rolls back to auth:1.
#[tokio::test]
async fn a_crash_loop_rollback_is_a_verdict_on_the_digest() {
    let w = World::seed().await;
    let v1_td = service_td(&w, "auth").await;
    let out = deploy(&w, w.config(), deployment_event(&w, "ecs-deployment-completed.json", "auth")).await.expect("completed");
    assert_eq!(out["status"], "stable", "{out:#}");
    let (v2, _) = push_and_deploy(&w, "auth", "v2", "a").await;
    let v2_td = service_td(&w, "auth").await;

    let recovery = autopilot_recovery::Recovery::new(w.env());
    let mut last = Value::Null;
    for n in 0..3 {
        let crash = harness::ecs::stopped_event(&w, "ecs-task-stopped-crash.json", &harness::ecs::service_task_arn(&w, n), &v2_td, "service:auth", Some(1));
        last = recovery.handle(crash).await.expect("recovery");
    }
    assert_eq!(last["action"], "rolled-back", "{last}");
    assert_eq!(service_td(&w, "auth").await, v1_td);
    let verdict = verdict_on(&w, "auth", &v2).await.expect("recovery's rollback is a verdict on v2");
    assert_eq!((verdict["by"].as_str(), verdict["taskDefinition"].as_str(), verdict["to"].as_str()), (Some("recovery"), Some(v2_td.as_str()), Some(v1_td.as_str())), "{verdict}");

    v2_is_held_back_until_v3(&w, &v1_td, &v2, "recovery rolled auth:2 back after a crash loop").await;
}

/// Guards the manual case: a person moved auth off the v2 we deployed (back to auth:1, with
/// UpdateService); on main the reconcile pass put v2 back 10 minutes later. The deployer's own
/// record says it put auth:2 (v2) there: the pass finds the move and records the verdict.
#[tokio::test]
async fn a_person_moving_the_service_off_our_revision_is_a_verdict_on_the_digest() {
    let w = World::seed().await;
    let v1_td = service_td(&w, "auth").await;
    let (v2, _) = push_and_deploy(&w, "auth", "v2", "a").await;
    let v2_td = service_td(&w, "auth").await;
    move_auth(&w, &v1_td).await;
    assert!(verdict_on(&w, "auth", &v2).await.is_none(), "nothing told the deployer yet");

    v2_is_held_back_until_v3(&w, &v1_td, &v2, "the service was moved off auth:2 to auth:1").await;
    let verdict = verdict_on(&w, "auth", &v2).await.expect("the move is recorded as a verdict on v2");
    assert_eq!((verdict["by"].as_str(), verdict["taskDefinition"].as_str()), (Some("moved"), Some(v2_td.as_str())), "{verdict}");
}

/// A person's move found by a repeated push first (before any reconcile pass) holds v2 back too.
#[tokio::test]
async fn a_repeated_push_finds_the_move_too() {
    let w = World::seed().await;
    let v1_td = service_td(&w, "auth").await;
    let (v2, _) = push_and_deploy(&w, "auth", "v2", "a").await;
    move_auth(&w, &v1_td).await;
    w.notifications().await;
    let out = deploy(&w, w.config(), push_event(&w, "auth", Some("v2"), &v2)).await.expect("v2 again");
    assert_eq!(out["status"], "nothing-to-do", "{out:#}");
    assert!(skip_reason(&out, "auth").contains("moved to auth:1 off auth:2"), "{out:#}");
    assert_eq!(service_td(&w, "auth").await, v1_td);
    assert_eq!(w.notifications().await.len(), 1, "told once");
    assert_eq!(reconcile(&w).await["status"], "in-sync");
    assert!(w.notifications().await.is_empty(), "and not again by the reconcile pass");
}

// ------------------------------------------------------------------ task definitions AWS accepts, registry hosts

/// Register a task definition of family `family` with auth's container pulling `image`, and a
/// service of the same name running it, tagged `autopilot:deploy=semver`; its ARN.
async fn service_pulling(w: &World, family: &str, image: &str) -> String {
    let base = w.ecs().describe_task_definition().task_definition(service_td(w, "auth").await).send().await.expect("describe auth");
    let base = base.task_definition().expect("auth's task definition");
    let mut container = base.container_definitions()[0].clone();
    container.image = Some(image.to_string());
    let td = harness::ecs::register(
        w.ecs().register_task_definition().family(family).container_definitions(container).set_requires_compatibilities(Some(base.requires_compatibilities().to_vec())),
    )
    .await;
    create_service(w, family, &td, &[("autopilot:deploy", "semver")], None).await;
    td
}

/// Guards item "ECR hosts": on main only `<account>.dkr.ecr.<region>.amazonaws.com` was the
/// pushed registry, so services pulling through the FIPS or dual-stack endpoints (the ECR
/// endpoints page of the AWS General Reference) never deployed. Each keeps its own host; a
/// look-alike host is not ECR and is left alone.
#[tokio::test]
async fn services_pulling_through_fips_and_dual_stack_hosts_deploy() {
    let w = World::seed().await;
    let (a, r) = (w.account.clone(), w.region.clone());
    let hosts = [("auth-fips", format!("{a}.dkr.ecr-fips.{r}.amazonaws.com")), ("auth-dual", format!("{a}.dkr-ecr.{r}.on.aws")), ("auth-dual-fips", format!("{a}.dkr-ecr-fips.{r}.on.aws"))];
    for (name, host) in &hosts {
        service_pulling(&w, name, &format!("{host}/auth:v1")).await;
    }
    let fake = service_pulling(&w, "auth-fake", &format!("{a}.dkr.ecr.{r}.amazonaws.com.evil.example/auth:v1")).await;

    let (v2, out) = push_and_deploy(&w, "auth", "v2", "a").await;
    let mut deployed = deployed_services(&out);
    deployed.sort();
    assert_eq!(deployed, ["auth", "auth-dual", "auth-dual-fips", "auth-fips"], "{out:#}");
    for (name, host) in &hosts {
        assert_eq!(images_of(&w, &service_td(&w, name).await).await[0].1, format!("{host}/auth@{v2}"), "{name} keeps its host");
    }
    assert_eq!(service_td(&w, "auth-fake").await, fake, "a look-alike host is another registry");
    // The reconcile pass sees them the same way: all in sync.
    assert_eq!(reconcile(&w).await["status"], "in-sync");
}

/// Guards item "copied task definitions are ones AWS accepts": a task definition carrying a tag
/// AWS set itself (`aws:cloudformation:stack-name`; RegisterTaskDefinition refuses `aws:` keys,
/// ECS's tag restrictions). On main the copy carried it and the validating proxy (as AWS) refused
/// the registration. The tag can only be put into moto past that proxy: AWS sets such tags, a
/// person cannot.
#[tokio::test]
async fn a_copy_leaves_the_tags_aws_reserves_behind() {
    let w = World::seed().await;
    let raw = aws_sdk_ecs::Client::new(&w.raw_moto_sdk());
    let base = w.ecs().describe_task_definition().task_definition(service_td(&w, "auth").await).send().await.expect("describe auth");
    let container = base.task_definition().unwrap().container_definitions()[0].clone();
    let td = harness::ecs::register(
        raw.register_task_definition()
            .family("auth-cfn")
            .container_definitions(container)
            .tags(Tag::builder().key("aws:cloudformation:stack-name").value("web").build())
            .tags(Tag::builder().key("team").value("platform").build()),
    )
    .await;
    create_service(&w, "auth-cfn", &td, &[("autopilot:deploy", "semver")], None).await;

    let (_, out) = push_and_deploy(&w, "auth", "v2", "a").await;
    assert!(deployed_services(&out).contains(&"auth-cfn".to_string()), "{out:#}");
    let copy = w.ecs().describe_task_definition().task_definition(service_td(&w, "auth-cfn").await).include(TaskDefinitionField::Tags).send().await.unwrap();
    let tags: Vec<(&str, &str)> = copy.tags().iter().map(|t| (t.key().unwrap(), t.value().unwrap())).collect();
    assert_eq!(tags, [("team", "platform")]);
}

// ------------------------------------------------------------------ outcomes as ECS records them
// Issue 15, item 1. ECS keeps a record of every service deployment ("View service history using
// Amazon ECS service deployments"; API_ServiceDeployment) and its status is the outcome: a
// rollout that ECS rolled back ends ROLLBACK_SUCCESSFUL, though the event that announces the end
// is SERVICE_DEPLOYMENT_COMPLETED (the rollback's deployment reaching steady state).

/// Guards "rollbacks reported as success": v2 deployed to auth, ECS's circuit breaker rolls it
/// back to auth:1, and the COMPLETED event of the rollback arrives. Without the record this read
/// "auth rolled onto auth:1 in …" (deploy.completed).
#[tokio::test]
async fn a_completed_rollback_is_reported_as_rolled_back_never_as_success() {
    use harness::ecs::{deployment_record, show_service_deployments};
    let w = World::seed().await;
    let v1_td = service_td(&w, "auth").await;
    let (v2, _) = push_and_deploy(&w, "auth", "v2", "a").await;
    move_auth(&w, &v1_td).await;
    show_service_deployments(&w, "auth", vec![deployment_record(&w, "ecs-service-deployment-rolling-rollback-successful.json")]);
    w.notifications().await;

    let out = deploy(&w, w.config(), deployment_event(&w, "ecs-deployment-completed.json", "auth")).await.expect("completed");
    assert_eq!(out["status"], "rolled-back", "{out:#}");
    let notes = w.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    let (subject, body) = &notes[0];
    assert_eq!(body["metadata"]["eventType"], "deploy.rolled-back", "{body:#}");
    assert!(subject.starts_with("auth: rollout of auth:2 (v2, sha256:") && subject.contains("rolled back by ECS, running auth:1") && subject.ends_with("in 4m09s"), "{subject}");
    let context = &body["metadata"]["additionalContext"];
    assert_eq!(context["deploymentStatus"], "ROLLBACK_SUCCESSFUL");
    assert_eq!(context["rollbackReason"], "The circuit breaker detected a deployment failure.");
    assert_eq!((context["targetServiceRevision"].as_str(), context["sourceServiceRevisions"].as_str()), (Some("5283749102983749201"), Some("4980306466373577095")));
    assert!(context["serviceDeployment"].as_str().unwrap().contains(":service-deployment/stage01/auth/"));
    assert!(!body.to_string().contains("rolled onto"), "{body}");
    let verdict = verdict_on(&w, "auth", &v2).await.expect("a rollback is a verdict on v2");
    assert_eq!(verdict["to"].as_str(), Some(v1_td.as_str()), "{verdict}");
}

/// A blue/green rollout that ECS reports SUCCESSFUL after its bake time: completed, with the
/// strategy, stage and the duration ECS recorded. Linear and canary records read the same way.
#[tokio::test]
async fn a_successful_blue_green_rollout_names_its_strategy_and_recorded_duration() {
    use harness::ecs::{deployment_record, show_service_deployments};
    let w = World::seed().await;
    push_and_deploy(&w, "auth", "v2", "a").await;
    let v2_td = service_td(&w, "auth").await;
    for (n, file, strategy, took) in [
        (1, "ecs-service-deployment-blue-green-successful.json", "blue/green", "4m09s"),
        (2, "ecs-service-deployment-linear-successful.json", "linear", "29m59s"),
    ] {
        show_service_deployments(&w, "auth", vec![deployment_record(&w, file)]);
        w.notifications().await;
        let mut event = deployment_event(&w, "ecs-deployment-completed.json", "auth");
        event["detail"]["deploymentId"] = json!(format!("ecs-svc/{n}00000000000000000"));
        let out = deploy(&w, w.config(), event).await.expect("completed");
        assert_eq!(out["status"], "stable", "{out:#}");
        let notes = w.notifications().await;
        assert_eq!(notes.len(), 1, "{notes:?}");
        let (subject, body) = &notes[0];
        assert_eq!(body["metadata"]["eventType"], "deploy.completed");
        assert!(subject.starts_with("auth rolled onto auth:2 (v2, sha256:") && subject.ends_with(&format!("in {took} ({strategy} deployment)")), "{subject}");
        assert_eq!(body["metadata"]["additionalContext"]["lifecycleStage"], "CLEAN_UP");
        assert_eq!(service_td(&w, "auth").await, v2_td);
    }
    let canary = deployment_record(&w, "ecs-service-deployment-canary-rollback-successful.json");
    show_service_deployments(&w, "auth", vec![canary]);
    let out = deploy(&w, w.config(), deployment_event(&w, "ecs-deployment-completed.json", "auth")).await.expect("completed");
    assert_eq!(out["status"], "rolled-back", "a canary that an alarm rolled back: {out:#}");
}

// ------------------------------------------------------------------ a deadline of our own
// Issue 15, item 2. ECS sends SERVICE_DEPLOYMENT_FAILED only for services with a circuit breaker
// ("Amazon ECS service deployment state change events"); without one a rollout that cannot
// finish retries for ever, in silence. The reconcile pass reports ours past the deadline.

/// Guards the silent rollout: v2 deployed to auth 31 minutes ago and ECS still reports it
/// IN_PROGRESS (one old task not replaced). The reconcile pass says so once, with the counts.
#[tokio::test]
async fn a_rollout_past_its_deadline_is_reported_stuck_once() {
    let w = World::seed().await;
    push_and_deploy(&w, "auth", "v2", "a").await;
    // Our record of the deploy, as if written 31 minutes ago.
    let (pk, sk) = autopilot::keys::deployment("stage01", "auth");
    let env = w.env();
    let mut record = env.state.get(&pk, &sk).await.unwrap().expect("our deployment record").data;
    record["at"] = json!(autopilot::state::now_epoch() - 31 * 60);
    env.state.put(&pk, &sk, &record, std::time::Duration::from_secs(3600)).await.unwrap();
    harness::ecs::show_rollout(&w, "auth", Some("IN_PROGRESS"), 1);
    w.notifications().await;

    let out = reconcile(&w).await;
    assert_eq!(out["stuck"], json!(["stage01/auth"]), "{out:#}");
    let notes = w.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    let (subject, body) = &notes[0];
    assert_eq!(body["metadata"]["eventType"], "deploy.stuck");
    assert!(subject.starts_with("auth: rollout of auth:2 (v2, sha256:") && subject.contains("stuck for 31m"), "{subject}");
    let context = &body["metadata"]["additionalContext"];
    // additionalContext values are strings (the custom-notification schema,
    // https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html): counts in decimal.
    assert!(["desiredCount", "runningCount"].iter().all(|k| context[k].as_str().is_some_and(|v| v.parse::<u64>().is_ok())), "{context}");
    assert!(body["content"]["description"].as_str().unwrap().contains("past the deadline of 30m00s"), "{body:#}");

    reconcile(&w).await;
    assert!(w.notifications().await.is_empty(), "told once per rollout");
    // Once ECS reports it done, it is not stuck.
    harness::ecs::show_rollout(&w, "auth", None, 0);
    let out = reconcile(&w).await;
    assert!(out.get("stuck").is_none(), "{out:#}");
    // A later deadline (the stack's RolloutDeadlineSeconds) moves the line.
    harness::ecs::show_rollout(&w, "auth", Some("IN_PROGRESS"), 1);
    let later = autopilot::Config { rollout_deadline: std::time::Duration::from_secs(3600), ..w.config() };
    let out = deploy(&w, later, for_world(sample_event("schedule-reconcile.json"), &w)).await.expect("reconcile");
    assert!(out.get("stuck").is_none(), "{out:#}");
    harness::ecs::show_rollout(&w, "auth", None, 0);
}

// ------------------------------------------------------------------ blue/green, linear, canary
// Issue 15, item 3. ECS-managed BLUE_GREEN, LINEAR and CANARY services roll onto a new revision
// with the same UpdateService (taskDefinition alone; ECS rejects most other fields once such a
// service exists) and shift traffic in stages, baking on purpose ("Amazon ECS blue/green
// deployments"; linear and canary deployments).

/// auth as a LINEAR service (25 % steps baking 5 minutes, then 10): a push deploys it as any
/// other, and deploy.started names the strategy and how long it bakes (4 × 5 + 10 = 30 min).
#[tokio::test]
async fn a_linear_service_deploys_and_the_message_names_its_strategy() {
    use harness::ecs::show_deployment_configuration;
    let w = World::seed().await;
    let config = json!({"strategy": "LINEAR", "bakeTimeInMinutes": 10, "linearConfiguration": {"stepPercent": 25.0, "stepBakeTimeInMinutes": 5},
                        "maximumPercent": 200, "minimumHealthyPercent": 100});
    show_deployment_configuration(&w, "auth", Some(config));
    w.notifications().await;
    let (_, out) = push_and_deploy(&w, "auth", "v2", "a").await;
    show_deployment_configuration(&w, "auth", None);
    assert_eq!(deployed_services(&out), ["auth"], "{out:#}");
    let notes = w.notifications().await;
    let started = notes.iter().find(|(_, b)| b["metadata"]["eventType"] == "deploy.started").expect("deploy.started");
    let description = started.1["content"]["description"].as_str().unwrap();
    assert!(description.contains("auth: a linear deployment; ECS shifts traffic in stages, then bakes 30 min"), "{description}");
    assert_eq!(started.1["metadata"]["additionalContext"]["strategy"], "auth=LINEAR");
}

// ------------------------------------------------------------------ Express Mode
// Issue 15, item 5. An Express Mode service reads with an empty taskDefinition and
// resourceManagementType ECS; a revision set with UpdateService is one Express later drifts
// from, so it rolls through UpdateExpressGatewayService(taskDefinitionArn) (API reference).

#[tokio::test]
async fn an_express_service_rolls_through_update_express_gateway_service() {
    use autopilot::runtime::Function;
    use harness::ecs::show_express;
    use harness::proxy::AwsProxy;
    let w = World::seed().await;
    let v1_td = service_td(&w, "auth").await;
    show_express(&w, "auth", true);
    let proxy = AwsProxy::start();
    let digest = push_image(&w, "auth", "v2", "a").await;
    let deployer = autopilot_deployer::Deployer::new(w.env_via(&proxy, w.config()));
    let out = deployer.handle(push_event(&w, "auth", Some("v2"), &digest)).await.expect("push");
    show_express(&w, "auth", false);
    assert_eq!(deployed_services(&out), ["auth"], "{out:#}");
    assert_eq!(proxy.count("ecs:UpdateExpressGatewayService", "calls"), 1);
    assert_eq!(proxy.count("ecs:UpdateService", "calls"), 0, "no UpdateService behind Express's back");
    let now = service_td(&w, "auth").await;
    assert_ne!(now, v1_td, "the revision copied from the one on its PRIMARY deployment");
    assert_eq!(images_of(&w, &now).await[0].1, format!("{}@{digest}", uri(&w, "auth")));
}

// ------------------------------------------------------------------ bursts coalesce
// Issue 15, item 7. A CI pipeline pushes v2 then v3 within seconds (or a backlog is replayed):
// the v2 event, handled with v3 already in the repository, takes auth straight to v3; the v3
// event then finds auth on it. One revision registered, of the image actually used.

#[tokio::test]
async fn a_burst_of_pushes_registers_only_the_newest() {
    let w = World::seed().await; // auth: autopilot:deploy=semver, runs auth:v1
    let revisions = |w: &World| {
        let ecs = w.ecs();
        async move { ecs.list_task_definitions().family_prefix("auth").send().await.unwrap().task_definition_arns().len() }
    };
    let before = revisions(&w).await;
    let v2 = push_image(&w, "auth", "v2", "a").await;
    let v3 = push_image(&w, "auth", "v3", "a").await;
    let out = deploy(&w, w.config(), push_event(&w, "auth", Some("v2"), &v2)).await.expect("v2 event");
    assert_eq!(deployed_services(&out), ["auth"], "{out:#}");
    assert_eq!(out["deployed"][0]["digest"], json!(v3), "straight to v3: {out:#}");
    assert!(skip_reason(&out, "auth").contains("a newer image matches its rules, v3"), "{out:#}");
    let out = deploy(&w, w.config(), push_event(&w, "auth", Some("v3"), &v3)).await.expect("v3 event");
    assert!(deployed_services(&out).is_empty(), "already on v3: {out:#}");
    assert_eq!(images_of(&w, &service_td(&w, "auth").await).await[0].1, format!("{}@{v3}", uri(&w, "auth")));
    assert_eq!(revisions(&w).await, before + 1, "one registration, for v3; none for v2");
    // The v2 event again (a late retry, or replayed with a new id): nothing, never back to v2.
    let out = deploy(&w, w.config(), push_event(&w, "auth", Some("v2"), &v2)).await.expect("v2 again");
    assert!(deployed_services(&out).is_empty(), "{out:#}");
    assert_eq!(revisions(&w).await, before + 1);
}

/// Issue 17, item 2: a family is not started with less than a minute left before the
/// invocation's deadline (the Runtime API's; Lambda stops the function there). The work is left
/// to Lambda's retry, which finds the registration claim given back and registers once.
#[tokio::test]
async fn a_push_near_its_deadline_leaves_the_work_to_the_retry_which_registers_once() {
    let w = World::seed().await;
    let before = service_td(&w, "auth").await;
    let digest = push_image(&w, "auth", "v2", "a").await;
    let event = push_event(&w, "auth", Some("v2"), &digest);
    let deployer = Deployer::new(w.env());
    let near = std::time::SystemTime::now() + std::time::Duration::from_secs(30);
    let e = deployer.handle_until(event.clone(), Some(near)).await.expect_err("nothing started this close to the deadline");
    assert!(e.retryable() && e.to_string().contains("left for the retry"), "{e}");
    assert_eq!(service_td(&w, "auth").await, before);
    assert_eq!(revisions(&w, "auth").await, 1, "nothing registered");

    let out = deployer.handle(event).await.expect("Lambda's retry");
    assert_eq!(out["status"], "deployed", "{out:#}");
    assert_ne!(service_td(&w, "auth").await, before);
    assert_eq!(revisions(&w, "auth").await, 2, "one registration for the push, across both deliveries");
}

// ------------------------------------------------------------------ the repository index
// Issue 17, item 1: a push costs what its repository is used for, not what the account holds.
// Reconcile builds the index (repository → the opted-in services running it); a push then
// describes only those, and calls nothing in ECS or ECR when none runs its repository.

/// ECS and ECR calls the proxy saw since its last reset.
fn ecs_ecr_calls(proxy: &harness::proxy::AwsProxy) -> u64 {
    let stats = proxy.stats();
    ["ecs", "ecr", "api.ecr"].iter().map(|s| stats["services"][*s]["calls"].as_u64().unwrap_or(0)).sum()
}

/// The services the index lists under `repository` (service names).
async fn indexed(w: &World, repository: &str) -> Vec<String> {
    let record = w.env().state.get(autopilot_deployer::index::PK_INDEX, repository).await.expect("read the index");
    let entry = record.map(|r| autopilot_deployer::index::Entry::from_value(&r.data)).unwrap_or_default();
    entry.services.keys().map(|arn| arn.rsplit('/').next().unwrap_or_default().to_string()).collect()
}

#[tokio::test]
async fn a_push_describes_only_the_services_that_run_its_repository() {
    use harness::proxy::AwsProxy;
    let w = World::seed().await;
    let proxy = AwsProxy::start();
    let deployer = Deployer::new(w.env_via(&proxy, w.config()));
    let out = deployer.handle(for_world(sample_event("schedule-reconcile.json"), &w)).await.expect("reconcile");
    assert_eq!(out["status"], "in-sync", "{out:#}");
    assert_eq!(indexed(&w, "auth").await, ["auth"]);
    assert_eq!(indexed(&w, "random").await, ["random"]);

    // No managed service runs this repository: one state-table read, nothing in ECS or ECR.
    proxy.reset();
    let out = deployer.handle(push_event(&w, "nothing-runs-this", Some("v1"), &fake_sha256("n"))).await.expect("push to an unused repository");
    assert_eq!(out["status"], "ignored", "{out:#}");
    assert!(out["reason"].as_str().unwrap().contains("no opted-in service of the managed clusters runs nothing-runs-this"), "{out:#}");
    assert_eq!(ecs_ecr_calls(&proxy), 0, "{:#}", proxy.stats());

    // auth's push describes auth alone: no ListClusters, no ListServices, one DescribeServices.
    let digest = push_image(&w, "auth", "v2", "a").await;
    proxy.reset();
    let out = deployer.handle(push_event(&w, "auth", Some("v2"), &digest)).await.expect("push v2");
    assert_eq!(deployed_services(&out), ["auth"], "{out:#}");
    assert_eq!(proxy.count("ecs:ListClusters", "calls") + proxy.count("ecs:ListServices", "calls"), 0, "{:#}", proxy.stats());
    assert_eq!(proxy.count("ecs:DescribeServices", "calls"), 1, "{:#}", proxy.stats());
    assert_eq!(images_of(&w, &service_td(&w, "auth").await).await[0].1, format!("{}@{digest}", uri(&w, "auth")));
}

/// The index between builds: a rollout somebody else started adds its service (a new service
/// here), and a push drops a service that no longer runs the repository.
#[tokio::test]
async fn the_index_learns_from_rollouts_and_pushes_between_builds() {
    let w = World::seed().await;
    reconcile(&w).await;
    let auth_td = service_td(&w, "auth").await;
    // A new opted-in service running auth's image, created after the build.
    create_service(&w, "auth-twin", &auth_td, &[("autopilot:deploy", "semver")], None).await;
    assert_eq!(indexed(&w, "auth").await, ["auth"], "not seen yet");
    // Its first rollout completes (ECS's event): the index adds it under auth.
    let twin = harness::ecs::service(&w, "auth-twin").await;
    let mut event = for_world(sample_event("ecs-deployment-completed.json"), &w);
    event["resources"] = json!([twin.service_arn().unwrap()]);
    event["detail"]["deploymentId"] = json!(twin.deployments()[0].id().unwrap());
    let out = deploy(&w, w.config(), event).await;
    let out = match out {
        Ok(v) => v,
        Err(e) => panic!("completed rollout of auth-twin: {e}"),
    };
    assert_ne!(out["status"], "ignored", "{out:#}");
    assert_eq!(indexed(&w, "auth").await, ["auth", "auth-twin"]);
    // The next push reaches both.
    let digest = push_image(&w, "auth", "v2", "a").await;
    let out = deploy(&w, w.config(), push_event(&w, "auth", Some("v2"), &digest)).await.expect("push v2");
    assert_eq!(deployed_services(&out), ["auth", "auth-twin"], "{out:#}");

    // auth-twin moves to random's task definition (no longer runs auth): the next push to auth
    // describes it once, finds it elsewhere and drops it from auth's entry.
    let random_td = service_td(&w, "random").await;
    w.ecs().update_service().cluster("stage01").service("auth-twin").task_definition(&random_td).send().await.expect("move auth-twin");
    let digest = push_image(&w, "auth", "v3", "b").await;
    let out = deploy(&w, w.config(), push_event(&w, "auth", Some("v3"), &digest)).await.expect("push v3");
    assert_eq!(deployed_services(&out), ["auth"], "{out:#}");
    assert_eq!(indexed(&w, "auth").await, ["auth"]);
}

/// A cluster deleted after the index was built takes its services with it: the push deploys the
/// others and drops the deleted cluster's service from the entry, instead of failing on
/// ClusterNotFoundException until the next reconcile.
#[tokio::test]
async fn a_cluster_deleted_since_the_index_was_built_fails_no_push() {
    let w = World::seed().await;
    let auth_td = service_td(&w, "auth").await;
    let ecs = w.ecs();
    ecs.create_cluster().cluster_name("stage02").send().await.expect("create stage02");
    ecs.create_service()
        .cluster("stage02")
        .service_name("auth-copy")
        .task_definition(&auth_td)
        .desired_count(0)
        .tags(Tag::builder().key("autopilot:deploy").value("semver").build())
        .send()
        .await
        .expect("create auth-copy");
    let config = Config { clusters: vec!["stage01".into(), "stage02".into()], ..w.config() };
    deploy(&w, config.clone(), for_world(sample_event("schedule-reconcile.json"), &w)).await.expect("reconcile");
    assert_eq!(indexed(&w, "auth").await, ["auth", "auth-copy"]);
    ecs.delete_service().cluster("stage02").service("auth-copy").force(true).send().await.expect("delete auth-copy");
    ecs.delete_cluster().cluster("stage02").send().await.expect("delete stage02");

    let digest = push_image(&w, "auth", "v2", "a").await;
    let out = deploy(&w, config, push_event(&w, "auth", Some("v2"), &digest)).await.expect("push v2");
    assert_eq!(deployed_services(&out), ["auth"], "{out:#}");
    assert_eq!(indexed(&w, "auth").await, ["auth"]);
}
