//! The extension's objects as canonical text (`catalog.sql`), and the test
//! that an upgraded install has exactly a fresh install's objects.

use outbox_tests::tokio_postgres::Client;

use crate::{db_at_version, db_fresh, expect_ok, seed, upgrade, upgrade_target, FIRST_RELEASE};

/// One fact per line; see the header of `catalog.sql` for what is compared
/// and what is left out.
const DUMP_SQL: &str = include_str!("catalog.sql");

/// The catalog dump of the outbox extension in the database `c` is
/// connected to, sorted.
pub async fn dump(c: &Client) -> Vec<String> {
    let rows = expect_ok(
        c.query(DUMP_SQL, &[]).await,
        "the catalog dump (catalog.sql)",
    );
    let lines: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert!(
        !lines.is_empty(),
        "the catalog dump is empty: is the outbox extension created in this database?"
    );
    lines
}

/// Panics with a unified diff unless the two dumps are equal.
#[track_caller]
pub fn assert_same(old_name: &str, old: &[String], new_name: &str, new: &[String]) {
    let diff = crate::diff::unified(old_name, old, new_name, new);
    assert!(
        diff.is_empty(),
        "the extension's objects differ ({} lines vs {}):\n{diff}",
        old.len(),
        new.len()
    );
}

/// The dump is deterministic (no OIDs, no values that differ between two
/// identical installs) and covers the objects it claims to: two fresh
/// installs of the frozen first release print the same lines, and those
/// include the tables' columns, constraints, indexes, the trigger, the
/// functions' definitions and privileges, and the config-dump registrations.
#[tokio::test]
async fn catalog_dump_of_two_installs_of_one_script_is_identical() {
    let (_a, a) = db_at_version(FIRST_RELEASE).await;
    let (_b, b) = db_at_version(FIRST_RELEASE).await;
    // Rows in the tables must not show in the dump.
    seed::fill(&a).await;
    let first = dump(&a).await;
    let second = dump(&b).await;
    assert_same(
        "fresh 0.1.0 (with messages)",
        &first,
        "fresh 0.1.0",
        &second,
    );
    let expect = [
        "extension outbox: version 0.1.0, schema outbox, relocatable f",
        "extension config-dump: outbox.messages where ''",
        "extension config-dump: outbox.messages_id_seq where ''",
        "member: table outbox.messages",
        "relation outbox.messages: column 001 id bigint not null identity a",
        "relation outbox.messages: constraint lease_token_and_expiry_go_together CHECK",
        "relation outbox.messages: index CREATE INDEX messages_key_id ON outbox.messages USING btree (key, id) WHERE (key IS NOT NULL)",
        "relation outbox.messages: kind r, persistence p, owner postgres, options autovacuum_vacuum_scale_factor=0.02,autovacuum_vacuum_threshold=1000,fillfactor=80",
        "relation outbox.messages: trigger CREATE TRIGGER doorbell AFTER INSERT ON outbox.messages FOR EACH STATEMENT EXECUTE FUNCTION outbox._doorbell()",
        "relation outbox.messages_id_seq: sequence owned by outbox.messages.id (i)",
        "function outbox.claim(text,integer,interval,text[]): def ",
        "function outbox.claim(text,integer,interval,text[]): acl EXECUTE to postgres by postgres",
        "schema outbox: acl USAGE to postgres by postgres",
    ];
    let missing: Vec<&str> = expect
        .iter()
        .copied()
        .filter(|want| !first.iter().any(|line| line.starts_with(want)))
        .collect();
    assert!(
        missing.is_empty(),
        "the dump lacks lines starting with:\n{}\n--- dump ---\n{}",
        missing.join("\n"),
        first.join("\n")
    );
    assert!(
        !first.iter().any(|l| l.contains("to PUBLIC")),
        "0.1.0 grants PUBLIC nothing, yet the dump says it does:\n{}",
        first.join("\n")
    );
}

/// The mistakes an upgrade script makes most easily each change the dump:
/// a function created without the REVOKE from PUBLIC, a changed default, a
/// function that lost SECURITY DEFINER, an index only the upgrade creates, a
/// changed comment and reloption, an object left outside the extension.
#[tokio::test]
async fn catalog_dump_notices_what_an_upgrade_script_can_get_wrong() {
    let (_db, c) = db_at_version(FIRST_RELEASE).await;
    let before = dump(&c).await;
    expect_ok(
        c.batch_execute(
            "GRANT EXECUTE ON FUNCTION outbox.stats() TO PUBLIC;
             ALTER TABLE outbox.messages ALTER COLUMN attempt SET DEFAULT 1;
             ALTER TABLE outbox.messages SET (fillfactor = 90);
             ALTER FUNCTION outbox.complete(bigint, uuid) SECURITY INVOKER;
             CREATE INDEX messages_topic ON outbox.messages (topic);
             COMMENT ON TABLE outbox.dead_letters IS 'changed';
             CREATE TABLE outbox.stray (id int);",
        )
        .await,
        "breaking the 0.1.0 install on purpose",
    );
    let after = dump(&c).await;
    let diff = crate::diff::unified("before", &before, "after", &after);
    let expect = [
        "+function outbox.stats(): acl EXECUTE to PUBLIC by postgres",
        "+relation outbox.messages: column 008 attempt integer not null default 1",
        "fillfactor=90",
        "-function outbox.complete(bigint,uuid): def 00",
        "+relation outbox.messages: index CREATE INDEX messages_topic",
        "+relation outbox.dead_letters: kind r",
        "+not a member, in schema outbox: table outbox.stray",
    ];
    let missing: Vec<&str> = expect
        .iter()
        .copied()
        .filter(|want| !diff.contains(want))
        .collect();
    assert!(
        missing.is_empty(),
        "the diff lacks:\n{}\n--- diff ---\n{diff}",
        missing.join("\n")
    );
}

/// Needs 0.2.0 (or later) installed. 0.1.0 with messages in every state,
/// upgraded, has exactly the objects of `CREATE EXTENSION outbox` at the new
/// version: same tables, columns (in order), defaults, constraints, indexes,
/// triggers, sequences, functions (definition, SET search_path, SECURITY
/// DEFINER), privileges and pg_dump's initial privileges, comments, and
/// config-dump registrations.
#[tokio::test]
async fn upgraded_schema_equals_a_fresh_install() {
    let (_old, old) = db_at_version(FIRST_RELEASE).await;
    let target = upgrade_target(&old).await;
    seed::fill(&old).await;
    upgrade(&old, &target).await;
    let (_new, new) = db_fresh().await;
    let upgraded = dump(&old).await;
    let fresh = dump(&new).await;
    assert_same(
        &format!("fresh {target}"),
        &fresh,
        &format!("{FIRST_RELEASE} upgraded to {target}"),
        &upgraded,
    );
}
