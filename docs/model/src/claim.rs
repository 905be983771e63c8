//! `claim`: the recovery of expired batches (expired_batches.sql and
//! detach.sql, at the start of every claim), the side-table part (one
//! message per claim, per-key FIFO; a suspect goes out alone) and the
//! partition part, split into the statements other actors can interleave
//! with. The partition part has no "may have work" probe: a claim with room
//! visits every free partition (claim_partition.sql), opens a new window
//! whenever the last read found the end of the previous one
//! (`window_done`), and reads it. The partition row is locked (`FOR UPDATE
//! SKIP LOCKED`) from the first statement to the commit; every write of the
//! claim is applied at its commit (`finish`), because nobody else can see it
//! before.

use crate::state::{
    Claim, Config, Held, Lease, OwnXid, Phase, Side, State, Variant, CAUSAL, PHANTOM, SEEN_DEAD,
    SEEN_DIVERT, SEEN_LATE, SEEN_MOVED,
};
use crate::window;

/// A relay that holds nothing and is not in the middle of a claim.
pub fn relay_idle(s: &State, r: u8) -> bool {
    let relay = &s.relays[usize::from(r)];
    relay.held == Held::Nothing && relay.claim.is_none()
}

/// claim_partition.sql: free (no lease, or an expired one) and not locked by
/// another claim. Nothing else: idle partitions are visited too.
pub fn can_lock(s: &State, part: u8) -> bool {
    let p = &s.parts[usize::from(part)];
    !p.locked && p.lease.as_ref().is_none_or(|l| l.expired)
}

/// Statement 1: lock the partition. If the last read found the end of the
/// window, this claim opens a new one and reads I, the last id issued,
/// first (window_open.sql's `$2`).
pub fn lock(cfg: &Config, s: &mut State, r: u8, part: u8) {
    let p = &s.parts[usize::from(part)];
    let opening = cfg.variant != Variant::IdCursor && p.window_done;
    s.parts[usize::from(part)].locked = true;
    if opening {
        let i = s.pg.last_id;
        s.relays[usize::from(r)].claim = Some(Claim {
            part,
            phase: Phase::ReadX,
            i,
            x: 0,
            s: s.pg.snapshot(),
        });
    } else {
        // No opening: the read needs no other statement before it, and what
        // it returns cannot change while the row is locked (window membership
        // is fixed by `snap_hi`), so lock, read and lease are one step.
        finish(cfg, s, r, part, None);
    }
}

/// A claim made inside transaction `own` (it has an xid: it wrote before),
/// through relay `r`: lock, I, X, S and the read in one step (the consumer
/// is one session; what others do between its statements is covered by
/// the relays' claims), with S the transaction's own snapshot, which
/// PostgreSQL gives without `own`. The partition stays locked until the
/// transaction ends (producer.rs), and so does its lease row.
pub fn claim_in_transaction(cfg: &Config, s: &mut State, r: u8, part: u8, own: u8) {
    let opening = cfg.variant != Variant::IdCursor && s.parts[usize::from(part)].window_done;
    let c = opening.then(|| {
        let snap = s.pg.snapshot_of(own);
        Claim {
            part,
            phase: Phase::ReadWindow,
            i: s.pg.last_id,
            x: s.pg.next_xid,
            s: match cfg.own_xid {
                OwnXid::Listed => snap.listing(own),
                OwnXid::Unlisted => snap,
            },
        }
    });
    finish(cfg, s, r, part, c);
    s.parts[usize::from(part)].locked = true;
}

/// A partition whose batch lease expired and that no claim has locked.
pub fn can_recover(s: &State, part: u8) -> bool {
    let p = &s.parts[usize::from(part)];
    !p.locked && p.lease.as_ref().is_some_and(|l| l.expired)
}

/// The start of every claim: the unsettled rest of an expired batch moves to
/// the side table under its old token (a suspect there), the cursor moves to
/// `batch_end` and the partition is free (detach.sql). One partition per
/// step: the implementation does all it can lock in one transaction, which
/// is these steps with nothing in between.
pub fn recover(s: &mut State, part: u8) {
    move_expired(s, usize::from(part));
}

fn move_expired(s: &mut State, pi: usize) {
    let Some(old) = s.parts[pi].lease.take() else {
        return;
    };
    for &id in &old.batch {
        let key = s.ghost(id).key;
        side_insert(
            s,
            Side {
                id,
                key,
                token: old.token,
                expired: true,
                attempt: 1,
                holder: old.holder,
            },
        );
    }
    s.parts[pi].cursor = old.batch_end;
    s.seen |= SEEN_MOVED;
}

/// The opening's later statements: X (next xid, in the statement after I),
/// then S (a fresh snapshot, in a later statement); J and the read follow in
/// `finish`.
pub fn open_step(cfg: &Config, s: &mut State, r: u8) {
    let relay = &mut s.relays[usize::from(r)];
    let Some(claim) = relay.claim.as_mut() else {
        unreachable!("open_step is only enabled during a claim")
    };
    match claim.phase {
        Phase::ReadX => {
            claim.x = s.pg.next_xid;
            claim.phase = Phase::TakeSnapshot;
        }
        Phase::TakeSnapshot => {
            claim.s = s.pg.snapshot();
            claim.phase = Phase::ReadWindow;
        }
        Phase::ReadWindow => {
            let claim = claim.clone();
            relay.claim = None;
            finish(cfg, s, r, claim.part, Some(claim));
        }
    }
}

/// Hands a message out (in a batch or from the side table): the ghost checks
/// of properties 2 and 4.
fn hand_out(s: &mut State, id: u8) {
    let g = s.ghost(id).clone();
    if !s.pg.committed(g.xid) {
        s.violations |= PHANTOM;
    }
    let unfinished = (1..=s.msgs.len() as u8)
        .filter(|&a| g.preds & (1u16 << a) != 0)
        .any(|a| !s.ghost(a).delivered && !s.ghost(a).dead);
    if unfinished {
        s.violations |= CAUSAL;
    }
    s.ghost_mut(id).handed = true;
}

/// Appends a side-table row, keeping the table in id order.
pub fn side_insert(s: &mut State, row: Side) {
    let at = s.side.partition_point(|x| x.id < row.id);
    let id = row.id;
    s.side.insert(at, row);
    s.ghost_mut(id).left_log = true;
}

/// The claim's commit: move an expired batch, open the window (J is read
/// here), read, divert, and take the lease.
fn finish(cfg: &Config, s: &mut State, r: u8, part: u8, opening: Option<Claim>) {
    let pi = usize::from(part);
    // An expired batch this claim locked (it expired after the claim's
    // recovery, or another claim had it locked then): its unsettled
    // messages move to the side table with the old token (so the old holder
    // can still settle them), and the cursor moves past the batch.
    move_expired(s, pi);
    if let Some(c) = opening {
        let j = s.pg.last_id;
        let p = &mut s.parts[pi];
        p.snap_lo = p.snap_hi;
        p.id_lo = p.next_id_lo;
        p.xid_lo = p.next_xid_lo;
        p.snap_hi = c.s;
        p.id_hi = j;
        p.next_id_lo = c.i;
        p.next_xid_lo = c.x;
        p.cursor = (0, 0);
        p.window_done = false;
    }
    let rows = window::read(cfg, s, part, s.parts[pi].cursor);
    let mut batch: Vec<u8> = Vec::new();
    let mut keys: Vec<u8> = Vec::new();
    let mut end = s.parts[pi].cursor;
    // The read loop of claim_log.rs ends with a short read (the end of the
    // window) unless the batch is full or a key repeats.
    let mut exhausted = true;
    for row in rows {
        if batch.len() == usize::from(cfg.batch_size) {
            exhausted = false;
            break;
        }
        // The side table as this transaction sees it: committed rows plus
        // the moves and diverts it made itself.
        let busy = row.key.is_some() && s.side.iter().any(|x| x.key == row.key);
        if busy {
            side_insert(
                s,
                Side {
                    id: row.id,
                    key: row.key,
                    token: 0,
                    expired: false,
                    attempt: 0,
                    holder: 0,
                },
            );
            s.seen |= SEEN_DIVERT;
        } else if row.key.is_some_and(|k| keys.contains(&k)) {
            // A claim never returns two messages of one key: end before it.
            exhausted = false;
            break;
        } else {
            if window::is_late(cfg, s, part, &row) {
                s.seen |= SEEN_LATE;
            }
            hand_out(s, row.id);
            batch.push(row.id);
            keys.extend(row.key);
        }
        end = window::pos(cfg, &row);
    }
    let p = &mut s.parts[pi];
    p.locked = false;
    // partition_take.sql's `window_done`: the read reached the end of the
    // window. (claim_log.rs sets it only on a short read, so a batch that
    // takes the window's last rows exactly leaves it false, and the next
    // claim reads nothing and sets it. That claim changes nothing else, so
    // setting the flag here removes only a stutter step.)
    p.window_done = exhausted;
    if batch.is_empty() {
        p.cursor = end;
        return;
    }
    let token = s.fresh_token();
    s.parts[pi].lease = Some(Lease {
        token,
        expired: false,
        batch: batch.clone(),
        batch_end: end,
        holder: r + 1,
    });
    s.relays[usize::from(r)].held = Held::Batch {
        part,
        token,
        ids: batch,
    };
}

/// A side row may be claimed: not leased (or the lease expired), and no
/// lower-id row of its key is in the side table (per-key FIFO by id).
pub fn side_claimable(s: &State, at: usize) -> bool {
    let row = &s.side[at];
    (row.token == 0 || row.expired)
        && (row.key.is_none() || !s.side[..at].iter().any(|x| x.key == row.key))
}

/// Claims one side row (a suspect is handed out alone anyway, and the model
/// keeps one lease per relay). A lease that expired on the last attempt is
/// dead-lettered instead.
pub fn side_claim(cfg: &Config, s: &mut State, r: u8, at: usize) {
    let row = s.side[at].clone();
    if row.token != 0 && row.expired && row.attempt >= cfg.max_attempts {
        s.side.remove(at);
        s.ghost_mut(row.id).dead = true;
        s.seen |= SEEN_DEAD;
        return;
    }
    let token = s.fresh_token();
    let x = &mut s.side[at];
    x.token = token;
    x.expired = false;
    x.attempt += 1;
    x.holder = r + 1;
    hand_out(s, row.id);
    s.relays[usize::from(r)].held = Held::Side { id: row.id, token };
}
