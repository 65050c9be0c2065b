//! Credentials: JWT access/refresh tokens and argon2id password hashes.

pub mod jwt;
pub mod password;

pub use jwt::{Claims, JwtKeys, TokenKind};
