//! Notifications: an SNS message whose subject is one readable line and whose body is AWS
//! Chatbot's custom-notification JSON, so Slack and Teams render it through Chatbot unchanged.
//!
//! Messages are built only from fields the code chooses (names, revisions, digests, reasons);
//! nothing copies a task definition or an override into them, so environment values cannot leak.

use std::time::Duration;

use serde_json::{json, Map, Value};

use aws_smithy_runtime_api::client::result::SdkError;

use crate::error::{Error, Result};
use crate::state::StateStore;

/// SNS subjects: "UTF-8 text with no line breaks or control characters, and less than 100
/// characters long" (SNS API reference, Publish): 99 at most; we keep them printable ASCII.
pub const SUBJECT_MAX: usize = 99;

#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// One line naming the service (or task family) and the outcome.
    pub subject: String,
    pub title: String,
    pub description: String,
    /// Machine-readable event type, e.g. `deploy.completed`, `recovery.crash-loop`.
    pub event_type: String,
    /// Structured fields (cluster, service, revision, digest, reason, …).
    pub fields: Map<String, Value>,
}

impl Notification {
    pub fn new(event_type: &str, subject: impl Into<String>, description: impl Into<String>) -> Self {
        let subject = subject.into();
        Notification { title: subject.clone(), subject, description: description.into(), event_type: event_type.into(), fields: Map::new() }
    }

    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.into(), value.into());
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

    /// The AWS Chatbot custom notification body.
    pub fn chatbot_body(&self, dry_run: bool) -> Value {
        let mut context = self.fields.clone();
        context.insert("dryRun".into(), Value::Bool(dry_run));
        let title = if dry_run { format!("[dry run] {}", self.title) } else { self.title.clone() };
        json!({
            "version": "1.0",
            "source": "custom",
            "content": {
                "textType": "client-markdown",
                "title": title,
                "description": self.description,
            },
            "metadata": {
                "summary": self.sns_subject(),
                "eventType": self.event_type,
                "additionalContext": context,
            }
        })
    }
}

/// Publishes to SNS, or only logs when no topic is configured.
#[derive(Clone)]
pub struct Notifier {
    sns: Option<(aws_sdk_sns::Client, String)>,
    dry_run: bool,
    /// Organization mode: the member account and region the notifications are about.
    place: Option<crate::members::Place>,
}

impl Notifier {
    pub fn new(sns: Option<(aws_sdk_sns::Client, String)>, dry_run: bool) -> Self {
        Notifier { sns, dry_run, place: None }
    }

    pub fn log_only(dry_run: bool) -> Self {
        Notifier { sns: None, dry_run, place: None }
    }

    /// The same topic, for work done in `place`: every notification names its account and
    /// region (subject, description and the `account` and `region` fields), since one topic
    /// now speaks for the whole Organization.
    pub fn for_place(&self, place: &crate::members::Place) -> Self {
        Notifier { place: Some(place.clone()), ..self.clone() }
    }

    /// `n` as sent from this notifier's place.
    pub fn placed(&self, n: &Notification) -> Notification {
        let Some(place) = &self.place else { return n.clone() };
        let mut n = n.clone().field("account", place.account.as_str()).field("region", place.region.as_str());
        n.subject = format!("[{} {}] {}", place.account, place.region, n.subject);
        n.description = format!("Account {}, {}.\n{}", place.account, place.region, n.description);
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
        assert_eq!(b["metadata"]["additionalContext"]["dryRun"], true);
        let long = Notification::new("x", "é".repeat(10) + &"a".repeat(200), "");
        assert!(long.sns_subject().len() <= SUBJECT_MAX);
    }

    /// Issue 16: one topic speaks for the Organization, so a member's notification names its
    /// account and region where a reader looks first.
    #[test]
    fn a_members_notification_names_its_account_and_region() {
        let n = Notification::new("deploy.completed", "stage01/auth: rolled onto auth:7", "desc").field("service", "auth");
        let home = Notifier::log_only(false);
        assert_eq!(home.placed(&n), n, "the home account's read as before");
        let member = home.for_place(&crate::members::Place::new("111122223333", "eu-west-1"));
        let placed = member.placed(&n);
        assert_eq!(placed.sns_subject(), "[111122223333 eu-west-1] stage01/auth: rolled onto auth:7");
        assert!(placed.description.starts_with("Account 111122223333, eu-west-1."));
        let body = placed.chatbot_body(false);
        assert_eq!((body["metadata"]["additionalContext"]["account"].as_str(), body["metadata"]["additionalContext"]["region"].as_str()), (Some("111122223333"), Some("eu-west-1")));
    }
}
