//! Domain types and rules. Nothing here knows about HTTP, Lambda or DynamoDB.

pub mod account;
pub mod audit;
pub mod codes;
pub mod e_invoice;
pub mod ids;
pub mod invoice;
pub mod ledger;
pub mod order;
pub mod payment;
pub mod points;
pub mod product;
pub mod refund;
pub mod settlement;
pub mod shipping;
pub mod stock;
pub mod text;
pub mod user;
pub mod webhook;

pub use account::{AccountSnapshot, BalanceChange, Movement, PointAccount, Refusal};
pub use audit::{AuditAction, AuditEntry};
pub use ids::{
    AddressId, DeliveryId, MerchantTradeNo, OrderId, ProductId, RefundId, UserId, WebhookId,
};
pub use ledger::{PointTransaction, TransactionType};
pub use order::{Order, OrderParty, OrderStatus, Shipment};
pub use payment::{Payment, PaymentStatus, Settlement};
pub use points::Points;
pub use product::{Fulfilment, Product, ProductChanges};
pub use shipping::ShippingAddress;
pub use user::{Role, User};

/// Timestamps are UTC, RFC 3339 on the wire.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
