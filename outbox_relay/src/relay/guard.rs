//! A panicking publisher, contained: it costs the message that set it off
//! an attempt, not the worker and not the rest of the batch.

use crate::publish::{Delivery, Publisher};
use crate::Message;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;

/// The publisher's answers for `batch`. A publisher that panics is a bug
/// (ours do not, whatever the data), but it must not take the worker down,
/// nor make the rest of the batch share the fate of the message that set it
/// off: after a panic each message is published on its own, and one that
/// panics alone is failed (retryable, as a panic proves nothing about the
/// message; after `max_attempts` it is a dead letter with the panic's text).
pub(crate) async fn publish<P: Publisher>(publisher: &P, batch: &[Message]) -> Vec<Delivery> {
    let panicked = |panic: String| Delivery::Retryable {
        error: format!("the publisher panicked on this message: {panic}"),
        retry_after: None,
    };
    match guarded(publisher, batch).await {
        Ok(deliveries) => deliveries,
        Err(panic) if batch.len() == 1 => vec![panicked(panic)],
        Err(panic) => {
            tracing::error!(messages = batch.len(), %panic, "the publisher panicked; publishing this batch one message at a time");
            let mut deliveries = Vec::with_capacity(batch.len());
            for message in batch {
                // One answer per message, in order: an empty answer becomes
                // "no answer" here, or every later answer would shift onto
                // the wrong message.
                deliveries.push(
                    match guarded(publisher, std::slice::from_ref(message)).await {
                        Ok(answer) => answer.into_iter().next().unwrap_or(Delivery::Retryable {
                            error: "publisher returned no answer for this message".into(),
                            retry_after: None,
                        }),
                        Err(panic) => panicked(panic),
                    },
                );
            }
            deliveries
        }
    }
}

/// `publisher.publish(batch)`, with a panic turned into its message.
async fn guarded<P: Publisher>(publisher: &P, batch: &[Message]) -> Result<Vec<Delivery>, String> {
    AssertUnwindSafe(publisher.publish(batch))
        .catch_unwind()
        .await
        .map_err(|panic| {
            panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_owned())
        })
}
