//! Load generation: connections, closed-loop producer runs, WAL position.

use crate::ops::{Payload, Producer, System, Write};
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::{Client, Config, NoTls};

/// Connect; the connection is driven by its own task until the client drops.
pub async fn connect(cfg: &Config) -> Result<Client> {
    let (client, conn) = cfg.connect(NoTls).await.context("connecting")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// The server's WAL insert position in bytes.
pub async fn wal_position(c: &Client) -> Result<i64> {
    let row = c
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// What one timed run did.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Wall time from the first transaction to the last one's end.
    pub secs: f64,
    /// Committed transactions.
    pub txs: u64,
    /// Messages written (or drained).
    pub rows: u64,
    /// WAL written during the run.
    pub wal_bytes: i64,
}

impl Throughput {
    pub fn tx_per_sec(&self) -> f64 {
        self.txs as f64 / self.secs
    }
    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.secs
    }
    pub fn wal_per_row(&self) -> f64 {
        self.wal_bytes as f64 / self.rows.max(1) as f64
    }
}

/// `producers` clients each commit `write`s to `system` back to back for
/// `duration` (a closed loop: a client's next transaction starts when its
/// last one committed).
pub async fn closed_loop(
    admin: &Client,
    producers: &[Arc<Producer>],
    system: System,
    write: Write,
    payload: &Arc<Payload>,
    duration: Duration,
) -> Result<Throughput> {
    closed_loop_mixed(admin, producers, &[(system, write)], payload, duration).await
}

/// [`closed_loop`] with producer `i` writing `writes[i % writes.len()]`:
/// W8 splits one set of producers over two outboxes.
pub async fn closed_loop_mixed(
    admin: &Client,
    producers: &[Arc<Producer>],
    writes: &[(System, Write)],
    payload: &Arc<Payload>,
    duration: Duration,
) -> Result<Throughput> {
    let wal0 = wal_position(admin).await?;
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = producers
        .iter()
        .zip(writes.iter().cycle())
        .map(|(p, &(system, write))| {
            let p = p.clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                let (mut txs, mut rows) = (0u64, 0u64);
                while Instant::now() < deadline {
                    rows += p.write(system, write, &payload).await?;
                    txs += 1;
                }
                anyhow::Ok((txs, rows))
            })
        })
        .collect();
    let (mut txs, mut rows) = (0, 0);
    for t in tasks {
        let (t, r) = t.await??;
        txs += t;
        rows += r;
    }
    let secs = start.elapsed().as_secs_f64();
    let wal_bytes = wal_position(admin).await? - wal0;
    Ok(Throughput {
        secs,
        txs,
        rows,
        wal_bytes,
    })
}
