use serde::{Deserialize, Serialize};

use super::{Fulfilment, OrderId, Points, ProductId, ShippingAddress, Timestamp, UserId};

pub const QUANTITY_MAX: i64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Points spent, stock reserved; the merchant has not handed the gift over yet.
    Pending,
    /// A delivery on its way: the merchant shipped it (carrier and tracking number); the member
    /// confirms receipt, or it completes by itself after `DELIVERY_AUTO_COMPLETE_DAYS`.
    Shipped,
    /// Handed over: a pickup by its code, a delivery received. Final.
    Completed,
    /// Cancelled by the member or the merchant; points refunded, stock restored. Final.
    Cancelled,
}

impl OrderStatus {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(OrderStatus::Pending),
            "shipped" => Some(OrderStatus::Shipped),
            "completed" => Some(OrderStatus::Completed),
            "cancelled" => Some(OrderStatus::Cancelled),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Completed => "completed",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

/// A member's redemption of points for a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    /// Human-friendly and unique, e.g. `PO20261127K7M2Q9XA`.
    pub order_number: String,
    pub member_id: UserId,
    pub merchant_id: UserId,
    pub product_id: ProductId,
    /// The product's name when it was redeemed.
    pub product_name: String,
    pub quantity: i64,
    /// points_required × quantity, at the price the member was charged.
    pub points_cost: Points,
    /// Of `points_cost`, how many were promotional points (the rest were purchased): a cancellation
    /// gives each kind back as it was taken. 0 on orders from before the two kinds.
    pub promotional_points: i64,
    pub status: OrderStatus,
    /// The product's fulfilment when the order was placed.
    pub fulfilment: Fulfilment,
    /// A pickup order's code: shown by its member at the counter, read by the merchant to complete
    /// it. `None` for deliveries, and for pickups placed before codes existed (those the merchant
    /// may still complete directly).
    pub pickup_code: Option<String>,
    /// A pickup not collected by then is cancelled with a full refund by the scheduled job.
    pub pickup_expires_at: Option<Timestamp>,
    /// A delivery's address as the member gave it (a snapshot: later edits of a saved address do
    /// not change it), redacted `ADDRESS_RETENTION_DAYS` after the order ends.
    pub shipping: Option<ShippingAddress>,
    /// Set when a delivery ships.
    pub shipment: Option<Shipment>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// How a delivery was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipment {
    pub carrier: String,
    pub tracking_number: String,
    pub shipped_at: Timestamp,
}

/// Who acts on an order: its member or its merchant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderParty<'a> {
    Member(&'a UserId),
    Merchant(&'a UserId),
}

impl Order {
    pub fn belongs_to(&self, party: OrderParty<'_>) -> bool {
        match party {
            OrderParty::Member(id) => self.member_id == id,
            OrderParty::Merchant(id) => self.merchant_id == id,
        }
    }
}
