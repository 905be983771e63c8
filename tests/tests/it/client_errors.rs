//! What the client's errors say: a database error names the server's
//! message and SQLSTATE, not just "db error" (what operators saw in the
//! relay's log behind a pooler).

use outbox_tests::TestDb;

#[tokio::test]
async fn a_database_error_shows_the_servers_message_sqlstate_and_hint() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let e = outbox_client::Error::from(c.query_one("SELECT 1 / 0", &[]).await.unwrap_err());
    let text = e.to_string();
    assert!(
        text.contains("division by zero") && text.contains("SQLSTATE 22012"),
        "{text}"
    );
    let e = outbox_client::Error::from(
        c.batch_execute("DO $$ BEGIN RAISE EXCEPTION 'boom' USING HINT = 'try again', ERRCODE = 'P0001'; END $$")
            .await
            .unwrap_err(),
    );
    let text = e.to_string();
    assert!(
        text.contains("boom") && text.contains("P0001") && text.contains("hint: try again"),
        "{text}"
    );
}
