//! Trace context on a message: the producer's W3C `traceparent` and
//! `tracestate`, stored as the message's headers of those names. The relay
//! links its publish span to it and forwards both headers to the broker
//! unchanged, so the consumer continues the producer's trace.

use crate::{Error, NewMessage};
use outbox_rules::{TRACEPARENT, TRACESTATE};

impl NewMessage {
    /// Carry a W3C trace context (checked: a malformed `traceparent` is
    /// [`Error::InvalidInput`], not a header every consumer would ignore).
    ///
    /// ```
    /// use outbox_client::{NewMessage, Topic};
    /// let m = NewMessage::new(Topic::new("orders.created")?, &42)?.with_trace_context(
    ///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ///     Some("congo=t61rcWkgMzE"),
    /// )?;
    /// assert_eq!(m.headers["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    /// assert!(NewMessage::new(Topic::new("t")?, &1)?.with_trace_context("00-0-0-01", None).is_err());
    /// # Ok::<(), outbox_client::Error>(())
    /// ```
    pub fn with_trace_context(
        mut self,
        traceparent: &str,
        tracestate: Option<&str>,
    ) -> Result<Self, Error> {
        outbox_rules::traceparent(traceparent)?;
        self.headers.insert(TRACEPARENT.into(), traceparent.into());
        match tracestate.filter(|s| !s.is_empty()) {
            Some(state) => {
                outbox_rules::tracestate(state)?;
                self.headers.insert(TRACESTATE.into(), state.into());
            }
            None => {
                self.headers.remove(TRACESTATE);
            }
        }
        Ok(self)
    }

    /// Carry the trace context of an OpenTelemetry context (with
    /// tracing-opentelemetry: `tracing::Span::current().context()`); a
    /// context without a valid span leaves the message as it is.
    #[cfg(feature = "opentelemetry")]
    pub fn with_otel_context(self, cx: &opentelemetry::Context) -> Self {
        use opentelemetry::trace::TraceContextExt;
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return self;
        }
        let traceparent = format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        );
        let tracestate = sc.trace_state().header();
        // A valid span context always formats as a valid traceparent, and
        // its trace state was parsed by the same W3C rules; should a rule
        // still disagree, the message goes without the context rather than
        // failing the producer's transaction over tracing.
        let fallback = self.clone();
        self.with_trace_context(&traceparent, Some(&tracestate))
            .unwrap_or(fallback)
    }

    /// [`NewMessage::with_otel_context`] of `opentelemetry::Context::current()`.
    #[cfg(feature = "opentelemetry")]
    pub fn with_current_trace_context(self) -> Self {
        self.with_otel_context(&opentelemetry::Context::current())
    }
}

#[cfg(all(test, feature = "opentelemetry"))]
mod tests {
    use crate::{NewMessage, Topic};
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry::Context;
    use std::str::FromStr;

    fn message() -> NewMessage {
        NewMessage::new(Topic::new("t").unwrap(), &1).unwrap()
    }

    #[test]
    fn the_current_span_becomes_traceparent_and_tracestate() {
        let span = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_str("congo=t61rcWkgMzE").unwrap(),
        );
        let cx = Context::new().with_remote_span_context(span);
        let m = {
            let _attached = cx.attach();
            message().with_current_trace_context()
        };
        assert_eq!(
            m.headers["traceparent"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(m.headers["tracestate"], "congo=t61rcWkgMzE");
    }

    #[test]
    fn no_span_no_headers() {
        let m = message().with_otel_context(&Context::new());
        assert!(m.headers.is_empty(), "{:?}", m.headers);
    }
}
