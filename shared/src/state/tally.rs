//! Counters in one request (issue 17, item 6): 500 tasks stopping within seconds all count into
//! a handful of records (one incident, one failure window per service revision), and a
//! read-modify-write loop (GetItem, then PutItem on the version read) makes every writer but one
//! lose its race, retry, and lose again. Here each count is one UpdateItem whose `ADD` DynamoDB
//! applies atomically to whatever the item holds ("Atomic counters" and "Incrementing and
//! decrementing numeric attributes" under "Using update expressions in DynamoDB", DynamoDB
//! Developer Guide: "ADD ... If the existing attribute is a number, and if Value is also a number,
//! then Value is mathematically added to the existing attribute"), conditioned on the window
//! still being open, and answered with the item as it is after the update (`ReturnValues`
//! `ALL_NEW`), or, when the condition failed, as it was (`ReturnValuesOnConditionCheckFailure`
//! `ALL_OLD`, UpdateItem API reference: no read capacity is consumed for it). No request is ever
//! retried for a conflict: the caller learns the count and decides from it. Each update also sets
//! `writer` to a token of its own and requires that it is not already there, so that the SDK's
//! retry of a request whose answer was lost does not count twice; the item returned with the
//! failed condition then shows it applied.
//!
//! A tally's item: the usual `pk`, `sk`, `data` (JSON: what the window's opener recorded, for
//! whoever words its summary), `version`, `expires_at`; and `since` (N, the window's start on
//! the caller's clock), `n` (N, tasks counted in the window, its opener included), `told` (N,
//! the `since` of the window whose summary was claimed) and `opener` (S, who opened the window).
//! `get` and `get_many` read them into `data` (`since`, `n`, `told`, `opener`), so a tally reads
//! the same from DynamoDB as from memory; [`Tally::from_data`] reads it back.

use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use serde_json::Value;

use super::{now_epoch, record_from_item, write_token, Backend, Record, StateStore, ATTR_DATA, ATTR_EXPIRES_AT, ATTR_PK, ATTR_SK, ATTR_VERSION, ATTR_WRITER};
use crate::error::{Error, Result};

pub const ATTR_SINCE: &str = "since";
pub const ATTR_COUNT: &str = "n";
pub const ATTR_TOLD: &str = "told";
pub const ATTR_OPENER: &str = "opener";

/// A window's count.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tally {
    /// When the window opened (the caller's clock, seconds).
    pub since: u64,
    /// Counted in the window, its opener included.
    pub count: u64,
    /// The `since` of the window whose summary was claimed ([`StateStore::tell`]).
    pub told: Option<u64>,
    /// Who opened the window (the caller's own name for what it counted, e.g. a task ARN).
    pub opener: Option<String>,
    /// What the window's opener recorded (never the numbers above).
    pub data: Value,
}

/// What [`StateStore::tally`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Counted {
    /// Counted into the open window (or a new one): the tally after it.
    Open(Tally),
    /// The window had closed: nothing counted; the tally as it was. Open the next window with
    /// [`StateStore::reopen`].
    Closed(Tally),
}

impl Tally {
    /// A tally from a record as `get` or `get_many` read it; `None` if it is not one.
    pub fn from_data(data: &Value) -> Option<Tally> {
        let since = data.get(ATTR_SINCE)?.as_u64()?;
        let mut rest = data.clone();
        if let Value::Object(fields) = &mut rest {
            for k in [ATTR_SINCE, ATTR_COUNT, ATTR_TOLD, ATTR_OPENER] {
                fields.remove(k);
            }
        }
        Some(Tally {
            since,
            count: data.get(ATTR_COUNT).and_then(Value::as_u64).unwrap_or(0),
            told: data.get(ATTR_TOLD).and_then(Value::as_u64),
            opener: data.get(ATTR_OPENER).and_then(Value::as_str).map(str::to_string),
            data: rest,
        })
    }

    /// Whether `opener` opened this window.
    pub fn opened_by(&self, opener: &str) -> bool {
        self.opener.as_deref() == Some(opener)
    }

    /// The window's summary was claimed.
    pub fn told(&self) -> bool {
        self.told == Some(self.since)
    }

    /// The record's data as memory keeps it (and `get` reads it from DynamoDB).
    fn to_data(&self) -> Value {
        let mut data = match &self.data {
            Value::Object(m) => m.clone(),
            _ => serde_json::Map::new(),
        };
        data.insert(ATTR_SINCE.into(), self.since.into());
        data.insert(ATTR_COUNT.into(), self.count.into());
        if let Some(t) = self.told {
            data.insert(ATTR_TOLD.into(), t.into());
        }
        if let Some(o) = &self.opener {
            data.insert(ATTR_OPENER.into(), o.clone().into());
        }
        Value::Object(data)
    }

    fn from_item(item: &std::collections::HashMap<String, AttributeValue>) -> Option<Tally> {
        Tally::from_data(&record_from_item(item)?.data)
    }
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

/// The item of a failed condition (`ReturnValuesOnConditionCheckFailure` `ALL_OLD`), or `None`
/// when the condition held or the item does not exist; other errors are errors.
fn failed_condition(e: SdkError<UpdateItemError, aws_smithy_runtime_api::http::Response>) -> Result<Option<std::collections::HashMap<String, AttributeValue>>> {
    match e.as_service_error() {
        Some(UpdateItemError::ConditionalCheckFailedException(c)) => Ok(Some(c.item().cloned().unwrap_or_default())),
        _ => Err(Error::aws("dynamodb", "UpdateItem", e)),
    }
}

/// Whether the item a failed condition returned was written by the request carrying `token`:
/// the SDK retried a request whose answer was lost, and its first attempt had applied. Each
/// update sets `#writer = :token` and requires `#writer <> :token`, so a retry never applies
/// twice ("Idempotency" of UpdateItem: a counter is not idempotent by itself).
fn written_by(item: &std::collections::HashMap<String, AttributeValue>, token: &str) -> bool {
    item.get(ATTR_WRITER).and_then(|v| v.as_s().ok()).is_some_and(|w| w == token)
}

/// The condition that keeps a retried request from applying twice (see [`written_by`]).
const NOT_RETRIED: &str = "(attribute_not_exists(#writer) OR #writer <> :token)";

impl StateStore {
    fn memory_update<T>(&self, pk: &str, sk: &str, f: impl FnOnce(Option<&Record>) -> (Option<Option<Record>>, T)) -> T {
        let Backend::Memory(map) = &*self.backend else { unreachable!("memory only") };
        let now = now_epoch();
        let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
        let key = (pk.to_string(), sk.to_string());
        let live = map.get(&key).filter(|r| r.expires_at > now);
        let (write, answer) = f(live);
        match write {
            Some(Some(r)) => {
                map.insert(key, r);
            }
            Some(None) => {
                map.remove(&key);
            }
            None => {}
        }
        answer
    }

    fn update(&self, pk: &str, sk: &str) -> Option<(&aws_sdk_dynamodb::Client, aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder)> {
        let Backend::Dynamo { client, table } = &*self.backend else { return None };
        Some((client, client.update_item().table_name(table).key(ATTR_PK, s(pk)).key(ATTR_SK, s(sk))))
    }

    /// Count one more in the window of `pk`/`sk` if it is open (opened less than `window_secs`
    /// before `now`), opening it when there is none: one UpdateItem,
    /// `SET #since = if_not_exists(#since, :now), #opener = if_not_exists(#opener, :opener),
    /// #data = if_not_exists(#data, :data), #expires = :expires ADD #n :one, #version :one`
    /// on the condition `attribute_not_exists(#since) OR #since > :cutoff`. The answer says who
    /// opened the window: exactly one caller (`opener`) finds itself there, however many count at
    /// once, and a retry by the same caller still does.
    #[allow(clippy::too_many_arguments)]
    pub async fn tally(&self, pk: &str, sk: &str, opener: &str, now: u64, window_secs: u64, data: &Value, ttl: Duration) -> Result<Counted> {
        let (pk, sk) = self.stored(pk, sk);
        let cutoff = now.saturating_sub(window_secs);
        let expires_at = now_epoch() + ttl.as_secs().max(1);
        let Some((_, request)) = self.update(&pk, &sk) else {
            return Ok(self.memory_update(&pk, &sk, |live| {
                let old = live.and_then(|r| Tally::from_data(&r.data));
                match old {
                    Some(t) if t.since <= cutoff => (None, Counted::Closed(t)),
                    old => {
                        let (since, count, told, first, kept) = old.map_or((now, 1, None, opener.to_string(), data.clone()), |t| (t.since, t.count + 1, t.told, t.opener.unwrap_or_default(), t.data));
                        let t = Tally { since, count, told, opener: Some(first), data: kept };
                        let version = live.map_or(1, |r| r.version + 1);
                        (Some(Some(Record { data: t.to_data(), version, expires_at })), Counted::Open(t))
                    }
                }
            }));
        };
        let token = write_token();
        let answer = request
            .update_expression("SET #since = if_not_exists(#since, :now), #opener = if_not_exists(#opener, :opener), #data = if_not_exists(#data, :data), #expires = :expires, #writer = :token ADD #n :one, #version :one")
            .condition_expression(format!("(attribute_not_exists(#since) OR #since > :cutoff) AND {NOT_RETRIED}"))
            .expression_attribute_names("#writer", ATTR_WRITER)
            .expression_attribute_values(":token", s(&token))
            .expression_attribute_names("#since", ATTR_SINCE)
            .expression_attribute_names("#opener", ATTR_OPENER)
            .expression_attribute_names("#data", ATTR_DATA)
            .expression_attribute_names("#expires", ATTR_EXPIRES_AT)
            .expression_attribute_names("#n", ATTR_COUNT)
            .expression_attribute_names("#version", ATTR_VERSION)
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":opener", s(opener))
            .expression_attribute_values(":data", s(&data.to_string()))
            .expression_attribute_values(":expires", n(expires_at))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":cutoff", n(cutoff))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match answer {
            Ok(out) => out.attributes().and_then(Tally::from_item).map(Counted::Open).ok_or_else(|| malformed(&pk, &sk)),
            Err(e) => match failed_condition(e)? {
                Some(item) if written_by(&item, &token) => Tally::from_item(&item).map(Counted::Open).ok_or_else(|| malformed(&pk, &sk)),
                Some(item) => Tally::from_item(&item).map(Counted::Closed).ok_or_else(|| malformed(&pk, &sk)),
                None => Err(malformed(&pk, &sk)),
            },
        }
    }

    /// Open the next window after `seen`, which [`StateStore::tally`] found closed, with
    /// `opener` counted in it: `SET #since = :now, #n = :one, #opener = :opener, #data = :data,
    /// #expires = :expires REMOVE #told ADD #version :one` on the condition `#since = :seen` (no
    /// one opened it first), and, with `claim_summary`, that `seen`'s summary is not claimed
    /// (`attribute_not_exists(#told) OR #told <> :seen`): the caller then tells it. `false`:
    /// someone else was first; count again.
    #[allow(clippy::too_many_arguments)]
    pub async fn reopen(&self, pk: &str, sk: &str, seen: &Tally, claim_summary: bool, opener: &str, now: u64, data: &Value, ttl: Duration) -> Result<bool> {
        let (pk, sk) = self.stored(pk, sk);
        let expires_at = now_epoch() + ttl.as_secs().max(1);
        let Some((_, request)) = self.update(&pk, &sk) else {
            return Ok(self.memory_update(&pk, &sk, |live| {
                let Some(t) = live.and_then(|r| Tally::from_data(&r.data)) else { return (None, false) };
                if t.since != seen.since || (claim_summary && t.told()) {
                    return (None, false);
                }
                let next = Tally { since: now, count: 1, told: None, opener: Some(opener.into()), data: data.clone() };
                (Some(Some(Record { data: next.to_data(), version: live.map_or(1, |r| r.version + 1), expires_at })), true)
            }));
        };
        let condition = if claim_summary { "#since = :seen AND (attribute_not_exists(#told) OR #told <> :seen)" } else { "#since = :seen" };
        let token = write_token();
        let answer = request
            .update_expression("SET #since = :now, #n = :one, #opener = :opener, #data = :data, #expires = :expires, #writer = :token REMOVE #told ADD #version :one")
            .condition_expression(format!("{condition} AND {NOT_RETRIED}"))
            .expression_attribute_names("#writer", ATTR_WRITER)
            .expression_attribute_values(":token", s(&token))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .expression_attribute_names("#since", ATTR_SINCE)
            .expression_attribute_names("#n", ATTR_COUNT)
            .expression_attribute_names("#opener", ATTR_OPENER)
            .expression_attribute_names("#data", ATTR_DATA)
            .expression_attribute_names("#expires", ATTR_EXPIRES_AT)
            .expression_attribute_names("#told", ATTR_TOLD)
            .expression_attribute_names("#version", ATTR_VERSION)
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":opener", s(opener))
            .expression_attribute_values(":data", s(&data.to_string()))
            .expression_attribute_values(":expires", n(expires_at))
            .expression_attribute_values(":seen", n(seen.since))
            .send()
            .await;
        match answer {
            Ok(_) => Ok(true),
            Err(e) => failed_condition(e).map(|old| old.is_some_and(|item| written_by(&item, &token))),
        }
    }

    /// Open a new window now, whatever the record held (a message that stood for the incident
    /// was just sent another way): one UpdateItem, unconditional.
    pub async fn restart_tally(&self, pk: &str, sk: &str, opener: &str, now: u64, data: &Value, ttl: Duration) -> Result<()> {
        let (pk, sk) = self.stored(pk, sk);
        let expires_at = now_epoch() + ttl.as_secs().max(1);
        let Some((_, request)) = self.update(&pk, &sk) else {
            let next = Tally { since: now, count: 1, told: None, opener: Some(opener.into()), data: data.clone() };
            self.memory_update(&pk, &sk, |live| (Some(Some(Record { data: next.to_data(), version: live.map_or(1, |r| r.version + 1), expires_at })), ()));
            return Ok(());
        };
        request
            .update_expression("SET #since = :now, #n = :one, #opener = :opener, #data = :data, #expires = :expires REMOVE #told ADD #version :one")
            .expression_attribute_names("#since", ATTR_SINCE)
            .expression_attribute_names("#n", ATTR_COUNT)
            .expression_attribute_names("#opener", ATTR_OPENER)
            .expression_attribute_names("#data", ATTR_DATA)
            .expression_attribute_names("#expires", ATTR_EXPIRES_AT)
            .expression_attribute_names("#told", ATTR_TOLD)
            .expression_attribute_names("#version", ATTR_VERSION)
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":opener", s(opener))
            .expression_attribute_values(":data", s(&data.to_string()))
            .expression_attribute_values(":expires", n(expires_at))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::aws("dynamodb", "UpdateItem", e))
    }

    /// Claim the summary of the window that opened at `since` (closed by now): `SET #told =
    /// :since` on the condition `#since = :since AND (attribute_not_exists(#told) OR #told <>
    /// :since)`, answered with the tally as claimed (`ALL_NEW`). `None`: told already, or the
    /// next window opened; exactly one claimant tells it.
    pub async fn tell(&self, pk: &str, sk: &str, since: u64) -> Result<Option<Tally>> {
        let (pk, sk) = self.stored(pk, sk);
        let Some((_, request)) = self.update(&pk, &sk) else {
            return Ok(self.memory_update(&pk, &sk, |live| {
                let Some(mut t) = live.and_then(|r| Tally::from_data(&r.data)) else { return (None, None) };
                if t.since != since || t.told() {
                    return (None, None);
                }
                t.told = Some(since);
                let r = live.map(|r| Record { data: t.to_data(), version: r.version + 1, expires_at: r.expires_at });
                (Some(r), Some(t))
            }));
        };
        let token = write_token();
        let answer = request
            .update_expression("SET #told = :since, #writer = :token ADD #version :one")
            .condition_expression(format!("#since = :since AND (attribute_not_exists(#told) OR #told <> :since) AND {NOT_RETRIED}"))
            .expression_attribute_names("#writer", ATTR_WRITER)
            .expression_attribute_values(":token", s(&token))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .expression_attribute_names("#since", ATTR_SINCE)
            .expression_attribute_names("#told", ATTR_TOLD)
            .expression_attribute_names("#version", ATTR_VERSION)
            .expression_attribute_values(":since", n(since))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match answer {
            Ok(out) => Ok(out.attributes().and_then(Tally::from_item)),
            Err(e) => Ok(failed_condition(e)?.filter(|item| written_by(item, &token)).and_then(|item| Tally::from_item(&item))),
        }
    }

    /// Give back a claim of [`StateStore::tell`] whose message could not be sent, for the next
    /// claimant: `REMOVE #told` if `#since = :since AND #told = :since`.
    pub async fn untell(&self, pk: &str, sk: &str, since: u64) -> Result<()> {
        let (pk, sk) = self.stored(pk, sk);
        let Some((_, request)) = self.update(&pk, &sk) else {
            self.memory_update(&pk, &sk, |live| {
                let Some(mut t) = live.and_then(|r| Tally::from_data(&r.data)).filter(|t| t.since == since && t.told()) else { return (None, ()) };
                t.told = None;
                (live.map(|r| Some(Record { data: t.to_data(), version: r.version + 1, expires_at: r.expires_at })), ())
            });
            return Ok(());
        };
        let answer = request
            .update_expression("REMOVE #told ADD #version :one")
            .condition_expression("#since = :since AND #told = :since")
            .expression_attribute_names("#since", ATTR_SINCE)
            .expression_attribute_names("#told", ATTR_TOLD)
            .expression_attribute_names("#version", ATTR_VERSION)
            .expression_attribute_values(":since", n(since))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        match answer {
            Ok(_) => Ok(()),
            Err(e) => failed_condition(e).map(|_| ()),
        }
    }

    /// Undo the opening of window `opened` whose first message could not be sent, if no one
    /// else counted in it yet (`#since = :since AND #n = :one`): back to `previous` (the closed
    /// window it replaced), or no record. Best effort: `false` when others counted meanwhile
    /// (the opener's retry still finds itself the opener, [`Tally::opened_by`]).
    pub async fn undo_open(&self, pk: &str, sk: &str, opened: &Tally, previous: Option<&Tally>) -> Result<bool> {
        let (pk, sk) = self.stored(pk, sk);
        let Backend::Dynamo { client, table } = &*self.backend else {
            return Ok(self.memory_update(&pk, &sk, |live| {
                let current = live.and_then(|r| Tally::from_data(&r.data));
                if !current.is_some_and(|t| t.since == opened.since && t.count == 1) {
                    return (None, false);
                }
                let back = previous.zip(live).map(|(p, r)| Record { data: p.to_data(), version: r.version + 1, expires_at: r.expires_at });
                (Some(back), true)
            }));
        };
        let answer = match previous {
            None => client
                .delete_item()
                .table_name(table)
                .key(ATTR_PK, s(&pk))
                .key(ATTR_SK, s(&sk))
                .condition_expression("#since = :since AND #n = :one")
                .expression_attribute_names("#since", ATTR_SINCE)
                .expression_attribute_names("#n", ATTR_COUNT)
                .expression_attribute_values(":since", n(opened.since))
                .expression_attribute_values(":one", n(1))
                .send()
                .await
                .map(|_| true)
                .or_else(|e| if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) { Ok(false) } else { Err(Error::aws("dynamodb", "DeleteItem", e)) }),
            Some(p) => {
                let (set, told) = match p.told {
                    Some(t) => ("SET #since = :old, #n = :count, #data = :data, #told = :told ADD #version :one", Some(t)),
                    None => ("SET #since = :old, #n = :count, #data = :data REMOVE #told ADD #version :one", None),
                };
                let mut request = client
                    .update_item()
                    .table_name(table)
                    .key(ATTR_PK, s(&pk))
                    .key(ATTR_SK, s(&sk))
                    .update_expression(set)
                    .condition_expression("#since = :since AND #n = :one")
                    .expression_attribute_names("#since", ATTR_SINCE)
                    .expression_attribute_names("#n", ATTR_COUNT)
                    .expression_attribute_names("#data", ATTR_DATA)
                    .expression_attribute_names("#told", ATTR_TOLD)
                    .expression_attribute_names("#version", ATTR_VERSION)
                    .expression_attribute_values(":since", n(opened.since))
                    .expression_attribute_values(":one", n(1))
                    .expression_attribute_values(":old", n(p.since))
                    .expression_attribute_values(":count", n(p.count))
                    .expression_attribute_values(":data", s(&p.data.to_string()));
                if let Some(t) = told {
                    request = request.expression_attribute_values(":told", n(t));
                }
                match request.send().await {
                    Ok(_) => Ok(true),
                    Err(e) => failed_condition(e).map(|_| false),
                }
            }
        };
        answer
    }

    /// Add `delta` to the counter `counter` of `pk`/`sk` in one UpdateItem (`ADD #c :delta`),
    /// only while the result stays within bounds: below `limit` before an increment
    /// (`attribute_not_exists(#c) OR #c < :limit`), above zero before a decrement (`#c > :zero`).
    /// The new value (`UPDATED_NEW`), or `None` when the bound held it back.
    pub async fn add_bounded(&self, pk: &str, sk: &str, counter: &str, delta: i64, limit: Option<u64>, ttl: Duration) -> Result<Option<u64>> {
        let (pk, sk) = self.stored(pk, sk);
        let expires_at = now_epoch() + ttl.as_secs().max(1);
        let Some((_, request)) = self.update(&pk, &sk) else {
            return Ok(self.memory_update(&pk, &sk, |live| {
                let mut data = live.map(|r| r.data.clone()).filter(Value::is_object).unwrap_or_else(|| serde_json::json!({}));
                let current = data.get(counter).and_then(Value::as_u64).unwrap_or(0);
                let allowed = if delta < 0 { current > 0 } else { limit.is_none_or(|l| current < l) };
                if !allowed {
                    return (None, None);
                }
                let next = current.saturating_add_signed(delta);
                data[counter] = next.into();
                (Some(Some(Record { data, version: live.map_or(1, |r| r.version + 1), expires_at })), Some(next))
            }));
        };
        let token = write_token();
        let request = request
            .update_expression("SET #data = if_not_exists(#data, :empty), #expires = :expires, #writer = :token ADD #c :delta, #version :one")
            .expression_attribute_names("#writer", ATTR_WRITER)
            .expression_attribute_values(":token", s(&token))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .expression_attribute_names("#data", ATTR_DATA)
            .expression_attribute_names("#expires", ATTR_EXPIRES_AT)
            .expression_attribute_names("#c", counter)
            .expression_attribute_names("#version", ATTR_VERSION)
            .expression_attribute_values(":empty", s("{}"))
            .expression_attribute_values(":expires", n(expires_at))
            .expression_attribute_values(":delta", AttributeValue::N(delta.to_string()))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew);
        let request = match (delta < 0, limit) {
            (true, _) => request.condition_expression(format!("#c > :zero AND {NOT_RETRIED}")).expression_attribute_values(":zero", n(0)),
            (false, Some(l)) => request.condition_expression(format!("(attribute_not_exists(#c) OR #c < :limit) AND {NOT_RETRIED}")).expression_attribute_values(":limit", n(l)),
            (false, None) => request.condition_expression(NOT_RETRIED),
        };
        let value = |item: &std::collections::HashMap<String, AttributeValue>| item.get(counter).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok());
        match request.send().await {
            Ok(out) => Ok(out.attributes().and_then(value)),
            // A retry of a request that had applied: its value is the item's.
            Err(e) => Ok(failed_condition(e)?.filter(|item| written_by(item, &token)).and_then(|item| value(&item))),
        }
    }

    /// Delete a record only if its data is still `data` (no one rewrote it since it was read).
    pub async fn delete_if(&self, pk: &str, sk: &str, data: &Value) -> Result<bool> {
        let (pk, sk) = self.stored(pk, sk);
        let Backend::Dynamo { client, table } = &*self.backend else {
            return Ok(self.memory_update(&pk, &sk, |live| if live.is_some_and(|r| r.data == *data) { (Some(None), true) } else { (None, false) }));
        };
        let answer = client
            .delete_item()
            .table_name(table)
            .key(ATTR_PK, s(&pk))
            .key(ATTR_SK, s(&sk))
            .condition_expression("#data = :data")
            .expression_attribute_names("#data", ATTR_DATA)
            .expression_attribute_values(":data", s(&data.to_string()))
            .send()
            .await;
        match answer {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(Error::aws("dynamodb", "DeleteItem", e)),
        }
    }
}

fn malformed(pk: &str, sk: &str) -> Error {
    Error::Aws { service: "dynamodb", operation: "UpdateItem", code: "MalformedTally".into(), message: format!("{pk}/{sk} is not a tally"), retryable: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TTL: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn one_opener_per_window_then_a_closed_window_is_reopened_once() {
        let s = StateStore::memory().scoped("111122223333:us-east-1");
        let open = |c: Counted| match c {
            Counted::Open(t) => t,
            other => panic!("open: {other:?}"),
        };
        let t = open(s.tally("p", "k", "a", 1000, 600, &json!({"name": "x"}), TTL).await.unwrap());
        assert_eq!((t.since, t.count, t.opened_by("a")), (1000, 1, true));
        let t = open(s.tally("p", "k", "b", 1100, 600, &json!({"name": "x"}), TTL).await.unwrap());
        assert_eq!((t.count, t.opened_by("b"), t.opened_by("a")), (2, false, true));
        let t = open(s.tally("p", "k", "a", 1101, 600, &json!({"name": "x"}), TTL).await.unwrap());
        assert!(t.opened_by("a"), "a retry of the opener is still the opener");
        let read = Tally::from_data(&s.get("p", "k").await.unwrap().unwrap().data).unwrap();
        assert_eq!((read.since, read.count, read.data.clone()), (1000, 3, json!({"name": "x"})), "get reads the tally");

        let Counted::Closed(seen) = s.tally("p", "k", "c", 1600, 600, &json!({}), TTL).await.unwrap() else { panic!("closed") };
        assert_eq!(seen.count, 3);
        assert!(s.reopen("p", "k", &seen, true, "c", 1600, &json!({"name": "x"}), TTL).await.unwrap());
        assert!(!s.reopen("p", "k", &seen, true, "d", 1600, &json!({}), TTL).await.unwrap(), "someone else reopened it first");
        assert_eq!(s.tell("p", "k", 1000).await.unwrap(), None, "the old window is gone");

        // The new window, closed, is told once.
        s.tally("p", "k", "e", 1700, 600, &json!({"name": "x"}), TTL).await.unwrap();
        let told = s.tell("p", "k", 1600).await.unwrap().expect("claimed");
        assert_eq!((told.count, told.told()), (2, true));
        assert_eq!(s.tell("p", "k", 1600).await.unwrap(), None, "once");
        s.untell("p", "k", 1600).await.unwrap();
        assert!(s.tell("p", "k", 1600).await.unwrap().is_some(), "given back, claimed again");
        let Counted::Closed(seen) = s.tally("p", "k", "f", 2300, 600, &json!({}), TTL).await.unwrap() else { panic!("closed") };
        assert!(!s.reopen("p", "k", &seen, true, "f", 2300, &json!({}), TTL).await.unwrap(), "a told window's summary is not claimed twice");
        assert!(s.reopen("p", "k", &seen, false, "f", 2300, &json!({}), TTL).await.unwrap());

        // Undo an opening nobody else counted in.
        s.delete("p", "k").await.unwrap();
        let t = open(s.tally("p", "k", "g", 5000, 600, &json!({}), TTL).await.unwrap());
        assert!(s.undo_open("p", "k", &t, None).await.unwrap());
        assert!(s.get("p", "k").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn bounded_counters_and_queries() {
        let s = StateStore::memory();
        assert_eq!(s.add_bounded("l", "x", "restarts", 1, Some(2), TTL).await.unwrap(), Some(1));
        assert_eq!(s.add_bounded("l", "x", "restarts", 1, Some(2), TTL).await.unwrap(), Some(2));
        assert_eq!(s.add_bounded("l", "x", "restarts", 1, Some(2), TTL).await.unwrap(), None, "at the limit");
        assert_eq!(s.get("l", "x").await.unwrap().unwrap().data, json!({"restarts": 2}));
        assert_eq!(s.add_bounded("l", "x", "restarts", -1, None, TTL).await.unwrap(), Some(1));
        assert_eq!(s.add_bounded("l", "x", "restarts", -1, None, TTL).await.unwrap(), Some(0));
        assert_eq!(s.add_bounded("l", "x", "restarts", -1, None, TTL).await.unwrap(), None, "never below zero");

        let a = s.scoped("111122223333:us-east-1");
        a.put("open", "k1", &json!({"since": 1}), TTL).await.unwrap();
        a.put("open", "k2", &json!({"since": 2}), TTL).await.unwrap();
        s.put("open", "k3", &json!({"since": 3}), TTL).await.unwrap();
        let found: Vec<String> = a.query("open").await.unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(found, ["k1", "k2"], "a scoped store queries its own partition");
        assert!(!a.delete_if("open", "k1", &json!({"since": 9})).await.unwrap(), "rewritten since");
        assert!(a.delete_if("open", "k1", &json!({"since": 1})).await.unwrap());
        assert_eq!(a.query("open").await.unwrap().len(), 1);
    }
}
