//! What operators read and change: the user directory, enabling and disabling users, and the
//! append-only audit log (points adjustments are in `adjustments.rs`). Each change is one `TransactWriteItems` that also
//! puts its audit entry, so an action is never without its record and a record never without its
//! action. One attempt per call: the admin service owns the retries.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::keys::*;
use super::table::{GSI1, GSI1_PK, GSI1_SK, GSI2, GSI2_PK, GSI2_SK, PK, SK};
use super::users::{DirectoryRecord, UserRecord};
use super::{
    from_item, n, page_of, put_new, s, to_item, Filter, ListQuery, Store, TransactionAttempt,
};
use crate::domain::user::{canonical, DirectoryEntry};
use crate::domain::{AuditAction, AuditEntry, Role, Timestamp, User};
use crate::error::AppError;
use crate::pagination::{Page, PageRequest};

#[derive(Serialize, Deserialize)]
struct AuditRecord {
    pk: String,
    sk: String,
    entity: String,
    id: String,
    admin_id: String,
    action: AuditAction,
    target: String,
    /// JSON text: DynamoDB maps cannot hold every JSON value (empty strings in sets, nulls in
    /// lists) as faithfully as the text does.
    before: String,
    after: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    at: Timestamp,
}

impl TryFrom<AuditRecord> for AuditEntry {
    type Error = AppError;
    fn try_from(r: AuditRecord) -> Result<Self, AppError> {
        Ok(AuditEntry {
            id: r.id,
            admin_id: r.admin_id,
            action: r.action,
            target: r.target,
            before: serde_json::from_str(&r.before).map_err(AppError::internal)?,
            after: serde_json::from_str(&r.after).map_err(AppError::internal)?,
            reason: r.reason,
            at: r.at,
        })
    }
}

/// How operators search the directory.
#[derive(Debug, Clone, Default)]
pub struct UserSearch {
    /// A prefix of the username, or of the email when it contains `@` (compared in canonical form).
    pub prefix: Option<String>,
    pub role: Option<Role>,
    pub is_active: Option<bool>,
}

/// One attempt at an operator's change of a user or product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminWrite {
    Changed,
    /// The user changed since it was read (or is gone): read again.
    Stale,
    Contended,
    /// The operator acting was disabled meanwhile (by another operator).
    ActorDisabled,
}
/// Transaction item positions of an activation change.
mod activation_item {
    pub const USER: usize = 0;
    /// After the audit entry (1): the acting operator, when an operator is disabled.
    pub const ACTOR: usize = 2;
}

impl Store {
    /// The audit entry's `Put`, for the transaction of the action it records.
    pub(super) fn audit_put(&self, entry: &AuditEntry) -> Result<TransactWriteItem, AppError> {
        let record = AuditRecord {
            pk: AUDIT_PK.into(),
            sk: audit_sk(&entry.id),
            entity: "AuditEntry".into(),
            id: entry.id.clone(),
            admin_id: entry.admin_id.clone(),
            action: entry.action,
            target: entry.target.clone(),
            before: entry.before.to_string(),
            after: entry.after.to_string(),
            reason: entry.reason.clone(),
            at: entry.at,
        };
        put_new(&self.table, to_item(&record)?)
    }

    /// An audit entry on its own, for an action whose writes are not the operator's to bundle (a
    /// reconcile-now settles through the scheduled job's own transaction).
    pub async fn append_audit(&self, entry: &AuditEntry) -> Result<super::Attempt<()>, AppError> {
        match self.transact_once(vec![self.audit_put(entry)?]).await? {
            TransactionAttempt::Committed => Ok(super::Attempt::Done(())),
            TransactionAttempt::Contended(_) => Ok(super::Attempt::Contended),
            TransactionAttempt::Refused(cancelled) => Err(AppError::internal(format!(
                "audit entry refused: {:?}",
                cancelled.reasons
            ))),
        }
    }

    /// The audit log, newest first.
    pub async fn list_audit(&self, page: &PageRequest) -> Result<Page<AuditEntry>, AppError> {
        let query = ListQuery {
            index: None,
            partition_attribute: PK,
            partition_value: AUDIT_PK.into(),
            ascending: false,
            sort_prefix: Some((SK, AUDIT_SK_PREFIX.to_string())),
            filter: None,
            scope: "audit".into(),
        };
        let raw = self.query_page(query, page).await?;
        let items = raw
            .items
            .into_iter()
            .map(|item| from_item::<AuditRecord>(item).and_then(AuditEntry::try_from))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items,
            next_cursor: raw.next_cursor,
        })
    }

    /// The user directory, alphabetical by canonical username (or email, for an email prefix),
    /// filtered by role and state; bounded like every list.
    pub async fn search_users(
        &self,
        search: &UserSearch,
        page: &PageRequest,
    ) -> Result<Page<DirectoryEntry>, AppError> {
        let by_email = search.prefix.as_deref().is_some_and(|p| p.contains('@'));
        let (index, partition_attribute, sort_attribute, partition_value) = if by_email {
            (GSI2, GSI2_PK, GSI2_SK, USERS_BY_EMAIL_GSI)
        } else {
            (GSI1, GSI1_PK, GSI1_SK, USERS_BY_NAME_GSI)
        };
        let prefix = search.prefix.as_deref().map(canonical);
        let filter = match (search.role, search.is_active) {
            (None, None) => None,
            (Some(role), None) => Some(Filter {
                expression: "#role = :role",
                names: vec![("#role", "role")],
                values: vec![(":role", s(role.as_str()))],
            }),
            (None, Some(active)) => Some(Filter {
                expression: "#active = :active",
                names: vec![("#active", "is_active")],
                values: vec![(":active", AttributeValue::Bool(active))],
            }),
            (Some(role), Some(active)) => Some(Filter {
                expression: "#role = :role AND #active = :active",
                names: vec![("#role", "role"), ("#active", "is_active")],
                values: vec![
                    (":role", s(role.as_str())),
                    (":active", AttributeValue::Bool(active)),
                ],
            }),
        };
        let query = ListQuery {
            index: Some(index),
            partition_attribute,
            partition_value: partition_value.into(),
            ascending: true,
            sort_prefix: prefix.clone().map(|p| (sort_attribute, p)),
            filter,
            scope: format!(
                "users:{}:{}:{}",
                prefix.unwrap_or_default(),
                search.role.map_or("any", Role::as_str),
                search
                    .is_active
                    .map_or("any", |a| if a { "on" } else { "off" })
            ),
        };
        page_of::<DirectoryRecord, DirectoryEntry>(self.query_page(query, page).await?)
    }

    /// Writes `user` enabled or disabled, as read: conditioned on the state and session epoch the
    /// operator's decision was made on. Disabling starts a new session epoch, which ends every
    /// token issued before (access and refresh alike). The audit entry is in the same transaction.
    pub async fn set_user_active(
        &self,
        user: &User,
        active: bool,
        audit: &AuditEntry,
    ) -> Result<AdminWrite, AppError> {
        let next_epoch = if active {
            user.session_epoch
        } else {
            user.session_epoch + 1
        };
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(user_pk(&user.id)))
            .key(SK, s(USER_PROFILE_SK))
            .update_expression("SET is_active = :active, session_epoch = :next")
            .condition_expression(
                "attribute_exists(#pk) AND is_active = :was AND (session_epoch = :epoch OR (attribute_not_exists(session_epoch) AND :epoch = :zero))",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":active", AttributeValue::Bool(active))
            .expression_attribute_values(":was", AttributeValue::Bool(user.is_active))
            .expression_attribute_values(":next", n(i64::from(next_epoch)))
            .expression_attribute_values(":epoch", n(i64::from(user.session_epoch)))
            .expression_attribute_values(":zero", n(0))
            .build()
            .map_err(AppError::internal)?;
        let mut items = vec![
            TransactWriteItem::builder().update(update).build(),
            self.audit_put(audit)?,
        ];
        // An operator disabling another one stays active themselves, so at least one operator is
        // always left: two operators disabling each other at once cannot both succeed.
        if !active && user.role == crate::domain::Role::Admin {
            let actor = aws_sdk_dynamodb::types::ConditionCheck::builder()
                .table_name(&self.table)
                .key(PK, s(user_pk(&audit.admin_id)))
                .key(SK, s(USER_PROFILE_SK))
                .condition_expression("is_active = :true")
                .expression_attribute_values(":true", AttributeValue::Bool(true))
                .build()
                .map_err(AppError::internal)?;
            items.push(TransactWriteItem::builder().condition_check(actor).build());
        }
        match self.transact_once(items).await? {
            TransactionAttempt::Committed => Ok(AdminWrite::Changed),
            TransactionAttempt::Contended(_) => Ok(AdminWrite::Contended),
            TransactionAttempt::Refused(c) if c.condition_failed(activation_item::USER) => {
                Ok(AdminWrite::Stale)
            }
            TransactionAttempt::Refused(c) if c.condition_failed(activation_item::ACTOR) => {
                Ok(AdminWrite::ActorDisabled)
            }
            TransactionAttempt::Refused(c) => Err(AppError::internal(format!(
                "activation cancelled unexpectedly: {:?}",
                c.reasons
            ))),
        }
    }
    /// Registers an operator: the user with its guards, plus the audit entry of its creation, in
    /// one transaction (see `register_user`).
    pub async fn register_admin(
        &self,
        user: &User,
        audit: &AuditEntry,
    ) -> Result<super::Attempt<super::RegisterOutcome>, AppError> {
        self.register_user_with(user, None, Some(self.audit_put(audit)?))
            .await
    }

    /// Writes the directory keys onto users registered before the directory existed (a scan; run
    /// by the local host at start and by `local-api create-admin`). Returns how many it wrote.
    pub async fn backfill_user_directory(&self) -> Result<usize, AppError> {
        let filter = Filter {
            expression: "#entity = :user AND attribute_not_exists(#gsi1pk)",
            names: vec![("#entity", "entity"), ("#gsi1pk", GSI1_PK)],
            values: vec![(":user", s("User"))],
        };
        let mut written = 0;
        for item in self.scan_every(Some(&filter)).await? {
            let user = User::from(from_item::<UserRecord>(item)?);
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(PK, s(user_pk(&user.id)))
                .key(SK, s(USER_PROFILE_SK))
                .update_expression("SET #g1pk = :g1pk, #g1sk = :g1sk, #g2pk = :g2pk, #g2sk = :g2sk")
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#g1pk", GSI1_PK)
                .expression_attribute_names("#g1sk", GSI1_SK)
                .expression_attribute_names("#g2pk", GSI2_PK)
                .expression_attribute_names("#g2sk", GSI2_SK)
                .expression_attribute_values(":g1pk", s(USERS_BY_NAME_GSI))
                .expression_attribute_values(":g1sk", s(canonical(&user.username)))
                .expression_attribute_values(":g2pk", s(USERS_BY_EMAIL_GSI))
                .expression_attribute_values(":g2sk", s(canonical(&user.email)))
                .send()
                .await;
            match result.map_err(|e| e.into_service_error()) {
                Ok(_) => written += 1,
                Err(err) if err.is_conditional_check_failed_exception() => {}
                Err(err) => return Err(super::dynamo_failure("directory backfill", err)),
            }
        }
        Ok(written)
    }
}
