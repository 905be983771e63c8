//! An executable model of the 0.2.0 storage protocol (docs/storage.md),
//! checked exhaustively with stateright. See README.md beside this crate.
//!
//! - [`pg`]: xids, snapshots, the id sequence;
//! - [`state`]: configuration and state;
//! - [`producer`]: producer transactions;
//! - [`rotation`]: switching and truncating segments;
//! - [`window`]: what a claim reads;
//! - [`claim`], [`settle`]: the relays' side;
//! - [`properties`]: what is checked;
//! - [`check`]: running the checker.

pub mod check;
pub mod claim;
pub mod pg;
pub mod producer;
pub mod properties;
pub mod rotation;
pub mod settle;
pub mod state;
pub mod window;

use stateright::{Model, Property};

use producer::Step;
use rotation::Rotate;
use settle::How;
use state::{Config, Held, State};

/// The model: a configuration, and which "not vacuous" examples it must
/// reach (bits of `state::SEEN_*`).
#[derive(Clone, Debug)]
pub struct ProtocolModel {
    pub cfg: Config,
    pub expect_seen: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Producer(u8, Step),
    Rotation(Rotate),
    /// Relay, partition: the claim's first statement.
    Lock(u8, u8),
    /// Partition: a claim's recovery of its expired batch.
    Recover(u8),
    /// Relay: the next statement of its window opening.
    Open(u8),
    /// Relay, index into the side table.
    ClaimSide(u8, u8),
    Settle(u8, u8, How),
    Crash(u8),
    /// Time passes for one lease: (partition) or (side id).
    Expire(Option<u8>, Option<u8>),
}

impl Model for ProtocolModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State::initial(&self.cfg)]
    }

    fn actions(&self, s: &State, out: &mut Vec<Action>) {
        let cfg = &self.cfg;
        if s.violations != 0 {
            // A safety violation ends the path: the counterexample is found.
            return;
        }
        let mut steps = Vec::new();
        for t in 0..cfg.txns.len() {
            steps.clear();
            producer::steps(cfg, s, t, &mut steps);
            out.extend(steps.iter().map(|&st| Action::Producer(t as u8, st)));
        }
        let mut rot = Vec::new();
        rotation::rotations(cfg, s, &mut rot);
        out.extend(rot.into_iter().map(Action::Rotation));
        for p in 0..cfg.partitions {
            if claim::can_recover(s, p) {
                out.push(Action::Recover(p));
            }
        }
        if let Some(r) = independent_opening_step(s) {
            // Partial-order reduction: this step commutes with every other
            // action from here on, so exploring it alone loses nothing.
            out.clear();
            out.push(Action::Open(r));
            return;
        }
        for r in 0..cfg.relays {
            let relay = &s.relays[usize::from(r)];
            if relay.claim.is_some() {
                out.push(Action::Open(r));
                continue;
            }
            if claim::relay_idle(s, r) {
                for p in 0..cfg.partitions {
                    if claim::can_lock(s, p) {
                        out.push(Action::Lock(r, p));
                    }
                }
                for at in 0..s.side.len() {
                    if claim::side_claimable(s, at) {
                        out.push(Action::ClaimSide(r, at as u8));
                    }
                }
                continue;
            }
            for id in settle::settleable(s, r) {
                for how in [How::Complete, How::Fail, How::Release] {
                    out.push(Action::Settle(r, id, how));
                }
            }
            if cfg.crashes {
                out.push(Action::Crash(r));
            }
        }
        for (p, side) in settle::expirable(s) {
            out.push(Action::Expire(p, side));
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let cfg = &self.cfg;
        let mut s = last.clone();
        match action {
            Action::Producer(t, st) => producer::step(cfg, &mut s, usize::from(t), st),
            Action::Rotation(what) => rotation::rotate(cfg, &mut s, what),
            Action::Lock(r, p) => claim::lock(cfg, &mut s, r, p),
            Action::Recover(p) => claim::recover(&mut s, p),
            Action::Open(r) => claim::open_step(cfg, &mut s, r),
            Action::ClaimSide(r, at) => claim::side_claim(cfg, &mut s, r, usize::from(at)),
            Action::Settle(r, id, how) => settle::settle(cfg, &mut s, r, id, how),
            Action::Crash(r) => settle::crash(&mut s, r),
            Action::Expire(p, side) => settle::expire(&mut s, p, side),
        }
        canonical_tokens(&mut s);
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        properties::properties()
    }
}

/// A relay whose next statement reads X (the next xid) when no producer can
/// take an xid any more, or takes S (a snapshot) when no producer can end
/// any more. Only producers change what these read, nobody reads what they
/// write before the claim's last step, and no property looks at them: such
/// a step is independent of everything else (an ample set of one).
fn independent_opening_step(s: &State) -> Option<u8> {
    let all_begun = s.prods.iter().all(|p| p.done || p.xid != 0);
    let all_done = s.prods.iter().all(|p| p.done);
    s.relays
        .iter()
        .position(|r| match &r.claim {
            Some(c) => match c.phase {
                state::Phase::ReadX => all_begun,
                state::Phase::TakeSnapshot => all_done,
                state::Phase::ReadWindow => false,
            },
            None => false,
        })
        .map(|r| r as u8)
}

/// Tokens are only ever compared for equality, so renumbering them in order
/// of appearance keeps every behaviour and makes the state space finite
/// (a fresh token per claim would otherwise make every state new).
fn canonical_tokens(s: &mut State) {
    let mut map: Vec<u8> = Vec::new();
    let mut canon = |t: &mut u8| {
        if *t == 0 {
            return;
        }
        let at = match map.iter().position(|&x| x == *t) {
            Some(at) => at,
            None => {
                map.push(*t);
                map.len() - 1
            }
        };
        *t = at as u8 + 1;
    };
    for p in s.parts.iter_mut() {
        if let Some(l) = p.lease.as_mut() {
            canon(&mut l.token);
        }
    }
    for x in s.side.iter_mut() {
        canon(&mut x.token);
    }
    for r in s.relays.iter_mut() {
        match &mut r.held {
            Held::Nothing => {}
            Held::Batch { token, .. } | Held::Side { token, .. } => canon(token),
        }
    }
    s.next_token = map.len() as u8 + 1;
}
