//! CloudEvents 1.0 (<https://cloudevents.io>): the envelope a publisher may
//! put a message in instead of the outbox's own, so consumers built on a
//! CloudEvents SDK read it without knowing the outbox.
//!
//! The attributes of a message's event, the one place they are derived:
//!
//! | attribute | value |
//! | --- | --- |
//! | `specversion` | `1.0` |
//! | `id` | the outbox id (unique per source, stable across redeliveries) |
//! | `source` | configured ([`CloudEvents::new`]): names this outbox |
//! | `type` | the topic |
//! | `subject` | the key, when there is one |
//! | `time` | `created_at`, RFC 3339 with microseconds |
//! | `datacontenttype` | `application/json` |
//! | `traceparent`, `tracestate` | the message's valid W3C trace context (the Distributed Tracing extension) |
//!
//! Two content modes, per the protocol bindings: *structured* (the JSON
//! event format: attributes and `data` in one JSON object as the body) and
//! *binary* (the body is the payload, each attribute a protocol header
//! under the binding's prefix). The payload is copied into `data` as the
//! bytes `jsonb` printed, never re-parsed, like every publisher does.

use crate::{Error, Message};
use percent_encoding::{AsciiSet, CONTROLS};
use std::borrow::Cow;

/// The body's content type in structured mode (the JSON event format).
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json; charset=UTF-8";
/// `datacontenttype`, and the body's content type in binary mode.
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// How a publisher wraps each message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Envelope {
    /// The outbox's own form (each publisher documents it).
    #[default]
    Outbox,
    /// A CloudEvents 1.0 event.
    CloudEvents(CloudEvents),
}

impl Envelope {
    /// The CloudEvents settings and the mode to use over `binding`, or
    /// `None` for the outbox's own envelope; an error for a mode the
    /// binding does not define (see [`CloudEvents::mode`]).
    pub fn for_binding(
        self,
        binding: Binding,
    ) -> Result<Option<(CloudEvents, ContentMode)>, Error> {
        match self {
            Envelope::Outbox => Ok(None),
            Envelope::CloudEvents(events) => {
                let mode = events.mode(binding)?;
                Ok(Some((events, mode)))
            }
        }
    }
}

/// Where the attributes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentMode {
    /// The whole event, JSON, as the body.
    Structured,
    /// The payload as the body, the attributes as headers.
    Binary,
}

/// The protocol bindings the publishers implement: where binary mode puts
/// an attribute, and whether the binding defines binary mode at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// HTTP binding: `ce-` headers, values percent-encoded.
    Http,
    /// Kafka binding: `ce_` headers, values as UTF-8.
    Kafka,
    /// NATS binding (binary mode over NATS 2.2 headers, as its 1.0.3 draft
    /// defines): `ce-` headers, percent-encoded as HTTP.
    Nats,
    /// AMQP binding: `cloudEvents:` application properties (RabbitMQ's
    /// headers table, which RabbitMQ maps to AMQP 1.0 application
    /// properties).
    Amqp,
    /// No protocol headers: structured only.
    Stdout,
    /// No CloudEvents binding exists: structured only, the event is the
    /// `payload` field.
    Redis,
}

impl Binding {
    /// The header prefix of binary mode; `None` where the binding has none.
    fn prefix(self) -> Option<&'static str> {
        match self {
            Binding::Http | Binding::Nats => Some("ce-"),
            Binding::Kafka => Some("ce_"),
            Binding::Amqp => Some("cloudEvents:"),
            Binding::Stdout | Binding::Redis => None,
        }
    }

    /// The mode used when none is configured: binary where the binding
    /// defines it (routers and filters can read the attributes without
    /// parsing the body), else structured.
    fn default_mode(self) -> ContentMode {
        match self.prefix() {
            Some(_) => ContentMode::Binary,
            None => ContentMode::Structured,
        }
    }
}

/// The CloudEvents settings of a publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEvents {
    source: String,
    mode: Option<ContentMode>,
}

/// What HTTP (and NATS) header values must not hold raw: the binding's rule
/// is to percent-encode space, `"`, `%` and everything outside printable
/// ASCII (non-ASCII as its UTF-8 bytes).
const HEADER_VALUE: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%');

impl CloudEvents {
    /// Events from `source`: a URI-reference naming this outbox, such as
    /// `https://orders.example.com/outbox` or `/orders/outbox`. Consumers
    /// deduplicate on (`source`, `id`), so each outbox (each database)
    /// needs a source of its own.
    pub fn new(source: impl Into<String>) -> Result<Self, Error> {
        let source = source.into();
        let bad = |reason: &str| {
            Error::Config {
            field: "cloudevents source",
            reason: format!(
                "{reason}: give a URI-reference naming this outbox, e.g. https://orders.example.com/outbox"
            ),
        }
        };
        if source.is_empty() {
            return Err(bad("is empty"));
        }
        if source.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains whitespace or a control character"));
        }
        Ok(CloudEvents { source, mode: None })
    }

    /// Use this content mode instead of the binding's default.
    pub fn with_mode(mut self, mode: ContentMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// The configured source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The mode for `binding`: the configured one if the binding defines
    /// it, else the binding's default.
    pub fn mode(&self, binding: Binding) -> Result<ContentMode, Error> {
        match self.mode {
            Some(ContentMode::Binary) if binding.prefix().is_none() => Err(Error::Config {
                field: "cloudevents mode",
                reason: format!(
                    "{binding:?} has no binary content mode (no headers to carry the attributes): use structured"
                ),
            }),
            Some(mode) => Ok(mode),
            None => Ok(binding.default_mode()),
        }
    }

    /// The event's attributes (not `data`), in the table's order.
    pub fn attributes<'m>(&'m self, m: &'m Message) -> Vec<(&'static str, Cow<'m, str>)> {
        let mut out: Vec<(&'static str, Cow<'m, str>)> = vec![
            ("specversion", "1.0".into()),
            ("id", m.id.to_string().into()),
            ("source", self.source.as_str().into()),
            ("type", m.topic.as_str().into()),
        ];
        if let Some(key) = &m.key {
            out.push(("subject", key.as_str().into()));
        }
        out.push((
            "time",
            m.created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        ));
        out.push(("datacontenttype", DATA_CONTENT_TYPE.into()));
        for (name, value) in crate::trace::trace_headers(m) {
            out.push((name, value.into()));
        }
        out
    }

    /// The structured-mode body: the JSON event format, `data` the payload
    /// byte for byte.
    pub fn structured(&self, m: &Message) -> Vec<u8> {
        let attributes: serde_json::Map<String, serde_json::Value> = self
            .attributes(m)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.into_owned())))
            .collect();
        // Strings only: serializing cannot fail. The object is never empty,
        // so `data` follows a comma.
        let mut body = serde_json::to_vec(&attributes).unwrap_or_else(|_| b"{}".to_vec());
        body.pop(); // the closing brace
        body.extend_from_slice(br#","data":"#);
        body.extend_from_slice(m.payload.get().as_bytes());
        body.push(b'}');
        body
    }

    /// The binary-mode headers for `binding` (name with the binding's
    /// prefix, value encoded as the binding says). `datacontenttype` is
    /// not among them: every binding maps it to the protocol's own content
    /// type, which the publisher sets to [`DATA_CONTENT_TYPE`].
    pub fn binary_headers(&self, m: &Message, binding: Binding) -> Vec<(String, String)> {
        let Some(prefix) = binding.prefix() else {
            return Vec::new();
        };
        self.attributes(m)
            .into_iter()
            .filter(|(name, _)| *name != "datacontenttype")
            .map(|(name, value)| {
                let value = match binding {
                    Binding::Http | Binding::Nats => {
                        percent_encoding::utf8_percent_encode(&value, HEADER_VALUE).to_string()
                    }
                    _ => value.into_owned(),
                };
                (format!("{prefix}{name}"), value)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
