//! Uniqueness guards: an item whose key is the unique value (a username, an email, an order
//! number) and which names what holds it, put with `attribute_not_exists` in the same transaction
//! as the thing it guards.

use serde::{Deserialize, Serialize};

use crate::domain::{OrderId, UserId};

#[derive(Serialize, Deserialize)]
pub(super) struct GuardRecord {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    /// A username or email guard's user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// An order number's order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<OrderId>,
}
