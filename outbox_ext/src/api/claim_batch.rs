//! outbox.claim(), the log: what one partition's read does with each
//! message it reads (hand it out, defer it behind its key, or divert it to
//! the side table; docs/storage.md, "Claim"). claim_log.rs reads and writes.

use super::claim::{Lease, Row};
use super::claim_log::Candidate;
use std::collections::HashSet;

/// What one partition's read hands out, diverts and defers.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) handed: Vec<i64>,
    pub(super) diverted: Vec<i64>,
    pub(super) deferred: Vec<i64>,
    /// Keys handed out in this batch, and keys with a message deferred.
    pub(super) keys: HashSet<String>,
    pub(super) deferred_keys: HashSet<String>,
}

impl Batch {
    /// Keep a message for the partition's next batch.
    pub(super) fn defer(&mut self, r: Candidate) {
        self.deferred.push(r.id);
        if let Some(k) = r.key {
            self.deferred_keys.insert(k);
        }
    }

    /// Decide one message, in id order (docs/storage.md, "Claim"):
    /// - its key is in this batch or has a message deferred: defer it (a
    ///   batch never holds two messages of one key, and a key's messages
    ///   go out in order);
    /// - its key has a message in the side table (`busy`), it is not due
    ///   (scheduled for later than the claim's now), or its topic is not
    ///   claimed: divert it to the side table;
    /// - otherwise hand it out.
    pub(super) fn deal(
        &mut self,
        r: Candidate,
        busy: &mut HashSet<String>,
        lease: &Lease<'_>,
        topics: Option<&[&str]>,
        out: &mut Vec<Row>,
    ) {
        if r.key
            .as_ref()
            .is_some_and(|k| self.keys.contains(k) || self.deferred_keys.contains(k))
        {
            self.defer(r);
            return;
        }
        // Not yet due only if it was scheduled (deliver_at after its
        // created_at): an unscheduled message's deliver_at is its
        // producer's transaction start, which can be later than this
        // claim's `now` when the producer began after the claim did and
        // committed before its read. Comparing that with `now` diverted a
        // third of all messages under steady load (measured: 14.5k of 40k
        // at 2000/s), each then costing a side-table insert, claim and
        // delete.
        let not_due = r.deliver_at > lease.now && r.deliver_at > r.created_at;
        let keep_back = r.key.as_ref().is_some_and(|k| busy.contains(k))
            || not_due
            || topics.is_some_and(|t| !t.contains(&r.topic.as_str()));
        if keep_back {
            self.diverted.push(r.id);
            if let Some(k) = r.key {
                busy.insert(k);
            }
            return;
        }
        self.handed.push(r.id);
        if let Some(k) = &r.key {
            self.keys.insert(k.clone());
        }
        out.push((
            r.id,
            r.topic,
            r.key,
            r.payload,
            r.headers,
            1,
            lease.token,
            lease.expires_at,
            r.created_at,
        ));
    }
}
