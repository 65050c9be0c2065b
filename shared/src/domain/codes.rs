//! Taiwan time and the short codes people read out (order numbers, ECPay's MerchantTradeNo), each
//! written once.

use rand::Rng;

use super::Timestamp;

/// Taiwan is UTC+8 all year (no daylight saving): the calendar ECPay's dates and our codes use.
const TAIPEI_OFFSET_SECS: i32 = 8 * 3600;

/// `at` on Taiwan's clock.
pub fn in_taipei(at: Timestamp) -> chrono::DateTime<chrono::FixedOffset> {
    let taipei =
        chrono::FixedOffset::east_opt(TAIPEI_OFFSET_SECS).expect("UTC+8 is a valid offset");
    at.with_timezone(&taipei)
}

/// Capitals and digits without the look-alikes `I`, `O`, `0` and `1`: readable over the phone.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// `len` characters drawn at random from [`CODE_ALPHABET`].
pub fn random_code(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taipei_is_eight_hours_ahead_across_midnight() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-26T17:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            in_taipei(at).format("%Y-%m-%d %H:%M").to_string(),
            "2026-11-27 01:00"
        );
    }

    #[test]
    fn codes_use_only_the_readable_alphabet() {
        let code = random_code(64);
        assert_eq!(code.len(), 64);
        assert!(code.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{code}");
        assert!(!code.contains(['I', 'O', '0', '1']));
    }
}
