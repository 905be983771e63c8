//! Every input a caller can get wrong: a specific SQLSTATE, a message that
//! says what to do, and the outbox unchanged.

use crate::common::*;
use outbox_tests::TestDb;
use serde_json::json;

const NULL_NOT_ALLOWED: &str = "22004";
const INVALID_PARAMETER: &str = "22023";
const LIMIT_EXCEEDED: &str = "54000";
const ARRAY_MISMATCH: &str = "2202E";
const UNKNOWN_ID: &str = "P0002";

#[tokio::test]
async fn bad_inputs_get_specific_errors_and_change_nothing() {
    let db = TestDb::new().await;
    let c = db.client().await;
    // Some state to protect: a ready message and a leased one (token known).
    enqueue(&c, "orders", json!(1)).await;
    enqueue(&c, "orders", json!(2)).await;
    let leased = claim(&c, "relay", 1).await.remove(0);
    let token = leased.token;
    let id = leased.id;
    c.batch_execute("SET outbox.max_payload_bytes = '1kB'")
        .await
        .unwrap();
    let long_topic = "t".repeat(250);
    let long_key = "k".repeat(1025);
    let long_owner = "o".repeat(201);
    let big = format!("'{{\"blob\": \"{}\"}}'", "x".repeat(2000));
    let deep = format!("'{}{}'::jsonb", "[".repeat(300), "]".repeat(300));

    let cases: Vec<(String, &str, &str)> = vec![
        ("SELECT outbox.enqueue(NULL, '1')".into(), NULL_NOT_ALLOWED, "topic must not be NULL"),
        ("SELECT outbox.enqueue('', '1')".into(), INVALID_PARAMETER, "topic is empty"),
        (format!("SELECT outbox.enqueue('{long_topic}', '1')"), INVALID_PARAMETER, "the limit is 249"),
        ("SELECT outbox.enqueue('orders created', '1')".into(), INVALID_PARAMETER, "not allowed"),
        ("SELECT outbox.enqueue('.orders', '1')".into(), INVALID_PARAMETER, "must start with"),
        ("SELECT outbox.enqueue('orders', NULL)".into(), NULL_NOT_ALLOWED, "payload must not be NULL"),
        (format!("SELECT outbox.enqueue('orders', {big})"), LIMIT_EXCEEDED, "outbox.max_payload_bytes"),
        ("SELECT outbox.enqueue('orders', '1', key => '')".into(), INVALID_PARAMETER, "key is empty"),
        (format!("SELECT outbox.enqueue('orders', '1', key => '{long_key}')"), INVALID_PARAMETER, "key is 1025 bytes"),
        ("SELECT outbox.enqueue('orders', '1', headers => '[]')".into(), INVALID_PARAMETER, "JSON object"),
        ("SELECT outbox.enqueue('orders', '1', headers => '{\"n\": 1}')".into(), INVALID_PARAMETER, "is not a string"),
        // Found by probing: jsonb accepts what serde_json refuses; both were XX000.
        (format!("SELECT outbox.enqueue('orders', '1', headers => {deep})"), INVALID_PARAMETER, "JSON object of string values"),
        (format!("SELECT outbox.enqueue('orders', '1', headers => jsonb_build_object('h', {deep}))"), INVALID_PARAMETER, "recursion limit"),
        ("SELECT outbox.enqueue('orders', '1', headers => '{\"h\": 1e400}')".into(), INVALID_PARAMETER, "number out of range"),
        (format!("SELECT outbox.enqueue_batch('orders', ARRAY['1']::jsonb[], headers => ARRAY[jsonb_build_object('h', {deep})])"), INVALID_PARAMETER, "JSON object of string values"),
        // Brokers carry keys and headers in their own headers: no control
        // characters, header names are HTTP tokens (the relay once had to
        // dead-letter these as undeliverable).
        ("SELECT outbox.enqueue('orders', '1', key => E'a\\nb')".into(), INVALID_PARAMETER, "control character"),
        ("SELECT outbox.enqueue('orders', '1', headers => '{\"a:b\": \"x\"}')".into(), INVALID_PARAMETER, "header name \"a:b\""),
        ("SELECT outbox.enqueue('orders', '1', headers => '{\"a\": \"x\\r\\ny: z\"}')".into(), INVALID_PARAMETER, "contains a control character"),
        ("SELECT outbox.enqueue_batch('orders', ARRAY['1']::jsonb[], keys => ARRAY[E'\\t'])".into(), INVALID_PARAMETER, "control character"),
        // Found by probing: a key whose head is never due blocks the key forever.
        ("SELECT outbox.enqueue('orders', '1', key => 'k', deliver_at => 'infinity')".into(), INVALID_PARAMETER, "not a finite time"),
        ("SELECT outbox.enqueue('orders', '1', deliver_at => '-infinity')".into(), INVALID_PARAMETER, "not a finite time"),
        ("SELECT outbox.enqueue('orders', '1', deliver_at => now() + interval '367 days')".into(), INVALID_PARAMETER, "more than a year ahead"),
        ("SELECT outbox.enqueue_batch('orders', ARRAY['1']::jsonb[], deliver_at => 'infinity')".into(), INVALID_PARAMETER, "not a finite time"),
        ("SELECT outbox.enqueue('orders', '1', max_attempts => 0)".into(), INVALID_PARAMETER, "max_attempts is 0"),
        ("SELECT outbox.enqueue('orders', '1', max_attempts => -1)".into(), INVALID_PARAMETER, "max_attempts is -1"),
        ("SELECT outbox.enqueue_batch('orders', NULL)".into(), NULL_NOT_ALLOWED, "payloads must not be NULL"),
        ("SELECT outbox.enqueue_batch('orders', ARRAY['1', NULL]::jsonb[])".into(), NULL_NOT_ALLOWED, "payloads element"),
        (
            "SELECT outbox.enqueue_batch('orders', ARRAY['1', '2']::jsonb[], keys => ARRAY['a'])".into(),
            ARRAY_MISMATCH,
            "keys has 1 elements but payloads has 2",
        ),
        (
            "SELECT outbox.enqueue_batch('orders', ARRAY['1']::jsonb[], headers => ARRAY['{}', '{}']::jsonb[])".into(),
            ARRAY_MISMATCH,
            "headers has 2 elements",
        ),
        (
            "SELECT outbox.enqueue_batch('orders', array_fill('1'::jsonb, ARRAY[10001]))".into(),
            LIMIT_EXCEEDED,
            "the limit is 10000",
        ),
        (format!("SELECT outbox.enqueue_batch('orders', ARRAY['1', {big}]::jsonb[])"), LIMIT_EXCEEDED, "payload 2 is"),
        ("SELECT * FROM outbox.claim(NULL)".into(), NULL_NOT_ALLOWED, "owner must not be NULL"),
        ("SELECT * FROM outbox.claim('')".into(), INVALID_PARAMETER, "owner is empty"),
        (format!("SELECT * FROM outbox.claim('{long_owner}')"), INVALID_PARAMETER, "owner is 201 bytes"),
        ("SELECT * FROM outbox.claim('r', 0)".into(), INVALID_PARAMETER, "batch_size is 0"),
        ("SELECT * FROM outbox.claim('r', -5)".into(), INVALID_PARAMETER, "batch_size is -5"),
        ("SELECT * FROM outbox.claim('r', 10001)".into(), INVALID_PARAMETER, "between 1 and 10000"),
        ("SELECT * FROM outbox.claim('r', NULL)".into(), NULL_NOT_ALLOWED, "batch_size must not be NULL"),
        ("SELECT * FROM outbox.claim('r', 1, '0 seconds')".into(), INVALID_PARAMETER, "positive interval"),
        ("SELECT * FROM outbox.claim('r', 1, '-1 minute')".into(), INVALID_PARAMETER, "positive interval"),
        ("SELECT * FROM outbox.claim('r', 1, '25 hours')".into(), INVALID_PARAMETER, "longer than 24 hours"),
        // Found by probing: caps checked with a month as 30 days were bypassed
        // by mixed signs ('100 years -35999 days' is about 525 days).
        ("SELECT * FROM outbox.claim('r', 1, '100 years -35999 days')".into(), INVALID_PARAMETER, "longer than 24 hours"),
        // A day by the 30-day count, four or five days back on the calendar.
        ("SELECT * FROM outbox.claim('r', 1, '-12 months 361 days')".into(), INVALID_PARAMETER, "positive interval"),
        ("SELECT * FROM outbox.claim('r', 1, '178000000 years')".into(), INVALID_PARAMETER, "longer than 24 hours"),
        ("SELECT * FROM outbox.claim('r', 1, '-178000000 years')".into(), INVALID_PARAMETER, "longer than 24 hours"),
        (format!("SELECT outbox.extend({id}, '{token}', '100 years -35999 days')"), INVALID_PARAMETER, "longer than 24 hours"),
        (format!("SELECT outbox.extend_batch(ARRAY[{id}], '{token}', '100 years -35999 days')"), INVALID_PARAMETER, "longer than 24 hours"),
        (format!("SELECT * FROM outbox.fail({id}, '{token}', 'x', retry_in => '1000 years -359700 days')"), INVALID_PARAMETER, "longer than a year"),
        (format!("SELECT * FROM outbox.fail({id}, '{token}', 'x', retry_in => '-12 months 361 days')"), INVALID_PARAMETER, "negative"),
        (format!("SELECT * FROM outbox.fail({id}, '{token}', 'x', retry_in => '178000000 years')"), INVALID_PARAMETER, "longer than a year"),
        ("SELECT outbox.doorbell_arm('1000000 years')".into(), INVALID_PARAMETER, "longer than 24 hours"),
        ("SELECT * FROM outbox.claim('r', 1, topics => '{}')".into(), INVALID_PARAMETER, "empty array"),
        ("SELECT * FROM outbox.claim('r', 1, topics => ARRAY['ok', NULL])".into(), INVALID_PARAMETER, "contains NULL"),
        ("SELECT * FROM outbox.claim('r', 1, topics => ARRAY['b a d'])".into(), INVALID_PARAMETER, "topics element \"b a d\""),
        (format!("SELECT outbox.complete(NULL::bigint, '{token}')"), NULL_NOT_ALLOWED, "id must not be NULL"),
        (format!("SELECT outbox.complete({id}, NULL)"), NULL_NOT_ALLOWED, "lease_token must not be NULL"),
        (format!("SELECT outbox.complete(999999, '{token}')"), UNKNOWN_ID, "message 999999 does not exist"),
        (format!("SELECT outbox.complete(-1, '{token}')"), UNKNOWN_ID, "message -1 does not exist"),
        (format!("SELECT outbox.complete_batch(ARRAY[{id}, 999999], '{token}')"), UNKNOWN_ID, "message 999999"),
        (format!("SELECT outbox.complete_batch(ARRAY[{id}, NULL], '{token}')"), NULL_NOT_ALLOWED, "ids element"),
        (format!("SELECT outbox.release(999999, '{token}')"), UNKNOWN_ID, "does not exist"),
        (format!("SELECT outbox.extend(999999, '{token}')"), UNKNOWN_ID, "does not exist"),
        (format!("SELECT outbox.extend({id}, '{token}', '0 s')"), INVALID_PARAMETER, "positive interval"),
        (format!("SELECT outbox.extend({id}, '{token}', '2 days')"), INVALID_PARAMETER, "longer than 24 hours"),
        (format!("SELECT * FROM outbox.fail(999999, '{token}', 'x')"), UNKNOWN_ID, "does not exist"),
        (format!("SELECT * FROM outbox.fail({id}, '{token}', 'x', retry_in => '-1 s')"), INVALID_PARAMETER, "negative"),
        (format!("SELECT * FROM outbox.fail({id}, '{token}', 'x', retry_in => '2 years')"), INVALID_PARAMETER, "year"),
        (format!("SELECT * FROM outbox.fail({id}, '{token}', 'x', permanent => NULL)"), NULL_NOT_ALLOWED, "permanent"),
        ("SELECT outbox.requeue_dead(ARRAY[999999]::bigint[])".into(), UNKNOWN_ID, "not a dead letter"),
        ("SELECT outbox.requeue_dead(NULL::bigint[])".into(), NULL_NOT_ALLOWED, "without NULLs"),
        ("SELECT outbox.purge_dead_topic('orders', '-1 day')".into(), INVALID_PARAMETER, "must not be negative"),
        ("SELECT outbox.doorbell_arm('-1 s')".into(), INVALID_PARAMETER, "non-negative"),
        ("SELECT outbox.doorbell_arm(NULL)".into(), NULL_NOT_ALLOWED, "wait must not be NULL"),
        ("SELECT * FROM outbox.list_dead('orders', -1)".into(), INVALID_PARAMETER, "max_rows is -1"),
        ("SELECT * FROM outbox.blocked_keys(-1)".into(), INVALID_PARAMETER, "max_rows is -1"),
    ];

    let before = snapshot(&c).await;
    let mut failures = Vec::new();
    for (sql, code, fragment) in &cases {
        match c.batch_execute(sql).await {
            Ok(()) => failures.push(format!("{sql}: succeeded, expected {code}")),
            Err(e) => {
                let db = e.as_db_error().expect("a server error");
                if db.code().code() != *code || !db.message().contains(fragment) {
                    failures.push(format!(
                        "{sql}: got {} {:?}, expected {code} containing {fragment:?}",
                        db.code().code(),
                        db.message()
                    ));
                }
                if db.hint().is_none() && *code != UNKNOWN_ID {
                    failures.push(format!("{sql}: no hint"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(
        snapshot(&c).await,
        before,
        "a rejected call changed the outbox"
    );
}

#[tokio::test]
async fn a_failed_batch_writes_none_of_its_messages() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let e = c
        .batch_execute("SELECT outbox.enqueue_batch('orders', ARRAY['1', '2', '3']::jsonb[], keys => ARRAY['a', '', 'c'])")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), INVALID_PARAMETER);
    assert_eq!(count(&c, "SELECT count(*) FROM outbox.messages").await, 0);
}
