//! Settling (`complete`, `fail`, `release`), fenced by the token; a relay
//! crashing; a lease running out.
//!
//! A settle of a log-batch message is two statements: the partition row
//! first, then the side table. The model runs them as one step. That loses no
//! behaviour: the first statement waits while a claim holds the partition
//! row, so it runs after that claim's commit; and anything another relay does
//! between the two statements (claim the moved row from the side table) can
//! be ordered before the whole step with the same outcome.

use crate::claim::side_insert;
use crate::state::{Config, Held, Side, State, SEEN_DEAD, SEEN_STALE_SETTLE, STALE};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum How {
    Complete,
    /// Retry later, or dead-letter at `max_attempts`.
    Fail,
    Release,
}

/// The message ids a relay can settle now, and whether it is blocked.
pub fn settleable(s: &State, r: u8) -> Vec<u8> {
    match &s.relays[usize::from(r)].held {
        Held::Nothing => Vec::new(),
        // Waits on the partition row lock of a claim in progress.
        Held::Batch { part, .. } if s.parts[usize::from(*part)].locked => Vec::new(),
        Held::Batch { ids, .. } => ids.clone(),
        Held::Side { id, .. } => vec![*id],
    }
}

pub fn settle(cfg: &Config, s: &mut State, r: u8, id: u8, how: How) {
    let ri = usize::from(r);
    let token = match s.relays[ri].held.clone() {
        Held::Nothing => unreachable!("settle is only enabled while holding a lease"),
        Held::Batch {
            part,
            token,
            mut ids,
        } => {
            ids.retain(|&x| x != id);
            s.relays[ri].held = if ids.is_empty() {
                Held::Nothing
            } else {
                Held::Batch { part, token, ids }
            };
            if settle_in_batch(cfg, s, r, part, token, id, how) {
                return;
            }
            token
        }
        Held::Side { token, .. } => {
            s.relays[ri].held = Held::Nothing;
            token
        }
    };
    if !settle_in_side(cfg, s, r, token, id, how) {
        // 'stale': nothing changed, and the relay drops the message.
        s.seen |= SEEN_STALE_SETTLE;
    }
}

/// Statement 1: `UPDATE outbox.partitions … WHERE lease_token = $token`.
fn settle_in_batch(
    cfg: &Config,
    s: &mut State,
    r: u8,
    part: u8,
    token: u8,
    id: u8,
    how: How,
) -> bool {
    let pi = usize::from(part);
    let Some(lease) = s.parts[pi].lease.as_mut() else {
        return false;
    };
    if lease.token != token || !lease.batch.contains(&id) {
        return false;
    }
    let holder = lease.holder;
    lease.batch.retain(|&x| x != id);
    let emptied = lease.batch.is_empty();
    if holder != r + 1 {
        s.violations |= STALE;
    }
    if emptied {
        // The whole batch is settled: the cursor moves and the lease ends.
        let p = &mut s.parts[pi];
        if let Some(l) = p.lease.take() {
            p.cursor = l.batch_end;
        }
    }
    // The batch's attempt is 1: a log batch is only ever leased once (an
    // expired one moves to the side table).
    let key = s.ghost(id).key;
    match how {
        How::Complete => {
            s.ghost_mut(id).delivered = true;
            s.ghost_mut(id).left_log = true;
        }
        How::Fail if cfg.max_attempts <= 1 => dead(s, id),
        How::Fail | How::Release => side_insert(
            s,
            Side {
                id,
                key,
                token: 0,
                expired: false,
                attempt: if how == How::Fail { 1 } else { 0 },
                holder: 0,
            },
        ),
    }
    true
}

/// Statement 2 (or the only one, for a side-table lease):
/// `… FROM outbox.messages WHERE id = $id AND lease_token = $token`.
fn settle_in_side(cfg: &Config, s: &mut State, r: u8, token: u8, id: u8, how: How) -> bool {
    let Some(at) = s.side.iter().position(|x| x.id == id && x.token == token) else {
        return false;
    };
    if s.side[at].holder != r + 1 {
        s.violations |= STALE;
    }
    match how {
        How::Complete => {
            s.side.remove(at);
            s.ghost_mut(id).delivered = true;
        }
        How::Fail if s.side[at].attempt >= cfg.max_attempts => {
            s.side.remove(at);
            dead(s, id);
        }
        How::Fail | How::Release => {
            let row = &mut s.side[at];
            if how == How::Release {
                row.attempt = row.attempt.saturating_sub(1);
            }
            row.token = 0;
            row.expired = false;
            row.holder = 0;
        }
    }
    true
}

fn dead(s: &mut State, id: u8) {
    let g = s.ghost_mut(id);
    g.dead = true;
    g.left_log = true;
    s.seen |= SEEN_DEAD;
}

/// The relay process dies: it forgets its lease; the rows keep it until it
/// expires and a claim takes them.
pub fn crash(s: &mut State, r: u8) {
    s.relays[usize::from(r)].held = Held::Nothing;
}

/// Which leases can run out now: (partition, None) or (None, side id).
pub fn expirable(s: &State) -> Vec<(Option<u8>, Option<u8>)> {
    let parts = s
        .parts
        .iter()
        .enumerate()
        .filter(|(_, p)| p.lease.as_ref().is_some_and(|l| !l.expired))
        .map(|(i, _)| (Some(i as u8), None));
    let side = s
        .side
        .iter()
        .filter(|x| x.token != 0 && !x.expired)
        .map(|x| (None, Some(x.id)));
    parts.chain(side).collect()
}

pub fn expire(s: &mut State, part: Option<u8>, side: Option<u8>) {
    if let Some(p) = part {
        if let Some(l) = s.parts[usize::from(p)].lease.as_mut() {
            l.expired = true;
        }
    }
    if let Some(id) = side {
        if let Some(x) = s.side.iter_mut().find(|x| x.id == id) {
            x.expired = true;
        }
    }
}
