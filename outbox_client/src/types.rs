//! The values that cross the SQL API: validated topics, messages to enqueue,
//! claimed messages (and the rows that cannot be messages) and the outcome
//! of a failed attempt.

use crate::Error;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use uuid::Uuid;

/// A topic name, checked by the extension's own rule (Kafka's):
/// 1 to 249 characters of `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
///
/// ```
/// use outbox_client::Topic;
/// assert!(Topic::new("orders.created").is_ok());
/// assert!(Topic::new("orders created").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Topic(String);

impl Topic {
    /// Check and wrap a topic name (the rule is `outbox_rules::topic`, the
    /// one the extension applies).
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        outbox_rules::topic(&name)?;
        Ok(Topic(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message to enqueue. Build it with [`NewMessage::new`] and the `with_*`
/// methods.
///
/// ```
/// use outbox_client::{NewMessage, Topic};
/// let m = NewMessage::new(Topic::new("orders.created")?, &serde_json::json!({"id": 42}))?
///     .with_key("order-42")
///     .with_header("trace-id", "abc");
/// # Ok::<(), outbox_client::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Where it goes.
    pub topic: Topic,
    /// The body.
    pub payload: Value,
    /// Messages with the same key are delivered in order; `None` = unordered.
    pub key: Option<String>,
    /// String headers carried to the broker.
    pub headers: BTreeMap<String, String>,
    /// Not before this time; `None` = now.
    pub deliver_at: Option<DateTime<Utc>>,
    /// Attempts before it is dead-lettered; `None` = `outbox.max_attempts`.
    pub max_attempts: Option<i32>,
    /// Idempotent enqueue: while another message holds this key (it is
    /// unfinished, or within its dedup window), enqueue writes nothing and
    /// returns that message's id. `None` = no deduplication.
    pub dedup_key: Option<String>,
    /// How long after its delivery time the key stays held once the
    /// message is finished; `None` = `outbox.dedup_window`.
    pub dedup_window: Option<std::time::Duration>,
}

impl NewMessage {
    /// A message with a payload serialized from any `Serialize` value.
    pub fn new(topic: Topic, payload: &impl Serialize) -> Result<Self, Error> {
        Ok(NewMessage {
            topic,
            payload: serde_json::to_value(payload)?,
            key: None,
            headers: BTreeMap::new(),
            deliver_at: None,
            max_attempts: None,
            dedup_key: None,
            dedup_window: None,
        })
    }

    /// Order this message after earlier ones with the same key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Add a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Deliver no earlier than `at`.
    pub fn deliver_at(mut self, at: DateTime<Utc>) -> Self {
        self.deliver_at = Some(at);
        self
    }

    /// Dead-letter after `n` attempts.
    pub fn max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    /// Enqueue this message only if no other message holds `key`
    /// (`outbox.enqueue(..., dedup_key => key)`); otherwise
    /// [`Store::enqueue`](crate::Store::enqueue) returns the holder's id and
    /// writes nothing. The key names the event, e.g. `"order-42-created"`.
    ///
    /// ```
    /// use outbox_client::{NewMessage, Topic};
    /// let m = NewMessage::new(Topic::new("orders.created")?, &serde_json::json!({"id": 42}))?
    ///     .with_dedup_key("order-42-created")?;
    /// assert!(NewMessage::new(Topic::new("orders.created")?, &1)?.with_dedup_key("").is_err());
    /// # Ok::<(), outbox_client::Error>(())
    /// ```
    pub fn with_dedup_key(mut self, key: impl Into<String>) -> Result<Self, Error> {
        let key = key.into();
        outbox_rules::dedup_key(&key)?;
        self.dedup_key = Some(key);
        Ok(self)
    }

    /// Keep the dedup key held for `window` after the message's delivery
    /// time, also once it is published (default: `outbox.dedup_window`).
    pub fn with_dedup_window(mut self, window: std::time::Duration) -> Result<Self, Error> {
        outbox_rules::dedup_window(i128::try_from(window.as_micros()).ok())?;
        self.dedup_window = Some(window);
        Ok(self)
    }

    pub(crate) fn headers_json(&self) -> Option<Value> {
        // Built by hand: string to string cannot fail, so no error to drop.
        (!self.headers.is_empty()).then(|| {
            Value::Object(
                self.headers
                    .iter()
                    .map(|(name, value)| (name.clone(), Value::String(value.clone())))
                    .collect(),
            )
        })
    }
}

/// A lease token from `outbox.claim()`: the fence that lets only the current
/// holder finish a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct LeaseToken(pub Uuid);

/// A claimed message, as a relay sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    /// The outbox id: stable across redeliveries, use it to deduplicate.
    pub id: i64,
    /// Where it goes.
    pub topic: String,
    /// Its ordering key, if any.
    pub key: Option<String>,
    /// The body, exactly as PostgreSQL's `jsonb` prints it: publishers send
    /// these bytes (`payload.get()`) as they are. Not parsed on the way:
    /// `serde_json::Value` would turn `99.50` into `99.5` and
    /// `12345678901234567890123` into `1.2345678901234568e22`, refuse
    /// `1e400` and nesting deeper than 128, and parsing it was 3.1 µs of
    /// each message's relay cost (measured; this checks it is JSON, 0.9 µs).
    /// [`Message::payload_as`] parses it for code that wants to look inside.
    pub payload: Box<RawValue>,
    /// String headers: `None`, or a JSON object whose values are all
    /// strings (a claimed row with anything else is [`Undeliverable`]).
    pub headers: Option<Value>,
    /// 1 for the first delivery attempt, 2 for the first retry, ...
    pub attempt: i32,
    /// The lease token of the claim that returned it.
    #[serde(skip)]
    pub lease_token: LeaseToken,
    /// When the lease runs out.
    #[serde(skip)]
    pub lease_expires_at: DateTime<Utc>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
}

impl Message {
    /// The payload parsed into `T` (e.g. `serde_json::Value` or your own
    /// event type); publishers send [`payload`](Message::payload) as it is.
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.payload.get())
    }
}

/// What one `outbox.claim()` handed out. Every row of it is leased to the
/// caller, and every row must be settled: the [`messages`](Claim::messages)
/// by publishing them (then `complete`, `fail` or `release`), the
/// [`undeliverable`](Claim::undeliverable) ones by dead-lettering them.
///
/// A row is undeliverable when this client cannot decode it, although the
/// database holds it: headers that are not a JSON object of strings (the
/// extension refuses those at enqueue, so only a row written around it), or
/// a column a future extension version changed. The payload is never the
/// reason: it travels as the text `jsonb` prints, whatever it holds
/// (nesting deeper than 128 levels, `1e400`). Such a row will never decode,
/// so retrying it is pointless and it
/// must not hold up the rest of the batch, or its key: fail it with
/// `permanent => true` and [`Undeliverable::error`], and it lands in
/// `outbox.dead_letters` with reason `permanent` and a `last_error` that
/// starts with `undeliverable:`. Publishers never see such rows.
///
/// ```no_run
/// # async fn demo(client: tokio_postgres::Client) -> Result<(), outbox_client::Error> {
/// use outbox_client::Store;
/// use std::time::Duration;
/// let claim = Store.claim(&client, "my-relay", 100, Duration::from_secs(30), None).await?;
/// for u in &claim.undeliverable {
///     // e.g. "undeliverable: headers: a header value is not a string"
///     Store.fail(&client, u.id, u.lease_token, &u.error(), None, true).await?;
/// }
/// for m in &claim.messages {
///     // publish m.payload, then complete(&[m.id], m.lease_token) ...
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Claim {
    /// The rows that decoded, in id order: hand these to the publisher.
    pub messages: Vec<Message>,
    /// The rows that did not, in id order: dead-letter these.
    pub undeliverable: Vec<Undeliverable>,
}

impl Claim {
    /// Whether the claim found nothing at all.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.undeliverable.is_empty()
    }

    /// Rows claimed, decodable or not.
    pub fn len(&self) -> usize {
        self.messages.len() + self.undeliverable.len()
    }
}

/// A claimed row this client cannot turn into a [`Message`], with what it
/// needs to be dead-lettered: its id, the lease token that holds it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undeliverable {
    /// The outbox id.
    pub id: i64,
    /// The lease token of the claim that returned it.
    pub lease_token: LeaseToken,
    /// Its topic, when even that could not be read `None`.
    pub topic: Option<String>,
    /// Which column could not be decoded and why, e.g. `headers: a header
    /// value is not a string`. Never contains the value itself.
    pub reason: String,
}

impl Undeliverable {
    /// The text to pass to `outbox.fail` as `error`: `undeliverable: ` and
    /// the reason. It becomes the dead letter's `last_error`.
    pub fn error(&self) -> String {
        format!("undeliverable: {}", self.reason)
    }
}

/// What `outbox.fail()` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailOutcome {
    /// Scheduled for another attempt at this time.
    Retrying {
        /// When the next attempt becomes due.
        next_attempt_at: DateTime<Utc>,
    },
    /// Moved to the dead letters.
    Dead,
    /// The lease token no longer held the message; nothing changed.
    Stale,
}

/// One row of `outbox.stats()`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopicStats {
    /// The topic.
    pub topic: String,
    /// Due and not leased.
    pub ready: i64,
    /// Ready but behind an older message of the same key.
    pub blocked: i64,
    /// Waiting for deliver_at or a retry.
    pub scheduled: i64,
    /// Held by a relay.
    pub leased: i64,
    /// Dead letters.
    pub dead: i64,
    /// Age of the oldest ready message, in seconds (the relay's lag).
    pub oldest_ready_age_seconds: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule's cases live with the rule (outbox_rules); this checks the
    /// client applies it and says what the extension would.
    #[test]
    fn topic_uses_the_shared_rule() {
        assert!(Topic::new("orders.created").is_ok());
        match Topic::new("orders created") {
            Err(Error::InvalidInput { message, hint, .. }) => {
                assert_eq!(
                    message,
                    outbox_rules::topic("orders created").unwrap_err().reason
                );
                assert!(hint.is_some_and(|h| h.contains("orders.created")));
            }
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }
}
