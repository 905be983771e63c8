//! The AMQP properties of one message.

use crate::Message;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;

/// `message_id` = the outbox id, `delivery_mode` 2 (persistent: written to
/// disk by a durable queue), `content_type` `application/json`, `timestamp`
/// = `created_at` in whole seconds (AMQP's resolution), and the headers:
/// the message's own (long strings), then `outbox-id`, `outbox-topic`,
/// `outbox-key` (when it has one) as long strings and `outbox-attempt` as a
/// signed 32-bit integer (field type `I`). The `outbox-` ones win over
/// headers of the same name.
///
/// An error (`undeliverable: ...`) for a header name longer than AMQP's 255
/// bytes: no broker can take the message as it is.
pub(super) fn properties(message: &Message) -> Result<BasicProperties, String> {
    let mut headers = FieldTable::default();
    if let Some(own) = message.headers.as_ref().and_then(|h| h.as_object()) {
        for (name, value) in own {
            let name = ShortString::try_new(name.as_str()).map_err(|_| {
                format!(
                    "undeliverable: the header name {name:?} is {} bytes, AMQP allows 255",
                    name.len()
                )
            })?;
            // A claimed row's header values are strings; anything else is
            // sent as its JSON text rather than dropped.
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            headers.insert(name, AMQPValue::LongString(LongString::from(text)));
        }
    }
    let text = |s: String| AMQPValue::LongString(LongString::from(s));
    headers.insert("outbox-id".into(), text(message.id.to_string()));
    headers.insert("outbox-topic".into(), text(message.topic.clone()));
    if let Some(key) = &message.key {
        headers.insert("outbox-key".into(), text(key.clone()));
    }
    headers.insert("outbox-attempt".into(), AMQPValue::LongInt(message.attempt));
    // Before 1970 cannot happen (created_at defaults to now()); 0 rather
    // than a panic.
    let timestamp = u64::try_from(message.created_at.timestamp()).unwrap_or(0);
    Ok(BasicProperties::default()
        .with_message_id(message.id.to_string().as_str().into())
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_timestamp(timestamp)
        .with_headers(headers))
}
