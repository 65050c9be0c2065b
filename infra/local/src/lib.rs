//! The local API host: the embedded DynamoDB plus every Lambda function's router behind one port.
//! Tests use the same pieces, so what runs locally is what is tested.

pub mod apigw;
pub mod contention;
pub mod cors;
pub mod ecpay_cards;
pub mod ecpay_invoices;
pub mod ecpay_simulator;
pub mod emulator;
pub mod faults;
pub mod host;
pub mod in_process;
pub mod latency;
pub mod openapi;
pub mod webhooks;

pub use emulator::Emulator;
pub use host::{into_lambda_request, router, with_source_ip, LocalApi};

/// Each function binary with its router (built from its part of the API document).
pub fn routers() -> [(&'static str, &'static shared::http::Router); 5] {
    [
        ("fn-auth", fn_auth::AuthApi::router()),
        ("fn-admin", fn_admin::AdminApi::router()),
        ("fn-members", fn_members::MembersApi::router()),
        ("fn-merchants", fn_merchants::MerchantsApi::router()),
        (
            "fn-ecpay-callback",
            fn_ecpay_callback::PaymentsApi::router(),
        ),
    ]
}

/// Every (method, path) the functions serve, for checks against the document and the SAM template.
pub fn routes() -> Vec<(&'static str, &'static str)> {
    routers()
        .iter()
        .flat_map(|(_, router)| router.keys().iter().map(|key| (key.method, key.template)))
        .collect()
}
