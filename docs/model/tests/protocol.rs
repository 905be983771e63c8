//! The exhaustive checks `make test` runs: the design holds for the bounds
//! below (with the two fixes README.md proposes), the design as written fails
//! in the two ways README.md describes, and each trap the prototype found is
//! found again (negative controls: the model can see these bugs).

use outbox_protocol_model::check::{bfs, shortest};
use outbox_protocol_model::properties::{CAUSAL_ORDER, NOTHING_LOST, ROTATION};
use outbox_protocol_model::state::{
    Config, Fixes, Variant, SEEN_DEAD, SEEN_DIVERT, SEEN_LATE, SEEN_MOVED, SEEN_STALE_SETTLE,
    SEEN_TRUNCATE,
};
use outbox_protocol_model::ProtocolModel;
use stateright::Checker;

const K: Option<u8> = Some(0);

/// Two producers on one key (the first also sends a keyless message, the
/// second may abort), two relays, two partitions, no rotation: windows, late
/// committers, diverts, batch leases lost and taken over, stale settles.
fn keys_and_leases(variant: Variant, fixes: Fixes) -> Config {
    Config {
        txns: vec![vec![K, None], vec![K]],
        abortable: 0b10,
        relays: 2,
        crashes: false,
        partitions: 2,
        segments: 0,
        batch_size: 2,
        max_attempts: 2,
        variant,
        fixes,
    }
}

/// A keyed and a keyless producer (the second may abort), one relay that may
/// crash, two segments rotating in any order with everything else.
fn rotation(fixes: Fixes) -> Config {
    Config {
        txns: vec![vec![K], vec![None]],
        abortable: 0b10,
        relays: 1,
        crashes: true,
        partitions: 2,
        segments: 2,
        batch_size: 2,
        max_attempts: 2,
        variant: Variant::Design,
        fixes,
    }
}

/// The smallest setting for the controls: two producers on one key.
fn two_on_one_key(variant: Variant) -> Config {
    Config {
        txns: vec![vec![K], vec![K]],
        abortable: 0,
        relays: 1,
        crashes: true,
        partitions: 1,
        segments: 0,
        batch_size: 2,
        max_attempts: 2,
        variant,
        fixes: Fixes::PROPOSED,
    }
}

fn model(cfg: Config, expect_seen: u8) -> ProtocolModel {
    ProtocolModel { cfg, expect_seen }
}

#[test]
fn design_with_the_proposed_fixes_keeps_all_five_properties_in_windows_and_leases() {
    let seen = SEEN_LATE | SEEN_MOVED | SEEN_DIVERT | SEEN_STALE_SETTLE | SEEN_DEAD;
    let cfg = keys_and_leases(Variant::Design, Fixes::PROPOSED);
    bfs("keys and leases", model(cfg, seen)).assert_properties();
}

#[test]
fn design_with_the_proposed_fixes_keeps_all_five_properties_under_rotation() {
    let seen = SEEN_LATE | SEEN_MOVED | SEEN_TRUNCATE | SEEN_DEAD;
    bfs("rotation", model(rotation(Fixes::PROPOSED), seen)).assert_properties();
}

/// Finds `property`'s shortest counterexample, prints it, and fails if there
/// is none.
fn counterexample(name: &str, cfg: Config, property: &'static str) {
    match shortest(name, model(cfg, 0), property) {
        Some(trace) => println!("{name}: counterexample to {property:?}:\n{trace}\n"),
        None => panic!("{name}: expected a counterexample to {property:?}, found none"),
    }
}

#[test]
fn as_written_the_probe_misses_a_committer_above_xmax_and_its_message_is_never_delivered() {
    let fixes = Fixes {
        probe_above_xmax: false,
        ..Fixes::PROPOSED
    };
    counterexample(
        "probe as written",
        keys_and_leases(Variant::Design, fixes),
        NOTHING_LOST,
    );
}

#[test]
fn as_written_a_seal_read_before_the_switch_commits_lets_truncate_drop_an_unconsumed_row() {
    let fixes = Fixes {
        seal_after_commit: false,
        ..Fixes::PROPOSED
    };
    counterexample("seal as written", rotation(fixes), ROTATION);
}

#[test]
fn control_a_plain_id_cursor_loses_a_late_committer() {
    counterexample(
        "control (a) id cursor",
        two_on_one_key(Variant::IdCursor),
        NOTHING_LOST,
    );
}

#[test]
fn control_b_xid_order_inside_a_window_breaks_per_key_causal_order() {
    counterexample(
        "control (b) xid order",
        two_on_one_key(Variant::XidOrder),
        CAUSAL_ORDER,
    );
}

#[test]
fn control_c_fresh_branch_split_at_xmax_instead_of_xid_lo_loses_a_message() {
    counterexample(
        "control (c) xmax bound",
        two_on_one_key(Variant::XmaxBound),
        NOTHING_LOST,
    );
}

#[test]
fn the_controls_setting_passes_with_the_design() {
    bfs(
        "controls' setting, design",
        model(two_on_one_key(Variant::Design), 0),
    )
    .assert_properties();
}
