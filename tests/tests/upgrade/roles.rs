//! Roles granted under 0.1.0 (`grant_producer`, `grant_relay`,
//! `grant_admin`) keep their jobs across the upgrade. Both tests need 0.2.0
//! (or later) installed.

use outbox_tests::tokio_postgres::error::SqlState;
use outbox_tests::tokio_postgres::Client;
use outbox_tests::{describe_error, TestDb};

use crate::calls::{drain, labels};
use crate::{db_at_version, expect_ok, seed, upgrade, upgrade_target, FIRST_RELEASE};

const PRIVILEGES_SQL: &str = include_str!("privileges.sql");

/// The three roles of 0.1.0 and the function that grants each.
const JOBS: [(&str, &str); 3] = [
    ("producer", "grant_producer"),
    ("relay", "grant_relay"),
    ("admin", "grant_admin"),
];

/// Makes a login role `<db>_<suffix>` and grants it `job` with the
/// installed version's grant function.
async fn role_with_job(db: &TestDb, c: &Client, suffix: &str, grant: &str) -> String {
    let role = db.create_role(suffix).await;
    expect_ok(
        c.execute(
            &format!("SELECT outbox.{grant}($1::text::regrole)"),
            &[&role],
        )
        .await,
        &format!("outbox.{grant}({role})"),
    );
    role
}

/// What `role` may do with the extension's objects, one line a privilege.
async fn privileges(c: &Client, role: &str) -> Vec<String> {
    let rows = expect_ok(c.query(PRIVILEGES_SQL, &[&role]).await, "privileges.sql");
    rows.iter().map(|r| r.get(0)).collect()
}

#[track_caller]
fn assert_denied<T: std::fmt::Debug>(
    result: Result<T, outbox_tests::tokio_postgres::Error>,
    what: &str,
) {
    match result {
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {}
        Err(e) => panic!(
            "{what}: expected permission denied (42501), got {}",
            describe_error(&e)
        ),
        Ok(v) => panic!("{what}: expected permission denied (42501), but it worked: {v:?}"),
    }
}

/// A producer granted under 0.1.0 enqueues into the new log and still
/// cannot read or claim; a relay granted under 0.1.0 claims and completes
/// that message (and the 0.1.0 ones) and still cannot enqueue; an admin
/// still lists dead letters and reads the side table.
#[tokio::test]
async fn roles_granted_under_0_1_0_still_do_their_jobs_after_the_upgrade() {
    let (db, c) = db_at_version(FIRST_RELEASE).await;
    let target = upgrade_target(&c).await;
    seed::fill(&c).await;
    let producer = role_with_job(&db, &c, "p", "grant_producer").await;
    let relay = role_with_job(&db, &c, "r", "grant_relay").await;
    let admin = role_with_job(&db, &c, "a", "grant_admin").await;
    let side = seed::oid_of(&c, "outbox.messages").await;
    upgrade(&c, &target).await;

    let p = db.client_as(&producer).await;
    let id = crate::calls::enqueue(&p, "orders", "from-old-producer", None).await;
    let side = seed::name_of(&c, side, "outbox.messages").await;
    let in_side_table: bool = expect_ok(
        c.query_one(
            &format!("SELECT EXISTS (SELECT FROM {side} WHERE id = $1)"),
            &[&id],
        )
        .await,
        "looking in the side table",
    )
    .get(0);
    assert!(
        !in_side_table,
        "message {id}, enqueued after the upgrade, went to the side table {side}, not the log"
    );
    let log: Option<String> = expect_ok(
        c.query_one("SELECT to_regclass('outbox.log')::text", &[])
            .await,
        "to_regclass",
    )
    .get(0);
    assert!(
        log.is_some(),
        "there is no outbox.log after the upgrade to {target} (docs/storage.md names the log \
         outbox.log, segments outbox.log_0 .. log_2): update this test if the log moved"
    );
    let in_log: bool = expect_ok(
        c.query_one(
            "SELECT EXISTS (SELECT FROM outbox.log WHERE id = $1)",
            &[&id],
        )
        .await,
        "looking in outbox.log",
    )
    .get(0);
    assert!(
        in_log,
        "message {id} enqueued by the 0.1.0 producer is not in outbox.log"
    );
    assert_denied(
        p.query("SELECT * FROM outbox.claim('p', 1)", &[]).await,
        "the producer claiming",
    );
    assert_denied(
        p.query("SELECT * FROM outbox.messages", &[]).await,
        "the producer reading outbox.messages",
    );

    let r = db.client_as(&relay).await;
    let delivered = drain(&r, "relay-role").await;
    assert!(
        labels(&delivered).iter().any(|l| l == "from-old-producer"),
        "the 0.1.0 relay role did not get the 0.1.0 producer role's message: {delivered:?}"
    );
    assert!(
        labels(&delivered).iter().any(|l| l == "ready-keyless"),
        "the 0.1.0 relay role did not get the 0.1.0 messages: {delivered:?}"
    );
    assert_denied(
        r.query("SELECT outbox.enqueue('orders', '{}')", &[]).await,
        "the relay enqueueing",
    );

    let a = db.client_as(&admin).await;
    let dead: i64 = expect_ok(
        a.query_one("SELECT count(*) FROM outbox.list_dead()", &[])
            .await,
        "the admin listing dead letters",
    )
    .get(0);
    assert!(
        dead >= 3,
        "the admin sees {dead} dead letters, expected the 3 seeded"
    );
    expect_ok(
        a.query("SELECT count(*) FROM outbox.messages", &[]).await,
        "the admin reading outbox.messages",
    );
}

/// A role granted a job under 0.1.0 has, after the upgrade, exactly the
/// privileges a role granted the same job under the new version has: new
/// functions a relay needs, or new tables an admin may read, are granted
/// by the upgrade script to the roles that already had the job (or the
/// upgrade notes must tell users to re-run the grant: then change this test
/// and docs/upgrading.md together).
#[tokio::test]
async fn roles_granted_under_0_1_0_have_what_a_grant_under_the_new_version_gives() {
    compare_grants(FIRST_RELEASE).await;
}

/// Per job, a role granted under `from` and upgraded has exactly the
/// privileges of a role granted under the installed version.
pub async fn compare_grants(from: &str) {
    let (db, c) = db_at_version(from).await;
    let target = crate::default_version(&c).await;
    assert_ne!(target, from, "nothing to upgrade {from} to");
    let mut old_roles = Vec::new();
    for (job, grant) in JOBS {
        old_roles.push(role_with_job(&db, &c, &format!("{job}_old"), grant).await);
    }
    upgrade(&c, &target).await;
    let mut problems = String::new();
    for ((job, grant), old) in JOBS.iter().zip(&old_roles) {
        let new = role_with_job(&db, &c, &format!("{job}_new"), grant).await;
        let had = privileges(&c, old).await;
        let fresh = privileges(&c, &new).await;
        assert!(!fresh.is_empty(), "{grant} under {target} granted nothing");
        problems.push_str(&crate::diff::unified(
            &format!("{job} granted under {target}"),
            &fresh,
            &format!("{job} granted under {from}, then upgraded"),
            &had,
        ));
    }
    assert!(problems.is_empty(), "{problems}");
}
