//! One worker: its own connection, one batch in flight at a time.
//!
//! Per-key order holds end to end without any bookkeeping here: the database
//! never hands out a message while an older one of its key is unfinished,
//! and a worker completes a message only after the broker acknowledged it.
//!
//! # One transaction per batch
//!
//! When the broker acknowledged a whole batch, the worker completes it and
//! claims the next one in one pipelined transaction (`BEGIN`, complete,
//! claim, `COMMIT` in one round trip): one commit per batch instead of two.
//! If anything in it fails, nothing of it happened, and the worker settles
//! the batch the ordinary way (with its reconnects and retries) instead.

use super::connect::Conn;
use super::{connect, RelayStats, Shared};
use crate::publish::{Delivery, Publisher};
use crate::{Error, LeaseToken, Message};
use std::sync::Arc;
use std::time::Duration;

pub(crate) async fn run<P: Publisher>(n: usize, shared: Arc<Shared<P>>) -> Result<(), Error> {
    let cfg = shared.config.clone();
    let mut wake = shared.wake.subscribe();
    let mut client: Option<Conn> = None;
    let mut idle = false;
    // A batch claimed together with the completion of the previous one.
    let mut next: Option<Vec<Message>> = None;
    loop {
        if shared.shutdown.is_cancelled() {
            break;
        }
        if !ensure_connected(&shared, &mut client).await? {
            break;
        }
        let c = client.as_ref().expect("connected above");
        wake.borrow_and_update();
        let claimed = match next.take() {
            Some(batch) => Ok(batch),
            None => claim(c, &cfg).await,
        };
        let batch = match claimed {
            Ok(batch) => batch,
            Err(e) if e.is_transient() => {
                tracing::warn!(worker = n, error = %e, "claim failed; reconnecting");
                client = None;
                continue;
            }
            Err(e) => return Err(e),
        };
        if batch.is_empty() {
            set_idle(&shared, &mut idle, true);
            tokio::select! {
                _ = wake.changed() => {}
                () = tokio::time::sleep(cfg.poll_interval) => {}
                () = shared.shutdown.cancelled() => {}
            }
            continue;
        }
        set_idle(&shared, &mut idle, false);
        tracing::debug!(worker = n, messages = batch.len(), "claimed");
        next = deliver(&shared, &mut client, batch).await?;
    }
    set_idle(&shared, &mut idle, false);
    Ok(())
}

fn set_idle<P>(shared: &Shared<P>, idle: &mut bool, now: bool) {
    if *idle != now {
        *idle = now;
        shared
            .idle
            .send_modify(|n| if now { *n += 1 } else { *n -= 1 });
    }
}

/// Connect if needed; false when shutdown came first.
async fn ensure_connected<P>(shared: &Shared<P>, client: &mut Option<Conn>) -> Result<bool, Error> {
    if client.as_ref().is_some_and(|c| !c.is_closed()) {
        return Ok(true);
    }
    if client.take().is_some() {
        tracing::warn!("connection to PostgreSQL lost; reconnecting");
    }
    let cfg = &shared.config;
    *client = connect::with_backoff("connect", cfg.reconnect_max, &shared.shutdown, || {
        connect::connect_prepared(cfg)
    })
    .await?;
    Ok(client.is_some())
}

/// Publish one claimed batch and settle every message of it; the next batch
/// when settling claimed it too.
async fn deliver<P: Publisher>(
    shared: &Shared<P>,
    client: &mut Option<Conn>,
    batch: Vec<Message>,
) -> Result<Option<Vec<Message>>, Error> {
    let cfg = &shared.config;
    let started = std::time::Instant::now();
    let token = batch[0].lease_token;
    let ids: Vec<i64> = batch.iter().map(|m| m.id).collect();
    let c = client.as_ref().expect("connected by the caller");
    if shared.shutdown.is_cancelled() {
        // Claimed just as shutdown began and not started: hand it back.
        if let Ok(n) = c.prepared.release(&c.client, &ids, token).await {
            RelayStats::add(&shared.stats.released, n);
        }
        return Ok(None);
    }

    // Keep the lease alive while the broker is slow.
    let keep_alive = async {
        let every = cfg.lease / 3;
        loop {
            tokio::time::sleep(every).await;
            match c.prepared.extend(&c.client, &ids, token, cfg.lease).await {
                Ok(n) if (n as usize) < ids.len() => {
                    tracing::warn!(held = n, of = ids.len(), "lease partly lost while publishing; another relay may deliver those messages too");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not extend the lease"),
            }
        }
    };
    let deliveries = tokio::select! {
        d = shared.publisher.publish(&batch) => d,
        () = keep_alive => unreachable!("the keep-alive loop never ends"),
    };

    let mut acked = Vec::new();
    let mut failed = Vec::new();
    for (message, delivery) in
        batch.iter().zip(
            deliveries
                .into_iter()
                .chain(std::iter::repeat(Delivery::Retryable {
                    error: "publisher returned no answer for this message".into(),
                    retry_after: None,
                })),
        )
    {
        match delivery {
            Delivery::Acked => acked.push(message),
            other => failed.push((message, other)),
        }
    }
    if failed.is_empty() && !shared.shutdown.is_cancelled() {
        if let Some(next) = complete_and_claim(shared, client, token, &acked).await {
            shared.metrics.batch(started.elapsed().as_secs_f64());
            return Ok(Some(next));
        }
    }
    let result = settle(shared, client, token, &acked, &failed).await;
    shared.metrics.batch(started.elapsed().as_secs_f64());
    result.map(|()| None)
}

/// Complete `acked` and claim the next batch in one pipelined transaction.
/// `None` if any part failed: then nothing of it was committed (or, if only
/// the answer to COMMIT was lost, the completion repeats harmlessly and the
/// claimed batch's lease runs out and it is delivered again).
async fn complete_and_claim<P>(
    shared: &Shared<P>,
    client: &mut Option<Conn>,
    token: LeaseToken,
    acked: &[&Message],
) -> Option<Vec<Message>> {
    let cfg = &shared.config;
    let c = client.as_ref().filter(|c| !c.is_closed())?;
    let ids: Vec<i64> = acked.iter().map(|m| m.id).collect();
    // Polled together (and first in this order: `biased`), these go out as
    // one pipeline: tokio-postgres sends each request when first polled.
    let (begin, completed, claimed, commit) = tokio::join!(
        biased;
        c.client.batch_execute("BEGIN"),
        c.prepared.complete(&c.client, &ids, token),
        claim(c, cfg),
        c.client.batch_execute("COMMIT"),
    );
    let outcome = begin
        .map_err(Error::from)
        .and(completed)
        .and_then(|n| Ok((n, claimed?)))
        .and_then(|r| commit.map(|()| r).map_err(Error::from));
    match outcome {
        Ok((n, next)) => {
            count_completed(shared, acked, n);
            Some(next)
        }
        Err(e) => {
            // A server error aborted the transaction and the pipeline's own
            // COMMIT ended it; only a broken connection needs more.
            tracing::debug!(error = %e, "complete-and-claim failed; settling the batch on its own");
            if c.client.is_closed() || e.is_transient() {
                *client = None;
            }
            None
        }
    }
}

/// Claim the next batch with the relay's settings.
async fn claim(c: &Conn, cfg: &super::RelayConfig) -> Result<Vec<Message>, Error> {
    c.prepared
        .claim(
            &c.client,
            &cfg.owner,
            cfg.batch_size,
            cfg.lease,
            cfg.topics.as_deref(),
        )
        .await
}

/// Account for `n` of `acked` completed; fewer means some leases had
/// expired and been taken over.
fn count_completed<P>(shared: &Shared<P>, acked: &[&Message], n: u64) {
    RelayStats::add(&shared.stats.published, n);
    shared.metrics.acked(acked);
    if (n as usize) < acked.len() {
        tracing::warn!(
            completed = n,
            of = acked.len(),
            "some leases went stale before completion; those messages will be delivered again"
        );
    }
}

/// Complete what was acknowledged and fail the rest, reconnecting if the
/// connection dropped meanwhile: the lease token stays valid until it
/// expires, so a reconnect can still finish the batch.
async fn settle<P>(
    shared: &Shared<P>,
    client: &mut Option<Conn>,
    token: LeaseToken,
    acked: &[&Message],
    failed: &[(&Message, Delivery)],
) -> Result<(), Error> {
    let cfg = &shared.config;
    let deadline = tokio::time::Instant::now() + cfg.lease;
    let mut completed = false;
    let mut next_failure = 0;
    while tokio::time::Instant::now() < deadline {
        if !ensure_connected_until(shared, client, deadline).await? {
            break;
        }
        let c = client.as_ref().expect("connected above");
        let result: Result<(), Error> = async {
            if !completed && !acked.is_empty() {
                let ids: Vec<i64> = acked.iter().map(|m| m.id).collect();
                let n = c.prepared.complete(&c.client, &ids, token).await?;
                count_completed(shared, acked, n);
            }
            completed = true;
            while let Some((message, delivery)) = failed.get(next_failure) {
                let (error, retry_in, permanent) = match delivery {
                    Delivery::Retryable { error, retry_after } => {
                        (error.as_str(), *retry_after, false)
                    }
                    Delivery::Permanent { error } => (error.as_str(), None, true),
                    Delivery::Acked => unreachable!("acked messages are completed above"),
                };
                match c
                    .prepared
                    .fail(&c.client, message.id, token, error, retry_in, permanent)
                    .await?
                {
                    crate::FailOutcome::Dead => {
                        RelayStats::add(&shared.stats.dead, 1);
                        shared.metrics.failed(&message.topic, true);
                    }
                    crate::FailOutcome::Retrying { .. } => {
                        RelayStats::add(&shared.stats.failed, 1);
                        shared.metrics.failed(&message.topic, false);
                    }
                    crate::FailOutcome::Stale => {}
                }
                next_failure += 1;
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "settling a batch failed; reconnecting");
                *client = None;
            }
            Err(e) => return Err(e),
        }
    }
    tracing::warn!("could not settle a batch before its lease expired; it will be delivered again");
    Ok(())
}

async fn ensure_connected_until<P>(
    shared: &Shared<P>,
    client: &mut Option<Conn>,
    deadline: tokio::time::Instant,
) -> Result<bool, Error> {
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    match tokio::time::timeout(
        left.max(Duration::from_millis(1)),
        ensure_connected_ignoring_shutdown(shared, client),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Ok(false),
    }
}

/// Settling must go on during the soft shutdown phase.
async fn ensure_connected_ignoring_shutdown<P>(
    shared: &Shared<P>,
    client: &mut Option<Conn>,
) -> Result<bool, Error> {
    if client.as_ref().is_some_and(|c| !c.is_closed()) {
        return Ok(true);
    }
    let never = tokio_util::sync::CancellationToken::new();
    let cfg = &shared.config;
    *client = connect::with_backoff("reconnect", cfg.reconnect_max, &never, || {
        connect::connect_prepared(cfg)
    })
    .await?;
    Ok(client.is_some())
}
