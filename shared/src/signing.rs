//! Keys derived from the one server secret, one per purpose, for the tokens this service hands out
//! and later checks itself (pagination cursors, checkout links). A key for one purpose never
//! verifies another's token, and none needs its own configuration.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of a purpose label under the server secret.
#[derive(Clone)]
pub struct DerivedKey([u8; 32]);

impl std::fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DerivedKey(<key>)")
    }
}

impl DerivedKey {
    /// `purpose` names the use and its version, e.g. `points-redemption/pagination-cursor/v1`.
    pub fn derive(secret: &[u8], purpose: &str) -> Self {
        let mut mac = hmac_with(secret);
        mac.update(purpose.as_bytes());
        DerivedKey(mac.finalize().into_bytes().into())
    }

    /// A fresh MAC under this key.
    pub fn mac(&self) -> HmacSha256 {
        hmac_with(&self.0)
    }
}

/// HMAC takes keys of any length (RFC 2104 hashes long ones), so this cannot fail.
fn hmac_with(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_purpose_gets_its_own_key_and_the_same_purpose_the_same() {
        let secret = b"a server secret of some length";
        let tag = |key: &DerivedKey| key.mac().chain_update(b"x").finalize().into_bytes();
        let cursors = DerivedKey::derive(secret, "cursor/v1");
        assert_eq!(tag(&cursors), tag(&DerivedKey::derive(secret, "cursor/v1")));
        assert_ne!(tag(&cursors), tag(&DerivedKey::derive(secret, "link/v1")));
        assert_ne!(
            tag(&cursors),
            tag(&DerivedKey::derive(b"another secret", "cursor/v1"))
        );
        assert_eq!(format!("{cursors:?}"), "DerivedKey(<key>)");
    }
}
