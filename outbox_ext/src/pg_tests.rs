//! In-database tests: single-session behaviour, each test rolled back.
//! Commits, NOTIFY, two sessions and lease expiry seen by another worker are
//! tested in the workspace's `tests/` crate instead.
//!
//! Everything here runs in one uncommitted transaction, and a message in
//! the log is handed out only once its transaction has committed (a window
//! holds committed transactions: docs/storage.md). So the tests that claim
//! put their message in the side table directly, where a claim sees what its
//! own transaction wrote, as 0.1.0's table did.

// pgrx runs #[pg_test]s from the schema named after this module.
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn one<T: pgrx::datum::FromDatum + pgrx::IntoDatum>(sql: &str) -> T {
        Spi::get_one::<T>(sql)
            .expect("query runs")
            .expect("query returns a value")
    }

    /// A ready message in the side table, as a requeued dead letter is.
    fn side_message(max_attempts: i32) -> i64 {
        one(&format!(
            "INSERT INTO outbox.side (id, topic, payload, max_attempts)
             VALUES (nextval('outbox.message_id'), 'orders', '1', {max_attempts}) RETURNING id"
        ))
    }

    #[pg_test]
    fn a_message_is_not_claimed_before_its_transaction_commits() {
        Spi::run("SELECT outbox.enqueue('orders', '1')").unwrap();
        assert_eq!(one::<i64>("SELECT count(*) FROM outbox.claim('t', 10)"), 0);
        assert_eq!(one::<i64>("SELECT count(*) FROM outbox.messages"), 1);
    }

    #[pg_test]
    fn enqueue_then_claim_then_complete() {
        let id = side_message(20);
        let (claimed, token): (Option<i64>, Option<pgrx::Uuid>) =
            Spi::get_two("SELECT id, lease_token FROM outbox.claim('t', 10)").unwrap();
        assert_eq!(claimed, Some(id));
        let done: bool = one(&format!(
            "SELECT outbox.complete({id}, '{}'::uuid)",
            token.unwrap()
        ));
        assert!(done);
        assert_eq!(one::<i64>("SELECT count(*) FROM outbox.messages"), 0);
    }

    #[pg_test]
    fn claim_counts_the_attempt() {
        side_message(20);
        assert_eq!(one::<i32>("SELECT attempt FROM outbox.claim('t')"), 1);
    }

    #[pg_test]
    fn fail_schedules_exact_backoff_without_jitter() {
        Spi::run("SET outbox.retry_jitter = 0; SET outbox.retry_base = '2s'").unwrap();
        let id = side_message(20);
        let token: pgrx::Uuid = one("SELECT lease_token FROM outbox.claim('t')");
        let delay: pgrx::datum::Interval = one(&format!(
            "SELECT next_attempt_at - statement_timestamp() FROM outbox.fail({id}, '{token}'::uuid, 'boom')"
        ));
        assert_eq!(crate::api::micros(&delay), 2_000_000);
    }

    #[pg_test]
    fn fail_after_last_attempt_dead_letters() {
        let id = side_message(1);
        let token: pgrx::Uuid = one("SELECT lease_token FROM outbox.claim('t')");
        let state: String = one(&format!(
            "SELECT state FROM outbox.fail({id}, '{token}'::uuid, 'boom')"
        ));
        assert_eq!(state, "dead");
        assert_eq!(
            one::<String>("SELECT reason FROM outbox.dead_letters"),
            "max_attempts"
        );
    }

    #[pg_test]
    fn stored_errors_are_redacted() {
        let id = side_message(20);
        let token: pgrx::Uuid = one("SELECT lease_token FROM outbox.claim('t')");
        Spi::run(&format!(
            "SELECT outbox.fail({id}, '{token}'::uuid, 'nats://u:pw@h down')"
        ))
        .unwrap();
        assert_eq!(
            one::<String>("SELECT last_error FROM outbox.messages"),
            "nats://u:***@h down"
        );
    }

    #[pg_test(error = "topic is empty")]
    fn empty_topic_is_rejected() {
        Spi::run("SELECT outbox.enqueue('', '1')").unwrap();
    }

    #[pg_test(error = "batch_size is 0, it must be between 1 and 10000")]
    fn zero_batch_size_is_rejected() {
        Spi::run("SELECT * FROM outbox.claim('t', 0)").unwrap();
    }
}
