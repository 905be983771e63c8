//! The tenant, correlation and causation id convention
//! (`outbox_client::ids`) against a real server: the extension accepts the
//! header names, a claimed message reads them back, and a message caused by
//! it carries the flow on; the HTTP publisher's test checks they arrive as
//! request headers.

use outbox_client::{NewMessage, Store, Topic};
use outbox_tests::TestDb;
use std::time::Duration;

#[tokio::test]
async fn ids_survive_the_outbox_and_a_caused_message_continues_the_flow() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let topic = Topic::new("orders.created").unwrap();
    let first = NewMessage::new(topic.clone(), &1)
        .unwrap()
        .with_tenant_id("acme")
        .with_correlation_id("checkout-9");
    let first_id = Store.enqueue(&c, &first).await.unwrap();
    let claim = Store
        .claim(&c, "ids-test", 10, Duration::from_secs(30), None)
        .await
        .unwrap();
    let received = &claim.messages[0];
    assert_eq!(received.id, first_id);
    assert_eq!(received.tenant_id(), Some("acme"));
    assert_eq!(received.correlation_id(), Some("checkout-9"));
    assert_eq!(received.causation_id(), None);

    let reply = NewMessage::new(Topic::new("invoices.created").unwrap(), &2)
        .unwrap()
        .caused_by(received);
    let reply_id = Store.enqueue(&c, &reply).await.unwrap();
    let headers: serde_json::Value = c
        .query_one(
            "SELECT headers FROM outbox.messages WHERE id = $1",
            &[&reply_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        headers,
        serde_json::json!({
            "tenant-id": "acme",
            "correlation-id": "checkout-9",
            "causation-id": first_id.to_string(),
        })
    );
}
