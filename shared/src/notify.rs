//! Notifications: an SNS message whose subject is one readable line and whose body is a custom
//! notification of Amazon Q Developer in chat applications (formerly AWS Chatbot), so Slack and
//! Teams render it unchanged.
//!
//! Messages are built only from fields the code chooses (names, revisions, digests, reasons);
//! nothing copies a task definition or an override into them, so environment values cannot leak.
//! The same holds for `nextSteps`: the commands name clusters, services, revisions and ARNs only.
//!
//! The body follows the documented event schema, "Custom notifications using Amazon Q Developer
//! in chat applications", <https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html>
//! (section "Event schema"):
//!
//! ```text
//! { "version": "1.0", "source": "custom", "id": String,
//!   "content":  { "textType": "client-markdown", "title": String, "description": String,
//!                 "nextSteps": [String], "keywords": [String] },
//!   "metadata": { "threadId": String, "summary": String, "eventType": String,
//!                 "relatedResources": [String], "additionalContext": { String: String } } }
//! ```
//!
//! What the page says: `version` is required and must be `1.0`; `source` is required and must be
//! `custom`; `id` is optional, a "unique event identifier"; `textType` is optional and only
//! `client-markdown` is supported; `title` supports markdown; `threadId` groups notification
//! updates in one thread of the channel (when the channel's preferences allow threading);
//! `additionalContext` is a map of string keys to **string** values. The parts of the page we could
//! read give no length limits for any field, so the caps below are our own conservative choices
//! (each says why), applied on a char boundary.

use std::time::Duration;

use serde_json::{json, Map, Value};

use aws_smithy_runtime_api::client::result::SdkError;

use crate::error::{Error, Result};
use crate::state::StateStore;

/// The custom-notification schema's documentation page, cited by the caps and tests.
pub const SCHEMA_DOC: &str = "https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html";

/// SNS subjects: "UTF-8 text with no line breaks or control characters, and less than 100
/// characters long" (SNS API reference, Publish): 99 at most; we keep them printable ASCII.
/// `metadata.summary` is the same line.
pub const SUBJECT_MAX: usize = 99;
/// `content.title`: no limit documented (SCHEMA_DOC); 150 characters, the limit of a Slack header
/// block's text, so a title is never cut by the chat client in the middle of a word we chose.
pub const TITLE_MAX: usize = 150;
/// `content.description`: no limit documented (SCHEMA_DOC); 3000 characters, the limit of a Slack
/// section block's text (the smaller of the two clients'). A longer one ends in `…`.
pub const DESCRIPTION_MAX: usize = 3000;
/// `content.nextSteps`: no limit documented (SCHEMA_DOC). At most 5 steps of at most 1000
/// characters; a longer step is a command that would be wrong if cut, so it is left out (its
/// text stays in the description where there is one).
pub const NEXT_STEPS_MAX: usize = 5;
pub const NEXT_STEP_MAX: usize = 1000;
/// `content.keywords`: no limit documented (SCHEMA_DOC): at most 10 keywords of 64 characters.
pub const KEYWORDS_MAX: usize = 10;
pub const KEYWORD_MAX: usize = 64;
/// `metadata.relatedResources`: no limit documented (SCHEMA_DOC): at most 10 ARNs, each within the
/// 2048 characters IAM allows an ARN ("IAM identifiers", ARN length); a longer one is left out.
pub const RELATED_RESOURCES_MAX: usize = 10;
pub const RELATED_RESOURCE_MAX: usize = 2048;
/// `metadata.threadId`: no limit or alphabet documented (SCHEMA_DOC): ours are at most 64 ASCII
/// characters `[A-Za-z0-9._:-]`; a longer one (never built by [`thread_id`] and
/// [`Notifier::placed`] together) is replaced by a hash of itself, which stays stable.
pub const THREAD_ID_MAX: usize = 64;

/// A stable 128-bit hash as 32 lowercase hex digits: two FNV-1a 64 passes with different offset
/// bases. Not cryptographic; it names threads and messages, stably across Rust versions (unlike
/// `DefaultHasher`), so a retried publish carries the same id.
pub fn stable_hash(data: &str) -> String {
    use crate::keys::{fnv1a, FNV_OFFSET_BASIS};
    format!("{:016x}{:016x}", fnv1a(FNV_OFFSET_BASIS, data), fnv1a(0x6c62_272e_07bb_0142, data))
}

/// A thread id (`metadata.threadId`): `KIND-` and 16 hex digits of a hash of `key`. Every message
/// about one thing (one push: its repository and digest; one rollout; one incident) is built with
/// the same `kind` and `key` and so lands in one thread of the chat channel (SCHEMA_DOC, threadId).
pub fn thread_id(kind: &str, key: &str) -> String {
    let kind: String = kind.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '.').take(24).collect();
    format!("{kind}-{}", &stable_hash(key)[..16])
}

/// The thread of one push (repository and digest): its `deploy.started` message, the refusals and
/// holds of that push, and the end of each rollout it started (rollout.rs reads the digest and
/// repository from the deployment record).
pub fn push_thread(repository: &str, digest: &str) -> String {
    thread_id("push", &format!("{repository}@{digest}"))
}

/// The thread of a service's configuration problems (an invalid `autopilot:` tag, a CodeDeploy
/// controller), whichever function finds them: `cluster` is the cluster's name or ARN.
pub fn service_thread(cluster: &str, service: &str) -> String {
    thread_id("service", &format!("{}/{service}", crate::config::cluster_name(cluster)))
}

/// The region of an ARN (`arn:PARTITION:SERVICE:REGION:…`), when it names one.
pub fn region_of(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    (parts.next() == Some("arn")).then_some(())?;
    parts.nth(2).filter(|r| !r.is_empty())
}

/// `aws ecs VERB --region R REST` for `content.nextSteps`, with the region `arn` names (none when
/// it names none). Callers pass names, revisions and ARNs only: never an environment value,
/// secret or override.
pub fn ecs_command(verb: &str, arn: &str, rest: &str) -> String {
    match region_of(arn) {
        Some(r) => format!("aws ecs {verb} --region {r} {rest}"),
        None => format!("aws ecs {verb} {rest}"),
    }
}

/// `s` cut to at most `max` characters on a char boundary, ending in `…` when cut.
pub fn cap(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// An `additionalContext` value as the schema wants it, a string: strings as they are, numbers and
/// booleans in their JSON spelling, arrays of scalars joined by commas (as the fields that list
/// services already are), objects and other arrays as compact JSON; `None` for null.
pub fn context_string(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(_) | Value::Number(_) => Some(v.to_string()),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => Some(items.iter().filter_map(context_string).collect::<Vec<_>>().join(",")),
        Value::Array(_) | Value::Object(_) => Some(v.to_string()),
    }
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !item.is_empty() && !list.contains(&item) {
        list.push(item);
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// One line naming the service (or task family) and the outcome.
    pub subject: String,
    pub title: String,
    pub description: String,
    /// Machine-readable event type, e.g. `deploy.completed`, `recovery.crash-loop`.
    pub event_type: String,
    /// Structured fields (cluster, service, revision, digest, reason, …): `additionalContext`,
    /// each value sent as a string ([`context_string`]).
    pub fields: Map<String, Value>,
    /// `id`: when `None`, [`Notification::chatbot_body`] derives one from the content, so the
    /// same message built again (a retried invocation) carries the same id.
    pub id: Option<String>,
    /// `content.nextSteps`: the commands a person runs next (refused restart, rollback, crash
    /// loop, held-back digest, invalid tag). Names and ARNs only, never an environment value,
    /// secret or override.
    pub next_steps: Vec<String>,
    /// `content.keywords`: cluster, service, event words.
    pub keywords: Vec<String>,
    /// `metadata.threadId`: one push, one rollout, one incident → one thread ([`thread_id`]).
    pub thread_id: Option<String>,
    /// `metadata.relatedResources`: ARNs of the cluster, service, task, task definition, alarm,
    /// target group the message is about.
    pub related_resources: Vec<String>,
}

impl Notification {
    pub fn new(event_type: &str, subject: impl Into<String>, description: impl Into<String>) -> Self {
        let subject = subject.into();
        let keywords = event_type.split(['.', '-']).filter(|w| !w.is_empty()).map(String::from).collect();
        Notification {
            title: subject.clone(),
            subject,
            description: description.into(),
            event_type: event_type.into(),
            fields: Map::new(),
            id: None,
            next_steps: Vec::new(),
            keywords,
            thread_id: None,
            related_resources: Vec::new(),
        }
    }

    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.into(), value.into());
        self
    }

    /// In thread `id` (see [`thread_id`], [`push_thread`]).
    pub fn thread(mut self, id: impl Into<String>) -> Self {
        self.thread_id = Some(id.into());
        self
    }

    /// One more command for `content.nextSteps` (duplicates and empty ones are dropped).
    pub fn next_step(mut self, command: impl Into<String>) -> Self {
        push_unique(&mut self.next_steps, command.into());
        self
    }

    /// More `content.keywords` (duplicates and empty ones are dropped).
    pub fn keywords<I: IntoIterator<Item = S>, S: Into<String>>(mut self, words: I) -> Self {
        for w in words {
            push_unique(&mut self.keywords, w.into());
        }
        self
    }

    /// More `metadata.relatedResources`: only ARNs are kept (`arn:` prefix), once each.
    pub fn related<I: IntoIterator<Item = S>, S: Into<String>>(mut self, arns: I) -> Self {
        for a in arns {
            let a = a.into();
            if a.starts_with("arn:") {
                push_unique(&mut self.related_resources, a);
            }
        }
        self
    }

    pub fn sns_subject(&self) -> String {
        let clean: String = self.subject.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { ' ' }).collect();
        let clean = clean.split_whitespace().collect::<Vec<_>>().join(" ");
        if clean.len() <= SUBJECT_MAX {
            clean
        } else {
            format!("{}...", &clean[..SUBJECT_MAX - 3])
        }
    }

    /// The custom notification body (SCHEMA_DOC): every field the message has, capped; no
    /// `threadId`, `nextSteps`, `keywords` or `relatedResources` key when it has none.
    pub fn chatbot_body(&self, dry_run: bool) -> Value {
        let mut context = Map::new();
        for (k, v) in &self.fields {
            if let Some(s) = context_string(v) {
                context.insert(k.clone(), Value::String(s));
            }
        }
        context.insert("dryRun".into(), Value::String(dry_run.to_string()));
        let title = if dry_run { format!("[dry run] {}", self.title) } else { self.title.clone() };
        let mut content = Map::new();
        content.insert("textType".into(), "client-markdown".into());
        content.insert("title".into(), cap(&title, TITLE_MAX).into());
        content.insert("description".into(), cap(&self.description, DESCRIPTION_MAX).into());
        let steps: Vec<&String> = self.next_steps.iter().filter(|s| s.chars().count() <= NEXT_STEP_MAX).take(NEXT_STEPS_MAX).collect();
        if !steps.is_empty() {
            content.insert("nextSteps".into(), json!(steps));
        }
        let keywords: Vec<String> = self.keywords.iter().take(KEYWORDS_MAX).map(|k| cap(k, KEYWORD_MAX)).collect();
        if !keywords.is_empty() {
            content.insert("keywords".into(), json!(keywords));
        }
        let mut metadata = Map::new();
        if let Some(t) = self.thread_id.as_deref().filter(|t| !t.is_empty()) {
            let t = if t.len() <= THREAD_ID_MAX && t.chars().all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c)) { t.to_string() } else { thread_id("t", t) };
            metadata.insert("threadId".into(), t.into());
        }
        metadata.insert("summary".into(), self.sns_subject().into());
        metadata.insert("eventType".into(), self.event_type.clone().into());
        let related: Vec<&String> = self.related_resources.iter().filter(|a| a.len() <= RELATED_RESOURCE_MAX).take(RELATED_RESOURCES_MAX).collect();
        if !related.is_empty() {
            metadata.insert("relatedResources".into(), json!(related));
        }
        metadata.insert("additionalContext".into(), Value::Object(context));
        let id = self.id.clone().unwrap_or_else(|| {
            // Deterministic: the same message (a retry builds it again) has the same id; another
            // message (another thread, event, text or field) another one. UUID-shaped.
            let h = stable_hash(&format!("{}\n{}\n{}", Value::Object(content.clone()), Value::Object(metadata.clone()), self.subject));
            format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
        });
        json!({
            "version": "1.0",
            "source": "custom",
            "id": id,
            "content": content,
            "metadata": metadata,
        })
    }
}

/// Publishes to SNS, or only logs when no topic is configured.
#[derive(Clone)]
pub struct Notifier {
    sns: Option<(aws_sdk_sns::Client, String)>,
    dry_run: bool,
    /// Organization mode: the member account and region the notifications are about, and the
    /// account's name in the Organization when it gives one.
    place: Option<crate::members::Place>,
    account_name: Option<String>,
}

impl Notifier {
    pub fn new(sns: Option<(aws_sdk_sns::Client, String)>, dry_run: bool) -> Self {
        Notifier { sns, dry_run, place: None, account_name: None }
    }

    pub fn log_only(dry_run: bool) -> Self {
        Notifier { sns: None, dry_run, place: None, account_name: None }
    }

    /// The same topic, for work done in `place`: every notification names its account and
    /// region (subject, description and the `account` and `region` fields), since one topic
    /// now speaks for the whole Organization.
    pub fn for_place(&self, place: &crate::members::Place, account_name: Option<String>) -> Self {
        Notifier { place: Some(place.clone()), account_name, ..self.clone() }
    }

    /// `n` as sent from this notifier's place.
    pub fn placed(&self, n: &Notification) -> Notification {
        let Some(place) = &self.place else { return n.clone() };
        let mut n = n.clone().field("account", place.account.as_str()).field("region", place.region.as_str()).keywords([place.account.as_str(), place.region.as_str()]);
        // One thread per account and region: two members' pushes of one image are two threads.
        if let Some(t) = &n.thread_id {
            n.thread_id = Some(format!("{}:{}:{t}", place.account, place.region));
        }
        match &self.account_name {
            Some(name) => {
                n = n.field("accountName", name.as_str()).keywords([name.as_str()]);
                n.subject = format!("[{name} {}] {}", place.region, n.subject);
                n.description = format!("Account {name} ({}), {}.\n{}", place.account, place.region, n.description);
            }
            None => {
                n.subject = format!("[{} {}] {}", place.account, place.region, n.subject);
                n.description = format!("Account {}, {}.\n{}", place.account, place.region, n.description);
            }
        }
        n
    }

    pub async fn publish(&self, n: &Notification) -> Result<()> {
        let placed = self.placed(n);
        let n = &placed;
        let subject = if self.dry_run { format!("[dry run] {}", n.subject) } else { n.subject.clone() };
        let body = n.chatbot_body(self.dry_run);
        tracing::info!(notification = %subject, event_type = %n.event_type, "notify");
        let Some((client, topic)) = &self.sns else { return Ok(()) };
        let subject = Notification { subject, ..n.clone() }.sns_subject();
        let message = body.to_string();
        // At most once: the SDK's retry of a Publish whose answer was lost delivers the message
        // twice, so only calls that got an answer (throttling, 5xx) are retried here; no answer
        // or a timeout counts as sent, with a warning.
        let retry = client.config().retry_config().cloned().unwrap_or_else(crate::aws::retry_config);
        let mut backoff = retry.initial_backoff();
        for attempt in 1..=retry.max_attempts().max(1) {
            let result = client
                .publish()
                .topic_arn(topic)
                .subject(&subject)
                .message(&message)
                .customize()
                .config_override(aws_sdk_sns::config::Builder::default().retry_config(aws_config::retry::RetryConfig::disabled()))
                .send()
                .await;
            let e = match result {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let answered = matches!(&e, SdkError::ServiceError(_));
            let error = Error::aws("sns", "Publish", e);
            if !answered {
                tracing::warn!(error = %error, "notification may not have been delivered; not resent, to never send it twice");
                return Ok(());
            }
            if !error.retryable() || attempt == retry.max_attempts() {
                return Err(error);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(retry.max_backoff());
        }
        Ok(())
    }

    /// Publish at most once per `key` within `window` (debouncing by incident). Returns whether
    /// it was sent. If publishing fails the claim is released so a retry can send it.
    pub async fn publish_once(&self, state: &StateStore, key: &str, window: Duration, n: &Notification) -> Result<bool> {
        if !state.create("notify", key, &json!({"subject": n.subject}), window).await? {
            tracing::debug!(key, "notification already sent for this incident");
            return Ok(false);
        }
        if let Err(e) = self.publish(n).await {
            let _ = state.delete("notify", key).await;
            return Err(e);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatbot_shape_and_subject_limits() {
        let n = Notification::new("deploy.completed", "auth rolled onto auth:7\n(v2)", "desc").field("service", "auth");
        assert_eq!(n.sns_subject(), "auth rolled onto auth:7 (v2)");
        let b = n.chatbot_body(true);
        assert_eq!(b["version"], "1.0");
        assert_eq!(b["source"], "custom");
        assert_eq!(b["content"]["title"], "[dry run] auth rolled onto auth:7\n(v2)");
        assert_eq!(b["metadata"]["additionalContext"]["service"], "auth");
        // SCHEMA_DOC: additionalContext values are strings.
        assert_eq!(b["metadata"]["additionalContext"]["dryRun"], "true");
        let long = Notification::new("x", "é".repeat(10) + &"a".repeat(200), "");
        assert!(long.sns_subject().len() <= SUBJECT_MAX);
    }

    /// Issue 17 item 10, the schema of SCHEMA_DOC ("Event schema"): every field present where the
    /// message sets it, absent where it does not; additionalContext values all strings.
    #[test]
    fn chatbot_body_follows_the_custom_notification_schema() {
        let full = Notification::new("deploy.failed", "stage01/auth: rollout failed", "desc")
            .field("service", "auth")
            .field("runningCount", 3)
            .field("crashLoop", false)
            .field("services", json!(["auth", "random"]))
            .field("nested", json!({"a": 1, "b": [true]}))
            .field("nothing", Value::Null)
            .thread(push_thread("web", "sha256:aa"))
            .next_step("aws ecs describe-services --cluster stage01 --services auth")
            .next_step("aws ecs describe-services --cluster stage01 --services auth")
            .keywords(["stage01", "auth", ""])
            .related(["arn:aws:ecs:us-east-1:123456789012:service/stage01/auth", "not-an-arn"]);
        let bare = Notification::new("scale.out", "random 4 -> 6", "desc");
        for (name, n, thread, steps, keywords, related) in [
            ("every field", &full, true, 1, vec!["deploy", "failed", "stage01", "auth"], 1),
            ("no optional field", &bare, false, 0, vec!["scale", "out"], 0),
        ] {
            let b = n.chatbot_body(false);
            assert_eq!((b["version"].as_str(), b["source"].as_str()), (Some("1.0"), Some("custom")), "{name}");
            assert_eq!(b["content"]["textType"], "client-markdown", "{name}");
            assert_eq!(b["content"]["title"], n.title, "{name}");
            assert_eq!(b["content"]["description"], "desc", "{name}");
            assert_eq!(b["metadata"]["summary"], n.sns_subject(), "{name}");
            assert_eq!(b["metadata"]["eventType"], n.event_type, "{name}");
            let id = b["id"].as_str().unwrap();
            assert_eq!((id.len(), id.matches('-').count()), (36, 4), "{name}: a UUID-shaped id {id}");
            assert_eq!(b["metadata"].get("threadId").is_some(), thread, "{name}: no threadId key when none");
            assert_eq!(b["content"].get("nextSteps").map_or(0, |s| s.as_array().unwrap().len()), steps, "{name}");
            let kw: Vec<&str> = b["content"]["keywords"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
            assert_eq!(kw, keywords, "{name}");
            assert_eq!(b["metadata"].get("relatedResources").map_or(0, |s| s.as_array().unwrap().len()), related, "{name}");
            let ctx = b["metadata"]["additionalContext"].as_object().unwrap();
            assert!(ctx.values().all(Value::is_string), "{name}: every additionalContext value is a string: {ctx:?}");
        }
        let ctx = &full.chatbot_body(true)["metadata"]["additionalContext"];
        for (key, want) in [("runningCount", Some("3")), ("crashLoop", Some("false")), ("services", Some("auth,random")), ("nested", Some(r#"{"a":1,"b":[true]}"#)), ("nothing", None), ("dryRun", Some("true"))] {
            assert_eq!(ctx.get(key).and_then(Value::as_str), want, "{key}");
        }
    }

    /// SCHEMA_DOC documents no lengths: our caps cut on a char boundary (a multibyte title too) and
    /// drop a command too long to be cut without becoming another command.
    #[test]
    fn caps_cut_on_a_char_boundary() {
        let title = "é".repeat(TITLE_MAX + 20);
        let mut n = Notification::new("x.y", title.clone(), "ü".repeat(DESCRIPTION_MAX * 2)).next_step("a".repeat(NEXT_STEP_MAX + 1)).next_step("aws ecs describe-services");
        n = n.keywords((0..20).map(|i| format!("k{i}-{}", "ß".repeat(100))));
        let b = n.chatbot_body(true);
        let t = b["content"]["title"].as_str().unwrap();
        assert_eq!(t.chars().count(), TITLE_MAX);
        assert!(t.starts_with("[dry run] éé") && t.ends_with("é…"), "{t}");
        assert_eq!(b["content"]["description"].as_str().unwrap().chars().count(), DESCRIPTION_MAX);
        assert_eq!(b["content"]["nextSteps"], json!(["aws ecs describe-services"]));
        let kw = b["content"]["keywords"].as_array().unwrap();
        assert_eq!(kw.len(), KEYWORDS_MAX);
        assert!(kw.iter().all(|k| k.as_str().unwrap().chars().count() <= KEYWORD_MAX));
        assert!(b["metadata"]["summary"].as_str().unwrap().len() <= SUBJECT_MAX);
        assert_eq!(cap("abc", 3), "abc");
        assert_eq!(cap("abcd", 3), "ab…");
    }

    /// A retried publish carries the same id (it is derived from the message); another message
    /// another id. Thread ids are stable, short, and prefixed by the place in organization mode.
    #[test]
    fn ids_and_threads_are_stable() {
        let n = || Notification::new("deploy.completed", "auth rolled onto auth:7", "d").field("service", "auth").thread(push_thread("web", "sha256:aa"));
        assert_eq!(n().chatbot_body(false)["id"], n().chatbot_body(false)["id"]);
        assert_ne!(n().chatbot_body(false)["id"], n().field("service", "random").chatbot_body(false)["id"]);
        assert_ne!(n().chatbot_body(false)["id"], n().chatbot_body(true)["id"]);
        assert_eq!(push_thread("web", "sha256:aa"), push_thread("web", "sha256:aa"));
        assert_ne!(push_thread("web", "sha256:aa"), push_thread("api", "sha256:aa"));
        assert!(push_thread("web", "sha256:aa").starts_with("push-") && push_thread("web", "sha256:aa").len() == 21);
        let member = Notifier::log_only(false).for_place(&crate::members::Place::new("111122223333", "ap-southeast-2"), Some("payments-prod".into()));
        let placed = member.placed(&n());
        let t = placed.chatbot_body(false)["metadata"]["threadId"].as_str().unwrap().to_string();
        assert_eq!(t, format!("111122223333:ap-southeast-2:{}", push_thread("web", "sha256:aa")));
        assert!(t.len() <= THREAD_ID_MAX);
        assert!(placed.keywords.iter().any(|k| k == "payments-prod"));
        let long = Notification::new("x", "s", "d").thread("x".repeat(200));
        let t = long.chatbot_body(false)["metadata"]["threadId"].as_str().unwrap().to_string();
        assert!(t.len() <= THREAD_ID_MAX && t == long.chatbot_body(false)["metadata"]["threadId"], "{t}");
    }

    /// Issue 16: one topic speaks for the Organization, so a member's notification names its
    /// account and region where a reader looks first.
    #[test]
    fn a_members_notification_names_its_account_and_region() {
        let n = Notification::new("deploy.completed", "stage01/auth: rolled onto auth:7", "desc").field("service", "auth");
        let home = Notifier::log_only(false);
        assert_eq!(home.placed(&n), n, "the home account's read as before");
        let member = home.for_place(&crate::members::Place::new("111122223333", "eu-west-1"), None);
        let placed = member.placed(&n);
        assert_eq!(placed.sns_subject(), "[111122223333 eu-west-1] stage01/auth: rolled onto auth:7");
        assert!(placed.description.starts_with("Account 111122223333, eu-west-1."));
        let body = placed.chatbot_body(false);
        assert_eq!((body["metadata"]["additionalContext"]["account"].as_str(), body["metadata"]["additionalContext"]["region"].as_str()), (Some("111122223333"), Some("eu-west-1")));
        // With the name the Organization gives the account.
        let named = home.for_place(&crate::members::Place::new("111122223333", "eu-west-1"), Some("payments-prod".into())).placed(&n);
        assert_eq!(named.sns_subject(), "[payments-prod eu-west-1] stage01/auth: rolled onto auth:7");
        assert!(named.description.starts_with("Account payments-prod (111122223333), eu-west-1."));
        assert_eq!(named.fields["accountName"], "payments-prod");
    }
}
