//! Signing in: the password checked against limits reserved before it is checked (per username and
//! address, per address, per username with a back-off), so no burst of parallel guesses checks more
//! passwords than the limits allow, and a disabled account answers as a wrong password does.

use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::{AuthService, TokenPair};
use crate::domain::User;
use crate::error::{AppError, FieldCheck};
use crate::store::{LoginCounter, Reservation};

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(value_type = String, required = true, example = "amy")]
    pub username: Option<String>,
    #[schema(value_type = String, required = true, format = Password, example = "correct horse")]
    pub password: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Password checks per (username, client address) per window: the hard limit.
    pub max_failures: u32,
    /// Password checks per client address per window, across usernames.
    pub max_failures_per_address: u32,
    /// Past `max_failures` for a username (from anywhere), one attempt per this many seconds.
    pub username_backoff: std::time::Duration,
    pub window: std::time::Duration,
}

fn bad_credentials() -> AppError {
    AppError::unauthenticated("invalid_credentials", "username or password is incorrect")
}

impl AuthService<'_> {
    /// Checks the password and returns the user, or the same `invalid_credentials` error whether
    /// the username or the password was wrong or the account is disabled.
    async fn authenticate(&self, username: &str, password: String) -> Result<User, AppError> {
        if password.chars().count() > crate::domain::user::PASSWORD_MAX {
            return Err(bad_credentials());
        }
        match self.store.find_user_by_username(username).await? {
            Some(user) => {
                let ok = self
                    .passwords
                    .verify(password, user.password_hash.clone())
                    .await?;
                // A disabled account answers exactly as a wrong password does: telling them
                // apart would confirm a disabled account's password to whoever guesses it.
                if ok && user.is_active {
                    Ok(user)
                } else {
                    Err(bad_credentials())
                }
            }
            None => {
                self.passwords.burn_equivalent_time(password).await?;
                Err(bad_credentials())
            }
        }
    }

    /// Signs a user in. After `login_max_failures` failed attempts for one username within the
    /// window, every attempt for it (right password or not) gets 429 until the window closes.
    /// Signs in. `address` is the client's address as API Gateway saw it (`sourceIp`; locally the
    /// socket's peer), never a header a client could set. Attempts are reserved before the password
    /// is checked, per (username, address), per address and per username, so no burst of parallel
    /// guesses checks more passwords than the limits allow (see docs/api.md, "Login abuse limits").
    pub async fn login(
        &self,
        request: LoginRequest,
        address: Option<&str>,
    ) -> Result<TokenPair, AppError> {
        let mut check = FieldCheck::new();
        let username = check.required("username", request.username);
        let password = check.required("password", request.password);
        if username.get().is_some_and(|u| {
            u.chars().count() > crate::domain::user::USERNAME_MAX
                || !crate::domain::user::fits_canonical(u)
        }) {
            check.fail("username", "is longer than any username");
        }
        let (username, password) = check.finish_with((username, password))?;

        // A flood the hasher would refuse anyway is refused before the limit counters are written:
        // each refused login would otherwise still cost three DynamoDB writes.
        self.passwords.check_room()?;
        let now = self.clock.unix_now();
        let window = self.limits.window.as_secs() as i64;
        let name = crate::domain::user::canonical(&username);
        let address = address.unwrap_or("unknown").to_string();
        let by_address = LoginCounter::Address(address.clone());
        let by_pair = LoginCounter::Pair {
            username: name.clone(),
            address,
        };
        let by_username = LoginCounter::Username(name);
        let refused = |retry_at: i64, what: &str| AppError::TooManyRequests {
            code: "too_many_failed_logins",
            message: format!("too many failed logins {what}; try again later"),
            retry_after_secs: (retry_at - now).max(1) as u64,
        };

        if let Reservation::Full { ends_at } = self
            .reserve(
                &by_address,
                self.limits.max_failures_per_address,
                now,
                window,
            )
            .await?
        {
            return Err(refused(ends_at, "from this address"));
        }
        let mut held = vec![by_address];
        if let Reservation::Full { ends_at } = self
            .reserve(&by_pair, self.limits.max_failures, now, window)
            .await?
        {
            self.release(&held, now).await;
            return Err(refused(ends_at, "for this username"));
        }
        held.push(by_pair);
        if let Reservation::Full { .. } = self
            .reserve(&by_username, self.limits.max_failures, now, window)
            .await?
        {
            let backoff = self.limits.username_backoff.as_secs().max(1) as i64;
            if let Some(retry_at) = self
                .store
                .pass_login_backoff(&by_username, backoff, now)
                .await?
            {
                self.release(&held, now).await;
                return Err(refused(retry_at, "for this username"));
            }
        }
        match self.authenticate(&username, password).await {
            Ok(user) => {
                // Not a failure: the address and pair reservations go back.
                self.release(&held, now).await;
                self.start_session(&user).await
            }
            // The reservations stand: they are the failures.
            Err(err @ AppError::Unauthenticated { .. }) => Err(err),
            Err(other) => {
                self.release(&held, now).await;
                Err(other)
            }
        }
    }

    /// One attempt reserved in `counter`'s window, or the window's end when it is full. A race to
    /// open the window is asked again (a few times: each race means someone else opened it, so
    /// the next ask finds it open).
    async fn reserve(
        &self,
        counter: &LoginCounter,
        max: u32,
        now: i64,
        window: i64,
    ) -> Result<Reservation, AppError> {
        for _ in 0..4 {
            match self
                .store
                .reserve_login_attempt(counter, max, now, window)
                .await?
            {
                Reservation::Raced => continue,
                decided => return Ok(decided),
            }
        }
        Err(AppError::Unavailable {
            retry_after_secs: 1,
        })
    }

    async fn release(&self, counters: &[LoginCounter], now: i64) {
        for counter in counters {
            if let Err(err) = self.store.release_login_attempt(counter, now).await {
                tracing::warn!(error = %err, "could not release a login reservation");
            }
        }
    }
}
