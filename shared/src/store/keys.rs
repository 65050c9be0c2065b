//! Key shapes of the single table. See docs/data-model.md for the access patterns they serve.

pub fn user_pk(user_id: &str) -> String {
    format!("USER#{user_id}")
}
pub const USER_PROFILE_SK: &str = "PROFILE";
pub const ACCOUNT_SK: &str = "ACCOUNT";

/// Uniqueness guards: one item per lower-cased username and email, written in the registration
/// transaction with `attribute_not_exists`, so two users can never share either.
pub fn username_pk(canonical_username: &str) -> String {
    format!("USERNAME#{canonical_username}")
}
pub const USERNAME_SK: &str = "USERNAME";
pub fn email_pk(canonical_email: &str) -> String {
    format!("EMAIL#{canonical_email}")
}
pub const EMAIL_SK: &str = "EMAIL";

pub fn token_family_pk(family: &str) -> String {
    format!("TOKENFAMILY#{family}")
}
pub const TOKEN_FAMILY_SK: &str = "FAMILY";

pub fn login_failures_pk(canonical_username: &str) -> String {
    format!("LOGINFAIL#{canonical_username}")
}
pub const LOGIN_FAILURES_SK: &str = "WINDOW";

pub fn product_pk(product_id: &str) -> String {
    format!("PRODUCT#{product_id}")
}
pub const PRODUCT_SK: &str = "PRODUCT";
/// gsi1: a merchant's products, newest first (the sort key is the time-ordered product id).
pub fn merchant_products_gsi(merchant_id: &str) -> String {
    format!("MERCHANT_PRODUCTS#{merchant_id}")
}
/// gsi2: the active catalogue. Sparse: only active products carry these keys.
pub const CATALOGUE_GSI: &str = "CATALOGUE";

/// Ledger rows live in the member's own partition, after the profile and account items.
pub fn ledger_sk(transaction_id: &str) -> String {
    format!("TXN#{transaction_id}")
}
pub const LEDGER_SK_PREFIX: &str = "TXN#";

pub fn payment_pk(merchant_trade_no: &str) -> String {
    format!("PAYMENT#{merchant_trade_no}")
}
pub const PAYMENT_SK: &str = "PAYMENT";
/// gsi1: a member's payments, newest first.
pub fn member_payments_gsi(member_id: &str) -> String {
    format!("MEMBER_PAYMENTS#{member_id}")
}
