//! The state table: idempotency keys, cooldowns, crash-loop counters, last-stable revisions and
//! notification debouncing, all as small JSON records under (pk, sk) with a TTL.
//!
//! Without `AUTOPILOT_STATE_TABLE` an in-memory store keeps the same semantics for the life of
//! one process (a warm Lambda container), which is what tests of pure logic and dry runs need.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, PutRequest, ReturnValue, TransactWriteItem, WriteRequest};
use serde_json::Value;

use crate::error::{Error, Result};

mod tally;
pub use tally::{Counted, Tally};

pub const ATTR_PK: &str = "pk";
pub const ATTR_SK: &str = "sk";
pub const ATTR_DATA: &str = "data";
pub const ATTR_VERSION: &str = "version";
pub const ATTR_EXPIRES_AT: &str = "expires_at";
/// A token unique to one write: when a conditional write's answer is lost and the SDK's retry
/// then fails the condition, reading the token back tells our own earlier success apart from
/// someone else's claim.
pub const ATTR_WRITER: &str = "writer";

fn write_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A stored record and the version to pass to [`StateStore::put_if_version`].
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub data: Value,
    pub version: u64,
    pub expires_at: u64,
}

/// The state table, seen from one place: the function's own account and region (no scope, the
/// keys of every release so far), or one member account and region of an Organization (issue
/// 16), whose partition keys all start with `ACCOUNT:REGION#`, so that two accounts with a cluster
/// `stage01` and a service `auth` never share a record. Clones share one table (or one memory).
#[derive(Clone)]
pub struct StateStore {
    backend: std::sync::Arc<Backend>,
    scope: Option<String>,
}

enum Backend {
    Dynamo { client: aws_sdk_dynamodb::Client, table: String },
    Memory(Mutex<HashMap<(String, String), Record>>),
}

/// What [`StateStore::begin_event`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventClaim {
    /// First delivery (or an earlier attempt failed and released it, or died and let its lease
    /// lapse): do the work, renewing the lease while it runs.
    Fresh(Lease),
    /// Handled to the end before: change nothing.
    Done,
    /// Another delivery holds a live lease on it right now: its outcome is not known yet.
    InFlight,
}

/// A delivery's hold on an event id: the in-progress record, unique to this holder, so that
/// only the holder can renew it ([`StateStore::renew`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub pk: String,
    pub sk: String,
    pub data: Value,
}

pub fn now_epoch() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl StateStore {
    pub fn memory() -> Self {
        StateStore { backend: std::sync::Arc::new(Backend::Memory(Mutex::new(HashMap::new()))), scope: None }
    }

    pub fn dynamo(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        StateStore { backend: std::sync::Arc::new(Backend::Dynamo { client, table: table.into() }), scope: None }
    }

    pub fn is_persistent(&self) -> bool {
        matches!(*self.backend, Backend::Dynamo { .. })
    }

    /// The same table seen from `scope` (`ACCOUNT:REGION`): every partition key it reads or
    /// writes starts with `ACCOUNT:REGION#`. Event claims are taken on the unscoped store, since
    /// EventBridge's event ids are unique whichever account sent them.
    pub fn scoped(&self, scope: &str) -> Self {
        StateStore { backend: self.backend.clone(), scope: Some(scope.to_string()) }
    }

    /// The partition key as stored.
    fn pk(&self, pk: &str) -> String {
        let pk = match &self.scope {
            Some(scope) => format!("{scope}#{pk}"),
            None => pk.to_string(),
        };
        bounded(&pk, MAX_PK_BYTES)
    }

    /// A key as stored: its partition key scoped, both keys within DynamoDB's limits.
    fn stored(&self, pk: &str, sk: &str) -> (String, String) {
        (self.pk(pk), bounded(sk, MAX_SK_BYTES))
    }

    /// Read a live (unexpired) record.
    pub async fn get(&self, pk: &str, sk: &str) -> Result<Option<Record>> {
        let (pk, sk) = self.stored(pk, sk);
        self.get_stored(&pk, &sk).await
    }

    async fn get_stored(&self, pk: &str, sk: &str) -> Result<Option<Record>> {
        let now = now_epoch();
        match &*self.backend {
            Backend::Memory(map) => Ok(map.lock().unwrap_or_else(|p| p.into_inner()).get(&(pk.into(), sk.into())).filter(|r| r.expires_at > now).cloned()),
            Backend::Dynamo { client, table } => Ok(get_item(client, table, pk, sk).await?.and_then(|item| record_from_item(&item)).filter(|r| r.expires_at > now)),
        }
    }

    /// Write unconditionally (the newest writer wins).
    pub async fn put(&self, pk: &str, sk: &str, data: &Value, ttl: Duration) -> Result<()> {
        let (pk, sk) = self.stored(pk, sk);
        self.write(&pk, &sk, data, ttl, None).await.map(|_| ())
    }

    /// Create the record only if no live record exists. `Ok(false)`: it already existed.
    pub async fn create(&self, pk: &str, sk: &str, data: &Value, ttl: Duration) -> Result<bool> {
        let (pk, sk) = self.stored(pk, sk);
        self.create_stored(&pk, &sk, data, ttl).await
    }

    async fn create_stored(&self, pk: &str, sk: &str, data: &Value, ttl: Duration) -> Result<bool> {
        match self.write(pk, sk, data, ttl, Some(0)).await {
            Ok(_) => Ok(true),
            Err(Error::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Optimistic concurrency: write only if the live record still has `version`
    /// (0 = must not exist). A lost race is [`Error::Conflict`]: re-read and retry.
    pub async fn put_if_version(&self, pk: &str, sk: &str, data: &Value, ttl: Duration, version: u64) -> Result<u64> {
        let (pk, sk) = self.stored(pk, sk);
        self.write(&pk, &sk, data, ttl, Some(version)).await
    }

    pub async fn delete(&self, pk: &str, sk: &str) -> Result<()> {
        let (pk, sk) = self.stored(pk, sk);
        let (pk, sk) = (pk.as_str(), sk.as_str());
        match &*self.backend {
            Backend::Memory(map) => {
                map.lock().unwrap_or_else(|p| p.into_inner()).remove(&(pk.into(), sk.into()));
                Ok(())
            }
            Backend::Dynamo { client, table } => client
                .delete_item()
                .table_name(table)
                .key(ATTR_PK, AttributeValue::S(pk.into()))
                .key(ATTR_SK, AttributeValue::S(sk.into()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| Error::aws("dynamodb", "DeleteItem", e)),
        }
    }

    async fn write(&self, pk: &str, sk: &str, data: &Value, ttl: Duration, expected: Option<u64>) -> Result<u64> {
        let now = now_epoch();
        let expires_at = now + ttl.as_secs().max(1);
        let new_version = expected.map_or(1, |v| v + 1);
        match &*self.backend {
            Backend::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                let key = (pk.to_string(), sk.to_string());
                let live = map.get(&key).filter(|r| r.expires_at > now);
                if let Some(expected) = expected {
                    let current = live.map_or(0, |r| r.version);
                    if current != expected {
                        return Err(Error::Conflict(format!("{pk}/{sk}")));
                    }
                }
                let version = if expected.is_some() { new_version } else { live.map_or(1, |r| r.version + 1) };
                map.insert(key, Record { data: data.clone(), version, expires_at });
                Ok(version)
            }
            Backend::Dynamo { client, table } => {
                let token = write_token();
                let Some(expected) = expected else {
                    return put_item_bumping_version(client, table, pk, sk, data, expires_at, &token).await;
                };
                let version = expected + 1;
                let now_value = AttributeValue::N(now.to_string());
                let request = client.put_item().table_name(table).set_item(Some(item_of(pk, sk, data, expires_at, &token, version)));
                let request = if expected == 0 {
                    request.condition_expression(CREATE_CONDITION).expression_attribute_values(":now", now_value)
                } else {
                    request
                        .condition_expression("version = :expected AND expires_at > :now")
                        .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()))
                        .expression_attribute_values(":now", now_value)
                };
                match request.send().await {
                    Ok(_) => Ok(version),
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                        if self.written_by(client, table, pk, sk, &token).await? {
                            tracing::debug!(pk, sk, "conditional write had succeeded; its answer was lost");
                            Ok(version)
                        } else {
                            Err(Error::Conflict(format!("{pk}/{sk}")))
                        }
                    }
                    Err(e) => Err(Error::aws("dynamodb", "PutItem", e)),
                }
            }
        }
    }

    async fn written_by(&self, client: &aws_sdk_dynamodb::Client, table: &str, pk: &str, sk: &str, token: &str) -> Result<bool> {
        let item = get_item(client, table, pk, sk).await?;
        Ok(item.and_then(|item| item.get(ATTR_WRITER).and_then(|v| v.as_s().ok()).map(|w| w == token)).unwrap_or(false))
    }

    /// Read many live records at once: one consistent BatchGetItem per 100 keys. Keys without a
    /// live record are absent from the answer.
    pub async fn get_many(&self, keys: &BTreeSet<(String, String)>) -> Result<HashMap<(String, String), Record>> {
        let asked: HashMap<(String, String), (String, String)> = keys.iter().map(|(pk, sk)| (self.stored(pk, sk), (pk.clone(), sk.clone()))).collect();
        let found = self.get_many_stored(&asked.keys().cloned().collect()).await?;
        Ok(found.into_iter().filter_map(|(k, r)| asked.get(&k).map(|key| (key.clone(), r))).collect())
    }

    async fn get_many_stored(&self, keys: &BTreeSet<(String, String)>) -> Result<HashMap<(String, String), Record>> {
        let now = now_epoch();
        match &*self.backend {
            Backend::Memory(map) => {
                let map = map.lock().unwrap_or_else(|p| p.into_inner());
                Ok(keys.iter().filter_map(|k| map.get(k).filter(|r| r.expires_at > now).map(|r| (k.clone(), r.clone()))).collect())
            }
            Backend::Dynamo { client, table } => {
                let mut found = HashMap::new();
                let keys: Vec<&(String, String)> = keys.iter().collect();
                for chunk in keys.chunks(100) {
                    let mut pending: Vec<HashMap<String, AttributeValue>> = chunk.iter().map(|(pk, sk)| key_of(pk, sk)).collect();
                    for attempt in 0..BATCH_ATTEMPTS {
                        let request = KeysAndAttributes::builder().set_keys(Some(pending)).consistent_read(true).build().map_err(|e| build_error("BatchGetItem", e))?;
                        let out = client.batch_get_item().request_items(table.as_str(), request).send().await.map_err(|e| Error::aws("dynamodb", "BatchGetItem", e))?;
                        for item in out.responses().and_then(|r| r.get(table.as_str())).into_iter().flatten() {
                            if let (Some(key), Some(record)) = (key_from_item(item), record_from_item(item).filter(|r| r.expires_at > now)) {
                                found.insert(key, record);
                            }
                        }
                        pending = out.unprocessed_keys().and_then(|u| u.get(table.as_str())).map(|k| k.keys().to_vec()).unwrap_or_default();
                        if pending.is_empty() {
                            break;
                        }
                        batch_backoff(attempt).await;
                    }
                    if !pending.is_empty() {
                        return Err(unprocessed("BatchGetItem", pending.len()));
                    }
                }
                Ok(found)
            }
        }
    }

    /// [`StateStore::create`] for many records: one TransactWriteItems per 100 records in the
    /// common case where none exists yet. Returns the keys this call created; the others already
    /// had a live record (someone else's claim).
    pub async fn create_many(&self, items: &BTreeMap<(String, String), Value>, ttl: Duration) -> Result<BTreeSet<(String, String)>> {
        let asked: HashMap<(String, String), (String, String)> = items.keys().map(|(pk, sk)| (self.stored(pk, sk), (pk.clone(), sk.clone()))).collect();
        let items: BTreeMap<(String, String), Value> = items.iter().map(|((pk, sk), v)| (self.stored(pk, sk), v.clone())).collect();
        let created = self.create_many_stored(&items, ttl).await?;
        Ok(created.into_iter().filter_map(|k| asked.get(&k).cloned()).collect())
    }

    async fn create_many_stored(&self, items: &BTreeMap<(String, String), Value>, ttl: Duration) -> Result<BTreeSet<(String, String)>> {
        let mut created = BTreeSet::new();
        let Backend::Dynamo { client, table } = &*self.backend else {
            for ((pk, sk), data) in items {
                if self.create_stored(pk, sk, data, ttl).await? {
                    created.insert((pk.clone(), sk.clone()));
                }
            }
            return Ok(created);
        };
        let entries: Vec<(&(String, String), &Value)> = items.iter().collect();
        for chunk in entries.chunks(100) {
            let now = now_epoch();
            let expires_at = now + ttl.as_secs().max(1);
            let mut pending: Vec<((String, String), &Value, String)> = chunk.iter().map(|(k, d)| ((*k).clone(), *d, write_token())).collect();
            for _ in 0..BATCH_ATTEMPTS {
                if pending.is_empty() {
                    break;
                }
                let mut request = client.transact_write_items();
                for ((pk, sk), data, token) in &pending {
                    let put = Put::builder()
                        .table_name(table.as_str())
                        .set_item(Some(item_of(pk, sk, data, expires_at, token, 1)))
                        .condition_expression(CREATE_CONDITION)
                        .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                        .build()
                        .map_err(|e| build_error("TransactWriteItems", e))?;
                    request = request.transact_items(TransactWriteItem::builder().put(put).build());
                }
                let err = match request.send().await {
                    Ok(_) => {
                        created.extend(pending.drain(..).map(|(k, _, _)| k));
                        break;
                    }
                    Err(e) => e,
                };
                // All or nothing: the reasons say which records stood in the way.
                let taken: Vec<usize> = match err.as_service_error().filter(|s| s.is_transaction_canceled_exception()) {
                    Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) => c
                        .cancellation_reasons()
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
                        .map(|(i, _)| i)
                        .collect(),
                    _ => Vec::new(),
                };
                if taken.is_empty() {
                    return Err(Error::aws("dynamodb", "TransactWriteItems", err));
                }
                for i in taken.into_iter().rev() {
                    let ((pk, sk), _, token) = pending.remove(i);
                    // Our own earlier attempt whose answer was lost, or someone else's record.
                    if self.written_by(client, table, &pk, &sk, &token).await? {
                        created.insert((pk, sk));
                    }
                }
            }
            if !pending.is_empty() {
                return Err(unprocessed("TransactWriteItems", pending.len()));
            }
        }
        Ok(created)
    }

    /// [`StateStore::put`] for many records: one BatchWriteItem per 25. A batch cannot bump a
    /// version, so each record gets a new unique one (microseconds since the epoch): enough for
    /// an optimistic writer to notice the change.
    pub async fn put_many(&self, items: &BTreeMap<(String, String), Value>, ttl: Duration) -> Result<()> {
        let Backend::Dynamo { client, table } = &*self.backend else {
            for ((pk, sk), data) in items {
                self.put(pk, sk, data, ttl).await?;
            }
            return Ok(());
        };
        let expires_at = now_epoch() + ttl.as_secs().max(1);
        let version = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(1);
        let entries: Vec<(&(String, String), &Value)> = items.iter().collect();
        for chunk in entries.chunks(25) {
            let mut pending: Vec<WriteRequest> = Vec::new();
            for ((pk, sk), data) in chunk {
                let (pk, sk) = self.stored(pk, sk);
                let put = PutRequest::builder().set_item(Some(item_of(&pk, &sk, data, expires_at, &write_token(), version))).build().map_err(|e| build_error("BatchWriteItem", e))?;
                pending.push(WriteRequest::builder().put_request(put).build());
            }
            for attempt in 0..BATCH_ATTEMPTS {
                let out = client.batch_write_item().request_items(table.as_str(), pending).send().await.map_err(|e| Error::aws("dynamodb", "BatchWriteItem", e))?;
                pending = out.unprocessed_items().and_then(|u| u.get(table.as_str())).cloned().unwrap_or_default();
                if pending.is_empty() {
                    break;
                }
                batch_backoff(attempt).await;
            }
            if !pending.is_empty() {
                return Err(unprocessed("BatchWriteItem", pending.len()));
            }
        }
        Ok(())
    }

    /// Every live record of one partition, by sort key: one consistent Query per 1 MB page
    /// (DynamoDB API reference, Query: "A single Query operation will read up to the maximum
    /// number of items set (if using the Limit parameter) or a maximum of 1 MB of data";
    /// `LastEvaluatedKey` continues). For small partitions read whole, like the repository index.
    pub async fn query(&self, pk: &str) -> Result<BTreeMap<String, Record>> {
        let pk = self.pk(pk);
        let now = now_epoch();
        match &*self.backend {
            Backend::Memory(map) => {
                let map = map.lock().unwrap_or_else(|p| p.into_inner());
                Ok(map.iter().filter(|((p, _), r)| *p == pk && r.expires_at > now).map(|((_, sk), r)| (sk.clone(), r.clone())).collect())
            }
            Backend::Dynamo { client, table } => {
                let mut found = BTreeMap::new();
                let mut start: Option<HashMap<String, AttributeValue>> = None;
                loop {
                    let out = client
                        .query()
                        .table_name(table)
                        .key_condition_expression("pk = :pk")
                        .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                        .consistent_read(true)
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await
                        .map_err(|e| Error::aws("dynamodb", "Query", e))?;
                    for item in out.items() {
                        if let (Some((_, sk)), Some(record)) = (key_from_item(item), record_from_item(item).filter(|r| r.expires_at > now)) {
                            found.insert(sk, record);
                        }
                    }
                    match out.last_evaluated_key() {
                        Some(key) if !key.is_empty() => start = Some(key.clone()),
                        _ => break,
                    }
                }
                Ok(found)
            }
        }
    }

    /// Claim an EventBridge event id for one function for `lease` (a short lease the caller
    /// renews while the work runs, so that a delivery that dies leaves the event to the next one
    /// within `lease`); [`StateStore::finish_event`] makes it permanent (for `ttl`) or releases it
    /// on failure so that EventBridge's retry can do the work.
    pub async fn begin_event(&self, function: &str, event_id: &str, lease: Duration) -> Result<EventClaim> {
        let (pk, sk) = self.stored(&event_claim_pk(function, event_id), event_id);
        let data = serde_json::json!({"status": "in-progress", "holder": write_token()});
        for _ in 0..2 {
            if self.create_stored(&pk, &sk, &data, lease).await? {
                return Ok(EventClaim::Fresh(Lease { pk, sk, data }));
            }
            // Expired between the create and this read: the create is worth one more try.
            let Some(found) = self.get_stored(&pk, &sk).await? else { continue };
            return Ok(match found.data.get("status").and_then(Value::as_str) {
                Some("in-progress") => EventClaim::InFlight,
                _ => EventClaim::Done,
            });
        }
        Ok(EventClaim::InFlight)
    }

    /// Extend a live lease this holder still holds to `lease` from now. `Ok(false)`: it lapsed
    /// (or was released), and another delivery may hold the event now.
    pub async fn renew(&self, held: &Lease, lease: Duration) -> Result<bool> {
        let now = now_epoch();
        let expires_at = now + lease.as_secs().max(1);
        match &*self.backend {
            Backend::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                match map.get_mut(&(held.pk.clone(), held.sk.clone())) {
                    Some(r) if r.expires_at > now && r.data == held.data => {
                        r.expires_at = expires_at;
                        r.version += 1;
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            }
            Backend::Dynamo { client, table } => {
                let answer = client
                    .update_item()
                    .table_name(table)
                    .key(ATTR_PK, AttributeValue::S(held.pk.clone()))
                    .key(ATTR_SK, AttributeValue::S(held.sk.clone()))
                    .update_expression("SET #expires = :expires ADD #version :one")
                    // The holder's own record (its data names the holder), still live.
                    .condition_expression("#data = :data AND #expires > :now")
                    .expression_attribute_names("#data", ATTR_DATA)
                    .expression_attribute_names("#expires", ATTR_EXPIRES_AT)
                    .expression_attribute_names("#version", ATTR_VERSION)
                    .expression_attribute_values(":data", AttributeValue::S(held.data.to_string()))
                    .expression_attribute_values(":expires", AttributeValue::N(expires_at.to_string()))
                    .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .send()
                    .await;
                match answer {
                    Ok(_) => Ok(true),
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
                    Err(e) => Err(Error::aws("dynamodb", "UpdateItem", e)),
                }
            }
        }
    }

    /// The end of a held lease: remembered as done for `ttl` when the work succeeded, released
    /// (only if still this holder's) when it failed, so that EventBridge's retry does the work.
    pub async fn finish_event(&self, held: &Lease, succeeded: bool, ttl: Duration) -> Result<()> {
        if succeeded {
            // The lease's key is the stored one already.
            return self.write(&held.pk, &held.sk, &serde_json::json!({"status": "done"}), ttl, None).await.map(|_| ());
        }
        match &*self.backend {
            Backend::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                let key = (held.pk.clone(), held.sk.clone());
                if map.get(&key).is_some_and(|r| r.data == held.data) {
                    map.remove(&key);
                }
                Ok(())
            }
            Backend::Dynamo { client, table } => {
                let answer = client
                    .delete_item()
                    .table_name(table)
                    .key(ATTR_PK, AttributeValue::S(held.pk.clone()))
                    .key(ATTR_SK, AttributeValue::S(held.sk.clone()))
                    .condition_expression("#data = :data")
                    .expression_attribute_names("#data", ATTR_DATA)
                    .expression_attribute_values(":data", AttributeValue::S(held.data.to_string()))
                    .send()
                    .await;
                match answer {
                    Ok(_) => Ok(()),
                    // Lapsed and taken over by another delivery: the claim is no longer ours to release.
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(()),
                    Err(e) => Err(Error::aws("dynamodb", "DeleteItem", e)),
                }
            }
        }
    }
}

/// The partition of an event's claim: one per event, so that a burst of events (500 tasks
/// stopping at once) spreads over the table's partitions instead of heating one (issue 17, item
/// 6; "Designing partition keys to distribute your workload" in the DynamoDB guide).
pub fn event_claim_pk(function: &str, event_id: &str) -> String {
    format!("event#{function}#{event_id}")
}

/// The wait before attempt `attempt` + 1 of an optimistic read-modify-write that lost a race:
/// "full jitter" (a random time up to an exponentially growing cap, 10 ms doubling to 320 ms),
/// so that writers who collided once spread out instead of colliding again in step
/// ("Exponential Backoff And Jitter", AWS Architecture Blog; issue 17, item 6).
pub fn conflict_backoff(attempt: usize) -> Duration {
    let cap_ms = 10u64 << attempt.min(5);
    // A write token is unique per call (process, time, sequence): its digest is the randomness.
    let random = u64::from_str_radix(&crate::keys::digest_of(&write_token()), 16).unwrap_or(0);
    Duration::from_millis(random % (cap_ms + 1))
}

/// DynamoDB's key limits: a partition key of at most 2,048 bytes, a sort key of at most 1,024
/// ("Amazon DynamoDB quotas": attributes). Keys built from names (a service list, an event id
/// from a malformed event) can be longer.
const MAX_PK_BYTES: usize = 2048;
const MAX_SK_BYTES: usize = 1024;

/// `key` if it fits in `max` bytes, else its head (cut at a character boundary) and the FNV
/// digest of the whole: stable, so every caller that names the same key finds the same record.
fn bounded(key: &str, max: usize) -> String {
    if key.len() <= max {
        return key.to_string();
    }
    let digest = crate::keys::digest_of(key);
    let mut head = max - digest.len() - 1;
    while !key.is_char_boundary(head) {
        head -= 1;
    }
    format!("{}~{digest}", &key[..head])
}

/// A create succeeds where no live record is: an expired one is as good as absent (DynamoDB's TTL
/// deletes lazily).
const CREATE_CONDITION: &str = "attribute_not_exists(pk) OR expires_at <= :now";

/// Rounds of a batch call for the keys DynamoDB left unprocessed (it does so when throttled).
const BATCH_ATTEMPTS: u32 = 6;

async fn batch_backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(50u64 << attempt.min(5))).await;
}

fn unprocessed(operation: &'static str, left: usize) -> Error {
    Error::Aws {
        service: "dynamodb",
        operation,
        code: "Unprocessed".into(),
        message: format!("{left} item(s) still unprocessed after {BATCH_ATTEMPTS} rounds"),
        retryable: true,
    }
}

fn build_error(operation: &'static str, e: impl std::fmt::Display) -> Error {
    Error::Aws { service: "dynamodb", operation, code: "ConstructionFailure".into(), message: e.to_string(), retryable: false }
}

fn key_of(pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([(ATTR_PK.to_string(), AttributeValue::S(pk.into())), (ATTR_SK.to_string(), AttributeValue::S(sk.into()))])
}

fn key_from_item(item: &HashMap<String, AttributeValue>) -> Option<(String, String)> {
    Some((item.get(ATTR_PK)?.as_s().ok()?.clone(), item.get(ATTR_SK)?.as_s().ok()?.clone()))
}

fn item_of(pk: &str, sk: &str, data: &Value, expires_at: u64, token: &str, version: u64) -> HashMap<String, AttributeValue> {
    let mut item = key_of(pk, sk);
    item.insert(ATTR_DATA.into(), AttributeValue::S(data.to_string()));
    item.insert(ATTR_EXPIRES_AT.into(), AttributeValue::N(expires_at.to_string()));
    item.insert(ATTR_WRITER.into(), AttributeValue::S(token.into()));
    item.insert(ATTR_VERSION.into(), AttributeValue::N(version.to_string()));
    item
}

/// An unconditional write in one call that still bumps the version, so optimistic writers notice.
async fn put_item_bumping_version(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
    sk: &str,
    data: &Value,
    expires_at: u64,
    token: &str,
) -> Result<u64> {
    let out = client
        .update_item()
        .table_name(table)
        .key(ATTR_PK, AttributeValue::S(pk.into()))
        .key(ATTR_SK, AttributeValue::S(sk.into()))
        // `data` is a DynamoDB reserved word: every name goes through a placeholder.
        .update_expression("SET #data = :data, #expires = :expires, #writer = :writer ADD #version :one")
        .expression_attribute_names("#data", ATTR_DATA)
        .expression_attribute_names("#expires", ATTR_EXPIRES_AT)
        .expression_attribute_names("#writer", ATTR_WRITER)
        .expression_attribute_names("#version", ATTR_VERSION)
        .expression_attribute_values(":data", AttributeValue::S(data.to_string()))
        .expression_attribute_values(":expires", AttributeValue::N(expires_at.to_string()))
        .expression_attribute_values(":writer", AttributeValue::S(token.into()))
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .return_values(ReturnValue::UpdatedNew)
        .send()
        .await
        .map_err(|e| Error::aws("dynamodb", "UpdateItem", e))?;
    Ok(out.attributes().and_then(|a| a.get(ATTR_VERSION)).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(1))
}

async fn get_item(client: &aws_sdk_dynamodb::Client, table: &str, pk: &str, sk: &str) -> Result<Option<HashMap<String, AttributeValue>>> {
    let out = client
        .get_item()
        .table_name(table)
        .key(ATTR_PK, AttributeValue::S(pk.into()))
        .key(ATTR_SK, AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| Error::aws("dynamodb", "GetItem", e))?;
    Ok(out.item)
}

fn record_from_item(item: &HashMap<String, AttributeValue>) -> Option<Record> {
    let mut data: Value = item.get(ATTR_DATA)?.as_s().ok().and_then(|s| serde_json::from_str(s).ok())?;
    let num = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok());
    // The counters beside `data` (a tally's `since`, `n`, `told`, `opener`; a counter's own
    // name) are read into it, so that a record reads the same from DynamoDB as from memory.
    if let Value::Object(fields) = &mut data {
        for (name, value) in item {
            if !ITEM_ATTRS.contains(&name.as_str()) {
                if let Some(n) = value.as_n().ok().and_then(|n| n.parse::<u64>().ok()) {
                    fields.insert(name.clone(), n.into());
                } else if let Ok(text) = value.as_s() {
                    fields.insert(name.clone(), text.clone().into());
                }
            }
        }
    }
    Some(Record { data, version: num(ATTR_VERSION).unwrap_or(1), expires_at: num(ATTR_EXPIRES_AT).unwrap_or(u64::MAX) })
}

/// The attributes every item has; the numeric ones besides these are counters.
const ITEM_ATTRS: [&str; 6] = [ATTR_PK, ATTR_SK, ATTR_DATA, ATTR_VERSION, ATTR_EXPIRES_AT, ATTR_WRITER];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn memory_store_semantics() {
        let s = StateStore::memory();
        let ttl = Duration::from_secs(60);
        assert!(s.create("a", "1", &json!(1), ttl).await.unwrap());
        assert!(!s.create("a", "1", &json!(2), ttl).await.unwrap());
        let r = s.get("a", "1").await.unwrap().unwrap();
        assert_eq!((r.data.clone(), r.version), (json!(1), 1));
        assert!(matches!(s.put_if_version("a", "1", &json!(3), ttl, 7).await, Err(Error::Conflict(_))));
        assert_eq!(s.put_if_version("a", "1", &json!(3), ttl, 1).await.unwrap(), 2);
        s.put("a", "1", &json!(4), ttl).await.unwrap();
        assert_eq!(s.get("a", "1").await.unwrap().unwrap().version, 3);
        s.delete("a", "1").await.unwrap();
        assert!(s.get("a", "1").await.unwrap().is_none());

        let EventClaim::Fresh(first) = s.begin_event("f", "e", ttl).await.unwrap() else { panic!("first delivery") };
        assert_eq!(s.begin_event("f", "e", ttl).await.unwrap(), EventClaim::InFlight, "held by the first");
        assert!(s.renew(&first, ttl).await.unwrap(), "the holder renews its lease");
        s.finish_event(&first, false, ttl).await.unwrap();
        let EventClaim::Fresh(second) = s.begin_event("f", "e", ttl).await.unwrap() else { panic!("a failed attempt is released") };
        assert!(!s.renew(&first, ttl).await.unwrap(), "a released lease is not the first holder's to renew");
        s.finish_event(&first, false, ttl).await.unwrap();
        assert_eq!(s.begin_event("f", "e", ttl).await.unwrap(), EventClaim::InFlight, "nor to release");
        s.finish_event(&second, true, ttl).await.unwrap();
        assert_eq!(s.begin_event("f", "e", ttl).await.unwrap(), EventClaim::Done);

        let k = |pk: &str, sk: &str| (pk.to_string(), sk.to_string());
        let items = BTreeMap::from([(k("b", "1"), json!(1)), (k("b", "2"), json!(2))]);
        s.put("b", "2", &json!("taken"), ttl).await.unwrap();
        assert_eq!(s.create_many(&items, ttl).await.unwrap(), BTreeSet::from([k("b", "1")]));
        assert_eq!(s.get("b", "2").await.unwrap().unwrap().data, json!("taken"), "an existing record is not overwritten");
        s.put_many(&BTreeMap::from([(k("b", "2"), json!(3)), (k("b", "3"), json!(4))]), ttl).await.unwrap();
        let got = s.get_many(&BTreeSet::from([k("b", "1"), k("b", "2"), k("b", "3"), k("b", "4")])).await.unwrap();
        let mut data: Vec<_> = got.into_iter().map(|(key, r)| (key, r.data)).collect();
        data.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(data, vec![(k("b", "1"), json!(1)), (k("b", "2"), json!(3)), (k("b", "3"), json!(4))]);
    }

    #[test]
    fn conflict_backoff_is_jittered_and_capped() {
        for attempt in 0..30 {
            let cap = Duration::from_millis(10 << attempt.min(5));
            assert!(conflict_backoff(attempt) <= cap, "attempt {attempt}");
        }
        let waits: BTreeSet<Duration> = (0..50).map(|_| conflict_backoff(5)).collect();
        assert!(waits.len() > 10, "writers who collided wait different times: {waits:?}");
    }

    /// Issue 17, item 6: each event's claim has a partition of its own.
    #[tokio::test]
    async fn event_claims_spread_over_partitions() {
        let s = StateStore::memory();
        let ttl = Duration::from_secs(60);
        let EventClaim::Fresh(a) = s.begin_event("recovery", "e-1", ttl).await.unwrap() else { panic!("fresh") };
        let EventClaim::Fresh(b) = s.begin_event("recovery", "e-2", ttl).await.unwrap() else { panic!("fresh") };
        assert_ne!(a.pk, b.pk);
        assert_eq!(a.pk, "event#recovery#e-1");
    }

    /// Issue 17, item 8: no key exceeds DynamoDB's limits, whatever the names it is built from,
    /// and a long key still names one record.
    #[tokio::test]
    async fn long_keys_fit_dynamodbs_limits_and_still_name_one_record() {
        let long = "stage01/".to_string() + &"é".repeat(700);
        assert!(long.len() > MAX_SK_BYTES);
        let b = bounded(&long, MAX_SK_BYTES);
        assert!(b.len() <= MAX_SK_BYTES && b.starts_with("stage01/é"), "{}", b.len());
        assert_eq!(bounded(&long, MAX_SK_BYTES), b, "stable");
        assert_ne!(bounded(&(long.clone() + "x"), MAX_SK_BYTES), b, "another key, another record");
        assert_eq!(bounded("short", MAX_SK_BYTES), "short");
        let s = StateStore::memory().scoped("111122223333:us-east-1");
        let ttl = Duration::from_secs(60);
        assert!(s.create("notify", &long, &json!(1), ttl).await.unwrap());
        assert!(!s.create("notify", &long, &json!(2), ttl).await.unwrap(), "the same long key is the same record");
        let keys = BTreeSet::from([("notify".to_string(), long.clone())]);
        assert_eq!(s.get_many(&keys).await.unwrap().get(&("notify".to_string(), long.clone())).map(|r| r.data.clone()), Some(json!(1)), "answered under the caller's key");
        let EventClaim::Fresh(lease) = s.begin_event("f", &long, ttl).await.unwrap() else { panic!("fresh") };
        assert!(lease.sk.len() <= MAX_SK_BYTES);
        s.finish_event(&lease, true, ttl).await.unwrap();
        assert_eq!(s.begin_event("f", &long, ttl).await.unwrap(), EventClaim::Done);
    }

    /// Issue 16: two accounts with the same cluster and service names never share a record, and
    /// a scoped store names its keys as its caller did.
    #[tokio::test]
    async fn scoped_stores_never_share_a_record() {
        let home = StateStore::memory();
        let (a, b) = (home.scoped("111122223333:us-east-1"), home.scoped("444455556666:us-east-1"));
        let ttl = Duration::from_secs(60);
        let k = |pk: &str, sk: &str| (pk.to_string(), sk.to_string());
        assert!(a.create("stable", "stage01/auth", &json!("a"), ttl).await.unwrap());
        assert!(b.create("stable", "stage01/auth", &json!("b"), ttl).await.unwrap(), "another account's record is another record");
        assert!(home.get("stable", "stage01/auth").await.unwrap().is_none(), "nor the home account's");
        assert_eq!(home.get("111122223333:us-east-1#stable", "stage01/auth").await.unwrap().unwrap().data, json!("a"), "stored under the scoped key");
        let got = b.get_many(&BTreeSet::from([k("stable", "stage01/auth")])).await.unwrap();
        assert_eq!(got.get(&k("stable", "stage01/auth")).map(|r| r.data.clone()), Some(json!("b")));
        let created = a.create_many(&BTreeMap::from([(k("stable", "stage01/auth"), json!(1)), (k("stable", "stage01/random"), json!(2))]), ttl).await.unwrap();
        assert_eq!(created, BTreeSet::from([k("stable", "stage01/random")]));
        a.put_many(&BTreeMap::from([(k("deployed", "stage01/auth"), json!(3))]), ttl).await.unwrap();
        assert_eq!(a.get("deployed", "stage01/auth").await.unwrap().unwrap().data, json!(3));
        assert!(b.get("deployed", "stage01/auth").await.unwrap().is_none());
    }
}
