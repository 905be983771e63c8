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
//!
//! # Undeliverable rows
//!
//! A claimed row the client cannot decode ([`crate::Claim::undeliverable`])
//! never reaches the publisher. It is settled with the batch's failures as
//! `fail(permanent => true)` with `undeliverable: <reason>`: a dead letter,
//! which no longer holds back its key.

use super::connect::Conn;
use super::leases::Leases;
use super::{connect, guard, RelayStats, Shared};
use crate::publish::{Delivery, Publisher};
use crate::{Claim, Error, LeaseToken, Message};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

pub(crate) async fn run<P: Publisher>(n: usize, shared: Arc<Shared<P>>) -> Result<(), Error> {
    let cfg = shared.config.clone();
    let mut wake = shared.wake.subscribe();
    let mut client: Option<Conn> = None;
    let mut idle = false;
    // A batch claimed together with the completion of the previous one.
    let mut next: Option<Claim> = None;
    loop {
        if shared.shutdown.is_cancelled() {
            break;
        }
        let Some(c) = ensure_connected(&shared, &mut client).await? else {
            break;
        };
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
        if usize::try_from(cfg.batch_size).is_ok_and(|size| batch.len() >= size) {
            // A full batch: more may be waiting, and a worker asleep after
            // an empty claim would not see it before the poll interval (5 s
            // by default). An empty claim does not mean nothing is
            // claimable: the log hands out a partition to one claim at a
            // time, so a claim finds nothing while another holds every
            // partition with work. A batch short of full took everything
            // its claim could reach.
            shared.wake_workers();
        }
        tracing::debug!(
            worker = n,
            messages = batch.messages.len(),
            undeliverable = batch.undeliverable.len(),
            "claimed"
        );
        next = deliver(&shared, &mut client, batch).await?;
    }
    // Shutdown came between claiming a batch (with the last completion) and
    // starting it: hand it back unspent.
    if let (Some(batch), Some(c)) = (next.take(), client.as_ref().filter(|c| !c.is_closed())) {
        release(&shared, c, &Leases::of_claim(&batch)).await;
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

/// The connection, connecting if needed; `None` when shutdown came first.
async fn ensure_connected<'c, P>(
    shared: &Shared<P>,
    client: &'c mut Option<Conn>,
) -> Result<Option<&'c Conn>, Error> {
    if client.as_ref().is_some_and(|c| !c.is_closed()) {
        return Ok(client.as_ref());
    }
    if client.take().is_some() {
        tracing::warn!("connection to PostgreSQL lost; reconnecting");
    }
    let cfg = &shared.config;
    *client = connect::with_backoff("connect", cfg.reconnect_max, &shared.shutdown, || {
        connect::connect_prepared(cfg)
    })
    .await?;
    Ok(client.as_ref())
}

/// Hand messages back without spending an attempt (best effort: if this
/// fails, their leases expire and they are delivered again anyway).
async fn release<P>(shared: &Shared<P>, c: &Conn, leases: &Leases) {
    match leases.release(c).await {
        Ok(n) => RelayStats::add(&shared.stats.released, n),
        Err(e) => tracing::warn!(error = %e, "could not release a batch; its lease will expire"),
    }
}

/// One message to fail: the publisher's refusal, or an undeliverable row.
struct Failure<'a> {
    id: i64,
    token: LeaseToken,
    topic: &'a str,
    error: Cow<'a, str>,
    retry_in: Option<Duration>,
    permanent: bool,
}

/// Publish one claimed batch and settle every row of it; the next batch
/// when settling claimed it too.
async fn deliver<P: Publisher>(
    shared: &Shared<P>,
    client: &mut Option<Conn>,
    batch: Claim,
) -> Result<Option<Claim>, Error> {
    let cfg = &shared.config;
    let started = std::time::Instant::now();
    let leases = Leases::of_claim(&batch);
    let Some(c) = client.as_ref() else {
        // The caller connected just before; should it ever not have, the
        // leases simply expire and the batch is delivered again.
        return Ok(None);
    };
    if shared.shutdown.is_cancelled() {
        // Claimed just as shutdown began and not started: hand it back.
        release(shared, c, &leases).await;
        return Ok(None);
    }

    let deliveries = if batch.messages.is_empty() {
        Vec::new() // only undeliverable rows: nothing to publish
    } else {
        // Keep the lease alive while the broker is slow.
        let keep_alive = async {
            let every = cfg.lease / 3;
            loop {
                tokio::time::sleep(every).await;
                match leases.extend(c, cfg.lease).await {
                    Ok(n) if (n as usize) < leases.len() => {
                        tracing::warn!(held = n, of = leases.len(), "lease partly lost while publishing; another relay may deliver those messages too");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not extend the lease"),
                }
            }
        };
        tokio::select! {
            d = guard::publish(&*shared.publisher, &batch.messages) => d,
            () = keep_alive => unreachable!("the keep-alive loop has no exit"),
        }
    };

    let mut acked = Vec::new();
    let mut failed: Vec<Failure<'_>> = batch
        .undeliverable
        .iter()
        .map(|u| Failure {
            id: u.id,
            token: u.lease_token,
            topic: u.topic.as_deref().unwrap_or(""),
            error: Cow::Owned(u.error()),
            retry_in: None,
            permanent: true,
        })
        .collect();
    let no_answer = Delivery::Retryable {
        error: "publisher returned no answer for this message".into(),
        retry_after: None,
    };
    if deliveries.len() != batch.messages.len() {
        tracing::warn!(
            answers = deliveries.len(),
            messages = batch.messages.len(),
            "the publisher did not answer once per message; messages without an answer are retried"
        );
    }
    let mut deliveries = deliveries.into_iter();
    for message in &batch.messages {
        let failure = |error, retry_in, permanent| Failure {
            id: message.id,
            token: message.lease_token,
            topic: &message.topic,
            error,
            retry_in,
            permanent,
        };
        match deliveries.next().unwrap_or_else(|| no_answer.clone()) {
            Delivery::Acked => acked.push(message),
            Delivery::Retryable { error, retry_after } => {
                failed.push(failure(Cow::Owned(error), retry_after, false));
            }
            Delivery::Permanent { error } => failed.push(failure(Cow::Owned(error), None, true)),
        }
    }
    if failed.is_empty() && !shared.shutdown.is_cancelled() {
        if let Some(next) = complete_and_claim(shared, client, &acked).await {
            shared.metrics.batch(started.elapsed().as_secs_f64());
            return Ok(Some(next));
        }
    }
    let result = settle(shared, client, &acked, &failed).await;
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
    acked: &[&Message],
) -> Option<Claim> {
    let cfg = &shared.config;
    let c = client.as_ref().filter(|c| !c.is_closed())?;
    let leases = Leases::of_messages(acked);
    // One token (always, from one claim) fits one complete_batch call.
    let (token, ids) = leases.single()?;
    // Polled together (and first in this order: `biased`), these go out as
    // one pipeline: tokio-postgres sends each request when first polled.
    let (begin, completed, claimed, commit) = tokio::join!(
        biased;
        c.client.batch_execute("BEGIN"),
        c.prepared.complete(&c.client, ids, token),
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
async fn claim(c: &Conn, cfg: &super::RelayConfig) -> Result<Claim, Error> {
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
    acked: &[&Message],
    failed: &[Failure<'_>],
) -> Result<(), Error> {
    let cfg = &shared.config;
    let deadline = tokio::time::Instant::now() + cfg.lease;
    let completing = Leases::of_messages(acked);
    let mut completed = completing.is_empty();
    let mut next_failure = 0;
    while tokio::time::Instant::now() < deadline {
        let Some(c) = ensure_connected_until(shared, client, deadline).await? else {
            break;
        };
        let result: Result<(), Error> = async {
            if !completed {
                let n = completing.complete(c).await?;
                count_completed(shared, acked, n);
                completed = true;
            }
            while let Some(f) = failed.get(next_failure) {
                let outcome = c
                    .prepared
                    .fail(&c.client, f.id, f.token, &f.error, f.retry_in, f.permanent)
                    .await?;
                match outcome {
                    crate::FailOutcome::Dead => {
                        RelayStats::add(&shared.stats.dead, 1);
                        shared.metrics.failed(f.topic, true);
                    }
                    crate::FailOutcome::Retrying { .. } => {
                        RelayStats::add(&shared.stats.failed, 1);
                        shared.metrics.failed(f.topic, false);
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

async fn ensure_connected_until<'c, P>(
    shared: &Shared<P>,
    client: &'c mut Option<Conn>,
    deadline: tokio::time::Instant,
) -> Result<Option<&'c Conn>, Error> {
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let connected = tokio::time::timeout(
        left.max(Duration::from_millis(1)),
        ensure_connected_ignoring_shutdown(shared, client),
    )
    .await;
    match connected {
        Ok(result) => {
            result?;
            Ok(client.as_ref())
        }
        Err(_) => Ok(None),
    }
}

/// Settling goes on during the soft shutdown phase (the hard phase aborts
/// it); true once connected.
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
