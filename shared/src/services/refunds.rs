//! A member asks for unused purchased points back as money: the points leave the balance at once (a
//! REFUND ledger row, in the same transaction as the refund), and the scheduled job returns the NT$
//! to the cards they were paid with (`refund_job`). Operators list refunds, ask for another try, or
//! close one by recording a bank transfer made by hand.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::idempotency::{check_idempotency_key, claim, request_hash, same_request};
use super::recharge::RechargeService;
use super::retry::RetryBudget;
use crate::domain::refund::{self, Refund, RefundDraw, RefundState};
use crate::domain::{AuditAction, AuditEntry, Movement, Points, RefundId, Refusal, UserId};
use crate::error::{AppError, FieldCheck, FieldErrors};
use crate::pagination::{Page, PageRequest};
use crate::store::{RefundAlso, RefundRequestOutcome, RefundStep, Store};

/// The most points one refund may ask for (as an adjustment's bound).
const REFUND_POINTS_MAX: i64 = 10_000_000;
/// A manual refund's bank transfer reference: 1–100 characters.
const REFERENCE_MAX: usize = 100;

/// Purchased points to refund.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct RefundRequest {
    /// Purchased points to hand back: a whole number from 1, worth at least NT$1 after the fee.
    #[schema(value_type = i64, required = true, minimum = 1, maximum = 10000000, example = 500)]
    pub points: Option<i64>,
}

/// One part of a refund returned to one card payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RefundDrawView {
    /// The payment (MerchantTradeNo) the money went back to.
    pub merchant_trade_no: String,
    pub twd: i64,
    /// ECPay DoAction actions used (`N`, `C`, `R`, `E`), or `found` when ECPay's state showed the
    /// money back after a run stopped before recording it.
    pub actions: Vec<String>,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// A refund of purchased points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RefundView {
    pub id: String,
    pub member_id: String,
    /// `requested` → `processing` → `refunded` | `failed`.
    pub state: RefundState,
    pub points: i64,
    /// The points' value, whole NT$ rounded down.
    pub gross_twd: i64,
    /// Kept (`REFUND_FEE_PERCENT` of the value).
    pub fee_twd: i64,
    /// Owed back: the value less the fee, whole NT$ rounded down.
    pub twd: i64,
    /// Returned so far.
    pub refunded_twd: i64,
    /// Points given back to the balance when it failed.
    pub returned_points: i64,
    /// ECPay's refusal, or why it waits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The bank transfer reference of a refund an operator closed by hand.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manual_reference: Option<String>,
    pub draws: Vec<RefundDrawView>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<Refund> for RefundView {
    fn from(r: Refund) -> Self {
        RefundView {
            id: r.id.to_string(),
            member_id: r.member_id.to_string(),
            state: r.state,
            points: r.points,
            gross_twd: r.quote.gross_twd,
            fee_twd: r.quote.fee_twd,
            twd: r.quote.twd,
            refunded_twd: r.refunded_twd,
            returned_points: r.returned_points,
            message: r.message,
            manual_reference: r.manual_reference,
            draws: r.draws.into_iter().map(RefundDrawView::from).collect(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl From<RefundDraw> for RefundDrawView {
    fn from(d: RefundDraw) -> Self {
        RefundDrawView {
            merchant_trade_no: d.merchant_trade_no.to_string(),
            twd: d.twd,
            actions: d.actions,
            at: d.at,
        }
    }
}

/// A refund requested, or the replay of the first answer to the same Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundRequested {
    Made(RefundView),
    Replayed(String),
}

/// An operator's manual close of a refund.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ManualRefundRequest {
    /// The bank transfer's reference, 1–100 characters.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 100, example = "TRF-20261206-0042")]
    pub reference: Option<String>,
}

pub struct RefundService<'a> {
    pub store: &'a Store,
    pub recharge: RechargeService<'a>,
    pub clock: &'a crate::clock::Clock,
}

impl RefundService<'_> {
    /// Takes `points` purchased points off the member's balance and records a refund of their NT$
    /// value (less the fee), due to the scheduled job: one transaction, retried on a concurrent
    /// balance change. More than the purchased points: 409 `insufficient_refundable_points`.
    pub async fn request(
        &self,
        member_id: &UserId,
        request: RefundRequest,
        idempotency_key: Option<&str>,
    ) -> Result<RefundRequested, AppError> {
        let payments = self.recharge.payments;
        let mut check = FieldCheck::new();
        let points = check
            .required("points", request.points)
            .parse(&mut check, |points| {
                if !(1..=REFUND_POINTS_MAX).contains(&points) {
                    return Err(format!(
                        "must be a whole number from 1 to {REFUND_POINTS_MAX}"
                    ));
                }
                if refund::quote(points, payments.points_per_twd, payments.refund_fee_percent).twd
                    < 1
                {
                    return Err("is worth less than NT$1 after the refund fee".to_string());
                }
                Points::new(points).ok_or_else(|| "must be positive".to_string())
            });
        let points = check.finish_with(points)?;
        if let Some(key) = idempotency_key {
            check_idempotency_key(key)?;
        }
        let body_hash = request_hash(&format!("refund\n{member_id}\n{}", points.get()));
        let quote = refund::quote(
            points.get(),
            payments.points_per_twd,
            payments.refund_fee_percent,
        );
        let mut budget = RetryBudget::new();
        loop {
            let now = self.clock.now();
            let reads = self
                .store
                .refund_request_reads(member_id, idempotency_key, now.timestamp())
                .await?;
            if let Some((stored_hash, response)) = reads.replay {
                same_request(&stored_hash, &body_hash)?;
                return Ok(RefundRequested::Replayed(response));
            }
            let account = reads
                .account
                .ok_or_else(|| AppError::internal("member without a point account"))?;
            let id = RefundId::generate();
            let change = account
                .apply(
                    member_id,
                    Movement::CashRefund {
                        points,
                        refund: &id,
                    },
                    uuid::Uuid::now_v7().to_string(),
                    now,
                )
                .map_err(|refusal| match refusal {
                    Refusal::NotRefundable { purchased, needed } => {
                        let mut fields = FieldErrors::new();
                        fields.insert("purchased".into(), purchased.to_string());
                        AppError::Conflict {
                            code: "insufficient_refundable_points",
                            message: format!(
                                "{purchased} purchased points can be refunded; {needed} were asked for (promotional points are not refundable)"
                            ),
                            fields,
                        }
                    }
                    other => AppError::internal(other.to_string()),
                })?;
            let refund = Refund {
                id,
                member_id: member_id.clone(),
                points: points.get(),
                quote,
                state: RefundState::Requested,
                refunded_twd: 0,
                draws: Vec::new(),
                pending: None,
                message: None,
                manual_reference: None,
                returned_points: 0,
                attempts: 0,
                created_at: now,
                updated_at: now,
                version: 1,
            };
            let view = RefundView::from(refund.clone());
            let claim = idempotency_key
                .map(|key| claim(key, &body_hash, &view, now))
                .transpose()?;
            match self
                .store
                .request_refund(&change, &refund, claim.as_ref())
                .await?
            {
                RefundRequestOutcome::Requested => return Ok(RefundRequested::Made(view)),
                RefundRequestOutcome::IdempotencyKeyUsed
                | RefundRequestOutcome::AccountChanged
                | RefundRequestOutcome::Contended => budget.lost().await?,
            }
        }
    }

    /// The member's refunds, newest first.
    pub async fn refunds(
        &self,
        member_id: &UserId,
        page: &PageRequest,
    ) -> Result<Page<RefundView>, AppError> {
        Ok(self
            .store
            .member_refunds(member_id, page)
            .await?
            .map(RefundView::from))
    }

    /// Every refund, newest first (operators).
    pub async fn all_refunds(&self, page: &PageRequest) -> Result<Page<RefundView>, AppError> {
        Ok(self.store.all_refunds(page).await?.map(RefundView::from))
    }

    /// An open refund due again now (the next run of the job takes it). 404 unknown; 409
    /// `refund_not_open` once refunded or failed.
    pub async fn retry(&self, admin_id: &UserId, id: &RefundId) -> Result<RefundView, AppError> {
        self.operator_change(
            admin_id,
            id,
            AuditAction::RefundRetried,
            None,
            |refund, now| {
                if !refund.state.is_open() {
                    return Err(not_open(refund));
                }
                let mut next = refund.clone();
                next.message = Some("an operator asked for another try".into());
                Ok((next, Some(now)))
            },
        )
        .await
    }

    /// Closes an open refund as paid by a bank transfer made by hand (`reference`). 409
    /// `refund_not_open` once refunded or failed; 409 `refund_in_flight` while a call to ECPay for
    /// it may have been made and not yet recorded (the job settles that first).
    pub async fn close_manually(
        &self,
        admin_id: &UserId,
        id: &RefundId,
        request: ManualRefundRequest,
    ) -> Result<RefundView, AppError> {
        let mut check = FieldCheck::new();
        let reference = check
            .required("reference", request.reference)
            .parse(&mut check, |raw| {
                let reference = raw.trim().to_string();
                if reference.is_empty() || reference.chars().count() > REFERENCE_MAX {
                    Err(format!("must be 1 to {REFERENCE_MAX} characters"))
                } else if let Some(c) = crate::domain::text::forbidden_char(&reference, false) {
                    Err(crate::domain::text::forbidden_problem(c))
                } else {
                    Ok(reference)
                }
            });
        let reference = check.finish_with(reference)?;
        self.operator_change(
            admin_id,
            id,
            AuditAction::RefundClosedManually,
            Some(reference.clone()),
            |refund, _| {
                if !refund.state.is_open() {
                    return Err(not_open(refund));
                }
                if refund.pending.is_some() {
                    return Err(AppError::conflict(
                        "refund_in_flight",
                        "a call to ECPay for this refund is not yet settled; retry it first",
                    ));
                }
                let mut next = refund.clone();
                next.state = RefundState::Refunded;
                next.refunded_twd = refund.quote.twd;
                next.manual_reference = Some(reference.clone());
                next.message = Some(format!(
                    "NT${} paid by bank transfer",
                    refund.outstanding_twd()
                ));
                Ok((next, None))
            },
        )
        .await
    }

    /// One operator's change of a refund, audited, retried when the refund moved meanwhile.
    async fn operator_change(
        &self,
        admin_id: &UserId,
        id: &RefundId,
        action: AuditAction,
        reason: Option<String>,
        change: impl Fn(
            &Refund,
            crate::domain::Timestamp,
        ) -> Result<(Refund, Option<crate::domain::Timestamp>), AppError>,
    ) -> Result<RefundView, AppError> {
        let mut budget = RetryBudget::new();
        loop {
            let now = self.clock.now();
            let refund = self
                .store
                .refund_by_id(id)
                .await?
                .ok_or_else(|| AppError::not_found("refund_not_found", "no such refund"))?;
            let (mut next, due_at) = change(&refund, now)?;
            next.version = refund.version + 1;
            next.updated_at = now;
            let audit = AuditEntry::new(
                admin_id,
                action,
                format!("refund:{id}"),
                serde_json::json!({"state": refund.state, "refunded_twd": refund.refunded_twd}),
                serde_json::json!({"state": next.state, "refunded_twd": next.refunded_twd}),
                reason.clone(),
                now,
            );
            match self
                .store
                .refund_step(refund.version, &next, due_at, &[RefundAlso::Audit(&audit)])
                .await?
            {
                RefundStep::Done => return Ok(RefundView::from(next)),
                RefundStep::Changed | RefundStep::Contended => budget.lost().await?,
            }
        }
    }
}

fn not_open(refund: &Refund) -> AppError {
    AppError::conflict(
        "refund_not_open",
        format!("the refund is {} already", refund.state.as_str()),
    )
}
