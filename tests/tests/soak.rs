//! The chaos soak, CI-sized: the same code as `make soak`
//! (`outbox_tests::soak`), 20,000 messages from 8 producers over 90 seconds,
//! 4 `outbox-relay` processes, every kind of fault injected while they run.
//! About 2 minutes on 2 cores.
//!
//! `OUTBOX_SOAK_SEED=<n>` replays a run (the seed is printed, and is in the
//! report under `target/soak/ci/`).

use std::path::PathBuf;

use outbox_tests::soak::{find_relay_binary, run, SoakConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_chaos_nothing_is_lost_nothing_is_phantom_and_key_order_holds() {
    let relay = find_relay_binary().unwrap_or_else(|e| panic!("{e}"));
    // target/soak/ci, next to the target/<profile>/ this test runs from.
    let target = relay
        .parent()
        .and_then(|profile| profile.parent())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    let mut cfg = SoakConfig::new(relay, target.join("soak").join("ci"));
    if let Ok(seed) = std::env::var("OUTBOX_SOAK_SEED") {
        cfg.seed = seed.parse().expect("OUTBOX_SOAK_SEED is a number");
    }
    let report = run(&cfg)
        .await
        .unwrap_or_else(|e| panic!("soak could not run: {e}"));
    let f = &report.findings;
    let seed = cfg.seed;
    let at = report.run_dir.display();
    assert_eq!(f.lost, 0, "seed {seed}: lost messages; see {at}");
    assert_eq!(f.phantom, 0, "seed {seed}: phantom deliveries; see {at}");
    assert_eq!(
        f.order_violations, 0,
        "seed {seed}: per-key order broken; see {at}"
    );
    assert_eq!(
        f.unresolved, 0,
        "seed {seed}: ambiguous commits left unresolved; see {at}"
    );
    assert_eq!(
        f.ledger_mismatches, 0,
        "seed {seed}: producers and ledger disagree; see {at}"
    );
    assert_eq!(
        report.outbox_left, 0,
        "seed {seed}: the outbox did not drain; see {at}"
    );
    assert_eq!(
        report.missing_fault_kinds(),
        Vec::<&str>::new(),
        "seed {seed}: fault kinds never injected"
    );
    assert!(
        f.committed > 15_000,
        "seed {seed}: only {} messages committed; the soak proved little",
        f.committed
    );
    assert_eq!(
        f.poison_dead, f.poison_committed,
        "seed {seed}: every committed poison message must end as a dead letter"
    );
}
