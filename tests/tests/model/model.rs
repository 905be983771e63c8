//! The documented state machine (docs/state-machine.md) over the 0.2.0
//! storage (docs/storage.md) as a small in-memory model: a message is in the
//! log (enqueued, unread or in a partition's leased batch: log.rs) or in the
//! side table (diverted, detached, retrying, released, requeued), with
//! claim() in claim.rs. stats(), blocked_keys() and list_dead() look at
//! every unfinished message wherever it is, as the outbox.messages view
//! does. Time is counted in ticks of [`TICK_SECS`]; every lease, delay and
//! clock step the generator makes is a whole number of ticks, so the real
//! clock's drift during a case (milliseconds) never decides a comparison.

mod claim;
mod log;

use log::{Partition, PARTITIONS};
use std::collections::{BTreeMap, BTreeSet};

/// Seconds per tick. Far above the real time one case takes (under a second
/// here; the drift allowed is half a tick, 30 s, for a loaded CI machine), so a
/// comparison the model makes on ticks is the one PostgreSQL makes.
pub const TICK_SECS: i64 = 60;
/// `outbox.retry_base` and `outbox.retry_cap` for the case, in ticks.
pub const RETRY_BASE_TICKS: i64 = 1;
pub const RETRY_CAP_TICKS: i64 = 4;
/// `outbox.max_attempts` for the case (small, so messages die).
pub const DEFAULT_MAX_ATTEMPTS: i32 = 3;
pub const TOPICS: [&str; 2] = ["a", "b"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Permanent,
    MaxAttempts,
    LeaseExpired,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Permanent => "permanent",
            Reason::MaxAttempts => "max_attempts",
            Reason::LeaseExpired => "lease_expired",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Unfinished (in the outbox.messages view): ready, scheduled or
    /// leased, in the log or in the side table (`Msg::side`).
    Live,
    Dead(Reason),
    /// Completed or purged.
    Gone,
}

#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: usize,
    pub key: Option<String>,
    pub attempt: i32,
    pub max_attempts: i32,
    pub created_at: i64,
    pub deliver_at: i64,
    /// (claim index, lease end): the token that holds it and until when.
    /// For a message of a leased log batch, its partition's lease.
    pub lease: Option<(usize, i64)>,
    pub place: Place,
    /// In the side table (else, while live, in the log: unread with
    /// attempt 0, or in its partition's batch with attempt 1).
    pub side: bool,
    /// Its log row's partition (log.rs's part_of).
    pub part: usize,
    /// When it became a dead letter (died_at).
    pub died_at: i64,
}

/// What stats() says for one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TopicCounts {
    pub ready: i64,
    pub blocked: i64,
    pub scheduled: i64,
    pub leased: i64,
    pub dead: i64,
}

/// What fail() answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailResult {
    Retrying { attempt: i32, at: i64 },
    Dead { attempt: i32 },
    Stale,
}

#[derive(Debug)]
pub struct Model {
    pub now: i64,
    /// Every message ever enqueued, by id: the log never forgets a row
    /// until it has been read, so a finished one stays here as Gone.
    pub msgs: BTreeMap<i64, Msg>,
    /// Claim index -> the ids that claim returned.
    pub claims: Vec<Vec<i64>>,
    /// outbox.partitions.
    parts: Vec<Partition>,
    /// hashtextextended(key, 0) & 15 for every key a case uses.
    key_parts: BTreeMap<String, usize>,
    /// The last message id issued.
    issued: i64,
}

impl Model {
    /// A fresh outbox; `key_parts` maps each key to its partition, as
    /// PostgreSQL hashes it.
    pub fn new(key_parts: BTreeMap<String, usize>) -> Self {
        Model {
            now: 0,
            msgs: BTreeMap::new(),
            claims: Vec::new(),
            parts: vec![Partition::default(); PARTITIONS],
            key_parts,
            issued: 0,
        }
    }

    fn live(&self) -> impl Iterator<Item = (&i64, &Msg)> {
        self.msgs.iter().filter(|(_, m)| m.place == Place::Live)
    }

    fn leased_now(&self, m: &Msg) -> bool {
        m.lease.is_some_and(|(_, end)| end > self.now)
    }

    /// An older message of the same key is still unfinished (log or side).
    pub fn behind_older(&self, id: i64, m: &Msg) -> bool {
        m.key.as_ref().is_some_and(|k| {
            self.live()
                .any(|(&o, om)| o < id && om.key.as_ref() == Some(k))
        })
    }

    pub fn enqueue(
        &mut self,
        id: i64,
        topic: usize,
        key: Option<String>,
        deliver_in: Option<i64>,
        max_attempts: Option<i32>,
    ) {
        let deliver_at = deliver_in.map_or(self.now, |d| self.now + d);
        let part = self.part_of(id, key.as_deref());
        self.issued = self.issued.max(id);
        self.msgs.insert(
            id,
            Msg {
                topic,
                key,
                attempt: 0,
                max_attempts: max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
                created_at: self.now,
                deliver_at,
                lease: None,
                place: Place::Live,
                side: false,
                part,
                died_at: 0,
            },
        );
    }

    /// Ids of `ids` in the side table that the token of claim `claim`
    /// still holds (expired or not: only a new claim takes a lease away).
    fn held(&self, ids: &[i64], claim: Option<usize>) -> Vec<i64> {
        ids.iter()
            .copied()
            .filter(|id| {
                let m = &self.msgs[id];
                m.place == Place::Live
                    && m.side
                    && claim.is_some()
                    && m.lease.map(|(c, _)| c) == claim
            })
            .collect()
    }

    /// complete(): log batches first (partition_complete.sql), then the
    /// side table (complete.sql); how many the token held.
    pub fn complete(&mut self, ids: &[i64], claim: Option<usize>) -> usize {
        let in_log = self.complete_in_log(ids, claim);
        let held = self.held(ids, claim);
        for id in &held {
            let m = self.msgs.get_mut(id).expect("held");
            m.place = Place::Gone;
            m.lease = None;
        }
        in_log + held.len()
    }

    /// release(): detach from log batches, then as in 0.1.0.
    pub fn release(&mut self, ids: &[i64], claim: Option<usize>) -> usize {
        self.detach(ids, claim);
        let held = self.held(ids, claim);
        for id in &held {
            let m = self.msgs.get_mut(id).expect("held");
            m.attempt = (m.attempt - 1).max(0);
            m.lease = None;
        }
        held.len()
    }

    /// extend(): log batches that `ids` cover whole get the new end
    /// (partition_extend.sql); the rest is detached and extended per
    /// message in the side table. How many the token held.
    pub fn extend(&mut self, ids: &[i64], claim: Option<usize>, lease: i64) -> usize {
        let end = self.now + lease;
        let covered = self.extend_in_log(ids, claim, end);
        let rest: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| !covered.contains(id))
            .collect();
        self.detach(&rest, claim);
        let held = self.held(&rest, claim);
        for id in &held {
            if let Some(l) = self.msgs.get_mut(id).expect("held").lease.as_mut() {
                l.1 = end;
            }
        }
        covered.len() + held.len()
    }

    pub fn fail(
        &mut self,
        id: i64,
        claim: Option<usize>,
        retry_in: Option<i64>,
        permanent: bool,
    ) -> FailResult {
        self.detach(&[id], claim);
        if self.held(&[id], claim).is_empty() {
            return FailResult::Stale;
        }
        let now = self.now;
        let m = self.msgs.get_mut(&id).expect("held");
        m.lease = None;
        let attempt = m.attempt;
        if permanent || attempt >= m.max_attempts {
            m.place = Place::Dead(if permanent {
                Reason::Permanent
            } else {
                Reason::MaxAttempts
            });
            m.died_at = now;
            return FailResult::Dead { attempt };
        }
        let delay = retry_in.unwrap_or_else(|| {
            (RETRY_BASE_TICKS << (attempt - 1).clamp(0, 20)).min(RETRY_CAP_TICKS)
        });
        m.deliver_at = now + delay;
        FailResult::Retrying {
            attempt,
            at: now + delay,
        }
    }

    pub fn dead_ids(&self) -> Vec<i64> {
        self.msgs
            .iter()
            .filter(|(_, m)| matches!(m.place, Place::Dead(_)))
            .map(|(&id, _)| id)
            .collect()
    }

    /// requeue_dead(): into the side table, same id, attempt 0, due now.
    pub fn requeue(&mut self, id: i64) -> usize {
        let now = self.now;
        let m = self.msgs.get_mut(&id).expect("a dead id");
        m.place = Place::Live;
        m.side = true;
        m.attempt = 0;
        m.deliver_at = now;
        m.lease = None;
        1
    }

    pub fn purge(&mut self, id: i64) -> usize {
        self.msgs.get_mut(&id).expect("a dead id").place = Place::Gone;
        1
    }

    /// purge_dead_topic(topic, older_than + half a tick): dead letters of the
    /// topic that died before now - older_than - 0.5 ticks.
    pub fn purge_topic(&mut self, topic: usize, older_than: Option<i64>) -> usize {
        let now = self.now;
        let mut n = 0;
        for m in self.msgs.values_mut() {
            let old_enough = older_than.is_none_or(|k| m.died_at < now - k);
            if matches!(m.place, Place::Dead(_)) && m.topic == topic && old_enough {
                m.place = Place::Gone;
                n += 1;
            }
        }
        n
    }

    /// stats(), without the age column.
    pub fn stats(&self) -> BTreeMap<String, TopicCounts> {
        let mut out: BTreeMap<String, TopicCounts> = BTreeMap::new();
        for (&id, m) in &self.msgs {
            let counts = || TopicCounts::default();
            match m.place {
                Place::Gone => {}
                Place::Dead(_) => {
                    out.entry(TOPICS[m.topic].into())
                        .or_insert_with(counts)
                        .dead += 1
                }
                Place::Live => {
                    let c = out.entry(TOPICS[m.topic].into()).or_insert_with(counts);
                    if self.leased_now(m) {
                        c.leased += 1;
                    } else if m.deliver_at > self.now {
                        c.scheduled += 1;
                    } else {
                        c.ready += 1;
                        if self.behind_older(id, m) {
                            c.blocked += 1;
                        }
                    }
                }
            }
        }
        out
    }

    /// Ticks since the oldest ready message of each topic became ready.
    pub fn oldest_ready_age(&self) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for m in self.msgs.values() {
            if m.place == Place::Live && !self.leased_now(m) && m.deliver_at <= self.now {
                let age = self.now - m.deliver_at.max(m.created_at);
                let e = out.entry(TOPICS[m.topic].to_owned()).or_insert(age);
                *e = (*e).max(age);
            }
        }
        out
    }

    /// blocked_keys(NULL): (key, head id, head state, head attempt, waiting),
    /// most waiting first.
    pub fn blocked_keys(&self) -> Vec<(String, i64, &'static str, i32, i64)> {
        let mut groups: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for (&id, m) in self.live() {
            if let Some(k) = &m.key {
                groups.entry(k).or_default().push(id);
            }
        }
        let mut out: Vec<_> = groups
            .into_iter()
            .filter(|(_, ids)| ids.len() > 1)
            .map(|(k, ids)| {
                let head = ids[0];
                let m = &self.msgs[&head];
                let state = if self.leased_now(m) {
                    "leased"
                } else if m.deliver_at > self.now && m.attempt > 0 {
                    "retrying"
                } else if m.deliver_at > self.now {
                    "scheduled"
                } else {
                    "ready"
                };
                (k.to_owned(), head, state, m.attempt, ids.len() as i64 - 1)
            })
            .collect();
        out.sort_by(|a, b| b.4.cmp(&a.4).then(a.1.cmp(&b.1)));
        out
    }

    /// Dead letters as list_dead() shows them: (id, attempts, reason).
    pub fn dead_letters(&self) -> Vec<(i64, i32, &'static str)> {
        self.msgs
            .iter()
            .filter_map(|(&id, m)| match m.place {
                Place::Dead(r) => Some((id, m.attempt, r.as_str())),
                _ => None,
            })
            .collect()
    }

    /// Unfinished messages (the outbox.messages view).
    pub fn live_ids(&self) -> BTreeSet<i64> {
        self.live().map(|(&id, _)| id).collect()
    }
}
