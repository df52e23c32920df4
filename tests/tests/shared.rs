//! The shared crate's AWS adapters against moto: the DynamoDB state store keeps the same
//! semantics as the in-memory one, and notifications reach SNS subscribers in Chatbot's format.

use std::time::Duration;

use autopilot::state::{EventClaim, StateStore};
use autopilot::{Error, Notification};
use harness::World;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn dynamo_state_store_conditional_writes() {
    let world = World::seed().await;
    let s = StateStore::dynamo(aws_sdk_dynamodb::Client::new(&world.sdk), world.table());
    let ttl = Duration::from_secs(60);

    assert!(s.create("k", "1", &json!({"n": 1}), ttl).await.unwrap());
    assert!(!s.create("k", "1", &json!({"n": 2}), ttl).await.unwrap(), "second create must lose");
    let r = s.get("k", "1").await.unwrap().expect("record");
    assert_eq!(r.data, json!({"n": 1}));
    assert_eq!(r.version, 1);

    assert!(matches!(s.put_if_version("k", "1", &json!({"n": 3}), ttl, 5).await, Err(Error::Conflict(_))));
    assert_eq!(s.put_if_version("k", "1", &json!({"n": 3}), ttl, 1).await.unwrap(), 2);
    assert_eq!(s.get("k", "1").await.unwrap().unwrap().data, json!({"n": 3}));

    s.put("k", "1", &json!({"n": 4}), ttl).await.unwrap();
    assert_eq!(s.get("k", "1").await.unwrap().unwrap().version, 3);
    s.delete("k", "1").await.unwrap();
    assert!(s.get("k", "1").await.unwrap().is_none());

    let EventClaim::Fresh(first) = s.begin_event("f", "ev", ttl).await.unwrap() else { panic!("first delivery") };
    assert_eq!(s.begin_event("f", "ev", ttl).await.unwrap(), EventClaim::InFlight, "held by the first delivery");
    assert!(s.renew(&first, ttl).await.unwrap(), "the holder renews its lease");
    s.finish_event(&first, false, ttl).await.unwrap();
    let EventClaim::Fresh(second) = s.begin_event("f", "ev", ttl).await.unwrap() else { panic!("a failed attempt is released") };
    assert!(!s.renew(&first, ttl).await.unwrap(), "the first holder cannot renew the second's lease");
    s.finish_event(&first, false, ttl).await.unwrap();
    assert_eq!(s.begin_event("f", "ev", ttl).await.unwrap(), EventClaim::InFlight, "nor release it");
    s.finish_event(&second, true, ttl).await.unwrap();
    assert_eq!(s.begin_event("f", "ev", ttl).await.unwrap(), EventClaim::Done);
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_records_are_absent_and_can_be_recreated() {
    let world = World::seed().await;
    let s = StateStore::dynamo(aws_sdk_dynamodb::Client::new(&world.sdk), world.table());
    assert!(s.create("exp", "1", &json!(1), Duration::from_secs(1)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(s.get("exp", "1").await.unwrap().is_none());
    assert!(s.create("exp", "1", &json!(2), Duration::from_secs(60)).await.unwrap());
}

/// Issue 14, item 4: a delivery that dies stops renewing; its lease lapses and the next delivery
/// takes the event over, while the dead one's lease can be neither renewed nor released.
#[tokio::test(flavor = "multi_thread")]
async fn a_lapsed_event_lease_is_taken_over() {
    let world = World::seed().await;
    let s = StateStore::dynamo(aws_sdk_dynamodb::Client::new(&world.sdk), world.table());
    let EventClaim::Fresh(dead) = s.begin_event("f", "lapse", Duration::from_secs(1)).await.unwrap() else { panic!("first delivery") };
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let EventClaim::Fresh(next) = s.begin_event("f", "lapse", Duration::from_secs(60)).await.unwrap() else { panic!("the lapsed lease is taken over") };
    assert!(!s.renew(&dead, Duration::from_secs(60)).await.unwrap());
    s.finish_event(&dead, false, Duration::from_secs(60)).await.unwrap();
    assert_eq!(s.begin_event("f", "lapse", Duration::from_secs(60)).await.unwrap(), EventClaim::InFlight, "the new holder keeps it");
    assert!(s.renew(&next, Duration::from_secs(60)).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn notifications_arrive_once_in_chatbot_format() {
    let world = World::seed().await;
    let env = world.env();
    let n = Notification::new("test.event", "random 4 -> 6 (alarm random-cpu-high)", "scaled out").field("service", "random");

    assert!(env.notifier.publish_once(&env.state, "incident-1", Duration::from_secs(60), &n).await.unwrap());
    assert!(!env.notifier.publish_once(&env.state, "incident-1", Duration::from_secs(60), &n).await.unwrap());

    let got = world.notifications().await;
    assert_eq!(got.len(), 1, "{got:?}");
    let (subject, body) = &got[0];
    assert_eq!(subject, "random 4 -> 6 (alarm random-cpu-high)");
    assert_eq!(body["version"], "1.0");
    assert_eq!(body["source"], "custom");
    assert_eq!(body["content"]["description"], "scaled out");
    assert_eq!(body["metadata"]["additionalContext"]["service"], "random");
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamo_batched_reads_claims_and_writes() {
    use std::collections::{BTreeMap, BTreeSet};
    let world = World::seed().await;
    let s = StateStore::dynamo(aws_sdk_dynamodb::Client::new(&world.sdk), world.table());
    let ttl = Duration::from_secs(60);
    let k = |pk: &str, sk: String| (pk.to_string(), sk);

    // 130 claims: two transactions; the ones someone already holds are left alone.
    assert!(s.create("claim", "7", &json!("theirs"), ttl).await.unwrap());
    assert!(s.create("claim", "99", &json!("theirs"), ttl).await.unwrap());
    let claims: BTreeMap<(String, String), serde_json::Value> = (0..130).map(|i| (k("claim", i.to_string()), json!({"i": i}))).collect();
    let created = s.create_many(&claims, ttl).await.unwrap();
    assert_eq!(created.len(), 128);
    assert!(!created.contains(&k("claim", "7".into())) && !created.contains(&k("claim", "99".into())));
    assert_eq!(s.get("claim", "7").await.unwrap().unwrap().data, json!("theirs"));
    assert!(s.create_many(&claims, ttl).await.unwrap().is_empty(), "a second round claims nothing");

    // 60 records: three BatchWriteItems, read back with 40 absent keys in two BatchGetItems.
    let records: BTreeMap<(String, String), serde_json::Value> = (0..60).map(|i| (k("rec", i.to_string()), json!({"n": i}))).collect();
    s.put_many(&records, ttl).await.unwrap();
    let wanted: BTreeSet<(String, String)> = (0..100).map(|i| k("rec", i.to_string())).chain([k("claim", "7".into())]).collect();
    let got = s.get_many(&wanted).await.unwrap();
    assert_eq!(got.len(), 61);
    assert_eq!(got[&k("rec", "42".into())].data, json!({"n": 42}));
    assert_eq!(got[&k("claim", "7".into())].data, json!("theirs"));
    // A batch-written record still takes part in optimistic writes.
    let v = got[&k("rec", "1".into())].version;
    assert!(matches!(s.put_if_version("rec", "1", &json!(0), ttl, v + 1).await, Err(Error::Conflict(_))));
    s.put_if_version("rec", "1", &json!("next"), ttl, v).await.unwrap();
}
