//! The embedded default: one JSON object per line on stdout.

use super::{Delivery, Publisher};
use crate::Message;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// Writes each message as one JSON line (`id`, `topic`, `key`, `headers`,
/// `payload`, `attempt`, `created_at`) to stdout and flushes.
///
/// A batch is written in one piece under a lock, so lines of concurrent
/// workers never interleave; the write is asynchronous, so a reader that
/// falls behind (a full pipe) stalls only this batch while its lease keeps
/// being extended. A failed write (stdout closed) is retryable: nothing is
/// known to be delivered.
#[derive(Debug)]
pub struct StdoutPublisher {
    out: Mutex<tokio::io::Stdout>,
}

impl Default for StdoutPublisher {
    fn default() -> Self {
        StdoutPublisher {
            out: Mutex::new(tokio::io::stdout()),
        }
    }
}

impl Publisher for StdoutPublisher {
    async fn publish(&self, batch: &[Message]) -> Vec<Delivery> {
        let mut buffer = Vec::with_capacity(batch.len() * 256);
        for m in batch {
            // Serializing a Message cannot fail: every field is plain JSON.
            serde_json::to_writer(&mut buffer, m).expect("a message serializes");
            buffer.push(b'\n');
        }
        let mut out = self.out.lock().await;
        let written = match out.write_all(&buffer).await {
            Ok(()) => out.flush().await,
            Err(e) => Err(e),
        };
        match written {
            Ok(()) => vec![Delivery::Acked; batch.len()],
            Err(e) => vec![
                Delivery::Retryable {
                    error: format!("stdout: {e}"),
                    retry_after: None
                };
                batch.len()
            ],
        }
    }
}
