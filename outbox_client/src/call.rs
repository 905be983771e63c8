//! One function per SQL call: its parameters, its statement, the decoding of
//! its answer. Generic over how the statement travels — as text, parsed on
//! every call ([`Store`](crate::Store), on any client or transaction), or
//! as a `Statement` prepared once on a connection (the relay's session,
//! one round trip per call instead of two) — so both paths run the same
//! code. The statements themselves are in [`crate::sql`].

use crate::types::{Claim, FailOutcome, LeaseToken, NewMessage, Topic, TopicStats};
use crate::Error;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, ToStatement};

/// PostgreSQL intervals travel as text: `"1500000 microseconds"`.
fn interval(d: Duration) -> String {
    format!("{} microseconds", d.as_micros())
}

/// The `integer` most batch calls answer with, as a count.
async fn count<S>(
    client: &impl GenericClient,
    statement: &S,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, Error>
where
    S: ?Sized + ToStatement + Sync + Send,
{
    let n: i32 = client.query_one(statement, params).await?.try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// `outbox.enqueue()` ([`crate::sql::ENQUEUE`]): the new message's id.
pub async fn enqueue<S>(
    client: &impl GenericClient,
    statement: &S,
    msg: &NewMessage,
) -> Result<i64, Error>
where
    S: ?Sized + ToStatement + Sync + Send,
{
    let headers = msg.headers_json();
    let params: [&(dyn ToSql + Sync); 6] = [
        &msg.topic.as_str(),
        &msg.payload,
        &msg.key,
        &headers,
        &msg.deliver_at,
        &msg.max_attempts,
    ];
    Ok(client.query_one(statement, &params).await?.try_get(0)?)
}

/// `outbox.enqueue_batch()` ([`crate::sql::ENQUEUE_BATCH`]): the new ids,
/// in order. Every message must be of `topic`: the SQL function takes one.
pub async fn enqueue_batch<S>(
    client: &impl GenericClient,
    statement: &S,
    topic: &Topic,
    messages: &[NewMessage],
    deliver_at: Option<DateTime<Utc>>,
    max_attempts: Option<i32>,
) -> Result<Vec<i64>, Error>
where
    S: ?Sized + ToStatement + Sync + Send,
{
    if let Some(other) = messages.iter().find(|m| &m.topic != topic) {
        return Err(Error::InvalidInput {
            message: format!(
                "enqueue_batch for topic {topic} got a message for {}",
                other.topic
            ),
            hint: Some("Call enqueue_batch once per topic.".into()),
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
    let params: [&(dyn ToSql + Sync); 6] = [
        &topic.as_str(),
        &payloads,
        &keys,
        &headers,
        &deliver_at,
        &max_attempts,
    ];
    Ok(client.query_one(statement, &params).await?.try_get(0)?)
}

/// `outbox.claim()` ([`crate::sql::CLAIM`]), each row decoded on its own:
/// one row that does not decode must not cost the others (see [`Claim`]).
pub async fn claim<S>(
    client: &impl GenericClient,
    statement: &S,
    owner: &str,
    batch_size: i32,
    lease: Duration,
    topics: Option<&[String]>,
) -> Result<Claim, Error>
where
    S: ?Sized + ToStatement + Sync + Send,
{
    let lease = interval(lease);
    let rows = client
        .query(statement, &[&owner, &batch_size, &lease, &topics])
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
pub async fn complete_batch<S>(
    client: &impl GenericClient,
    statement: &S,
    ids: &[i64],
    token: LeaseToken,
) -> Result<u64, Error>
where
    S: ?Sized + ToStatement + Sync + Send,
{
    count(client, statement, &[&ids, &token.0]).await
}

/// `outbox.release_batch()` ([`crate::sql::RELEASE_BATCH`]): how many went
/// back to ready.
pub async fn release_batch<S>(
    client: &impl GenericClient,
    statement: &S,
    ids: &[i64],
    token: LeaseToken,
) -> Result<u64, Error>
where
    S: ?Sized + ToStatement + Sync + Send,
{
    count(client, statement, &[&ids, &token.0]).await
}

/// `outbox.extend_batch()` ([`crate::sql::EXTEND_BATCH`]): how many the
/// token still holds, now for `lease` from now.
pub async fn extend_batch<S>(
    client: &impl GenericClient,
    statement: &S,
    ids: &[i64],
    token: LeaseToken,
    lease: Duration,
) -> Result<u64, Error>
where
    S: ?Sized + ToStatement + Sync + Send,
{
    count(client, statement, &[&ids, &token.0, &interval(lease)]).await
}

/// `outbox.fail()` ([`crate::sql::FAIL`]): what the database decided.
pub async fn fail<S>(
    client: &impl GenericClient,
    statement: &S,
    id: i64,
    token: LeaseToken,
    error: &str,
    retry_in: Option<Duration>,
    permanent: bool,
) -> Result<FailOutcome, Error>
where
    S: ?Sized + ToStatement + Sync + Send,
{
    let retry_in = retry_in.map(interval);
    let row = client
        .query_one(statement, &[&id, &token.0, &error, &retry_in, &permanent])
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
pub async fn stats<S>(client: &impl GenericClient, statement: &S) -> Result<Vec<TopicStats>, Error>
where
    S: ?Sized + ToStatement + Sync + Send,
{
    let rows = client.query(statement, &[]).await?;
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
pub async fn check_extension<S>(client: &impl GenericClient, statement: &S) -> Result<(), Error>
where
    S: ?Sized + ToStatement + Sync + Send,
{
    let present: bool = client.query_one(statement, &[]).await?.try_get(0)?;
    if present {
        Ok(())
    } else {
        Err(Error::ExtensionMissing)
    }
}
