//! What names things: user, product and order ids and ECPay trade numbers, each its own type.
//!
//! Parse, don't validate: a raw string from a path, a body, a token or a stored item becomes one of
//! these once, where it enters ([`UserId::parse`], serde's `try_from` for anything deserialised);
//! from then on a function that takes a [`ProductId`] cannot be handed an order's id or a string
//! that names nothing, and nothing that is not an id can reach DynamoDB as a key. Each reads as its
//! text (`Deref<Target = str>`, `Display`), which is how keys and log lines use it.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Timestamp;

/// A hyphenated UUID, the only form ids take (36 characters).
fn is_uuid(raw: &str) -> bool {
    raw.len() == 36 && uuid::Uuid::try_parse(raw).is_ok()
}

/// MerchantTradeNo: String(20), upper- and lower-case letters and digits, unique per merchant (ECPay
/// AioCheckOut V5 request parameters, <https://developers.ecpay.com.tw/?p=2864>).
fn is_trade_no(raw: &str) -> bool {
    !raw.is_empty() && raw.len() <= 20 && raw.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The text a type reads as, its comparisons with plain strings, and its serde form (a string,
/// checked on the way in).
macro_rules! text_newtype {
    ($name:ident, $valid:path, $what:literal) => {
        impl $name {
            /// The value `raw` names, if it is one; anything else names nothing.
            pub fn parse(raw: &str) -> Option<Self> {
                $valid(raw).then(|| Self(raw.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(raw: String) -> Result<Self, String> {
                if $valid(&raw) {
                    Ok(Self(raw))
                } else {
                    Err(concat!("not ", $what).to_string())
                }
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl From<&$name> for String {
            fn from(value: &$name) -> String {
                value.0.clone()
            }
        }

        impl PartialEq<&$name> for $name {
            fn eq(&self, other: &&$name) -> bool {
                self == *other
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// A new id: a UUIDv7, so ids sort by creation time.
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }
        }

        text_newtype!($name, is_uuid, $what);
    };
}

uuid_id!(
    /// A merchant's webhook endpoint's id.
    WebhookId,
    "a webhook id"
);
uuid_id!(
    /// One message's delivery to one endpoint.
    DeliveryId,
    "a delivery id"
);

impl DeliveryId {
    /// The delivery of event `event_id` to `endpoint`: a UUIDv7 of the event's time (so deliveries
    /// list in the order of their events) whose other bits hash the pair, so the same event handed
    /// over twice names the same delivery and is stored once.
    pub fn of_event(event_time: Timestamp, event_id: &str, endpoint: &WebhookId) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::new()
            .chain_update(event_id.as_bytes())
            .chain_update(b"#")
            .chain_update(endpoint.as_str().as_bytes())
            .finalize();
        let mut bits = [0u8; 10];
        bits.copy_from_slice(&digest[..10]);
        let millis = u64::try_from(event_time.timestamp_millis()).unwrap_or_default();
        Self(
            uuid::Builder::from_unix_timestamp_millis(millis, &bits)
                .into_uuid()
                .to_string(),
        )
    }
}

uuid_id!(
    /// A user's id: a member's, a merchant's or an operator's (the role is on the user).
    UserId,
    "a user id"
);
uuid_id!(
    /// A product's id.
    ProductId,
    "a product id"
);
uuid_id!(
    /// An order's id.
    OrderId,
    "an order id"
);
uuid_id!(
    /// A member's saved delivery address's id.
    AddressId,
    "an address id"
);
uuid_id!(
    /// A member's refund of purchased points.
    RefundId,
    "a refund id"
);

/// The trade number a recharge is known by at ECPay (`MerchantTradeNo`), ours to choose.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MerchantTradeNo(String);

impl MerchantTradeNo {
    /// A new trade number: `PT`, the Taipei time to the second, six random code characters (20 in
    /// all). Unique in practice; the store's condition on creation catches the rare collision.
    pub fn issue(now: Timestamp) -> Self {
        let stamp = super::codes::in_taipei(now).format("%y%m%d%H%M%S");
        Self(format!("PT{stamp}{}", super::codes::random_code(6)))
    }
}

text_newtype!(MerchantTradeNo, is_trade_no, "a MerchantTradeNo");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hyphenated_uuids_are_ids() {
        let id = ProductId::generate();
        assert_eq!(ProductId::parse(id.as_str()), Some(id.clone()));
        for raw in [
            "",
            "x",
            "0191b1f0c2a37e4c9e1d7b2a3c4d5e6f",
            "{0191b1f0-c2a3-7e4c-9e1d-7b2a3c4d5e6f}",
            "0191b1f0-c2a3-7e4c-9e1d-7b2a3c4d5e6g",
            "PRODUCT#0191b1f0-c2a3-7e4c-9e1d-7b2a3c4d",
        ] {
            assert_eq!(ProductId::parse(raw), None, "{raw}");
        }
        assert!(
            UserId::generate() < UserId::generate(),
            "UUIDv7 sorts by time"
        );
    }

    #[test]
    fn ids_go_through_serde_as_strings_and_are_checked_on_the_way_in() {
        let id = OrderId::generate();
        let text = serde_json::to_string(&id).unwrap();
        assert_eq!(text, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<OrderId>(&text).unwrap(), id);
        assert!(serde_json::from_str::<OrderId>("\"ORDER#1\"").is_err());
        assert!(serde_json::from_str::<OrderId>("17").is_err());
    }

    #[test]
    fn trade_numbers_fit_ecpay_and_differ() {
        let now = chrono::Utc::now();
        let (a, b) = (MerchantTradeNo::issue(now), MerchantTradeNo::issue(now));
        assert_eq!(a.len(), 20);
        assert_eq!(MerchantTradeNo::parse(&a), Some(a.clone()));
        assert_ne!(a, b);
        for raw in ["", "PT-1", "PT0000000000000000000", "點數"] {
            assert_eq!(MerchantTradeNo::parse(raw), None, "{raw}");
        }
    }
}
