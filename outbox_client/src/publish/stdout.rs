//! The embedded default: one JSON object per line on stdout.

use super::{Delivery, Publisher};
use crate::Message;
use std::io::Write;

/// Writes each message as one JSON line (`id`, `topic`, `key`, `headers`,
/// `payload`, `attempt`, `created_at`) to stdout and flushes. A write error
/// (stdout closed) is retryable: nothing was delivered.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdoutPublisher;

impl Publisher for StdoutPublisher {
    async fn publish(&self, batch: &[Message]) -> Vec<Delivery> {
        let mut out = std::io::stdout().lock();
        batch
            .iter()
            .map(|m| {
                let line = serde_json::to_string(m).map_err(|e| e.to_string());
                match line.and_then(|l| {
                    writeln!(out, "{l}")
                        .and_then(|()| out.flush())
                        .map_err(|e| e.to_string())
                }) {
                    Ok(()) => Delivery::Acked,
                    Err(error) => Delivery::Retryable {
                        error: format!("stdout: {error}"),
                        retry_after: None,
                    },
                }
            })
            .collect()
    }
}
