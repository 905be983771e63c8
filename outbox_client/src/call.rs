//! One function per SQL call: its parameters, its statement, the decoding of
//! its answer, whichever way the statement travels ([`Statement`]): so
//! [`Store`](crate::Store) and the relay run the same code. The statements
//! themselves are in [`crate::sql`].

use crate::sql::Sql;
use crate::types::{Claim, FailOutcome, LeaseToken, NewMessage, Topic, TopicStats};
use crate::Error;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

/// How a statement travels to the server.
#[derive(Debug, Clone, Copy)]
pub enum Statement<'a> {
    /// Unnamed, with its parameter types given: one round trip (Parse, Bind,
    /// Execute), and nothing left behind on the server connection, so it
    /// works through a transaction-mode pooler, which hands each
    /// transaction a different one. What [`Store`](crate::Store) sends.
    Typed(&'static Sql),
    /// Prepared once on this connection (`Client::prepare` of the same
    /// [`Sql`]): Bind and Execute only, the relay's way on a direct
    /// connection.
    Prepared(&'a tokio_postgres::Statement),
}

impl Statement<'_> {
    /// Run it; every row of the answer.
    pub async fn query(
        self,
        client: &impl GenericClient,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        Ok(match self {
            Statement::Typed(sql) => {
                let typed: Vec<(&(dyn ToSql + Sync), tokio_postgres::types::Type)> = params
                    .iter()
                    .zip(sql.params)
                    .map(|(value, ty)| (*value, ty.clone()))
                    .collect();
                client.query_typed(sql.text, &typed).await?
            }
            Statement::Prepared(statement) => client.query(statement, params).await?,
        })
    }

    /// Run it; the one row it answers with.
    pub async fn query_one(
        self,
        client: &impl GenericClient,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error> {
        let rows = self.query(client, params).await?;
        let n = rows.len();
        rows.into_iter()
            .next()
            .filter(|_| n == 1)
            .ok_or_else(|| Error::Config {
                field: "db",
                reason: format!(
                    "a call that answers with one row answered with {n}; is the installed outbox \
                 extension a version this client supports?"
                ),
            })
    }
}

/// PostgreSQL intervals travel as text: `"1500000 microseconds"`.
fn interval(d: Duration) -> String {
    format!("{} microseconds", d.as_micros())
}

/// The `integer` most batch calls answer with, as a count.
async fn count(
    client: &impl GenericClient,
    statement: Statement<'_>,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, Error> {
    let n: i32 = statement.query_one(client, params).await?.try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// `outbox.enqueue()` ([`crate::sql::ENQUEUE`]): the new message's id. A
/// message with a dedup key goes as `dedup` ([`crate::sql::ENQUEUE_DEDUP`] or a named outbox's) instead
/// (unnamed, whatever `statement` is), and the answer is the holder's id
/// when its key is held.
pub async fn enqueue(
    client: &impl GenericClient,
    statement: Statement<'_>,
    dedup: &'static Sql,
    msg: &NewMessage,
) -> Result<i64, Error> {
    let headers = msg.headers_json();
    if msg.dedup_key.is_some() {
        let window = msg.dedup_window.map(interval);
        let params: [&(dyn ToSql + Sync); 8] = [
            &msg.topic.as_str(),
            &msg.payload,
            &msg.key,
            &headers,
            &msg.deliver_at,
            &msg.max_attempts,
            &msg.dedup_key,
            &window,
        ];
        let dedup = Statement::Typed(dedup);
        return Ok(dedup.query_one(client, &params).await?.try_get(0)?);
    }
    let params: [&(dyn ToSql + Sync); 6] = [
        &msg.topic.as_str(),
        &msg.payload,
        &msg.key,
        &headers,
        &msg.deliver_at,
        &msg.max_attempts,
    ];
    Ok(statement.query_one(client, &params).await?.try_get(0)?)
}

/// `outbox.enqueue_batch()` ([`crate::sql::ENQUEUE_BATCH`]): the new ids,
/// in order. Every message must be of `topic`: the SQL function takes one.
/// When a message has a dedup key the batch goes as
/// [`crate::sql::ENQUEUE_BATCH_DEDUP`] (unnamed), and a message whose key
/// is held answers with the holder's id; the dedup window is the batch's,
/// so messages with dedup keys must agree on it.
pub async fn enqueue_batch(
    client: &impl GenericClient,
    statement: Statement<'_>,
    dedup: &'static Sql,
    topic: &Topic,
    messages: &[NewMessage],
    deliver_at: Option<DateTime<Utc>>,
    max_attempts: Option<i32>,
) -> Result<Vec<i64>, Error> {
    if let Some(other) = messages.iter().find(|m| &m.topic != topic) {
        return Err(Error::InvalidInput {
            message: format!(
                "enqueue_batch for topic {topic} got a message for {}",
                other.topic
            ),
            hint: Some("Call enqueue_batch once per topic.".into()),
            sqlstate: "22023",
        });
    }
    let payloads: Vec<&Value> = messages.iter().map(|m| &m.payload).collect();
    // NULL rather than an array of NULLs when no message has one: the SQL
    // function's fast path.
    let keys: Option<Vec<Option<&str>>> = messages
        .iter()
        .any(|m| m.key.is_some())
        .then(|| messages.iter().map(|m| m.key.as_deref()).collect());
    let headers: Option<Vec<Option<Value>>> = messages
        .iter()
        .any(|m| !m.headers.is_empty())
        .then(|| messages.iter().map(NewMessage::headers_json).collect());
    if messages.iter().any(|m| m.dedup_key.is_some()) {
        let mut windows = messages
            .iter()
            .filter(|m| m.dedup_key.is_some())
            .map(|m| m.dedup_window);
        let window = windows.next().flatten();
        if windows.any(|w| w != window) {
            return Err(Error::InvalidInput {
                message: "enqueue_batch got messages with different dedup windows".into(),
                hint: Some(
                    "One batch has one dedup window: give its messages the same one, or enqueue \
                     them in separate calls."
                        .into(),
                ),
                sqlstate: "22023",
            });
        }
        let dedup_keys: Vec<Option<&str>> =
            messages.iter().map(|m| m.dedup_key.as_deref()).collect();
        let window = window.map(interval);
        let params: [&(dyn ToSql + Sync); 8] = [
            &topic.as_str(),
            &payloads,
            &keys,
            &headers,
            &deliver_at,
            &max_attempts,
            &dedup_keys,
            &window,
        ];
        let dedup = Statement::Typed(dedup);
        return Ok(dedup.query_one(client, &params).await?.try_get(0)?);
    }
    let params: [&(dyn ToSql + Sync); 6] = [
        &topic.as_str(),
        &payloads,
        &keys,
        &headers,
        &deliver_at,
        &max_attempts,
    ];
    Ok(statement.query_one(client, &params).await?.try_get(0)?)
}

/// `outbox.claim()` ([`crate::sql::CLAIM`]), each row decoded on its own:
/// one row that does not decode must not cost the others (see [`Claim`]).
pub async fn claim(
    client: &impl GenericClient,
    statement: Statement<'_>,
    owner: &str,
    batch_size: i32,
    lease: Duration,
    topics: Option<&[String]>,
) -> Result<Claim, Error> {
    let lease = interval(lease);
    let rows = statement
        .query(client, &[&owner, &batch_size, &lease, &topics])
        .await?;
    let mut claim = Claim::default();
    for row in &rows {
        match crate::claimed::decode(row)? {
            Ok(message) => claim.messages.push(message),
            Err(undeliverable) => claim.undeliverable.push(undeliverable),
        }
    }
    Ok(claim)
}

/// `outbox.complete_batch()` ([`crate::sql::COMPLETE_BATCH`]): how many of
/// `ids` the token still held.
pub async fn complete_batch(
    client: &impl GenericClient,
    statement: Statement<'_>,
    ids: &[i64],
    token: LeaseToken,
) -> Result<u64, Error> {
    count(client, statement, &[&ids, &token.0]).await
}

/// `outbox.release_batch()` ([`crate::sql::RELEASE_BATCH`]): how many went
/// back to ready.
pub async fn release_batch(
    client: &impl GenericClient,
    statement: Statement<'_>,
    ids: &[i64],
    token: LeaseToken,
) -> Result<u64, Error> {
    count(client, statement, &[&ids, &token.0]).await
}

/// `outbox.extend_batch()` ([`crate::sql::EXTEND_BATCH`]): how many the
/// token still holds, now for `lease` from now.
pub async fn extend_batch(
    client: &impl GenericClient,
    statement: Statement<'_>,
    ids: &[i64],
    token: LeaseToken,
    lease: Duration,
) -> Result<u64, Error> {
    count(client, statement, &[&ids, &token.0, &interval(lease)]).await
}

/// `outbox.fail()` ([`crate::sql::FAIL`]): what the database decided.
pub async fn fail(
    client: &impl GenericClient,
    statement: Statement<'_>,
    id: i64,
    token: LeaseToken,
    error: &str,
    retry_in: Option<Duration>,
    permanent: bool,
) -> Result<FailOutcome, Error> {
    let retry_in = retry_in.map(interval);
    let row = statement
        .query_one(client, &[&id, &token.0, &error, &retry_in, &permanent])
        .await?;
    let state: String = row.try_get(0)?;
    Ok(match state.as_str() {
        "retrying" => FailOutcome::Retrying {
            next_attempt_at: row.try_get(1)?,
        },
        "dead" => FailOutcome::Dead,
        // "stale", and any state a newer extension may add: the token did
        // not settle the message as this client knows settling.
        _ => FailOutcome::Stale,
    })
}

/// `outbox.stats()` ([`crate::sql::STATS`]).
pub async fn stats(
    client: &impl GenericClient,
    statement: Statement<'_>,
) -> Result<Vec<TopicStats>, Error> {
    let rows = statement.query(client, &[]).await?;
    rows.iter()
        .map(|r| {
            Ok(TopicStats {
                topic: r.try_get(0)?,
                ready: r.try_get(1)?,
                blocked: r.try_get(2)?,
                scheduled: r.try_get(3)?,
                leased: r.try_get(4)?,
                dead: r.try_get(5)?,
                oldest_ready_age_seconds: r.try_get(6)?,
            })
        })
        .collect()
}

/// [`Error::ExtensionMissing`] unless `CREATE EXTENSION outbox` ran
/// ([`crate::sql::EXTENSION_PRESENT`]).
pub async fn check_extension(
    client: &impl GenericClient,
    statement: Statement<'_>,
) -> Result<(), Error> {
    let present: bool = statement.query_one(client, &[]).await?.try_get(0)?;
    if present {
        Ok(())
    } else {
        Err(Error::ExtensionMissing)
    }
}
