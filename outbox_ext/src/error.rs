//! The extension's one error type. Every variant carries its SQLSTATE and a
//! hint; `From<OutboxError> for ErrorReport` keeps the code (a plain
//! `Result<T, OutboxError>` would surface as 22000 in pgrx 0.18.1).
//! A stale lease is not an error: it is a result value.

use crate::validate::Invalid;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::spi::SpiError;
use pgrx::PgSqlErrorCode;

/// Everything an outbox function can refuse.
#[derive(Debug)]
pub enum OutboxError {
    /// A required argument was NULL (SQLSTATE 22004).
    Null { param: &'static str },
    /// An argument broke a rule (SQLSTATE 22023).
    Invalid(Invalid),
    /// The payload is larger than `outbox.max_payload_bytes` (SQLSTATE 54000).
    PayloadTooLarge {
        index: Option<usize>,
        bytes: usize,
        limit: usize,
    },
    /// Too many messages in one enqueue_batch call (SQLSTATE 54000).
    BatchTooLarge { count: usize, limit: usize },
    /// Parallel arrays of different lengths (SQLSTATE 2202E).
    LengthMismatch {
        param: &'static str,
        len: usize,
        expected: usize,
    },
    /// An id that was never a message (SQLSTATE P0002).
    UnknownMessage { id: i64 },
    /// claim() in a REPEATABLE READ or SERIALIZABLE transaction (SQLSTATE
    /// 25001): a window's snapshot and the read after it must be fresh.
    NotReadCommitted,
    /// SPI failed where it should not (SQLSTATE XX000).
    Internal(String),
}

impl From<Invalid> for OutboxError {
    fn from(e: Invalid) -> Self {
        Self::Invalid(e)
    }
}

impl From<SpiError> for OutboxError {
    fn from(e: SpiError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<OutboxError> for ErrorReport {
    #[track_caller]
    fn from(e: OutboxError) -> Self {
        use PgSqlErrorCode::*;
        let (code, message, hint): (PgSqlErrorCode, String, String) = match e {
            OutboxError::Null { param } => (
                ERRCODE_NULL_VALUE_NOT_ALLOWED,
                format!("{param} must not be NULL"),
                format!("Pass a value for {param}."),
            ),
            OutboxError::Invalid(i) => (ERRCODE_INVALID_PARAMETER_VALUE, i.reason, i.hint.to_owned()),
            OutboxError::PayloadTooLarge { index, bytes, limit } => (
                ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                match index {
                    Some(i) => format!("payload {i} is {bytes} bytes, the limit is {limit} (outbox.max_payload_bytes)"),
                    None => format!("payload is {bytes} bytes, the limit is {limit} (outbox.max_payload_bytes)"),
                },
                "Store large data elsewhere and enqueue a reference to it, or raise outbox.max_payload_bytes.".to_owned(),
            ),
            OutboxError::BatchTooLarge { count, limit } => (
                ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!("enqueue_batch got {count} messages, the limit is {limit}"),
                "Split the batch into several calls in the same transaction.".to_owned(),
            ),
            OutboxError::LengthMismatch { param, len, expected } => (
                ERRCODE_ARRAY_ELEMENT_ERROR,
                format!("{param} has {len} elements but payloads has {expected}"),
                format!("Pass NULL for {param}, or one element per payload (NULL elements are allowed)."),
            ),
            OutboxError::UnknownMessage { id } => (
                ERRCODE_NO_DATA_FOUND,
                format!("message {id} does not exist"),
                "Pass an id returned by outbox.enqueue() or outbox.claim().".to_owned(),
            ),
            OutboxError::NotReadCommitted => (
                ERRCODE_ACTIVE_SQL_TRANSACTION,
                "outbox.claim() must run in a READ COMMITTED transaction".to_owned(),
                "Call claim() outside REPEATABLE READ and SERIALIZABLE transactions: it takes its own snapshots of what has committed.".to_owned(),
            ),
            OutboxError::Internal(msg) => (
                ERRCODE_INTERNAL_ERROR,
                format!("outbox internal error: {msg}"),
                "This is a bug in the outbox extension; please report it.".to_owned(),
            ),
        };
        ErrorReport::new(code, message, "outbox").set_hint(hint)
    }
}

/// What every `#[pg_extern]` returns.
pub type OutboxResult<T> = Result<T, ErrorReport>;

/// `Some(v)` or the NULL-argument error for `param`.
pub fn required<T>(value: Option<T>, param: &'static str) -> Result<T, OutboxError> {
    value.ok_or(OutboxError::Null { param })
}
