//! `outbox.*` settings: the defaults that per-call arguments override.
//! Set them like any setting: `SET outbox.retry_jitter = 0`, `ALTER ROLE ...
//! SET`, or in postgresql.conf.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// Attempts before a message is dead-lettered. 20 attempts with the default
/// backoff span about 2.5 hours (9,123 s without jitter): a broker outage of
/// a couple of hours dead-letters nothing.
pub static MAX_ATTEMPTS: GucSetting<i32> = GucSetting::<i32>::new(20);
/// Delay after the first failure (ms); doubles per attempt.
pub static RETRY_BASE_MS: GucSetting<i32> = GucSetting::<i32>::new(1_000);
/// Longest delay between attempts (ms): 15 minutes.
pub static RETRY_CAP_MS: GucSetting<i32> = GucSetting::<i32>::new(900_000);
/// Fraction of each delay randomised away, so messages that failed together
/// do not retry together. 0 makes the schedule exact.
pub static RETRY_JITTER: GucSetting<f64> = GucSetting::<f64>::new(0.2);
/// Lease used by claim() when its `lease` argument is NULL (ms).
pub static DEFAULT_LEASE_MS: GucSetting<i32> = GucSetting::<i32>::new(30_000);
/// Largest payload accepted by enqueue (bytes of the stored jsonb, before
/// compression): 1 MiB. Superuser-only, so producers cannot raise it.
pub static MAX_PAYLOAD_BYTES: GucSetting<i32> = GucSetting::<i32>::new(1024 * 1024);
/// For tests: moves the outbox's notion of now (see `clock.rs`) this far
/// ahead (ms), so leases expire and retries fall due without sleeping.
/// Superuser only; 0 in production. At most about 24.8 days (i32 ms).
pub static TEST_CLOCK_OFFSET_MS: GucSetting<i32> = GucSetting::<i32>::new(0);

/// How long after its delivery time a dedup key stays held even once its
/// message is finished (seconds), when enqueue gets `dedup_window => NULL`.
/// 0: held only while the message is unfinished. Seconds, not ms: windows
/// are hours to days, beyond an i32 of milliseconds (24.8 days).
pub static DEDUP_WINDOW_S: GucSetting<i32> = GucSetting::<i32>::new(0);

/// How long published messages are kept in `outbox.published` (seconds);
/// 0, the default, keeps none and costs nothing. Superuser only, so every
/// session of a database reads the value `ALTER DATABASE ... SET` gave it:
/// a relay recording and a cleaner removing must agree.
pub static RETENTION_S: GucSetting<i32> = GucSetting::<i32>::new(0);

/// How long a log segment takes writes before rotation moves producers to
/// the next one (ms); a segment is truncated once every message in it was
/// handed out (docs/storage.md, "Rotation"). Shorter keeps the log smaller,
/// at one TRUNCATE per interval. Superuser only: it is the cluster's storage.
pub static ROTATION_INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(60_000);

/// Register the settings and reserve the `outbox.` prefix, so a misspelt
/// `SET outbox.retry_bsae` is an error instead of a silent no-op.
pub fn init() {
    GucRegistry::define_int_guc(
        c"outbox.rotation_interval",
        c"How long a log segment takes writes before rotation switches to the next.",
        c"A segment is truncated once every message in it has been handed out; see docs/storage.md.",
        &ROTATION_INTERVAL_MS,
        1_000,
        86_400_000,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"outbox.dedup_window",
        c"How long after its delivery time a dedup key stays held once its message is finished.",
        c"Used when enqueue() gets a dedup_key and dedup_window => NULL; 0 holds a key only while its message is unfinished.",
        &DEDUP_WINDOW_S,
        0,
        366 * 86_400,
        GucContext::Userset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"outbox.retention",
        c"How long published messages are kept in outbox.published; 0 keeps none.",
        c"Read by complete() (which records) and cleanup() (which removes older rows); set it per database with ALTER DATABASE ... SET.",
        &RETENTION_S,
        0,
        366 * 86_400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"outbox.max_attempts",
        c"Attempts before a message becomes a dead letter.",
        c"Used when enqueue() gets max_attempts => NULL.",
        &MAX_ATTEMPTS,
        1,
        crate::validate::MAX_ATTEMPTS_LIMIT,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"outbox.retry_base",
        c"Delay after the first failed attempt; doubles with each attempt.",
        c"fail() schedules attempt n+1 after retry_base * 2^(n-1), capped at retry_cap, minus jitter.",
        &RETRY_BASE_MS,
        1,
        86_400_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"outbox.retry_cap",
        c"Longest delay between attempts.",
        c"",
        &RETRY_CAP_MS,
        1,
        7 * 86_400_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_float_guc(
        c"outbox.retry_jitter",
        c"Fraction of each retry delay that is randomised away (0 to 1).",
        c"0 makes the backoff schedule exact.",
        &RETRY_JITTER,
        0.0,
        1.0,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"outbox.default_lease",
        c"Lease used by claim() when lease => NULL.",
        c"",
        &DEFAULT_LEASE_MS,
        1,
        86_400_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"outbox.max_payload_bytes",
        c"Largest payload enqueue() accepts, in bytes of stored jsonb.",
        c"",
        &MAX_PAYLOAD_BYTES,
        1,
        1024 * 1024 * 1024 - 1,
        GucContext::Suset,
        GucFlags::UNIT_BYTE,
    );
    GucRegistry::define_int_guc(
        c"outbox.test_clock_offset",
        c"For tests only: how far ahead of the real time the outbox's clock runs.",
        c"Leases, retries, deliver_at, stats and purge all read this clock; 0 in production.",
        &TEST_CLOCK_OFFSET_MS,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    // SAFETY: called once from _PG_init with a valid NUL-terminated prefix.
    unsafe { pgrx::pg_sys::MarkGUCPrefixReserved(c"outbox".as_ptr()) };
}

/// The retry schedule from the current settings.
pub fn backoff() -> crate::retry::Backoff {
    crate::retry::Backoff {
        base_ms: i64::from(RETRY_BASE_MS.get()),
        cap_ms: i64::from(RETRY_CAP_MS.get()),
        jitter: RETRY_JITTER.get(),
    }
}
