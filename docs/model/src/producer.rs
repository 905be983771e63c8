//! Producer transactions: the writers of the log (sql/queries/enqueue.sql).
//!
//! A producer takes its xid first, then, per message, reads the current
//! segment (`outbox.log_segment`, a sequence: its latest value, whatever the
//! producer's snapshot) and inserts with the next id from the id sequence.
//! In enqueue.sql the three happen in one statement in that order (the xid
//! in an `OFFSET 0` subquery); here they are separate steps, which only adds
//! interleavings. It may abort at any point, and commits after its last
//! message. The consumer (`Config::consumer`) may also claim once it has
//! its xid, before its next message, and holds the partition locked until
//! it commits.

use crate::claim;
use crate::state::{Config, Ghost, RotationRule, Row, State};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    Begin,
    ReadSegment,
    Insert,
    Commit,
    Abort,
    /// The consumer's claim of this partition, in its transaction.
    Claim(u8),
}

/// What producer `t` can do next.
pub fn steps(cfg: &Config, s: &State, t: usize, out: &mut Vec<Step>) {
    let p = &s.prods[t];
    let total = cfg.txns[t].len() as u8;
    if p.done {
        return;
    }
    let rotating = cfg.segments != 0;
    if p.xid == 0 {
        // Control (e): the first segment read comes before the xid.
        let read_first = cfg.rotation == RotationRule::SegmentBeforeXid && rotating;
        if read_first && p.seg.is_none() {
            out.push(Step::ReadSegment);
        } else {
            out.push(Step::Begin);
        }
    } else if p.sent < total {
        let session = cfg.relays.saturating_sub(1);
        if cfg.consumer == Some(t as u8) && p.claimed.is_none() && claim::relay_idle(s, session) {
            for part in 0..cfg.partitions {
                if claim::can_lock(s, part) {
                    out.push(Step::Claim(part));
                }
            }
        }
        match p.seg {
            None if rotating => out.push(Step::ReadSegment),
            // TRUNCATE's ACCESS EXCLUSIVE lock makes a writer of that
            // segment wait until the rotation's transaction ends.
            Some(seg) if truncating(s, seg) => {}
            _ => out.push(Step::Insert),
        }
    } else {
        out.push(Step::Commit);
    }
    if cfg.abortable & (1 << t) != 0 {
        out.push(Step::Abort);
    }
}

/// A rotation in progress has truncated `seg` and not committed yet.
fn truncating(s: &State, seg: u8) -> bool {
    s.rot
        .txn
        .as_ref()
        .is_some_and(|t| t.truncated & (1 << seg) != 0)
}

pub fn step(cfg: &Config, s: &mut State, t: usize, step: Step) {
    match step {
        Step::Begin => s.prods[t].xid = s.pg.assign_xid(),
        Step::ReadSegment => {
            let seg = match cfg.rotation {
                RotationRule::SegmentFromRow => s.rot.row_current(),
                _ => s.rot.seq_seg(cfg.segments),
            };
            s.prods[t].seg = Some(seg);
        }
        Step::Insert => insert(cfg, s, t),
        Step::Claim(part) => {
            let session = cfg.relays.saturating_sub(1);
            claim::claim_in_transaction(cfg, s, session, part, s.prods[t].xid);
            s.prods[t].claimed = Some(part);
        }
        Step::Commit | Step::Abort => {
            let p = &mut s.prods[t];
            p.done = true;
            if p.xid != 0 {
                s.pg.end(p.xid, step == Step::Commit);
            }
            if let Some(part) = p.claimed {
                s.parts[usize::from(part)].locked = false;
            }
        }
    }
}

fn insert(cfg: &Config, s: &mut State, t: usize) {
    let key = cfg.txns[t][usize::from(s.prods[t].sent)];
    let xid = s.prods[t].xid;
    let seg = s.prods[t].seg.take().unwrap_or(0);
    let id = s.pg.next_id();
    // Causal predecessors: messages of this key whose transactions have
    // committed by now.
    let preds = s
        .msgs
        .iter()
        .enumerate()
        .filter(|(_, g)| key.is_some() && g.key == key && s.pg.committed(g.xid))
        .fold(0u16, |acc, (i, _)| acc | (1u16 << (i + 1)));
    s.msgs.push(Ghost {
        xid,
        key,
        preds,
        handed: false,
        delivered: false,
        dead: false,
        left_log: false,
    });
    s.log.push(Row {
        id,
        part: cfg.part_of(key, id),
        xid,
        key,
        seg,
    });
    s.prods[t].sent += 1;
}
