//! W2: draining a pre-filled backlog.
//!
//! Every system drains the same payload at the same batch sizes and
//! concurrency: the outbox with its real relay and a publisher that
//! acknowledges at once; raw PostgreSQL with `DELETE ... FOR UPDATE SKIP
//! LOCKED`; pgmq with `read` + `delete`; PgQ with `next_batch` /
//! `get_batch_events` / `finish_batch` (one consumer: PgQ batches are per
//! consumer, so PgQ runs at concurrency 1 only).
//!
//! A rate is taken between 10% and 100% of the slice, so connecting and
//! preparing are outside it for every system alike.

use crate::load::{connect, wal_position, Throughput};
use crate::ops::{payload, System};
use anyhow::{bail, Context, Result};
use outbox_relay::{Delivery, Message, Publisher, Relay, RelayConfig};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::{Client, Config};
use tokio_util::sync::CancellationToken;

/// (batch size, concurrency) of each drain run.
pub const CONFIGS: [(i32, usize); 9] = [
    (10, 1),
    (10, 2),
    (10, 4),
    (100, 1),
    (100, 2),
    (100, 4),
    (1000, 1),
    (1000, 2),
    (1000, 4),
];

/// Outbox-only runs with `outbox.retention` on (every completed message is
/// also written to `outbox.published`), against the same configurations
/// with it off above.
pub const RETENTION_CONFIGS: [(i32, usize); 2] = [(100, 2), (1000, 2)];

/// Extra backlog so that overshoot (batches in flight when a slice is done)
/// never empties it.
const MARGIN: i64 = 50_000;

/// Messages per enqueue/send call while pre-filling.
const FILL_CHUNK: i32 = 10_000;

const FILL_RAW: &str = "INSERT INTO bench.raw_messages (topic, payload, max_attempts) \
    SELECT 'bench', $1::jsonb, 20 FROM generate_series(1, $2::int)";
const FILL_OUTBOX: &str =
    "SELECT cardinality(outbox.enqueue_batch('bench', array_fill($1::jsonb, ARRAY[$2::int])))";
const FILL_PGMQ: &str =
    "SELECT count(*) FROM pgmq.send_batch('bench', array_fill($1::jsonb, ARRAY[$2::int]))";
/// PgQ's batch is whatever lies between two ticks, so its batch size is
/// fixed when the backlog is written: a tick after every `per_tick` events
/// (`ticker_max_count` 1 makes `pgq.ticker` tick whenever called after new
/// events; it is called only at the chunk boundaries).
const PGQ_FILL_PROC: &str = "
CREATE PROCEDURE bench.pgq_fill(n int, per_tick int, ev text) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgq.set_queue_config('bench', 'ticker_max_count', '1');
    COMMIT;
    FOR i IN 1 .. n / per_tick LOOP
        PERFORM pgq.insert_event('bench', 'bench', ev) FROM generate_series(1, per_tick);
        COMMIT;
        IF pgq.ticker('bench') IS NULL THEN
            RAISE EXCEPTION 'pgq.ticker made no tick after % events', per_tick;
        END IF;
        COMMIT;
    END LOOP;
END $$;";

/// Fill every system's backlog: `slice` messages per configuration.
pub async fn prefill(admin: &Client, slice: i64) -> Result<()> {
    // Filling is not measured: no need to wait for each commit's flush.
    admin.batch_execute("SET synchronous_commit = off").await?;
    let total = slice * CONFIGS.len() as i64 + MARGIN;
    let p = payload();
    admin
        .execute(FILL_RAW, &[&p, &i32::try_from(total)?])
        .await?;
    for fill in [FILL_OUTBOX, FILL_PGMQ] {
        let stmt = admin.prepare(fill).await?;
        let mut left = total;
        while left > 0 {
            let n = left.min(i64::from(FILL_CHUNK)) as i32;
            admin.query_one(&stmt, &[&p, &n]).await?;
            left -= i64::from(n);
        }
    }
    // The retention runs drain the outbox only: its backlog gets their
    // slices on top.
    let stmt = admin.prepare(FILL_OUTBOX).await?;
    let mut left = slice * RETENTION_CONFIGS.len() as i64;
    while left > 0 {
        let n = left.min(i64::from(FILL_CHUNK)) as i32;
        admin.query_one(&stmt, &[&p, &n]).await?;
        left -= i64::from(n);
    }
    admin.batch_execute(PGQ_FILL_PROC).await?;
    let text = p.to_string();
    let fill = admin
        .prepare("CALL bench.pgq_fill($1, $2, $3)")
        .await
        .context("preparing the PgQ fill")?;
    for (batch, _) in CONFIGS.iter().filter(|(_, c)| *c == 1) {
        admin
            .execute(&fill, &[&i32::try_from(slice)?, batch, &text])
            .await
            .context("filling PgQ")?;
    }
    admin.batch_execute("RESET synchronous_commit").await?;
    settle(admin).await
}

/// Between runs: vacuum what the last run left dead, and checkpoint, so no
/// run pays for another's leftovers.
pub async fn settle(admin: &Client) -> Result<()> {
    crate::footprint::vacuum_outbox(admin, &["bench.raw_messages", "pgmq.q_bench"]).await?;
    admin.batch_execute("CHECKPOINT").await?;
    Ok(())
}

/// Wait until `count()` reaches `target`; the seconds and messages of the
/// 10%..100% window. Fails if nothing moves for 30 s (the backlog ran out,
/// or a drainer died).
pub async fn watch(target: u64, count: impl Fn() -> u64) -> Result<(f64, u64)> {
    let from = target / 10;
    let mut start: Option<(Instant, u64)> = None;
    let mut last = (Instant::now(), 0u64);
    loop {
        let n = count();
        let now = Instant::now();
        if n != last.1 {
            last = (now, n);
        } else if now - last.0 > Duration::from_secs(30) {
            bail!("drain stalled at {n} of {target} messages");
        }
        if start.is_none() && n >= from {
            start = Some((now, n));
        }
        if n >= target {
            let (t0, n0) = start.expect("set before the end");
            let secs = (now - t0).as_secs_f64().max(1e-6);
            return Ok((secs, n - n0));
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

/// Acknowledges every message at once.
struct Discard;

impl Publisher for Discard {
    async fn publish(&self, batch: &[Message]) -> Vec<Delivery> {
        batch.iter().map(|_| Delivery::Acked).collect()
    }
}

/// The relay's connection settings with `outbox.retention` on (a startup
/// option: the bench connects as a superuser, who may set it).
pub fn with_retention(db: &Config) -> Config {
    let mut db = db.clone();
    db.options("-c outbox.retention=3600");
    db
}

/// Drain `slice` messages from `system` with `batch` x `concurrency`.
pub async fn run(
    db: &Config,
    admin: &Client,
    system: System,
    batch: i32,
    concurrency: usize,
    slice: u64,
) -> Result<Throughput> {
    let wal0 = wal_position(admin).await?;
    // (seconds and messages of the measured window, messages drained in all)
    let ((secs, rows), all) = match system {
        System::Outbox => relays(db, &[None], batch, concurrency, slice).await?,
        System::Raw | System::Pgmq | System::Pgq => {
            if system == System::Pgq && concurrency != 1 {
                bail!("PgQ batches belong to one consumer: concurrency 1 only");
            }
            let drained = Arc::new(AtomicU64::new(0));
            let mut tasks = Vec::new();
            for _ in 0..concurrency {
                let client = connect(db).await?;
                let drained = drained.clone();
                tasks.push(tokio::spawn(async move {
                    let drainer = Drainer::new(&client, system).await?;
                    while drained.load(Ordering::Relaxed) < slice {
                        let Some(n) = drainer.one_batch(&client, batch).await? else {
                            break;
                        };
                        drained.fetch_add(n, Ordering::Relaxed);
                    }
                    anyhow::Ok(())
                }));
            }
            let measured = watch(slice, || drained.load(Ordering::Relaxed)).await;
            for t in tasks {
                t.await??;
            }
            (measured?, drained.load(Ordering::Relaxed))
        }
    };
    let wal_bytes = wal_position(admin).await? - wal0;
    Ok(Throughput {
        secs,
        txs: 0,
        rows,
        // WAL per drained message, over everything this run drained.
        wal_bytes: (wal_bytes as f64 * rows as f64 / all.max(1) as f64) as i64,
    })
}

/// One relay per outbox of `outboxes` (`None`: the default), each with
/// `batch` x `concurrency`, until they published `slice` messages between
/// them: (the measured window, messages published in all).
pub async fn relays(
    db: &Config,
    outboxes: &[Option<&str>],
    batch: i32,
    concurrency: usize,
    slice: u64,
) -> Result<((f64, u64), u64)> {
    let stop = CancellationToken::new();
    let mut stats = Vec::new();
    let mut handles = Vec::new();
    for outbox in outboxes {
        let mut cfg = RelayConfig::new(db.clone());
        cfg.batch_size = batch;
        cfg.concurrency = concurrency;
        cfg.poll_interval = Duration::from_secs(1);
        cfg.outbox = outbox.map(str::to_owned);
        let relay = Relay::new(cfg, Discard)?;
        stats.push(relay.stats());
        handles.push(tokio::spawn(relay.run(stop.clone())));
    }
    // Messages count once completed, as for the others once deleted.
    let published = || {
        stats
            .iter()
            .map(|s| s.published.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let measured = watch(slice, published).await;
    stop.cancel();
    for handle in handles {
        handle.await??;
    }
    Ok((measured?, published()))
}

/// One drainer's prepared statements.
enum Drainer {
    Raw(tokio_postgres::Statement),
    Pgmq(tokio_postgres::Statement, tokio_postgres::Statement),
    Pgq(
        tokio_postgres::Statement,
        tokio_postgres::Statement,
        tokio_postgres::Statement,
    ),
}

impl Drainer {
    async fn new(c: &Client, system: System) -> Result<Drainer> {
        Ok(match system {
            // What a hand-rolled outbox relay does, minus leases and retries:
            // the ceiling for taking rows out of a table.
            System::Raw => Drainer::Raw(
                c.prepare(
                    "DELETE FROM bench.raw_messages WHERE id = ANY(ARRAY(\
                         SELECT id FROM bench.raw_messages ORDER BY id \
                         LIMIT $1::int FOR UPDATE SKIP LOCKED)) \
                     RETURNING id, topic, key, payload, headers, attempt",
                )
                .await?,
            ),
            System::Pgmq => Drainer::Pgmq(
                c.prepare("SELECT msg_id, message FROM pgmq.read('bench', 30, $1::int)")
                    .await?,
                c.prepare("SELECT count(*) FROM pgmq.delete('bench', $1::bigint[])")
                    .await?,
            ),
            System::Pgq => Drainer::Pgq(
                c.prepare("SELECT pgq.next_batch('bench', 'bench')").await?,
                c.prepare("SELECT ev_id, ev_data FROM pgq.get_batch_events($1)")
                    .await?,
                c.prepare("SELECT pgq.finish_batch($1)").await?,
            ),
            System::Outbox => bail!("the outbox drains through its relay"),
        })
    }

    /// Take one batch out: how many messages it held, `None` when the
    /// backlog is gone.
    async fn one_batch(&self, c: &Client, batch: i32) -> Result<Option<u64>> {
        let n = match self {
            Drainer::Raw(delete) => c.query(delete, &[&batch]).await?.len() as u64,
            Drainer::Pgmq(read, delete) => {
                let rows = c.query(read, &[&batch]).await?;
                let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
                if ids.is_empty() {
                    0
                } else {
                    let deleted: i64 = c.query_one(delete, &[&ids]).await?.get(0);
                    deleted as u64
                }
            }
            Drainer::Pgq(next, events, finish) => {
                let Some(batch_id): Option<i64> = c.query_one(next, &[]).await?.get(0) else {
                    return Ok(None);
                };
                let n = c.query(events, &[&batch_id]).await?.len() as u64;
                c.execute(finish, &[&batch_id]).await?;
                // A PgQ batch may be empty (a tick without events).
                return Ok(Some(n));
            }
        };
        Ok((n > 0).then_some(n))
    }
}
