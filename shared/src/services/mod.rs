//! Use cases. Each public function is one thing a user does; it validates, applies the domain rules
//! and calls the store. None of them knows about HTTP.

pub mod admin;
pub mod auth;
pub mod catalogue;
pub mod orders;
pub mod points;
pub mod recharge;
pub(crate) mod retry;
