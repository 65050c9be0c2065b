//! Who may call a route, declared once with its handler in `shared::api!` and enforced by the router
//! before the handler runs: the token (signature, expiry, type), the role, and the session (the user
//! exists, is enabled, and the token is of their current session epoch). The same declaration writes
//! each operation's `security` in the API document, so the document cannot promise what the code
//! does not check.

use lambda_http::Request;
use utoipa::openapi::security::SecurityRequirement;

use crate::domain::{Role, User, UserId};
use crate::error::AppError;
use crate::AppContext;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// `None`: no token at all. `Some(None)`: any signed-in role. `Some(Some(role))`: that role only.
    signed_in: Option<Option<Role>>,
    /// Whether the router reads the user to check the session, or the service does it in a read it
    /// makes anyway (the caller then comes with `user: None`).
    session_in_read: bool,
}

impl Access {
    /// No token: the route proves its caller another way (ECPay's CheckMacValue, a signed link) or
    /// needs none (sign-up, login, refresh, logout carry their own credentials in the body).
    pub const PUBLIC: Access = Access {
        signed_in: None,
        session_in_read: false,
    };
    /// Any signed-in user, whatever the role.
    pub const SIGNED_IN: Access = Access::role(None);
    pub const MEMBER: Access = Access::role(Some(Role::Member));
    pub const MERCHANT: Access = Access::role(Some(Role::Merchant));
    pub const OPERATOR: Access = Access::role(Some(Role::Admin));
    /// A member's route whose service checks the session inside the read it makes anyway (the
    /// redemption's `BatchGetItem`), so the route costs no DynamoDB call of its own: the router checks
    /// the token and the role, and the service calls `services::auth::session_user` on the profile it
    /// read, before anything else it decides.
    pub const MEMBER_SESSION_IN_READ: Access = Access {
        signed_in: Some(Some(Role::Member)),
        session_in_read: true,
    };

    const fn role(role: Option<Role>) -> Access {
        Access {
            signed_in: Some(role),
            session_in_read: false,
        }
    }

    pub fn is_public(&self) -> bool {
        self.signed_in.is_none()
    }

    /// The one role allowed, if the route is for one role.
    pub fn role_required(&self) -> Option<Role> {
        self.signed_in.flatten()
    }

    /// The operation's `security` in the API document: the bearer scheme, or none.
    pub fn security(&self) -> Option<Vec<SecurityRequirement>> {
        (!self.is_public()).then(|| {
            vec![SecurityRequirement::new(
                "bearer",
                std::iter::empty::<String>(),
            )]
        })
    }

    /// Checks `req` against this access: `None` for a public route, else the caller.
    pub async fn admit(&self, ctx: &AppContext, req: &Request) -> Result<Option<Caller>, AppError> {
        let Some(role) = self.signed_in else {
            return Ok(None);
        };
        let claims = super::authenticate(req, &ctx.keys, role)?;
        let user = if self.session_in_read {
            None
        } else {
            Some(ctx.auth().require_session(&claims).await?)
        };
        Ok(Some(Caller {
            id: claims.sub,
            session_epoch: claims.ep,
            user,
        }))
    }
}

/// Who is calling, as the router admitted them.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: UserId,
    /// The session epoch the token was issued in (what a deferred session check compares).
    pub session_epoch: u32,
    /// The user as the session check read them; `None` where the service checks the session itself.
    pub user: Option<User>,
}
