//! What every security test needs: the four kinds of caller, and small
//! helpers over the SQL API that say which statement failed and why.

use outbox_tests::tokio_postgres::types::ToSql;
use outbox_tests::tokio_postgres::{Client, Error, Row};
use outbox_tests::{describe_error, quote_ident, TestDb};
use uuid::Uuid;

/// SQLSTATE `insufficient_privilege`.
pub const DENIED: &str = "42501";

/// The callers the matrix distinguishes. `Public` is what a login role
/// with no grants gets; `UsageOnly` is such a role after someone granted it
/// `USAGE` on the schema by hand, so the function and table ACLs are tested
/// on their own and not only behind the schema's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Public,
    UsageOnly,
    Producer,
    Relay,
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Public,
        Role::UsageOnly,
        Role::Producer,
        Role::Relay,
        Role::Admin,
    ];

    /// The bit this role has in an expectation mask.
    pub const fn bit(self) -> u8 {
        match self {
            Role::Public => 1,
            Role::UsageOnly => 2,
            Role::Producer => 4,
            Role::Relay => 8,
            Role::Admin => 16,
        }
    }
}

/// Expectation masks: who may.
pub const NOBODY: u8 = 0;
pub const P: u8 = Role::Producer.bit();
pub const R: u8 = Role::Relay.bit();
pub const A: u8 = Role::Admin.bit();

/// One login role per [`Role`], made the way an operator would.
pub struct Roles {
    names: [(Role, String); 5],
}

impl Roles {
    pub async fn create(db: &TestDb) -> Roles {
        let su = db.client().await;
        let public = db.create_role("nobody").await;
        let usage = db.create_role("usage").await;
        let producer = db.create_role("producer").await;
        let relay = db.create_role("relay").await;
        let admin = db.create_role("admin").await;
        exec(
            &su,
            &format!("GRANT USAGE ON SCHEMA outbox TO {}", quote_ident(&usage)),
        )
        .await;
        grant(&su, "grant_producer", &producer).await;
        grant(&su, "grant_relay", &relay).await;
        grant(&su, "grant_admin", &admin).await;
        Roles {
            names: [
                (Role::Public, public),
                (Role::UsageOnly, usage),
                (Role::Producer, producer),
                (Role::Relay, relay),
                (Role::Admin, admin),
            ],
        }
    }

    pub fn name(&self, role: Role) -> &str {
        &self
            .names
            .iter()
            .find(|(r, _)| *r == role)
            .expect("every role is created")
            .1
    }
}

/// `SELECT outbox.<grant>(role)` as the extension owner.
pub async fn grant(su: &Client, grant: &str, role: &str) {
    // regrole's input is an identifier: quote it.
    let sql = format!("SELECT outbox.{grant}($1::text::regrole)");
    if let Err(e) = su.execute(&sql, &[&quote_ident(role)]).await {
        panic!("{sql} ({role}): {}", describe_error(&e));
    }
}

/// The SQLSTATE of a failed call ("none" for a non-server error).
pub fn sqlstate(e: &Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_owned())
        .unwrap_or_else(|| format!("none ({e})"))
}

pub async fn exec(c: &Client, sql: &str) {
    if let Err(e) = c.batch_execute(sql).await {
        panic!("{sql}\n-> {}", describe_error(&e));
    }
}

pub async fn rows(c: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Vec<Row> {
    c.query(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{sql}\n-> {}", describe_error(&e)))
}

pub async fn one(c: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Row {
    c.query_one(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{sql}\n-> {}", describe_error(&e)))
}

/// Runs `sql` and expects it to fail with `code`.
pub async fn expect_code(c: &Client, sql: &str, code: &str) {
    match c.batch_execute(sql).await {
        Ok(()) => panic!("{sql}: succeeded, expected SQLSTATE {code}"),
        Err(e) => assert_eq!(sqlstate(&e), code, "{sql}: {}", describe_error(&e)),
    }
}

/// One claimed message: what finishing it needs.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    pub id: i64,
    pub token: Uuid,
}

/// Enqueue `n` messages on `topic` as the superuser; returns their ids.
pub async fn enqueue_n(su: &Client, topic: &str, n: usize) -> Vec<i64> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let payload = serde_json::json!({ "n": i });
        ids.push(
            one(su, "SELECT outbox.enqueue($1, $2)", &[&topic, &payload])
                .await
                .get(0),
        );
    }
    ids
}

/// Claim up to `n` messages (any topic) for `owner`.
pub async fn claim(c: &Client, owner: &str, n: i32) -> Vec<Lease> {
    rows(
        c,
        "SELECT id, lease_token FROM outbox.claim($1, $2)",
        &[&owner, &n],
    )
    .await
    .iter()
    .map(|r| Lease {
        id: r.get(0),
        token: r.get(1),
    })
    .collect()
}

/// The outbox's tables still exist, with `messages` and `dead_letters`
/// rows as counted.
pub async fn assert_tables_intact(su: &Client, messages: i64, dead: i64) {
    let r = one(
        su,
        "SELECT to_regclass('outbox.messages') IS NOT NULL AND to_regclass('outbox.dead_letters') IS NOT NULL
                AND to_regclass('outbox.doorbell_gate') IS NOT NULL AND to_regclass('public.canary') IS NOT NULL,
                (SELECT count(*) FROM outbox.messages), (SELECT count(*) FROM outbox.dead_letters),
                (SELECT count(*) FROM public.canary)",
        &[],
    )
    .await;
    assert!(r.get::<_, bool>(0), "a table was dropped");
    assert_eq!(r.get::<_, i64>(1), messages, "outbox.messages row count");
    assert_eq!(r.get::<_, i64>(2), dead, "outbox.dead_letters row count");
    assert_eq!(r.get::<_, i64>(3), 1, "public.canary row count");
}

/// A table that an injected `DROP`/`DELETE` would also hit.
pub async fn make_canary(su: &Client) {
    exec(
        su,
        "CREATE TABLE public.canary (x int); INSERT INTO public.canary VALUES (1);",
    )
    .await;
}
