//! W8: named outboxes (issue #12, item 4). Two services, each with a busy
//! outbox of its own, against one busy outbox carrying the same total load:
//! the same producers (or relays) either all on the default outbox, or
//! split half and half between it and the named outbox `b2`.
//!
//! - Enqueue: [`MID_CLIENTS`] producers, closed loop, all on `outbox` /
//!   half on `outbox`, half on `outbox_b2` / all on `outbox_b2` (a named
//!   outbox's calls against the default's: the C functions find their
//!   outbox from the called function's schema on every call).
//! - Drain: one relay with 2 workers emptying a backlog in the default
//!   outbox, against two relays with 1 worker each, one per outbox, emptying
//!   half the backlog each: the same messages and the same workers.
//!
//! What the two share is the message id sequence and the server; the rest
//! (log, partitions, doorbell gate, rotation) is per outbox, so the split
//! should cost nothing beyond that.

use crate::drain::{relays, settle};
use crate::load::{closed_loop_mixed, connect};
use crate::ops::{payload, Payload, Producer, System, Write, NAMED_OUTBOX};
use crate::results::{Measurement, Results};
use crate::workloads::Run;
use crate::MID_CLIENTS;
use anyhow::{Context, Result};
use std::sync::Arc;

/// (batch size, workers in all) of the drain comparison.
pub const DRAIN: (i32, usize) = (100, 2);

/// The producer splits, by op name: who writes where.
const SPLITS: [(&str, &[(System, Write)]); 3] = [
    ("one_outbox", &[(System::Outbox, Write::Single)]),
    (
        "two_outboxes",
        &[
            (System::Outbox, Write::Single),
            (System::Outbox, Write::Named),
        ],
    ),
    ("named_only", &[(System::Outbox, Write::Named)]),
];

pub async fn run(
    Run {
        db,
        admin,
        plan,
        progress,
    }: Run<'_>,
    results: &mut Results,
) -> Result<()> {
    let named: bool = admin
        .query_one(
            "SELECT to_regprocedure('outbox.create_outbox(text)') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    if !named {
        progress.say("W8: skipped, this version of the extension has no named outboxes");
        return Ok(());
    }
    admin
        .execute("SELECT outbox.create_outbox($1)", &[&NAMED_OUTBOX])
        .await
        .context("creating the named outbox")?;
    let mut producers = Vec::new();
    for _ in 0..MID_CLIENTS {
        let client = connect(db).await?;
        producers.push(Arc::new(
            Producer::with_writes(client, &[System::Outbox], &[Write::Named]).await?,
        ));
    }
    let payload = Arc::new(Payload::new());
    for round in 1..=plan.rounds {
        let mut line = format!("W8 round {round}/{}: enqueue x{MID_CLIENTS}:", plan.rounds);
        for (op, writes) in SPLITS {
            crate::footprint::empty_outbox(admin, &[]).await?;
            admin.batch_execute("CHECKPOINT").await?;
            let t = closed_loop_mixed(admin, &producers, writes, &payload, plan.run).await?;
            line += &format!(" {op} {:.0}", t.rows_per_sec());
            results.push(Measurement::new(
                "W8",
                System::Outbox,
                op,
                MID_CLIENTS,
                1,
                round,
                t.rows_per_sec(),
                t.wal_per_row(),
            ));
        }
        progress.say(line + " msg/s");
    }
    drop(producers);
    crate::footprint::empty_outbox(admin, &[]).await?;

    let (batch, workers) = DRAIN;
    let slice = plan.drain_slice as u64;
    // Warm-up, not reported. Without it the first drain after the enqueue
    // runs above (and their TRUNCATEs), one relay with two workers on the
    // default outbox, ran at 11-13k/s instead of 160k/s in two runs out of
    // two; after this warm-up (two relays, one worker each: 178k/s) it did
    // not recur. Cause not found (docs/bench/README.md, 2026-12-04).
    for outbox in [None, Some(NAMED_OUTBOX)] {
        fill(admin, outbox, 30_000).await?;
    }
    settle(admin).await?;
    let ((secs, rows), _) = relays(db, &[None, Some(NAMED_OUTBOX)], batch, 1, 40_000).await?;
    progress.say(format_args!(
        "W8 drain warm-up (not reported): {:.0} msg/s",
        rows as f64 / secs
    ));
    crate::footprint::empty_outbox(admin, &[]).await?;
    for round in 1..=plan.rounds {
        let mut line = format!(
            "W8 round {round}/{}: drain batch {batch} x{workers}:",
            plan.rounds
        );
        for (op, outboxes) in [
            ("drain_one_outbox", &[None][..]),
            ("drain_two_outboxes", &[None, Some(NAMED_OUTBOX)][..]),
        ] {
            // The same backlog in all, split evenly, with a margin each so
            // that batches in flight at the end never empty one.
            let each = slice / outboxes.len() as u64 + 10_000;
            for outbox in outboxes {
                fill(admin, *outbox, each).await?;
            }
            settle(admin).await?;
            let per_relay = workers / outboxes.len();
            let ((secs, rows), _) = relays(db, outboxes, batch, per_relay, slice)
                .await
                .with_context(|| format!("W8 {op}"))?;
            line += &format!(" {op} {:.0}", rows as f64 / secs);
            results.push(Measurement::new(
                "W8",
                System::Outbox,
                op,
                workers,
                batch as usize,
                round,
                rows as f64 / secs,
                0.0,
            ));
            crate::footprint::empty_outbox(admin, &[]).await?;
        }
        progress.say(line + " msg/s");
    }
    admin
        .execute(
            "SELECT outbox.drop_outbox($1, force => true)",
            &[&NAMED_OUTBOX],
        )
        .await?;
    Ok(())
}

/// `n` messages into the outbox `outbox` (`None`: the default), unmeasured.
async fn fill(admin: &tokio_postgres::Client, outbox: Option<&str>, n: u64) -> Result<()> {
    let schema = outbox.map_or("outbox".to_owned(), |o| format!("outbox_{o}"));
    let sql = format!(
        "SELECT cardinality({schema}.enqueue_batch('bench', array_fill($1::jsonb, ARRAY[$2::int])))"
    );
    let stmt = admin.prepare(&sql).await?;
    let p = payload();
    admin.batch_execute("SET synchronous_commit = off").await?;
    let mut left = n;
    while left > 0 {
        let chunk = left.min(10_000) as i32;
        admin.query_one(&stmt, &[&p, &chunk]).await?;
        left -= chunk as u64;
    }
    admin.batch_execute("RESET synchronous_commit").await?;
    Ok(())
}
