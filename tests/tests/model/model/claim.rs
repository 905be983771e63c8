//! claim() in the model, in api/claim.rs's order: recover expired log
//! batches, one suspect alone, else the side table's ready messages, then
//! the log for the room left (docs/storage.md, "Claim").

use super::{Model, Place, Reason};

/// claim.rs's MAX_ROUNDS: a side-table statement runs again while a round
/// only buried messages.
const MAX_ROUNDS: usize = 100;

impl Model {
    /// claim(): the (id, attempt) pairs it hands out, in id order.
    pub fn claim(&mut self, batch: usize, lease: i64, topics: Option<&[usize]>) -> Vec<(i64, i32)> {
        let index = self.claims.len();
        let end = self.now + lease;
        self.recover_expired();
        // A suspect (its last lease expired) goes out alone.
        let mut out = self.claim_side(index, end, batch, topics, true);
        if out.is_empty() {
            out = self.claim_side(index, end, batch, topics, false);
            if out.len() < batch {
                let room = batch - out.len();
                self.claim_log(index, end, room, topics, &mut out);
            }
        }
        out.sort_unstable();
        self.claims.push(out.iter().map(|(id, _)| *id).collect());
        out
    }

    /// An older message of the same key is in the side table (claim_side.sql's
    /// per-key rule, which looks at the side table only).
    fn behind_older_in_side(&self, id: i64, key: Option<&str>) -> bool {
        key.is_some_and(|k| {
            self.msgs
                .range(..id)
                .any(|(_, o)| o.place == Place::Live && o.side && o.key.as_deref() == Some(k))
        })
    }

    /// claim_side.sql, in rounds: suspects (an expired lease, LIMIT 1) or
    /// unleased messages (LIMIT batch), due, of the topics, first of their
    /// key in the side table; an exhausted candidate is buried.
    fn claim_side(
        &mut self,
        index: usize,
        end: i64,
        batch: usize,
        topics: Option<&[usize]>,
        suspects: bool,
    ) -> Vec<(i64, i32)> {
        let now = self.now;
        let limit = if suspects { 1 } else { batch };
        let mut out = Vec::new();
        for _ in 0..MAX_ROUNDS {
            // Judged on the statement's snapshot: a head buried in this
            // round still blocks its key until the next round.
            let candidates: Vec<i64> = self
                .msgs
                .iter()
                .filter(|(_, m)| m.place == Place::Live && m.side && m.deliver_at <= now)
                .filter(|(_, m)| match m.lease {
                    Some((_, until)) => suspects && until <= now,
                    None => !suspects,
                })
                .filter(|(_, m)| topics.is_none_or(|t| t.contains(&m.topic)))
                .filter(|(&id, m)| !self.behind_older_in_side(id, m.key.as_deref()))
                .map(|(&id, _)| id)
                .take(limit)
                .collect();
            let mut buried = 0;
            for id in candidates {
                let m = self.msgs.get_mut(&id).expect("candidate exists");
                if m.attempt >= m.max_attempts {
                    m.place = Place::Dead(Reason::LeaseExpired);
                    m.lease = None;
                    m.died_at = now;
                    buried += 1;
                } else {
                    m.attempt += 1;
                    m.lease = Some((index, end));
                    out.push((id, m.attempt));
                }
            }
            if buried == 0 || !out.is_empty() {
                break;
            }
        }
        out
    }
}
