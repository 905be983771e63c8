//! The relay: claim → publish → complete, in several workers, woken by the
//! doorbell, reconnecting when PostgreSQL goes away, and shutting down in
//! two phases.
//!
//! # Shutdown
//!
//! When the [`CancellationToken`] passed to [`Relay::run`] is cancelled (or
//! a worker stops on an error a reconnect cannot fix):
//!
//! 1. **Soft phase**, at most [`RelayConfig::shutdown_grace`]: workers stop
//!    claiming. A batch claimed but not yet handed to the publisher is
//!    released (no attempt spent). A batch being published is finished and
//!    settled: acknowledged messages are completed, the rest failed (or
//!    dead-lettered), reconnecting if need be. The doorbell is disarmed and
//!    the metrics server stops. If everything ends within the grace,
//!    `run` returns then.
//! 2. **Hard phase**, at the end of the grace: every task still running — a
//!    publish that does not return, a settle waiting for PostgreSQL — is
//!    aborted, and `run` returns once all of them are gone: their futures
//!    dropped, their connections closed. Nothing of the relay keeps running
//!    after `run` returns. The messages they held stay leased until their
//!    lease expires; then any relay claims and delivers them again (at least
//!    once: one that the broker took just before the abort is delivered
//!    twice, with the same outbox id to deduplicate on).
//!
//! So `run` returns at most `shutdown_grace` (plus the moment aborting
//! takes) after the token is cancelled.
//!
//! # Poison messages
//!
//! A claimed row the client cannot decode (see [`Claim`](crate::Claim)) is
//! dead-lettered with reason `permanent` and a `last_error` starting with
//! `undeliverable:`; the publisher never sees it and the rest of its batch
//! is delivered as usual. A publisher that panics costs the message that set
//! it off an attempt (retried, dead-lettered after `max_attempts`), never the
//! worker or the batch.

mod cleaner;
mod connect;
mod doorbell;
mod ending;
mod guard;
mod health;
mod leases;
mod metrics;
mod outcome;
mod session;
mod sql;
mod worker;

use crate::publish::Publisher;
use crate::Error;
use ending::Ending;
use metrics::{Counters, Metrics};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How a relay runs. Each field's doc ends with its default.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Where the outbox lives. Default: none, required.
    pub db: tokio_postgres::Config,
    /// How every connection to `db` is secured: `sslmode`, the CAs to
    /// trust, a client certificate ([`ConnInfo`](crate::ConnInfo) parses
    /// them from a connection string; `db`'s own `ssl_mode` is ignored).
    /// Default: [`TlsConfig::from_config`](crate::TlsConfig::from_config) of
    /// `db`: `prefer` (TLS when offered, unverified) unless `db` says
    /// `disable` or `require`.
    pub tls: crate::TlsConfig,
    /// The name on this relay's leases, unique per process. Default:
    /// `<hostname>:<pid>:<random>`.
    pub owner: String,
    /// Messages per claim. Default: 100.
    pub batch_size: i32,
    /// Workers, each with its own connection and a batch in flight.
    /// Default: 2.
    pub concurrency: usize,
    /// Lease per claim; extended while a slow publish runs. Default: 30 s.
    pub lease: Duration,
    /// Topics to relay; `None` = all. Default: `None`.
    pub topics: Option<Vec<String>>,
    /// Longest sleep when idle, also the fallback when a wake-up is missed,
    /// and how soon retries falling due are seen. Default: 5 s.
    pub poll_interval: Duration,
    /// Wake on the doorbell (LISTEN); off, the relay polls. Default: true.
    pub listen: bool,
    /// Behind a transaction-mode connection pooler (PgBouncer
    /// `pool_mode = transaction`), where nothing of a session survives from
    /// one transaction to the next: no doorbell (as if `listen` were off),
    /// no prepared statements (each call is sent unnamed, with its types),
    /// no session settings (commits are synchronous). Default: false.
    pub pooler: bool,
    /// How long the soft shutdown phase may take. Default: 10 s.
    pub shutdown_grace: Duration,
    /// Longest wait between reconnect attempts. Default: 5 s.
    pub reconnect_max: Duration,
    /// Where to serve `/metrics` (Prometheus), `/healthz` and `/readyz`;
    /// `None` serves nothing. Default: `None`.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// How often to call `outbox.cleanup()` (dedup keys, history past
    /// `outbox.retention`); `None` leaves it to a scheduler. Default: 60 s.
    pub cleanup_interval: Option<Duration>,
    /// The named outbox to relay (`outbox.create_outbox(name)`, schema
    /// `outbox_<name>`); `None` is the default outbox. Default: `None`.
    pub outbox: Option<String>,
}

impl RelayConfig {
    /// A config with every default and this database.
    pub fn new(db: tokio_postgres::Config) -> Self {
        RelayConfig {
            tls: crate::TlsConfig::from_config(&db),
            db,
            owner: default_owner(),
            batch_size: 100,
            concurrency: 2,
            lease: Duration::from_secs(30),
            topics: None,
            poll_interval: Duration::from_secs(5),
            listen: true,
            pooler: false,
            shutdown_grace: Duration::from_secs(10),
            reconnect_max: Duration::from_secs(5),
            metrics_addr: None,
            cleanup_interval: Some(Duration::from_secs(60)),
            outbox: None,
        }
    }

    /// The statements of [`RelayConfig::outbox`]; an error for a name
    /// `outbox.create_outbox` would refuse.
    pub fn statements(&self) -> Result<&'static outbox_client::Statements, Error> {
        outbox_client::Statements::for_outbox(self.outbox.as_deref()).map_err(|e| Error::Config {
            field: "outbox",
            reason: e.to_string(),
        })
    }

    /// The store of [`RelayConfig::outbox`] (the relay's cleaner and checks).
    pub fn store(&self) -> Result<outbox_client::Store, Error> {
        match &self.outbox {
            None => Ok(outbox_client::Store),
            Some(name) => outbox_client::Store::for_outbox(name).map_err(|e| Error::Config {
                field: "outbox",
                reason: e.to_string(),
            }),
        }
    }

    /// Check every field; the error names the bad one.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field, reason: &str| {
            Err(Error::Config {
                field,
                reason: reason.to_owned(),
            })
        };
        let rule = |field, r: Result<(), outbox_rules::Invalid>| {
            r.map_err(|e| Error::Config {
                field,
                reason: format!("{}; {}", e.reason, e.hint),
            })
        };
        rule("owner", outbox_rules::owner(&self.owner))?;
        if let Some(name) = &self.outbox {
            rule("outbox", outbox_rules::outbox_name(name))?;
        }
        rule("batch_size", outbox_rules::batch_size(self.batch_size))?;
        if !(1..=64).contains(&self.concurrency) {
            return bad("concurrency", "must be between 1 and 64");
        }
        // The relay's floor: it extends a lease a third of the way through,
        // and below a second that is mostly round trips.
        if self.lease < Duration::from_secs(1) {
            return bad("lease", "must be at least 1 second");
        }
        rule(
            "lease",
            outbox_rules::lease(i128::try_from(self.lease.as_micros()).ok()),
        )?;
        if self.poll_interval < Duration::from_millis(10) {
            return bad("poll_interval", "must be at least 10 ms");
        }
        if let Some(topics) = &self.topics {
            if topics.is_empty() {
                return bad(
                    "topics",
                    "must name at least one topic, or be unset for all",
                );
            }
            rule(
                "topics",
                outbox_rules::topics(topics.iter().map(|t| Some(t.as_str()))),
            )?;
        }
        if self
            .cleanup_interval
            .is_some_and(|d| d < Duration::from_secs(1))
        {
            return bad("cleanup_interval", "must be at least 1 second, or unset");
        }
        if self.db.get_hosts().is_empty() {
            return bad("db", "names no host");
        }
        self.tls.validate()?;
        Ok(())
    }
}

fn default_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "relay".to_owned());
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &nonce[..8])
}

/// Counters of what a relay did, readable while it runs. Written only
/// through the relay's one counter sink, which feeds the Prometheus metrics
/// from the same calls.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Messages the broker acknowledged and the outbox completed.
    pub published: AtomicU64,
    /// Failed attempts reported with `outbox.fail` (retried later).
    pub failed: AtomicU64,
    /// Messages that became dead letters.
    pub dead: AtomicU64,
    /// Messages handed back at shutdown.
    pub released: AtomicU64,
    /// Doorbell rings that woke the relay.
    pub wakeups: AtomicU64,
}

impl RelayStats {
    /// A plain snapshot: (published, failed, dead, released, wakeups).
    pub fn snapshot(&self) -> (u64, u64, u64, u64, u64) {
        (
            self.published.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.dead.load(Ordering::Relaxed),
            self.released.load(Ordering::Relaxed),
            self.wakeups.load(Ordering::Relaxed),
        )
    }
}

/// Relays the outbox to one publisher.
///
/// ```no_run
/// # async fn demo() -> Result<(), outbox_relay::Error> {
/// use outbox_relay::{Relay, RelayConfig, StdoutPublisher};
/// use tokio_util::sync::CancellationToken;
/// let db = "host=/var/run/postgresql dbname=app".parse().expect("a valid connection string");
/// let relay = Relay::new(RelayConfig::new(db), StdoutPublisher::default())?;
/// let shutdown = CancellationToken::new();
/// relay.run(shutdown).await?;
/// # Ok(()) }
/// ```
pub struct Relay<P> {
    config: Arc<RelayConfig>,
    publisher: Arc<P>,
    stats: Arc<RelayStats>,
}

/// What workers share: who is idle (the doorbell arms only when all are) and
/// the wake-up generation (bumped to make idle workers claim again).
pub(crate) struct Shared<P> {
    pub config: Arc<RelayConfig>,
    pub publisher: Arc<P>,
    pub counters: Counters,
    pub idle: watch::Sender<usize>,
    pub wake: watch::Sender<u64>,
    pub shutdown: CancellationToken,
}

impl<P> Shared<P> {
    /// Bump the wake-up generation: idle workers claim again.
    pub(crate) fn wake_workers(&self) {
        self.wake.send_modify(|g| *g = g.wrapping_add(1));
    }
}

impl<P: Publisher> Relay<P> {
    /// A relay; fails if the config does not validate.
    pub fn new(config: RelayConfig, publisher: P) -> Result<Self, Error> {
        config.validate()?;
        Ok(Relay {
            config: Arc::new(config),
            publisher: Arc::new(publisher),
            stats: Arc::default(),
        })
    }

    /// The relay's counters, to read while it runs or after.
    pub fn stats(&self) -> Arc<RelayStats> {
        self.stats.clone()
    }

    /// Run until `shutdown` is cancelled, then shut down in two phases (see
    /// the [module docs](self)): `run` returns at most
    /// [`RelayConfig::shutdown_grace`] after the cancellation, with no task
    /// of the relay left running. Returns an error only for problems a
    /// reconnect cannot fix: a missing extension, missing privileges, a
    /// database that cannot be reached at start; a worker stopped by such an
    /// error shuts the whole relay down the same way.
    ///
    /// # Panics
    ///
    /// Only if a task of the relay panicked (a bug: data and publishers'
    /// panics are handled): after shutting the rest down, the panic is
    /// resumed here.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        // Fail fast on what reconnecting will not fix.
        let first = connect::connect_once(&self.config).await?;
        let store = self.config.store()?;
        store.check_extension(&first).await?;
        // A named outbox that does not exist is a startup error, not a
        // reconnect loop: its stats call says 3F000 (schema missing).
        if self.config.outbox.is_some() {
            store.stats(&first).await?;
        }
        drop(first);

        let (idle, _) = watch::channel(0usize);
        let (wake, _) = watch::channel(0u64);
        let stop_claiming = shutdown.child_token();
        let shared = Arc::new(Shared {
            config: self.config.clone(),
            publisher: self.publisher.clone(),
            counters: Counters {
                stats: self.stats.clone(),
                metrics: Metrics::new(),
            },
            idle,
            wake,
            shutdown: stop_claiming.clone(),
        });
        // A JoinSet, not a detached spawn: the hard phase can abort what is
        // left and wait until it is gone.
        let mut tasks: JoinSet<Result<(), Error>> = JoinSet::new();
        for n in 0..self.config.concurrency {
            let shared = shared.clone();
            tasks.spawn(async move {
                let result = worker::run(n, shared).await;
                if let Err(e) = &result {
                    tracing::error!(worker = n, error = %e, "relay worker stopped");
                }
                result
            });
        }
        if self.config.listen && !self.config.pooler {
            let shared = shared.clone();
            tasks.spawn(async move {
                doorbell::run(shared).await;
                Ok(())
            });
        }
        if let Some(every) = self.config.cleanup_interval {
            let shared = shared.clone();
            tasks.spawn(async move {
                cleaner::run(shared, every).await;
                Ok(())
            });
        }
        if let Some(addr) = self.config.metrics_addr {
            let shared = shared.clone();
            tasks.spawn(async move {
                health::run(shared, addr).await;
                Ok(())
            });
        }
        drop(shared);
        tracing::info!(owner = %self.config.owner, workers = self.config.concurrency, listen = self.config.listen, pooler = self.config.pooler, "relay started");

        let mut ending = Ending::default();
        // Running: until cancelled, or a task fails. (A task that ends
        // fine, like a doorbell that gave up, leaves the rest running.)
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(joined) = tasks.join_next() => {
                    if ending.record(joined) {
                        break;
                    }
                }
            }
        }
        stop_claiming.cancel();

        tracing::info!(grace = ?self.config.shutdown_grace, "relay stopping: no new claims, finishing in-flight batches");
        let soft = async {
            while let Some(joined) = tasks.join_next().await {
                ending.record(joined);
            }
        };
        if tokio::time::timeout(self.config.shutdown_grace, soft)
            .await
            .is_err()
        {
            tracing::warn!(grace = ?self.config.shutdown_grace, tasks = tasks.len(), "in-flight work did not finish in time; aborting it: its leases will expire and another relay will deliver it");
            tasks.abort_all();
            while let Some(joined) = tasks.join_next().await {
                ending.record(joined);
            }
        }
        let (published, failed, dead, released, wakeups) = self.stats.snapshot();
        tracing::info!(published, failed, dead, released, wakeups, "relay stopped");
        ending.finish()
    }
}
