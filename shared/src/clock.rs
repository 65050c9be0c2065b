//! The time every rule that expires something reads: token lifetimes and the refresh grace window,
//! login-failure windows and back-offs.
//!
//! In production it is the system clock. Tests use [`Clock::adjustable`] — the system clock plus an
//! offset they move forward with [`Clock::advance`] — so "the window passes" is a jump, not a
//! sleep. Time still runs underneath (records written a moment apart keep their order), and it
//! never runs backwards.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Milliseconds added to the system clock; `None` for the system clock itself.
    ahead_ms: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Self {
        Clock { ahead_ms: None }
    }

    /// The system clock, movable forward by [`Clock::advance`] (tests). Clones share the offset.
    #[cfg(any(test, feature = "test-support"))]
    pub fn adjustable() -> Self {
        Clock {
            ahead_ms: Some(Arc::new(AtomicI64::new(0))),
        }
    }

    /// Moves an adjustable clock forward by `by`. The system clock cannot be moved: there it is
    /// refused with an error, so a test that forgot [`Clock::adjustable`] fails loudly.
    #[cfg(any(test, feature = "test-support"))]
    pub fn advance(&self, by: std::time::Duration) -> Result<(), ClockIsSystem> {
        let ahead = self.ahead_ms.as_ref().ok_or(ClockIsSystem)?;
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        ahead.fetch_add(by, Ordering::SeqCst);
        Ok(())
    }

    pub fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        match &self.ahead_ms {
            None => now,
            Some(ahead) => now + chrono::Duration::milliseconds(ahead.load(Ordering::SeqCst)),
        }
    }

    /// Seconds since the Unix epoch (what JWT `iat`/`exp` and the stored windows are written in).
    pub fn unix_now(&self) -> i64 {
        self.now().timestamp()
    }
}

#[cfg(any(test, feature = "test-support"))]
#[derive(Debug, thiserror::Error)]
#[error("the system clock cannot be moved; build the context with Clock::adjustable()")]
pub struct ClockIsSystem;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_adjustable_clock_jumps_forward_for_every_clone_and_the_system_clock_refuses() {
        let clock = Clock::adjustable();
        let shared = clock.clone();
        let before = clock.unix_now();
        clock.advance(Duration::from_secs(3600)).unwrap();
        assert!(shared.unix_now() >= before + 3600);
        assert!(Clock::system().advance(Duration::from_secs(1)).is_err());
        let system_now = Clock::system().unix_now();
        assert!((system_now - Utc::now().timestamp()).abs() <= 1);
    }
}
