//! The relay's side of the doorbell, following the protocol in
//! sql/doorbell.sql: when every worker found nothing, arm, let the workers
//! re-check, sleep until a ring, the poll interval, or a worker finding work,
//! then disarm and wake everyone.

use super::{connect, sql, Shared};
use std::sync::Arc;

/// How long arming may wait for producers that are committing.
const ARM_WAIT: &str = "2 seconds";

pub(crate) async fn run<P>(shared: Arc<Shared<P>>) {
    let cfg = shared.config.clone();
    let workers = cfg.concurrency;
    // Validated when the relay started (RelayConfig::validate).
    let schema = cfg.statements().map_or("outbox", |s| s.schema);
    let (arm, disarm) = (sql::arm(schema), sql::disarm(schema));
    let mut idle = shared.idle.subscribe();
    loop {
        let connected = connect::with_backoff(
            "doorbell connection",
            cfg.reconnect_max,
            &shared.shutdown,
            || connect::connect_listening(&cfg),
        )
        .await;
        let (client, mut rings) = match connected {
            Ok(Some(pair)) => pair,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "doorbell unavailable; relying on the poll interval");
                return;
            }
        };
        loop {
            tokio::select! {
                r = idle.wait_for(|n| *n == workers) => if r.is_err() { return },
                () = shared.shutdown.cancelled() => return,
            }
            let armed = client.query_one(&arm, &[&ARM_WAIT]).await;
            let state: String = match armed.and_then(|row| row.try_get(0)) {
                Ok(state) => state,
                Err(e) => {
                    tracing::warn!(error = %e, "arming the doorbell failed; reconnecting");
                    break;
                }
            };
            // Re-check: anything committed before arming is claimable now.
            shared.wake_workers();
            if state != "armed" {
                continue; // busy: a producer is slow to commit; go round again
            }
            let rung = tokio::select! {
                ring = rings.recv() => ring.is_some(),
                () = tokio::time::sleep(cfg.poll_interval) => false,
                _ = idle.wait_for(|n| *n < workers) => false,
                () = shared.shutdown.cancelled() => false,
            };
            if rung {
                shared.counters.rung();
            }
            // Disarm before working: while armed, every producer commit rings.
            let disarmed = client.query_one(&disarm, &[]).await;
            while rings.try_recv().is_ok() {}
            shared.wake_workers();
            if disarmed.is_err() || client.is_closed() {
                break;
            }
        }
    }
}
