use super::{Points, ProductId, Timestamp, UserId};
use crate::error::FieldCheck;

pub const NAME_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 2_000;
pub const POINTS_MIN: i64 = 1;
pub const POINTS_MAX: i64 = 10_000_000;
pub const STOCK_MAX: i64 = 1_000_000;

/// How a gift reaches its member: shown as a code at the merchant's counter, or sent by parcel.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Fulfilment {
    /// Collected in store: the order's pickup code, read by the merchant, completes it. Products
    /// listed before fulfilment existed are pickup.
    #[default]
    Pickup,
    /// Sent to the address the member gives at redemption.
    Delivery,
}

impl Fulfilment {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pickup" => Some(Fulfilment::Pickup),
            "delivery" => Some(Fulfilment::Delivery),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Fulfilment::Pickup => "pickup",
            Fulfilment::Delivery => "delivery",
        }
    }
}

/// Parses a request's `fulfilment`.
pub fn parse_fulfilment(raw: String) -> Result<Fulfilment, String> {
    Fulfilment::parse(&raw).ok_or_else(|| "must be \"pickup\" or \"delivery\"".to_string())
}

/// A gift a merchant lists, priced in points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: ProductId,
    pub merchant_id: UserId,
    pub name: String,
    pub description: String,
    pub points_required: Points,
    /// How the gift is handed over; the orders placed on it keep the value they were placed with.
    pub fulfilment: Fulfilment,
    /// The total over the product's stock shards (see [`super::stock`]).
    pub stock: i64,
    /// How many items the stock is split over: chosen from the stock, raised by the merchant for a
    /// product expected to be hot, never lowered.
    pub stock_shards: u8,
    /// The merchant's own choice to offer it (`is_active` in their edits).
    pub listed: bool,
    /// Taken down by an operator: off sale until an operator lifts it, whatever the merchant sends.
    pub blocked: bool,
    /// Its merchant's account is disabled: off sale until an operator enables them again.
    pub merchant_suspended: bool,
    /// Incremented by every change to the product, including stock moved by redemptions, so that a
    /// merchant's edit based on an old read can never overwrite a newer stock figure. Stored as the
    /// product item's own version plus each stock shard's: every write to any of them raises it.
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Whether a product is on sale: its merchant offers it, no operator took it down, and the merchant's
/// account is enabled. Each party controls only its own flag, so lifting one restores exactly what
/// the others left (re-enabling a merchant does not put back what an operator took down, and lifting
/// a takedown does not list what the merchant had withdrawn).
pub fn on_sale(listed: bool, blocked: bool, merchant_suspended: bool) -> bool {
    listed && !blocked && !merchant_suspended
}

impl Product {
    /// On sale: in the catalogue and orderable, worked out from the three flags (see [`on_sale`]).
    pub fn is_active(&self) -> bool {
        on_sale(self.listed, self.blocked, self.merchant_suspended)
    }
}

/// The fields a merchant may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub points_required: Option<Points>,
    pub fulfilment: Option<Fulfilment>,
    pub stock: Option<i64>,
    /// A floor for the shard count (a smaller figure than the current one changes nothing).
    pub stock_shards: Option<u8>,
    pub is_active: Option<bool>,
}

impl ProductChanges {
    pub fn is_empty(&self) -> bool {
        *self == ProductChanges::default()
    }
}

/// Trims the name and checks its length; returns the trimmed name.
pub fn check_name(check: &mut FieldCheck, name: &str) -> String {
    let trimmed = name.trim().to_string();
    let len = trimmed.chars().count();
    if len == 0 || len > NAME_MAX {
        check.fail(
            "name",
            format!("must be 1 to {NAME_MAX} characters after trimming"),
        );
    } else if let Some(c) = super::text::forbidden_char(&trimmed, false) {
        check.fail("name", super::text::forbidden_problem(c));
    }
    trimmed
}

pub fn check_description(check: &mut FieldCheck, description: &str) {
    if description.chars().count() > DESCRIPTION_MAX {
        check.fail(
            "description",
            format!("must be at most {DESCRIPTION_MAX} characters"),
        );
    } else if let Some(c) = super::text::forbidden_char(description, true) {
        check.fail("description", super::text::forbidden_problem(c));
    }
}

/// A product's price, if `points` is one a product may have.
pub fn parse_price(points: i64) -> Result<Points, String> {
    Some(points)
        .filter(|p| (POINTS_MIN..=POINTS_MAX).contains(p))
        .and_then(Points::new)
        .ok_or_else(|| format!("must be an integer from {POINTS_MIN} to {POINTS_MAX}"))
}

pub fn check_stock_shards(check: &mut FieldCheck, shards: i64) -> u8 {
    let max = super::stock::MAX_SHARDS;
    if !(1..=max as i64).contains(&shards) {
        check.fail(
            "stock_shards",
            format!("must be an integer from 1 to {max}"),
        );
        return 1;
    }
    shards as u8
}

pub fn check_stock(check: &mut FieldCheck, stock: i64) {
    if !(0..=STOCK_MAX).contains(&stock) {
        check.fail("stock", format!("must be an integer from 0 to {STOCK_MAX}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fails(f: impl FnOnce(&mut FieldCheck)) -> bool {
        let mut check = FieldCheck::new();
        f(&mut check);
        check.finish().is_err()
    }

    #[test]
    fn names_are_trimmed_before_their_length_is_checked() {
        let mut check = FieldCheck::new();
        assert_eq!(check_name(&mut check, "  Tea set  "), "Tea set");
        assert!(check.finish().is_ok());
        assert!(fails(|c| {
            check_name(c, "   ");
        }));
        assert!(!fails(|c| {
            check_name(c, &format!(" {} ", "茶".repeat(200)));
        }));
        assert!(fails(|c| {
            check_name(c, &"a".repeat(201));
        }));
    }

    #[test]
    fn a_product_is_on_sale_only_when_every_party_allows_it() {
        assert!(on_sale(true, false, false));
        for (listed, blocked, suspended) in [
            (false, false, false),
            (true, true, false),
            (true, false, true),
            (true, true, true),
            (false, true, true),
        ] {
            assert!(!on_sale(listed, blocked, suspended));
        }
    }

    #[test]
    fn numbers_stay_within_their_ranges() {
        assert!(parse_price(0).is_err());
        assert!(parse_price(-1).is_err());
        assert_eq!(parse_price(1).map(Points::get), Ok(1));
        assert_eq!(parse_price(10_000_000).map(Points::get), Ok(10_000_000));
        assert!(parse_price(10_000_001).is_err());
        assert!(!fails(|c| check_stock(c, 0)));
        assert!(fails(|c| check_stock(c, -1)));
        assert!(fails(|c| check_stock(c, 1_000_001)));
        assert!(fails(|c| check_description(c, &"x".repeat(2_001))));
        assert!(!fails(|c| check_description(c, &"x".repeat(2_000))));
    }
}
