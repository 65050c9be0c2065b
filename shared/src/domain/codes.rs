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

/// A pickup code's length: 32^10 ≈ 10^15 codes, so guessing one at the 20 wrong tries a merchant
/// gets per 15 minutes is hopeless, and a collision (caught by the code's guard item) is rare.
pub const PICKUP_CODE_LEN: usize = 10;

/// A new pickup code. `thread_rng` is a CSPRNG (ChaCha12, seeded and reseeded from the OS), as a
/// code that completes an order must be unpredictable.
pub fn pickup_code() -> String {
    random_code(PICKUP_CODE_LEN)
}

/// A pickup code as a person typed it, in its one canonical form: case, spaces and dashes do not
/// matter (`abcd-efgh 23` reads as `ABCDEFGH23`). `None` when it cannot be a code at all.
pub fn normalise_pickup_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == PICKUP_CODE_LEN && code.bytes().all(|b| CODE_ALPHABET.contains(&b)))
        .then_some(code)
}

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
    fn a_pickup_code_reads_the_same_whatever_the_case_spaces_and_dashes() {
        let code = pickup_code();
        assert_eq!(normalise_pickup_code(&code).as_deref(), Some(code.as_str()));
        let typed = format!(" {}-{} {} ", &code[..4], &code[4..8], &code[8..]).to_lowercase();
        assert_eq!(normalise_pickup_code(&typed), Some(code));
        for wrong in [
            "",
            "ABCDEFGH2",
            "ABCDEFGH234",
            "ABCDEFGH2I",
            "ABCDEFGH20",
            "ÀBCDEFGH23",
        ] {
            assert_eq!(normalise_pickup_code(wrong), None, "{wrong}");
        }
    }

    #[test]
    fn codes_use_only_the_readable_alphabet() {
        let code = random_code(64);
        assert_eq!(code.len(), 64);
        assert!(code.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{code}");
        assert!(!code.contains(['I', 'O', '0', '1']));
    }
}
