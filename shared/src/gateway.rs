//! How ECPay's QueryTradeInfo is reached: a form POSTed to a URL, its status and body back. On
//! Lambda that is HTTPS to ECPay ([`HttpsTransport`]); the local host and the tests hand the form to
//! their ECPay simulator in process. Signing the request and verifying the answer happen above this,
//! in `services::points`, the same for every transport.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub type TransportFuture<'a> =
    Pin<Box<dyn Future<Output = Result<GatewayReply, String>> + Send + 'a>>;

/// What came back from a POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayReply {
    pub status: u16,
    pub body: String,
}

pub trait GatewayTransport: Send + Sync {
    fn post_form<'a>(
        &'a self,
        url: &'a str,
        form: &'a BTreeMap<String, String>,
    ) -> TransportFuture<'a>;

    /// POSTs `body` as `application/json` (ECPay's e-invoice API). A transport that does not
    /// reach that API says so.
    fn post_json<'a>(&'a self, url: &'a str, body: &'a str) -> TransportFuture<'a> {
        let _ = body;
        Box::pin(async move { Err(format!("this transport does not serve {url}")) })
    }
}

/// A whole query must answer within this: ECPay waits about 10 s for a notification's `1|OK`, and
/// in production the notification path queries before it answers.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<bytes::Bytes>,
>;

/// HTTPS (and plain HTTP, for a local URL) with the system's root certificates, loaded on the first
/// query: most functions never query ECPay, so none of them pays for it at start-up.
#[derive(Default)]
pub struct HttpsTransport {
    client: std::sync::OnceLock<Result<HttpsClient, String>>,
}

impl HttpsTransport {
    pub fn new() -> Self {
        Self::default()
    }

    fn client(&self) -> Result<&HttpsClient, String> {
        self.client
            .get_or_init(|| {
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_native_roots()
                    .map_err(|e| format!("no root certificates: {e}"))?
                    .https_or_http()
                    .enable_http1()
                    .build();
                Ok(
                    hyper_util::client::legacy::Client::builder(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .build(connector),
                )
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl GatewayTransport for HttpsTransport {
    fn post_form<'a>(
        &'a self,
        url: &'a str,
        form: &'a BTreeMap<String, String>,
    ) -> TransportFuture<'a> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter())
            .finish();
        self.post(url, "application/x-www-form-urlencoded", body)
    }

    fn post_json<'a>(&'a self, url: &'a str, body: &'a str) -> TransportFuture<'a> {
        self.post(url, "application/json", body.to_string())
    }
}

impl HttpsTransport {
    fn post<'a>(
        &'a self,
        url: &'a str,
        content_type: &'static str,
        body: String,
    ) -> TransportFuture<'a> {
        Box::pin(async move {
            use http_body_util::BodyExt;
            let request = http::Request::post(url)
                .header(http::header::CONTENT_TYPE, content_type)
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .map_err(|e| format!("bad request to {url}: {e}"))?;
            let client = self.client()?;
            let exchange = async {
                let response = client
                    .request(request)
                    .await
                    .map_err(|e| format!("POST {url}: {e}"))?;
                let status = response.status().as_u16();
                let bytes = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| format!("reading the answer of {url}: {e}"))?
                    .to_bytes();
                Ok(GatewayReply {
                    status,
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                })
            };
            tokio::time::timeout(QUERY_TIMEOUT, exchange)
                .await
                .map_err(|_| format!("POST {url}: no answer within {QUERY_TIMEOUT:?}"))?
        })
    }
}
