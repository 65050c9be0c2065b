//! Refresh-token families. A family is one login's chain of refresh tokens; only its newest token
//! (`current_jti`) may be exchanged. Presenting an older one means a token was stolen or replayed,
//! so the whole family is revoked.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use serde::{Deserialize, Serialize};

use super::keys::{token_family_pk, TOKEN_FAMILY_SK};
use super::table::{PK, SK, TTL_ATTRIBUTE};
use super::{from_item, n, s, to_item, Store};
use crate::domain::UserId;
use crate::error::AppError;

#[derive(Serialize, Deserialize)]
struct FamilyRecord {
    pk: String,
    sk: String,
    entity: String,
    user_id: String,
    current_jti: String,
    revoked: bool,
    expires_at: i64,
    /// The token exchanged last, and until when presenting it again yields the same successor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    grace_until: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    successor_access_jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    successor_issued_at: Option<i64>,
}

/// What an exchange issued, kept for the grace window so a racing duplicate gets the same pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Successor {
    pub access_jti: String,
    pub refresh_jti: String,
    pub issued_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    Rotated,
    /// The presented token was exchanged moments ago (within the grace window): here is what that
    /// exchange issued.
    Grace(Successor),
    /// The presented token had already been rotated away (outside the grace window): someone holds
    /// a copy. Nothing was changed; what reuse means (the service revokes the family) is not the
    /// store's to decide.
    ReuseDetected,
    /// The family was revoked (logout or earlier reuse), expired, or never existed.
    Revoked,
}

impl Store {
    pub async fn start_token_family(
        &self,
        family: &str,
        user_id: &UserId,
        jti: &str,
        expires_at: i64,
    ) -> Result<(), AppError> {
        let record = FamilyRecord {
            pk: token_family_pk(family),
            sk: TOKEN_FAMILY_SK.into(),
            entity: "RefreshTokenFamily".into(),
            user_id: user_id.into(),
            current_jti: jti.into(),
            revoked: false,
            expires_at,
            previous_jti: None,
            grace_until: None,
            successor_access_jti: None,
            successor_issued_at: None,
        };
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&record)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await
            .map_err(|err| super::dynamo_failure("put token family", err.into_service_error()))?;
        Ok(())
    }

    /// Swaps the family's current token from `presented_jti` to `next_jti`, atomically: of two
    /// concurrent exchanges of the same token exactly one succeeds, and the other is reuse.
    pub async fn rotate_refresh_token(
        &self,
        family: &str,
        presented_jti: &str,
        successor: &Successor,
        next_expires_at: i64,
        now: i64,
        grace_secs: i64,
    ) -> Result<RotateOutcome, AppError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(token_family_pk(family)))
            .key(SK, s(TOKEN_FAMILY_SK))
            .update_expression(
                "SET current_jti = :next, #ttl = :next_exp, previous_jti = :presented, \
                 grace_until = :grace, successor_access_jti = :access, successor_issued_at = :iat",
            )
            .condition_expression(
                "attribute_exists(#pk) AND current_jti = :presented AND revoked = :false AND #ttl > :now",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":next", s(&successor.refresh_jti))
            // No grace window (0) is a window already closed: every presentation after the
            // exchange is reuse, even within the same second.
            .expression_attribute_values(
                ":grace",
                n(if grace_secs > 0 { now + grace_secs } else { now - 1 }),
            )
            .expression_attribute_values(":access", s(&successor.access_jti))
            .expression_attribute_values(":iat", n(successor.issued_at))
            .expression_attribute_values(":next_exp", n(next_expires_at))
            .expression_attribute_values(":presented", s(presented_jti))
            .expression_attribute_values(":false", aws_sdk_dynamodb::types::AttributeValue::Bool(false))
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(RotateOutcome::Rotated),
            Err(err) => err.into_service_error(),
        };
        let UpdateItemError::ConditionalCheckFailedException(failed) = err else {
            return Err(super::dynamo_failure("rotate refresh token", err));
        };
        let current: Option<FamilyRecord> = failed.item.map(from_item).transpose()?;
        match current {
            Some(family_row)
                if !family_row.revoked
                    && family_row.expires_at > now
                    && family_row.previous_jti.as_deref() == Some(presented_jti)
                    && family_row.grace_until.is_some_and(|until| until >= now) =>
            {
                match (
                    family_row.successor_access_jti,
                    family_row.successor_issued_at,
                ) {
                    (Some(access_jti), Some(issued_at)) => Ok(RotateOutcome::Grace(Successor {
                        access_jti,
                        refresh_jti: family_row.current_jti,
                        issued_at,
                    })),
                    _ => Ok(RotateOutcome::ReuseDetected),
                }
            }
            Some(family_row) if !family_row.revoked && family_row.expires_at > now => {
                // A live family whose current token is not the presented one: reuse.
                Ok(RotateOutcome::ReuseDetected)
            }
            _ => Ok(RotateOutcome::Revoked),
        }
    }

    /// Marks the family revoked; later exchanges of any of its tokens fail. Idempotent.
    pub async fn revoke_token_family(&self, family: &str) -> Result<(), AppError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(token_family_pk(family)))
            .key(SK, s(TOKEN_FAMILY_SK))
            .update_expression("SET revoked = :true")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(
                ":true",
                aws_sdk_dynamodb::types::AttributeValue::Bool(true),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match err.into_service_error() {
                // Already gone (expired and swept): nothing left to revoke.
                UpdateItemError::ConditionalCheckFailedException(_) => Ok(()),
                other => Err(super::dynamo_failure("revoke token family", other)),
            },
        }
    }
}
