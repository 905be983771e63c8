//! The header convention for who a message is for and what it belongs to:
//! `tenant-id`, `correlation-id` (one id for every message of one business
//! flow) and `causation-id` (the id of the message that caused this one).
//! They are ordinary headers — every publisher carries them to the broker
//! in its native form — with typed helpers so every service spells them the
//! same way.

use crate::{Message, NewMessage};

/// The tenant a message belongs to.
pub const TENANT_ID: &str = "tenant-id";
/// One id shared by every message of one business flow.
pub const CORRELATION_ID: &str = "correlation-id";
/// The id of the message that caused this one.
pub const CAUSATION_ID: &str = "causation-id";

impl NewMessage {
    /// Set `tenant-id`.
    pub fn with_tenant_id(self, id: impl Into<String>) -> Self {
        self.with_header(TENANT_ID, id)
    }

    /// Set `correlation-id`.
    pub fn with_correlation_id(self, id: impl Into<String>) -> Self {
        self.with_header(CORRELATION_ID, id)
    }

    /// Set `causation-id`.
    pub fn with_causation_id(self, id: impl Into<String>) -> Self {
        self.with_header(CAUSATION_ID, id)
    }

    /// A message caused by `cause` (one a consumer or relay received): its
    /// `causation-id` is the cause's outbox id, and it inherits the cause's
    /// `tenant-id` and `correlation-id` (the cause's own id when it had
    /// none: the flow starts there).
    ///
    /// ```
    /// # use outbox_client::{NewMessage, Topic};
    /// # fn demo(received: &outbox_client::Message) -> Result<(), outbox_client::Error> {
    /// let reply = NewMessage::new(Topic::new("invoices.created")?, &42)?.caused_by(received);
    /// assert_eq!(reply.headers["causation-id"], received.id.to_string());
    /// # Ok(()) }
    /// ```
    pub fn caused_by(self, cause: &Message) -> Self {
        let correlation = cause
            .correlation_id()
            .map(str::to_owned)
            .unwrap_or_else(|| cause.id.to_string());
        let this = self
            .with_causation_id(cause.id.to_string())
            .with_correlation_id(correlation);
        match cause.tenant_id() {
            Some(tenant) => this.with_tenant_id(tenant),
            None => this,
        }
    }
}

impl Message {
    /// A header's value, if it has a string one.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.as_ref()?.get(name)?.as_str()
    }

    /// `tenant-id`.
    pub fn tenant_id(&self) -> Option<&str> {
        self.header(TENANT_ID)
    }

    /// `correlation-id`.
    pub fn correlation_id(&self) -> Option<&str> {
        self.header(CORRELATION_ID)
    }

    /// `causation-id`.
    pub fn causation_id(&self) -> Option<&str> {
        self.header(CAUSATION_ID)
    }
}

#[cfg(test)]
mod tests {
    use crate::{LeaseToken, Message, NewMessage, Topic};
    use serde_json::json;

    fn received(headers: serde_json::Value) -> Message {
        Message {
            id: 7,
            topic: "orders.created".into(),
            key: None,
            payload: serde_json::value::RawValue::from_string("{}".into()).unwrap(),
            headers: Some(headers),
            attempt: 1,
            lease_token: LeaseToken(uuid::Uuid::nil()),
            lease_expires_at: chrono::Utc::now(),
            created_at: chrono::Utc::now(),
        }
    }

    fn new() -> NewMessage {
        NewMessage::new(Topic::new("invoices.created").unwrap(), &1).unwrap()
    }

    #[test]
    fn a_caused_message_inherits_tenant_and_correlation() {
        let cause = received(json!({"tenant-id": "acme", "correlation-id": "flow-1"}));
        let m = new().caused_by(&cause);
        assert_eq!(m.headers["causation-id"], "7");
        assert_eq!(m.headers["correlation-id"], "flow-1");
        assert_eq!(m.headers["tenant-id"], "acme");
    }

    #[test]
    fn a_flow_starts_at_a_cause_without_a_correlation_id() {
        let m = new().caused_by(&received(json!({})));
        assert_eq!(m.headers["correlation-id"], "7");
        assert!(!m.headers.contains_key("tenant-id"));
    }

    #[test]
    fn the_typed_helpers_are_headers() {
        let m = new().with_tenant_id("acme").with_correlation_id("c");
        assert_eq!(m.headers["tenant-id"], "acme");
        assert_eq!(m.headers["correlation-id"], "c");
    }
}
