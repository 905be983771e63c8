//! Producer transactions and rotation: the writers of the log.
//!
//! A producer takes its xid first, then, per message, reads the current
//! segment from `outbox.rotation` (its own statement, READ COMMITTED: the
//! committed value) and inserts with the next id from the sequence. It may
//! abort at any point, and commits after its last message.

use crate::pg::TxStatus;
use crate::state::{Config, Ghost, Row, Seal, State, DROPPED, SEEN_TRUNCATE};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    Begin,
    ReadSegment,
    Insert,
    Commit,
    Abort,
}

/// What producer `t` can do next.
pub fn steps(cfg: &Config, s: &State, t: usize, out: &mut Vec<Step>) {
    let p = &s.prods[t];
    let total = cfg.txns[t].len() as u8;
    if p.done {
        return;
    }
    if p.xid == 0 {
        out.push(Step::Begin);
        return;
    }
    if p.sent < total {
        if cfg.segments == 0 || p.seg.is_some() {
            out.push(Step::Insert);
        } else {
            out.push(Step::ReadSegment);
        }
    } else {
        out.push(Step::Commit);
    }
    if cfg.abortable & (1 << t) != 0 {
        out.push(Step::Abort);
    }
}

pub fn step(cfg: &Config, s: &mut State, t: usize, step: Step) {
    match step {
        Step::Begin => s.prods[t].xid = s.pg.assign_xid(),
        Step::ReadSegment => s.prods[t].seg = Some(s.rot.cur),
        Step::Insert => insert(cfg, s, t),
        Step::Commit | Step::Abort => {
            let p = &mut s.prods[t];
            p.done = true;
            s.pg.end(p.xid, step == Step::Commit);
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rotate {
    /// Make the next segment current (uncommitted) and read the seal.
    Switch,
    /// The switching transaction commits: producers now read the new segment.
    CommitSwitch,
    /// (Fix only) read the seal after the switch committed.
    Seal,
    Truncate(u8),
}

pub fn rotations(cfg: &Config, s: &State, out: &mut Vec<Rotate>) {
    if cfg.segments == 0 {
        return;
    }
    let n = cfg.segments;
    match s.rot.switching {
        Some(_) => out.push(Rotate::CommitSwitch),
        None => {
            let next = (s.rot.cur + 1) % n;
            let empty = !s.log.iter().any(|r| r.seg == next && s.pg.committed(r.xid));
            if empty && s.rot.seals[usize::from(next)] == Seal::None {
                out.push(Rotate::Switch);
            }
        }
    }
    for seg in 0..n {
        match s.rot.seals[usize::from(seg)] {
            Seal::Pending => out.push(Rotate::Seal),
            Seal::At(x) if can_truncate(s, seg, x) => out.push(Rotate::Truncate(seg)),
            _ => {}
        }
    }
}

/// storage.md: every xid below the seal has ended, every partition's
/// `snap_lo` shows them ended, and (TRUNCATE's lock) no open transaction has
/// written the segment.
fn can_truncate(s: &State, seg: u8, seal: u8) -> bool {
    let ended = (1..seal).all(|x| s.pg.status(x) != TxStatus::Running);
    let windows_past = s
        .parts
        .iter()
        .all(|p| (1..seal).all(|x| p.snap_lo.shows_ended(x)));
    let unlocked = !s.log.iter().any(|r| r.seg == seg && s.pg.running(r.xid));
    ended && windows_past && unlocked
}

pub fn rotate(cfg: &Config, s: &mut State, what: Rotate) {
    match what {
        Rotate::Switch => {
            let next = (s.rot.cur + 1) % cfg.segments;
            let seal = (!cfg.fixes.seal_after_commit).then_some(s.pg.next_xid);
            s.rot.switching = Some((next, seal));
        }
        Rotate::CommitSwitch => {
            if let Some((next, seal)) = s.rot.switching.take() {
                let old = usize::from(s.rot.cur);
                s.rot.seals[old] = seal.map_or(Seal::Pending, Seal::At);
                s.rot.cur = next;
            }
        }
        Rotate::Seal => {
            let next_xid = s.pg.next_xid;
            for seal in s.rot.seals.iter_mut() {
                if *seal == Seal::Pending {
                    *seal = Seal::At(next_xid);
                }
            }
        }
        Rotate::Truncate(seg) => {
            let dropped = s
                .log
                .iter()
                .any(|r| r.seg == seg && s.pg.committed(r.xid) && !s.ghost(r.id).left_log);
            if dropped {
                s.violations |= DROPPED;
            }
            s.log.retain(|r| r.seg != seg);
            s.rot.seals[usize::from(seg)] = Seal::None;
            s.seen |= SEEN_TRUNCATE;
        }
    }
}
