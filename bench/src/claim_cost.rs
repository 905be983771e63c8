//! W7: what one `claim` of 100 costs, against how many keys are blocked and
//! against how deep the ready backlog is. Both should leave it flat: a claim
//! that wades through every blocked key's waiting messages, or through the
//! whole backlog, gets slower exactly when the outbox is already in trouble.
//!
//! Blocked keys: each key's head is claimed and failed with a retry a day
//! away, and [`FOLLOWERS`] more messages of the key wait behind it (per-key
//! FIFO keeps them back). The heads and their followers are older than the
//! ready backlog, so an id-ordered scan meets them first: the worst case.
//! Levels are cumulative (keys are added, never removed) and the ready
//! messages of one level are drained before the next level's keys are
//! written, so every level's blocked rows lie ahead of its ready ones.
//!
//! Depth: keyless ready messages, filled level by level (10k, then up to
//! 100k, then up to 1M). While a level is measured, every claim's 100
//! messages are completed and 100 new ones enqueued (neither timed), so the
//! depth stays put.
//!
//! The claiming session runs with `synchronous_commit = off`, as the relay's
//! does, so a claim's time is its own work and not the WAL flush.

use crate::api::{Api, Claimed};
use crate::load::connect;
use crate::ops::payload;
use crate::stats::{median, percentile};
use anyhow::{ensure, Result};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::time::Instant;
use tokio_postgres::{Client, Config};

/// Blocked keys per level.
pub const BLOCKED_KEYS: [usize; 4] = [0, 100, 1000, 10_000];
/// Messages waiting behind each blocked head.
const FOLLOWERS: usize = 3;
/// Ready messages behind the blocked keys while a blocked level is measured.
const READY_BEHIND_BLOCKED: usize = 5_000;
/// Messages per timed claim.
const BATCH: i32 = 100;
/// How far in the future a blocked head's retry is.
const FAR: &str = "1 day";

/// How many claims each level times, and the depth levels.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub claims: usize,
    pub depths: &'static [usize],
}

/// Both series, as report JSON.
pub async fn run_all(
    db: &Config,
    admin: &Client,
    budget: Budget,
    progress: &crate::Progress,
) -> Result<Value> {
    let c = connect(db).await?;
    c.batch_execute("SET synchronous_commit = off").await?;
    let api = Api::new(&c).await?;
    let body = payload();

    crate::api::reset_outbox(admin).await?;
    let mut blocked = Vec::new();
    let mut keys = 0;
    for level in BLOCKED_KEYS {
        block_keys(&api, &c, &body, keys, level).await?;
        keys = level;
        api.fill_keyless(&c, &body, READY_BEHIND_BLOCKED).await?;
        crate::drain::settle(admin).await?;
        let (scheduled, waiting) = held_back(admin).await?;
        let mut r = time_claims(&api, &c, &body, budget.claims).await?;
        api.drain_ready(&c).await?;
        r["blocked_keys"] = level.into();
        r["scheduled_heads_seen"] = scheduled.into();
        r["waiting_behind_seen"] = waiting.into();
        progress.say(format_args!(
            "W7: {level} blocked keys: claim of {BATCH} median {:.2} ms",
            r["median_ms"].as_f64().unwrap_or(0.0)
        ));
        blocked.push(r);
    }

    crate::api::reset_outbox(admin).await?;
    let mut depth = Vec::new();
    let mut filled = 0;
    for &level in budget.depths {
        api.fill_keyless(&c, &body, level - filled).await?;
        filled = level;
        crate::drain::settle(admin).await?;
        let mut r = time_claims(&api, &c, &body, budget.claims).await?;
        r["ready_depth"] = level.into();
        progress.say(format_args!(
            "W7: {level} ready: claim of {BATCH} median {:.2} ms",
            r["median_ms"].as_f64().unwrap_or(0.0)
        ));
        depth.push(r);
    }
    crate::api::reset_outbox(admin).await?;
    Ok(json!({
        "batch": BATCH,
        "followers_per_blocked_key": FOLLOWERS,
        "ready_behind_blocked": READY_BEHIND_BLOCKED,
        "claims_per_level": budget.claims,
        "blocked_keys": blocked,
        "depth": depth,
    }))
}

/// Add keys `from..to`: a head each, then [`FOLLOWERS`] rounds of one
/// message per key behind it; then claim every new head and fail it with a
/// retry [`FAR`] away.
async fn block_keys(api: &Api, c: &Client, body: &Value, from: usize, to: usize) -> Result<()> {
    if to <= from {
        return Ok(());
    }
    let keys: Vec<String> = (from..to).map(|i| format!("blocked-{i}")).collect();
    for _ in 0..=FOLLOWERS {
        api.fill_keyed(c, body, &keys).await?;
    }
    // Nothing but the new heads is claimable now: the ready messages of the
    // last level were drained, older heads are not due, followers wait.
    let (mut held, mut empty) = (0, 0);
    while held < keys.len() as i64 && empty < 3 {
        let claimed = api.claim(c, "bench-blocker", 10_000).await?;
        if claimed.ids.is_empty() {
            empty += 1;
            continue;
        }
        empty = 0;
        held += api.fail_all(c, &claimed, FAR).await?;
    }
    ensure!(
        held == keys.len() as i64,
        "meant to block {} keys' heads, blocked {held}",
        keys.len()
    );
    Ok(())
}

/// (scheduled, blocked) from `outbox.stats()`: the blocked heads, and the
/// ready messages waiting behind them.
async fn held_back(admin: &Client) -> Result<(i64, i64)> {
    let r = admin
        .query_one(
            "SELECT coalesce(sum(scheduled), 0)::bigint, coalesce(sum(blocked), 0)::bigint \
             FROM outbox.stats()",
            &[],
        )
        .await?;
    Ok((r.get(0), r.get(1)))
}

/// `n` timed claims of [`BATCH`]; each batch completed and replaced by as
/// many new messages, untimed.
async fn time_claims(api: &Api, c: &Client, body: &Value, n: usize) -> Result<Value> {
    let mut ms = Vec::with_capacity(n);
    let mut rows = 0usize;
    for _ in 0..n {
        let t = Instant::now();
        let claimed: Claimed = api.claim(c, "bench-claim-cost", BATCH).await?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        rows += claimed.ids.len();
        api.complete(c, &claimed).await?;
        api.fill_keyless(c, body, claimed.ids.len()).await?;
    }
    ms.sort_by(f64::total_cmp);
    Ok(json!({
        "claims": n,
        "median_ms": median(&ms),
        "p90_ms": percentile(&ms, 0.9),
        "p99_ms": percentile(&ms, 0.99),
        "mean_rows_per_claim": rows as f64 / n.max(1) as f64,
    }))
}

/// The report's W7 section.
pub fn markdown(w7: &Value) -> String {
    let mut s = String::from("\n## W7 claim cost against blocked keys and backlog depth\n\n");
    let _ = writeln!(
        s,
        "One session times `outbox.claim(owner, {})` {} times per level (each batch then \
         completed and replaced, untimed). Blocked keys: each key's head is retrying a day \
         from now with {} messages waiting behind it, all older than {} ready messages. \
         Depth: keyless ready messages only.\n",
        w7["batch"],
        w7["claims_per_level"],
        w7["followers_per_blocked_key"],
        w7["ready_behind_blocked"]
    );
    s += "| level | median ms | p90 ms | p99 ms | rows per claim | heads seen scheduled / waiting behind |\n|---|---:|---:|---:|---:|---:|\n";
    let row = |s: &mut String, label: String, r: &Value, extra: String| {
        let _ = writeln!(
            s,
            "| {label} | {:.2} | {:.2} | {:.2} | {:.1} | {extra} |",
            r["median_ms"].as_f64().unwrap_or(0.0),
            r["p90_ms"].as_f64().unwrap_or(0.0),
            r["p99_ms"].as_f64().unwrap_or(0.0),
            r["mean_rows_per_claim"].as_f64().unwrap_or(0.0),
        );
    };
    for r in w7["blocked_keys"].as_array().into_iter().flatten() {
        let extra = format!(
            "{} / {}",
            r["scheduled_heads_seen"], r["waiting_behind_seen"]
        );
        row(
            &mut s,
            format!("{} blocked keys", r["blocked_keys"]),
            r,
            extra,
        );
    }
    for r in w7["depth"].as_array().into_iter().flatten() {
        row(
            &mut s,
            format!("{} ready", r["ready_depth"]),
            r,
            "–".to_owned(),
        );
    }
    s
}

/// Median claim time at the last level over the first, of one series
/// (`"blocked_keys"` or `"depth"`): 1.0 is flat.
pub fn growth(w7: &Value, series: &str) -> Option<f64> {
    let levels = w7[series].as_array()?;
    let first = levels.first()?["median_ms"].as_f64()?;
    let last = levels.last()?["median_ms"].as_f64()?;
    (levels.len() > 1 && first > 0.0).then(|| last / first)
}
