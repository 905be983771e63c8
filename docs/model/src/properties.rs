//! The five properties, and "the check is not vacuous" examples.
//!
//! Safety violations are recorded by the transition that commits them (a
//! ghost bit in the state), so each property is a plain invariant. "Nothing
//! lost" is checked where it can be decided: in a drained state — every
//! producer ended, no lease and no claim in progress anywhere, and no claim
//! could find anything to do. From such a state nothing will ever move again,
//! so a committed message that is neither delivered nor dead there is lost
//! (or stuck for ever, which is the same to its consumer).

use stateright::{Model, Property};

use crate::claim::side_claimable;
use crate::state::{
    State, CAUSAL, DROPPED, PHANTOM, SEEN_DEAD, SEEN_DIVERT, SEEN_LATE, SEEN_MOVED, SEEN_RECONCILE,
    SEEN_STALE_SETTLE, SEEN_TRUNCATE, STALE,
};
use crate::{Action, ProtocolModel};

pub const NOTHING_LOST: &str =
    "1. nothing lost: when drained, every committed message was delivered or dead-lettered";
pub const NO_PHANTOM: &str =
    "2. nothing phantom: no message of an uncommitted transaction is handed out";
pub const NO_STALE: &str = "3. a stale lease never advances a cursor or settles a message";
pub const CAUSAL_ORDER: &str = "4. per-key causal order: B is not handed out while an A that committed before B's enqueue is unfinished";
pub const ROTATION: &str = "5. rotation never truncates a row still needed";

pub fn drained(m: &ProtocolModel, s: &State) -> bool {
    let cfg = &m.cfg;
    s.prods.iter().all(|p| p.done)
        && s.relays.iter().all(|r| r.claim.is_none())
        && s.parts.iter().all(|p| p.lease.is_none() && !p.locked)
        && s.side.iter().all(|x| x.token == 0)
        && (0..s.side.len()).all(|at| !side_claimable(s, at))
        && cfg.relays > 0
        && (0..cfg.partitions).all(|p| claim_changes_nothing(m, s, p))
}

/// Runs a whole claim of `part` by relay 0 on a copy of `s`.
fn claim_changes_nothing(m: &ProtocolModel, s: &State, part: u8) -> bool {
    let Some(mut t) = m.next_state(s, Action::Lock(0, part)) else {
        return false;
    };
    while t.relays[0].claim.is_some() {
        match m.next_state(&t, Action::Open(0)) {
            Some(next) => t = next,
            None => return false,
        }
    }
    t.seen = s.seen;
    t == *s
}

fn all_settled(s: &State) -> bool {
    s.msgs
        .iter()
        .all(|g| !s.pg.committed(g.xid) || g.delivered || g.dead)
}

pub fn properties() -> Vec<Property<ProtocolModel>> {
    vec![
        Property::always(NOTHING_LOST, |m: &ProtocolModel, s: &State| {
            !drained(m, s) || all_settled(s)
        }),
        Property::always(NO_PHANTOM, |_, s: &State| s.violations & PHANTOM == 0),
        Property::always(NO_STALE, |_, s: &State| s.violations & STALE == 0),
        Property::always(CAUSAL_ORDER, |_, s: &State| s.violations & CAUSAL == 0),
        Property::always(ROTATION, |_, s: &State| s.violations & DROPPED == 0),
        // Not vacuous: the interesting paths are taken, and drained states
        // with everything delivered are reached.
        Property::sometimes(
            "example: drained with every message delivered",
            |m: &ProtocolModel, s: &State| {
                drained(m, s) && !s.msgs.is_empty() && s.msgs.iter().all(|g| g.delivered)
            },
        ),
        Property::sometimes(
            "example: a late committer handed out",
            |m: &ProtocolModel, s: &State| {
                m.expect_seen & SEEN_LATE == 0 || s.seen & SEEN_LATE != 0
            },
        ),
        Property::sometimes(
            "example: an expired batch moved to the side table",
            |m: &ProtocolModel, s: &State| {
                m.expect_seen & SEEN_MOVED == 0 || s.seen & SEEN_MOVED != 0
            },
        ),
        Property::sometimes(
            "example: a message diverted behind its key",
            |m: &ProtocolModel, s: &State| {
                m.expect_seen & SEEN_DIVERT == 0 || s.seen & SEEN_DIVERT != 0
            },
        ),
        Property::sometimes(
            "example: a stale settle refused",
            |m: &ProtocolModel, s: &State| {
                m.expect_seen & SEEN_STALE_SETTLE == 0 || s.seen & SEEN_STALE_SETTLE != 0
            },
        ),
        Property::sometimes(
            "example: a segment truncated",
            |m: &ProtocolModel, s: &State| {
                m.expect_seen & SEEN_TRUNCATE == 0 || s.seen & SEEN_TRUNCATE != 0
            },
        ),
        Property::sometimes(
            "example: a rolled-back switch reconciled",
            |m: &ProtocolModel, s: &State| {
                m.expect_seen & SEEN_RECONCILE == 0 || s.seen & SEEN_RECONCILE != 0
            },
        ),
        Property::sometimes(
            "example: a message dead-lettered",
            |m: &ProtocolModel, s: &State| {
                m.expect_seen & SEEN_DEAD == 0 || s.seen & SEEN_DEAD != 0
            },
        ),
    ]
}
