//! The embedded default: one JSON object per line on stdout.

use super::cloudevents::{Binding, CloudEvents};
use super::{Delivery, Envelope, Publisher};
use crate::{Error, Message};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// Writes each message as one JSON line (`id`, `topic`, `key`, `headers`,
/// `payload`, `attempt`, `created_at`) to stdout and flushes.
///
/// A batch is written in one piece under a lock, so lines of concurrent
/// workers never interleave; the write is asynchronous, so a reader that
/// falls behind (a full pipe) stalls only this batch while its lease keeps
/// being extended. A failed write (stdout closed) is retryable: nothing is
/// known to be delivered. A message that cannot be serialized (a hand-built
/// [`Message`] with a value `serde_json` cannot write) is permanent, and the
/// rest of the batch is written without it.
///
/// With a CloudEvents envelope each line is the event in the JSON event
/// format (structured mode; stdout has no headers for binary mode). The
/// message's headers other than the trace context are not in it.
#[derive(Debug)]
pub struct StdoutPublisher {
    out: Mutex<tokio::io::Stdout>,
    events: Option<CloudEvents>,
}

impl Default for StdoutPublisher {
    fn default() -> Self {
        StdoutPublisher {
            out: Mutex::new(tokio::io::stdout()),
            events: None,
        }
    }
}

impl StdoutPublisher {
    /// Lines in `envelope`; binary CloudEvents is [`Error::Config`].
    pub fn with_envelope(envelope: Envelope) -> Result<Self, Error> {
        // Structured is the only mode there: an error for binary.
        let events = envelope
            .for_binding(Binding::Stdout)?
            .map(|(events, _)| events);
        Ok(StdoutPublisher {
            events,
            ..Self::default()
        })
    }
}

impl Publisher for StdoutPublisher {
    fn system(&self) -> &'static str {
        "stdout"
    }

    async fn publish(&self, batch: &[Message]) -> Vec<Delivery> {
        let mut buffer = Vec::with_capacity(batch.len() * 256);
        // Per message: None = in the buffer, Some = why it is not.
        let mut unwritable = Vec::with_capacity(batch.len());
        for m in batch {
            let start = buffer.len();
            let written = match &self.events {
                Some(events) => {
                    buffer.extend_from_slice(&events.structured(m));
                    Ok(())
                }
                None => serde_json::to_writer(&mut buffer, m),
            };
            match written {
                Ok(()) => {
                    buffer.push(b'\n');
                    unwritable.push(None);
                }
                Err(e) => {
                    buffer.truncate(start); // no half line
                    unwritable.push(Some(format!(
                        "undeliverable: stdout: cannot serialize the message as JSON: {e}"
                    )));
                }
            }
        }
        let mut out = self.out.lock().await;
        let written = match out.write_all(&buffer).await {
            Ok(()) => out.flush().await,
            Err(e) => Err(e),
        };
        unwritable
            .into_iter()
            .map(|problem| match (problem, &written) {
                (Some(error), _) => Delivery::Permanent { error },
                (None, Ok(())) => Delivery::Acked,
                (None, Err(e)) => Delivery::Retryable {
                    error: format!("stdout: {e}"),
                    retry_after: None,
                },
            })
            .collect()
    }
}
