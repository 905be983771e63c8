//! Model-based random testing of the SQL API: random sequences of enqueue,
//! claim (several sessions, batch sizes, topic filters), complete, fail,
//! release, extend, clock steps that expire leases and bring retries due,
//! requeue and purge, each step compared with the state machine of
//! docs/state-machine.md over the 0.2.0 storage of docs/storage.md (model.rs:
//! the log's 16 partitions with their windows, batch leases and deferred
//! messages in model/log.rs, claim() in model/claim.rs, the side table with
//! per-message leases) over real connections to the real extension.
//!
//! The steps run one after another, each in its own transaction, so a
//! window is simply a partition's ids between two openings; what the model
//! checks beyond the answers is that per-key order holds after every claim
//! and that an empty claim means nothing is ready (the final drain).
//!
//! Time moves with `outbox.test_clock_offset` instead of sleeping. A failing
//! sequence is shrunk by proptest to a short one and printed with the seed
//! that replays it:
//!
//! ```text
//! OUTBOX_MODEL_SEED=<seed> cargo test -p outbox_tests --test model -- --nocapture
//! ```
//!
//! Budget: `OUTBOX_MODEL_CASES` sequences (default 200, the CI budget;
//! `make soak` runs 3000) of up to `OUTBOX_MODEL_STEPS` steps (default 40).

mod case;
mod checks;
mod model;
mod ops;
mod step;

use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use std::sync::atomic::{AtomicUsize, Ordering};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn the_sql_api_behaves_like_its_documented_state_machine() {
    let cases = env_or("OUTBOX_MODEL_CASES", 200) as u32;
    let max_steps = env_or("OUTBOX_MODEL_STEPS", 40) as usize;
    let seed = env_or("OUTBOX_MODEL_SEED", rand_seed());
    eprintln!(
        "model: seed {seed}, {cases} sequences of up to {max_steps} steps \
         (replay: OUTBOX_MODEL_SEED={seed} cargo test -p outbox_tests --test model)"
    );
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let steps = AtomicUsize::new(0);
    let sequences = AtomicUsize::new(0);
    let mut runner = TestRunner::new(config);
    let outcome = runner.run(&ops::sequence(max_steps), |ops| {
        sequences.fetch_add(1, Ordering::Relaxed);
        rt.block_on(case::run(&ops, &steps))
            .map_err(TestCaseError::fail)
    });
    match outcome {
        Ok(()) => eprintln!(
            "model: {} sequences, {} steps, all as the model says (seed {seed})",
            sequences.load(Ordering::Relaxed),
            steps.load(Ordering::Relaxed)
        ),
        Err(TestError::Fail(why, ops)) => panic!(
            "the outbox diverged from its model (seed {seed}; replay with OUTBOX_MODEL_SEED={seed}):\n\
             {why}\nshrunk sequence ({} steps):\n{ops:#?}",
            ops.len()
        ),
        Err(e) => panic!("model run aborted (seed {seed}): {e}"),
    }
}

/// A seed for this run when none is given: the clock's nanoseconds.
fn rand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}
