use serde::{Deserialize, Serialize};

use super::{Timestamp, UserId};
use crate::error::FieldCheck;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    Member,
    Merchant,
    /// An operator. Nobody can register as one: the first is made by `local-api create-admin`.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "MEMBER",
            Role::Merchant => "MERCHANT",
            Role::Admin => "ADMIN",
        }
    }

    /// Any role's name (filters, stored values).
    pub fn parse(raw: &str) -> Option<Role> {
        match raw {
            "MEMBER" => Some(Role::Member),
            "MERCHANT" => Some(Role::Merchant),
            "ADMIN" => Some(Role::Admin),
            _ => None,
        }
    }

    /// The roles a person may give themselves at registration.
    pub fn parse_registrable(raw: &str) -> Option<Role> {
        Self::parse(raw).filter(|role| *role != Role::Admin)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub email: String,
    pub role: Role,
    pub password_hash: String,
    /// A disabled user's tokens are refused on every route at once (401 `account_disabled`).
    pub is_active: bool,
    /// Every token carries the epoch it was issued in; disabling a user starts a new epoch, so
    /// every token issued before (access and refresh alike) stays dead even after re-enabling.
    pub session_epoch: u32,
    pub created_at: Timestamp,
}

/// A user as the operators' directory lists them: everything but the password hash, which the
/// directory's index does not carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    pub id: UserId,
    pub username: String,
    pub email: String,
    pub role: Role,
    pub is_active: bool,
    pub created_at: Timestamp,
}

impl From<User> for DirectoryEntry {
    fn from(u: User) -> Self {
        DirectoryEntry {
            id: u.id,
            username: u.username,
            email: u.email,
            role: u.role,
            is_active: u.is_active,
            created_at: u.created_at,
        }
    }
}

impl User {
    /// Whether a token issued to this user in `epoch` may still act for them.
    pub fn accepts_session(&self, epoch: u32) -> bool {
        self.is_active && self.session_epoch == epoch
    }
}

pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 150;
pub const PASSWORD_MIN: usize = 8;
/// Argon2 accepts long inputs, but hashing megabytes is a cheap denial of service.
pub const PASSWORD_MAX: usize = 128;
pub const EMAIL_MAX: usize = 254;
/// The longest a username or email may be once canonical (`canonical`), in UTF-8 bytes. NFKC can
/// make one character eighteen ("ﷺ"), and the canonical form is a DynamoDB key: a partition key of
/// at most 2,048 bytes and an index sort key of at most 1,024, so the limit sits under both with
/// room for the key's prefix. Every username or email of up to `USERNAME_MAX`/`EMAIL_MAX` characters
/// of ordinary letters is far below it.
pub const CANONICAL_MAX_BYTES: usize = 1_000;

/// Whether `value`'s canonical form fits in a key (see [`CANONICAL_MAX_BYTES`]).
pub fn fits_canonical(value: &str) -> bool {
    canonical(value).len() <= CANONICAL_MAX_BYTES
}

/// Usernames and emails are unique regardless of case, compatibility forms and cross-script
/// look-alikes, so they are compared in this form (see `domain::text::canonical`).
pub fn canonical(value: &str) -> String {
    super::text::canonical(value)
}

pub fn check_username(check: &mut FieldCheck, username: &str) {
    let len = username.chars().count();
    if !(USERNAME_MIN..=USERNAME_MAX).contains(&len) {
        check.fail(
            "username",
            format!("must be {USERNAME_MIN} to {USERNAME_MAX} characters"),
        );
    } else if let Some(c) = super::text::forbidden_char(username, false) {
        check.fail("username", super::text::forbidden_problem(c));
    } else if !fits_canonical(username) {
        check.fail("username", "is too long once normalised (NFKC)");
    } else if !username
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '@' | '.' | '+' | '-' | '_'))
    {
        check.fail("username", "may contain only letters, digits and @ . + - _");
    }
}

pub fn check_email(check: &mut FieldCheck, email: &str) {
    if let Some(c) = super::text::forbidden_char(email, false) {
        check.fail("email", super::text::forbidden_problem(c));
    } else if !is_valid_email(email) {
        check.fail("email", "must be a valid email address");
    } else if !fits_canonical(email) {
        check.fail("email", "is too long once normalised (NFKC)");
    }
}

pub fn check_password(check: &mut FieldCheck, password: &str) {
    let len = password.chars().count();
    if len < PASSWORD_MIN {
        check.fail(
            "password",
            format!("must be at least {PASSWORD_MIN} characters"),
        );
    } else if len > PASSWORD_MAX {
        check.fail(
            "password",
            format!("must be at most {PASSWORD_MAX} characters"),
        );
    } else if password.chars().all(|c| c.is_ascii_digit()) {
        check.fail("password", "must not be entirely numeric");
    }
}

/// A pragmatic address check: one `@`, a non-empty local part without spaces, and a dotted domain
/// of letter/digit/hyphen labels. Deliverability is not this API's to prove.
pub fn is_valid_email(email: &str) -> bool {
    if email.len() > EMAIL_MAX || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return false;
    }
    // ASCII, as the documented `format: email` (RFC 5321 without the SMTPUTF8 extension) and as
    // Django's validator the seed used: a fuzzer found `Þ¢@…` accepted against the document.
    if !local.bytes().all(|b| b.is_ascii_graphic()) {
        return false;
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn username_problem(name: &str) -> bool {
        let mut check = FieldCheck::new();
        check_username(&mut check, name);
        check.finish().is_err()
    }

    fn password_problem(password: &str) -> bool {
        let mut check = FieldCheck::new();
        check_password(&mut check, password);
        check.finish().is_err()
    }

    #[test]
    fn usernames_follow_the_character_rules() {
        assert!(!username_problem("amy"));
        assert!(!username_problem("amy.lin+shop@tw_-1"));
        assert!(!username_problem("小明的店"));
        assert!(username_problem("am"));
        assert!(username_problem(&"a".repeat(151)));
        assert!(!username_problem(&"a".repeat(150)));
        assert!(username_problem("amy lin"));
        assert!(username_problem("amy/lin"));
    }

    #[test]
    fn passwords_need_length_and_not_only_digits() {
        assert!(password_problem("short1"));
        assert!(password_problem("12345678901"));
        assert!(!password_problem("correct horse"));
        assert!(password_problem(&"a".repeat(PASSWORD_MAX + 1)));
    }

    #[test]
    fn emails_are_checked_pragmatically() {
        assert!(is_valid_email("amy@example.com"));
        assert!(is_valid_email("amy.lin+points@mail.example.com.tw"));
        for bad in [
            "amy",
            "amy@",
            "@example.com",
            "amy@example",
            "amy@@example.com",
            "amy @example.com",
            "amy@-example.com",
            "amy@example..com",
            ".amy@example.com",
            "\u{de}\u{a2}@u.Ioz9u.MvS.Z.i0LsEoK",
            "ＡＬＩＣＥ@example.com",
            "amy@例え.jp",
        ] {
            assert!(!is_valid_email(bad), "{bad} should be refused");
        }
    }

    #[test]
    fn only_members_and_merchants_are_registrable() {
        assert_eq!(Role::parse_registrable("MEMBER"), Some(Role::Member));
        assert_eq!(Role::parse_registrable("MERCHANT"), Some(Role::Merchant));
        assert_eq!(Role::parse_registrable("member"), None);
        assert_eq!(Role::parse_registrable("ADMIN"), None);
        assert_eq!(Role::parse("ADMIN"), Some(Role::Admin));
    }
}
