//! Accounts and sessions: registration, token pairs, refresh-token rotation with its grace window,
//! logout, and the session check every authenticated request passes (`session_user`). Signing in
//! is in [`super::login`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use super::login::{LoginLimits, LoginRequest};
use super::retry::until_uncontended;
use crate::auth::{Claims, JwtKeys, TokenKind};
use crate::domain::user::{check_email, check_password, check_username};
use crate::domain::{PointAccount, Role, User, UserId};
use crate::error::{AppError, FieldCheck};
use crate::store::{RegisterOutcome, RotateOutcome, Store, Successor};

// Fields are `Option` so that every missing one is reported together, instead of serde stopping
// at the first; the schema still documents them as required.
/// A new account.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 3–150 letters, digits and `@ . + - _`; unique regardless of case.
    #[schema(value_type = String, required = true, min_length = 3, max_length = 150, pattern = r"^[\w.@+-]+$", example = "amy")]
    pub username: Option<String>,
    /// Unique regardless of case.
    #[schema(value_type = String, required = true, format = Email, max_length = 254, pattern = r"^[^@\s]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$", example = "amy@example.com")]
    pub email: Option<String>,
    /// At least 8 characters (at most 128), not all digits.
    #[schema(value_type = String, required = true, min_length = 8, max_length = 128, pattern = r"\D", format = Password, example = "correct horse")]
    pub password: Option<String>,
    #[schema(value_type = Role, required = true)]
    pub role: Option<String>,
}
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct RefreshRequest {
    /// A refresh token from login or a previous refresh.
    #[schema(value_type = String, required = true)]
    pub refresh: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserProfile {
    pub id: String,
    pub username: String,
    pub email: String,
    pub role: Role,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<&User> for UserProfile {
    fn from(user: &User) -> Self {
        UserProfile {
            id: user.id.to_string(),
            username: user.username.clone(),
            email: user.email.clone(),
            role: user.role,
            created_at: user.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenPair {
    pub access: String,
    pub refresh: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

pub struct AuthService<'a> {
    pub store: &'a Store,
    pub keys: &'a JwtKeys,
    pub passwords: &'a crate::auth::password::PasswordHasher,
    pub limits: LoginLimits,
    /// A refresh token presented again within this long of its exchange (racing tabs, a retried
    /// request) gets the same successor pair instead of revoking the session.
    pub refresh_grace: std::time::Duration,
    /// What "now" is for token lifetimes and login windows.
    pub clock: &'a crate::clock::Clock,
}
fn account_disabled() -> AppError {
    AppError::unauthenticated("account_disabled", "this account is disabled")
}

/// The answer to a token of session `epoch` for `user` (as just read): the user, or why not.
pub fn session_user(user: Option<User>, epoch: u32) -> Result<User, AppError> {
    match user {
        Some(user) if user.accepts_session(epoch) => Ok(user),
        Some(user) if !user.is_active => Err(account_disabled()),
        Some(_) => Err(AppError::unauthenticated(
            "token_revoked",
            "this session was ended by an operator; sign in again",
        )),
        None => Err(AppError::unauthenticated(
            "invalid_token",
            "the token's user no longer exists",
        )),
    }
}
impl AuthService<'_> {
    pub async fn register(&self, request: RegisterRequest) -> Result<UserProfile, AppError> {
        let mut check = FieldCheck::new();
        let username = check.required("username", request.username);
        let email = check.required("email", request.email);
        let password = check.required("password", request.password);
        // ADMIN included: operators are made by `local-api create-admin`, never here.
        let role = check
            .required("role", request.role)
            .parse(&mut check, |raw| {
                Role::parse_registrable(&raw)
                    .ok_or_else(|| "must be MEMBER or MERCHANT".to_string())
            });
        if let Some(username) = username.get() {
            check_username(&mut check, username);
        }
        if let Some(email) = email.get() {
            check_email(&mut check, email);
        }
        if let Some(password) = password.get() {
            check_password(&mut check, password);
        }
        let (username, email, password, role) =
            check.finish_with((username, email, password, role))?;

        let password_hash = self.passwords.hash(password).await?;
        let user = User {
            id: UserId::generate(),
            username,
            email,
            role,
            password_hash,
            is_active: true,
            session_epoch: 0,
            created_at: self.clock.now(),
        };
        let account = (role == Role::Member).then(|| PointAccount::opening(&user.id));
        let registered =
            until_uncontended(|| self.store.register_user(&user, account.as_ref())).await?;
        match registered {
            RegisterOutcome::Created => Ok(UserProfile::from(&user)),
            RegisterOutcome::Taken { username, email } => {
                let mut fields = crate::error::FieldErrors::new();
                if username {
                    fields.insert("username".into(), "is already taken".into());
                }
                if email {
                    fields.insert("email".into(), "is already registered".into());
                }
                Err(AppError::Conflict {
                    code: if username {
                        "username_taken"
                    } else {
                        "email_taken"
                    },
                    message: "an account with this username or email already exists".into(),
                    fields,
                })
            }
        }
    }
    /// Issues an access token and the first refresh token of a new family.
    pub async fn start_session(&self, user: &User) -> Result<TokenPair, AppError> {
        let now = self.clock.unix_now();
        let family = uuid::Uuid::new_v4().to_string();
        let epoch = user.session_epoch;
        let access = self.keys.issue_access(&user.id, user.role, epoch, now)?;
        let refresh = self
            .keys
            .issue_refresh(&user.id, user.role, epoch, &family, now)?;
        self.store
            .start_token_family(&family, &user.id, &refresh.claims.jti, refresh.claims.exp)
            .await?;
        Ok(self.pair(access.token, refresh.token))
    }
    /// Exchanges a refresh token for a new pair. Each refresh token works once; presenting one that
    /// was already exchanged revokes its whole family.
    pub async fn refresh(&self, request: RefreshRequest) -> Result<TokenPair, AppError> {
        let claims = self.verified_refresh(request)?;
        self.require_session(&claims).await?;
        let family = claims.fam.clone().unwrap_or_default();
        let now = self.clock.unix_now();
        let access = self
            .keys
            .issue_access(&claims.sub, claims.role, claims.ep, now)?;
        let refresh = self
            .keys
            .issue_refresh(&claims.sub, claims.role, claims.ep, &family, now)?;
        let successor = Successor {
            access_jti: access.claims.jti.clone(),
            refresh_jti: refresh.claims.jti.clone(),
            issued_at: now,
        };
        match self
            .store
            .rotate_refresh_token(
                &family,
                &claims.jti,
                &successor,
                refresh.claims.exp,
                now,
                self.refresh_grace.as_secs() as i64,
            )
            .await?
        {
            RotateOutcome::Rotated => Ok(self.pair(access.token, refresh.token)),
            RotateOutcome::Grace(successor) => {
                // A racing duplicate of the exchange that just happened (two tabs, a retried
                // request): the same successor pair, signed again from the same claims.
                let access = self.keys.issue_access_as(
                    &claims.sub,
                    claims.role,
                    claims.ep,
                    successor.issued_at,
                    &successor.access_jti,
                )?;
                let refresh = self.keys.issue_refresh_as(
                    &claims.sub,
                    claims.role,
                    claims.ep,
                    &family,
                    successor.issued_at,
                    &successor.refresh_jti,
                )?;
                Ok(self.pair(access.token, refresh.token))
            }
            RotateOutcome::ReuseDetected => {
                // A rotated-away token presented again means a copy exists: end the whole session
                // (RFC 9700 §4.14.2, refresh token rotation), for the thief and the owner alike.
                self.store.revoke_token_family(&family).await?;
                tracing::warn!(user_id = %claims.sub, "refresh token reuse detected; family revoked");
                Err(AppError::unauthenticated(
                    "token_reused",
                    "this refresh token was already used; sign in again",
                ))
            }
            RotateOutcome::Revoked => Err(AppError::unauthenticated(
                "token_revoked",
                "this session has ended; sign in again",
            )),
        }
    }

    pub async fn logout(&self, request: RefreshRequest) -> Result<(), AppError> {
        let claims = self.verified_refresh(request)?;
        self.store
            .revoke_token_family(claims.fam.as_deref().unwrap_or_default())
            .await
    }
    /// The token's user, if it still exists, is enabled and the token is of its current session
    /// epoch: checked on every authenticated request, so disabling a user takes effect at once, not
    /// when their access token expires, and tokens from before stay dead after re-enabling.
    pub async fn require_session(&self, claims: &Claims) -> Result<User, AppError> {
        session_user(self.store.get_user(&claims.sub).await?, claims.ep)
    }

    fn verified_refresh(&self, request: RefreshRequest) -> Result<Claims, AppError> {
        let check = FieldCheck::new();
        let token = check.required("refresh", request.refresh);
        let token = check.finish_with(token)?;
        self.keys.verify(&token, TokenKind::Refresh)
    }

    fn pair(&self, access: String, refresh: String) -> TokenPair {
        TokenPair {
            access,
            refresh,
            token_type: "Bearer".into(),
            expires_in: self.keys.access_ttl().as_secs(),
        }
    }
}
