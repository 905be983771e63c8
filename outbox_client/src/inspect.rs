//! Looking at messages one by one, for operators (the extension's
//! `list_messages`, `get_message` and `cleanup`; `grant_admin` gives them,
//! and `cleanup` also `grant_relay`). The statements are in [`crate::sql`].

use crate::call::Statement;
use crate::Error;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::fmt;
use std::str::FromStr;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

/// Where a message is in its life (docs/state-machine.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageState {
    /// Due, not leased: the next claims may hand it out.
    Ready,
    /// Not due yet, never attempted (`deliver_at` ahead).
    Scheduled,
    /// Not due yet after a failed attempt.
    Retrying,
    /// Held by a relay whose lease has not expired.
    Leased,
    /// A dead letter.
    Dead,
    /// Published, and kept by `outbox.retention`.
    Published,
}

impl MessageState {
    /// The name the SQL API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Ready => "ready",
            MessageState::Scheduled => "scheduled",
            MessageState::Retrying => "retrying",
            MessageState::Leased => "leased",
            MessageState::Dead => "dead",
            MessageState::Published => "published",
        }
    }
}

impl fmt::Display for MessageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MessageState {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "ready" => MessageState::Ready,
            "scheduled" => MessageState::Scheduled,
            "retrying" => MessageState::Retrying,
            "leased" => MessageState::Leased,
            "dead" => MessageState::Dead,
            "published" => MessageState::Published,
            other => {
                return Err(Error::InvalidInput {
                    message: format!("state is {other:?}, which is not a message state"),
                    hint: Some(
                        "One of ready, scheduled, retrying, leased, dead, published.".into(),
                    ),
                    sqlstate: "22023",
                })
            }
        })
    }
}

/// One row of `outbox.list_messages()` / `outbox.get_message()`.
#[derive(Debug, Clone, Serialize)]
pub struct MessageInfo {
    pub id: i64,
    pub topic: String,
    pub key: Option<String>,
    pub state: MessageState,
    /// Attempts made so far (for a published one: the one that worked).
    pub attempt: i32,
    /// `None` for a published message (not kept in the history).
    pub max_attempts: Option<i32>,
    pub created_at: DateTime<Utc>,
    /// When it is (or was) due; `None` for dead and published messages.
    pub deliver_at: Option<DateTime<Utc>>,
    /// The relay holding it (leased), or the one that published it.
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// When it died or was published.
    pub finished_at: Option<DateTime<Utc>>,
    /// `permanent`, `max_attempts` or `lease_expired`, for a dead letter.
    pub dead_reason: Option<String>,
    /// The headers as stored (a JSON object of strings), as text.
    pub headers: Option<String>,
    /// The payload as PostgreSQL prints it: text, so that a payload
    /// `serde_json` cannot hold (`1e400`) does not fail the listing.
    pub payload: String,
}

impl MessageInfo {
    /// The value of header `name`, if the headers parse and have it.
    pub fn header(&self, name: &str) -> Option<String> {
        let headers: Value = serde_json::from_str(self.headers.as_deref()?).ok()?;
        headers.get(name)?.as_str().map(str::to_owned)
    }

    fn from_row(r: &Row) -> Result<MessageInfo, Error> {
        let state: String = r.try_get(3)?;
        Ok(MessageInfo {
            id: r.try_get(0)?,
            topic: r.try_get(1)?,
            key: r.try_get(2)?,
            state: state.parse()?,
            attempt: r.try_get(4)?,
            max_attempts: r.try_get(5)?,
            created_at: r.try_get(6)?,
            deliver_at: r.try_get(7)?,
            lease_owner: r.try_get(8)?,
            lease_expires_at: r.try_get(9)?,
            last_error: r.try_get(10)?,
            finished_at: r.try_get(11)?,
            dead_reason: r.try_get(12)?,
            headers: r.try_get(13)?,
            payload: r.try_get(14)?,
        })
    }
}

/// Which messages `list_messages` returns: every filter is optional; pages
/// go on with [`MessageFilter::after`] the last id returned.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub topic: Option<String>,
    pub state: Option<MessageState>,
    pub key: Option<String>,
    pub after_id: Option<i64>,
    /// `None`: 100, the SQL default.
    pub max_rows: Option<i32>,
    pub tenant_id: Option<String>,
    pub correlation_id: Option<String>,
}

impl MessageFilter {
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }
    pub fn state(mut self, state: MessageState) -> Self {
        self.state = Some(state);
        self
    }
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
    /// The next page: messages with ids above `id`.
    pub fn after(mut self, id: i64) -> Self {
        self.after_id = Some(id);
        self
    }
    pub fn max_rows(mut self, n: i32) -> Self {
        self.max_rows = Some(n);
        self
    }
    pub fn tenant_id(mut self, id: impl Into<String>) -> Self {
        self.tenant_id = Some(id.into());
        self
    }
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }
}

/// `outbox.list_messages()` ([`crate::sql::LIST_MESSAGES`]).
pub async fn list_messages(
    client: &impl GenericClient,
    statement: Statement<'_>,
    filter: &MessageFilter,
) -> Result<Vec<MessageInfo>, Error> {
    let state = filter.state.map(MessageState::as_str);
    let max_rows = filter.max_rows.unwrap_or(100);
    let params: [&(dyn ToSql + Sync); 7] = [
        &filter.topic,
        &state,
        &filter.key,
        &filter.after_id,
        &max_rows,
        &filter.tenant_id,
        &filter.correlation_id,
    ];
    let rows = statement.query(client, &params).await?;
    rows.iter().map(MessageInfo::from_row).collect()
}

/// `outbox.get_message()` ([`crate::sql::GET_MESSAGE`]): `None` when the
/// id was issued but the message is nowhere any more.
pub async fn get_message(
    client: &impl GenericClient,
    statement: Statement<'_>,
    id: i64,
) -> Result<Option<MessageInfo>, Error> {
    let rows = statement.query(client, &[&id]).await?;
    rows.first().map(MessageInfo::from_row).transpose()
}

/// `outbox.cleanup()` ([`crate::sql::CLEANUP`]): how many rows it removed.
pub async fn cleanup(
    client: &impl GenericClient,
    statement: Statement<'_>,
    max_rows: i32,
) -> Result<u64, Error> {
    let n: i64 = statement
        .query_one(client, &[&max_rows])
        .await?
        .try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}
