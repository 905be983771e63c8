//! The relay's housekeeping: every [`RelayConfig::cleanup_interval`] it calls
//! `outbox.cleanup()` (dedup keys no message holds, history past
//! `outbox.retention`), so an outbox with a relay needs no scheduler of its
//! own. Several relays may all do it: cleanup skips what another cleaner
//! holds (`FOR UPDATE SKIP LOCKED`) and finds nothing once it is done.
//! A failing cleanup (a role granted before cleanup existed and never
//! upgraded, a database restarting) is logged and tried again next time:
//! housekeeping never stops relaying.
//!
//! [`RelayConfig::cleanup_interval`]: super::RelayConfig::cleanup_interval

use super::{connect, Shared};
use std::sync::Arc;
use std::time::Duration;

/// Rows per cleanup call: one short transaction each.
const MAX_ROWS: i32 = 1000;
/// Calls per round at most, so a backlog of old rows is worked off over a
/// few rounds instead of in one long burst.
const CALLS_PER_ROUND: usize = 20;

pub(crate) async fn run<P>(shared: Arc<Shared<P>>, every: Duration) {
    let cfg = shared.config.clone();
    // Validated when the relay started (RelayConfig::validate).
    let Ok(store) = cfg.store() else { return };
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shared.shutdown.cancelled() => return,
        }
        let client = match connect::connect_once(&cfg).await {
            Ok(client) => client,
            Err(e) => {
                tracing::warn!(error = %e, "cleanup: cannot connect; trying again next round");
                continue;
            }
        };
        let mut removed = 0;
        for _ in 0..CALLS_PER_ROUND {
            if shared.shutdown.is_cancelled() {
                return;
            }
            match store.cleanup(&client, MAX_ROWS).await {
                Ok(n) => {
                    removed += n;
                    if n < u64::try_from(MAX_ROWS).unwrap_or(0) {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "outbox.cleanup() failed; trying again next round");
                    break;
                }
            }
        }
        if removed > 0 {
            tracing::info!(
                removed,
                "cleanup removed dedup keys and history past retention"
            );
        }
    }
}
