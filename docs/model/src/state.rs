//! The model's configuration and state: the log, the partition rows, the side
//! table, producers, relays, rotation, and the ghost variables the properties
//! read (what was handed out, delivered, dead-lettered; what went wrong).

use crate::pg::{Pg, Snapshot, Xid};

/// Which read rule a claim uses. `Design` is storage.md and the
/// implementation (sql/queries/window_open.sql, window_read.sql); the others
/// are the traps the prototype found, kept as negative controls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// Windows, two branches split at `xid_lo`, merged by id.
    Design,
    /// Control (a): no windows, a plain "committed and id > cursor" read.
    IdCursor,
    /// Control (b): the design's windows, but handed out in (xid, id) order.
    XidOrder,
    /// Control (c): the branches split at `xmax(snap_lo)` instead of `xid_lo`.
    XmaxBound,
}

/// How producers and the rotation agree on the current segment. `Design` is
/// the implementation (sql/queries/enqueue.sql, sql/rotation.sql); the others
/// are negative controls that must lose a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationRule {
    /// The segment is `outbox.log_segment`, a sequence: a switch (nextval)
    /// is seen by every producer at once. A producer reads it after its xid
    /// is taken; the switch reads the seal (next xid) after the bump, in the
    /// same transaction.
    Design,
    /// Control (d): the switch reads the seal before it bumps the sequence.
    SealBeforeBump,
    /// Control (e): a producer reads the segment before it takes its xid.
    SegmentBeforeXid,
    /// Control (f), storage.md as first written: producers read the current
    /// segment from the committed `outbox.segments` row (transactional: the
    /// switch is seen only once it commits), the seal read inside the switch.
    SegmentFromRow,
}

/// Which snapshot a window is opened with, for a claim made inside a
/// transaction that has an xid (a consumer that wrote, claims, and enqueues
/// a follow-up before it commits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnXid {
    /// `outbox._window_snapshot(pg_current_snapshot())`: the claiming
    /// transaction's own xid listed as running (window_open.sql).
    Listed,
    /// Control (g): `pg_current_snapshot()` as it is, which never lists the
    /// backend's own xid.
    Unlisted,
}

/// The bounds and the rules.
#[derive(Clone, Debug)]
pub struct Config {
    /// One entry per producer transaction: the keys of the messages it
    /// enqueues, in order (`None` = keyless).
    pub txns: Vec<Vec<Option<u8>>>,
    /// Which transactions may abort (bit per index); the others commit.
    /// Aborts multiply the interleavings, and one aborting transaction is
    /// enough to check "nothing phantom" and an abort moving `xmax`.
    pub abortable: u8,
    pub relays: u8,
    /// Relays may crash (forget their lease). With two relays this adds
    /// little: a relay that settles late, with a stale token, leaves the rows
    /// as a crashed one would, and the other relay does the work meanwhile.
    pub crashes: bool,
    pub partitions: u8,
    /// 0 = no rotation (one segment for ever); otherwise 2 or 3 (the
    /// implementation has 3).
    pub segments: u8,
    pub batch_size: u8,
    pub max_attempts: u8,
    /// Switches per run at most (the sequence's value bounds it): each one
    /// multiplies the interleavings, and two already make a segment come
    /// round again with 2 segments.
    pub max_switches: u8,
    pub variant: Variant,
    pub rotation: RotationRule,
    /// The producer transaction (index into `txns`) that also claims, once
    /// it has its xid and before its next message: through the last relay,
    /// whose batch it then holds (settled after the commit). Never
    /// abortable (its claim's writes would roll back with it).
    pub consumer: Option<u8>,
    pub own_xid: OwnXid,
}

impl Config {
    /// `hashtextextended(key) % P` for a keyed message, `id % P` otherwise;
    /// the hash is the identity here (which key lands where does not matter,
    /// only that a key always lands in the same partition).
    pub fn part_of(&self, key: Option<u8>, id: u8) -> u8 {
        key.unwrap_or(id) % self.partitions
    }
}

/// A row of `outbox.log_N`. Never updated; removed only by TRUNCATE.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Row {
    pub id: u8,
    pub part: u8,
    pub xid: Xid,
    pub key: Option<u8>,
    pub seg: u8,
}

/// A cursor position. The design orders a window by id, so the first field is
/// always 0; control (b) orders by (xid, id).
pub type Pos = (u8, u8);

/// A partition's batch lease (the lease columns of `outbox.partitions`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    pub token: u8,
    /// "Time passed": the lease is over, but nothing was written.
    pub expired: bool,
    pub batch: Vec<u8>,
    pub batch_end: Pos,
    /// Ghost: the relay the claim was made for (1-based), to check fencing
    /// independently of the tokens.
    pub holder: u8,
}

/// A row of `outbox.partitions`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Part {
    pub snap_lo: Snapshot,
    pub snap_hi: Snapshot,
    pub xid_lo: Xid,
    pub id_lo: u8,
    pub id_hi: u8,
    pub cursor: Pos,
    /// I and X of the last opening, which become `id_lo`/`xid_lo` of the next.
    pub next_id_lo: u8,
    pub next_xid_lo: Xid,
    /// The last read of this window found its end (partition_take.sql's
    /// `window_done`): the next claim opens a new window.
    pub window_done: bool,
    pub lease: Option<Lease>,
    /// `FOR UPDATE` held by a claim in progress.
    pub locked: bool,
}

/// A row of `outbox.messages` (the side table), reduced to what ordering,
/// fencing and attempts need.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Side {
    pub id: u8,
    pub key: Option<u8>,
    /// 0 = no lease.
    pub token: u8,
    pub expired: bool,
    pub attempt: u8,
    /// Ghost: see `Lease::holder`.
    pub holder: u8,
}

/// A producer transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Prod {
    /// 0 until the transaction has its xid.
    pub xid: Xid,
    pub sent: u8,
    /// The segment read for the next insert.
    pub seg: Option<u8>,
    pub done: bool,
    /// The partition this transaction claimed from (`Config::consumer`):
    /// locked until it ends.
    pub claimed: Option<u8>,
}

/// What a relay believes it holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Held {
    Nothing,
    Batch { part: u8, token: u8, ids: Vec<u8> },
    Side { id: u8, token: u8 },
}

/// A partition claim between its statements.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Claim {
    pub part: u8,
    pub phase: Phase,
    pub i: u8,
    pub x: Xid,
    pub s: Snapshot,
}

/// The next statement of a window opening.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// I was read with the lock; next: X.
    ReadX,
    /// Next: the snapshot S.
    TakeSnapshot,
    /// Next: J, then the read and the lease (one commit).
    ReadWindow,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Relay {
    pub held: Held,
    pub claim: Option<Claim>,
}

/// A row of `outbox.segments`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Seg {
    Current,
    /// Every transaction that can still write it has an xid below this.
    Sealed(Xid),
    Empty,
}

/// `outbox._rotate()` between its statements (it runs in a claim's
/// transaction, serialised on `outbox.segments`' row 0).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RotTxn {
    /// `outbox.segments` as this transaction sees it (its own updates).
    pub table: Vec<Seg>,
    /// The segment the sequence pointed at when the transaction began.
    pub cur: u8,
    /// Reconcile made `cur` current in this call (so its `since` is now and
    /// the interval, at least 1 s, forbids a switch in the same call).
    pub reconciled: bool,
    /// Segments truncated, as a bit set: gone for others at commit (until
    /// then TRUNCATE's lock blocks their writers).
    pub truncated: u8,
    pub switch: SwitchPhase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SwitchPhase {
    None,
    /// The sequence was bumped; the seal is read next.
    Bumped,
    /// (Control (d) only) the seal was read; the bump is next.
    SealRead(Xid),
    Done,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rotation {
    /// `outbox.log_segment`'s value (non-transactional); the current segment
    /// is this modulo the number of segments. Also counts the switches.
    pub seq: u8,
    /// `outbox.segments` as committed.
    pub table: Vec<Seg>,
    pub txn: Option<RotTxn>,
}

impl Rotation {
    pub fn seq_seg(&self, n: u8) -> u8 {
        self.seq % n
    }

    /// The committed row marked current (control (f) reads this).
    pub fn row_current(&self) -> u8 {
        self.table
            .iter()
            .position(|&g| g == Seg::Current)
            .map_or(0, |at| at as u8)
    }
}

/// Ghost per message, indexed by `id - 1`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ghost {
    pub xid: Xid,
    pub key: Option<u8>,
    /// Messages of the same key that had committed when this one was
    /// enqueued (bit per id): they must be finished before it is handed out.
    pub preds: u16,
    pub handed: bool,
    pub delivered: bool,
    pub dead: bool,
    /// Copied out of the log (to the side table or completed from a batch):
    /// the log row is no longer needed.
    pub left_log: bool,
}

/// Safety violations, recorded by the transition that commits them.
pub const PHANTOM: u8 = 1;
pub const STALE: u8 = 2;
pub const CAUSAL: u8 = 4;
pub const DROPPED: u8 = 8;

/// Things that happened at least once, for "the check is not vacuous".
pub const SEEN_LATE: u8 = 1;
pub const SEEN_MOVED: u8 = 2;
pub const SEEN_DIVERT: u8 = 4;
pub const SEEN_STALE_SETTLE: u8 = 8;
pub const SEEN_TRUNCATE: u8 = 16;
pub const SEEN_DEAD: u8 = 32;
/// A rotation sealed a segment left current by a rolled-back switch.
pub const SEEN_RECONCILE: u8 = 64;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub pg: Pg,
    pub prods: Vec<Prod>,
    pub log: Vec<Row>,
    pub msgs: Vec<Ghost>,
    pub parts: Vec<Part>,
    pub side: Vec<Side>,
    pub relays: Vec<Relay>,
    pub rot: Rotation,
    pub next_token: u8,
    pub violations: u8,
    pub seen: u8,
}

impl State {
    pub fn initial(cfg: &Config) -> State {
        let pg = Pg::default();
        // The log starts empty: every partition's first window is (S0, S0].
        let s0 = pg.snapshot();
        let part = Part {
            snap_lo: s0,
            snap_hi: s0,
            xid_lo: pg.next_xid,
            id_lo: 0,
            id_hi: 0,
            cursor: (0, 0),
            next_id_lo: 0,
            next_xid_lo: pg.next_xid,
            window_done: true,
            lease: None,
            locked: false,
        };
        State {
            pg,
            prods: vec![
                Prod {
                    xid: 0,
                    sent: 0,
                    seg: None,
                    done: false,
                    claimed: None,
                };
                cfg.txns.len()
            ],
            log: Vec::new(),
            msgs: Vec::new(),
            parts: vec![part; usize::from(cfg.partitions)],
            side: Vec::new(),
            relays: vec![
                Relay {
                    held: Held::Nothing,
                    claim: None,
                };
                usize::from(cfg.relays)
            ],
            rot: Rotation {
                seq: 0,
                table: (0..cfg.segments.max(1))
                    .map(|g| if g == 0 { Seg::Current } else { Seg::Empty })
                    .collect(),
                txn: None,
            },
            next_token: 1,
            violations: 0,
            seen: 0,
        }
    }

    pub fn ghost(&self, id: u8) -> &Ghost {
        &self.msgs[usize::from(id) - 1]
    }

    pub fn ghost_mut(&mut self, id: u8) -> &mut Ghost {
        &mut self.msgs[usize::from(id) - 1]
    }

    pub fn row(&self, id: u8) -> Option<&Row> {
        self.log.iter().find(|r| r.id == id)
    }

    pub fn fresh_token(&mut self) -> u8 {
        let t = self.next_token;
        self.next_token += 1;
        t
    }
}
