//! The `outbox.*` settings are part of the attack surface too: a setting any
//! role may change must only change that role's own defaults. The ones that
//! would move every caller's clock or lift a limit are superuser-only, and
//! stay so even when set as a placeholder before the library is loaded (a
//! fresh session does not load outbox.so until its first C function call).

use crate::common::*;
use outbox_tests::tokio_postgres::NoTls;
use outbox_tests::{describe_error, TestDb};

/// Every setting and who may change it (pg_settings.context).
const SETTINGS: &[(&str, &str)] = &[
    // Per-call defaults; every call can also pass its own value.
    ("outbox.max_attempts", "user"),
    ("outbox.retry_base", "user"),
    ("outbox.retry_cap", "user"),
    ("outbox.retry_jitter", "user"),
    ("outbox.default_lease", "user"),
    ("outbox.dedup_window", "user"),
    // Limits, the clock and the log's storage: superusers only.
    ("outbox.max_payload_bytes", "superuser"),
    ("outbox.test_clock_offset", "superuser"),
    // Every claim in the cluster rotates by it: a role setting it to 1 s in
    // its own session would make its claims truncate segments for everyone.
    ("outbox.rotation_interval", "superuser"),
    // A relay recording history and a cleaner removing it must read one
    // value: set per database (ALTER DATABASE ... SET), not per session.
    ("outbox.retention", "superuser"),
];

#[tokio::test]
async fn every_outbox_setting_is_in_the_matrix_with_its_context() {
    let db = TestDb::new().await;
    let su = db.client().await;
    exec(&su, "LOAD 'outbox'").await;
    let got: Vec<(String, String)> = rows(
        &su,
        "SELECT name, context FROM pg_settings WHERE name LIKE 'outbox.%' ORDER BY 1",
        &[],
    )
    .await
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    let mut problems = Vec::new();
    for (name, context) in &got {
        match SETTINGS.iter().find(|(n, _)| n == name) {
            None => problems.push(format!(
                "new setting {name} ({context}): add it to the security matrix (SETTINGS)"
            )),
            Some((_, want)) if want != context => {
                problems.push(format!("{name} is {context}, expected {want}"))
            }
            Some(_) => {}
        }
    }
    for (name, _) in SETTINGS {
        if !got.iter().any(|(n, _)| n == name) {
            problems.push(format!("{name} is in the matrix but not in pg_settings"));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The clock the outbox stores for a message, relative to the real one.
async fn created_within_a_minute(su: &outbox_tests::tokio_postgres::Client, id: i64) -> bool {
    one(
        su,
        "SELECT created_at BETWEEN now() - interval '1 minute' AND now() + interval '1 minute'
         FROM outbox.messages WHERE id = $1",
        &[&id],
    )
    .await
    .get(0)
}

#[tokio::test]
async fn no_role_but_a_superuser_can_move_the_clock_lift_the_payload_limit_or_change_rotation() {
    let db = TestDb::new().await;
    let roles = Roles::create(&db).await;
    for (role, load) in [
        (Role::Producer, "SELECT outbox.enqueue('orders', '{}')"),
        (Role::Relay, "SELECT outbox.doorbell_disarm()"),
        (Role::Admin, "SELECT outbox.doorbell_disarm()"),
    ] {
        // Only superusers may LOAD; a C function of the extension loads it.
        let c = db.client_as(roles.name(role)).await;
        exec(&c, load).await;
        for sql in [
            "SET outbox.test_clock_offset = '1d'",
            "SET outbox.max_payload_bytes = '1GB'",
            "SET outbox.rotation_interval = '1s'",
            "SELECT set_config('outbox.test_clock_offset', '86400000', false)",
            "SELECT set_config('outbox.rotation_interval', '1000', false)",
        ] {
            expect_code(&c, sql, DENIED).await;
        }
    }
}

#[tokio::test]
async fn a_placeholder_set_before_the_library_loads_does_not_move_the_clock() {
    let db = TestDb::new().await;
    let su = db.client().await;
    let roles = Roles::create(&db).await;
    let producer = roles.name(Role::Producer);

    // SET before any outbox C function ran in this session: PostgreSQL keeps
    // it as a placeholder and checks it when the library defines the setting.
    let c = db.client_as(producer).await;
    exec(
        &c,
        "SET outbox.test_clock_offset = '86400000'; SET outbox.rotation_interval = '1000'",
    )
    .await;
    let id: i64 = one(&c, "SELECT outbox.enqueue('orders', '{}')", &[])
        .await
        .get(0);
    assert!(
        created_within_a_minute(&su, id).await,
        "a producer's placeholder moved the outbox clock"
    );
    let now: String = one(
        &c,
        "SELECT current_setting('outbox.test_clock_offset')",
        &[],
    )
    .await
    .get(0);
    assert_eq!(
        now, "0",
        "the placeholder was dropped when the library loaded"
    );
    let every: String = one(
        &c,
        "SELECT current_setting('outbox.rotation_interval')",
        &[],
    )
    .await
    .get(0);
    assert_eq!(
        every, "1min",
        "the rotation placeholder was dropped when the library loaded"
    );

    // The same through the startup packet (PGOPTIONS).
    let mut config = db.config(producer);
    config.options("-c outbox.test_clock_offset=86400000");
    match config.connect(NoTls).await {
        // Refused at connect: fine too.
        Err(e) => assert_eq!(sqlstate(&e), DENIED, "{}", describe_error(&e)),
        Ok((c, conn)) => {
            tokio::spawn(conn);
            let id: i64 = one(&c, "SELECT outbox.enqueue('orders', '{}')", &[])
                .await
                .get(0);
            assert!(
                created_within_a_minute(&su, id).await,
                "a startup option moved the outbox clock"
            );
        }
    }
}
