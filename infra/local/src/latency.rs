//! A model of DynamoDB's latency as deployed, for the local host, tests and benchmarks
//! (`DYNAMODB_LATENCY=p50=4ms,p99=12ms`): each call waits, before it reaches the embedded engine, a
//! time drawn from a log-normal distribution with that median and 99th percentile. The engine answers
//! in microseconds; DynamoDB over the network does not, and what a user waits on is the sum of a
//! route's round trips.
//!
//! Sources and choices:
//! - AWS: "for most atomic operations, such as GetItem and PutItem, you can expect an average latency
//!   in single-digit milliseconds" (AWS re:Post knowledge center, "Why is my DynamoDB latency high?");
//!   the `SuccessfulRequestLatency` metric "does not take into account network latency or client-side
//!   activity", so the figures given here are the whole round trip as the caller sees it, from inside
//!   the region.
//! - Log-normal: latency is positive with a long right tail; two percentiles fix its two parameters
//!   (`σ = ln(p99/p50) / 2.326`, the 99th percentile of the standard normal).
//! - A transaction is two phases, prepare then commit (Idziorek et al., "Distributed Transactions at
//!   Scale in Amazon DynamoDB", USENIX ATC 2023, §4): `TransactWriteItems` and `TransactGetItems`
//!   wait two draws.
//!
//! One job (the model); the caller picks the percentiles.

use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use rand::Rng;

/// The 99th percentile of the standard normal distribution.
const Z99: f64 = 2.326_347_874;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyModel {
    pub p50: Duration,
    pub p99: Duration,
}

impl LatencyModel {
    /// `p50=4ms,p99=12ms` (milliseconds, p99 at least p50).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let problem = || format!("DYNAMODB_LATENCY must be p50=<ms>ms,p99=<ms>ms, got {raw:?}");
        let mut p50 = None;
        let mut p99 = None;
        for part in raw.split(',') {
            let (name, value) = part.trim().split_once('=').ok_or_else(problem)?;
            let millis: f64 = value
                .trim()
                .strip_suffix("ms")
                .and_then(|v| v.trim().parse().ok())
                .filter(|v: &f64| v.is_finite() && *v > 0.0 && *v < 10_000.0)
                .ok_or_else(problem)?;
            let value = Duration::from_secs_f64(millis / 1000.0);
            match name.trim() {
                "p50" => p50 = Some(value),
                "p99" => p99 = Some(value),
                _ => return Err(problem()),
            }
        }
        match (p50, p99) {
            (Some(p50), Some(p99)) if p99 >= p50 => Ok(LatencyModel { p50, p99 }),
            _ => Err(problem()),
        }
    }

    /// The model `DYNAMODB_LATENCY` asks for, if any.
    pub fn from_env() -> Result<Option<Self>, String> {
        match std::env::var("DYNAMODB_LATENCY") {
            Ok(raw) if !raw.trim().is_empty() && raw.trim() != "none" => {
                Self::parse(&raw).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// One draw.
    pub fn draw(&self) -> Duration {
        let median = self.p50.as_secs_f64();
        let sigma = (self.p99.as_secs_f64() / median).ln() / Z99;
        // Box–Muller: a standard normal from two uniforms.
        let (u1, u2): (f64, f64) = {
            let mut rng = rand::thread_rng();
            (rng.gen_range(f64::EPSILON..1.0), rng.gen())
        };
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        Duration::from_secs_f64(median * (sigma * z).exp())
    }

    /// `inner` with each call delayed.
    pub fn wrap(&self, inner: SharedHttpClient) -> SharedHttpClient {
        SharedHttpClient::new(LatencyClient {
            inner,
            model: *self,
        })
    }
}

#[derive(Debug, Clone)]
struct LatencyClient {
    inner: SharedHttpClient,
    model: LatencyModel,
}

#[derive(Debug)]
struct LatencyConnector {
    inner: SharedHttpConnector,
    model: LatencyModel,
}

impl HttpClient for LatencyClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(LatencyConnector {
            inner: self.inner.http_connector(settings, components),
            model: self.model,
        })
    }
}

/// Waits `wait` to within the OS's sleep precision (tens of microseconds). tokio's timer rounds
/// every wait up to its next millisecond tick, which added ~0.5–1 ms to each modelled call that AWS
/// does not add; a blocking-pool thread's `sleep` does not round.
async fn wait_precisely(wait: Duration) {
    if tokio::task::spawn_blocking(move || std::thread::sleep(wait))
        .await
        .is_err()
    {
        // The pool is shutting down: the host is stopping, the wait no longer matters.
    }
}

impl HttpConnector for LatencyConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let phases = match crate::in_process::operation_of(&request).as_str() {
            "TransactWriteItems" | "TransactGetItems" => 2,
            _ => 1,
        };
        let wait: Duration = (0..phases).map(|_| self.model.draw()).sum();
        let inner = self.inner.clone();
        HttpConnectorFuture::new(async move {
            wait_precisely(wait).await;
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_parsed_and_the_draws_have_them() {
        let model = LatencyModel::parse("p50=4ms,p99=12ms").unwrap();
        assert_eq!(model.p50, Duration::from_millis(4));
        for bad in [
            "p50=4ms",
            "p50=4,p99=12",
            "p50=12ms,p99=4ms",
            "p90=4ms,p99=5ms",
            "p50=-1ms,p99=2ms",
        ] {
            assert!(LatencyModel::parse(bad).is_err(), "{bad}");
        }
        let mut draws: Vec<Duration> = (0..20_000).map(|_| model.draw()).collect();
        draws.sort();
        let p50 = draws[10_000].as_secs_f64() * 1000.0;
        let p99 = draws[19_800].as_secs_f64() * 1000.0;
        assert!((3.7..4.3).contains(&p50), "p50 {p50}");
        assert!((10.5..13.5).contains(&p99), "p99 {p99}");
    }
}
