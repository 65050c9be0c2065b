//! A positive number of points: a price, an order's cost, a purchase, a refund. Balances (which may
//! be zero) and adjustments (either sign) stay plain integers; everything that *moves* points is one
//! of these, so "is this amount positive?" is answered once, where the amount is parsed.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Points(i64);

impl Points {
    /// `count` points, if it is at least one.
    pub fn new(count: i64) -> Option<Self> {
        (count > 0).then_some(Self(count))
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// `quantity` times this many points, if the product is positive and fits.
    pub fn times(self, quantity: i64) -> Option<Self> {
        self.0.checked_mul(quantity).and_then(Self::new)
    }
}

impl TryFrom<i64> for Points {
    type Error = String;
    fn try_from(count: i64) -> Result<Self, String> {
        Self::new(count).ok_or_else(|| format!("{count} is not a positive number of points"))
    }
}

impl From<Points> for i64 {
    fn from(points: Points) -> i64 {
        points.0
    }
}

impl fmt::Display for Points {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_positive_counts_are_points_and_products_never_wrap() {
        assert_eq!(Points::new(0), None);
        assert_eq!(Points::new(-3), None);
        let price = Points::new(1_200).unwrap();
        assert_eq!(price.times(3).map(Points::get), Some(3_600));
        assert_eq!(price.times(0), None);
        assert_eq!(price.times(-1), None);
        assert_eq!(Points::new(i64::MAX).unwrap().times(2), None);
        assert_eq!(serde_json::to_string(&price).unwrap(), "1200");
        assert!(serde_json::from_str::<Points>("0").is_err());
        assert_eq!(serde_json::from_str::<Points>("7").unwrap().get(), 7);
    }
}
