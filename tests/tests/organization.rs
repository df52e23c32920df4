//! Organization mode (issue 16) on moto: one central deployment acting in member accounts through
//! their roles, the seed world (same names: cluster `stage01`, services `auth` and `random`) in
//! each account.
//!
//! moto's STS lets the central caller assume a role in any account, and calls signed with the
//! session act in the role's account (research/organization.md §3), so the production path runs
//! as is: `AssumeRole` through the validating proxy, then ECS, ECR and CloudWatch in the member.
//! moto never evaluates a trust policy, so a refused AssumeRole is scripted by the suite's proxy
//! (`POST /__proxy/sts/refused-roles`, answered as STS answers: 403 AccessDenied); the trust and
//! bus policies themselves are checked by reading the templates (tests/python).

use autopilot::runtime::Function;
use autopilot::{Config, StateStore};
use autopilot_deployer::Deployer;
use autopilot_recovery::Recovery;
use autopilot_scaler::Scaler;
use harness::ecr::{push_event, push_image};
use harness::ecs::{service, service_task_arn, service_td, stopped_event, tell_suite_proxy};
use harness::{cloudwatch::random_cpu_high, for_world, sample_event, World};
use serde_json::{json, Value};

const DEPLOYER_ROLE: &str = "ecs-autopilot/ecs-autopilot-deployer";
const SCALER_ROLE: &str = "ecs-autopilot/ecs-autopilot-scaler";
const RECOVERY_ROLE: &str = "ecs-autopilot/ecs-autopilot-recovery";

/// A central account and three members, each with the seed world.
async fn organization() -> (World, [World; 3]) {
    let (central, a, b, c) = tokio::join!(World::seed(), World::seed(), World::seed(), World::seed());
    (central, [a, b, c])
}

/// The central stack's configuration in organization mode, its state table and topic, acting in
/// `members` through `role`.
fn central_config(central: &World, role: &str, members: &[&World]) -> Config {
    Config { member_role: Some(role.into()), accounts: members.iter().map(|w| w.account.clone()).collect(), ..central.config() }
}

fn scope(w: &World) -> String {
    format!("{}:{}", w.account, w.region)
}

fn state(central: &World) -> StateStore {
    StateStore::dynamo(aws_sdk_dynamodb::Client::new(&central.sdk), central.table())
}

#[tokio::test]
async fn a_push_in_one_member_deploys_there_only_and_its_records_stay_apart() {
    let (central, [a, b, _]) = organization().await;
    let deployer = Deployer::new(central.env_with(central_config(&central, DEPLOYER_ROLE, &[&a, &b])));
    let (a_before, b_before, central_before) = (service_td(&a, "auth").await, service_td(&b, "auth").await, service_td(&central, "auth").await);

    let digest = push_image(&a, "auth", "v2", "a").await;
    let out = deployer.handle(push_event(&a, "auth", Some("v2"), &digest)).await.expect("a push in member a");
    assert_eq!(out["status"], "deployed", "{out:#}");
    let a_after = service_td(&a, "auth").await;
    assert_ne!(a_after, a_before, "member a's auth rolled");
    assert!(a_after.contains(&format!(":{}:", a.account)), "registered in member a: {a_after}");
    assert_eq!(service_td(&b, "auth").await, b_before, "member b untouched");
    assert_eq!(service_td(&central, "auth").await, central_before, "the central account untouched");

    // The same names in another account: b's push deploys in b, with its own records.
    let digest_b = push_image(&b, "auth", "v2", "b").await;
    let out = deployer.handle(push_event(&b, "auth", Some("v2"), &digest_b)).await.expect("a push in member b");
    assert_eq!(out["status"], "deployed", "{out:#}");
    assert_eq!(service_td(&a, "auth").await, a_after, "a stays where its own push put it");

    let store = state(&central);
    let record = |s: &StateStore| {
        let s = s.clone();
        async move { s.get("deployed", "stage01/auth").await.unwrap().map(|r| r.data["digest"].clone()) }
    };
    assert_eq!(record(&store.scoped(&scope(&a))).await, Some(json!(digest)), "a's record names a's digest");
    assert_eq!(record(&store.scoped(&scope(&b))).await, Some(json!(digest_b)), "b's record names b's digest");
    assert_eq!(record(&store).await, None, "nothing under the central account's own keys");

    // One AssumeRole per account for the container's life, however many events.
    let again = push_image(&a, "auth", "v3", "a3").await;
    deployer.handle(push_event(&a, "auth", Some("v3"), &again)).await.expect("a second push in a");
    assert_eq!(deployer.env.members.assume_calls(), 2, "one session per member account");

    // The one topic speaks for the Organization: each message names its account and region.
    let notes = central.notifications().await;
    assert!(!notes.is_empty());
    for (subject, body) in &notes {
        let account = body["metadata"]["additionalContext"]["account"].as_str().unwrap_or_default();
        assert!(account == a.account || account == b.account, "{subject}: {body}");
        assert!(subject.starts_with(&format!("[{account} {}] ", a.region)), "{subject}");
    }
    assert!(a.notifications().await.is_empty() && b.notifications().await.is_empty(), "members' own topics are not the product's");
}

#[tokio::test]
async fn an_account_outside_the_list_changes_nothing() {
    let (central, [a, b, c]) = organization().await;
    let deployer = Deployer::new(central.env_with(central_config(&central, DEPLOYER_ROLE, &[&a, &b])));
    let before = service_td(&c, "auth").await;
    let digest = push_image(&c, "auth", "v2", "c").await;
    let out = deployer.handle(push_event(&c, "auth", Some("v2"), &digest)).await.expect("a push in an unlisted account");
    assert_eq!(out["status"], "ignored", "{out:#}");
    let reason = out["reason"].as_str().unwrap();
    assert!(reason.contains(&c.account) && reason.contains("AUTOPILOT_ACCOUNTS"), "{reason}");
    assert_eq!(service_td(&c, "auth").await, before);
    assert_eq!(deployer.env.members.assume_calls(), 0, "no role is assumed for an unlisted account");

}

#[tokio::test]
async fn an_alarm_in_one_member_scales_there_only() {
    let (central, [a, b, _]) = organization().await;
    let scaler = Scaler::new(central.env_with(central_config(&central, SCALER_ROLE, &[&a, &b])));
    let out = scaler.handle(random_cpu_high(&b)).await.expect("an alarm in member b");
    assert_eq!(out["action"], "scaled", "{out:#}");
    assert_eq!(service(&b, "random").await.desired_count(), 6, "b's random scaled by its alarm's steps");
    assert_eq!(service(&a, "random").await.desired_count(), 4, "a's random untouched");
    assert_eq!(service(&central, "random").await.desired_count(), 4, "the central account's untouched");
    let notes = central.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].0, format!("[{} {}] random 4 -> 6 (alarm random-cpu-high: 87.5 > 70 for 2 datapoints; step +2)", b.account, b.region));
    // The cooldown is b's: the same alarm in a still scales a.
    let out = scaler.handle(random_cpu_high(&a)).await.expect("the same alarm in member a");
    assert_eq!(out["action"], "scaled", "{out:#}");
    assert_eq!(service(&a, "random").await.desired_count(), 6);
}

/// A member whose role cannot be assumed (missing, or its trust does not name us) fails its own
/// work with one notification per account and hour; the schedule's pass in the other accounts
/// goes on, and since a retry cannot fix a refusal, the invocation succeeds.
#[tokio::test]
async fn reconcile_visits_every_listed_account_and_an_unreachable_one_stops_no_other() {
    let (central, [a, b, _]) = organization().await;
    let refused = format!("arn:aws:iam::{}:role/{DEPLOYER_ROLE}", b.account);
    tell_suite_proxy("/__proxy/sts/refused-roles", &json!({"roleArns": [refused]}));
    let deployer = Deployer::new(central.env_with(central_config(&central, DEPLOYER_ROLE, &[&a, &b])));
    // v2 is in both registries, with no push event: only the reconcile pass can move auth.
    push_image(&a, "auth", "v2", "a").await;
    push_image(&b, "auth", "v2", "b").await;
    let (a_before, b_before) = (service_td(&a, "auth").await, service_td(&b, "auth").await);

    let reconcile = |w: &World| for_world(sample_event("schedule-reconcile.json"), w);
    let out = deployer.handle(reconcile(&central)).await.expect("a refusal fails no invocation");
    assert_eq!(out["status"], "visited", "{out:#}");
    let places = out["places"].as_array().unwrap();
    let of = |w: &World| places.iter().find(|p| p["account"] == w.account.as_str()).unwrap_or_else(|| panic!("{} not visited: {out:#}", w.account)).clone();
    assert_eq!(of(&b)["error"]["kind"], "AccountUnreachable", "{out:#}");
    assert!(of(&a)["outcome"].is_object(), "{out:#}");
    assert!(places.iter().all(|p| p["account"] != central.account.as_str()), "the central account is visited only when listed: {out:#}");
    assert_ne!(service_td(&a, "auth").await, a_before, "a reconciled onto v2");
    assert_eq!(service_td(&b, "auth").await, b_before);

    let unreachable = |notes: &[(String, Value)]| notes.iter().filter(|(_, n)| n["metadata"]["eventType"] == "account.unreachable").count();
    let notes = central.notifications().await;
    assert_eq!(unreachable(&notes), 1, "{notes:?}");
    let (subject, body) = notes.iter().find(|(_, n)| n["metadata"]["eventType"] == "account.unreachable").unwrap();
    assert_eq!(subject, &format!("ecs-autopilot cannot act in account {}", b.account));
    assert!(body["content"]["description"].as_str().unwrap().contains("AccessDenied"), "{body}");

    // The next pass within the hour: the refusal is remembered, and not notified again.
    let out = deployer.handle(reconcile(&central)).await.expect("second pass");
    assert_eq!(out["status"], "visited", "{out:#}");
    assert_eq!(unreachable(&central.notifications().await), 0, "one notification per account and hour");
}

/// What the work queue holds now, with each message's group.
async fn receive(sqs: &aws_sdk_sqs::Client, queue: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let got = sqs
        .receive_message()
        .queue_url(queue)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
        .max_number_of_messages(10)
        .send()
        .await
        .expect("receive");
    got.messages.unwrap_or_default()
}

/// The deployer's work queue: each event's work goes on the FIFO queue in its account's message
/// group and is done when the queue hands it back, once however often it is handed back.
#[tokio::test]
async fn the_deployers_work_goes_through_its_queue_one_group_per_account() {
    let (central, [a, b, _]) = organization().await;
    let sqs = aws_sdk_sqs::Client::new(&central.sdk);
    let queue = harness::fifo_queue(&central.sdk, "ecs-autopilot-deployer-work.fifo").await;
    let config = Config { queue_url: Some(queue.clone()), ..central_config(&central, DEPLOYER_ROLE, &[&a, &b]) };
    let deployer = Deployer::new(central.env_with(config));
    let before = service_td(&a, "auth").await;

    let digest = push_image(&a, "auth", "v2", "a").await;
    let out = deployer.handle(push_event(&a, "auth", Some("v2"), &digest)).await.expect("queued");
    assert_eq!(out["status"], "queued", "{out:#}");
    assert_eq!(out["messageGroup"], format!("{}#{}", a.account, a.region));
    assert_eq!(service_td(&a, "auth").await, before, "nothing done until the queue hands it back");

    let messages = receive(&sqs, &queue).await;
    assert_eq!(messages.len(), 1, "one message for the push");
    let m = &messages[0];
    let group = m.attributes().and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)).cloned();
    assert_eq!(group, Some(format!("{}#{}", a.account, a.region)));
    // The SQS event Lambda delivers from the queue (events/sqs-work-queue.json's shape).
    let delivery = json!({"Records": [{
        "messageId": m.message_id().unwrap(), "receiptHandle": m.receipt_handle().unwrap(), "body": m.body().unwrap(),
        "attributes": {"MessageGroupId": group, "ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "eventSource": "aws:sqs", "eventSourceARN": format!("arn:aws:sqs:{}:{}:ecs-autopilot-deployer-work.fifo", central.region, central.account), "awsRegion": central.region,
    }]});
    let out = deployer.handle(delivery.clone()).await.expect("the batch");
    assert_eq!(out, json!({"batchItemFailures": []}), "{out:#}");
    let after = service_td(&a, "auth").await;
    assert_ne!(after, before, "done when handed back");
    let out = deployer.handle(delivery).await.expect("handed back again");
    assert_eq!(out, json!({"batchItemFailures": []}));
    assert_eq!(service_td(&a, "auth").await, after, "a message handed back twice does the work once");
    sqs.delete_message().queue_url(&queue).receipt_handle(m.receipt_handle().unwrap()).send().await.expect("delete");

    // The reconcile schedule: one message per listed account, each in its account's group, and
    // each one's pass only in its own account (v3 is in both registries, with no push event).
    push_image(&a, "auth", "v3", "a3").await;
    push_image(&b, "auth", "v3", "b3").await;
    let b_before = service_td(&b, "auth").await;
    let out = deployer.handle(for_world(sample_event("schedule-reconcile.json"), &central)).await.expect("schedule queued");
    assert_eq!(out["status"], "visited", "{out:#}");
    let groups: Vec<&str> = out["places"].as_array().unwrap().iter().map(|p| p["outcome"]["messageGroup"].as_str().unwrap_or_default()).collect();
    assert_eq!(groups, [format!("{}#{}", a.account, a.region), format!("{}#{}", b.account, b.region)], "{out:#}");
    let messages = receive(&sqs, &queue).await;
    assert_eq!(messages.len(), 2, "one reconcile message per account");
    let for_a = messages
        .iter()
        .find(|m| m.attributes().and_then(|x| x.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)).map(String::as_str) == Some(format!("{}#{}", a.account, a.region).as_str()))
        .expect("a's message");
    let delivery = json!({"Records": [{"messageId": for_a.message_id().unwrap(), "body": for_a.body().unwrap(), "eventSource": "aws:sqs", "awsRegion": central.region}]});
    assert_eq!(deployer.handle(delivery).await.expect("a's reconcile"), json!({"batchItemFailures": []}));
    assert_ne!(service_td(&a, "auth").await, after, "a reconciled onto v3");
    assert_eq!(service_td(&b, "auth").await, b_before, "b's pass is b's message, not handed back yet");
}

/// A member's notifications carry the name the Organization gives the account (DescribeAccount,
/// which the central account may ask when it manages the Organization or is its delegated
/// administrator); elsewhere they name the account by its id (the tests above).
#[tokio::test]
async fn notifications_name_the_account_as_the_organization_does() {
    use autopilot::aws_sdk_organizations as organizations;
    let central = World::seed().await;
    let org = organizations::Client::new(&central.sdk);
    org.create_organization().feature_set(organizations::types::OrganizationFeatureSet::All).send().await.expect("create the Organization");
    let created = org.create_account().email("payments@example.com").account_name("payments-prod").send().await.expect("create a member account");
    let account = created.create_account_status().and_then(|s| s.account_id()).expect("the new account's id").to_string();
    let member = World::seed_in(&account, &[]).await;

    let deployer = Deployer::new(central.env_with(central_config(&central, DEPLOYER_ROLE, &[&member])));
    let digest = push_image(&member, "auth", "v2", "p").await;
    let out = deployer.handle(push_event(&member, "auth", Some("v2"), &digest)).await.expect("a push in the named member");
    assert_eq!(out["status"], "deployed", "{out:#}");
    let notes = central.notifications().await;
    assert!(!notes.is_empty());
    for (subject, body) in &notes {
        assert!(subject.starts_with(&format!("[payments-prod {}] ", member.region)), "{subject}");
        let context = &body["metadata"]["additionalContext"];
        assert_eq!((context["account"].as_str(), context["accountName"].as_str()), (Some(account.as_str()), Some("payments-prod")), "{body}");
    }
}

/// Issue 17, item 6, in organization mode: the recovery summary schedule visits every listed
/// account, as the scaler's re-evaluation does; a member's incidents are its own (scoped
/// records), and each closed window is summarised there, once.
#[tokio::test]
async fn the_recovery_summary_schedule_visits_every_member_and_tells_each_incident_once() {
    let (central, [a, b, _]) = organization().await;
    let config = Config { notification_window: std::time::Duration::from_secs(2), ..central_config(&central, RECOVERY_ROLE, &[&a, &b]) };
    let recovery = Recovery::new(central.env_with(config));
    let td = a.str("/task_definitions/random");
    for n in 0..2 {
        let out = recovery.handle(stopped_event(&a, "ecs-task-stopped-crash.json", &service_task_arn(&a, n), &td, "service:random", Some(1))).await.expect("a stop in member a");
        assert_eq!(out["action"], if n == 0 { "notified" } else { "none" }, "{out:#}");
    }
    assert_eq!(central.notifications().await.len(), 1, "the incident's first message");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    let tick = |id: &str| {
        let mut e = for_world(sample_event("schedule-recovery-summary.json"), &central);
        e["id"] = json!(id);
        e
    };
    let out = recovery.handle(tick(&format!("tick-1-{}", central.account))).await.expect("the schedule");
    assert_eq!(out["status"], "visited", "{out:#}");
    let places = out["places"].as_array().unwrap();
    let of = |w: &World| places.iter().find(|p| p["account"] == w.account.as_str()).unwrap_or_else(|| panic!("{} not visited: {out:#}", w.account)).clone();
    assert_eq!(of(&a)["outcome"]["summarized"], 1, "{out:#}");
    assert_eq!(of(&b)["outcome"]["summarized"], 0, "{out:#}");
    let notes = central.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].0.contains("stage01/random: 1 more task of random:1 crashed"), "{}", notes[0].0);
    assert!(notes[0].0.contains(&a.account), "the message names member a: {}", notes[0].0);
    assert_eq!(notes[0].1["metadata"]["eventType"], "recovery.summary");

    let out = recovery.handle(tick(&format!("tick-2-{}", central.account))).await.expect("the schedule again");
    let summarized: Vec<Value> = out["places"].as_array().unwrap().iter().map(|p| p["outcome"]["summarized"].clone()).collect();
    assert!(summarized.iter().all(|n| *n == 0), "told once: {out:#}");
    assert!(central.notifications().await.is_empty());
}
