//! One case: a fresh database, the steps run against it and the model side
//! by side, every answer compared, the invariants checked after each step,
//! and a final drain that proves nothing was lost. Only the SQL API is used
//! (no table is read; the one query of our own asks PostgreSQL how it
//! hashes the case's keys to log partitions), so the suite sees the storage
//! only through what the API says.

use crate::checks::{drain, invariants};
use crate::model::{Model, TICK_SECS};
use crate::ops::{Op, CONNS, KEYS};
use crate::step::step;
use chrono::{DateTime, Utc};
use outbox_tests::tokio_postgres::Client;
use outbox_tests::{quote_ident, TestDb, SUPERUSER};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Largest drift between the real clock and the model's a case tolerates:
/// half a tick (purge_dead_topic's boundary sits half a tick away).
pub(crate) const MAX_DRIFT_SECS: f64 = TICK_SECS as f64 / 2.0;

pub(crate) type Check = Result<(), String>;

pub(crate) fn ensure(ok: bool, what: impl FnOnce() -> String) -> Check {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

pub(crate) fn interval(ticks: i64) -> String {
    format!("{} seconds", ticks * TICK_SECS)
}

pub(crate) struct Sut {
    pub(crate) conns: Vec<Client>,
    /// The real time at the start of the case: model tick t is base + t ticks.
    pub(crate) base: DateTime<Utc>,
    /// Claim index -> the lease token it used (random when it got nothing).
    pub(crate) tokens: Vec<Uuid>,
    pub(crate) last_id: i64,
}

impl Sut {
    pub(crate) fn at(&self, ticks: i64) -> DateTime<Utc> {
        self.base + chrono::Duration::seconds(ticks * TICK_SECS)
    }

    /// A time the server returned is the model's tick plus a small drift.
    pub(crate) fn close_to(&self, got: DateTime<Utc>, ticks: i64) -> bool {
        let drift = (got - self.at(ticks)).num_milliseconds() as f64 / 1000.0;
        (0.0..MAX_DRIFT_SECS).contains(&drift)
    }
}

pub(crate) fn db_err(e: outbox_tests::tokio_postgres::Error) -> String {
    outbox_tests::describe_error(&e)
}

/// Runs one case; the error says which step diverged and how. `steps`
/// counts the steps that ran.
pub async fn run(ops: &[Op], steps: &std::sync::atomic::AtomicUsize) -> Check {
    let db = TestDb::new().await;
    let result = run_in(&db, ops, steps).await;
    let admin = db.cluster().connect("postgres", SUPERUSER).await;
    let drop = format!("DROP DATABASE {} WITH (FORCE)", quote_ident(db.name()));
    admin.batch_execute(&drop).await.map_err(db_err)?;
    result
}

async fn run_in(db: &TestDb, ops: &[Op], steps: &std::sync::atomic::AtomicUsize) -> Check {
    // Exact, small retry schedule and attempt budget: see model.rs.
    let setup = format!(
        "ALTER DATABASE {} SET outbox.retry_jitter = 0; \
         ALTER DATABASE {0} SET outbox.retry_base = '{}s'; \
         ALTER DATABASE {0} SET outbox.retry_cap = '{}s'; \
         ALTER DATABASE {0} SET outbox.max_attempts = {};",
        quote_ident(db.name()),
        crate::model::RETRY_BASE_TICKS * TICK_SECS,
        crate::model::RETRY_CAP_TICKS * TICK_SECS,
        crate::model::DEFAULT_MAX_ATTEMPTS,
    );
    db.client()
        .await
        .batch_execute(&setup)
        .await
        .map_err(db_err)?;
    let mut conns = Vec::new();
    for _ in 0..CONNS {
        conns.push(db.client().await);
    }
    let base: DateTime<Utc> = conns[0]
        .query_one("SELECT statement_timestamp()", &[])
        .await
        .map_err(db_err)?
        .get(0);
    let mut sut = Sut {
        conns,
        base,
        tokens: Vec::new(),
        last_id: 0,
    };
    let mut model = Model::new(key_parts(&sut.conns[0]).await?);
    for (n, op) in ops.iter().enumerate() {
        step(&mut sut, &mut model, op)
            .await
            .map_err(|e| format!("step {n} {op:?}: {e}"))?;
        invariants(&sut, &model)
            .await
            .map_err(|e| format!("after step {n} {op:?}: {e}"))?;
        steps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    drain(&mut sut, &mut model)
        .await
        .map_err(|e| format!("final drain: {e}"))
}

/// The log partition of every key the generator makes (ops.rs: `k0`..`k2`),
/// hashed as enqueue.sql does.
async fn key_parts(c: &Client) -> Result<BTreeMap<String, usize>, String> {
    let mut parts = BTreeMap::new();
    for k in 0..KEYS {
        let key = format!("k{k}");
        let part: i64 = c
            .query_one("SELECT pg_catalog.hashtextextended($1, 0) & 15", &[&key])
            .await
            .map_err(db_err)?
            .get(0);
        parts.insert(key, usize::try_from(part).map_err(|e| e.to_string())?);
    }
    Ok(parts)
}

pub(crate) async fn set_clock(sut: &Sut, model: &Model) -> Check {
    let sql = format!(
        "SET outbox.test_clock_offset = {}",
        model.now * TICK_SECS * 1000
    );
    for c in &sut.conns {
        c.batch_execute(&sql).await.map_err(db_err)?;
    }
    Ok(())
}
