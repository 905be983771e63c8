//! [`Session`]: a connection to PostgreSQL with the relay's statements
//! prepared on it, and the one place a worker or the metrics poller
//! (re)connects. A caller asks for the live connection with how long it may
//! wait ([`Patience`]), runs its calls, and reports a transient error with
//! [`Session::lost`]; the next [`Session::connected`] reconnects with
//! capped, jittered backoff.

use super::connect;
use super::RelayConfig;
use outbox_client::call::Statement;
use outbox_client::sql::Sql;
use outbox_client::{call, Claim, Error, FailOutcome, LeaseToken, TopicStats};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

/// How long [`Session::connected`] may keep reconnecting.
#[derive(Clone, Copy)]
pub(crate) enum Patience<'a> {
    /// Until the connection is back or this token is cancelled: claiming,
    /// which must stop when shutdown begins.
    UntilShutdown(&'a CancellationToken),
    /// Until this instant, whatever shutdown says: settling a batch goes on
    /// through the soft shutdown phase, but is pointless once its lease ran
    /// out.
    Until(Instant),
}

/// The statements, prepared once per connection so each call sends only
/// Bind/Execute. Only valid on the connection that prepared them, which is
/// why they live together. Not made behind a pooler
/// ([`RelayConfig::pooler`]): there the next transaction may run on
/// another server connection, where they do not exist.
struct Prepared {
    claim: tokio_postgres::Statement,
    complete_batch: tokio_postgres::Statement,
    release_batch: tokio_postgres::Statement,
    extend_batch: tokio_postgres::Statement,
    fail: tokio_postgres::Statement,
    stats: tokio_postgres::Statement,
}

/// A live connection and its prepared statements. Methods are named as the
/// SQL functions they call and run `outbox_client::call`, the code `Store`
/// runs too.
pub(crate) struct Conn {
    client: Client,
    /// `None` behind a pooler: then every call is sent unnamed, with types.
    prepared: Option<Prepared>,
    cfg: Arc<RelayConfig>,
    /// The statements of the relay's outbox (RelayConfig::outbox).
    statements: &'static outbox_client::Statements,
}

impl Conn {
    async fn open(cfg: &Arc<RelayConfig>) -> Result<Conn, Error> {
        let client = connect::connect_once(cfg).await?;
        let prepared = if cfg.pooler {
            None
        } else {
            Some(Conn::prepare(&client, cfg.statements()?).await?)
        };
        Ok(Conn {
            client,
            prepared,
            cfg: cfg.clone(),
            statements: cfg.statements()?,
        })
    }

    async fn prepare(client: &Client, s: &outbox_client::Statements) -> Result<Prepared, Error> {
        let (claim, complete_batch, release_batch, extend_batch, fail, stats) = tokio::try_join!(
            client.prepare_typed(s.claim.text, s.claim.params),
            client.prepare_typed(s.complete_batch.text, s.complete_batch.params),
            client.prepare_typed(s.release_batch.text, s.release_batch.params),
            client.prepare_typed(s.extend_batch.text, s.extend_batch.params),
            client.prepare_typed(s.fail.text, s.fail.params),
            client.prepare_typed(s.stats.text, s.stats.params),
        )?;
        Ok(Prepared {
            claim,
            complete_batch,
            release_batch,
            extend_batch,
            fail,
            stats,
        })
    }

    /// `sql` as this connection sends it: prepared, or unnamed behind a
    /// pooler.
    fn statement(
        &self,
        sql: &'static Sql,
        prepared: fn(&Prepared) -> &tokio_postgres::Statement,
    ) -> Statement<'_> {
        match &self.prepared {
            Some(p) => Statement::Prepared(prepared(p)),
            None => Statement::Typed(sql),
        }
    }

    /// The connection itself, for what is not an outbox call (the
    /// pipelined BEGIN/COMMIT of a batch).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `outbox.claim()` with the relay's owner, batch size, lease and topics.
    pub async fn claim(&self) -> Result<Claim, Error> {
        let cfg = &self.cfg;
        let topics = cfg.topics.as_deref();
        let statement = self.statement(self.statements.claim, |p| &p.claim);
        call::claim(
            &self.client,
            statement,
            &cfg.owner,
            cfg.batch_size,
            cfg.lease,
            topics,
        )
        .await
    }

    /// `outbox.complete_batch()`: how many of `ids` the token still held.
    pub async fn complete_batch(&self, ids: &[i64], token: LeaseToken) -> Result<u64, Error> {
        let statement = self.statement(self.statements.complete_batch, |p| &p.complete_batch);
        call::complete_batch(&self.client, statement, ids, token).await
    }

    /// `outbox.release_batch()`: how many went back unspent.
    pub async fn release_batch(&self, ids: &[i64], token: LeaseToken) -> Result<u64, Error> {
        let statement = self.statement(self.statements.release_batch, |p| &p.release_batch);
        call::release_batch(&self.client, statement, ids, token).await
    }

    /// `outbox.extend_batch()` by the relay's lease: how many are still held.
    pub async fn extend_batch(&self, ids: &[i64], token: LeaseToken) -> Result<u64, Error> {
        let statement = self.statement(self.statements.extend_batch, |p| &p.extend_batch);
        call::extend_batch(&self.client, statement, ids, token, self.cfg.lease).await
    }

    /// `outbox.fail()`.
    pub async fn fail(
        &self,
        id: i64,
        token: LeaseToken,
        error: &str,
        retry_in: Option<Duration>,
        permanent: bool,
    ) -> Result<FailOutcome, Error> {
        let statement = self.statement(self.statements.fail, |p| &p.fail);
        call::fail(
            &self.client,
            statement,
            id,
            token,
            error,
            retry_in,
            permanent,
        )
        .await
    }

    /// `outbox.stats()`.
    pub async fn stats(&self) -> Result<Vec<TopicStats>, Error> {
        call::stats(
            &self.client,
            self.statement(self.statements.stats, |p| &p.stats),
        )
        .await
    }
}

/// A connection that comes back: see the module docs.
pub(crate) struct Session {
    cfg: Arc<RelayConfig>,
    conn: Option<Conn>,
    /// What the session is for, in its log lines.
    role: &'static str,
}

impl Session {
    /// Not connected yet: the first [`Session::connected`] connects.
    pub fn new(cfg: Arc<RelayConfig>, role: &'static str) -> Session {
        Session {
            cfg,
            conn: None,
            role,
        }
    }

    /// The connection if it is open, without connecting.
    pub fn open(&self) -> Option<&Conn> {
        self.conn.as_ref().filter(|c| !c.client.is_closed())
    }

    /// The live connection, reconnecting (with backoff) while `patience`
    /// lasts; `None` once it ran out. An error only for what reconnecting
    /// cannot fix (a missing extension, a refused password).
    pub async fn connected(&mut self, patience: Patience<'_>) -> Result<Option<&Conn>, Error> {
        if self.open().is_none() {
            if self.conn.take().is_some() {
                tracing::warn!(
                    role = self.role,
                    "connection to PostgreSQL lost; reconnecting"
                );
            }
            let cfg = &self.cfg;
            let connecting = |token| {
                connect::with_backoff(self.role, cfg.reconnect_max, token, || Conn::open(cfg))
            };
            self.conn = match patience {
                Patience::UntilShutdown(shutdown) => connecting(shutdown).await?,
                Patience::Until(deadline) => {
                    let never = CancellationToken::new();
                    let left = deadline.saturating_duration_since(Instant::now());
                    let attempt = connecting(&never);
                    match tokio::time::timeout(left.max(Duration::from_millis(1)), attempt).await {
                        Ok(conn) => conn?,
                        Err(_) => None,
                    }
                }
            };
        }
        Ok(self.open())
    }

    /// A call failed with a transient error: drop the connection, so the
    /// next [`Session::connected`] opens a new one.
    pub fn lost(&mut self, what: &str, error: &Error) {
        tracing::warn!(role = self.role, error = %error, "{what} failed; reconnecting");
        self.conn = None;
    }
}
