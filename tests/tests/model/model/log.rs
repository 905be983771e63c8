//! The log's half of the model (docs/storage.md, "The log", "Partitions
//! and windows", "Claim"): 16 partitions, each with a window, a read
//! position in it and at most one batch lease, as `api/claim_log.rs`,
//! `claim_partition.sql`, `window_*.sql`, `divert.sql`, `detach.sql`,
//! `partition_complete.sql` and `partition_extend.sql` keep them.
//!
//! Every step of a case autocommits, so a window — what committed between
//! two snapshots — is simply the partition's ids in `(lo, hi]`, where `hi`
//! is the last id issued when the window opened and `lo` the previous
//! window's `hi`.

use super::{Model, Place};
use std::collections::{BTreeSet, HashSet};

/// outbox.partitions has this many rows (enqueue.sql's `& 15`).
pub const PARTITIONS: usize = 16;
/// Reads of one partition per claim (claim_log.rs's MAX_READS).
const MAX_READS: usize = 8;
/// Most messages a partition holds deferred (claim_log.rs's MAX_DEFERRED).
const MAX_DEFERRED: usize = 256;
/// claim_partition.sql visits only a partition that may have work: its
/// window is not used up, or one of its messages is beyond the window.
const SKIP_IDLE: bool = true;

/// What one partition's read hands out, diverts and defers.
#[derive(Default)]
struct Deal {
    handed: Vec<i64>,
    diverted: Vec<i64>,
    deferred: Vec<i64>,
    /// Keys handed out, deferred, and diverted in this read of the partition.
    keys: HashSet<String>,
    deferred_keys: HashSet<String>,
    diverted_keys: HashSet<String>,
}

impl Deal {
    fn defer(&mut self, id: i64, key: Option<String>) {
        self.deferred.push(id);
        self.deferred_keys.extend(key);
    }
}

/// One row of outbox.partitions.
#[derive(Debug, Clone)]
pub struct Partition {
    /// The current window: this partition's ids in (lo, hi].
    pub lo: i64,
    pub hi: i64,
    /// Every id of the window has been read (handed out or diverted).
    pub window_done: bool,
    /// The ids handed out under `lease` and not yet settled.
    pub batch: BTreeSet<i64>,
    /// Where reading goes on once the batch is settled (the cursor).
    pub batch_end: i64,
    /// (claim index, lease end) of the batch; None when no batch is out.
    pub lease: Option<(usize, i64)>,
    /// The claim that last read this partition (claimed_at; None sorts first).
    pub claimed_at: Option<usize>,
    /// Read but held for the next batch (their key was in the batch), in
    /// id order: in the log, unfinished, attempt 0.
    pub deferred: Vec<i64>,
}

impl Default for Partition {
    /// rotation.sql's first row: an empty window, used up.
    fn default() -> Self {
        Partition {
            lo: 0,
            hi: 0,
            window_done: true,
            batch: BTreeSet::new(),
            batch_end: 0,
            lease: None,
            claimed_at: None,
            deferred: Vec::new(),
        }
    }
}

impl Model {
    /// The partition a message's log row is in: its key's hash, or its id.
    pub fn part_of(&self, id: i64, key: Option<&str>) -> usize {
        match key {
            Some(k) => self.key_parts[k],
            None => (id & 15) as usize,
        }
    }

    /// claim_partition.sql's probe: it has deferred messages, its window is
    /// not used up, or a message of it came after the window.
    fn may_have_work(&self, p: usize) -> bool {
        let part = &self.parts[p];
        !part.deferred.is_empty()
            || !part.window_done
            || self.msgs.iter().any(|(&id, m)| m.part == p && id > part.hi)
    }

    /// claim_log.rs's claim(): read partition after partition, the one
    /// claimed longest ago first, until `room` more rows are handed out.
    pub(super) fn claim_log(
        &mut self,
        index: usize,
        end: i64,
        room: usize,
        topics: Option<&[usize]>,
        out: &mut Vec<(i64, i32)>,
    ) {
        let mut tried: BTreeSet<usize> = BTreeSet::new();
        let mut left = room;
        while left > 0 && tried.len() < PARTITIONS {
            let next = (0..PARTITIONS)
                .filter(|p| !tried.contains(p) && self.parts[*p].lease.is_none())
                .filter(|&p| !SKIP_IDLE || self.may_have_work(p))
                .min_by_key(|&p| (self.parts[p].claimed_at, p));
            let Some(p) = next else { break };
            tried.insert(p);
            left -= self.read_partition(p, index, end, left, topics, out);
        }
    }

    /// claim_log.rs's read_partition(): the deferred messages first, then
    /// up to MAX_READS reads of the window, each message handed out,
    /// diverted to the side table or deferred to the partition's next batch
    /// (Deal); returns how many it handed out.
    fn read_partition(
        &mut self,
        p: usize,
        index: usize,
        end: i64,
        room: usize,
        topics: Option<&[usize]>,
        out: &mut Vec<(i64, i32)>,
    ) -> usize {
        let mut position = self.parts[p].batch_end;
        let mut opened = false;
        if self.parts[p].window_done {
            let part = &mut self.parts[p];
            part.lo = part.hi;
            part.hi = self.issued;
            part.batch_end = 0;
            position = 0;
            opened = true;
        }
        let (mut lo, mut hi) = (self.parts[p].lo, self.parts[p].hi);
        let mut deal = Deal::default();
        // They are older than anything unread.
        for id in std::mem::take(&mut self.parts[p].deferred) {
            if deal.handed.len() >= room {
                deal.defer(id, self.msgs[&id].key.clone());
            } else {
                self.deal(&mut deal, id, topics);
            }
        }
        let mut window_done = false;
        'reads: for _ in 0..MAX_READS {
            if deal.handed.len() >= room {
                break;
            }
            let want = room - deal.handed.len();
            // The log keeps every row: what was read before lies at or
            // below the position, or in an earlier window.
            let rows: Vec<i64> = self
                .msgs
                .range(position.max(lo) + 1..)
                .take_while(|(&id, _)| id <= hi)
                .filter(|(_, m)| m.part == p)
                .map(|(&id, _)| id)
                .take(want)
                .collect();
            let short = rows.len() < want;
            for id in rows {
                if deal.deferred.len() >= MAX_DEFERRED {
                    // Not consumed: the next batch starts here.
                    break 'reads;
                }
                position = id;
                self.deal(&mut deal, id, topics);
            }
            if short {
                // Used up: once per visit, a claim with room goes on into
                // the next window (claim_log.rs).
                if opened || deal.handed.len() >= room {
                    window_done = true;
                    break;
                }
                let part = &mut self.parts[p];
                part.lo = part.hi;
                part.hi = self.issued;
                (lo, hi) = (part.lo, part.hi);
                position = 0;
                opened = true;
            }
        }
        for &id in &deal.diverted {
            let m = self.msgs.get_mut(&id).expect("a log row is a message");
            m.side = true;
            m.attempt = 0;
            m.lease = None;
        }
        for &id in &deal.handed {
            let m = self.msgs.get_mut(&id).expect("a log row is a message");
            m.attempt = 1;
            m.lease = Some((index, end));
            out.push((id, 1));
        }
        let part = &mut self.parts[p];
        part.batch = deal.handed.iter().copied().collect();
        part.batch_end = position;
        part.lease = (!deal.handed.is_empty()).then_some((index, end));
        part.window_done = window_done;
        part.claimed_at = Some(index);
        part.deferred = deal.deferred;
        deal.handed.len()
    }

    /// claim_batch.rs's Batch::deal(), for one message in id order: its key
    /// is in this batch or deferred → defer; its key has a message in the
    /// side table (including one this claim diverted), it is not due, or
    /// its topic is not claimed → divert; else hand it out.
    fn deal(&self, deal: &mut Deal, id: i64, topics: Option<&[usize]>) {
        let m = &self.msgs[&id];
        let key = m.key.clone();
        if key
            .as_ref()
            .is_some_and(|k| deal.keys.contains(k) || deal.deferred_keys.contains(k))
        {
            deal.defer(id, key);
            return;
        }
        let busy = key
            .as_ref()
            .is_some_and(|k| deal.diverted_keys.contains(k) || self.key_in_side(k));
        if busy || m.deliver_at > self.now || topics.is_some_and(|t| !t.contains(&m.topic)) {
            deal.diverted.push(id);
            deal.diverted_keys.extend(key);
            return;
        }
        deal.handed.push(id);
        deal.keys.extend(key);
    }

    /// side_keys.sql: the key has a message in the side table.
    fn key_in_side(&self, key: &str) -> bool {
        self.msgs
            .values()
            .any(|m| m.place == Place::Live && m.side && m.key.as_deref() == Some(key))
    }

    /// claim()'s first step (expired_batches.sql): the unsettled rest of
    /// every batch whose lease expired moves to the side table, where it is
    /// a suspect.
    pub(super) fn recover_expired(&mut self) {
        let now = self.now;
        let expired: Vec<(usize, Vec<i64>)> = self
            .parts
            .iter()
            .filter_map(|p| match p.lease {
                Some((c, end)) if end <= now && !p.batch.is_empty() => {
                    Some((c, p.batch.iter().copied().collect()))
                }
                _ => None,
            })
            .collect();
        for (c, batch) in expired {
            self.detach(&batch, Some(c));
        }
    }

    /// detach.sql: the members of `ids` in a batch that claim `claim`'s
    /// token holds move to the side table, still leased (same token, same
    /// end, attempt 1); a batch left empty frees its partition.
    pub(super) fn detach(&mut self, ids: &[i64], claim: Option<usize>) {
        let Some(c) = claim else { return };
        for p in 0..PARTITIONS {
            let part = &mut self.parts[p];
            if part.lease.map(|(holder, _)| holder) != Some(c) {
                continue;
            }
            let moved: Vec<i64> = ids
                .iter()
                .copied()
                .filter(|id| part.batch.remove(id))
                .collect();
            if part.batch.is_empty() {
                part.lease = None;
            }
            for id in moved {
                self.msgs.get_mut(&id).expect("a batch member").side = true;
            }
        }
    }

    /// partition_complete.sql: members of `ids` in batches the token holds
    /// are done; how many.
    pub(super) fn complete_in_log(&mut self, ids: &[i64], claim: Option<usize>) -> usize {
        let Some(c) = claim else { return 0 };
        let mut n = 0;
        for p in 0..PARTITIONS {
            let part = &mut self.parts[p];
            if part.lease.map(|(holder, _)| holder) != Some(c) {
                continue;
            }
            let done: Vec<i64> = ids
                .iter()
                .copied()
                .filter(|id| part.batch.remove(id))
                .collect();
            if part.batch.is_empty() {
                part.lease = None;
            }
            n += done.len();
            for id in done {
                let m = self.msgs.get_mut(&id).expect("a batch member");
                m.place = Place::Gone;
                m.lease = None;
            }
        }
        n
    }

    /// partition_extend.sql: every batch of the token that `ids` covers
    /// whole gets the new end (all its messages); returns the ids covered.
    pub(super) fn extend_in_log(
        &mut self,
        ids: &[i64],
        claim: Option<usize>,
        end: i64,
    ) -> Vec<i64> {
        let Some(c) = claim else { return Vec::new() };
        let mut covered = Vec::new();
        for p in 0..PARTITIONS {
            let part = &mut self.parts[p];
            let whole = !part.batch.is_empty() && part.batch.iter().all(|id| ids.contains(id));
            if part.lease.map(|(holder, _)| holder) != Some(c) || !whole {
                continue;
            }
            part.lease = Some((c, end));
            covered.extend(part.batch.iter().copied());
        }
        for id in &covered {
            self.msgs.get_mut(id).expect("a batch member").lease = Some((c, end));
        }
        covered
    }
}
