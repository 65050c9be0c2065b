//! The local API host: the embedded DynamoDB plus every Lambda function's router behind one port.
//! Tests use the same pieces, so what runs locally is what is tested.

pub mod apigw;
pub mod contention;
pub mod ecpay_simulator;
pub mod emulator;
pub mod host;
pub mod in_process;
pub mod openapi;

pub use emulator::Emulator;
pub use host::{into_lambda_request, router, with_source_ip, LocalApi};

/// Every (method, path) the functions serve, for checks against the document and the SAM template.
pub fn routes() -> Vec<(&'static str, &'static str)> {
    [
        fn_auth::ROUTES,
        fn_admin::ROUTES,
        fn_members::ROUTES,
        fn_merchants::ROUTES,
        fn_ecpay_callback::ROUTES,
    ]
    .concat()
}
