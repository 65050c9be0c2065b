//! The library every Lambda function of the points-redemption backend is built on.
//!
//! Layers, outermost first: [`http`] (request parsing and the one error→HTTP mapping), [`services`]
//! (use cases), [`domain`] (types and rules), [`store`] (the single DynamoDB table).

pub mod auth;
pub mod clock;
pub mod config;
pub mod context;
pub mod domain;
pub mod ecpay;
pub mod ecpay_credit;
pub mod ecpay_invoice;
pub mod error;
pub mod gateway;
pub mod http;
pub mod lambda;
pub mod observe;
pub mod pagination;
pub mod secrets;
pub mod services;
pub mod signing;
pub mod store;
pub mod telemetry;
pub mod webhook_http;
pub mod webhook_queue;

pub use config::Config;
pub use context::AppContext;
pub use error::AppError;
