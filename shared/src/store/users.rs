use crate::domain::user::DirectoryEntry;
use crate::domain::{PointAccount, Role, User, UserId};
use serde::{Deserialize, Serialize};

use super::guards::GuardRecord;
use super::keys::*;
use super::{put_new, to_item, Store, TransactionAttempt};
use crate::domain::user::canonical;
use crate::error::AppError;

#[derive(Serialize, Deserialize)]
pub(super) struct UserRecord {
    pk: String,
    sk: String,
    entity: String,
    /// gsi1: the user directory by canonical username (the operators' search); gsi2: by canonical
    /// email. Absent on users written before the directory existed until `backfill_user_directory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1sk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2sk: Option<String>,
    id: UserId,
    username: String,
    email: String,
    role: Role,
    password_hash: String,
    #[serde(default = "active")]
    is_active: bool,
    #[serde(default)]
    session_epoch: u32,
    created_at: chrono::DateTime<chrono::Utc>,
}

fn active() -> bool {
    true
}

/// A user profile as the directory's index holds it: the profile without `password_hash`, which
/// the indexes do not project (`table::INDEX_PROJECTED_ATTRIBUTES`).
#[derive(Deserialize)]
pub(super) struct DirectoryRecord {
    id: UserId,
    username: String,
    email: String,
    role: Role,
    #[serde(default = "active")]
    is_active: bool,
    created_at: chrono::DateTime<chrono::Utc>,
}

impl From<DirectoryRecord> for DirectoryEntry {
    fn from(r: DirectoryRecord) -> Self {
        DirectoryEntry {
            id: r.id,
            username: r.username,
            email: r.email,
            role: r.role,
            is_active: r.is_active,
            created_at: r.created_at,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct AccountRecord {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub user_id: UserId,
    pub balance: i64,
    /// Absent on accounts from before the two kinds of points: their whole balance was bought
    /// (documented in docs/payments.md), so it reads as purchased until the next change writes both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchased: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotional: Option<i64>,
    /// Every promotional point ever given (absent before expiry existed: nothing was tracked).
    #[serde(default)]
    pub promotional_granted: i64,
    pub total_earned: i64,
    pub total_spent: i64,
    /// Bumped by every balance change; a writer that read version v conditions on it, which makes
    /// the `balance_after` it records exact.
    pub version: i64,
}

impl AccountRecord {
    /// The account's promotional points (none on accounts from before the two kinds).
    fn promotional_points(&self) -> i64 {
        self.promotional.unwrap_or(0)
    }

    /// The account's purchased points (all of a balance from before the two kinds).
    fn purchased_points(&self) -> i64 {
        self.purchased
            .unwrap_or(self.balance - self.promotional_points())
    }

    pub(crate) fn snapshot(&self) -> super::AccountSnapshot {
        super::AccountSnapshot {
            balance: self.balance,
            purchased: self.purchased_points(),
            promotional: self.promotional_points(),
            promotional_granted: self.promotional_granted,
            total_earned: self.total_earned,
            total_spent: self.total_spent,
            version: self.version,
        }
    }
}

/// The account at `key` among what one batch read `found` (taken out of it), as a snapshot.
pub(super) fn take_account(
    found: &mut std::collections::HashMap<(String, String), super::Item>,
    key: &(String, String),
) -> Result<Option<super::AccountSnapshot>, AppError> {
    Ok(found
        .remove(key)
        .map(super::from_item::<AccountRecord>)
        .transpose()?
        .map(|a| a.snapshot()))
}

impl From<UserRecord> for User {
    fn from(r: UserRecord) -> Self {
        User {
            id: r.id,
            username: r.username,
            email: r.email,
            role: r.role,
            password_hash: r.password_hash,
            is_active: r.is_active,
            session_epoch: r.session_epoch,
            created_at: r.created_at,
        }
    }
}

impl From<AccountRecord> for PointAccount {
    fn from(r: AccountRecord) -> Self {
        PointAccount {
            purchased: r.purchased_points(),
            promotional: r.promotional_points(),
            user_id: r.user_id,
            balance: r.balance,
            total_earned: r.total_earned,
            total_spent: r.total_spent,
        }
    }
}

/// What a registration attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    Created,
    /// Another user already holds the username and/or the email (compared case-insensitively).
    Taken {
        username: bool,
        email: bool,
    },
}

/// Positions in the registration transaction: the two guards come first.
mod registration_item {
    pub const USERNAME: usize = 0;
    pub const EMAIL: usize = 1;
}

impl Store {
    /// Writes the user, both uniqueness guards and (for a member) the opening point account in one
    /// transaction: either all exist afterwards or none does.
    pub async fn register_user(
        &self,
        user: &User,
        account: Option<&PointAccount>,
    ) -> Result<super::Attempt<RegisterOutcome>, AppError> {
        self.register_user_with(user, account, None).await
    }

    /// [`Store::register_user`] with one more item in its transaction (an operator's audit entry).
    pub(super) async fn register_user_with(
        &self,
        user: &User,
        account: Option<&PointAccount>,
        extra: Option<aws_sdk_dynamodb::types::TransactWriteItem>,
    ) -> Result<super::Attempt<RegisterOutcome>, AppError> {
        let username_guard = GuardRecord {
            pk: username_pk(&canonical(&user.username)),
            sk: USERNAME_SK.into(),
            entity: "UsernameGuard".into(),
            user_id: Some(user.id.clone()),
            order_id: None,
        };
        let email_guard = GuardRecord {
            pk: email_pk(&canonical(&user.email)),
            sk: EMAIL_SK.into(),
            entity: "EmailGuard".into(),
            user_id: Some(user.id.clone()),
            order_id: None,
        };
        let profile = UserRecord {
            pk: user_pk(&user.id),
            sk: USER_PROFILE_SK.into(),
            entity: "User".into(),
            gsi1pk: Some(USERS_BY_NAME_GSI.into()),
            gsi1sk: Some(canonical(&user.username)),
            gsi2pk: Some(USERS_BY_EMAIL_GSI.into()),
            gsi2sk: Some(canonical(&user.email)),
            id: user.id.clone(),
            username: user.username.clone(),
            email: user.email.clone(),
            role: user.role,
            password_hash: user.password_hash.clone(),
            is_active: user.is_active,
            session_epoch: user.session_epoch,
            created_at: user.created_at,
        };
        // Positions are named in `registration_item`: cancellation reasons are read by them.
        let mut items = vec![
            put_new(&self.table, to_item(&username_guard)?)?,
            put_new(&self.table, to_item(&email_guard)?)?,
            put_new(&self.table, to_item(&profile)?)?,
        ];
        if let Some(account) = account {
            items.push(put_new(
                &self.table,
                to_item(&AccountRecord {
                    pk: user_pk(&account.user_id),
                    sk: ACCOUNT_SK.into(),
                    entity: "PointAccount".into(),
                    user_id: account.user_id.clone(),
                    balance: account.balance,
                    purchased: Some(account.purchased),
                    promotional: Some(account.promotional),
                    promotional_granted: 0,
                    total_earned: account.total_earned,
                    total_spent: account.total_spent,
                    version: 0,
                })?,
            )?);
        }
        items.extend(extra);
        match self.transact_once(items).await? {
            TransactionAttempt::Committed => Ok(super::Attempt::Done(RegisterOutcome::Created)),
            TransactionAttempt::Contended(_) => Ok(super::Attempt::Contended),
            TransactionAttempt::Refused(cancelled) => {
                let username = cancelled.condition_failed(registration_item::USERNAME);
                let email = cancelled.condition_failed(registration_item::EMAIL);
                if !username && !email {
                    // The user id is a fresh UUID, so only the guards can collide.
                    return Err(AppError::internal(format!(
                        "registration cancelled unexpectedly: {:?}",
                        cancelled.reasons
                    )));
                }
                Ok(super::Attempt::Done(RegisterOutcome::Taken {
                    username,
                    email,
                }))
            }
        }
    }

    pub async fn get_user(&self, user_id: &UserId) -> Result<Option<User>, AppError> {
        Ok(self
            .get_item::<UserRecord>(user_pk(user_id), USER_PROFILE_SK)
            .await?
            .map(User::from))
    }

    /// The usernames of `ids` (those that exist), in one strongly consistent batch read.
    pub async fn usernames(
        &self,
        ids: &[UserId],
    ) -> Result<std::collections::BTreeMap<UserId, String>, AppError> {
        let keys: Vec<(String, String)> = ids
            .iter()
            .map(|id| (user_pk(id), USER_PROFILE_SK.to_string()))
            .collect();
        let found = self.batch_get(&keys).await?;
        found
            .into_values()
            .map(|item| {
                let user = User::from(super::from_item::<UserRecord>(item)?);
                Ok((user.id, user.username))
            })
            .collect()
    }

    /// Finds a user by username, ignoring case, through the username guard.
    pub async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, AppError> {
        let guard = self
            .get_item::<GuardRecord>(username_pk(&canonical(username)), USERNAME_SK)
            .await?;
        match guard.and_then(|guard| guard.user_id) {
            Some(user_id) => self.get_user(&user_id).await,
            None => Ok(None),
        }
    }

    pub async fn get_point_account(
        &self,
        user_id: &UserId,
    ) -> Result<Option<PointAccount>, AppError> {
        Ok(self
            .get_item::<AccountRecord>(user_pk(user_id), ACCOUNT_SK)
            .await?
            .map(PointAccount::from))
    }
}
