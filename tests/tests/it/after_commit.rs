//! `AfterCommit` against a real server: hooks run after the commit, in
//! order, and see its rows; a rollback, a drop or a failed commit runs none;
//! a failing hook is reported and does not stop the others.

use outbox_client::{AfterCommit, CommitError, NewMessage, Store, Topic};
use outbox_tests::TestDb;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

fn event(n: i32) -> NewMessage {
    NewMessage::new(Topic::new("hooks.test").unwrap(), &n).unwrap()
}

async fn messages(c: &tokio_postgres::Client) -> i64 {
    c.query_one(
        "SELECT count(*) FROM outbox.messages WHERE topic = 'hooks.test'",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn hooks_run_in_order_after_the_commit_and_see_its_rows() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let observer = Arc::new(db.client().await);
    let seen: Arc<Mutex<Vec<(usize, i64)>>> = Arc::default();
    let mut tx = AfterCommit::new(c.transaction().await.unwrap());
    Store.enqueue(tx.transaction(), &event(1)).await.unwrap();
    for n in 0..2 {
        let (observer, seen) = (observer.clone(), seen.clone());
        tx.after_commit(move || async move {
            // Another session: it sees the message only once committed.
            let visible = messages(&observer).await;
            seen.lock().unwrap().push((n, visible));
            Ok(())
        });
    }
    assert_eq!(tx.pending(), 2);
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing runs before the commit"
    );
    tx.commit().await.unwrap();
    assert_eq!(*seen.lock().unwrap(), [(0, 1), (1, 1)]);
}

#[tokio::test]
async fn a_rollback_or_a_drop_runs_no_hook_and_keeps_no_message() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let ran = Arc::new(AtomicBool::new(false));
    for rollback in [true, false] {
        let mut tx = AfterCommit::new(c.transaction().await.unwrap());
        Store.enqueue(tx.transaction(), &event(2)).await.unwrap();
        let flag = ran.clone();
        tx.after_commit(move || async move {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
        if rollback {
            tx.rollback().await.unwrap();
        } else {
            drop(tx);
        }
    }
    assert!(
        !ran.load(Ordering::SeqCst),
        "no hook after a rollback or a drop"
    );
    assert_eq!(messages(&c).await, 0);
}

#[tokio::test]
async fn a_commit_the_server_refuses_runs_no_hook() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    c.batch_execute(
        "CREATE TABLE orders (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED); \
         INSERT INTO orders VALUES (1)",
    )
    .await
    .unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let mut tx = AfterCommit::new(c.transaction().await.unwrap());
    // Checked at COMMIT: the statement succeeds, the commit does not.
    tx.transaction()
        .execute("INSERT INTO orders VALUES (1)", &[])
        .await
        .unwrap();
    Store.enqueue(tx.transaction(), &event(3)).await.unwrap();
    let flag = ran.clone();
    tx.after_commit(move || async move {
        flag.store(true, Ordering::SeqCst);
        Ok(())
    });
    let e = tx.commit().await.unwrap_err();
    assert!(matches!(e, CommitError::Commit(_)), "{e:?}");
    assert!(e.to_string().contains("SQLSTATE 23505"), "{e}");
    assert!(!ran.load(Ordering::SeqCst), "the commit failed: no hook");
    assert_eq!(messages(&c).await, 0, "nor a message");
}

#[tokio::test]
async fn a_failing_hook_is_reported_and_the_rest_still_run() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let ran = Arc::new(AtomicBool::new(false));
    let mut tx = AfterCommit::new(c.transaction().await.unwrap());
    Store.enqueue(tx.transaction(), &event(4)).await.unwrap();
    tx.after_commit(|| async { Err("the cache is down".into()) });
    let flag = ran.clone();
    tx.after_commit(move || async move {
        flag.store(true, Ordering::SeqCst);
        Ok(())
    });
    match tx.commit().await {
        Err(CommitError::Hooks(failed)) => {
            assert_eq!(failed.len(), 1);
            assert_eq!(failed[0].0, 0);
            assert_eq!(failed[0].1.to_string(), "the cache is down");
        }
        other => panic!("expected the hook's error, got {other:?}"),
    }
    assert!(ran.load(Ordering::SeqCst), "the second hook ran anyway");
    assert_eq!(messages(&c).await, 1, "the transaction committed");
}
