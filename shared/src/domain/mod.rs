//! Domain types and rules. Nothing here knows about HTTP, Lambda or DynamoDB.

pub mod account;
pub mod user;

pub use account::PointAccount;
pub use user::{NewUser, Role, User};

/// Timestamps are UTC, RFC 3339 on the wire.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
