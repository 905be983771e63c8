//! SQL injection through every text argument of every function: strings
//! that would break out of a quoted literal, a dollar quote, an identifier
//! or a format() specifier if anything pasted them into SQL. Each call must
//! either fail with its documented error or store and return the string
//! exactly; afterwards the outbox's tables (and a canary table) are intact.
//! The argument list is read from the catalog, so a new text argument
//! without a case here fails the test.

use crate::common::*;
use outbox_tests::{describe_error, quote_ident, TestDb};
use serde_json::{json, Value};

/// No NUL: PostgreSQL text cannot hold one (the client refuses to send it).
pub(crate) const NASTY: &[&str] = &[
    "x'); DROP TABLE outbox.messages; --",
    "'; DELETE FROM outbox.dead_letters; --",
    "$$; DROP TABLE public.canary; $$",
    "$q$ DROP TABLE public.canary $q$",
    "\"; DROP TABLE outbox.messages; --",
    "\\'; DROP TABLE public.canary; --",
    "back\\slash \\\\ \\x27 \\u0000",
    "%s %I %L %1$s %%",
    "' OR '1'='1",
    "--",
    "/* unterminated comment",
    ");",
    "NULL",
    "a.b-c_d",
    "ünï©ødé \u{202e}desrever\u{202c} zero\u{200d}width 🧨 e\u{301}",
    "\u{feff}bom\u{2028}line\u{2029}para\t\r\n",
];

/// Every (function, argument) of a text-like type that the tests below feed.
const COVERED: &[(&str, &str)] = &[
    ("enqueue", "topic"),
    ("enqueue", "payload"),
    ("enqueue", "key"),
    ("enqueue", "headers"),
    ("enqueue", "dedup_key"),
    ("enqueue_batch", "topic"),
    ("enqueue_batch", "payloads"),
    ("enqueue_batch", "keys"),
    ("enqueue_batch", "headers"),
    ("enqueue_batch", "dedup_keys"),
    ("claim", "owner"),
    ("claim", "topics"),
    // claim()'s body (sql/claim.sql): claim passes its arguments on as they
    // are, so the claim tests feed it too.
    ("_claim", "owner"),
    ("_claim", "topics"),
    ("fail", "error"),
    ("list_dead", "topic"),
    ("list_messages", "topic"),
    ("list_messages", "state"),
    ("list_messages", "key"),
    ("list_messages", "tenant_id"),
    ("list_messages", "correlation_id"),
    // list_messages passes them on as they are; its tests feed them.
    ("_listing", "topic"),
    ("_listing", "state"),
    ("_listing", "key"),
    ("_listing", "tenant_id"),
    ("_listing", "correlation_id"),
    ("_check_state", "state"),
    ("requeue_dead_topic", "topic"),
    ("purge_dead_topic", "topic"),
    ("grant_producer", "role"),
    ("grant_relay", "role"),
    ("grant_admin", "role"),
    ("revoke_all", "role"),
    ("_grant_functions", "role"),
    ("_grant_functions", "names"),
    // Named outboxes: injection_outboxes.rs feeds these.
    ("grant_producer", "outbox"),
    ("grant_relay", "outbox"),
    ("grant_admin", "outbox"),
    ("revoke_all", "outbox"),
    ("_grant_functions", "outbox"),
    ("create_outbox", "name"),
    ("drop_outbox", "name"),
    ("_check_outbox_name", "name"),
    ("_outbox_schema", "outbox"),
    ("_clone_functions", "target"),
    ("_in_outbox", "sql"),
    ("_in_outbox", "target"),
];

const INVALID: &str = "22023";

#[tokio::test]
async fn every_text_argument_is_covered_by_the_injection_tests() {
    let db = TestDb::new().await;
    let su = db.client().await;
    let args = rows(
        &su,
        "SELECT p.proname::text, coalesce(p.proargnames[a.n], '$' || a.n), format_type(a.typ, NULL)
         FROM pg_proc AS p, unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(typ, n)
         WHERE p.pronamespace = 'outbox'::regnamespace
           AND a.typ IN ('text'::regtype, 'text[]'::regtype, 'jsonb'::regtype, 'jsonb[]'::regtype,
                         'regrole'::regtype, 'varchar'::regtype, 'name'::regtype, 'json'::regtype,
                         'regclass'::regtype, 'regproc'::regtype, 'regprocedure'::regtype)
         ORDER BY 1, a.n",
        &[],
    )
    .await;
    let missing: Vec<String> = args
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2),
            )
        })
        .filter(|(f, a, _)| !COVERED.contains(&(f.as_str(), a.as_str())))
        .map(|(f, a, t)| {
            format!("text argument outbox.{f}({a} {t}) is not covered by the injection tests")
        })
        .collect();
    assert!(missing.is_empty(), "\n{}", missing.join("\n"));
}

/// Either the documented invalid-input error, or Ok.
fn ok_or_invalid<T>(what: &str, r: Result<T, outbox_tests::tokio_postgres::Error>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) if sqlstate(&e) == INVALID => None,
        Err(e) => panic!("{what}: {}", describe_error(&e)),
    }
}

#[tokio::test]
async fn producer_arguments_are_stored_exactly_or_rejected() {
    let db = TestDb::new().await;
    let su = db.client().await;
    make_canary(&su).await;
    let roles = Roles::create(&db).await;
    let p = db.client_as(roles.name(Role::Producer)).await;
    let mut stored = 0;
    for s in NASTY {
        // topic: only [A-Za-z0-9._-] is valid, so most of these are 22023.
        if let Some(row) = ok_or_invalid(
            &format!("enqueue(topic => {s:?})"),
            p.query_one("SELECT outbox.enqueue($1, '{}')", &[s]).await,
        ) {
            stored += 1;
            let id: i64 = row.get(0);
            let topic: String = one(
                &su,
                "SELECT topic FROM outbox.messages WHERE id = $1",
                &[&id],
            )
            .await
            .get(0);
            assert_eq!(topic, *s, "topic stored as given");
        }
        // Payloads are data: stored as given. Keys and headers are data too,
        // but brokers carry them in their own headers, so control characters
        // and non-token header names are refused (22023); whatever is
        // accepted is stored byte for byte.
        let payload = json!({ "v": *s, *s: [*s] });
        let id: i64 = one(&p, "SELECT outbox.enqueue('orders', $1)", &[&payload])
            .await
            .get(0);
        stored += 1;
        let v: Value = one(
            &su,
            "SELECT payload FROM outbox.messages WHERE id = $1",
            &[&id],
        )
        .await
        .get(0);
        assert_eq!(v, payload, "payload");
        let headers_cases = [json!({ "plain": *s }), json!({ *s: "v" })];
        let mut accepted_headers = Vec::new();
        for headers in headers_cases {
            let what = format!("enqueue(headers => {headers})");
            let sql = "SELECT outbox.enqueue('orders', '{}', headers => $1)";
            if let Some(row) = ok_or_invalid(&what, p.query_one(sql, &[&headers]).await) {
                stored += 1;
                let id: i64 = row.get(0);
                let got: Value = one(
                    &su,
                    "SELECT headers FROM outbox.messages WHERE id = $1",
                    &[&id],
                )
                .await
                .get(0);
                assert_eq!(got, headers, "headers stored as given");
                accepted_headers.push(headers);
            }
        }
        let what = format!("enqueue(key => {s:?})");
        let sql = "SELECT outbox.enqueue('orders', $1, key => $2)";
        let key_ok = match ok_or_invalid(&what, p.query_one(sql, &[&json!(*s), s]).await) {
            Some(row) => {
                stored += 1;
                let id: i64 = row.get(0);
                let r = one(
                    &su,
                    "SELECT key, payload FROM outbox.messages WHERE id = $1",
                    &[&id],
                )
                .await;
                assert_eq!(r.get::<_, String>(0), *s, "key");
                assert_eq!(r.get::<_, Value>(1), json!(*s), "a JSON string payload");
                true
            }
            None => false,
        };

        // enqueue_batch: the same through the array arguments.
        if key_ok {
            let payloads = vec![payload.clone(), json!(*s)];
            let keys = vec![*s, *s];
            let headers = accepted_headers.first().cloned().unwrap_or(json!({}));
            let hs = vec![headers.clone(), headers.clone()];
            let ids: Vec<i64> = one(
                &p,
                "SELECT outbox.enqueue_batch('orders', $1, keys => $2, headers => $3)",
                &[&payloads, &keys, &hs],
            )
            .await
            .get(0);
            stored += 2;
            let got = rows(
                &su,
                "SELECT key, headers, payload FROM outbox.messages WHERE id = ANY ($1) ORDER BY id",
                &[&ids],
            )
            .await;
            for (r, want) in got.iter().zip(&payloads) {
                assert_eq!(
                    (r.get::<_, String>(0), r.get::<_, Value>(1)),
                    (s.to_string(), headers.clone())
                );
                assert_eq!(&r.get::<_, Value>(2), want);
            }
        }
        if ok_or_invalid(
            &format!("enqueue_batch(topic => {s:?})"),
            p.query_one(
                "SELECT outbox.enqueue_batch($1, ARRAY['{}']::jsonb[])",
                &[s],
            )
            .await,
        )
        .is_some()
        {
            stored += 1;
        }
        assert_tables_intact(&su, stored, 0).await;
    }
}

/// Dedup keys never reach a broker, so every one of the strings is a valid
/// key: each is stored exactly, a second enqueue with it (and a batch
/// naming it) answers with the first id, and nothing else changes.
#[tokio::test]
async fn dedup_keys_are_stored_exactly_and_match_only_themselves() {
    let db = TestDb::new().await;
    let su = db.client().await;
    make_canary(&su).await;
    let roles = Roles::create(&db).await;
    let p = db.client_as(roles.name(Role::Producer)).await;
    let sql = "SELECT outbox.enqueue('orders', '{}', dedup_key => $1)";
    let mut ids = Vec::new();
    for s in NASTY {
        let id: i64 = one(&p, sql, &[s]).await.get(0);
        assert_eq!(one(&p, sql, &[s]).await.get::<_, i64>(0), id, "{s:?} again");
        let stored: String = one(
            &su,
            "SELECT dedup_key FROM outbox.dedup WHERE id = $1",
            &[&id],
        )
        .await
        .get(0);
        assert_eq!(stored, *s, "dedup_key stored as given");
        ids.push(id);
    }
    let all: Vec<i64> = one(
        &p,
        "SELECT outbox.enqueue_batch('orders', array_fill('{}'::jsonb, ARRAY[cardinality($1::text[])]), \
         dedup_keys => $1)",
        &[&NASTY.to_vec()],
    )
    .await
    .get(0);
    assert_eq!(
        all, ids,
        "a batch of the same keys answers with the same ids"
    );
    assert_tables_intact(&su, NASTY.len() as i64, 0).await;
}

#[tokio::test]
async fn relay_and_admin_arguments_are_stored_exactly_or_rejected() {
    let db = TestDb::new().await;
    let su = db.client().await;
    make_canary(&su).await;
    let roles = Roles::create(&db).await;
    let r = db.client_as(roles.name(Role::Relay)).await;
    let a = db.client_as(roles.name(Role::Admin)).await;
    // One dead letter, on a topic none of the strings names.
    let dead = enqueue_n(&su, "orders", 1).await[0];
    let l = claim(&su, "setup", 1).await[0];
    one(
        &su,
        "SELECT state FROM outbox.fail($1, $2, 'x', permanent => true)",
        &[&l.id, &l.token],
    )
    .await;
    let id: i64 = one(
        &su,
        "SELECT outbox.enqueue('orders', '{}', max_attempts => 1000)",
        &[],
    )
    .await
    .get(0);
    for s in NASTY {
        // owner: any non-blank name is fine and stored as given.
        let got = rows(&r, "SELECT id, lease_token FROM outbox.claim($1, 1)", &[s]).await;
        assert_eq!(got.len(), 1, "claim({s:?})");
        let token: uuid::Uuid = got[0].get(1);
        let owner: String = one(
            &su,
            "SELECT lease_owner FROM outbox.messages WHERE id = $1",
            &[&id],
        )
        .await
        .get(0);
        assert_eq!(owner, *s, "lease_owner");
        // error: stored as given (none of these looks like a credential).
        let state: String = one(
            &r,
            "SELECT state FROM outbox.fail($1, $2, $3, retry_in => '0')",
            &[&id, &token, s],
        )
        .await
        .get(0);
        assert_eq!(state, "retrying");
        let err: String = one(
            &su,
            "SELECT last_error FROM outbox.messages WHERE id = $1",
            &[&id],
        )
        .await
        .get(0);
        assert_eq!(err, *s, "last_error");
        // topics: a valid topic that matches nothing claims nothing.
        let topics = vec![*s];
        if let Some(got) = ok_or_invalid(
            &format!("claim(topics => {s:?})"),
            r.query(
                "SELECT id FROM outbox.claim('relay', 1, topics => $1)",
                &[&topics],
            )
            .await,
        ) {
            assert!(
                got.is_empty(),
                "claim(topics => [{s:?}]) claimed {}",
                got.len()
            );
        }
        // Dead-letter filters: no such topic, nothing listed or changed.
        assert!(
            rows(&a, "SELECT * FROM outbox.list_dead($1)", &[s])
                .await
                .is_empty(),
            "list_dead({s:?})"
        );
        // list_messages' text filters: no such topic, key, tenant or
        // correlation id lists nothing; a state that is not one is 22023.
        for filter in ["topic", "key", "tenant_id", "correlation_id"] {
            let sql = format!("SELECT * FROM outbox.list_messages({filter} => $1)");
            assert!(
                rows(&a, &sql, &[s]).await.is_empty(),
                "list_messages({filter} => {s:?})"
            );
        }
        assert!(
            ok_or_invalid(
                &format!("list_messages(state => {s:?})"),
                a.query("SELECT * FROM outbox.list_messages(state => $1)", &[s])
                    .await,
            )
            .is_none(),
            "list_messages(state => {s:?}) is not a state"
        );
        let n: i32 = one(&a, "SELECT outbox.requeue_dead_topic($1)", &[s])
            .await
            .get(0);
        assert_eq!(n, 0, "requeue_dead_topic({s:?})");
        let n: i32 = one(&a, "SELECT outbox.purge_dead_topic($1)", &[s])
            .await
            .get(0);
        assert_eq!(n, 0, "purge_dead_topic({s:?})");
        assert_tables_intact(&su, 1, 1).await;
    }
    let d: i64 = one(&su, "SELECT id FROM outbox.dead_letters", &[])
        .await
        .get(0);
    assert_eq!(d, dead);
}

/// Role names are identifiers: the grant functions quote them (regrole's
/// output), so a role called `x"; DROP TABLE ...` is just a role.
#[tokio::test]
async fn grant_functions_quote_hostile_role_names() {
    let db = TestDb::new().await;
    let su = db.client().await;
    make_canary(&su).await;
    for suffix in [
        r#"x"; DROP TABLE outbox.messages; --"#,
        "a'b$$c\\d %s",
        "Ünï \"q\" \u{202e}",
    ] {
        let role = db.create_role(suffix).await;
        for g in ["grant_producer", "grant_relay", "grant_admin"] {
            grant(&su, g, &role).await;
        }
        let c = db.client_as(&role).await;
        let id: i64 = one(&c, "SELECT outbox.enqueue('orders', '{}')", &[])
            .await
            .get(0);
        assert!(id > 0);
        assert_eq!(claim(&c, "r", 1).await.len(), 1, "{role:?} can claim");
        drop(c);
        grant(&su, "revoke_all", &role).await;
        let c = db.client_as(&role).await;
        expect_code(&c, "SELECT outbox.enqueue('orders', '{}')", DENIED).await;
        // The internal helper, as the owner, with hostile function names:
        // they match no function, so only schema USAGE is granted.
        for s in NASTY {
            su.execute(
                "SELECT outbox._grant_functions($1::text::regrole, ARRAY[$2::text, 'claim'' OR true --'])",
                &[&quote_ident(&role), s],
            )
            .await
            .unwrap_or_else(|e| panic!("_grant_functions({s:?}): {}", describe_error(&e)));
        }
        let any: bool = one(
            &su,
            "SELECT bool_or(has_function_privilege($1, p.oid, 'EXECUTE')) FROM pg_proc AS p
             WHERE p.pronamespace = 'outbox'::regnamespace",
            &[&role],
        )
        .await
        .get(0);
        assert!(!any, "{role:?} got EXECUTE from hostile names");
        exec(
            &su,
            &format!("REVOKE USAGE ON SCHEMA outbox FROM {}", quote_ident(&role)),
        )
        .await;
    }
    let n: i64 = one(&su, "SELECT count(*) FROM outbox.messages", &[])
        .await
        .get(0);
    assert_eq!(n, 3);
    assert_tables_intact(&su, n, 0).await;
}
