//! Input rules for everything a caller passes in, and their limits: one
//! home for the extension (which maps an [`Invalid`] to SQLSTATE 22023 with
//! its hint), the client (`Error::InvalidInput`, same wording) and the
//! relay's configuration. Pure Rust: no pgrx, no tokio.

mod limits;
mod names;
mod outbox_name;
mod trace;

pub use limits::{
    batch_size, dedup_window, deliver_at, doorbell_wait, lease, max_attempts, retry_in,
};
pub use names::{dedup_key, headers, headers_unreadable, key, owner, topic, topics};
pub use outbox_name::{outbox_name, MAX_OUTBOX_NAME_BYTES};
pub use trace::{
    traceparent, tracestate, TraceParent, MAX_TRACESTATE_MEMBERS, TRACEPARENT, TRACESTATE,
};

/// Longest topic accepted: Kafka's own topic-name limit.
pub const MAX_TOPIC_BYTES: usize = 249;
/// Longest key accepted. Keys order messages; they are not payloads.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest dedup key accepted: an index key (btree entries top out near
/// 2.7 kB), naming an event, not carrying it.
pub const MAX_DEDUP_KEY_BYTES: usize = 1024;
/// Longest dedup window (per call or `outbox.dedup_window`): a year, the
/// horizon of every other "not before" time.
pub const MAX_DEDUP_WINDOW_MICROS: i128 = MAX_RETRY_MICROS;
/// Longest owner accepted (a relay's name, e.g. `host:pid:uuid`).
pub const MAX_OWNER_BYTES: usize = 200;
/// Most headers a message may carry, and their largest total size.
pub const MAX_HEADERS: usize = 64;
/// Largest stored size of the headers object.
pub const MAX_HEADERS_BYTES: usize = 8 * 1024;
/// Longest header name.
pub const MAX_HEADER_NAME_BYTES: usize = 256;
/// Largest `batch_size` for one claim: bigger batches only lengthen leases.
pub const MAX_CLAIM_BATCH: i32 = 10_000;
/// Most messages in one `enqueue_batch` call.
pub const MAX_ENQUEUE_BATCH: usize = 10_000;
/// Largest `max_attempts` for one message.
pub const MAX_ATTEMPTS_LIMIT: i32 = 1_000;
/// Longest lease (claim, extend): a day. Longer leases hide dead relays.
pub const MAX_LEASE_MICROS: i128 = 24 * 3_600 * 1_000_000;
/// Longest explicit `retry_in`, and how far ahead `deliver_at` may be: a
/// year (366 days). One horizon for every "not before" time.
pub const MAX_RETRY_MICROS: i128 = 366 * 24 * 3_600 * 1_000_000;

/// A rejected input: which parameter, what was wrong, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The SQL parameter name.
    pub param: &'static str,
    /// What was wrong, lowercase, no trailing period.
    pub reason: String,
    /// What the caller should do instead.
    pub hint: &'static str,
}

impl Invalid {
    pub(crate) fn new(param: &'static str, reason: impl Into<String>, hint: &'static str) -> Self {
        Self {
            param,
            reason: reason.into(),
            hint,
        }
    }
}
