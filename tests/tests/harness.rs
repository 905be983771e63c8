//! Smoke tests of the harness itself, on plain databases (they need no
//! installed extension).

use std::time::Duration;

use outbox_tests::{wait_for, wait_until, Cluster, TestDb};

/// Create a table, insert, read back — in a fresh plain database.
async fn roundtrip(tag: &str) {
    let db = TestDb::plain().await;
    assert!(!db.has_extension());
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE items (id int PRIMARY KEY, tag text NOT NULL)")
        .await
        .unwrap();
    for id in 1..=3 {
        client
            .execute("INSERT INTO items VALUES ($1, $2)", &[&id, &tag])
            .await
            .unwrap();
    }
    let rows = client
        .query("SELECT id, tag FROM items ORDER BY id", &[])
        .await
        .unwrap();
    let got: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        vec![
            (1, tag.to_owned()),
            (2, tag.to_owned()),
            (3, tag.to_owned())
        ]
    );
    let current: String = client
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(current, db.name());
    // A plain database has no outbox schema.
    let has_schema: bool = client
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'outbox')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!has_schema);
}

#[tokio::test]
async fn plain_db_roundtrip_a() {
    roundtrip("a").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_db_roundtrip_b() {
    roundtrip("b").await;
}

#[tokio::test]
async fn test_dbs_have_distinct_names() {
    let (a, b) = tokio::join!(TestDb::plain(), TestDb::plain());
    assert_ne!(a.name(), b.name());
    assert!(a.name().starts_with("t_"), "{}", a.name());
    assert!(a.connstr().contains(&format!("dbname={}", a.name())));
    assert!(b.url().ends_with(&format!("/{}", b.name())));
    // A table in one is not visible in the other.
    a.client()
        .await
        .batch_execute("CREATE TABLE only_in_a (x int)")
        .await
        .unwrap();
    let seen: bool = b
        .client()
        .await
        .query_one("SELECT to_regclass('only_in_a') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!seen);
}

#[test]
fn psql_runs_against_the_shared_cluster() {
    let cluster = Cluster::shared();
    let out = cluster.psql("postgres", "SELECT 40 + 2 AS answer;");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("42"));

    // ON_ERROR_STOP: the failing statement ends the script with an error.
    let out = cluster.psql("postgres", "SELECT 1/0;\nSELECT 'not reached';");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("division by zero"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("not reached"));

    let version = cluster.psql_ok(
        "postgres",
        "\\pset tuples_only on\nSHOW server_version_num;",
    );
    assert!(version.trim().starts_with("15"), "{version}");
    assert!(cluster.log_path().exists());
}

#[tokio::test]
async fn psql_sees_the_test_database() {
    let db = TestDb::plain().await;
    db.client()
        .await
        .batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (7)")
        .await
        .unwrap();
    let out = db.psql("\\pset tuples_only on\nSELECT x FROM t;").await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "7");
}

#[tokio::test]
async fn tcp_url_connects() {
    let db = TestDb::plain().await;
    let (client, connection) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one("SELECT current_database(), inet_server_addr()::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), db.name());
    assert_eq!(row.get::<_, String>(1), "127.0.0.1/32");
}

#[tokio::test]
async fn client_as_connects_as_another_role() {
    let db = TestDb::plain().await;
    let role = db.create_role("reader").await;
    let client = db.client_as(&role).await;
    let (user, is_super): (String, String) = {
        let row = client
            .query_one(
                "SELECT current_user::text, current_setting('is_superuser')",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(user, role);
    assert_eq!(is_super, "off");
    let err = client
        .batch_execute("CREATE TABLE public.x (id int)")
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
        "{}",
        outbox_tests::describe_error(&err)
    );
}

#[tokio::test]
async fn wait_until_sees_a_change_made_concurrently() {
    let db = TestDb::plain().await;
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE events (id int)")
        .await
        .unwrap();
    let writer = db.client().await;
    let insert = tokio::spawn(async move {
        for id in 0..5 {
            writer
                .execute("INSERT INTO events VALUES ($1)", &[&id])
                .await
                .unwrap();
        }
    });
    wait_until(Duration::from_secs(10), || async {
        let row = client
            .query_one("SELECT count(*) FROM events", &[])
            .await
            .unwrap();
        row.get::<_, i64>(0) == 5
    })
    .await;
    let max: i32 = wait_for(Duration::from_secs(10), || async {
        client
            .query_one("SELECT max(id) FROM events", &[])
            .await
            .unwrap()
            .get::<_, Option<i32>>(0)
    })
    .await;
    assert_eq!(max, 4);
    insert.await.unwrap();
}

#[tokio::test]
#[should_panic(expected = "did not hold within")]
async fn wait_until_panics_on_timeout() {
    wait_until(Duration::from_millis(100), || async { false }).await;
}
