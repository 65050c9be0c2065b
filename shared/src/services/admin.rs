//! What operators (role ADMIN) do: find users, disable and enable them, correct balances, look at
//! stuck payments and reconcile them now, see every order, take products down, read the audit log.
//! Every change writes its audit entry in the same transaction as the change itself.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use super::adjustments::{Adjustment, AdjustmentRequest};
use super::orders::OrderView;
use super::recharge::{PaymentView, RechargeService, Reconciled};
use super::retry::{until_uncontended, RetryBudget};
use crate::domain::audit::REASON_MAX;
use crate::domain::user::{check_email, check_password, check_username, DirectoryEntry};
use crate::domain::{
    AuditAction, AuditEntry, MerchantTradeNo, OrderStatus, PaymentStatus, Role, User, UserId,
};
use crate::error::{not_found, AppError, FieldCheck, FieldErrors, Required};
use crate::pagination::{Page, PageRequest};
use crate::store::{AdminWrite, OrderSearch, RegisterOutcome, Store, UserSearch};

/// A user as operators see them (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AdminUserView {
    pub id: String,
    pub username: String,
    pub email: String,
    pub role: Role,
    pub is_active: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<User> for AdminUserView {
    fn from(u: User) -> Self {
        DirectoryEntry::from(u).into()
    }
}

impl From<DirectoryEntry> for AdminUserView {
    fn from(u: DirectoryEntry) -> Self {
        AdminUserView {
            id: u.id.into(),
            username: u.username,
            email: u.email,
            role: u.role,
            is_active: u.is_active,
            created_at: u.created_at,
        }
    }
}

/// Why a user is disabled or enabled (kept in the audit log).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ActivationRequest {
    /// 1–500 characters.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 500, example = "chargeback fraud")]
    pub reason: Option<String>,
}
/// A payment with its member, for operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AdminPaymentView {
    pub member_id: String,
    #[serde(flatten)]
    pub payment: PaymentView,
}

/// What a reconcile-now found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReconcileResult {
    /// ECPay says paid: credited now, once.
    Credited,
    /// ECPay says paid and it already was credited.
    AlreadyPaid,
    /// Unpaid past the checkout window: expired.
    Expired,
    /// Unpaid, still within the checkout window.
    StillOpen,
    /// ECPay's answer did not verify or disagrees on the amount: left for a person to check.
    Suspicious,
    /// ECPay could not be reached; nothing changed.
    Unreachable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReconcileAnswer {
    pub result: ReconcileResult,
    pub payment: AdminPaymentView,
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditView {
    pub id: String,
    /// The operator who acted.
    pub admin_id: String,
    pub action: AuditAction,
    /// `user:<id>`, `member:<id>`, `payment:<merchant_trade_no>` or `product:<id>`.
    pub target: String,
    #[schema(value_type = Object)]
    pub before: serde_json::Value,
    #[schema(value_type = Object)]
    pub after: serde_json::Value,
    pub reason: Option<String>,
    pub at: chrono::DateTime<chrono::Utc>,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        AuditView {
            id: e.id,
            admin_id: e.admin_id,
            action: e.action,
            target: e.target,
            before: e.before,
            after: e.after,
            reason: e.reason,
            at: e.at,
        }
    }
}
pub struct AdminService<'a> {
    pub store: &'a Store,
    pub recharge: RechargeService<'a>,
    pub passwords: &'a crate::auth::password::PasswordHasher,
    /// What "now" is (see [`crate::clock`]).
    pub clock: &'a crate::clock::Clock,
}

/// The operator's reason for an action: required, trimmed, 1–500 characters of text.
pub(super) fn required_reason(check: &mut FieldCheck, reason: Option<String>) -> Required<String> {
    check.required("reason", reason).parse(check, |raw| {
        let reason = raw.trim().to_string();
        if reason.is_empty() {
            Err("must not be blank".into())
        } else if reason.chars().count() > REASON_MAX {
            Err(format!("must be at most {REASON_MAX} characters"))
        } else if let Some(c) = crate::domain::text::forbidden_char(&reason, true) {
            Err(crate::domain::text::forbidden_problem(c))
        } else {
            Ok(reason)
        }
    })
}

/// Who is who, by id.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Usernames {
    /// Each id that names a user, with its username.
    pub names: std::collections::BTreeMap<String, String>,
}

/// User ids per username lookup at most (one `BatchGetItem`).
const USERNAMES_MAX: usize = 100;

impl AdminService<'_> {
    /// Creates an operator (the command line's `create-admin`; there is no route for it).
    pub async fn create_admin(
        &self,
        username: String,
        email: String,
        password: String,
    ) -> Result<AdminUserView, AppError> {
        let mut check = FieldCheck::new();
        check_username(&mut check, &username);
        check_email(&mut check, &email);
        check_password(&mut check, &password);
        check.finish()?;
        let password_hash = self.passwords.hash(password).await?;
        let now = self.clock.now();
        let user = User {
            id: UserId::generate(),
            username,
            email,
            role: Role::Admin,
            password_hash,
            is_active: true,
            session_epoch: 0,
            created_at: now,
        };
        let audit = AuditEntry::new(
            &user.id,
            AuditAction::AdminCreated,
            format!("user:{}", user.id),
            // Nothing existed before: an empty object, so `before` is always an object.
            serde_json::json!({}),
            serde_json::json!({"username": user.username, "role": "ADMIN"}),
            Some("created by the create-admin command".into()),
            now,
        );
        let registered = until_uncontended(|| self.store.register_admin(&user, &audit)).await?;
        match registered {
            RegisterOutcome::Created => Ok(AdminUserView::from(user)),
            RegisterOutcome::Taken { username, .. } => Err(AppError::Conflict {
                code: if username {
                    "username_taken"
                } else {
                    "email_taken"
                },
                message: "an account with this username or email already exists".into(),
                fields: FieldErrors::new(),
            }),
        }
    }

    /// The usernames of up to 100 user ids (the console shows people by name); ids that name
    /// nobody are left out.
    pub async fn usernames(&self, ids: &[UserId]) -> Result<Usernames, AppError> {
        if ids.len() > USERNAMES_MAX {
            return Err(crate::http::invalid_query(
                "ids",
                "must name at most 100 user ids",
            ));
        }
        Ok(Usernames {
            names: self
                .store
                .usernames(ids)
                .await?
                .into_iter()
                .map(|(id, name)| (id.to_string(), name))
                .collect(),
        })
    }

    pub async fn users(
        &self,
        search: UserSearch,
        page: &PageRequest,
    ) -> Result<Page<AdminUserView>, AppError> {
        if let Some(prefix) = &search.prefix {
            if prefix.chars().count() > crate::domain::user::EMAIL_MAX
                || !crate::domain::user::fits_canonical(prefix)
            {
                return Err(AppError::bad_request(
                    "invalid_query",
                    "q is longer than any username or email",
                ));
            }
        }
        Ok(self
            .store
            .search_users(&search, page)
            .await?
            .map(AdminUserView::from))
    }

    /// Disables or enables `user_id`. Disabling ends every session of the user at once (a new
    /// session epoch: their access and refresh tokens are refused from the next request on, even
    /// after re-enabling). Setting the state a user already has changes nothing and logs nothing.
    pub async fn set_active(
        &self,
        admin_id: &UserId,
        user_id: &UserId,
        active: bool,
        request: ActivationRequest,
    ) -> Result<AdminUserView, AppError> {
        let mut check = FieldCheck::new();
        let reason = required_reason(&mut check, request.reason);
        let reason = check.finish_with(reason)?;
        if !active && user_id == admin_id {
            return Err(AppError::Conflict {
                code: "cannot_disable_self",
                message: "an operator cannot disable their own account".into(),
                fields: FieldErrors::new(),
            });
        }
        let mut budget = RetryBudget::new();
        let view = loop {
            let user = self
                .store
                .get_user(user_id)
                .await?
                .ok_or_else(not_found::user)?;
            if user.is_active == active {
                break AdminUserView::from(user);
            }

            let audit = AuditEntry::new(
                admin_id,
                if active {
                    AuditAction::UserEnabled
                } else {
                    AuditAction::UserDisabled
                },
                format!("user:{user_id}"),
                serde_json::json!({"is_active": user.is_active}),
                serde_json::json!({"is_active": active}),
                Some(reason.clone()),
                self.clock.now(),
            );
            match self.store.set_user_active(&user, active, &audit).await? {
                AdminWrite::Changed => {
                    let mut view = AdminUserView::from(user);
                    view.is_active = active;
                    break view;
                }
                AdminWrite::ActorDisabled => {
                    return Err(AppError::unauthenticated(
                        "account_disabled",
                        "your operator account was disabled meanwhile",
                    ))
                }
                AdminWrite::Stale | AdminWrite::Contended => budget.lost().await?,
            }
        };
        // A disabled merchant's products leave the catalogue and take no new orders; enabled
        // again, each returns to what its merchant and operators leave it. After the account's
        // own change (a product created meanwhile is refused by it), and also when the account
        // already had the state asked for, so repeating the request finishes a sweep cut short.
        if view.role == Role::Merchant {
            self.sweep_merchant_products(user_id, !active).await?;
        }
        Ok(view)
    }
    /// Payments still open (pending), longest waiting for a check first: the stuck ones are at the top.
    pub async fn payments(
        &self,
        status: Option<PaymentStatus>,
        page: &PageRequest,
    ) -> Result<Page<AdminPaymentView>, AppError> {
        match status {
            None | Some(PaymentStatus::Pending) => Ok(self
                .store
                .list_open_payments(page)
                .await?
                .map(|p| AdminPaymentView {
                    member_id: p.member_id.to_string(),
                    payment: PaymentView::from(p),
                })),
            Some(_) => {
                let mut fields = FieldErrors::new();
                fields.insert(
                    "status".into(),
                    "only pending payments are listed across members".into(),
                );
                Err(AppError::BadRequest {
                    code: "invalid_query",
                    message: "status must be pending".into(),
                    fields,
                })
            }
        }
    }

    /// Asks ECPay about one payment now and settles it through the scheduled job's own path
    /// (`RechargeService::reconcile_payment`). A paid payment has nothing to reconcile (409).
    pub async fn reconcile(
        &self,
        admin_id: &UserId,
        merchant_trade_no: &MerchantTradeNo,
    ) -> Result<ReconcileAnswer, AppError> {
        let before = self
            .store
            .get_payment(merchant_trade_no)
            .await?
            .ok_or_else(not_found::payment)?;
        if before.status == PaymentStatus::Paid {
            return Err(AppError::Conflict {
                code: "payment_settled",
                message: "this payment is already paid and credited".into(),
                fields: FieldErrors::new(),
            });
        }
        let result = match self.recharge.reconcile_payment(&before).await? {
            Reconciled::Credited => ReconcileResult::Credited,
            Reconciled::AlreadyPaid => ReconcileResult::AlreadyPaid,
            Reconciled::Expired => ReconcileResult::Expired,
            Reconciled::StillOpen => ReconcileResult::StillOpen,
            Reconciled::Suspicious => ReconcileResult::Suspicious,
            Reconciled::Failed => ReconcileResult::Unreachable,
            // ECPay refused a too-fast caller: nothing was asked; come back later.
            Reconciled::CoolingDown => {
                return Err(AppError::Unavailable {
                    retry_after_secs: 60,
                })
            }
        };
        let after = self
            .store
            .get_payment(merchant_trade_no)
            .await?
            .ok_or_else(not_found::payment)?;
        // The settlement is the scheduled job's own transaction (with its gateway record); the
        // operator's request and what it came to are logged right after.
        let entry = AuditEntry::new(
            admin_id,
            AuditAction::PaymentReconciled,
            format!("payment:{merchant_trade_no}"),
            serde_json::json!({"status": before.status}),
            serde_json::json!({"status": after.status, "result": result}),
            None,
            self.clock.now(),
        );
        until_uncontended(|| self.store.append_audit(&entry)).await?;
        Ok(ReconcileAnswer {
            result,
            payment: AdminPaymentView {
                member_id: after.member_id.to_string(),
                payment: PaymentView::from(after),
            },
        })
    }

    pub async fn orders(
        &self,
        status: Option<OrderStatus>,
        merchant_id: Option<UserId>,
        member_id: Option<UserId>,
        page: &PageRequest,
    ) -> Result<Page<OrderView>, AppError> {
        let search = OrderSearch {
            status,
            merchant_id,
            member_id,
        };
        Ok(self
            .store
            .search_orders(&search, page)
            .await?
            .map(OrderView::from))
    }
    pub async fn audit(&self, page: &PageRequest) -> Result<Page<AuditView>, AppError> {
        Ok(self.store.list_audit(page).await?.map(AuditView::from))
    }
}
