//! Explore one configuration and print its state count: for choosing bounds.
//! `cargo run -p outbox-protocol-model --release --example explore -- \
//!   <txns e.g. "K,-;K"> <abortable bits> <relays> <crashes 0/1> <partitions>
//!   <segments> <switches> [max unique states]`

use outbox_protocol_model::state::{Config, OwnXid, RotationRule, Variant};
use outbox_protocol_model::ProtocolModel;
use stateright::{Checker, Model};
use std::time::Instant;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| a.get(i).and_then(|x| x.parse::<u8>().ok()).unwrap_or(0);
    let txns = a.first().map_or("K,-;K", String::as_str);
    let txns: Vec<Vec<Option<u8>>> = txns
        .split(';')
        .map(|t| t.split(',').map(|m| (m == "K").then_some(0)).collect())
        .collect();
    let cfg = Config {
        txns,
        abortable: num(1),
        relays: num(2),
        crashes: num(3) == 1,
        partitions: num(4),
        segments: num(5),
        batch_size: 2,
        max_attempts: 2,
        max_switches: num(6),
        variant: Variant::Design,
        rotation: RotationRule::Design,
        consumer: None,
        own_xid: OwnXid::Listed,
    };
    let cap: usize = a.get(7).and_then(|x| x.parse().ok()).unwrap_or(3_000_000);
    let started = Instant::now();
    let c = ProtocolModel {
        cfg,
        expect_seen: 0,
    }
    .checker()
    .threads(2)
    .target_state_count(cap)
    .spawn_bfs()
    .join();
    println!(
        "{} states ({} unique), depth {}, {:.1?}, discoveries {:?}",
        c.state_count(),
        c.unique_state_count(),
        c.max_depth(),
        started.elapsed(),
        c.discoveries().keys().collect::<Vec<_>>()
    );
}
