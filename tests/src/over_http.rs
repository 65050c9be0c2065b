//! The API over real HTTP, for the benchmarks that run the local host on a socket: JSON calls, a
//! member signed up and in, and points bought through ECPay's signed notification.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use serde_json::{json, Value};

pub struct HttpApi {
    pub base: String,
    pub client: Client<HttpConnector, Full<Bytes>>,
}

impl HttpApi {
    /// A `POST` of `body` as JSON, with a bearer token when given: (status, JSON answer or null).
    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> (u16, Value) {
        let mut request = http::Request::post(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request");
        let response = self.client.request(request).await.expect("an HTTP answer");
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Registers `username` and signs in; returns the access token.
    pub async fn signed_up(&self, username: &str, role: &str) -> String {
        let (status, answer) = self
            .post(
                "/api/auth/register/",
                json!({"username": username, "email": format!("{username}@example.com"), "password": crate::PASSWORD, "role": role}),
                None,
            )
            .await;
        assert_eq!(status, 201, "{answer}");
        let (_, login) = self
            .post(
                "/api/auth/login/",
                json!({"username": username, "password": crate::PASSWORD}),
                None,
            )
            .await;
        login["access"].as_str().expect("access token").to_string()
    }

    /// `amount` TWD of points for the member holding `token`: a recharge, then ECPay's notification.
    pub async fn buy_points(&self, token: &str, amount: i64) {
        let (status, checkout) = self
            .post(
                "/api/members/points/recharge/",
                json!({"amount": amount}),
                Some(token),
            )
            .await;
        assert_eq!(status, 201, "{checkout}");
        let form = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(crate::paid_notification(&checkout).iter())
            .finish();
        let request = http::Request::post(format!("{}/api/payments/ecpay/callback/", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form)))
            .expect("request");
        let answer = self.client.request(request).await.expect("an HTTP answer");
        assert_eq!(answer.status().as_u16(), 200);
    }
}

/// A field of /proc/self/status in MB (`VmRSS:` now, `VmHWM:` the peak).
pub fn memory_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// A fresh local host (its own in-memory emulator), shaped by `shape` (caps, timeouts), served on a
/// loopback socket as `cargo run -p local-api` serves it: its address, and the server's task (abort
/// it to stop; the emulator lives as long as the server).
pub async fn local_host_on_a_socket(
    shape: impl FnOnce(local_api::LocalApi) -> local_api::LocalApi,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let emulator = local_api::Emulator::in_memory().expect("start emulator");
    let config = shared::Config::local(
        emulator.endpoint().to_string(),
        "points-test".into(),
        crate::TEST_SECRET.to_vec(),
    );
    let host = shape(
        local_api::LocalApi::connect(config)
            .await
            .expect("prepare table"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address = listener.local_addr().expect("the bound address");
    let server = tokio::spawn(async move {
        let _emulator = emulator;
        let served = axum::serve(
            listener,
            local_api::router(std::sync::Arc::new(host))
                .into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
        if let Err(err) = served {
            panic!("the local host stopped serving: {err}");
        }
    });
    (address, server)
}
