//! HS256 JSON Web Tokens. Access and refresh tokens share a key, so the `typ` claim is what stops
//! one being used as the other.

use std::time::Duration;

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::domain::{Role, UserId};
use crate::error::AppError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Refresh,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: UserId,
    pub role: Role,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub typ: TokenKind,
    /// Refresh tokens only: the rotation family this token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<String>,
    /// The user's session epoch when the token was issued: an operator disabling the user starts a
    /// new one, which ends every token issued before (see `User::accepts_session`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ep: u32,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// The signing key and, during a rotation, the key before it.
///
/// Every token names its key in the header's `kid`, a fingerprint of the secret (an HMAC of a fixed
/// label under the secret, so it reveals nothing about it). Verification picks the key by `kid`:
/// the current one, or `JWT_PREVIOUS_SECRET`'s, which is accepted but never used to sign. A token
/// without `kid` (issued before key ids existed) is checked against the current key only.
#[derive(Clone)]
pub struct JwtKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    previous: Option<(String, DecodingKey)>,
    access_ttl: Duration,
    refresh_ttl: Duration,
    /// Expiry is judged by this clock too (see [`JwtKeys::verify`]).
    clock: Clock,
}

/// The key id of a secret.
pub fn key_id(secret: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(b"points-redemption jwt key id");
    mac.finalize().into_bytes()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A freshly signed token with the claims it carries.
#[derive(Debug, Clone)]
pub struct SignedToken {
    pub token: String,
    pub claims: Claims,
}

impl JwtKeys {
    pub fn new(secret: &[u8], access_ttl: Duration, refresh_ttl: Duration) -> Self {
        JwtKeys {
            kid: key_id(secret),
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            previous: None,
            access_ttl,
            refresh_ttl,
            clock: Clock::system(),
        }
    }

    /// Judges expiry by `clock` (the context's) as well as by the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Also accepts tokens signed with `previous` (the secret before a rotation).
    pub fn with_previous(mut self, previous: Option<&[u8]>) -> Self {
        self.previous = previous.map(|p| (key_id(p), DecodingKey::from_secret(p)));
        self
    }

    /// The `kid` this instance signs with.
    pub fn key_id(&self) -> &str {
        &self.kid
    }

    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    pub fn issue_access(
        &self,
        user_id: &UserId,
        role: Role,
        epoch: u32,
        now: i64,
    ) -> Result<SignedToken, AppError> {
        self.issue_access_as(user_id, role, epoch, now, &uuid::Uuid::new_v4().to_string())
    }

    /// An access token with a given id: the same claims give the same token (HS256 is
    /// deterministic), which is how a racing refresh gets the very pair already issued.
    pub fn issue_access_as(
        &self,
        user_id: &UserId,
        role: Role,
        epoch: u32,
        now: i64,
        jti: &str,
    ) -> Result<SignedToken, AppError> {
        self.sign(Claims {
            sub: user_id.clone(),
            role,
            iat: now,
            exp: now + self.access_ttl.as_secs() as i64,
            jti: jti.to_string(),
            typ: TokenKind::Access,
            fam: None,
            ep: epoch,
        })
    }

    pub fn issue_refresh(
        &self,
        user_id: &UserId,
        role: Role,
        epoch: u32,
        family: &str,
        now: i64,
    ) -> Result<SignedToken, AppError> {
        self.issue_refresh_as(
            user_id,
            role,
            epoch,
            family,
            now,
            &uuid::Uuid::new_v4().to_string(),
        )
    }

    /// A refresh token with a given id (see [`JwtKeys::issue_access_as`]).
    pub fn issue_refresh_as(
        &self,
        user_id: &UserId,
        role: Role,
        epoch: u32,
        family: &str,
        now: i64,
        jti: &str,
    ) -> Result<SignedToken, AppError> {
        self.sign(Claims {
            sub: user_id.clone(),
            role,
            iat: now,
            exp: now + self.refresh_ttl.as_secs() as i64,
            jti: jti.to_string(),
            typ: TokenKind::Refresh,
            fam: Some(family.to_string()),
            ep: epoch,
        })
    }

    fn sign(&self, claims: Claims) -> Result<SignedToken, AppError> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        let token = encode(&header, &claims, &self.encoding).map_err(AppError::internal)?;
        Ok(SignedToken { token, claims })
    }

    /// Verifies signature, algorithm (HS256 only: `none` and every other algorithm are refused),
    /// expiry and token type. Every failure is a 401: `token_expired` for a genuine token past its
    /// time, `invalid_token` for anything else.
    ///
    /// Expiry is checked twice: by jsonwebtoken against the system clock, and against the
    /// context's [`Clock`] with the same rule (expired once `exp` is in the past, no leeway). In
    /// production both are the system clock; a test that moves its clock forward sees tokens expire
    /// without sleeping.
    pub fn verify(&self, token: &str, expected: TokenKind) -> Result<Claims, AppError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "iat", "sub", "jti"]);
        let kid = jsonwebtoken::decode_header(token)
            .map_err(|_| invalid_token())?
            .kid;
        let key = match kid.as_deref() {
            None => &self.decoding,
            Some(kid) if kid == self.kid => &self.decoding,
            Some(kid) => match &self.previous {
                Some((previous_kid, previous)) if previous_kid == kid => previous,
                _ => return Err(invalid_token()),
            },
        };
        // Expiry is told apart (`token_expired`): jsonwebtoken checks it only once the signature
        // holds, so it says nothing of a forged token, and a client knows to refresh.
        let claims = decode::<Claims>(token, key, &validation)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => token_expired(),
                _ => invalid_token(),
            })?
            .claims;
        if claims.exp < self.clock.unix_now() {
            return Err(token_expired());
        }
        if claims.typ != expected {
            return Err(AppError::unauthenticated(
                "wrong_token_type",
                match expected {
                    TokenKind::Access => "an access token is required",
                    TokenKind::Refresh => "a refresh token is required",
                },
            ));
        }
        if expected == TokenKind::Refresh && claims.fam.is_none() {
            return Err(invalid_token());
        }
        Ok(claims)
    }
}

fn invalid_token() -> AppError {
    AppError::unauthenticated("invalid_token", "the token is invalid")
}

/// A token we signed whose time is up: an access token is refreshed, a refresh token means logging
/// in again.
fn token_expired() -> AppError {
    AppError::unauthenticated("token_expired", "the token has expired")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserId {
        UserId::parse("0191b1f0-c2a3-7e4c-9e1d-7b2a3c4d5e6f").unwrap()
    }
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn keys() -> JwtKeys {
        JwtKeys::new(
            SECRET,
            Duration::from_secs(900),
            Duration::from_secs(1_209_600),
        )
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn code_of(err: AppError) -> &'static str {
        match err {
            AppError::Unauthenticated { code, .. } => code,
            other => panic!("expected 401, got {other:?}"),
        }
    }

    #[test]
    fn an_access_token_round_trips() {
        let signed = keys()
            .issue_access(&user(), Role::Member, 0, now())
            .unwrap();
        let claims = keys().verify(&signed.token, TokenKind::Access).unwrap();
        assert_eq!(claims, signed.claims);
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn token_types_are_not_interchangeable() {
        let access = keys()
            .issue_access(&user(), Role::Member, 0, now())
            .unwrap();
        let refresh = keys()
            .issue_refresh(&user(), Role::Member, 0, "fam", now())
            .unwrap();
        assert_eq!(
            code_of(
                keys()
                    .verify(&access.token, TokenKind::Refresh)
                    .unwrap_err()
            ),
            "wrong_token_type"
        );
        assert_eq!(
            code_of(
                keys()
                    .verify(&refresh.token, TokenKind::Access)
                    .unwrap_err()
            ),
            "wrong_token_type"
        );
    }

    #[test]
    fn an_expired_token_is_refused() {
        let signed = keys()
            .issue_access(&user(), Role::Member, 0, now() - 1000)
            .unwrap();
        assert_eq!(
            code_of(keys().verify(&signed.token, TokenKind::Access).unwrap_err()),
            "token_expired"
        );
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let other = JwtKeys::new(
            b"another-secret-another-secret-!!",
            Duration::from_secs(900),
            Duration::from_secs(900),
        );
        let signed = other
            .issue_access(&user(), Role::Merchant, 0, now())
            .unwrap();
        assert_eq!(
            code_of(keys().verify(&signed.token, TokenKind::Access).unwrap_err()),
            "invalid_token"
        );
    }

    #[test]
    fn after_a_rotation_tokens_of_the_previous_secret_still_verify_but_are_never_issued() {
        let old = keys();
        let old_token = old.issue_access(&user(), Role::Member, 0, now()).unwrap();
        let rotated = JwtKeys::new(
            b"the-next-secret-the-next-secret-!",
            Duration::from_secs(900),
            Duration::from_secs(900),
        )
        .with_previous(Some(SECRET));
        assert_ne!(rotated.key_id(), old.key_id());
        let claims = rotated.verify(&old_token.token, TokenKind::Access).unwrap();
        assert_eq!(claims.sub, user());
        let new_token = rotated
            .issue_access(&UserId::generate(), Role::Member, 0, now())
            .unwrap();
        let header = jsonwebtoken::decode_header(&new_token.token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(rotated.key_id()));
        // The old deployment does not know the new key; once the previous secret is dropped, its
        // tokens stop working.
        assert_eq!(
            code_of(old.verify(&new_token.token, TokenKind::Access).unwrap_err()),
            "invalid_token"
        );
        let after = JwtKeys::new(
            b"the-next-secret-the-next-secret-!",
            Duration::from_secs(900),
            Duration::from_secs(900),
        );
        assert_eq!(
            code_of(
                after
                    .verify(&old_token.token, TokenKind::Access)
                    .unwrap_err()
            ),
            "invalid_token"
        );
    }

    #[test]
    fn a_token_without_a_key_id_is_checked_against_the_current_key_only() {
        let signed = keys()
            .issue_access(&user(), Role::Member, 0, now())
            .unwrap();
        let legacy = encode(
            &Header::new(Algorithm::HS256),
            &signed.claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(keys().verify(&legacy, TokenKind::Access).is_ok());
        let rotated = JwtKeys::new(
            b"the-next-secret-the-next-secret-!",
            Duration::from_secs(900),
            Duration::from_secs(900),
        )
        .with_previous(Some(SECRET));
        assert_eq!(
            code_of(rotated.verify(&legacy, TokenKind::Access).unwrap_err()),
            "invalid_token"
        );
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let signed = keys()
            .issue_access(&user(), Role::Member, 0, now())
            .unwrap();
        let payload = signed.token.split('.').nth(1).unwrap().to_string();
        for header in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"HS512","typ":"JWT"}"#,
            r#"{"alg":"RS256","typ":"JWT"}"#,
        ] {
            let forged = format!("{}.{}.", URL_SAFE_NO_PAD.encode(header), payload);
            assert_eq!(
                code_of(keys().verify(&forged, TokenKind::Access).unwrap_err()),
                "invalid_token"
            );
        }
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &signed.claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(
            code_of(keys().verify(&hs512, TokenKind::Access).unwrap_err()),
            "invalid_token"
        );
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let signed = keys()
            .issue_access(&user(), Role::Member, 0, now())
            .unwrap();
        let mut parts: Vec<String> = signed.token.split('.').map(str::to_string).collect();
        let mut claims = signed.claims.clone();
        claims.role = Role::Merchant;
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        assert_eq!(
            code_of(
                keys()
                    .verify(&parts.join("."), TokenKind::Access)
                    .unwrap_err()
            ),
            "invalid_token"
        );
    }
}
