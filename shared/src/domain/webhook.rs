//! Webhooks as the Standard Webhooks specification 1.0 defines them
//! (<https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>):
//! which order change is which event, how a message is signed, when a failed delivery is tried
//! again, and which URLs may receive one. Pure: no I/O, no clock but the `now` passed in.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{DeliveryId, OrderId, OrderStatus, Timestamp, UserId, WebhookId};

/// A merchant keeps at most this many endpoints (409 `too_many_webhooks`).
pub const ENDPOINTS_MAX: u32 = 5;
/// A message body is at most this long (the order without its address stays far below it).
pub const BODY_MAX_BYTES: usize = 20 * 1024;
/// One delivery's whole exchange (connect, send, answer) must end within this.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);
/// After a rotation the previous secret signs too, for this long, so a receiver can switch over.
pub const SECRET_OVERLAP: Duration = Duration::from_secs(24 * 3600);
/// An endpoint whose deliveries have all failed for this long is disabled (and shown so).
pub const DISABLE_AFTER_FAILING: Duration = Duration::from_secs(5 * 24 * 3600);
/// A URL is at most this long.
pub const URL_MAX: usize = 2048;

/// When each attempt is made, counted from the previous one's failure: the schedule of the
/// specification's "Retry schedule" example (immediately, 5 seconds, 5 minutes, 30 minutes,
/// 2 hours, 5 hours, 10 hours, 10 hours), so a message is tried 8 times over about 27.5 hours.
pub const RETRY_SCHEDULE: [Duration; 8] = [
    Duration::ZERO,
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// The wait before attempt `attempt` (1-based); `None` once the schedule is used up.
pub fn delay_before_attempt(attempt: u32) -> Option<Duration> {
    let index = usize::try_from(attempt.checked_sub(1)?).ok()?;
    RETRY_SCHEDULE.get(index).copied()
}

/// What a message tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "order.placed")]
    OrderPlaced,
    #[serde(rename = "order.shipped")]
    OrderShipped,
    #[serde(rename = "order.completed")]
    OrderCompleted,
    #[serde(rename = "order.cancelled")]
    OrderCancelled,
    /// Sent on request (`POST …/test/`), to every endpoint whatever it subscribed to.
    #[serde(rename = "webhook.test")]
    WebhookTest,
}

impl EventType {
    /// The events an endpoint may subscribe to.
    pub const SUBSCRIBABLE: [EventType; 4] = [
        EventType::OrderPlaced,
        EventType::OrderShipped,
        EventType::OrderCompleted,
        EventType::OrderCancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::OrderPlaced => "order.placed",
            EventType::OrderShipped => "order.shipped",
            EventType::OrderCompleted => "order.completed",
            EventType::OrderCancelled => "order.cancelled",
            EventType::WebhookTest => "webhook.test",
        }
    }

    /// One of [`EventType::SUBSCRIBABLE`], by its name.
    pub fn subscribable(raw: &str) -> Option<Self> {
        Self::SUBSCRIBABLE.into_iter().find(|t| t.as_str() == raw)
    }
}

/// The event an order's change is, if any: a new order is `order.placed`; a change of status is
/// the event of the status it reached. Other changes (an address redacted) tell nothing.
pub fn order_event(before: Option<OrderStatus>, after: OrderStatus) -> Option<EventType> {
    match (before, after) {
        (None, _) => Some(EventType::OrderPlaced),
        (Some(before), after) if before == after => None,
        (Some(_), OrderStatus::Shipped) => Some(EventType::OrderShipped),
        (Some(_), OrderStatus::Completed) => Some(EventType::OrderCompleted),
        (Some(_), OrderStatus::Cancelled) => Some(EventType::OrderCancelled),
        (Some(_), OrderStatus::Pending) => None,
    }
}

/// The `webhook-id` of an order's event: the same for every endpoint and every attempt, and for the
/// same change seen twice (a stream record handed over again), so a receiver drops duplicates by
/// it. An order reaches each status at most once, so (order, event) names one change.
pub fn order_event_id(order: &OrderId, event: EventType) -> String {
    format!(
        "msg_{}_{}",
        order.as_str().replace('-', ""),
        event.as_str().replace('.', "_")
    )
}

/// An endpoint's signing secret: `whsec_` and the Base64 of 32 random bytes (the specification
/// allows 24 to 64). The bytes after the prefix, decoded, are the HMAC key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SigningSecret(String);

const SECRET_PREFIX: &str = "whsec_";

impl SigningSecret {
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        SigningSecret(format!("{SECRET_PREFIX}{}", BASE64.encode(key)))
    }

    /// A secret in the specification's form with a key of 24 to 64 bytes.
    pub fn parse(raw: &str) -> Option<Self> {
        let key = BASE64.decode(raw.strip_prefix(SECRET_PREFIX)?).ok()?;
        (24..=64)
            .contains(&key.len())
            .then(|| SigningSecret(raw.to_string()))
    }

    fn key(&self) -> Vec<u8> {
        self.0
            .strip_prefix(SECRET_PREFIX)
            .and_then(|encoded| BASE64.decode(encoded).ok())
            .unwrap_or_default()
    }

    /// The whole secret: shown once, when made.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// What a list shows: the prefix and the last four characters.
    pub fn masked(&self) -> String {
        let tail: String = self
            .0
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("{SECRET_PREFIX}…{tail}")
    }

    /// `v1,` and the Base64 HMAC-SHA256 of `id.timestamp.body` (the specification's "Signature
    /// scheme": the signed content is the id, the timestamp and the body joined by full stops).
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC takes a key of any length.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key()) {
            Ok(mac) => mac,
            Err(_) => return String::new(),
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningSecret({})", self.masked())
    }
}

impl TryFrom<String> for SigningSecret {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        SigningSecret::parse(&raw).ok_or_else(|| "not a signing secret".to_string())
    }
}

impl From<SigningSecret> for String {
    fn from(secret: SigningSecret) -> String {
        secret.0
    }
}

/// The `webhook-signature` header: one `v1,` signature per secret that signs now, space-separated
/// ("the header may contain multiple signatures … to allow for zero-downtime secret rotation").
pub fn signature_header(
    secrets: &[&SigningSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| secret.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a URL may not receive messages.
pub fn url_problem(raw: &str, allow_private: bool) -> Result<url::Url, String> {
    if raw.len() > URL_MAX {
        return Err(format!("must be at most {URL_MAX} characters"));
    }
    let url = url::Url::parse(raw).map_err(|_| "must be an absolute URL".to_string())?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err("must be an https URL".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment".into());
    }
    match url.host() {
        None => return Err("must name a host".into()),
        Some(url::Host::Ipv4(ip)) => forbidden(IpAddr::V4(ip), allow_private)?,
        Some(url::Host::Ipv6(ip)) => forbidden(IpAddr::V6(ip), allow_private)?,
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if !allow_private
                && (name == "localhost"
                    || name.ends_with(".localhost")
                    || name.ends_with(".internal")
                    || name.ends_with(".local")
                    || !name.contains('.'))
            {
                return Err("must name a public host".into());
            }
        }
    }
    Ok(url)
}

/// Whether a message may be sent to `ip`: never to the cloud's metadata services; unless
/// `allow_private`, never to loopback, private, shared (carrier-grade NAT), link-local, unspecified,
/// multicast, broadcast or reserved addresses either (IANA special-purpose registries, RFC 6890).
pub fn forbidden(ip: IpAddr, allow_private: bool) -> Result<(), String> {
    let ip = match ip {
        // An IPv4-mapped IPv6 address reaches the IPv4 host it maps.
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    if is_metadata(ip) {
        return Err(format!("{ip} is a cloud metadata address"));
    }
    if allow_private {
        return Ok(());
    }
    let special = match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    };
    match special {
        Some(kind) => Err(format!("{ip} is a {kind} address")),
        None => Ok(()),
    }
}

/// AWS's instance metadata service (IPv4 and IPv6), which also answers on ECS's task endpoint;
/// Alibaba Cloud's.
fn is_metadata(ip: IpAddr) -> bool {
    const AWS_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    matches!(ip, IpAddr::V4(v4) if v4 == Ipv4Addr::new(169, 254, 169, 254)
        || v4 == Ipv4Addr::new(169, 254, 170, 2)
        || v4 == Ipv4Addr::new(100, 100, 100, 200))
        || ip == IpAddr::V6(AWS_V6)
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if a == 0 || ip.is_broadcast() || a >= 240 {
        Some("reserved")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if a == 192 && b == 0 && ip.octets()[2] == 0 {
        Some("protocol-assignment")
    } else if (a == 198 && (b == 18 || b == 19)) || ip.is_documentation() {
        Some("test-network")
    } else {
        None
    }
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if first & 0xfe00 == 0xfc00 {
        Some("private (unique local)")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if first == 0x2001 && ip.segments()[1] == 0xdb8 {
        Some("documentation")
    } else if first == 0x64 && ip.segments()[1] == 0xff9b {
        // NAT64 reaches an embedded IPv4 address this check cannot see.
        Some("translated (NAT64)")
    } else {
        None
    }
}

/// A merchant's endpoint: where their events go, and what signs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: WebhookId,
    pub merchant_id: UserId,
    pub url: String,
    /// What it subscribed to (some of [`EventType::SUBSCRIBABLE`]).
    pub events: Vec<EventType>,
    pub secret: SigningSecret,
    /// The secret before the last rotation, and until when it still signs.
    pub previous_secret: Option<(SigningSecret, Timestamp)>,
    /// Since when every delivery to it has failed (cleared by a success).
    pub failing_since: Option<Timestamp>,
    /// Why it no longer receives anything, and since when.
    pub disabled: Option<(String, Timestamp)>,
    pub created_at: Timestamp,
}

impl WebhookEndpoint {
    /// The secrets that sign a message sent at `now`: the current one, and the previous one during
    /// [`SECRET_OVERLAP`] after a rotation.
    pub fn signing_secrets(&self, now: Timestamp) -> Vec<&SigningSecret> {
        let mut secrets = vec![&self.secret];
        if let Some((previous, until)) = &self.previous_secret {
            if now < *until {
                secrets.push(previous);
            }
        }
        secrets
    }

    /// Whether it receives `event` (a test message goes to any endpoint asked to test).
    pub fn wants(&self, event: EventType) -> bool {
        self.disabled.is_none() && (event == EventType::WebhookTest || self.events.contains(&event))
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    /// The endpoint answered 2xx.
    Succeeded,
    /// Every attempt of the schedule failed.
    Failed,
    /// Not sent: its endpoint was deleted or disabled first.
    Abandoned,
}

/// One message to one endpoint, with its attempts so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub endpoint_id: WebhookId,
    pub merchant_id: UserId,
    /// The `webhook-id`: the same across attempts and replays.
    pub event_id: String,
    pub event_type: EventType,
    /// The signed body, exactly as sent.
    pub body: String,
    pub attempts: u32,
    pub state: DeliveryState,
    pub last_attempt: Option<AttemptResult>,
    pub next_attempt_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// How the last attempt went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptResult {
    pub at: Timestamp,
    /// The endpoint's HTTP status; `None` when none came (refused address, DNS, connection,
    /// timeout).
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    /// What went wrong, when no status says it.
    pub error: Option<String>,
}

/// What an attempt's answer means for its delivery and endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A 2xx: done.
    Delivered,
    /// Anything else, while the schedule lasts.
    RetryAt(Timestamp),
    /// The schedule is used up.
    GaveUp,
    /// 410 Gone: the receiver asked to be told nothing more; the endpoint is disabled at once.
    EndpointGone,
}

/// Judges attempt number `attempt` (1-based) that answered `status` (`None`: no answer) at `now`.
/// Only a 2xx is success (a redirect is not followed: "the webhook sender should not follow
/// redirects" is the specification's advice, and a 3xx is a failure).
pub fn judge(attempt: u32, status: Option<u16>, now: Timestamp) -> Verdict {
    match status {
        Some(200..=299) => Verdict::Delivered,
        Some(410) => Verdict::EndpointGone,
        _ => match delay_before_attempt(attempt + 1) {
            Some(wait) => {
                Verdict::RetryAt(now + chrono::Duration::from_std(wait).unwrap_or_default())
            }
            None => Verdict::GaveUp,
        },
    }
}

/// Whether an endpoint failing since `since` is disabled at `now` ([`DISABLE_AFTER_FAILING`]).
pub fn failed_too_long(since: Option<Timestamp>, now: Timestamp) -> bool {
    since.is_some_and(|since| {
        now.signed_duration_since(since)
            .to_std()
            .unwrap_or_default()
            >= DISABLE_AFTER_FAILING
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector the specification's reference libraries test against (e.g. Svix's PHP library,
    /// `testSignFunctionWorks`): the same secret, id, timestamp and body give the same signature.
    #[test]
    fn signatures_reproduce_the_specifications_published_vector() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .expect("the vector's secret");
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        // Any change of id, timestamp or body changes it.
        assert_ne!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265331,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_new_secret_is_in_the_specifications_form_and_masked_in_lists() {
        let secret = SigningSecret::generate();
        assert!(secret.reveal().starts_with("whsec_"));
        assert_eq!(secret.key().len(), 32);
        assert!(SigningSecret::parse(secret.reveal()).is_some());
        assert_ne!(SigningSecret::generate(), secret);
        let masked = secret.masked();
        assert!(masked.starts_with("whsec_…") && masked.chars().count() == 11);
        assert!(!format!("{secret:?}").contains(&secret.reveal()[6..20]));
        // Too short a key, or no prefix, is not a secret.
        assert!(SigningSecret::parse("whsec_c2hvcnQ=").is_none());
        assert!(SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_none());
    }

    #[test]
    fn both_secrets_sign_during_a_rotation() {
        let old = SigningSecret::generate();
        let new = SigningSecret::generate();
        let header = signature_header(&[&new, &old], "msg_1", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            parts,
            [new.sign("msg_1", 1, b"{}"), old.sign("msg_1", 1, b"{}")]
        );
    }

    #[test]
    fn the_retry_schedule_is_the_specifications_and_ends() {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        assert_eq!(delay_before_attempt(1), Some(Duration::ZERO));
        assert_eq!(delay_before_attempt(2), Some(Duration::from_secs(5)));
        assert_eq!(delay_before_attempt(3), Some(minutes(5)));
        assert_eq!(delay_before_attempt(4), Some(minutes(30)));
        assert_eq!(delay_before_attempt(8), Some(minutes(600)));
        assert_eq!(delay_before_attempt(9), None);
        assert_eq!(delay_before_attempt(0), None);
    }

    #[test]
    fn an_order_change_is_the_event_of_the_status_it_reached() {
        use OrderStatus::*;
        assert_eq!(order_event(None, Pending), Some(EventType::OrderPlaced));
        assert_eq!(
            order_event(Some(Pending), Shipped),
            Some(EventType::OrderShipped)
        );
        assert_eq!(
            order_event(Some(Shipped), Completed),
            Some(EventType::OrderCompleted)
        );
        assert_eq!(
            order_event(Some(Pending), Completed),
            Some(EventType::OrderCompleted)
        );
        assert_eq!(
            order_event(Some(Pending), Cancelled),
            Some(EventType::OrderCancelled)
        );
        // An address redacted, a shipment edited: no status change, no event.
        assert_eq!(order_event(Some(Completed), Completed), None);
        let order = OrderId::generate();
        assert_ne!(
            order_event_id(&order, EventType::OrderPlaced),
            order_event_id(&order, EventType::OrderCancelled)
        );
    }

    #[test]
    fn only_a_2xx_is_success_410_disables_and_the_schedule_ends() {
        let now = chrono::Utc::now();
        assert_eq!(judge(1, Some(204), now), Verdict::Delivered);
        assert_eq!(judge(1, Some(410), now), Verdict::EndpointGone);
        assert_eq!(
            judge(1, Some(301), now),
            Verdict::RetryAt(now + chrono::Duration::seconds(5))
        );
        assert_eq!(
            judge(3, None, now),
            Verdict::RetryAt(now + chrono::Duration::minutes(30))
        );
        assert_eq!(judge(8, Some(500), now), Verdict::GaveUp);
        assert!(!failed_too_long(None, now));
        assert!(!failed_too_long(Some(now - chrono::Duration::days(4)), now));
        assert!(failed_too_long(Some(now - chrono::Duration::days(5)), now));
    }

    #[test]
    fn urls_that_reach_inside_are_refused() {
        for bad in [
            "http://shop.example.com/hook",
            "ftp://shop.example.com/hook",
            "https://user:pw@shop.example.com/hook",
            "https://127.0.0.1/hook",
            "https://10.1.2.3/hook",
            "https://172.20.0.1/hook",
            "https://192.168.1.1/hook",
            "https://169.254.169.254/latest/meta-data/",
            "https://100.100.100.200/",
            "https://[::1]/hook",
            "https://[fd00:ec2::254]/",
            "https://[::ffff:127.0.0.1]/hook",
            "https://[fe80::1]/hook",
            "https://0.0.0.0/hook",
            "https://localhost/hook",
            "https://metadata.google.internal/",
            "https://intranet/hook",
            "not a url",
        ] {
            assert!(url_problem(bad, false).is_err(), "{bad} was accepted");
        }
        assert!(url_problem("https://shop.example.com/hooks?x=1", false).is_ok());
        assert!(url_problem("https://8.8.8.8/hook", false).is_ok());
        // Locally, loopback over plain HTTP; never the metadata service.
        assert!(url_problem("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(url_problem("http://169.254.169.254/", true).is_err());
    }
}
