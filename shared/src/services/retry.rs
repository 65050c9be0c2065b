//! How a use case keeps trying when another writer won the item it needed: the one retry policy
//! of every money-moving service (redemptions, cancellations, adjustments, recharge credits). The
//! store makes one attempt and says what happened; the service decides to read again and retry.

use rand::Rng;

use crate::error::AppError;
use crate::store::Attempt;

/// How long a use case keeps trying when others keep winning the items it needs: until a
/// deadline, with a jittered pause before every new attempt that grows while the contention lasts,
/// then 503 with `Retry-After` (never an unbounded wait inside a Lambda invocation).
///
/// Pauses matter more than they seem: DynamoDB cancels a conflicting transaction at once, so a
/// buyer retrying without pause spins through every shard while they are all held, and a hundred
/// buyers doing so keep each other out (measured here: most gave up within 3 reads).
pub(crate) struct RetryBudget {
    started: std::time::Instant,
    attempts: u32,
    rebalances: u32,
}

impl RetryBudget {
    /// Well inside API Gateway's 29 s and the function's timeout.
    const DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);
    const MAX_ATTEMPTS: u32 = 400;
    /// Optional moves (spreading stock to dry shards) one redemption may try.
    const MAX_REBALANCES: u32 = 1;
    const PAUSE_CAP_MS: u64 = 40;

    pub(crate) fn new() -> Self {
        RetryBudget {
            started: std::time::Instant::now(),
            attempts: 0,
            rebalances: 0,
        }
    }

    /// Whether an optional stock move (spreading stock to dry shards) may still be tried.
    pub(crate) fn can_rebalance(&self) -> bool {
        self.rebalances < Self::MAX_REBALANCES
    }

    /// Counts an optional stock move tried.
    pub(crate) fn note_rebalance(&mut self) {
        self.rebalances += 1;
    }

    /// Counts a lost attempt and pauses before the next one (full jitter over a ceiling that
    /// doubles with each attempt lost, up to `PAUSE_CAP_MS`).
    pub(crate) async fn lost(&mut self) -> Result<(), AppError> {
        self.attempts += 1;
        if self.attempts >= Self::MAX_ATTEMPTS || self.started.elapsed() >= Self::DEADLINE {
            tracing::warn!(
                attempts = self.attempts,
                "still contended at the retry deadline"
            );
            return Err(unavailable());
        }
        let ceiling = (1u64 << self.attempts.min(6)).min(Self::PAUSE_CAP_MS);
        let pause = rand::thread_rng().gen_range(1..=ceiling);
        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        Ok(())
    }
}

fn unavailable() -> AppError {
    AppError::Unavailable {
        retry_after_secs: 1,
    }
}

/// Runs `attempt` until it is not cancelled by contention, within one [`RetryBudget`] (then 503
/// with `Retry-After`). For writes whose only retryable failure is contention.
pub(crate) async fn until_uncontended<T, F, Fut>(mut attempt: F) -> Result<T, AppError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Attempt<T>, AppError>>,
{
    let mut budget = RetryBudget::new();
    loop {
        match attempt().await? {
            Attempt::Done(value) => return Ok(value),
            Attempt::Contended => {
                crate::observe::count(crate::observe::Metric::TransactionConflictsRetried, 1.0);
                budget.lost().await?;
            }
        }
    }
}
