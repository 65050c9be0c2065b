//! What every function builds once at start-up and shares across invocations.

use crate::auth::JwtKeys;
use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::clock::Clock;
use crate::config::Config;
use crate::gateway::{GatewayTransport, HttpsTransport};
use crate::observe::MetricsSink;
use crate::services::auth::{AuthService, LoginLimits};
use crate::services::catalogue::CatalogueService;
use crate::services::orders::OrderService;
use crate::services::points::PointsService;
use crate::services::recharge::{LinkSigner, RechargeService};
use crate::store::Store;

#[derive(Clone)]
pub struct AppContext {
    pub config: Config,
    pub store: Store,
    pub keys: JwtKeys,
    pub links: LinkSigner,
    /// Where the request wrapper writes metrics (stdout as EMF; tests capture them).
    pub metrics: MetricsSink,
    /// How ECPay's QueryTradeInfo is reached (HTTPS; the local host and tests use their simulator).
    pub gateway: Arc<dyn GatewayTransport>,
    /// The process's argon2 budget (see [`crate::auth::password`]).
    pub passwords: Arc<crate::auth::password::PasswordHasher>,
    /// What "now" is for expiring rules (see [`crate::clock`]); tests swap it with [`AppContext::set_clock`].
    pub clock: Clock,
    /// Where webhook deliveries wait for their attempt (SQS on AWS when `WEBHOOK_QUEUE_URL` is set;
    /// the local host's sender task).
    pub webhook_queue: Arc<dyn crate::webhook_queue::DeliveryQueue>,
    /// The HTTPS client that delivers webhook messages (built on first use).
    pub webhook_http: Arc<crate::webhook_http::WebhookHttp>,
}

impl AppContext {
    pub fn new(config: Config, store: Store) -> Self {
        let store = store.with_evidence_retention(config.payments.evidence_retention_days);
        let keys = JwtKeys::new(
            config.jwt_secret.expose_secret(),
            config.access_token_ttl,
            config.refresh_token_ttl,
        )
        .with_previous(
            config
                .jwt_previous_secret
                .as_ref()
                .map(|secret| secret.expose_secret()),
        );
        let allow_private = config.webhooks.allow_private;
        let metrics = MetricsSink::stdout(config.metrics_namespace.clone());
        let gateway: Arc<dyn GatewayTransport> = Arc::new(HttpsTransport::new());
        let links = LinkSigner::from_secret(config.jwt_secret.expose_secret());
        let passwords = crate::auth::password::PasswordHasher::with_cost(
            config.password_hash_concurrency as usize,
            config.password_hash_queue as usize,
            config.password_cost,
        );
        AppContext {
            config,
            store,
            keys,
            links,
            metrics,
            gateway,
            passwords,
            clock: Clock::system(),
            webhook_queue: Arc::new(crate::webhook_queue::NoQueue),
            webhook_http: Arc::new(crate::webhook_http::WebhookHttp::new(allow_private)),
        }
    }

    /// Uses `clock` wherever this context judges time (tokens, login windows).
    pub fn set_clock(&mut self, clock: Clock) {
        self.keys = self.keys.clone().with_clock(clock.clone());
        self.clock = clock;
    }

    /// The context over a DynamoDB connection already opened (a Lambda function's init opens it
    /// while it reads its secret).
    pub fn over(config: Config, connection: crate::store::Connection) -> Self {
        let store = Store::over(connection, &config);
        Self::new(config, store)
    }

    /// Connects the store described by `config` and opens its connection.
    pub async fn connect(config: Config) -> Self {
        let store = Store::connect(&config).await;
        store.warm().await;
        Self::new(config, store)
    }

    pub fn points(&self) -> PointsService<'_> {
        PointsService {
            store: &self.store,
            payments: &self.config.payments,
            clock: &self.clock,
        }
    }

    pub fn recharge(&self) -> RechargeService<'_> {
        RechargeService {
            store: &self.store,
            payments: &self.config.payments,
            links: &self.links,
            gateway: self.gateway.as_ref(),
            clock: &self.clock,
            invoice_mode: self.config.invoices.mode,
        }
    }

    pub fn invoices(&self) -> crate::services::invoices::InvoiceService<'_> {
        crate::services::invoices::InvoiceService {
            store: &self.store,
            clock: &self.clock,
            config: &self.config.invoices,
            gateway: self.gateway.as_ref(),
            batch: self.config.payments.reconcile_batch,
        }
    }

    pub fn refunds(&self) -> crate::services::refunds::RefundService<'_> {
        crate::services::refunds::RefundService {
            store: &self.store,
            recharge: self.recharge(),
            clock: &self.clock,
        }
    }

    pub fn admin(&self) -> crate::services::admin::AdminService<'_> {
        crate::services::admin::AdminService {
            store: &self.store,
            recharge: self.recharge(),
            passwords: &self.passwords,
            clock: &self.clock,
        }
    }

    pub fn webhooks(&self) -> crate::services::webhooks::WebhookService<'_> {
        crate::services::webhooks::WebhookService {
            store: &self.store,
            clock: &self.clock,
            config: &self.config.webhooks,
            queue: self.webhook_queue.as_ref(),
            http: &self.webhook_http,
        }
    }

    pub fn orders(&self) -> OrderService<'_> {
        OrderService {
            store: &self.store,
            clock: &self.clock,
            fulfilment: &self.config.fulfilment,
            settlements: self.settlements(),
        }
    }

    pub fn settlements(&self) -> crate::services::settlements::SettlementService<'_> {
        crate::services::settlements::SettlementService {
            store: &self.store,
            config: &self.config.settlement,
            points_per_twd: self.config.payments.points_per_twd,
            clock: &self.clock,
            invoice_mode: self.config.invoices.mode,
        }
    }

    pub fn catalogue(&self) -> CatalogueService<'_> {
        CatalogueService {
            store: &self.store,
            clock: &self.clock,
        }
    }

    pub fn auth(&self) -> AuthService<'_> {
        AuthService {
            store: &self.store,
            keys: &self.keys,
            passwords: &self.passwords,
            limits: LoginLimits {
                max_failures: self.config.login_max_failures,
                max_failures_per_address: self.config.login_max_failures_per_ip,
                username_backoff: self.config.login_username_backoff,
                window: self.config.login_failure_window,
            },
            refresh_grace: self.config.refresh_reuse_grace,
            clock: &self.clock,
        }
    }
}
