//! Which log rows a claim reads: the window's two branches (storage.md,
//! "Partitions and windows"; sql/queries/window_open.sql and window_read.sql)
//! and the controls' read rules. Every read here is a fresh READ COMMITTED statement, so it only
//! sees rows of committed transactions; the branches then filter by snapshot
//! membership with `pg_visible_in_snapshot`, as the SQL does.

use crate::state::{Config, Part, Pos, Row, State, Variant};

/// The position of a row in the hand-out order.
pub fn pos(cfg: &Config, row: &Row) -> Pos {
    match cfg.variant {
        Variant::XidOrder => (row.xid, row.id),
        _ => (0, row.id),
    }
}

/// Late branch: transactions that had their xid before `xid_lo` was read,
/// i.e. in `xip(snap_lo)` or in `[xmax(snap_lo), xid_lo)`, and ended in
/// `snap_hi`.
fn late(cfg: &Config, p: &Part, row: &Row) -> bool {
    let lo = &p.snap_lo;
    let started_before = match cfg.variant {
        // Control (c): only `xip(snap_lo)` counts as "started before".
        Variant::XmaxBound => lo.in_xip(row.xid),
        _ => lo.in_xip(row.xid) || (row.xid >= lo.xmax && row.xid < p.xid_lo),
    };
    started_before && p.snap_hi.shows_ended(row.xid)
}

/// Fresh branch: xid `>= xid_lo`, id in `(id_lo, id_hi]` (the cursor bound is
/// applied by the caller), in `snap_hi` and not in `snap_lo`.
fn fresh(cfg: &Config, p: &Part, row: &Row) -> bool {
    let xid_bound = match cfg.variant {
        Variant::XmaxBound => p.snap_lo.xmax,
        _ => p.xid_lo,
    };
    row.xid >= xid_bound
        && row.id > p.id_lo
        && row.id <= p.id_hi
        && p.snap_hi.shows_ended(row.xid)
        && !p.snap_lo.shows_ended(row.xid)
}

/// The rows the next batch is taken from, in hand-out order, past `cursor`.
pub fn read(cfg: &Config, s: &State, part: u8, cursor: Pos) -> Vec<Row> {
    let p = &s.parts[usize::from(part)];
    let mut rows: Vec<Row> = s
        .log
        .iter()
        .filter(|r| r.part == part && s.pg.committed(r.xid) && pos(cfg, r) > cursor)
        .filter(|r| match cfg.variant {
            Variant::IdCursor => true,
            _ => late(cfg, p, r) || fresh(cfg, p, r),
        })
        .cloned()
        .collect();
    rows.sort_by_key(|r| pos(cfg, r));
    rows
}

/// Whether a late row (branch 1) is being handed out: only for the
/// "not vacuous" checks.
pub fn is_late(cfg: &Config, s: &State, part: u8, row: &Row) -> bool {
    cfg.variant != Variant::IdCursor && row.id <= s.parts[usize::from(part)].id_lo
}
