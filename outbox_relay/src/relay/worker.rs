//! One worker: its own [`Session`], one batch in flight at a time. [`run`]
//! is the life of a batch: the next batch, publish it, settle it.
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
//! A claimed row the client cannot decode ([`Claim::undeliverable`]) never
//! reaches the publisher. It is settled with the batch's failures as
//! `fail(permanent => true)` with `undeliverable: <reason>`: a dead letter,
//! which no longer holds back its key.

use super::guard;
use super::leases::Leases;
use super::outcome::Outcome;
use super::session::{Conn, Patience, Session};
use super::Shared;
use crate::publish::Publisher;
use crate::trace::PublishSpans;
use crate::{Claim, Error, Message};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

pub(crate) async fn run<P: Publisher>(n: usize, shared: Arc<Shared<P>>) -> Result<(), Error> {
    let mut worker = Worker::new(n, shared);
    while let Some(batch) = worker.next_batch().await? {
        let outcome = worker.publish(&batch).await;
        worker.settle(outcome).await?;
    }
    worker.stop().await;
    Ok(())
}

struct Worker<P> {
    n: usize,
    shared: Arc<Shared<P>>,
    session: Session,
    wake: watch::Receiver<u64>,
    idle: bool,
    /// Claimed in the transaction that completed the previous batch.
    prefetched: Option<Claim>,
}

impl<P: Publisher> Worker<P> {
    fn new(n: usize, shared: Arc<Shared<P>>) -> Self {
        Worker {
            n,
            session: Session::new(shared.config.clone(), "worker"),
            wake: shared.wake.subscribe(),
            shared,
            idle: false,
            prefetched: None,
        }
    }

    /// The next batch with anything in it, sleeping while there is none;
    /// `None` once shutdown began.
    async fn next_batch(&mut self) -> Result<Option<Claim>, Error> {
        let shared = self.shared.clone();
        let cfg = &shared.config;
        loop {
            if shared.shutdown.is_cancelled() {
                return Ok(None);
            }
            self.wake.borrow_and_update();
            let batch = match self.prefetched.take() {
                Some(batch) => batch,
                None => {
                    let patience = Patience::UntilShutdown(&shared.shutdown);
                    let Some(c) = self.session.connected(patience).await? else {
                        return Ok(None);
                    };
                    match c.claim().await {
                        Ok(batch) => batch,
                        Err(e) if e.is_transient() => {
                            self.session.lost("claim", &e);
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            if batch.is_empty() {
                self.set_idle(true);
                tokio::select! {
                    _ = self.wake.changed() => {}
                    () = tokio::time::sleep(cfg.poll_interval) => {}
                    () = shared.shutdown.cancelled() => {}
                }
                continue;
            }
            self.set_idle(false);
            if usize::try_from(cfg.batch_size).is_ok_and(|size| batch.len() >= size) {
                // A full batch: more may be waiting, and a worker asleep
                // after an empty claim would not see it before the poll
                // interval (5 s by default). An empty claim does not mean
                // nothing is claimable: the log hands out a partition to
                // one claim at a time, so a claim finds nothing while
                // another holds every partition with work. A batch short of
                // full took everything its claim could reach.
                shared.wake_workers();
            }
            tracing::debug!(
                worker = self.n,
                messages = batch.messages.len(),
                undeliverable = batch.undeliverable.len(),
                "claimed"
            );
            if shared.shutdown.is_cancelled() {
                // Claimed just as shutdown began and not started: hand it back.
                self.release(&batch).await;
                return Ok(None);
            }
            return Ok(Some(batch));
        }
    }

    /// Hand the batch's messages to the publisher, keeping their lease alive
    /// while the broker is slow; every row comes back acknowledged or failed.
    async fn publish<'b>(&self, batch: &'b Claim) -> Outcome<'b> {
        let started = Instant::now();
        if batch.messages.is_empty() {
            // Only undeliverable rows: nothing to publish.
            return Outcome::new(batch, Vec::new(), started);
        }
        let spans = PublishSpans::open(&batch.messages, self.shared.publisher.system());
        let publishing = guard::publish(&*self.shared.publisher, &batch.messages);
        let deliveries = match self.session.open() {
            Some(c) => {
                let leases = Leases::of_claim(batch);
                tokio::select! {
                    d = publishing => d,
                    () = keep_alive(c, &leases, self.shared.config.lease) => {
                        unreachable!("the keep-alive loop has no exit")
                    }
                }
            }
            // Lost since the claim: nothing can extend the lease, and
            // settling reconnects.
            None => publishing.await,
        };
        spans.close(&deliveries);
        Outcome::new(batch, deliveries, started)
    }

    /// Complete what was acknowledged and fail the rest: with the next
    /// claim in one transaction when nothing failed, else call by call.
    async fn settle(&mut self, outcome: Outcome<'_>) -> Result<(), Error> {
        let result = if outcome.failed.is_empty() && !self.shared.shutdown.is_cancelled() {
            match self.complete_and_claim(&outcome.acked).await {
                Some(next) => {
                    self.prefetched = Some(next);
                    Ok(())
                }
                None => self.settle_each(&outcome).await,
            }
        } else {
            self.settle_each(&outcome).await
        };
        self.shared.counters.batch(outcome.started);
        result
    }

    /// Complete `acked` and claim the next batch in one pipelined
    /// transaction. `None` if any part failed: then nothing of it was
    /// committed (or, if only the answer to COMMIT was lost, the completion
    /// repeats harmlessly and the claimed batch's lease runs out and it is
    /// delivered again).
    async fn complete_and_claim(&mut self, acked: &[&Message]) -> Option<Claim> {
        let c = self.session.open()?;
        let leases = Leases::of_messages(acked);
        // One token (always, from one claim) fits one complete_batch call.
        let (token, ids) = leases.single()?;
        // Polled together (and first in this order: `biased`), these go out
        // as one pipeline: tokio-postgres sends each request when first
        // polled.
        let (begin, complete, claimed, commit) = tokio::join!(
            biased;
            c.client().batch_execute("BEGIN"),
            c.complete_batch(ids, token),
            c.claim(),
            c.client().batch_execute("COMMIT"),
        );
        let outcome = begin
            .map_err(Error::from)
            .and(complete)
            .and_then(|n| Ok((n, claimed?)))
            .and_then(|r| commit.map(|()| r).map_err(Error::from));
        match outcome {
            Ok((n, next)) => {
                completed(&self.shared, acked, n);
                Some(next)
            }
            Err(e) => {
                // A server error aborted the transaction and the pipeline's
                // own COMMIT ended it; only a broken connection needs more.
                tracing::debug!(error = %e, "complete-and-claim failed; settling the batch on its own");
                if c.client().is_closed() || e.is_transient() {
                    self.session.lost("complete-and-claim", &e);
                }
                None
            }
        }
    }

    /// Settle call by call, reconnecting if the connection drops meanwhile:
    /// the lease token stays valid until it expires, so a reconnect can
    /// still finish the batch. This goes on in the soft shutdown phase.
    async fn settle_each(&mut self, outcome: &Outcome<'_>) -> Result<(), Error> {
        let shared = self.shared.clone();
        let deadline = tokio::time::Instant::now() + shared.config.lease;
        let completing = Leases::of_messages(&outcome.acked);
        let mut done = completing.is_empty();
        let mut failures = outcome.failed.iter().peekable();
        while tokio::time::Instant::now() < deadline {
            let Some(c) = self.session.connected(Patience::Until(deadline)).await? else {
                break;
            };
            let result: Result<(), Error> = async {
                if !done {
                    let n = completing.complete_batch(c).await?;
                    completed(&shared, &outcome.acked, n);
                    done = true;
                }
                while let Some(f) = failures.peek() {
                    let decided = c
                        .fail(f.id, f.token, &f.error, f.retry_in, f.permanent)
                        .await?;
                    shared.counters.failed(f.topic, &decided);
                    failures.next();
                }
                Ok(())
            }
            .await;
            match result {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() => self.session.lost("settling a batch", &e),
                Err(e) => return Err(e),
            }
        }
        tracing::warn!(
            "could not settle a batch before its lease expired; it will be delivered again"
        );
        Ok(())
    }

    /// Hand a batch back without spending an attempt (best effort: if this
    /// fails, its leases expire and it is delivered again anyway).
    async fn release(&self, batch: &Claim) {
        let Some(c) = self.session.open() else {
            return;
        };
        match Leases::of_claim(batch).release_batch(c).await {
            Ok(n) => self.shared.counters.released(n),
            Err(e) => {
                tracing::warn!(error = %e, "could not release a batch; its lease will expire")
            }
        }
    }

    /// Shutdown: a batch claimed with the last completion was never
    /// started, so it goes back unspent.
    async fn stop(&mut self) {
        if let Some(batch) = self.prefetched.take() {
            self.release(&batch).await;
        }
        self.set_idle(false);
    }

    /// Whether this worker counts towards "every worker found nothing", the
    /// doorbell's condition to arm.
    fn set_idle(&mut self, now: bool) {
        if self.idle != now {
            self.idle = now;
            let change = |n: &mut usize| if now { *n += 1 } else { *n -= 1 };
            self.shared.idle.send_modify(change);
        }
    }
}

/// Count `n` of `acked` completed; fewer means some leases had expired and
/// been taken over.
fn completed<P>(shared: &Shared<P>, acked: &[&Message], n: u64) {
    shared.counters.completed(acked, n);
    if (n as usize) < acked.len() {
        tracing::warn!(
            completed = n,
            of = acked.len(),
            "some leases went stale before completion; those messages will be delivered again"
        );
    }
}

/// Extend the lease every third of it, for as long as it is polled.
async fn keep_alive(c: &Conn, leases: &Leases, lease: std::time::Duration) {
    loop {
        tokio::time::sleep(lease / 3).await;
        match leases.extend_batch(c).await {
            Ok(n) if (n as usize) < leases.len() => {
                tracing::warn!(held = n, of = leases.len(), "lease partly lost while publishing; another relay may deliver those messages too");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not extend the lease"),
        }
    }
}
