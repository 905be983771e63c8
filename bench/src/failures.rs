//! W6: the side path's cost. The real relay drains a pre-filled backlog
//! while its publisher refuses a fraction of the messages as retryable with
//! a short `retry_after`, so they leave the happy path (in storage 0.2.0:
//! copied from the log to the side table) and come back on their second
//! attempt, which always succeeds. Every rate drains the same backlog size in
//! the same run, so the figure that matters is each rate's throughput over
//! the 0% one.
//!
//! Which messages fail is a hash of the id, not every n-th id: with batches
//! of 100 and sequential ids, "every 100th" would put exactly one failure in
//! every batch and take every batch off the relay's pipelined complete+claim
//! path; independent failures leave that path to the batches that had none,
//! as a real broker's failures would.

use crate::drain::watch;
use crate::load::wal_position;
use crate::ops::payload;
use anyhow::{Context, Result};
use outbox_relay::{Delivery, Message, Publisher, Relay, RelayConfig};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_postgres::{Client, Config};
use tokio_util::sync::CancellationToken;

/// Failure rates, in percent of first attempts.
pub const RATES: [u32; 3] = [0, 1, 10];

/// The retry delay the publisher asks for: short, so the retried messages
/// come back while the backlog is still draining.
const RETRY_AFTER: Duration = Duration::from_millis(50);

/// Backlog beyond the measured slice, so the retried messages interleave
/// with fresh ones up to the end of the window instead of forming a tail.
const MARGIN_FRACTION: f64 = 0.25;

/// Refuses `percent` % of the first attempts, chosen by a hash of the id.
struct Flaky {
    percent: u32,
}

/// SplitMix64's finaliser: a well-mixed hash of an id.
fn mix(id: i64) -> u64 {
    let mut z = (id as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Flaky {
    fn fails(&self, m: &Message) -> bool {
        m.attempt == 1 && mix(m.id) % 10_000 < u64::from(self.percent) * 100
    }
}

impl Publisher for Flaky {
    async fn publish(&self, batch: &[Message]) -> Vec<Delivery> {
        batch
            .iter()
            .map(|m| {
                if self.fails(m) {
                    Delivery::Retryable {
                        error: "bench: injected broker failure".into(),
                        retry_after: Some(RETRY_AFTER),
                    }
                } else {
                    Delivery::Acked
                }
            })
            .collect()
    }
}

/// Every rate in [`RATES`], `slice` published messages each.
pub async fn run_all(
    db: &Config,
    admin: &Client,
    slice: u64,
    progress: &crate::Progress,
) -> Result<Value> {
    let mut runs = Vec::new();
    for percent in RATES {
        let r = run(db, admin, percent, slice)
            .await
            .with_context(|| format!("W6 at {percent}% failures"))?;
        progress.say(format_args!(
            "W6: {percent}% failing: {:.0} published/s, {} failed attempts",
            r["published_per_sec"].as_f64().unwrap_or(0.0),
            r["failed_attempts"]
        ));
        runs.push(r);
    }
    crate::api::reset_outbox(admin).await?;
    let base = runs
        .first()
        .and_then(|r| r["published_per_sec"].as_f64())
        .filter(|b| *b > 0.0);
    for r in &mut runs {
        let rate = r["published_per_sec"].as_f64();
        r["ratio_to_no_failures"] = rate.zip(base).map(|(r, b)| r / b).into();
    }
    Ok(json!({
        "batch": 100,
        "workers": 2,
        "slice": slice,
        "retry_after_ms": RETRY_AFTER.as_millis() as u64,
        "runs": runs,
    }))
}

/// One rate: fill, drain through the relay until `slice` are published.
async fn run(db: &Config, admin: &Client, percent: u32, slice: u64) -> Result<Value> {
    crate::api::reset_outbox(admin).await?;
    let api = crate::api::Api::new(admin).await?;
    admin.batch_execute("SET synchronous_commit = off").await?;
    let total = slice as usize + (slice as f64 * MARGIN_FRACTION) as usize;
    api.fill_keyless(admin, &payload(), total).await?;
    admin.batch_execute("RESET synchronous_commit").await?;
    crate::drain::settle(admin).await?;

    let wal0 = wal_position(admin).await?;
    let mut cfg = RelayConfig::new(db.clone());
    cfg.batch_size = 100;
    cfg.concurrency = 2;
    // Retries falling due are seen at the latest after one poll interval
    // when the relay runs dry; keep it short so a drained-out relay does not
    // sit on the retries.
    cfg.poll_interval = Duration::from_millis(100);
    let relay = Relay::new(cfg, Flaky { percent })?;
    let stats = relay.stats();
    let stop = CancellationToken::new();
    let handle = tokio::spawn(relay.run(stop.clone()));
    let measured = watch(slice, || stats.published.load(Ordering::Relaxed)).await;
    stop.cancel();
    handle.await??;
    let (secs, rows) = measured?;
    let (published, failed, dead, _, _) = stats.snapshot();
    let wal = wal_position(admin).await? - wal0;
    Ok(json!({
        "failure_percent": percent,
        "published_per_sec": rows as f64 / secs,
        "published": published,
        "failed_attempts": failed,
        "dead": dead,
        "wal_bytes_per_published": wal as f64 / published.max(1) as f64,
    }))
}

/// The report's W6 section.
pub fn markdown(w6: &Value) -> String {
    let mut s = String::from("\n## W6 drain with failing deliveries (the side path's cost)\n\n");
    let _ = writeln!(
        s,
        "The relay (batch {}, {} workers) drains a backlog; its publisher refuses the given share \
         of first attempts as retryable with `retry_after` {} ms (chosen by a hash of the id), \
         and accepts every second attempt. {} published messages per rate, measured from 10% to \
         100% of them, each rate on its own fresh backlog in this run.\n",
        w6["batch"], w6["workers"], w6["retry_after_ms"], w6["slice"]
    );
    s += "| failing | published/s | ÷ 0% | failed attempts | WAL B/published |\n|---:|---:|---:|---:|---:|\n";
    for r in w6["runs"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "| {}% | {:.0} | {} | {} | {:.0} |",
            r["failure_percent"],
            r["published_per_sec"].as_f64().unwrap_or(0.0),
            r["ratio_to_no_failures"]
                .as_f64()
                .map_or("–".to_owned(), |v| format!("{v:.3}")),
            r["failed_attempts"],
            r["wal_bytes_per_published"].as_f64().unwrap_or(0.0),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_fails_about_the_asked_share_of_ids() {
        for percent in [1u32, 10] {
            let f = Flaky { percent };
            let n = (1..=100_000i64)
                .filter(|&id| mix(id) % 10_000 < u64::from(f.percent) * 100)
                .count();
            let expected = 1000 * percent as usize;
            assert!(
                n.abs_diff(expected) < expected / 10,
                "{percent}%: {n} of 100000 failed"
            );
        }
    }
}
