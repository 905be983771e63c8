//! The rotation part of the shadowing scenario (shadowing.rs runs it on its
//! own database, after poisoning the caller's session): `outbox.rotate()` and the
//! internal `outbox._rotate()` behind it (which every claim also runs),
//! called by the poisoned session through every branch — report, switch,
//! and truncate — and checked from an unpoisoned superuser session.
//!
//! The switch waits for `outbox.rotation_interval` (1 minute, superuser
//! only); rather than wait, the superuser ages the current segment's
//! `since`, which is all the interval is compared with. Truncation needs
//! every transaction below the seal to have ended and every partition to
//! have opened a window after that, so the walk keeps producing one message
//! per partition and draining them until the sealed segment is emptied.

use crate::common::*;
use outbox_tests::tokio_postgres::Client;
use outbox_tests::wait_until;
use serde_json::json;
use std::cell::RefCell;
use std::time::Duration;

/// An upper bound on waiting for something that must happen.
const MUST_HAPPEN: Duration = Duration::from_secs(30);

/// Partitions of a fresh install (`outbox.partitions` rows).
const PARTITIONS: usize = 16;

/// (seg, state, messages) as `outbox.rotate()` reports it, called by `a`.
async fn rotate(a: &Client) -> Vec<(i16, String, i64)> {
    rows(a, "SELECT seg, state, messages FROM outbox.rotate()", &[])
        .await
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// The same, as the superuser reads the tables.
async fn segments(su: &Client) -> Vec<(i16, String, i64)> {
    rows(
        su,
        "SELECT g.seg, g.state, (SELECT count(*) FROM outbox.log AS l WHERE l.seg = g.seg)
         FROM outbox.segments AS g ORDER BY g.seg",
        &[],
    )
    .await
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// Claim and complete everything claimable as `a`; the ids it got.
async fn drain(a: &Client) -> Vec<i64> {
    let mut got = Vec::new();
    loop {
        let batch = claim(a, "relay-a", 100).await;
        let Some(first) = batch.first() else {
            return got;
        };
        let ids: Vec<i64> = batch.iter().map(|l| l.id).collect();
        let n: i32 = one(
            a,
            "SELECT outbox.complete_batch($1, $2)",
            &[&ids, &first.token],
        )
        .await
        .get(0);
        assert_eq!(n as usize, ids.len(), "complete_batch of a fresh batch");
        got.extend(ids);
    }
}

pub(crate) async fn rotation(su: &Client, a: &Client) {
    // Whatever was there before (ready messages, dead letters) stays.
    let messages_before: i64 = one(su, "SELECT count(*) FROM outbox.messages", &[])
        .await
        .get(0);
    let dead_before: i64 = one(su, "SELECT count(*) FROM outbox.dead_letters", &[])
        .await
        .get(0);

    // Report: nothing is due, so nothing changes (the first call may
    // create the bookkeeping rows, as a first claim does).
    let before = rotate(a).await;
    assert_eq!(before, segments(su).await, "rotate() reports the segments");
    assert_eq!(
        before.iter().map(|s| s.1.as_str()).collect::<Vec<_>>(),
        ["current", "empty", "empty"],
        "a fresh install writes segment 0"
    );
    assert_eq!(rotate(a).await, before, "rotate() again: nothing was due");

    // Switch: segment 0 is older than the interval.
    exec(
        su,
        "UPDATE outbox.segments SET since = since - interval '1 day' WHERE state = 'current'",
    )
    .await;
    let switched = rotate(a).await;
    assert_eq!(
        switched
            .iter()
            .map(|s| (s.0, s.1.as_str()))
            .collect::<Vec<_>>(),
        [(0, "sealed"), (1, "current"), (2, "empty")],
        "rotate() switched to segment 1"
    );
    assert_eq!(switched, segments(su).await, "rotate() reports the switch");
    let sealed: bool = one(
        su,
        "SELECT sealed_xid IS NOT NULL FROM outbox.segments WHERE seg = 0",
        &[],
    )
    .await
    .get(0);
    assert!(sealed, "the switch sealed segment 0");
    // What producers read: the segment table says 1, so must the sequence.
    let current: i64 = one(su, "SELECT last_value % 3 FROM outbox.log_segment", &[])
        .await
        .get(0);
    assert_eq!(current, 1, "the switch moved producers to segment 1");
    let id: i64 = one(a, "SELECT outbox.enqueue('orders', '{}')", &[])
        .await
        .get(0);
    let lands: bool = one(
        su,
        "SELECT tableoid = 'outbox.log_1'::regclass FROM outbox.log WHERE id = $1",
        &[&id],
    )
    .await
    .get(0);
    assert!(
        lands,
        "a message enqueued after the switch is in outbox.log_1"
    );

    // Truncate: once nothing in segment 0 can still be handed out.
    let produced = RefCell::new(vec![id]);
    let delivered = RefCell::new(Vec::new());
    let payloads: Vec<serde_json::Value> = (0..PARTITIONS).map(|n| json!({ "n": n })).collect();
    wait_until(MUST_HAPPEN, || async {
        let got = drain(a).await;
        delivered.borrow_mut().extend(got);
        if rotate(a).await.first().map(|s| s.1.as_str()) == Some("empty") {
            return true;
        }
        // One message per partition (keyless: partition = id % 16), so
        // every partition opens another window.
        let ids: Vec<i64> = one(
            a,
            "SELECT outbox.enqueue_batch('rotation', $1)",
            &[&payloads],
        )
        .await
        .get(0);
        produced.borrow_mut().extend(ids);
        false
    })
    .await;
    let r = one(
        su,
        "SELECT (SELECT count(*) FROM outbox.log_0) = 0
                AND (SELECT state = 'empty' AND sealed_xid IS NULL FROM outbox.segments WHERE seg = 0)",
        &[],
    )
    .await;
    assert!(r.get::<_, bool>(0), "rotate() truncated segment 0");
    assert_eq!(segments(su).await, rotate(a).await, "rotate() reports it");

    // Nothing was lost: every message produced here was delivered, and so
    // was every message that was waiting before; the dead letters stay.
    let mut produced = produced.into_inner();
    let mut delivered = delivered.into_inner();
    produced.sort_unstable();
    delivered.sort_unstable();
    assert!(
        produced
            .iter()
            .all(|id| delivered.binary_search(id).is_ok()),
        "every message enqueued during the rotation was delivered"
    );
    assert_eq!(
        delivered.len() as i64,
        produced.len() as i64 + messages_before,
        "the messages waiting before were delivered too, once each"
    );
    let r = one(
        su,
        "SELECT (SELECT count(*) FROM outbox.messages) = 0
                AND (SELECT count(*) FROM outbox.dead_letters) = $1",
        &[&dead_before],
    )
    .await;
    assert!(
        r.get::<_, bool>(0),
        "no message left behind, no dead letter made"
    );

    // set_partitions, with the log empty: shrink and grow back; a keyed
    // message afterwards lands in the new range and is delivered.
    for (n, before) in [(4, PARTITIONS as i32), (PARTITIONS as i32, 4)] {
        let old: i32 = one(a, "SELECT outbox.set_partitions($1)", &[&n])
            .await
            .get(0);
        assert_eq!(old, before, "set_partitions({n}) returns the old count");
        let parts: i64 = one(
            su,
            "SELECT count(*) FROM outbox.partitions WHERE part < $1",
            &[&(n as i16)],
        )
        .await
        .get(0);
        assert_eq!(parts, i64::from(n), "set_partitions({n}): rows 0..{n}");
        let id: i64 = one(a, "SELECT outbox.enqueue('orders', '{}', key => 'k')", &[])
            .await
            .get(0);
        let part: i16 = one(su, "SELECT part FROM outbox.log WHERE id = $1", &[&id])
            .await
            .get(0);
        assert!(
            i32::from(part) < n,
            "a message after set_partitions({n}) is in part {part}"
        );
        assert_eq!(drain(a).await, vec![id], "and is delivered");
    }
}
