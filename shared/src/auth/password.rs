//! Password hashing with argon2id (the crate's defaults: 19 MiB, 2 passes, 1 lane, per OWASP), on
//! a fixed budget.
//!
//! Every sign-up, login and unknown-user login costs one argon2 computation: tens of milliseconds
//! of CPU and 19 MiB of memory. Run freely on the blocking pool (hundreds of threads), a burst of
//! logins for made-up usernames drove the local host past 7.8 GB. So the [`PasswordHasher`] runs at
//! most `concurrency` computations at once, each in a memory block allocated once and reused; up to
//! `queue` more wait their turn; beyond that a request is refused at once with 503 `overloaded` and
//! `Retry-After`, before any memory is touched.
//!
//! The computations run on the hasher's own threads, at the lowest CPU priority (nice 19): a login
//! flood may take every idle cycle, but a redemption's thread preempts it. Measured by the
//! `login_flood` bench: with hashing on ordinary threads, redemptions during a flood had a p99 of
//! 79 ms against 3.4 ms on a quiet host (see docs/overload.md).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::{rand_core::OsRng, Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::error::AppError;

/// How long a refused client should wait before trying again.
const OVERLOADED_RETRY_AFTER_SECS: u64 = 1;

/// How much work one argon2id hash costs: memory in KiB and passes over it (one lane).
///
/// Production always uses [`PasswordCost::PRODUCTION`] (`Config::from_env` offers no variable to
/// lower it). Tests choose [`PasswordCost::CHEAPEST`] so a race of 300 sign-ups does not spend its
/// time hashing; one test keeps the production cost end to end. A stored hash names its own cost,
/// so verification always follows the hash, whatever cost this process hashes new passwords at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCost {
    pub memory_kib: u32,
    pub passes: u32,
}

impl PasswordCost {
    /// argon2id at 19 MiB, 2 passes, 1 lane: OWASP's password storage cheat sheet's first
    /// recommended configuration, and the argon2 crate's defaults.
    pub const PRODUCTION: PasswordCost = PasswordCost {
        memory_kib: Params::DEFAULT_M_COST,
        passes: Params::DEFAULT_T_COST,
    };
    /// The smallest parameters argon2 accepts (8 KiB per lane, one pass): for tests only.
    #[cfg(any(test, feature = "test-support"))]
    pub const CHEAPEST: PasswordCost = PasswordCost {
        memory_kib: Params::MIN_M_COST,
        passes: Params::MIN_T_COST,
    };

    fn params(self) -> Result<Params, AppError> {
        Params::new(self.memory_kib, self.passes, 1, None).map_err(AppError::internal)
    }
}

impl Default for PasswordCost {
    fn default() -> Self {
        PasswordCost::PRODUCTION
    }
}

/// The argon2 budget of one process.
#[derive(Debug)]
pub struct PasswordHasher {
    params: Params,
    /// A hash at this hasher's cost that no password is expected to match (see
    /// [`PasswordHasher::burn_equivalent_time`]); per hasher, so its cost is always this one's.
    dummy: OnceLock<String>,
    permits: tokio::sync::Semaphore,
    /// Requests holding or awaiting a permit.
    admitted: AtomicUsize,
    max_admitted: usize,
    /// Memory blocks not in use, each `params.block_count()` long.
    idle_memory: Mutex<Vec<Vec<Block>>>,
    running: AtomicUsize,
    peak_running: AtomicUsize,
    refused: AtomicUsize,
    workers: Workers,
}

type Job = Box<dyn FnOnce() + Send>;

/// `concurrency` threads, started on first use, each lowered to nice 19, taking jobs from one
/// queue. They end when the hasher is dropped (the queue's sender goes with it).
#[derive(Debug)]
struct Workers {
    count: usize,
    jobs: OnceLock<Mutex<std::sync::mpsc::Sender<Job>>>,
}

impl Workers {
    fn submit(&self, job: Job) -> Result<(), AppError> {
        let sender = self.jobs.get_or_init(|| {
            let (sender, receiver) = std::sync::mpsc::channel::<Job>();
            let receiver = Arc::new(Mutex::new(receiver));
            for index in 0..self.count {
                let receiver = Arc::clone(&receiver);
                let started = std::thread::Builder::new()
                    .name(format!("argon2-{index}"))
                    .spawn(move || {
                        lower_this_threads_priority();
                        loop {
                            let next = match receiver.lock() {
                                Ok(queue) => queue.recv(),
                                Err(_) => return,
                            };
                            match next {
                                // A panicking job drops its answer channel (the caller gets an
                                // internal error); the thread stays for the next one.
                                Ok(job) => {
                                    let _ =
                                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                                }
                                Err(_) => return,
                            }
                        }
                    });
                if let Err(err) = started {
                    tracing::error!(error = %err, "could not start a password hashing thread");
                }
            }
            Mutex::new(sender)
        });
        sender
            .lock()
            .map_err(|_| AppError::internal("password hashing queue poisoned"))?
            .send(job)
            .map_err(|_| AppError::internal("password hashing threads are gone"))
    }
}

/// Nice 19 for the calling thread (Linux applies `setpriority(PRIO_PROCESS, 0, …)` to the calling
/// thread only). Best effort: where it fails the thread keeps the ordinary priority.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority takes plain integers and touches no memory of ours.
        #[allow(unsafe_code)]
        let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
        if result != 0 {
            tracing::warn!("could not lower the password hashing thread's priority");
        }
    }
}

/// Gives the admission back however the request ends (even if the client goes away).
struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PasswordHasher {
    /// At most `concurrency` computations at once (at least one), `queue` more waiting, at the
    /// production cost.
    pub fn new(concurrency: usize, queue: usize) -> Arc<Self> {
        Self::with_cost(concurrency, queue, PasswordCost::PRODUCTION)
    }

    /// Like [`PasswordHasher::new`], hashing new passwords at `cost` (an invalid cost falls back
    /// to the production one, never to something cheaper).
    pub fn with_cost(concurrency: usize, queue: usize, cost: PasswordCost) -> Arc<Self> {
        let concurrency = concurrency.max(1);
        let params = cost.params().unwrap_or_else(|err| {
            tracing::error!(error = %err, "invalid password cost; using the production cost");
            Params::DEFAULT
        });
        Arc::new(PasswordHasher {
            params,
            dummy: OnceLock::new(),
            permits: tokio::sync::Semaphore::new(concurrency),
            admitted: AtomicUsize::new(0),
            max_admitted: concurrency + queue,
            idle_memory: Mutex::new(Vec::new()),
            running: AtomicUsize::new(0),
            peak_running: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            workers: Workers {
                count: concurrency,
                jobs: OnceLock::new(),
            },
        })
    }

    /// The most computations that ever ran at once (for tests and benchmarks).
    pub fn peak_concurrency(&self) -> usize {
        self.peak_running.load(Ordering::SeqCst)
    }

    /// Refuses at once when every computation slot and queue place is taken: for a caller with
    /// work to do before hashing (a login's limit counters), so a flood it would refuse anyway costs
    /// none of that work. The later admission still holds the bound; this only moves the refusal
    /// earlier for the common case.
    pub fn check_room(&self) -> Result<(), AppError> {
        if self.admitted.load(Ordering::SeqCst) >= self.max_admitted {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(AppError::Overloaded {
                retry_after_secs: OVERLOADED_RETRY_AFTER_SECS,
            });
        }
        Ok(())
    }

    /// Requests refused with `overloaded` so far.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) for `password`.
    pub async fn hash(&self, password: String) -> Result<String, AppError> {
        let params = self.params.clone();
        self.run(move |memory| hash_with(&params, &password, memory))
            .await?
    }

    /// Whether `password` matches `stored` (a PHC string; anything else matches nothing).
    pub async fn verify(&self, password: String, stored: String) -> Result<bool, AppError> {
        self.run(move |memory| verify_with(&password, &stored, memory))
            .await
    }

    /// Verifying against this when the username does not exist keeps the unknown-user path as slow
    /// as the wrong-password path, so response time does not reveal which usernames exist.
    pub async fn burn_equivalent_time(&self, password: String) -> Result<(), AppError> {
        let dummy = match self.dummy.get() {
            Some(dummy) => dummy.clone(),
            None => {
                let made = self.hash("not-a-real-password".into()).await?;
                self.dummy.get_or_init(|| made).clone()
            }
        };
        self.verify(password, dummy).await.map(|_| ())
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, AppError> {
        if self.admitted.fetch_add(1, Ordering::SeqCst) >= self.max_admitted {
            self.admitted.fetch_sub(1, Ordering::SeqCst);
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(AppError::Overloaded {
                retry_after_secs: OVERLOADED_RETRY_AFTER_SECS,
            });
        }
        let _admission = Admission(&self.admitted);
        let _permit = self.permits.acquire().await.map_err(AppError::internal)?;
        let mut memory = self
            .idle_memory
            .lock()
            .ok()
            .and_then(|mut idle| idle.pop())
            .unwrap_or_else(|| vec![Block::default(); self.params.block_count()]);
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_running.fetch_max(running, Ordering::SeqCst);
        let (done, outcome) = tokio::sync::oneshot::channel();
        let submitted = self.workers.submit(Box::new(move || {
            let result = job(&mut memory);
            let _ = done.send((memory, result));
        }));
        let outcome = match submitted {
            Ok(()) => outcome.await.map_err(AppError::internal),
            Err(err) => Err(err),
        };
        self.running.fetch_sub(1, Ordering::SeqCst);
        let (memory, result) = outcome?;
        if let Ok(mut idle) = self.idle_memory.lock() {
            idle.push(memory);
        }
        Ok(result)
    }
}

/// Hashes in `memory` (grown if the parameters need more than it holds).
fn hash_with(params: &Params, password: &str, memory: &mut Vec<Block>) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut salt_bytes)
        .map_err(AppError::internal)?;
    let mut out = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    fit(memory, params);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, &mut memory[..])
        .map_err(AppError::internal)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(AppError::internal)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(AppError::internal)?),
    };
    Ok(phc.to_string())
}

/// Verifies in `memory`, with the parameters the stored hash names. The comparison of outputs is
/// constant-time (`Output`'s equality).
fn verify_with(password: &str, stored: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.salt,
        parsed.hash,
    ) else {
        return false;
    };
    let version = parsed
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or_default();
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    fit(memory, &params);
    let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.as_bytes(),
        salt_bytes,
        &mut out,
        &mut memory[..],
    );
    computed.is_ok() && Output::new(&out).is_ok_and(|out| out == expected)
}

/// Grows `memory` to what `params` need (a stored hash with a larger cost than ours); never shrinks.
fn fit(memory: &mut Vec<Block>, params: &Params) {
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cheap_hasher_names_its_cost_and_still_verifies_production_hashes() {
        let cheap = PasswordHasher::with_cost(1, 4, PasswordCost::CHEAPEST);
        let production = PasswordHasher::new(1, 4);
        let cheap_hash = cheap.hash("correct horse".into()).await.unwrap();
        assert!(cheap_hash.starts_with("$argon2id$v=19$m=8,t=1,p=1$"));
        let production_hash = production.hash("correct horse".into()).await.unwrap();
        // Each hash carries its cost: either process verifies either hash.
        assert!(cheap
            .verify("correct horse".into(), production_hash.clone())
            .await
            .unwrap());
        assert!(production
            .verify("correct horse".into(), cheap_hash)
            .await
            .unwrap());
        assert!(!cheap
            .verify("wrong horse".into(), production_hash)
            .await
            .unwrap());
    }

    #[test]
    fn a_cost_argon2_refuses_falls_back_to_production_not_to_cheaper() {
        let hasher = PasswordHasher::with_cost(
            1,
            1,
            PasswordCost {
                memory_kib: 1,
                passes: 0,
            },
        );
        assert_eq!(hasher.params, Params::DEFAULT);
    }

    #[tokio::test]
    async fn a_hash_verifies_only_its_own_password() {
        let hasher = PasswordHasher::new(1, 4);
        let hash = hasher.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hasher
            .verify("correct horse".into(), hash.clone())
            .await
            .unwrap());
        assert!(!hasher.verify("correct horsE".into(), hash).await.unwrap());
        assert!(!hasher
            .verify("correct horse".into(), "not a hash".into())
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn hashes_from_the_crates_own_hasher_still_verify_and_vice_versa() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = PasswordHasher::new(1, 4);
        let theirs = Argon2::default()
            .hash_password(b"same", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(hasher.verify("same".into(), theirs).await.unwrap());
        let ours = hasher.hash("same".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"same", &parsed).is_ok());
    }

    #[tokio::test]
    async fn the_same_password_hashes_differently_each_time() {
        let hasher = PasswordHasher::new(2, 4);
        assert_ne!(
            hasher.hash("same password".into()).await.unwrap(),
            hasher.hash("same password".into()).await.unwrap()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_than_the_budget_runs_at_once_and_past_the_queue_requests_are_refused() {
        let hasher = PasswordHasher::new(2, 3);
        let stored = hasher.hash("pw".into()).await.unwrap();
        let attempts = (0..20).map(|_| {
            let (hasher, stored) = (Arc::clone(&hasher), stored.clone());
            tokio::spawn(async move { hasher.verify("pw".into(), stored).await })
        });
        let attempts: Vec<_> = attempts.collect();
        let mut results = Vec::new();
        for attempt in attempts {
            results.push(attempt.await);
        }
        let served = results.iter().filter(|r| matches!(r, Ok(Ok(true)))).count();
        let refused = results
            .iter()
            .filter(|r| matches!(r, Ok(Err(AppError::Overloaded { .. }))))
            .count();
        assert_eq!(
            served + refused,
            20,
            "every request answered one way or the other"
        );
        assert!(
            served >= 5,
            "the two running and three queued are served: {served}"
        );
        assert!(refused > 0, "past the queue, refused at once");
        assert_eq!(hasher.refused(), refused);
        assert!(
            hasher.peak_concurrency() <= 2,
            "{}",
            hasher.peak_concurrency()
        );
        // Memory blocks are kept for reuse: one per computation slot, not one per request.
        assert!(hasher.idle_memory.lock().unwrap().len() <= 2);
    }
}
