//! Use cases. Each public function is one thing a user does; it validates, applies the domain rules
//! and calls the store. None of them knows about HTTP.

pub mod adjustments;
pub mod admin;
pub mod auth;
pub mod catalogue;
pub mod checkout;
pub mod deliveries;
pub mod ecpay_query;
pub(crate) mod idempotency;
pub mod invoice_job;
pub mod invoices;
pub mod login;
pub mod moderation;
pub mod notification;
pub mod orders;
pub mod packing_list;
pub mod pickups;
pub mod points;
pub mod recharge;
pub mod reconciliation;
pub mod redeem_request;
pub mod redemption;
pub mod refund_job;
pub mod refunds;
pub(crate) mod retry;
pub mod settlements;
pub mod webhook_delivery;
pub mod webhooks;
