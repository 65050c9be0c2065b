//! Gifts sent by parcel: a member's saved addresses, the merchant shipping, the member confirming
//! receipt (or the order completing by itself), and each ended order's address redacted once kept
//! `ADDRESS_RETENTION_DAYS`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::orders::{OrderService, OrderView};
use super::retry::RetryBudget;
use crate::config::fulfilment::ADDRESSES_MAX;
use crate::domain::shipping::{check_shipping, ShippingInput, CARRIER_MAX, TRACKING_NUMBER_MAX};
use crate::domain::{
    AddressId, Fulfilment, Order, OrderId, OrderStatus, Shipment, ShippingAddress, UserId,
};
use crate::error::{not_found, AppError, FieldCheck};
use crate::pagination::Page;
use crate::store::{AddressSave, DeliveryStep, DueWork, Receipt, SavedAddress};

/// A saved address, as its member sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AddressView {
    pub id: String,
    pub recipient_name: String,
    pub phone: String,
    pub postal_code: String,
    pub address: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<SavedAddress> for AddressView {
    fn from(saved: SavedAddress) -> Self {
        AddressView {
            id: saved.id.into(),
            recipient_name: saved.address.recipient_name,
            phone: saved.address.phone,
            postal_code: saved.address.postal_code,
            address: saved.address.address,
            created_at: saved.created_at,
        }
    }
}

/// How the merchant sent a delivery.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ShipRequest {
    /// 1–50 characters, e.g. 黑貓宅急便.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 50, example = "黑貓宅急便")]
    pub carrier: Option<String>,
    /// 1–50 characters.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 50, example = "9012-3456-7890")]
    pub tracking_number: Option<String>,
}

/// What one scheduled pass over the fulfilment work due did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FulfilmentReport {
    pub pickups: super::pickups::PickupExpiry,
    pub deliveries: DeliveryWork,
}

/// What one scheduled pass over deliveries did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryWork {
    /// Shipped deliveries completed by themselves.
    pub completed: usize,
    /// Ended orders whose address was replaced by "redacted".
    pub redacted: usize,
}

fn short_text(check: &mut FieldCheck, field: &str, value: Option<String>, max: usize) -> String {
    let value = value.unwrap_or_default().trim().to_string();
    let len = value.chars().count();
    if len == 0 || len > max {
        check.fail(field, format!("must be 1 to {max} characters"));
    } else if let Some(c) = crate::domain::text::forbidden_char(&value, false) {
        check.fail(field, crate::domain::text::forbidden_problem(c));
    }
    value
}

impl OrderService<'_> {
    pub async fn addresses(&self, member: &UserId) -> Result<Page<AddressView>, AppError> {
        let items = self
            .store
            .list_addresses(member)
            .await?
            .into_iter()
            .map(AddressView::from)
            .collect();
        Ok(Page {
            items,
            next_cursor: None,
        })
    }

    /// Saves an address; a member keeps at most [`ADDRESSES_MAX`] (409 `too_many_addresses`).
    pub async fn save_address(
        &self,
        member: &UserId,
        input: ShippingInput,
    ) -> Result<AddressView, AppError> {
        let mut check = FieldCheck::new();
        let address = check_shipping(&mut check, "", input);
        check.finish()?;
        let address = address.ok_or_else(|| AppError::internal("a checked address"))?;
        let saved = SavedAddress {
            id: AddressId::generate(),
            address,
            created_at: self.clock.now(),
        };
        let mut budget = RetryBudget::new();
        loop {
            match self
                .store
                .save_address(member, &saved, ADDRESSES_MAX)
                .await?
            {
                AddressSave::Saved => return Ok(saved.into()),
                AddressSave::Full => {
                    return Err(AppError::conflict(
                        "too_many_addresses",
                        format!(
                            "a member keeps at most {ADDRESSES_MAX} addresses: delete one first"
                        ),
                    ))
                }
                AddressSave::Contended => budget.lost().await?,
            }
        }
    }

    pub async fn delete_address(&self, member: &UserId, id: &AddressId) -> Result<(), AppError> {
        let mut budget = RetryBudget::new();
        loop {
            match self.store.delete_address(member, id).await? {
                Some(true) => return Ok(()),
                Some(false) => return Err(not_found::address()),
                None => budget.lost().await?,
            }
        }
    }

    /// One of the member's saved addresses, for a redemption.
    pub(super) async fn saved_address(
        &self,
        member: &UserId,
        id: &AddressId,
    ) -> Result<ShippingAddress, AppError> {
        Ok(self
            .store
            .get_address(member, id)
            .await?
            .ok_or_else(not_found::address)?
            .address)
    }

    /// pending → shipped, by the order's merchant: a delivery only (409 `not_a_delivery`).
    pub async fn ship(
        &self,
        merchant: &UserId,
        order_id: &OrderId,
        request: ShipRequest,
    ) -> Result<OrderView, AppError> {
        let mut check = FieldCheck::new();
        let carrier = short_text(&mut check, "carrier", request.carrier, CARRIER_MAX);
        let tracking_number = short_text(
            &mut check,
            "tracking_number",
            request.tracking_number,
            TRACKING_NUMBER_MAX,
        );
        check.finish()?;
        let mut budget = RetryBudget::new();
        loop {
            let now = self.clock.now();
            let shipment = Shipment {
                carrier: carrier.clone(),
                tracking_number: tracking_number.clone(),
                shipped_at: now,
            };
            let completes_at = self.fulfilment.delivery_completes(now);
            match self
                .store
                .ship_order(order_id, merchant, &shipment, completes_at)
                .await?
            {
                DeliveryStep::Done => {
                    let order = self.fresh_order(order_id).await?;
                    return Ok(order.into());
                }
                DeliveryStep::Contended => budget.lost().await?,
                DeliveryStep::Refused => {
                    let order = match self.store.get_order(order_id).await? {
                        Some(order) if order.merchant_id == *merchant => order,
                        _ => return Err(not_found::order()),
                    };
                    return Err(if order.fulfilment != Fulfilment::Delivery {
                        AppError::conflict(
                            "not_a_delivery",
                            "a pickup order is handed over with its code, not shipped",
                        )
                    } else {
                        super::orders::not_pending(order.status)
                    });
                }
            }
        }
    }

    /// shipped → completed, by the order's member.
    pub async fn confirm_receipt(
        &self,
        member: &UserId,
        order_id: &OrderId,
    ) -> Result<OrderView, AppError> {
        let mut budget = RetryBudget::new();
        loop {
            let order = match self.store.get_order(order_id).await? {
                Some(order) if order.member_id == *member => order,
                _ => return Err(not_found::order()),
            };
            if order.status == OrderStatus::Pending {
                return Err(not_shipped());
            }
            let now = self.clock.now();
            let redact_at = self.fulfilment.address_redacted(now);
            let commission = self.settlements.commission_of(&order.merchant_id).await?;
            let sale = self.settlements.sale_writes(&order, now, commission);
            match self
                .store
                .complete_delivery(&order, Receipt::Confirmed(member), now, redact_at, &sale)
                .await?
            {
                DeliveryStep::Done => {
                    // The write's condition held: the order as read, now completed.
                    let mut completed = order;
                    completed.status = OrderStatus::Completed;
                    completed.updated_at = now;
                    return Ok(OrderView::for_member(completed));
                }
                DeliveryStep::Contended => budget.lost().await?,
                DeliveryStep::Refused => {
                    let status = self.fresh_order(order_id).await?.status;
                    if status != OrderStatus::Shipped {
                        return Err(match status {
                            OrderStatus::Pending => not_shipped(),
                            status => super::orders::not_pending(status),
                        });
                    }
                    budget.lost().await?
                }
            }
        }
    }

    async fn fresh_order(&self, order_id: &OrderId) -> Result<Order, AppError> {
        self.store
            .get_order(order_id)
            .await?
            .ok_or_else(not_found::order)
    }

    /// Every kind of fulfilment work that is due, each bounded by `FULFILMENT_BATCH` per run.
    pub async fn fulfilment_due(&self) -> Result<FulfilmentReport, AppError> {
        Ok(FulfilmentReport {
            pickups: self.expire_pickups().await?,
            deliveries: self.deliveries_due().await?,
        })
    }

    /// Completes shipped deliveries past their auto-completion time and redacts the addresses of
    /// orders ended `ADDRESS_RETENTION_DAYS` ago, each bounded by `FULFILMENT_BATCH` per run.
    pub async fn deliveries_due(&self) -> Result<DeliveryWork, AppError> {
        let now = self.clock.now();
        let batch = self.fulfilment.batch as usize;
        let mut work = DeliveryWork::default();
        for order_id in self
            .store
            .due_orders(DueWork::DeliveryCompletes, now, batch)
            .await?
        {
            let order = self.store.get_order(&order_id).await?;
            match order {
                Some(order) if order.status == OrderStatus::Shipped => {
                    let redact_at = self.fulfilment.address_redacted(now);
                    let commission = self.settlements.commission_of(&order.merchant_id).await?;
                    let sale = self.settlements.sale_writes(&order, now, commission);
                    match self
                        .store
                        .complete_delivery(&order, Receipt::AutoCompleted, now, redact_at, &sale)
                        .await?
                    {
                        DeliveryStep::Done => work.completed += 1,
                        // Confirmed, cancelled or held meanwhile: the next run sees it again if
                        // it is still queued.
                        DeliveryStep::Refused | DeliveryStep::Contended => {}
                    }
                }
                // Ended otherwise: its queue entry is all that is left.
                _ => {
                    self.store
                        .drop_due(DueWork::DeliveryCompletes, &order_id)
                        .await?
                }
            }
        }
        for order_id in self
            .store
            .due_orders(DueWork::AddressRedacted, now, batch)
            .await?
        {
            match self.store.redact_address(&order_id).await? {
                DeliveryStep::Done => work.redacted += 1,
                DeliveryStep::Refused => {
                    self.store
                        .drop_due(DueWork::AddressRedacted, &order_id)
                        .await?
                }
                DeliveryStep::Contended => {}
            }
        }
        Ok(work)
    }
}

fn not_shipped() -> AppError {
    AppError::conflict(
        "not_shipped",
        "the gift has not been shipped yet: a delivery completes when its member receives it",
    )
}
