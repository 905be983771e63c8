//! [`Store`]: the SQL API, one method per function, on any
//! [`GenericClient`] — a `Client` or the caller's own `Transaction`, so an
//! enqueue commits or rolls back with the caller's business rows.

use crate::sql;
use crate::types::{Claim, FailOutcome, LeaseToken, NewMessage, Topic, TopicStats};
use crate::Error;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, Row, Statement};

/// The outbox's SQL API for Rust.
///
/// ```no_run
/// # async fn demo(mut client: tokio_postgres::Client) -> Result<(), outbox_client::Error> {
/// use outbox_client::{NewMessage, Store, Topic};
/// let tx = client.transaction().await?;
/// tx.execute("UPDATE orders SET status = 'paid' WHERE id = 42", &[]).await?;
/// let msg = NewMessage::new(Topic::new("orders.paid")?, &serde_json::json!({"id": 42}))?.with_key("order-42");
/// Store::default().enqueue(&tx, &msg).await?;
/// tx.commit().await?; // the event exists if and only if the payment does
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Store;

/// Postgres intervals travel as text: `"1500 milliseconds"`.
fn interval(d: Duration) -> String {
    format!("{} microseconds", d.as_micros())
}

/// A statement as text (parsed on every call) or prepared on this connection.
#[derive(Clone, Copy)]
enum Q<'a> {
    Text(&'static str),
    Prepared(&'a Statement),
}

impl Q<'_> {
    async fn query(
        self,
        client: &impl GenericClient,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        Ok(match self {
            Q::Text(sql) => client.query(sql, params).await?,
            Q::Prepared(statement) => client.query(statement, params).await?,
        })
    }

    async fn one(
        self,
        client: &impl GenericClient,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error> {
        Ok(match self {
            Q::Text(sql) => client.query_one(sql, params).await?,
            Q::Prepared(statement) => client.query_one(statement, params).await?,
        })
    }

    async fn count(
        self,
        client: &impl GenericClient,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error> {
        let n: i32 = self.one(client, params).await?.try_get(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

async fn claim(
    q: Q<'_>,
    client: &impl GenericClient,
    owner: &str,
    batch_size: i32,
    lease: Duration,
    topics: Option<&[String]>,
) -> Result<Claim, Error> {
    let lease = interval(lease);
    let rows = q
        .query(client, &[&owner, &batch_size, &lease, &topics])
        .await?;
    // Row by row: one row that does not decode must not cost the others.
    let mut claim = Claim::default();
    for row in &rows {
        match crate::claimed::decode(row)? {
            Ok(message) => claim.messages.push(message),
            Err(undeliverable) => claim.undeliverable.push(undeliverable),
        }
    }
    Ok(claim)
}

async fn fail(
    q: Q<'_>,
    client: &impl GenericClient,
    id: i64,
    token: LeaseToken,
    error: &str,
    retry_in: Option<Duration>,
    permanent: bool,
) -> Result<FailOutcome, Error> {
    let retry_in = retry_in.map(interval);
    let row = q
        .one(client, &[&id, &token.0, &error, &retry_in, &permanent])
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

/// The relay's statements, prepared once on one connection so each call is
/// a single round trip (Bind/Execute) instead of Parse + Bind/Execute.
/// Only valid with the client that prepared them.
pub(crate) struct Prepared {
    claim: Statement,
    complete: Statement,
    release: Statement,
    extend: Statement,
    fail: Statement,
}

impl Prepared {
    pub(crate) async fn new(client: &Client) -> Result<Prepared, Error> {
        let (claim, complete, release, extend, fail) = tokio::try_join!(
            client.prepare(sql::CLAIM),
            client.prepare(sql::COMPLETE_BATCH),
            client.prepare(sql::RELEASE_BATCH),
            client.prepare(sql::EXTEND_BATCH),
            client.prepare(sql::FAIL),
        )?;
        Ok(Prepared {
            claim,
            complete,
            release,
            extend,
            fail,
        })
    }

    pub(crate) async fn claim(
        &self,
        client: &Client,
        owner: &str,
        batch_size: i32,
        lease: Duration,
        topics: Option<&[String]>,
    ) -> Result<Claim, Error> {
        claim(
            Q::Prepared(&self.claim),
            client,
            owner,
            batch_size,
            lease,
            topics,
        )
        .await
    }

    pub(crate) async fn complete(
        &self,
        client: &Client,
        ids: &[i64],
        token: LeaseToken,
    ) -> Result<u64, Error> {
        Q::Prepared(&self.complete)
            .count(client, &[&ids, &token.0])
            .await
    }

    pub(crate) async fn release(
        &self,
        client: &Client,
        ids: &[i64],
        token: LeaseToken,
    ) -> Result<u64, Error> {
        Q::Prepared(&self.release)
            .count(client, &[&ids, &token.0])
            .await
    }

    pub(crate) async fn extend(
        &self,
        client: &Client,
        ids: &[i64],
        token: LeaseToken,
        lease: Duration,
    ) -> Result<u64, Error> {
        Q::Prepared(&self.extend)
            .count(client, &[&ids, &token.0, &interval(lease)])
            .await
    }

    pub(crate) async fn fail(
        &self,
        client: &Client,
        id: i64,
        token: LeaseToken,
        error: &str,
        retry_in: Option<Duration>,
        permanent: bool,
    ) -> Result<FailOutcome, Error> {
        fail(
            Q::Prepared(&self.fail),
            client,
            id,
            token,
            error,
            retry_in,
            permanent,
        )
        .await
    }
}

impl Store {
    /// `outbox.enqueue()`: add one message in the client's transaction.
    pub async fn enqueue(
        &self,
        client: &impl GenericClient,
        msg: &NewMessage,
    ) -> Result<i64, Error> {
        let headers = msg.headers_json();
        let row = client
            .query_one(
                sql::ENQUEUE,
                &[
                    &msg.topic.as_str(),
                    &msg.payload,
                    &msg.key,
                    &headers,
                    &msg.deliver_at,
                    &msg.max_attempts,
                ],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    /// `outbox.enqueue_batch()`: many messages of one topic in one statement.
    /// `deliver_at` and `max_attempts` apply to the whole batch.
    pub async fn enqueue_batch(
        &self,
        client: &impl GenericClient,
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
            });
        }
        let payloads: Vec<&Value> = messages.iter().map(|m| &m.payload).collect();
        let keys: Option<Vec<Option<&str>>> = messages
            .iter()
            .any(|m| m.key.is_some())
            .then(|| messages.iter().map(|m| m.key.as_deref()).collect());
        let headers: Option<Vec<Option<Value>>> = messages
            .iter()
            .any(|m| !m.headers.is_empty())
            .then(|| messages.iter().map(NewMessage::headers_json).collect());
        let row = client
            .query_one(
                sql::ENQUEUE_BATCH,
                &[
                    &topic.as_str(),
                    &payloads,
                    &keys,
                    &headers,
                    &deliver_at,
                    &max_attempts,
                ],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    /// `outbox.claim()`: lease up to `batch_size` ready messages.
    ///
    /// Each row is decoded on its own: the ones this client cannot decode
    /// (JSON that `jsonb` accepts but `serde_json` refuses) come back in
    /// [`Claim::undeliverable`] instead of failing the call, and must be
    /// dead-lettered with `fail(.., &u.error(), None, true)` — see [`Claim`].
    /// An error means nothing usable came back (the rows claimed, if any,
    /// are redelivered when their lease expires).
    pub async fn claim(
        &self,
        client: &impl GenericClient,
        owner: &str,
        batch_size: i32,
        lease: Duration,
        topics: Option<&[String]>,
    ) -> Result<Claim, Error> {
        claim(
            Q::Text(sql::CLAIM),
            client,
            owner,
            batch_size,
            lease,
            topics,
        )
        .await
    }

    /// `outbox.complete_batch()`: returns how many the token still held.
    pub async fn complete(
        &self,
        client: &impl GenericClient,
        ids: &[i64],
        token: LeaseToken,
    ) -> Result<u64, Error> {
        Q::Text(sql::COMPLETE_BATCH)
            .count(client, &[&ids, &token.0])
            .await
    }

    /// `outbox.release_batch()`: back to ready without spending an attempt.
    pub async fn release(
        &self,
        client: &impl GenericClient,
        ids: &[i64],
        token: LeaseToken,
    ) -> Result<u64, Error> {
        Q::Text(sql::RELEASE_BATCH)
            .count(client, &[&ids, &token.0])
            .await
    }

    /// `outbox.extend_batch()`: hold the messages for `lease` from now.
    pub async fn extend(
        &self,
        client: &impl GenericClient,
        ids: &[i64],
        token: LeaseToken,
        lease: Duration,
    ) -> Result<u64, Error> {
        Q::Text(sql::EXTEND_BATCH)
            .count(client, &[&ids, &token.0, &interval(lease)])
            .await
    }

    /// `outbox.fail()`: the database schedules the retry or dead-letters it.
    pub async fn fail(
        &self,
        client: &impl GenericClient,
        id: i64,
        token: LeaseToken,
        error: &str,
        retry_in: Option<Duration>,
        permanent: bool,
    ) -> Result<FailOutcome, Error> {
        fail(
            Q::Text(sql::FAIL),
            client,
            id,
            token,
            error,
            retry_in,
            permanent,
        )
        .await
    }

    /// `outbox.stats()`.
    pub async fn stats(&self, client: &impl GenericClient) -> Result<Vec<TopicStats>, Error> {
        let rows = client.query(sql::STATS, &[]).await?;
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

    /// Fails with [`Error::ExtensionMissing`] unless `CREATE EXTENSION outbox` ran.
    pub async fn check_extension(&self, client: &impl GenericClient) -> Result<(), Error> {
        let present: bool = client
            .query_one(sql::EXTENSION_PRESENT, &[])
            .await?
            .try_get(0)?;
        if present {
            Ok(())
        } else {
            Err(Error::ExtensionMissing)
        }
    }
}
