//! [`Outcome`]: a published batch as the publisher answered it, every row
//! either acknowledged or failed. The two are different types, so a row
//! cannot be both, nor acknowledged with an error.

use crate::publish::Delivery;
use crate::{Claim, LeaseToken, Message};
use std::time::{Duration, Instant};

/// One row to fail: the publisher's refusal, or an undeliverable row.
pub(crate) struct Failure<'b> {
    pub id: i64,
    pub token: LeaseToken,
    pub topic: &'b str,
    pub error: String,
    pub retry_in: Option<Duration>,
    pub permanent: bool,
}

/// What to settle for one batch.
pub(crate) struct Outcome<'b> {
    /// Acknowledged by the broker: complete these.
    pub acked: Vec<&'b Message>,
    /// Refused, unanswered or undeliverable: fail these.
    pub failed: Vec<Failure<'b>>,
    /// When publishing began, for the batch duration metric.
    pub started: Instant,
}

impl<'b> Outcome<'b> {
    /// Pair the publisher's answers with the batch's messages, in order. A
    /// message without an answer (a publisher that answered too few) is
    /// retried; undeliverable rows are dead-lettered.
    pub fn new(batch: &'b Claim, deliveries: Vec<Delivery>, started: Instant) -> Self {
        if deliveries.len() != batch.messages.len() {
            tracing::warn!(
                answers = deliveries.len(),
                messages = batch.messages.len(),
                "the publisher did not answer once per message; messages without an answer are retried"
            );
        }
        let mut failed: Vec<Failure<'b>> = batch
            .undeliverable
            .iter()
            .map(|u| Failure {
                id: u.id,
                token: u.lease_token,
                topic: u.topic.as_deref().unwrap_or(""),
                error: u.error(),
                retry_in: None,
                permanent: true,
            })
            .collect();
        let mut acked = Vec::with_capacity(batch.messages.len());
        let mut deliveries = deliveries.into_iter();
        for message in &batch.messages {
            let failure = |error: String, retry_in, permanent| Failure {
                id: message.id,
                token: message.lease_token,
                topic: &message.topic,
                error,
                retry_in,
                permanent,
            };
            match deliveries.next() {
                Some(Delivery::Acked) => acked.push(message),
                Some(Delivery::Retryable { error, retry_after }) => {
                    failed.push(failure(error, retry_after, false));
                }
                Some(Delivery::Permanent { error }) => failed.push(failure(error, None, true)),
                None => failed.push(failure(
                    "publisher returned no answer for this message".into(),
                    None,
                    false,
                )),
            }
        }
        Outcome {
            acked,
            failed,
            started,
        }
    }
}
