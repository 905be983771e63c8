//! The rules for numbers and times: attempts, batch sizes, leases, delays.

use crate::{
    Invalid, MAX_ATTEMPTS_LIMIT, MAX_CLAIM_BATCH, MAX_DEDUP_WINDOW_MICROS, MAX_LEASE_MICROS,
    MAX_RETRY_MICROS,
};

/// `max_attempts` per message: NULL means the `outbox.max_attempts` GUC.
pub fn max_attempts(n: i32) -> Result<(), Invalid> {
    if !(1..=MAX_ATTEMPTS_LIMIT).contains(&n) {
        return Err(Invalid::new(
            "max_attempts",
            format!("max_attempts is {n}, it must be between 1 and {MAX_ATTEMPTS_LIMIT}"),
            "Pass NULL to use outbox.max_attempts, or a count from 1 up.",
        ));
    }
    Ok(())
}

/// `batch_size` for claim.
pub fn batch_size(n: i32) -> Result<(), Invalid> {
    if !(1..=MAX_CLAIM_BATCH).contains(&n) {
        return Err(Invalid::new(
            "batch_size",
            format!("batch_size is {n}, it must be between 1 and {MAX_CLAIM_BATCH}"),
            "Claim at most a few hundred messages at a time; call claim again for more.",
        ));
    }
    Ok(())
}

/// A lease as it really reaches from now, in microseconds (see `clock.rs`:
/// the difference between the timestamp PostgreSQL computes and now, so
/// calendar months and mixed signs count as they will be stored); `None`
/// when `now + lease` leaves timestamptz's range.
pub fn lease(micros: Option<i128>) -> Result<(), Invalid> {
    const HINT: &str =
        "Use a lease of seconds to minutes and outbox.extend() it while a slow publish runs.";
    match micros {
        Some(m) if m <= 0 => Err(Invalid::new(
            "lease",
            "lease must be a positive interval",
            "Pass how long the relay may hold the messages, e.g. '30 seconds'.",
        )),
        Some(m) if m <= MAX_LEASE_MICROS => Ok(()),
        _ => Err(Invalid::new("lease", "lease is longer than 24 hours", HINT)),
    }
}

/// An explicit retry delay for fail(), as it really reaches from now (see
/// [`lease`]).
pub fn retry_in(micros: Option<i128>) -> Result<(), Invalid> {
    match micros {
        Some(m) if m < 0 => Err(Invalid::new(
            "retry_in",
            "retry_in is negative",
            "Pass NULL for the computed backoff, or a delay of zero or more.",
        )),
        Some(m) if m <= MAX_RETRY_MICROS => Ok(()),
        _ => Err(Invalid::new(
            "retry_in",
            "retry_in is longer than a year",
            "Pass a shorter delay, or fail(..., permanent => true) to dead-letter the message.",
        )),
    }
}

/// `deliver_at` for enqueue: how far it is from now, `None` for
/// `'infinity'` / `'-infinity'`. Any finite past time means "now"; the
/// future is capped at the retry horizon (a year), because a message that
/// is not due holds back every younger message of its key.
pub fn deliver_at(micros_from_now: Option<i128>) -> Result<(), Invalid> {
    const HINT: &str = "Pass NULL to deliver now, or a time at most a year ahead; schedule anything later in your application.";
    match micros_from_now {
        None => Err(Invalid::new(
            "deliver_at",
            "deliver_at is not a finite time",
            HINT,
        )),
        Some(m) if m > MAX_RETRY_MICROS => Err(Invalid::new(
            "deliver_at",
            "deliver_at is more than a year ahead",
            HINT,
        )),
        Some(_) => Ok(()),
    }
}

/// A dedup window, as it really reaches from now (see [`lease`]): how long
/// after enqueue a dedup key stays taken even once its message is finished.
/// Zero holds the key only while the message is unfinished.
pub fn dedup_window(micros: Option<i128>) -> Result<(), Invalid> {
    const HINT: &str = "Pass NULL for outbox.dedup_window, '0' to hold the key only while the message is unfinished, or a window of at most a year, e.g. '24 hours'.";
    match micros {
        Some(m) if m < 0 => Err(Invalid::new(
            "dedup_window",
            "dedup_window is negative",
            HINT,
        )),
        Some(m) if m <= MAX_DEDUP_WINDOW_MICROS => Ok(()),
        _ => Err(Invalid::new(
            "dedup_window",
            "dedup_window is longer than a year",
            HINT,
        )),
    }
}

/// How long doorbell_arm() may wait for committing producers, in
/// microseconds (months as 30 days: this is a sleep, not a stored time).
pub fn doorbell_wait(micros: i128) -> Result<(), Invalid> {
    const HINT: &str = "Pass how long to wait for producers that are committing, e.g. '5 seconds'.";
    if micros < 0 {
        return Err(Invalid::new(
            "wait",
            "wait must be a non-negative interval",
            HINT,
        ));
    }
    if micros > MAX_LEASE_MICROS {
        return Err(Invalid::new("wait", "wait is longer than 24 hours", HINT));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn numeric_limits() {
        assert!(max_attempts(1).is_ok());
        assert!(max_attempts(0).is_err());
        assert!(dedup_window(Some(0)).is_ok());
        assert!(dedup_window(Some(MAX_DEDUP_WINDOW_MICROS)).is_ok());
        assert!(dedup_window(Some(-1)).is_err());
        assert!(dedup_window(Some(MAX_DEDUP_WINDOW_MICROS + 1)).is_err());
        assert!(dedup_window(None).is_err());
        assert!(max_attempts(-3).is_err());
        assert!(max_attempts(MAX_ATTEMPTS_LIMIT + 1).is_err());
        assert!(batch_size(1).is_ok());
        assert!(batch_size(MAX_CLAIM_BATCH).is_ok());
        assert!(batch_size(0).is_err());
        assert!(batch_size(MAX_CLAIM_BATCH + 1).is_err());
        assert!(lease(Some(1)).is_ok());
        assert!(lease(Some(MAX_LEASE_MICROS)).is_ok());
        assert!(lease(Some(0)).is_err());
        assert!(lease(Some(-1)).is_err());
        assert!(lease(Some(MAX_LEASE_MICROS + 1)).is_err());
        assert!(lease(None).is_err());
        assert!(retry_in(Some(0)).is_ok());
        assert!(retry_in(Some(-1)).is_err());
        assert!(retry_in(Some(MAX_RETRY_MICROS + 1)).is_err());
        assert!(retry_in(None).is_err());
        assert!(deliver_at(Some(i128::from(i64::MIN))).is_ok());
        assert!(deliver_at(Some(MAX_RETRY_MICROS)).is_ok());
        assert!(deliver_at(Some(MAX_RETRY_MICROS + 1)).is_err());
        assert!(deliver_at(None).is_err());
        assert!(doorbell_wait(0).is_ok());
        assert!(doorbell_wait(-1).is_err());
        assert!(doorbell_wait(MAX_LEASE_MICROS + 1).is_err());
    }
}
