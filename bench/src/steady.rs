//! W3, W4 and W5: producers at a set rate with the relay running; end-to-end
//! latency from the producer's commit to the publisher's hand-off, and what
//! the outbox's tables look like meanwhile (depth, dead tuples, sizes, WAL).
//! W4 holds a snapshot open for part of the run, W5 an open writing
//! transaction (one that has taken a transaction id).

use crate::footprint::{self, Footprint};
use crate::load::{connect, wal_position};
use crate::ops::payload;
use crate::stats::percentile;
use anyhow::{bail, Result};
use outbox_relay::{Delivery, Message, Publisher, Relay, RelayConfig};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::time::MissedTickBehavior;
use tokio_postgres::{Client, Config};
use tokio_util::sync::CancellationToken;

/// One steady-state run.
pub struct Spec {
    /// Offered load in messages per second; `None` = every producer flat out.
    pub rate: Option<f64>,
    /// Producer connections (each commits one message per transaction).
    pub producers: usize,
    pub duration: Duration,
    /// W4/W5: what another session holds open, from the first to the second
    /// fraction of the run.
    pub hold: Option<(Hold, f64, f64)>,
}

/// What a session keeps open in the middle of a W4/W5 run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// W4: a REPEATABLE READ transaction that has read the outbox: its
    /// snapshot holds back the xmin horizon (vacuum cannot remove what the
    /// relay deletes meanwhile).
    Snapshot,
    /// W5: a transaction that took a transaction id (`pg_current_xact_id()`)
    /// and sleeps: every snapshot taken meanwhile lists it as running.
    Writer,
}

impl Hold {
    pub fn name(self) -> &'static str {
        match self {
            Hold::Snapshot => "repeatable_read_snapshot",
            Hold::Writer => "open_writer_xid",
        }
    }

    fn begin_sql(self) -> &'static str {
        match self {
            Hold::Snapshot => {
                "BEGIN ISOLATION LEVEL REPEATABLE READ; \
                 SELECT count(*) FROM outbox.stats()"
            }
            Hold::Writer => "BEGIN; SELECT pg_current_xact_id()",
        }
    }
}

/// Notes when each message reached the publisher; the run keeps a clone to
/// read what the relay's copy recorded.
#[derive(Clone)]
struct Recorder {
    seen: Arc<Mutex<Vec<(i64, Instant)>>>,
}

impl Publisher for Recorder {
    async fn publish(&self, batch: &[Message]) -> Vec<Delivery> {
        let now = Instant::now();
        self.seen
            .lock()
            .expect("not poisoned")
            .extend(batch.iter().map(|m| (m.id, now)));
        batch.iter().map(|_| Delivery::Acked).collect()
    }
}

/// One reading of the outbox, once a second.
#[derive(Clone)]
struct Sample {
    at: f64,
    depth: i64,
    dead: i64,
    table: i64,
    index: i64,
    tables: Footprint,
}

impl Sample {
    async fn read(reader: &footprint::Reader, admin: &Client, at: f64) -> Result<Sample> {
        let tables = reader.footprint(admin).await?;
        Ok(Sample {
            at,
            depth: reader.depth(admin).await?,
            dead: tables.dead(),
            table: tables.table_bytes(),
            index: tables.index_bytes(),
            tables,
        })
    }
}

/// Run `spec`; the result as report JSON.
pub async fn run(db: &Config, admin: &Client, spec: &Spec) -> Result<Value> {
    crate::api::reset_outbox(admin).await?;
    let recorder = Recorder {
        seen: Arc::default(),
    };
    let mut cfg = RelayConfig::new(db.clone());
    cfg.batch_size = 100;
    cfg.concurrency = 2;
    let relay = Relay::new(cfg, recorder.clone())?;
    let stop = CancellationToken::new();
    let relay_task = tokio::spawn(relay.run(stop.clone()));
    // Let the relay connect and fall asleep on the doorbell first.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut producers = Vec::new();
    for _ in 0..spec.producers {
        let c = connect(db).await?;
        let stmt = c
            .prepare("SELECT outbox.enqueue('bench', $1::jsonb)")
            .await?;
        producers.push((c, stmt));
    }
    let wal0 = wal_position(admin).await?;
    let start = Instant::now();
    let deadline = start + spec.duration;

    let tasks: Vec<_> = producers
        .into_iter()
        .map(|(c, stmt)| {
            let every = spec
                .rate
                .map(|r| Duration::from_secs_f64(spec.producers as f64 / r));
            tokio::spawn(async move {
                let body = payload();
                let mut ticks = every.map(|e| {
                    let mut t = tokio::time::interval(e);
                    t.set_missed_tick_behavior(MissedTickBehavior::Burst);
                    t
                });
                let mut commits = Vec::new();
                while Instant::now() < deadline {
                    if let Some(t) = ticks.as_mut() {
                        t.tick().await;
                    }
                    let id: i64 = c.query_one(&stmt, &[&body]).await?.get(0);
                    commits.push((id, Instant::now()));
                }
                anyhow::Ok(commits)
            })
        })
        .collect();

    let holder = match spec.hold {
        Some((hold, from, to)) => {
            let c = connect(db).await?;
            let (from, to) = (spec.duration.mul_f64(from), spec.duration.mul_f64(to));
            Some(tokio::spawn(async move {
                tokio::time::sleep_until((start + from).into()).await;
                c.batch_execute(hold.begin_sql()).await?;
                tokio::time::sleep_until((start + to).into()).await;
                c.batch_execute("COMMIT").await?;
                anyhow::Ok(())
            }))
        }
        None => None,
    };

    let mut samples = Vec::new();
    let reader = footprint::Reader::new(admin).await?;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1).min(deadline - Instant::now())).await;
        samples.push(Sample::read(&reader, admin, start.elapsed().as_secs_f64()).await?);
    }
    let mut commits = HashMap::new();
    for t in tasks {
        commits.extend(t.await??);
    }
    if let Some(h) = holder {
        h.await??;
    }
    let produced_secs = start.elapsed().as_secs_f64();
    // Let the relay finish what is left, then stop it.
    let drain_deadline = Instant::now() + Duration::from_secs(120);
    while recorder.seen.lock().expect("not poisoned").len() < commits.len() {
        if Instant::now() > drain_deadline {
            bail!("the relay did not publish every message within 120 s of the run's end");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wal_bytes = wal_position(admin).await? - wal0;
    stop.cancel();
    relay_task.await??;
    let end = Sample::read(&reader, admin, start.elapsed().as_secs_f64()).await?;

    let seen = std::mem::take(&mut *recorder.seen.lock().expect("not poisoned"));
    let phases: Vec<(&str, f64, f64)> = match spec.hold {
        Some((_, from, to)) => {
            let d = spec.duration.as_secs_f64();
            vec![
                ("before", 0.0, from * d),
                ("during", from * d, to * d),
                ("after", to * d, d),
            ]
        }
        None => vec![("all", 0.0, spec.duration.as_secs_f64())],
    };
    let phase_json: Vec<Value> = phases
        .iter()
        .map(|&(name, from, to)| {
            let in_phase = |t: Instant| {
                let s = (t - start).as_secs_f64();
                s >= from && s < to
            };
            let mut lat: Vec<f64> = seen
                .iter()
                .filter_map(|(id, published)| {
                    let committed = commits.get(id)?;
                    in_phase(*committed).then(|| {
                        published
                            .saturating_duration_since(*committed)
                            .as_secs_f64()
                            * 1e3
                    })
                })
                .collect();
            lat.sort_by(f64::total_cmp);
            let published = seen.iter().filter(|(_, t)| in_phase(*t)).count();
            let produced = commits.values().filter(|t| in_phase(**t)).count();
            let window: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.at > from && s.at <= to + 1.0)
                .collect();
            let max = |f: fn(&Sample) -> i64| window.iter().map(|s| f(s)).max().unwrap_or(0);
            json!({
                "phase": name,
                "seconds": to - from,
                "produced_per_sec": produced as f64 / (to - from),
                "published_per_sec": published as f64 / (to - from),
                "latency_ms": latency_json(&lat),
                "depth_max": max(|s| s.depth),
                "dead_tuples_max": max(|s| s.dead),
                "dead_tuples_last": window.last().map(|s| s.dead).unwrap_or(0),
            })
        })
        .collect();
    let mut lat: Vec<f64> = seen
        .iter()
        .filter_map(|(id, published)| {
            Some(
                published
                    .saturating_duration_since(*commits.get(id)?)
                    .as_secs_f64()
                    * 1e3,
            )
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    let published_in_run = seen.iter().filter(|(_, t)| *t <= deadline).count();
    let max = |f: fn(&Sample) -> i64| samples.iter().map(f).max().unwrap_or(0);
    let mean_depth =
        samples.iter().map(|s| s.depth as f64).sum::<f64>() / samples.len().max(1) as f64;
    Ok(json!({
        "offered_per_sec": spec.rate,
        "producers": spec.producers,
        "seconds": spec.duration.as_secs_f64(),
        "produced": commits.len(),
        "produced_per_sec": commits.len() as f64 / produced_secs,
        "published_per_sec": published_in_run as f64 / spec.duration.as_secs_f64(),
        "latency_ms": latency_json(&lat),
        "depth_max": max(|s| s.depth),
        "depth_mean": mean_depth,
        "dead_tuples_max": max(|s| s.dead),
        "dead_tuples_end": end.dead,
        "table_bytes_max": max(|s| s.table),
        "index_bytes_max": max(|s| s.index),
        "table_bytes_end": end.table,
        "index_bytes_end": end.index,
        "footprint_bytes_max": max(|s| s.table + s.index),
        "tables": footprint::per_table_max(samples.iter().map(|s| &s.tables).chain([&end.tables])),
        "hold": spec.hold.map(|(h, _, _)| h.name()),
        "wal_bytes_per_message": wal_bytes as f64 / commits.len().max(1) as f64,
        "phases": phase_json,
    }))
}

/// p50, p99, p99.9 and max of ascending latencies in ms.
fn latency_json(sorted: &[f64]) -> Value {
    json!({
        "p50": percentile(sorted, 0.50),
        "p99": percentile(sorted, 0.99),
        "p99_9": percentile(sorted, 0.999),
        "max": sorted.last().copied().unwrap_or(0.0),
    })
}
