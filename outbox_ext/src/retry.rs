//! Retry timing: exponential backoff from a base delay, capped, with jitter.
//! Pure Rust, no pgrx.

/// How far apart attempts are spread. Built from the `outbox.retry_*` GUCs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay after the first failed attempt, in milliseconds.
    pub base_ms: i64,
    /// Largest delay, in milliseconds.
    pub cap_ms: i64,
    /// Fraction (0 to 1) of the delay that is randomised away. 0 makes the
    /// schedule exact, which tests rely on.
    pub jitter: f64,
}

impl Backoff {
    /// The delay before the attempt after `attempt` (1-based, as counted by
    /// claim) failed: `base × 2^(attempt−1)`, capped at `cap`, then shortened
    /// by up to `jitter × delay` using `unit_random` in `[0, 1)`.
    ///
    /// Jitter only shortens, so the cap is a true upper bound and retries of
    /// messages that failed together spread out instead of stampeding.
    ///
    /// ```
    /// use outbox::retry::Backoff;
    /// let b = Backoff { base_ms: 1_000, cap_ms: 60_000, jitter: 0.0 };
    /// assert_eq!(b.delay_ms(1, 0.5), 1_000);
    /// assert_eq!(b.delay_ms(3, 0.5), 4_000);
    /// assert_eq!(b.delay_ms(30, 0.5), 60_000);
    /// ```
    pub fn delay_ms(&self, attempt: i32, unit_random: f64) -> i64 {
        let exponent = attempt.saturating_sub(1).clamp(0, 62) as u32;
        let raw = self.base_ms.max(0).saturating_mul(1_i64 << exponent);
        let capped = raw.min(self.cap_ms.max(0));
        let jitter = self.jitter.clamp(0.0, 1.0) * unit_random.clamp(0.0, 1.0);
        let shortened = (capped as f64 * (1.0 - jitter)).round() as i64;
        shortened.clamp(0, capped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXACT: Backoff = Backoff {
        base_ms: 1_000,
        cap_ms: 900_000,
        jitter: 0.0,
    };

    #[test]
    fn doubles_from_the_base() {
        let schedule: Vec<i64> = (1..=6).map(|a| EXACT.delay_ms(a, 0.9)).collect();
        assert_eq!(schedule, vec![1_000, 2_000, 4_000, 8_000, 16_000, 32_000]);
    }

    #[test]
    fn stops_at_the_cap() {
        assert_eq!(EXACT.delay_ms(10, 0.0), 512_000);
        assert_eq!(EXACT.delay_ms(11, 0.0), 900_000);
        assert_eq!(EXACT.delay_ms(1_000, 0.0), 900_000);
        assert_eq!(EXACT.delay_ms(i32::MAX, 0.0), 900_000);
    }

    #[test]
    fn attempt_zero_or_negative_uses_the_base() {
        assert_eq!(EXACT.delay_ms(0, 0.0), 1_000);
        assert_eq!(EXACT.delay_ms(-5, 0.0), 1_000);
    }

    #[test]
    fn jitter_only_shortens_within_its_fraction() {
        let b = Backoff {
            jitter: 0.25,
            ..EXACT
        };
        assert_eq!(b.delay_ms(3, 0.0), 4_000);
        assert_eq!(b.delay_ms(3, 1.0), 3_000);
        for i in 0..100 {
            let d = b.delay_ms(3, f64::from(i) / 100.0);
            assert!((3_000..=4_000).contains(&d), "{d}");
        }
    }

    #[test]
    fn nonsense_settings_stay_in_range() {
        let b = Backoff {
            base_ms: -1,
            cap_ms: -1,
            jitter: 7.0,
        };
        assert_eq!(b.delay_ms(3, 0.5), 0);
        let huge = Backoff {
            base_ms: i64::MAX,
            cap_ms: i64::MAX,
            jitter: 0.0,
        };
        assert_eq!(huge.delay_ms(60, 0.0), i64::MAX);
    }
}
