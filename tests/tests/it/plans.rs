//! What the planner is told about the log. claim() plans its statements
//! once per session and keeps the plans (claim.sql), so a log segment that
//! VACUUM counted as empty would still be planned as empty after it filled:
//! a seq scan or the wrong index, claims at 40 to 70 ms instead of 2 ms
//! (rotation.sql has the measurement). The next rotation makes such a
//! segment uncounted again, and gives the partitions table statistics for
//! the rows it creates; a segment holding messages is left as it is.

use crate::common::*;
use outbox_tests::tokio_postgres::Client;
use outbox_tests::TestDb;
use serde_json::json;

/// (reltuples, relpages) of each log segment, in segment order.
async fn counted(c: &Client) -> Vec<(f32, i32)> {
    c.query(
        "SELECT c.reltuples, c.relpages FROM pg_class AS c \
         WHERE c.oid IN ('outbox.log_0'::regclass, 'outbox.log_1'::regclass, 'outbox.log_2'::regclass) \
         ORDER BY c.relname",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test]
async fn a_segment_vacuumed_while_empty_is_uncounted_again_by_the_next_claim() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute("VACUUM outbox.log_0, outbox.log_1, outbox.log_2, outbox.partitions")
        .await
        .unwrap();
    assert_eq!(
        counted(&c).await,
        vec![(0.0, 0); 3],
        "VACUUM counts them empty"
    );

    // The first claim rotates before it plans anything.
    assert!(claim(&c, "relay", 10).await.is_empty());
    assert_eq!(counted(&c).await, vec![(-1.0, 0); 3], "uncounted again");
    let parts: f32 = c
        .query_one(
            "SELECT c.reltuples FROM pg_class AS c WHERE c.oid = 'outbox.partitions'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let rows: i64 = c
        .query_one("SELECT count(*) FROM outbox.partitions", &[])
        .await
        .unwrap()
        .get(0);
    assert!(rows > 0);
    assert_eq!(parts, rows as f32, "the partition rows are counted");

    // A segment with a message in it is counted by VACUUM and kept: the
    // next session's claim (rotation runs once a second per session)
    // delivers the message from it.
    let id = enqueue(&c, "orders", json!({"n": 1})).await;
    c.batch_execute("VACUUM outbox.log_0, outbox.log_1, outbox.log_2")
        .await
        .unwrap();
    let before = counted(&c).await;
    assert!(before
        .iter()
        .any(|&(tuples, pages)| tuples >= 1.0 && pages >= 1));
    let other = db.client().await;
    let got = claim(&other, "relay", 10).await;
    assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), vec![id]);
    let after = counted(&c).await;
    for (b, a) in before.iter().zip(&after) {
        if b.0 >= 1.0 {
            assert_eq!(a, b, "the segment with the message is left as it was");
        } else {
            assert_eq!(*a, (-1.0, 0), "the empty ones are uncounted again");
        }
    }
}
