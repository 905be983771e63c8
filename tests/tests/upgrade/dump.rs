//! A 0.1.0 backup (`pg_dump`) restored where a later version is installed.
//!
//! The dump says `CREATE EXTENSION IF NOT EXISTS outbox`, with no version,
//! so a plain restore creates the *default* version and then loads 0.1.0's
//! rows into it. That fails when the new version moved 0.1.0's tables
//! (0.2.0: `COPY outbox.messages` meets a view). The way that works, and that
//! docs/upgrading.md gives: create the extension at the dump's version
//! (edit that one line), restore, then `ALTER EXTENSION outbox UPDATE`.

use outbox_tests::tokio_postgres::Client;
use outbox_tests::{Cluster, TestDb, SUPERUSER};

use crate::calls::{drain, enqueue, labels};
use crate::{expect_ok, seed, upgrade, upgrade_target, FIRST_RELEASE};

/// The `CREATE EXTENSION` line of a plain-format pg_dump of an outbox
/// database.
const DUMPED_CREATE: &str = "CREATE EXTENSION IF NOT EXISTS outbox WITH SCHEMA outbox;";

/// `pg_dump --format=plain` of `db`, as the cluster's own pg_dump.
async fn pg_dump(db: &TestDb) -> String {
    let cluster = db.cluster();
    let mut cmd = std::process::Command::new(cluster.pg_bin().join("pg_dump"));
    cmd.arg("--host")
        .arg(cluster.socket_dir())
        .arg("--port")
        .arg(cluster.port().to_string())
        .args([
            "--username",
            outbox_tests::SUPERUSER,
            "--format=plain",
            "--dbname",
        ])
        .arg(db.name());
    let shown = format!("{cmd:?}");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap_or_else(|e| panic!("pg_dump task: {e}"))
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("pg_dump wrote non-UTF-8: {e}"))
}

/// Needs 0.2.0 (or later) installed. A dump of a 0.1.0 outbox with messages
/// in every state, restored with the extension created at 0.1.0 and then
/// updated, has every message and dead letter as dumped, and new ids above
/// theirs.
#[tokio::test]
async fn a_0_1_0_dump_restores_at_0_1_0_and_then_updates() {
    let (old_db, old) = crate::db_at_version(FIRST_RELEASE).await;
    let target = upgrade_target(&old).await;
    seed::fill(&old).await;
    let messages = seed::messages(&old, "outbox.messages").await;
    let dead = seed::dead_letters(&old).await;
    let dump = pg_dump(&old_db).await;
    assert!(
        dump.contains(DUMPED_CREATE),
        "the dump has no line {DUMPED_CREATE:?}: pg_dump's output changed, update this test and \
         docs/upgrading.md"
    );
    let pinned = dump.replace(
        DUMPED_CREATE,
        &format!(
            "CREATE EXTENSION IF NOT EXISTS outbox WITH SCHEMA outbox VERSION '{FIRST_RELEASE}';"
        ),
    );

    let new_db = TestDb::plain().await;
    let restored = new_db.psql(&pinned).await;
    assert!(
        restored.status.success(),
        "restoring the 0.1.0 dump with CREATE EXTENSION ... VERSION '{FIRST_RELEASE}' failed \
         ({}):\n{}",
        restored.status,
        String::from_utf8_lossy(&restored.stderr)
    );
    let c = new_db.client().await;
    let side = seed::oid_of(&c, "outbox.messages").await;
    upgrade(&c, &target).await;

    let side_now = seed::name_of(&c, side, "outbox.messages").await;
    let mut problems =
        seed::differences("message", &messages, &seed::messages(&c, &side_now).await);
    problems.extend(seed::differences(
        "dead letter",
        &dead,
        &seed::dead_letters(&c).await,
    ));
    assert!(
        problems.is_empty(),
        "restored from the 0.1.0 dump and updated to {target}:\n{}",
        problems.join("\n")
    );
    let highest = messages.keys().chain(dead.keys()).max().copied();
    let id: i64 = expect_ok(
        c.query_one("SELECT outbox.enqueue('orders', '{}')", &[])
            .await,
        "enqueue after restore and update",
    )
    .get(0);
    assert!(
        Some(id) > highest,
        "after restore and update a new message got id {id}, not above the dumped {highest:?}"
    );
}

/// Commits `n` transactions that each take an xid, moving the cluster's
/// transaction counter on.
async fn burn_xids(c: &Client, n: u32) {
    expect_ok(
        c.batch_execute(&format!(
            "DO $$ BEGIN FOR i IN 1..{n} LOOP PERFORM pg_catalog.pg_current_xact_id(); COMMIT; \
             END LOOP; END $$"
        ))
        .await,
        "burning transaction ids",
    );
}

async fn current_xid(c: &Client) -> i64 {
    expect_ok(
        c.query_one("SELECT pg_catalog.pg_current_xact_id()::text::bigint", &[])
            .await,
        "pg_current_xact_id",
    )
    .get(0)
}

/// A 0.1.0 outbox in every state, upgraded, that has run for a while: its
/// transaction counter moved on `burn` xids, 5 messages enqueued and
/// delivered through the log, and then 20 enqueued (keyed and keyless) and
/// not yet claimed. Returns the 20 labels.
async fn running_outbox(c: &Client, burn: u32) -> Vec<String> {
    let target = upgrade_target(c).await;
    seed::fill(c).await;
    upgrade(c, &target).await;
    burn_xids(c, burn).await;
    for i in 0..5 {
        enqueue(c, "orders", &format!("early-{i}"), None).await;
    }
    drain(c, "relay-before-dump").await;
    let mut waiting = Vec::new();
    for i in 0..20 {
        let label = format!("waiting-{i:02}");
        let key = ["k-a", "k-b"].get(i % 3).copied();
        enqueue(c, "payments", &label, key).await;
        waiting.push(label);
    }
    waiting
}

/// The labels of `waiting` that `delivered` lacks.
fn missing(waiting: &[String], delivered: &[String]) -> Vec<String> {
    waiting
        .iter()
        .filter(|l| !delivered.contains(l))
        .cloned()
        .collect()
}

/// Needs 0.2.0 (or later) installed. A plain `pg_dump` of an upgraded,
/// running outbox restores into a new database of the same cluster without
/// errors, and a relay there gets every message that was waiting.
#[tokio::test]
async fn a_dump_of_the_new_version_restores_and_delivers_every_waiting_message() {
    let (old_db, old) = crate::db_at_version(FIRST_RELEASE).await;
    let waiting = running_outbox(&old, 0).await;
    let dump = pg_dump(&old_db).await;

    let new_db = TestDb::plain().await;
    let restored = new_db.psql(&dump).await;
    assert!(
        restored.status.success(),
        "restoring a plain pg_dump of the new version failed ({}):\n{}\n(a table registered \
         with pg_extension_config_dump(table, '') is dumped whole and COPYed in after CREATE \
         EXTENSION: rows the install script inserts itself collide with their dumped copies. \
         Register such tables with a condition that leaves those rows out, or do not insert \
         them in the install script)",
        restored.status,
        String::from_utf8_lossy(&restored.stderr)
    );
    let c = new_db.client().await;
    let delivered = labels(&drain(&c, "relay-after-restore").await);
    let lost = missing(&waiting, &delivered);
    assert!(
        lost.is_empty(),
        "after the restore a relay did not get {lost:?} (delivered: {delivered:?})"
    );
}

/// Needs 0.2.0 (or later) installed. The same dump restored into another
/// cluster, one whose transaction counter is behind the source's (a new
/// server, a move to another host), delivers every waiting message, and
/// every message enqueued there after the restore: at once, or at the
/// latest once the new cluster's counter has passed the source's.
#[tokio::test]
#[ignore = "known limitation of 0.2.0 (docs/upgrading.md, docs/storage.md): the log's xids and the windows' snapshots belong to the source cluster; run with --ignored to see it"]
async fn a_dump_restored_into_another_cluster_delivers_every_message() {
    let (old_db, old) = crate::db_at_version(FIRST_RELEASE).await;
    // Far ahead of a new cluster's counter (about 750 after initdb).
    let waiting = running_outbox(&old, 3000).await;
    let source_xid = current_xid(&old).await;
    let dump = pg_dump(&old_db).await;

    let other = Cluster::private();
    let admin = other.connect("postgres", SUPERUSER).await;
    expect_ok(
        admin.batch_execute("CREATE DATABASE restored").await,
        "CREATE DATABASE restored",
    );
    let target_xid = current_xid(&admin).await;
    let restored = tokio::task::spawn_blocking(move || other.psql("restored", &dump))
        .await
        .unwrap_or_else(|e| panic!("psql task: {e}"));
    assert!(
        restored.status.success(),
        "restoring the dump into another cluster failed ({}):\n{}",
        restored.status,
        String::from_utf8_lossy(&restored.stderr)
    );
    let c = other.connect("restored", SUPERUSER).await;
    // Enqueued in the new cluster, with its (lower) transaction ids.
    let mut waiting = waiting;
    for i in 0..5 {
        let label = format!("after-restore-{i}");
        enqueue(&c, "payments", &label, None).await;
        waiting.push(label);
    }
    let at_once = labels(&drain(&c, "relay-after-restore").await);
    let gap = u32::try_from(source_xid - current_xid(&c).await + 100).unwrap_or(100);
    burn_xids(&c, gap).await;
    let later = labels(&drain(&c, "relay-after-restore").await);
    let delivered: Vec<String> = at_once.iter().chain(&later).cloned().collect();
    let lost = missing(&waiting, &delivered);
    assert!(
        lost.is_empty(),
        "restored into a cluster at xid {target_xid} (the source was at {source_xid}), a relay \
         never got {} of the {} messages (waiting in the dump, or enqueued after the restore): {lost:?}; delivered at once: {at_once:?}, after \
         the new cluster's counter passed the source's: {later:?}. The log's xid8 column and the \
         partitions' snapshots are the source cluster's transaction ids: in another cluster they \
         compare against an unrelated counter, so a window can close over rows whose xids it \
         cannot see yet, and the cursor moves past them; and messages enqueued there get xids \
         below the restored snapshots' xmin, so they look consumed already",
        lost.len(),
        waiting.len()
    );
}
