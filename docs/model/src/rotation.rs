//! Rotation (sql/rotation.sql, `outbox._rotate()`), one transaction split
//! into the statements others can interleave with:
//!
//! 1. `Begin`: lock `outbox.segments`' row 0 (rotations are serialised),
//!    read the current segment from the sequence, and reconcile: a segment
//!    still marked current that the sequence no longer points to (a switch
//!    whose transaction rolled back after its bump) is sealed with the next
//!    xid read now, and the sequence's segment is marked current.
//! 2. `Truncate(seg)`, for each sealed segment with (1) the oldest running
//!    xid `>=` its seal and (2) every partition's `pg_snapshot_xmin(snap_lo)`
//!    `>=` its seal, when its lock is free (no open writer: LOCK TABLE with
//!    a 50 ms timeout, skipped if busy).
//! 3. The switch, when the next segment is empty and the current one was
//!    not made current by this call's reconcile (its `since` is now, and the
//!    interval is at least 1 s): `Bump` (nextval: every producer sees the
//!    new segment at once), then `Seal` (the next xid, read without taking
//!    one, in the same transaction).
//! 4. `Commit`, or `Abort` at any point (the claim it runs in may fail): the
//!    table changes and truncations are undone, the bump is not.
//!
//! The rotating transaction's own xid is not modelled. It only ever holds
//! back condition (1) (the transaction is running), so leaving it out lets
//! the model truncate in more states than the implementation can.

use crate::pg::TxStatus;
use crate::state::{
    Config, RotTxn, RotationRule, Seg, State, SwitchPhase, DROPPED, SEEN_RECONCILE, SEEN_TRUNCATE,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rotate {
    Begin,
    Truncate(u8),
    Bump,
    Seal,
    Commit,
    Abort,
}

/// The segment producers write now, as the rotation reads it.
fn truth(cfg: &Config, s: &State) -> u8 {
    match cfg.rotation {
        RotationRule::SegmentFromRow => s.rot.row_current(),
        _ => s.rot.seq_seg(cfg.segments),
    }
}

/// What `Begin` would stage: reconcile against the sequence.
fn reconcile(cfg: &Config, s: &State) -> RotTxn {
    let cur = truth(cfg, s);
    let mut table = s.rot.table.clone();
    for (g, row) in table.iter_mut().enumerate() {
        if *row == Seg::Current && g as u8 != cur {
            *row = Seg::Sealed(s.pg.next_xid);
        }
    }
    let reconciled = table[usize::from(cur)] != Seg::Current;
    table[usize::from(cur)] = Seg::Current;
    RotTxn {
        table,
        cur,
        reconciled,
        truncated: 0,
        switch: SwitchPhase::None,
    }
}

/// Conditions (1), (2) and the lock, for a segment sealed at `seal`.
fn can_truncate(s: &State, seg: u8, seal: u8) -> bool {
    let oldest_running = s.pg.snapshot().xmin();
    let windows_past = s.parts.iter().all(|p| p.snap_lo.xmin() >= seal);
    let unlocked = !s.log.iter().any(|r| r.seg == seg && s.pg.running(r.xid));
    oldest_running >= seal && windows_past && unlocked
}

fn truncatable(s: &State, t: &RotTxn) -> Vec<u8> {
    if t.switch != SwitchPhase::None {
        return Vec::new();
    }
    (0..t.table.len() as u8)
        .filter(|&g| t.truncated & (1 << g) == 0)
        .filter(|&g| match t.table[usize::from(g)] {
            Seg::Sealed(seal) => can_truncate(s, g, seal),
            _ => false,
        })
        .collect()
}

fn can_switch(cfg: &Config, s: &State, t: &RotTxn) -> bool {
    let next = (t.cur + 1) % cfg.segments;
    t.switch == SwitchPhase::None
        && !t.reconciled
        && s.rot.seq < cfg.max_switches
        && t.table[usize::from(next)] == Seg::Empty
}

pub fn rotations(cfg: &Config, s: &State, out: &mut Vec<Rotate>) {
    if cfg.segments == 0 {
        return;
    }
    let Some(t) = &s.rot.txn else {
        // Begin only when the call would do something: a rotation that
        // begins earlier and waits does what one beginning now does.
        let t = reconcile(cfg, s);
        if t.table != s.rot.table || !truncatable(s, &t).is_empty() || can_switch(cfg, s, &t) {
            out.push(Rotate::Begin);
        }
        return;
    };
    out.extend(truncatable(s, t).into_iter().map(Rotate::Truncate));
    let seal_first = cfg.rotation == RotationRule::SealBeforeBump;
    match t.switch {
        SwitchPhase::None if can_switch(cfg, s, t) => out.push(if seal_first {
            Rotate::Seal
        } else {
            Rotate::Bump
        }),
        SwitchPhase::Bumped => out.push(Rotate::Seal),
        SwitchPhase::SealRead(_) => out.push(Rotate::Bump),
        _ => {}
    }
    if matches!(t.switch, SwitchPhase::None | SwitchPhase::Done) {
        out.push(Rotate::Commit);
    }
    out.push(Rotate::Abort);
}

pub fn rotate(cfg: &Config, s: &mut State, what: Rotate) {
    if what == Rotate::Begin {
        let t = reconcile(cfg, s);
        if t.reconciled {
            s.seen |= SEEN_RECONCILE;
        }
        s.rot.txn = Some(t);
        return;
    }
    let Some(mut t) = s.rot.txn.take() else {
        unreachable!("rotation steps other than Begin need a transaction")
    };
    let next = (t.cur + 1) % cfg.segments;
    match what {
        Rotate::Begin => unreachable!("handled above"),
        Rotate::Truncate(g) => {
            t.truncated |= 1 << g;
            t.table[usize::from(g)] = Seg::Empty;
        }
        Rotate::Bump => {
            s.rot.seq += 1;
            t.switch = match t.switch {
                SwitchPhase::SealRead(seal) => {
                    switch_rows(&mut t, next, seal);
                    SwitchPhase::Done
                }
                _ => SwitchPhase::Bumped,
            };
        }
        Rotate::Seal => {
            let seal = s.pg.next_xid;
            t.switch = match t.switch {
                SwitchPhase::Bumped => {
                    switch_rows(&mut t, next, seal);
                    SwitchPhase::Done
                }
                _ => SwitchPhase::SealRead(seal),
            };
        }
        Rotate::Commit => {
            for g in 0..cfg.segments {
                if t.truncated & (1 << g) != 0 {
                    truncate(s, g);
                }
            }
            s.rot.table = t.table;
            return;
        }
        Rotate::Abort => return,
    }
    s.rot.txn = Some(t);
}

/// The switch's two UPDATEs of `outbox.segments`.
fn switch_rows(t: &mut RotTxn, next: u8, seal: u8) {
    t.table[usize::from(t.cur)] = Seg::Sealed(seal);
    t.table[usize::from(next)] = Seg::Current;
}

/// TRUNCATE takes effect at commit: a committed row that has not left the
/// log (completed from its batch, or copied to the side table) is lost.
fn truncate(s: &mut State, seg: u8) {
    let dropped = s.log.iter().any(|r| {
        r.seg == seg && s.pg.status(r.xid) == TxStatus::Committed && !s.ghost(r.id).left_log
    });
    if dropped {
        s.violations |= DROPPED;
    }
    s.log.retain(|r| r.seg != seg);
    s.seen |= SEEN_TRUNCATE;
}
