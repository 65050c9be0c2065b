//! How a webhook message reaches its endpoint: one HTTPS POST, never a redirect followed, at most
//! [`DELIVERY_TIMEOUT`] for the whole exchange, and only to an address the rules allow — checked
//! after DNS resolution, by the resolver the connection uses, so a name that resolves to a private
//! or metadata address (or is re-pointed there after registration) is never connected to.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::domain::webhook::{forbidden, url_problem, DELIVERY_TIMEOUT};

/// What came of a POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// `None` when no answer came (refused address, DNS, connection, timeout).
    pub status: Option<u16>,
    pub latency: Duration,
    pub error: Option<String>,
}

/// Resolves like the system does, then refuses the whole name if any of its addresses is one a
/// message may not go to (a name with one public and one private address could be made to
/// connect to either).
#[derive(Clone)]
struct CheckedResolver {
    allow_private: bool,
}

type Resolving =
    Pin<Box<dyn Future<Output = std::io::Result<std::vec::IntoIter<SocketAddr>>> + Send>>;

impl tower_service::Service<Name> for CheckedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Resolving;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move { resolve_checked(name.as_str(), allow_private).await })
    }
}

/// `host`'s addresses, if every one of them may receive a message.
pub async fn resolve_checked(
    host: &str,
    allow_private: bool,
) -> std::io::Result<std::vec::IntoIter<SocketAddr>> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
    if addresses.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host} has no address"),
        ));
    }
    for address in &addresses {
        if let Err(why) = forbidden(address.ip(), allow_private) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{host} resolves to a refused address: {why}"),
            ));
        }
    }
    Ok(addresses.into_iter())
}

type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<HttpConnector<CheckedResolver>>,
    http_body_util::Full<bytes::Bytes>,
>;

/// The process's webhook client (built on first use: only the sender delivers).
pub struct WebhookHttp {
    allow_private: bool,
    client: std::sync::OnceLock<Result<Client, String>>,
}

impl WebhookHttp {
    pub fn new(allow_private: bool) -> Self {
        WebhookHttp {
            allow_private,
            client: std::sync::OnceLock::new(),
        }
    }

    fn client(&self) -> Result<&Client, String> {
        self.client
            .get_or_init(|| {
                let mut http = HttpConnector::new_with_resolver(CheckedResolver {
                    allow_private: self.allow_private,
                });
                http.enforce_http(false);
                http.set_connect_timeout(Some(Duration::from_secs(5)));
                let builder = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_native_roots()
                    .map_err(|e| format!("no root certificates: {e}"))?;
                let connector = if self.allow_private {
                    builder.https_or_http().enable_http1().wrap_connector(http)
                } else {
                    builder.https_only().enable_http1().wrap_connector(http)
                };
                Ok(
                    hyper_util::client::legacy::Client::builder(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    // An idle connection kept between a warm sender's deliveries is reused only for
                    // the same host, which the resolver checked when it was opened.
                    .pool_idle_timeout(Duration::from_secs(30))
                    .build(connector),
                )
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// POSTs `body` to `url` with `headers`. Never fails: what went wrong is in [`Sent`].
    pub async fn post(&self, url: &str, headers: &[(&str, String)], body: String) -> Sent {
        let started = Instant::now();
        let failed = |error: String| Sent {
            status: None,
            latency: started.elapsed(),
            error: Some(error),
        };
        // An address written in the URL is not resolved, so it is checked here.
        if let Err(problem) = url_problem(url, self.allow_private) {
            return failed(format!("the URL is refused: {problem}"));
        }
        let client = match self.client() {
            Ok(client) => client,
            Err(problem) => return failed(problem),
        };
        let mut request = http::Request::post(url);
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let request = match request.body(http_body_util::Full::new(bytes::Bytes::from(body))) {
            Ok(request) => request,
            Err(err) => return failed(format!("bad request: {err}")),
        };
        match tokio::time::timeout(DELIVERY_TIMEOUT, client.request(request)).await {
            Ok(Ok(response)) => Sent {
                status: Some(response.status().as_u16()),
                latency: started.elapsed(),
                error: None,
            },
            Ok(Err(err)) => failed(describe(&err)),
            Err(_) => failed(format!("no answer within {}s", DELIVERY_TIMEOUT.as_secs())),
        }
    }
}

/// The innermost cause (a refused address, a DNS failure, a refused connection) in one line.
fn describe(err: &hyper_util::client::legacy::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    let mut text = err.to_string();
    while let Some(cause) = source {
        text = cause.to_string();
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check the connection's resolver makes, on a name the URL rules alone would not see
    /// through: `localhost` resolves (through the hosts file) to loopback only.
    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_unless_private_addresses_are_allowed() {
        let refused = resolve_checked("localhost", false)
            .await
            .expect_err("loopback refused");
        assert_eq!(refused.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(refused.to_string().contains("loopback"), "{refused}");
        let allowed: Vec<SocketAddr> = resolve_checked("localhost", true)
            .await
            .expect("allowed locally")
            .collect();
        assert!(allowed.iter().all(|a| a.ip().is_loopback()));
    }

    /// At delivery, an address written in the URL is refused before any connection.
    #[tokio::test]
    async fn a_delivery_to_a_private_or_metadata_address_never_connects() {
        let http = WebhookHttp::new(false);
        for url in [
            "https://10.0.0.1/hook",
            "https://169.254.169.254/latest/meta-data/",
        ] {
            let sent = http.post(url, &[], "{}".into()).await;
            assert_eq!(sent.status, None);
            assert!(
                sent.error
                    .as_deref()
                    .unwrap_or_default()
                    .contains("refused"),
                "{sent:?}"
            );
        }
    }
}
