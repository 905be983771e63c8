//! One span per published message, linked to the producer's trace.
//!
//! The span is `send <topic>` (kind producer, OpenTelemetry's messaging
//! conventions: `messaging.system`, `messaging.destination.name`,
//! `messaging.message.id`) and lasts while the message's batch is with the
//! publisher. It starts a trace of its own and *links* to the producer's
//! span (the message's `traceparent` header): a relay publishes hours after
//! the request that wrote the row, possibly after retries, and a child span
//! would stretch the request's trace over all of that. The headers
//! themselves go to the broker unchanged (each publisher forwards them), so
//! the consumer continues the producer's trace.
//!
//! The spans are `tracing` spans under the target [`TARGET`]; they become
//! OpenTelemetry spans where a tracing-opentelemetry layer is installed
//! (the `outbox-relay` binary's OTLP exporter, or an application's own),
//! and cost nothing where no subscriber wants them.

use crate::publish::Delivery;
use crate::Message;
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use outbox_rules::{TRACEPARENT, TRACESTATE};
use std::str::FromStr;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `tracing` target of the publish spans.
pub const TARGET: &str = "outbox::publish";

/// The producer's span, from the message's `traceparent` and `tracestate`
/// headers (names compared case-insensitively, as HTTP does). `None` when
/// there is none or it is malformed: W3C says to ignore a traceparent that
/// does not parse, and a message is never failed over its trace context.
pub fn producer_span(message: &Message) -> Option<SpanContext> {
    let headers = trace_headers(message);
    let (_, traceparent) = headers.first()?;
    let parent = outbox_rules::traceparent(traceparent).ok()?;
    let state = headers
        .get(1)
        .and_then(|(_, s)| TraceState::from_str(s).ok())
        .unwrap_or_default();
    Some(SpanContext::new(
        TraceId::from_bytes(parent.trace_id),
        SpanId::from_bytes(parent.parent_id),
        TraceFlags::new(parent.flags),
        true,
        state,
    ))
}

/// The message's `traceparent` and `tracestate`, for publishers whose
/// protocol has headers but which do not forward every outbox header (HTTP):
/// only when the traceparent is valid (W3C: tracestate means nothing
/// without it), so a malformed value, which no consumer would use, cannot
/// make the request unbuildable and dead-letter the message.
pub fn trace_headers(message: &Message) -> Vec<(&'static str, &str)> {
    let Some(headers) = message.headers.as_ref().and_then(|h| h.as_object()) else {
        return Vec::new();
    };
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
    };
    let Some(parent) = header(TRACEPARENT).filter(|p| outbox_rules::traceparent(p).is_ok()) else {
        return Vec::new();
    };
    let mut out = vec![(TRACEPARENT, parent)];
    if let Some(state) = header(TRACESTATE).filter(|s| outbox_rules::tracestate(s).is_ok()) {
        out.push((TRACESTATE, state));
    }
    out
}

/// The open spans of one batch, in the batch's order.
pub(crate) struct PublishSpans(Vec<tracing::Span>);

impl PublishSpans {
    /// Start a span per message of `batch`, sent through `system`.
    pub(crate) fn open(batch: &[Message], system: &'static str) -> Self {
        PublishSpans(
            batch
                .iter()
                .map(|m| {
                    let span = tracing::info_span!(
                        target: TARGET,
                        "publish",
                        otel.name = %format_args!("send {}", m.topic),
                        otel.kind = "producer",
                        otel.status_code = Empty,
                        otel.status_message = Empty,
                        messaging.system = system,
                        messaging.operation.type = "send",
                        messaging.destination.name = %m.topic,
                        messaging.message.id = m.id,
                        outbox.attempt = m.attempt,
                        outbox.delivery = Empty,
                    );
                    if !span.is_disabled() {
                        if let Some(producer) = producer_span(m) {
                            span.add_link(producer);
                        }
                    }
                    span
                })
                .collect(),
        )
    }

    /// Record each message's answer and end the spans.
    pub(crate) fn close(self, deliveries: &[Delivery]) {
        for (span, delivery) in self.0.into_iter().zip(deliveries) {
            let (outcome, error) = match delivery {
                Delivery::Acked => ("acked", None),
                Delivery::Retryable { error, .. } => ("retryable", Some(error)),
                Delivery::Permanent { error } => ("permanent", Some(error)),
            };
            span.record("outbox.delivery", outcome);
            if let Some(error) = error {
                span.record("otel.status_code", "error");
                span.record("otel.status_message", error.as_str());
            }
        }
    }
}
