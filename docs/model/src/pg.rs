//! PostgreSQL's transaction ids, snapshots and message-id sequence, exactly as
//! far as the protocol depends on them.
//!
//! What is kept: xids are handed out in increasing order when a transaction
//! first needs one; `latestCompletedXid` is the highest xid that ended
//! (committed or aborted); a snapshot is `xmax = latestCompleted + 1` plus the
//! running xids below it. So a running xid can be `>= xmax` (assigned after the
//! last completion): such a snapshot does not list it in `xip`, yet it has not
//! ended. What is dropped: subtransactions, multixacts, wraparound (xids here
//! are a few small numbers), and the gap between the clog update and the
//! ProcArray removal at commit (a commit is one atomic step; PostgreSQL makes
//! both look atomic to snapshot takers, which is all the protocol relies on).

/// A transaction id. 0 means "none"; real ones start at 1.
pub type Xid = u8;

/// What became of a transaction that has an xid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxStatus {
    Running,
    Committed,
    Aborted,
}

/// `pg_snapshot`: `xmax` and the running xids below it (a bit per xid).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Snapshot {
    pub xmax: Xid,
    pub xip: u16,
}

impl Snapshot {
    /// `xid = ANY(pg_snapshot_xip(snap))`.
    pub fn in_xip(&self, xid: Xid) -> bool {
        self.xip & bit(xid) != 0
    }

    /// `pg_visible_in_snapshot(xid, snap)`: the snapshot saw `xid` as ended.
    /// Like PostgreSQL's, this says nothing about commit versus abort: the
    /// protocol only reads rows through a fresh statement snapshot, which
    /// hides aborted rows, so it gets "committed" from there.
    pub fn shows_ended(&self, xid: Xid) -> bool {
        xid < self.xmax && !self.in_xip(xid)
    }

    /// `outbox._window_snapshot(snap)` for a claim in transaction `own`
    /// (0: none): `own` listed as running, as schema.sql does. PostgreSQL
    /// never lists a backend's own xid in its snapshot, so without this a
    /// window counts the claiming transaction as ended once any later xid
    /// has ended.
    pub fn listing(mut self, own: Xid) -> Snapshot {
        if own != 0 && own < self.xmax {
            self.xip |= bit(own);
        }
        self
    }

    /// `pg_snapshot_xmin(snap)`: the lowest xid in `xip`, or `xmax`. Every
    /// xid below it had ended when the snapshot was taken.
    pub fn xmin(&self) -> Xid {
        (1..self.xmax)
            .find(|&x| self.in_xip(x))
            .unwrap_or(self.xmax)
    }
}

fn bit(xid: Xid) -> u16 {
    // The model never has more than 15 xids (see `Pg::assign_xid`).
    1u16 << xid
}

/// The cluster-wide transaction and sequence state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pg {
    /// The next xid to assign (`ReadNextFullTransactionId`, which is what the
    /// design's "next xid, read without taking one" is).
    pub next_xid: Xid,
    pub latest_completed: Xid,
    /// Indexed by `xid - 1`.
    pub status: Vec<TxStatus>,
    /// The message id sequence's last issued value (non-transactional).
    pub last_id: u8,
}

impl Default for Pg {
    fn default() -> Self {
        Pg {
            next_xid: 1,
            latest_completed: 0,
            status: Vec::new(),
            last_id: 0,
        }
    }
}

impl Pg {
    pub fn assign_xid(&mut self) -> Xid {
        let xid = self.next_xid;
        assert!(xid < 15, "model bound: at most 14 xids fit the xip bitmask");
        self.next_xid += 1;
        self.status.push(TxStatus::Running);
        xid
    }

    /// Commit or abort: both advance `latestCompletedXid`.
    pub fn end(&mut self, xid: Xid, commit: bool) {
        self.status[usize::from(xid) - 1] = if commit {
            TxStatus::Committed
        } else {
            TxStatus::Aborted
        };
        self.latest_completed = self.latest_completed.max(xid);
    }

    pub fn status(&self, xid: Xid) -> TxStatus {
        self.status[usize::from(xid) - 1]
    }

    pub fn committed(&self, xid: Xid) -> bool {
        self.status(xid) == TxStatus::Committed
    }

    pub fn running(&self, xid: Xid) -> bool {
        self.status(xid) == TxStatus::Running
    }

    /// `pg_current_snapshot()` (GetSnapshotData) of a session without an
    /// xid.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_of(0)
    }

    /// `pg_current_snapshot()` in transaction `own`: GetSnapshotData skips
    /// the backend's own xid, so it is in no `xip`.
    pub fn snapshot_of(&self, own: Xid) -> Snapshot {
        let xmax = self.latest_completed + 1;
        let xip = (1..xmax)
            .filter(|&x| x != own && self.running(x))
            .fold(0u16, |acc, x| acc | bit(x));
        Snapshot { xmax, xip }
    }

    /// `nextval`: never rolled back, never reused.
    pub fn next_id(&mut self) -> u8 {
        self.last_id += 1;
        self.last_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_xid_above_the_last_completion_is_neither_in_xip_nor_ended() {
        let mut pg = Pg::default();
        let a = pg.assign_xid();
        let b = pg.assign_xid();
        pg.end(a, true);
        let snap = pg.snapshot();
        // b was assigned but a completed last: xmax = a + 1 = b.
        assert_eq!(snap.xmax, b);
        assert!(!snap.in_xip(b));
        assert!(!snap.shows_ended(b));
        assert!(snap.shows_ended(a));
    }

    #[test]
    fn xmin_is_the_oldest_xid_in_xip_or_xmax() {
        let mut pg = Pg::default();
        let a = pg.assign_xid();
        let b = pg.assign_xid();
        assert_eq!(pg.snapshot().xmin(), 1);
        pg.end(b, true);
        assert_eq!(pg.snapshot().xmin(), a);
        pg.end(a, true);
        assert_eq!(pg.snapshot().xmin(), 3);
    }

    #[test]
    fn the_own_xid_is_in_no_snapshot_until_listed() {
        let mut pg = Pg::default();
        let own = pg.assign_xid();
        let other = pg.assign_xid();
        pg.end(other, true);
        let snap = pg.snapshot_of(own);
        assert!(snap.shows_ended(own), "PostgreSQL's snapshot: looks ended");
        assert!(!snap.listing(own).shows_ended(own));
        assert!(snap.listing(own).in_xip(own));
    }

    #[test]
    fn a_running_xid_below_a_later_completion_is_in_xip() {
        let mut pg = Pg::default();
        let a = pg.assign_xid();
        let b = pg.assign_xid();
        pg.end(b, false);
        let snap = pg.snapshot();
        assert!(snap.in_xip(a));
        assert!(snap.shows_ended(b));
    }
}
