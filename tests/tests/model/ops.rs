//! The steps a case is made of, and how proptest generates them. Every
//! time is in ticks (model.rs). A step that refers to an earlier claim or a
//! dead letter does so by index, resolved when it runs, so shrinking a
//! sequence keeps every step meaningful.

use proptest::prelude::*;
use proptest::sample::Index;

#[derive(Debug, Clone)]
pub enum Op {
    Enqueue {
        conn: usize,
        topic: usize,
        key: Option<u8>,
        /// deliver_at, in ticks from now (negative: in the past).
        deliver_in: Option<i64>,
        max_attempts: Option<i32>,
    },
    EnqueueBatch {
        topic: usize,
        keys: Vec<Option<u8>>,
        deliver_in: Option<i64>,
    },
    Claim {
        conn: usize,
        batch: usize,
        lease: i64,
        /// None: every topic; else indexes into model::TOPICS.
        topics: Option<Vec<usize>>,
    },
    /// complete / complete_batch the chosen messages of an earlier claim
    /// (`claim: None`: with a token no claim ever returned).
    Complete {
        conn: usize,
        claim: Option<Index>,
        pick: u8,
        single: bool,
    },
    Release {
        conn: usize,
        claim: Option<Index>,
        pick: u8,
        single: bool,
    },
    Extend {
        conn: usize,
        claim: Option<Index>,
        pick: u8,
        single: bool,
        lease: i64,
    },
    Fail {
        conn: usize,
        claim: Option<Index>,
        which: Index,
        retry_in: Option<i64>,
        permanent: bool,
    },
    /// Move the outbox's clock forward.
    Advance {
        ticks: i64,
    },
    Requeue {
        which: Index,
    },
    Purge {
        which: Index,
    },
    /// purge_dead_topic(topic, older_than = ticks + half a tick, so no
    /// death is ever exactly on the boundary).
    PurgeTopic {
        topic: usize,
        older_than: Option<i64>,
    },
}

/// How many sessions the steps are spread over.
pub const CONNS: usize = 3;

fn conn() -> impl Strategy<Value = usize> {
    0..CONNS
}

fn claim_ref() -> impl Strategy<Value = Option<Index>> {
    prop_oneof![1 => Just(None), 9 => any::<Index>().prop_map(Some)]
}

/// How many keys a case uses (`k0`, `k1`, ...).
pub const KEYS: u8 = 3;

fn key() -> impl Strategy<Value = Option<u8>> {
    prop_oneof![1 => Just(None), 3 => (0u8..KEYS).prop_map(Some)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (conn(), 0..2usize, key(), prop::option::weighted(0.3, -2i64..6), prop::option::weighted(0.3, 1i32..4))
            .prop_map(|(conn, topic, key, deliver_in, max_attempts)| Op::Enqueue { conn, topic, key, deliver_in, max_attempts }),
        1 => (0..2usize, prop::collection::vec(key(), 1..5), prop::option::weighted(0.2, 0i64..4))
            .prop_map(|(topic, keys, deliver_in)| Op::EnqueueBatch { topic, keys, deliver_in }),
        5 => (conn(), 1..5usize, 1i64..7, prop::option::weighted(0.3, prop_oneof![Just(vec![0]), Just(vec![1]), Just(vec![0, 1])]))
            .prop_map(|(conn, batch, lease, topics)| Op::Claim { conn, batch, lease, topics }),
        4 => (conn(), claim_ref(), any::<u8>(), any::<bool>())
            .prop_map(|(conn, claim, pick, single)| Op::Complete { conn, claim, pick, single }),
        1 => (conn(), claim_ref(), any::<u8>(), any::<bool>())
            .prop_map(|(conn, claim, pick, single)| Op::Release { conn, claim, pick, single }),
        1 => (conn(), claim_ref(), any::<u8>(), any::<bool>(), 1i64..7)
            .prop_map(|(conn, claim, pick, single, lease)| Op::Extend { conn, claim, pick, single, lease }),
        3 => (conn(), claim_ref(), any::<Index>(), prop::option::weighted(0.4, 0i64..5), prop::bool::weighted(0.2))
            .prop_map(|(conn, claim, which, retry_in, permanent)| Op::Fail { conn, claim, which, retry_in, permanent }),
        4 => prop_oneof![4 => 1i64..4, 1 => 4i64..40].prop_map(|ticks| Op::Advance { ticks }),
        1 => any::<Index>().prop_map(|which| Op::Requeue { which }),
        1 => any::<Index>().prop_map(|which| Op::Purge { which }),
        1 => (0..2usize, prop::option::of(0i64..5)).prop_map(|(topic, older_than)| Op::PurgeTopic { topic, older_than }),
    ]
}

/// A case: up to `max_len` steps.
pub fn sequence(max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..max_len)
}

/// The members of `ids` that the bits of `pick` choose (bit i -> ids[i]).
pub fn picked(ids: &[i64], pick: u8) -> Vec<i64> {
    ids.iter()
        .enumerate()
        .filter(|(i, _)| *i < 8 && pick & (1 << i) != 0)
        .map(|(_, id)| *id)
        .collect()
}
