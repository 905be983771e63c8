//! The verdict: what committed (the ledger) against what the sink received
//! and what ended as a dead letter.
//!
//! - **lost**: committed (a ledger row) but never delivered and not a dead
//!   letter. Must be 0.
//! - **phantom**: delivered (or dead-lettered) but not committed — a
//!   rolled-back message, or an id that does not match the ledger's. Must be 0.
//! - **order violation**: for one key, the *first* deliveries of its messages
//!   are not in id order. A later re-delivery of a message that was already
//!   delivered once — a stale worker waking after its lease was taken over,
//!   or a redelivery after a lost completion — is a duplicate, not a
//!   violation: at-least-once allows it and consumers drop it by id. Must be 0.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::producers::ProducerReport;
use super::sink::Delivery;

/// A ledger row: what committed.
#[derive(Debug, Clone)]
pub struct Committed {
    pub uid: String,
    pub key: String,
    pub outbox_id: i64,
    pub poison: bool,
}

/// A row of `outbox.dead_letters`.
#[derive(Debug, Clone)]
pub struct Dead {
    pub uid: String,
    pub id: i64,
    pub reason: String,
}

/// Everything counted; see the module docs for the three that must be 0.
#[derive(Debug, Default, Clone)]
pub struct Findings {
    pub messages: u64,
    pub transactions: u64,
    pub committed: u64,
    pub rolled_back: u64,
    pub aborted_by_faults: u64,
    pub ambiguous: u64,
    pub ambiguous_committed: u64,
    pub ambiguous_not_committed: u64,
    pub unresolved: u64,
    pub given_up: u64,
    /// Producers' belief against the ledger: believed but absent, or present
    /// but not believed (must be 0).
    pub ledger_mismatches: u64,
    pub deliveries: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub duplicated_messages: u64,
    /// Delivered again at a higher attempt: the holder lost its lease (killed,
    /// stopped, cut off, or its completion was lost in a crash) after the
    /// broker had the message.
    pub duplicates_redelivered: u64,
    /// Delivered again at an attempt not above one already delivered: a
    /// stale worker sending after another had delivered the next claim.
    pub duplicates_stale_worker: u64,
    pub dead_letters: u64,
    pub dead_by_reason: BTreeMap<String, u64>,
    pub poison_committed: u64,
    pub poison_dead: u64,
    /// Dead letters that were not poison (spent every attempt).
    pub dead_not_poison: u64,
    pub lost: u64,
    pub phantom: u64,
    pub order_violations: u64,
    /// A few examples of each problem, for the report.
    pub samples: Vec<String>,
}

impl Findings {
    /// Whether the run proved what it must.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (name, n) in [
            ("lost", self.lost),
            ("phantom", self.phantom),
            ("order violations", self.order_violations),
            ("unresolved ambiguous commits", self.unresolved),
            ("ledger mismatches", self.ledger_mismatches),
        ] {
            if n > 0 {
                p.push(format!("{name}: {n}"));
            }
        }
        p
    }
}

const SAMPLES: usize = 5;

/// Compares the ledger, the producers' beliefs, the deliveries (in arrival
/// order) and the dead letters.
pub fn check(
    ledger: &[Committed],
    producers: &[ProducerReport],
    deliveries: &[Delivery],
    dead: &[Dead],
) -> Findings {
    let mut f = Findings::default();
    let mut samples: Vec<String> = Vec::new();
    let mut sample = |s: String, count: &mut usize| {
        if *count < SAMPLES {
            samples.push(s);
        }
        *count += 1;
    };
    for p in producers {
        f.messages += p.messages;
        f.transactions += p.transactions;
        f.rolled_back += p.rolled_back.len() as u64;
        f.aborted_by_faults += p.aborted;
        f.ambiguous += p.ambiguous;
        f.ambiguous_committed += p.ambiguous_committed;
        f.ambiguous_not_committed += p.ambiguous_not_committed;
        f.unresolved += p.unresolved.len() as u64;
        f.given_up += p.given_up;
    }
    let by_uid: HashMap<&str, &Committed> = ledger.iter().map(|c| (c.uid.as_str(), c)).collect();
    f.committed = ledger.len() as u64;
    f.poison_committed = ledger.iter().filter(|c| c.poison).count() as u64;

    let mut mismatch_samples = 0;
    let believed: HashMap<&str, i64> = producers
        .iter()
        .flat_map(|p| p.committed.iter().map(|(u, id)| (u.as_str(), *id)))
        .collect();
    for (uid, id) in &believed {
        if by_uid.get(uid).map(|c| c.outbox_id) != Some(*id) {
            f.ledger_mismatches += 1;
            sample(
                format!(
                    "ledger: producer believes {uid} (id {id}) committed; ledger has {:?}",
                    by_uid.get(uid).map(|c| c.outbox_id)
                ),
                &mut mismatch_samples,
            );
        }
    }
    for c in ledger {
        if !believed.contains_key(c.uid.as_str()) {
            let unresolved = producers.iter().any(|p| p.unresolved.contains(&c.uid));
            if !unresolved {
                f.ledger_mismatches += 1;
                sample(
                    format!(
                        "ledger: {} (id {}) committed but its producer believes not",
                        c.uid, c.outbox_id
                    ),
                    &mut mismatch_samples,
                );
            }
        }
    }

    // Deliveries in arrival order: first deliveries per key, duplicates.
    let rolled_back: HashSet<&str> = producers
        .iter()
        .flat_map(|p| p.rolled_back.iter().map(String::as_str))
        .collect();
    let mut attempts_seen: HashMap<&str, i64> = HashMap::new();
    let mut last_first_id: HashMap<&str, i64> = HashMap::new();
    let mut phantom_samples = 0;
    let mut order_samples = 0;
    let mut phantoms: HashSet<&str> = HashSet::new();
    for (seq, d) in deliveries.iter().enumerate() {
        f.deliveries += 1;
        let Some(c) = by_uid.get(d.uid.as_str()).filter(|c| c.outbox_id == d.id) else {
            if phantoms.insert(d.uid.as_str()) {
                f.phantom += 1;
                let why = if rolled_back.contains(d.uid.as_str()) {
                    "rolled back"
                } else {
                    "not in the ledger with this id"
                };
                sample(
                    format!("phantom: delivery #{seq} id {} uid {} ({why})", d.id, d.uid),
                    &mut phantom_samples,
                );
            }
            continue;
        };
        match attempts_seen.get_mut(d.uid.as_str()) {
            None => {
                attempts_seen.insert(d.uid.as_str(), d.attempt);
                f.delivered += 1;
                if let Some(prev) = last_first_id.insert(c.key.as_str(), d.id) {
                    if prev > d.id {
                        f.order_violations += 1;
                        sample(
                            format!("order: key {} first delivery of id {} (delivery #{seq}, relay {}) after id {prev}", c.key, d.id, d.relay),
                            &mut order_samples,
                        );
                        // Keep the higher id as the key's high-water mark.
                        last_first_id.insert(c.key.as_str(), prev);
                    }
                }
            }
            Some(max_attempt) => {
                f.duplicates += 1;
                if d.attempt > *max_attempt {
                    f.duplicates_redelivered += 1;
                    *max_attempt = d.attempt;
                } else {
                    f.duplicates_stale_worker += 1;
                }
            }
        }
    }
    let mut per_uid: HashMap<&str, u32> = HashMap::new();
    for d in deliveries {
        *per_uid.entry(d.uid.as_str()).or_default() += 1;
    }
    f.duplicated_messages = per_uid.values().filter(|n| **n > 1).count() as u64;

    let mut dead_uids: HashSet<&str> = HashSet::new();
    for d in dead {
        f.dead_letters += 1;
        *f.dead_by_reason.entry(d.reason.clone()).or_default() += 1;
        match by_uid.get(d.uid.as_str()).filter(|c| c.outbox_id == d.id) {
            Some(c) if c.poison => f.poison_dead += 1,
            Some(_) => f.dead_not_poison += 1,
            None => {
                if phantoms.insert(d.uid.as_str()) {
                    f.phantom += 1;
                    sample(
                        format!(
                            "phantom: dead letter id {} uid {} is not in the ledger",
                            d.id, d.uid
                        ),
                        &mut phantom_samples,
                    );
                }
            }
        }
        dead_uids.insert(d.uid.as_str());
    }

    let mut lost_samples = 0;
    for c in ledger {
        if !attempts_seen.contains_key(c.uid.as_str()) && !dead_uids.contains(c.uid.as_str()) {
            f.lost += 1;
            sample(
                format!(
                    "lost: {} (id {}, key {}) committed, never delivered, not dead",
                    c.uid, c.outbox_id, c.key
                ),
                &mut lost_samples,
            );
        }
    }
    f.samples = samples;
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: i64, uid: &str, key: &str, attempt: i64) -> Delivery {
        Delivery {
            id,
            uid: uid.into(),
            key: Some(key.into()),
            attempt,
            relay: 0,
        }
    }

    fn committed(id: i64, uid: &str, key: &str) -> Committed {
        Committed {
            uid: uid.into(),
            key: key.into(),
            outbox_id: id,
            poison: false,
        }
    }

    #[test]
    fn a_stale_redelivery_is_a_duplicate_not_an_order_violation() {
        let ledger = [committed(1, "a", "k"), committed(2, "b", "k")];
        let deliveries = [
            delivery(1, "a", "k", 2),
            delivery(2, "b", "k", 1),
            delivery(1, "a", "k", 1), // the stale worker's late send
        ];
        let f = check(&ledger, &[], &deliveries, &[]);
        assert_eq!((f.lost, f.phantom, f.order_violations), (0, 0, 0));
        assert_eq!((f.duplicates, f.duplicates_stale_worker), (1, 1));
    }

    #[test]
    fn first_deliveries_out_of_id_order_are_a_violation() {
        let ledger = [committed(1, "a", "k"), committed(2, "b", "k")];
        let deliveries = [delivery(2, "b", "k", 1), delivery(1, "a", "k", 1)];
        assert_eq!(check(&ledger, &[], &deliveries, &[]).order_violations, 1);
    }

    #[test]
    fn undelivered_is_lost_unless_dead_and_uncommitted_is_phantom() {
        let ledger = [committed(1, "a", "k"), committed(2, "b", "j")];
        let dead = [Dead {
            uid: "b".into(),
            id: 2,
            reason: "permanent".into(),
        }];
        let f = check(&ledger, &[], &[delivery(9, "z", "k", 1)], &dead);
        assert_eq!((f.lost, f.phantom, f.dead_not_poison), (1, 1, 1));
    }
}
