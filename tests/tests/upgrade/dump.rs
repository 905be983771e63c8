//! A 0.1.0 backup (`pg_dump`) restored where a later version is installed.
//!
//! The dump says `CREATE EXTENSION IF NOT EXISTS outbox`, with no version,
//! so a plain restore creates the *default* version and then loads 0.1.0's
//! rows into it. That fails when the new version moved 0.1.0's tables
//! (0.2.0: `COPY outbox.messages` meets a view). The way that works, and that
//! docs/upgrading.md gives: create the extension at the dump's version
//! (edit that one line), restore, then `ALTER EXTENSION outbox UPDATE`.

use outbox_tests::TestDb;

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
