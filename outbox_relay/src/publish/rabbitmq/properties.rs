//! The AMQP properties of one message.

use crate::publish::cloudevents::{
    Binding, CloudEvents, ContentMode, DATA_CONTENT_TYPE, STRUCTURED_CONTENT_TYPE,
};
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
/// With a CloudEvents envelope (the AMQP binding): in binary mode the
/// attributes are added as `cloudEvents:<name>` headers, each a long string
/// (the canonical string form the AMQP format allows; a 0-9-1 timestamp
/// would cut `time` to whole seconds); in structured mode `content_type` is
/// the JSON event format's and the body (built by the caller) the event.
/// Either way the message's own headers named `cloudEvents:*` or
/// `cloudEvents_*` (the binding's two prefixes, any case) are left out:
/// the envelope owns those names.
///
/// An error (`undeliverable: ...`) for a header name longer than AMQP's 255
/// bytes: no broker can take the message as it is.
pub(super) fn properties(
    message: &Message,
    events: Option<&(CloudEvents, ContentMode)>,
) -> Result<BasicProperties, String> {
    let mut headers = FieldTable::default();
    if let Some(own) = message.headers.as_ref().and_then(|h| h.as_object()) {
        for (name, value) in own {
            if events.is_some() && enveloped(name) {
                continue;
            }
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
    let content_type = match events {
        None => DATA_CONTENT_TYPE,
        Some((_, ContentMode::Structured)) => STRUCTURED_CONTENT_TYPE,
        Some((events, ContentMode::Binary)) => {
            // The attribute names are short and ASCII: each fits.
            for (name, value) in events.binary_headers(message, Binding::Amqp) {
                headers.insert(name.as_str().into(), text(value));
            }
            DATA_CONTENT_TYPE
        }
    };
    // Before 1970 cannot happen (created_at defaults to now()); 0 rather
    // than a panic.
    let timestamp = u64::try_from(message.created_at.timestamp()).unwrap_or(0);
    Ok(BasicProperties::default()
        .with_message_id(message.id.to_string().as_str().into())
        .with_delivery_mode(2)
        .with_content_type(content_type.into())
        .with_timestamp(timestamp)
        .with_headers(headers))
}

/// Whether a header name is one of the AMQP binding's attribute names.
fn enveloped(name: &str) -> bool {
    ["cloudevents:", "cloudevents_"].iter().any(|prefix| {
        name.get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    })
}
