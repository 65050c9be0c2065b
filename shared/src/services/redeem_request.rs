//! A redemption request: what a member sends, and the same validated.

use serde::Deserialize;
use utoipa::ToSchema;

use super::idempotency::request_hash;
use crate::domain::order::QUANTITY_MAX;
use crate::domain::shipping::{check_shipping, ShippingInput};
use crate::domain::{AddressId, Points, ProductId, ShippingAddress};
use crate::error::{AppError, FieldCheck};

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct RedeemRequest {
    #[schema(value_type = String, required = true, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub product_id: Option<String>,
    #[schema(value_type = i64, required = true, minimum = 1, maximum = 100, example = 1)]
    pub quantity: Option<i64>,
    /// The unit price the member saw. Recommended (our clients always send it): if the merchant has
    /// changed the price since, the answer is 409 `price_changed` with the current price in
    /// `fields.points_required`, and nothing is charged.
    #[schema(value_type = Option<i64>, minimum = 1, example = 100)]
    pub points_required: Option<i64>,
    /// Where to send a `delivery` product (required for one, refused for a `pickup` one); or send
    /// `shipping_address_id` instead. The order keeps a copy.
    #[schema(value_type = Option<ShippingInput>)]
    pub shipping: Option<ShippingInput>,
    /// One of my saved addresses (`/api/members/addresses/`), instead of `shipping`.
    #[schema(value_type = Option<String>, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub shipping_address_id: Option<String>,
}

/// A redemption request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Asked {
    pub product_id: ProductId,
    pub quantity: i64,
    /// The unit price the member saw, if they sent it.
    pub seen_price: Option<Points>,
    /// Where a delivery goes (a saved address is resolved into this before deciding).
    pub shipping: Option<ShippingAddress>,
    pub shipping_address_id: Option<AddressId>,
}

impl Asked {
    /// The validated request, or every problem with it at once.
    pub(crate) fn validate(request: RedeemRequest) -> Result<Asked, AppError> {
        let mut check = FieldCheck::new();
        let product_id = check
            .required("product_id", request.product_id)
            .parse(&mut check, |raw| {
                ProductId::parse(&raw).ok_or_else(|| "must be a product id".to_string())
            });
        let quantity = check
            .required("quantity", request.quantity)
            .parse(&mut check, |quantity| {
                (1..=QUANTITY_MAX)
                    .contains(&quantity)
                    .then_some(quantity)
                    .ok_or_else(|| format!("must be an integer from 1 to {QUANTITY_MAX}"))
            });
        // The price the member saw, if sent: the order is refused should it have changed since.
        let seen_price = check.parse("points_required", request.points_required, |price| {
            Points::new(price).ok_or_else(|| "must be a positive whole number of points".into())
        });
        let shipping = request
            .shipping
            .and_then(|input| check_shipping(&mut check, "shipping.", input));
        let shipping_address_id =
            check.parse("shipping_address_id", request.shipping_address_id, |raw| {
                AddressId::parse(&raw).ok_or_else(|| "must be an address id".to_string())
            });
        if shipping.is_some() && shipping_address_id.is_some() {
            check.fail(
                "shipping_address_id",
                "send shipping or shipping_address_id, not both",
            );
        }
        let (product_id, quantity) = check.finish_with((product_id, quantity))?;
        Ok(Asked {
            product_id,
            quantity,
            seen_price,
            shipping,
            shipping_address_id,
        })
    }

    /// The request's hash for its Idempotency-Key. The address is part of the request, so a key
    /// reused with another address is refused; a request without one hashes as it always did.
    pub(crate) fn hash(&self) -> String {
        let seen = self.seen_price.map(|p| p.to_string()).unwrap_or_default();
        // The address is part of the request: a key reused with another address is refused.
        let shipping = match (&self.shipping, &self.shipping_address_id) {
            (Some(a), _) => format!(
                "{}\u{1f}{}\u{1f}{}\u{1f}{}",
                a.recipient_name, a.phone, a.postal_code, a.address
            ),
            (None, Some(id)) => format!("saved:{id}"),
            (None, None) => String::new(),
        };
        let mut hashed = format!("{}\n{}\n{seen}", self.product_id, self.quantity);
        if !shipping.is_empty() {
            hashed.push_str(&format!("\n{shipping}"));
        }
        request_hash(&hashed)
    }
}
