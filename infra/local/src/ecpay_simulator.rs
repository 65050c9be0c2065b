//! A stand-in for ECPay's AioCheckOut V5 and QueryTradeInfo V5, for offline development and tests.
//! It is part of the local host only and never compiled into a Lambda function. It is meant to be
//! at least as strict as ECPay, so that what passes here does not fail there:
//!
//! - a posted checkout form is checked field by field against ECPay's documented formats
//!   (<https://developers.ecpay.com.tw/?p=2862>: MerchantTradeNo ≤ 20 letters and digits, used once;
//!   MerchantTradeDate `yyyy/MM/dd HH:mm:ss`; TotalAmount a positive whole number; TradeDesc ≤ 200,
//!   ItemName ≤ 400 characters; ReturnURL ≤ 200; CustomField1–4 ≤ 50 characters, of letters, digits
//!   and only the special characters ECPay lists, which do not include `-`);
//! - every CheckMacValue it receives is checked by [`independent_check_mac`], written apart from the
//!   signer in `shared::ecpay` and held to ECPay's published examples, so an encoding bug in the
//!   signer cannot hide behind itself;
//! - it pays, declines, or pays *without notifying* (`notify=0`: only reconciliation can find it);
//! - it sends the notification to ReturnURL over real HTTP and, when the answer is not exactly
//!   `1|OK`, sends it again by itself (with `RtnMsg` changed to `paid` on re-sends of a success, as
//!   ECPay does) on a short local schedule instead of ECPay's hours;
//! - it answers QueryTradeInfo V5 (<https://developers.ecpay.com.tw/?p=2890>): a signed, fresh
//!   (`TimeStamp` within 3 minutes) request for a trade it knows gets a signed answer with
//!   `TradeStatus` 1 (paid) or 0 (not paid); a query arriving too soon after the previous one gets
//!   HTTP 403, and so does every query for 30 minutes after that, as ECPay documents.
//! - with OrderResultURL set, its result page posts the result there from the browser by itself.
//!
//! One job (standing in for ECPay), kept in one file with the tests that hold it to ECPay's rules.

use secrecy::ExposeSecret;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use rand::Rng;
use shared::ecpay::{self, Credentials};
use shared::error::messages::Language;
use shared::gateway::{GatewayReply, GatewayTransport, TransportFuture};
use shared::http::{escape_html, html, language_of, parse_form};
use shared::AppError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// The paths are the configuration's, so the links the API hands out and the pages served here
// cannot drift apart.
pub use shared::config::{
    LOCAL_CHECKOUT_PATH as CHECKOUT_PATH, LOCAL_CREDIT_QUERY_PATH as CREDIT_QUERY_PATH,
    LOCAL_DO_ACTION_PATH as DO_ACTION_PATH, LOCAL_ECPAY_PREFIX as PREFIX,
    LOCAL_QUERY_PATH as QUERY_PATH,
};

/// Re-sends of a notification not answered `1|OK`, after these delays.
const RESEND_AFTER: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_secs(2),
    Duration::from_secs(5),
];
/// After a 403, ECPay refuses every query for 30 minutes.
const QUERY_LOCKOUT: Duration = Duration::from_secs(30 * 60);
/// ECPay refuses a query whose TimeStamp is more than 3 minutes off.
const QUERY_TIMESTAMP_TOLERANCE_SECS: i64 = 180;

const REQUIRED: &[&str] = &[
    "MerchantID",
    "MerchantTradeNo",
    "MerchantTradeDate",
    "PaymentType",
    "TotalAmount",
    "TradeDesc",
    "ItemName",
    "ReturnURL",
    "ChoosePayment",
    "CheckMacValue",
    "EncryptType",
];

/// The special characters ECPay allows in CustomField1–4 (besides letters and digits).
const CUSTOM_FIELD_SPECIALS: &str = " ,.#()$[];%{}:/?&@<>!";

struct Order {
    form: BTreeMap<String, String>,
    /// `Some(true)` paid, `Some(false)` declined, `None` not yet.
    paid: Option<bool>,
    trade_no: String,
    payment_date: String,
    notification: Option<BTreeMap<String, String>>,
    merchant_answer: Option<String>,
    deliveries: u32,
    /// The card trade's `gwsr` once paid, and its installments (0: none).
    gwsr: Option<u64>,
    installments: u32,
}

#[derive(Default)]
struct QueryLimiter {
    last: Option<Instant>,
    locked_until: Option<Instant>,
}

pub struct EcpaySimulator {
    credentials: Credentials,
    /// Every MerchantTradeNo ever posted: ECPay refuses one it has seen.
    orders: Mutex<HashMap<String, Order>>,
    queries: Mutex<QueryLimiter>,
    /// Queries closer together than this get 403 (and the 30-minute lockout).
    min_query_gap: Duration,
    /// ECPay's own clock, which judges a query's `TimeStamp`: the host's (tests move it forward,
    /// and ECPay's time passes with theirs).
    clock: std::sync::RwLock<shared::clock::Clock>,
    /// The card trades of paid orders: QueryTrade/V2 and DoAction (`ecpay_cards`).
    pub cards: crate::ecpay_cards::CardBackOffice,
    /// ECPay's B2C e-invoice API (`ecpay_invoices`).
    pub invoices: crate::ecpay_invoices::InvoiceOffice,
    me: Weak<EcpaySimulator>,
}

fn poisoned() -> AppError {
    AppError::internal("simulator state poisoned")
}

impl EcpaySimulator {
    pub fn new(credentials: Credentials, min_query_gap: Duration) -> Arc<Self> {
        Arc::new_cyclic(|me| EcpaySimulator {
            cards: crate::ecpay_cards::CardBackOffice::new(
                credentials.clone(),
                shared::config::LOCAL_CREDIT_CHECK_CODE.to_string(),
            ),
            invoices: crate::ecpay_invoices::InvoiceOffice::default(),
            credentials,
            orders: Mutex::new(HashMap::new()),
            queries: Mutex::new(QueryLimiter::default()),
            min_query_gap,
            clock: std::sync::RwLock::new(shared::clock::Clock::system()),
            me: me.clone(),
        })
    }

    /// Judges time by `clock` from now on (the host's, so a test's jump forward reaches ECPay too).
    pub fn set_clock(&self, clock: shared::clock::Clock) {
        if let Ok(mut mine) = self.clock.write() {
            *mine = clock;
        }
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock
            .read()
            .map(|clock| clock.now())
            .unwrap_or_else(|_| chrono::Utc::now())
    }

    pub async fn handle(&self, req: &Request) -> Result<Response<Body>, AppError> {
        match (req.method().as_str(), req.uri().path()) {
            ("POST", CHECKOUT_PATH) => self.checkout(req),
            ("POST", QUERY_PATH) => {
                let form: Vec<(String, String)> = parse_form(req)?;
                let reply = self.query_trade_info(&form);
                Response::builder()
                    .status(reply.status)
                    .header(http::header::CONTENT_TYPE, "text/html; charset=utf-8")
                    .body(Body::from(reply.body))
                    .map_err(AppError::internal)
            }
            ("POST", CREDIT_QUERY_PATH) | ("POST", DO_ACTION_PATH) => {
                let form: Vec<(String, String)> = parse_form(req)?;
                let reply = self.credit_api(req.uri().path(), &form);
                Response::builder()
                    .status(reply.status)
                    .header(http::header::CONTENT_TYPE, "text/html; charset=utf-8")
                    .body(Body::from(reply.body))
                    .map_err(AppError::internal)
            }
            ("POST", path) if path.starts_with("/dev/ecpay/B2CInvoice/") => {
                let body = String::from_utf8_lossy(req.body().as_ref()).into_owned();
                let reply = self.invoices.handle(path, &body, self.now());
                Response::builder()
                    .status(reply.status)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Body::from(reply.body))
                    .map_err(AppError::internal)
            }
            ("POST", "/dev/ecpay/refuse-next-invoice") => {
                let message = Self::form_value(req, "RtnMsg")?
                    .unwrap_or_else(|| "載具號碼不存在".to_string());
                self.invoices.refuse_next_issue(&message);
                html(
                    StatusCode::OK,
                    page("ECPay simulator", "The next invoice Issue is refused."),
                )
            }
            ("POST", "/dev/ecpay/fail-next-action") => {
                let message =
                    Self::form_value(req, "RtnMsg")?.unwrap_or_else(|| "銀行拒絕退刷".to_string());
                self.cards.fail_next_action(&message);
                html(
                    StatusCode::OK,
                    page("ECPay simulator", "The next DoAction fails."),
                )
            }
            ("POST", "/dev/ecpay/pay") => self.settle(req, true).await,
            ("POST", "/dev/ecpay/decline") => self.settle(req, false).await,
            ("POST", "/dev/ecpay/notify-again") => self.notify_again(req).await,
            _ => Err(AppError::route_not_found("simulator page")),
        }
    }

    fn checkout(&self, req: &Request) -> Result<Response<Body>, AppError> {
        let language = language_of(req);
        let t = |english, chinese| language.pick(english, chinese);
        let fields = parse_form(req)?;
        let form: BTreeMap<String, String> = fields.iter().cloned().collect();
        let refuse = |message: &str| {
            html(
                StatusCode::BAD_REQUEST,
                page_in(
                    language,
                    t(
                        "ECPay simulator: Transaction refused",
                        "綠界模擬器：交易失敗",
                    ),
                    &format!("<p id=\"error\">{}</p>", escape_html(message)),
                ),
            )
        };
        if form.len() != fields.len() {
            return refuse("a field appears twice");
        }
        if let Some(missing) = REQUIRED
            .iter()
            .find(|name| form.get(**name).is_none_or(|v| v.is_empty()))
        {
            return refuse(&format!("missing required field {missing}"));
        }
        if form["MerchantID"] != self.credentials.merchant_id {
            return refuse("unknown MerchantID");
        }
        let received = form
            .get(ecpay::CHECK_MAC_VALUE)
            .cloned()
            .unwrap_or_default();
        let expected = independent_check_mac(
            &fields,
            self.credentials.hash_key.expose_secret(),
            self.credentials.hash_iv.expose_secret(),
        );
        if !received.eq_ignore_ascii_case(&expected) {
            return refuse("CheckMacValue Error");
        }
        if let Err(problem) = check_formats(&form) {
            return refuse(&problem);
        }
        let trade_no = form["MerchantTradeNo"].clone();
        {
            let mut orders = self.orders.lock().map_err(|_| poisoned())?;
            if orders.contains_key(&trade_no) {
                return refuse("訂單編號重覆 MerchantTradeNo is duplicated");
            }
            orders.insert(
                trade_no.clone(),
                Order {
                    form: form.clone(),
                    paid: None,
                    trade_no: String::new(),
                    payment_date: String::new(),
                    notification: None,
                    merchant_answer: None,
                    deliveries: 0,
                    gwsr: None,
                    installments: 0,
                },
            );
        }
        let body = format!(
            "<p>{intro}</p>\n\
             <table>\n<tr><th>{trade_label}</th><td id=\"trade-no\">{trade_no}</td></tr>\n\
             <tr><th>{item_label}</th><td>{item}</td></tr>\n<tr><th>{amount_label}</th><td id=\"amount\">NT$ {amount}</td></tr>\n</table>\n\
             <form method=\"post\" action=\"/dev/ecpay/pay\"><input type=\"hidden\" name=\"MerchantTradeNo\" value=\"{trade_no}\">\
             <button id=\"pay\" type=\"submit\">{pay}</button></form>\n\
             <form method=\"post\" action=\"/dev/ecpay/pay\"><input type=\"hidden\" name=\"MerchantTradeNo\" value=\"{trade_no}\">\
             <input type=\"hidden\" name=\"notify\" value=\"0\">\
             <button id=\"pay-silently\" type=\"submit\">{pay_silently}</button></form>\n\
             <form method=\"post\" action=\"/dev/ecpay/decline\"><input type=\"hidden\" name=\"MerchantTradeNo\" value=\"{trade_no}\">\
             <button id=\"decline\" type=\"submit\">{decline}</button></form>",
            intro = t(
                "This is the local ECPay simulator: no card, no money.",
                "這是本機的綠界模擬器：不需信用卡，也不會扣款。"
            ),
            trade_label = t("MerchantTradeNo", "特店訂單編號"),
            item_label = t("Item", "商品名稱"),
            amount_label = t("Amount", "金額"),
            pay = t("Pay", "付款"),
            pay_silently = t("Pay, lose the notification", "付款但不通知"),
            decline = t("Decline", "拒絕"),
            trade_no = escape_html(&trade_no),
            item = escape_html(&form["ItemName"]),
            amount = escape_html(&form["TotalAmount"]),
        );
        html(
            StatusCode::OK,
            page_in(
                language,
                t("ECPay simulator: Credit card", "綠界模擬器：信用卡付款"),
                &body,
            ),
        )
    }

    fn form_value(req: &Request, name: &str) -> Result<Option<String>, AppError> {
        Ok(parse_form(req)?
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v))
    }

    async fn settle(&self, req: &Request, pay: bool) -> Result<Response<Body>, AppError> {
        let trade_no = Self::form_value(req, "MerchantTradeNo")?
            .ok_or_else(|| AppError::bad_request("missing_field", "MerchantTradeNo is required"))?;
        let notify = Self::form_value(req, "notify")?.as_deref() != Some("0");
        let installments = Self::form_value(req, "installments")?
            .and_then(|n| n.trim().parse::<u32>().ok())
            .unwrap_or(0);
        let notification = {
            let mut orders = self.orders.lock().map_err(|_| poisoned())?;
            let order = orders.get_mut(&trade_no).ok_or_else(|| {
                AppError::not_found("order_not_found", "the simulator has no such order")
            })?;
            if order.paid.is_none() {
                order.paid = Some(pay);
                let now = self.now();
                order.trade_no = ecpay_trade_no(now);
                order.payment_date = ecpay::taipei_time(now);
                if pay {
                    let amount = order.form["TotalAmount"].parse::<i64>().unwrap_or(0);
                    order.installments = installments;
                    order.gwsr =
                        self.cards
                            .authorise(&trade_no, &order.trade_no, amount, installments, now);
                }
                order.notification = Some(self.notification_for(order, false));
            }
            order.notification.clone().unwrap_or_default()
        };
        if !notify {
            return self.result_page(language_of(req), &trade_no, &notification, None);
        }
        let answer = self.deliver(&trade_no, &notification).await;
        self.result_page(language_of(req), &trade_no, &notification, Some(&answer))
    }

    async fn notify_again(&self, req: &Request) -> Result<Response<Body>, AppError> {
        let trade_no = Self::form_value(req, "MerchantTradeNo")?
            .ok_or_else(|| AppError::bad_request("missing_field", "MerchantTradeNo is required"))?;
        let notification = {
            let orders = self.orders.lock().map_err(|_| poisoned())?;
            orders
                .get(&trade_no)
                .and_then(|o| o.notification.clone())
                .ok_or_else(|| {
                    AppError::not_found("order_not_found", "nothing was sent for this order yet")
                })?
        };
        let answer = self.deliver(&trade_no, &notification).await;
        self.result_page(language_of(req), &trade_no, &notification, Some(&answer))
    }

    /// The notification ECPay sends to ReturnURL. A re-send of a success says `paid` in RtnMsg.
    fn notification_for(&self, order: &Order, resend: bool) -> BTreeMap<String, String> {
        let form = &order.form;
        let pay = order.paid == Some(true);
        let mut n = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            n.insert(k.to_string(), v.to_string());
        };
        put("MerchantID", &form["MerchantID"]);
        put("MerchantTradeNo", &form["MerchantTradeNo"]);
        put("StoreID", "");
        put("RtnCode", if pay { "1" } else { "10100248" });
        put(
            "RtnMsg",
            match (pay, resend) {
                (true, true) => "paid",
                (true, false) => "交易成功",
                (false, _) => "拒絕交易",
            },
        );
        put("TradeNo", &order.trade_no);
        put("TradeAmt", &form["TotalAmount"]);
        put("PaymentDate", &order.payment_date);
        put("PaymentType", "Credit_CreditCard");
        put("PaymentTypeChargeFee", "0");
        put("TradeDate", &form["MerchantTradeDate"]);
        put("SimulatePaid", "0");
        for i in 1..=4 {
            let key = format!("CustomField{i}");
            put(&key, form.get(&key).map(String::as_str).unwrap_or(""));
        }
        ecpay::sign(&mut n, &self.credentials);
        n
    }

    /// Posts the notification to ReturnURL; unless the answer is `1|OK`, schedules re-sends.
    async fn deliver(&self, trade_no: &str, notification: &BTreeMap<String, String>) -> String {
        let answer = self.post_notification(trade_no, notification).await;
        if answer != "200 1|OK" {
            if let Some(me) = self.me.upgrade() {
                let trade_no = trade_no.to_string();
                tokio::spawn(async move { me.resend(trade_no).await });
            }
        }
        answer
    }

    async fn post_notification(
        &self,
        trade_no: &str,
        notification: &BTreeMap<String, String>,
    ) -> String {
        let return_url = self
            .orders
            .lock()
            .ok()
            .and_then(|orders| orders.get(trade_no).map(|o| o.form["ReturnURL"].clone()))
            .unwrap_or_default();
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(notification.iter())
            .finish();
        let answer = match post_form(&return_url, &body).await {
            Ok((status, text)) => format!("{status} {text}"),
            Err(err) => format!("delivery failed: {err}"),
        };
        tracing::info!(merchant_trade_no = trade_no, answer = %answer, "simulator sent a payment notification");
        if let Ok(mut orders) = self.orders.lock() {
            if let Some(order) = orders.get_mut(trade_no) {
                order.merchant_answer = Some(answer.clone());
                order.deliveries += 1;
            }
        }
        answer
    }

    async fn resend(self: Arc<Self>, trade_no: String) {
        for delay in RESEND_AFTER {
            tokio::time::sleep(delay).await;
            let notification = {
                let Ok(orders) = self.orders.lock() else {
                    return;
                };
                match orders.get(&trade_no) {
                    Some(order) => self.notification_for(order, true),
                    None => return,
                }
            };
            if self.post_notification(&trade_no, &notification).await == "200 1|OK" {
                return;
            }
        }
    }

    /// How many times the notification of `trade_no` was posted (tests).
    pub fn deliveries(&self, trade_no: &str) -> u32 {
        self.orders
            .lock()
            .ok()
            .and_then(|orders| orders.get(trade_no).map(|o| o.deliveries))
            .unwrap_or(0)
    }

    /// QueryTradeInfo V5: `(status, body)` as ECPay answers.
    pub fn query_trade_info(&self, form: &[(String, String)]) -> GatewayReply {
        if let Some(refusal) = self.pace_query() {
            return refusal;
        }
        let get = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_default()
        };
        let error = |message: &str| GatewayReply {
            status: 200,
            body: message.to_string(),
        };
        let expected = independent_check_mac(
            form,
            self.credentials.hash_key.expose_secret(),
            self.credentials.hash_iv.expose_secret(),
        );
        if !get(ecpay::CHECK_MAC_VALUE).eq_ignore_ascii_case(&expected) {
            return error("CheckMacValue Error");
        }
        if get("MerchantID") != self.credentials.merchant_id {
            return error("MerchantID Error");
        }
        let stamp = get("TimeStamp").parse::<i64>().unwrap_or(0);
        if (self.now().timestamp() - stamp).abs() > QUERY_TIMESTAMP_TOLERANCE_SECS {
            return error("TimeStamp Error");
        }
        let asked = get("MerchantTradeNo");
        let answer = {
            let Ok(orders) = self.orders.lock() else {
                return error("busy");
            };
            let mut answer = BTreeMap::new();
            let mut put = |k: &str, v: &str| {
                answer.insert(k.to_string(), v.to_string());
            };
            put("MerchantID", &self.credentials.merchant_id);
            put("MerchantTradeNo", asked);
            put("StoreID", "");
            match orders.get(asked) {
                Some(order) => {
                    let paid = order.paid == Some(true);
                    put("TradeNo", &order.trade_no);
                    put("TradeAmt", &order.form["TotalAmount"]);
                    put("PaymentDate", if paid { &order.payment_date } else { "" });
                    put("PaymentType", if paid { "Credit_CreditCard" } else { "" });
                    put("HandlingCharge", "0");
                    put("PaymentTypeChargeFee", "0");
                    put("TradeDate", &order.form["MerchantTradeDate"]);
                    put("TradeStatus", if paid { "1" } else { "0" });
                    // A card trade's detail, as QueryTradeInfo gives it for credit payments: its
                    // authorisation number (`gwsr`, QueryTrade/V2's CreditRefundId) and installments.
                    if let (true, Some(gwsr)) = (paid, order.gwsr) {
                        put("gwsr", &gwsr.to_string());
                        put("stage", &order.installments.to_string());
                        put("amount", &order.form["TotalAmount"]);
                    }
                    put("ItemName", &order.form["ItemName"]);
                    for i in 1..=4 {
                        let key = format!("CustomField{i}");
                        put(&key, order.form.get(&key).map(String::as_str).unwrap_or(""));
                    }
                }
                // Never posted (the member did not get as far as ECPay): nothing was paid.
                None => {
                    put("TradeNo", "");
                    put("TradeAmt", "0");
                    put("PaymentDate", "");
                    put("TradeStatus", "10200047");
                }
            }
            answer
        };
        let mut answer = answer;
        ecpay::sign(&mut answer, &self.credentials);
        GatewayReply {
            status: 200,
            body: form_urlencoded::Serializer::new(String::new())
                .extend_pairs(answer.iter())
                .finish(),
        }
    }

    /// ECPay's pacing of queries: one too soon after the previous gets 403, and so does every query
    /// for 30 minutes after that.
    fn pace_query(&self) -> Option<GatewayReply> {
        let now = Instant::now();
        let Ok(mut limiter) = self.queries.lock() else {
            return Some(GatewayReply {
                status: 500,
                body: String::new(),
            });
        };
        let too_soon = limiter
            .last
            .is_some_and(|last| now.duration_since(last) < self.min_query_gap);
        limiter.last = Some(now);
        if too_soon {
            limiter.locked_until = Some(now + QUERY_LOCKOUT);
        }
        if limiter.locked_until.is_some_and(|until| now < until) {
            return Some(GatewayReply {
                status: 403,
                body: "<html><body>403 Forbidden</body></html>".into(),
            });
        }
        None
    }

    /// QueryTrade/V2 and DoAction, paced like every query for the first (ECPay answers queries too
    /// fast with 403).
    pub fn credit_api(&self, path: &str, form: &[(String, String)]) -> GatewayReply {
        if path.ends_with(CREDIT_QUERY_PATH) {
            if let Some(refusal) = self.pace_query() {
                return refusal;
            }
            self.cards.query(form, self.now())
        } else {
            self.cards.do_action(form, self.now())
        }
    }

    /// The notification ECPay made for a paid or declined order, to post as a test's own delivery.
    pub fn notification_of(&self, merchant_trade_no: &str) -> Option<BTreeMap<String, String>> {
        let orders = self.orders.lock().ok()?;
        orders.get(merchant_trade_no)?.notification.clone()
    }

    fn result_page(
        &self,
        language: Language,
        trade_no: &str,
        notification: &BTreeMap<String, String>,
        answer: Option<&str>,
    ) -> Result<Response<Body>, AppError> {
        let form = {
            let orders = self.orders.lock().map_err(|_| poisoned())?;
            orders
                .get(trade_no)
                .map(|o| o.form.clone())
                .unwrap_or_default()
        };
        let return_url = form.get("ReturnURL").cloned().unwrap_or_default();
        let paid = notification.get("RtnCode").is_some_and(|c| c == "1");
        let onward = if let Some(url) = form.get("OrderResultURL").filter(|u| !u.is_empty()) {
            // ECPay's result page posts the result to OrderResultURL from the browser by itself.
            let inputs: String = notification
                .iter()
                .map(|(k, v)| {
                    format!(
                        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                        escape_html(k),
                        escape_html(v)
                    )
                })
                .collect();
            format!(
                "<form id=\"order-result\" method=\"post\" action=\"{}\">{inputs}<button id=\"back\" type=\"submit\">{back}</button></form>\n\
                 <script>setTimeout(function () {{ document.getElementById('order-result').submit(); }}, 1500);</script>",
                escape_html(url),
                back = language.pick("Back to the shop", "回到商店"),
            )
        } else if let Some(url) = form.get("ClientBackURL").filter(|u| !u.is_empty()) {
            format!(
                "<p><a id=\"back\" href=\"{}\">{}</a></p>",
                escape_html(url),
                language.pick("Back to the shop", "回到商店"),
            )
        } else {
            String::new()
        };
        let delivery = match answer {
            Some(answer) => format!(
                "<p>Notification sent to <code>{}</code>; the merchant answered: \
                 <code id=\"merchant-answer\">{}</code></p>\n\
                 <form method=\"post\" action=\"/dev/ecpay/notify-again\"><input type=\"hidden\" name=\"MerchantTradeNo\" value=\"{}\">\
                 <button id=\"notify-again\" type=\"submit\">再送一次通知 Send the notification again</button></form>",
                escape_html(&return_url),
                escape_html(answer),
                escape_html(trade_no)
            ),
            None => "<p id=\"merchant-answer\">no notification sent (lost on purpose): only reconciliation can find this payment</p>".to_string(),
        };
        let body = format!(
            "<p id=\"result\">{result}</p>\n{delivery}\n{onward}",
            result = if paid {
                language.pick("Paid", "付款成功")
            } else {
                language.pick("Declined", "付款失敗")
            },
        );
        html(
            StatusCode::OK,
            page_in(
                language,
                language.pick("ECPay simulator: Result", "綠界模擬器：付款結果"),
                &body,
            ),
        )
    }
}

/// QueryTradeInfo answered by the simulator in process (the local host and tests): the same signed
/// request and verified answer as over HTTPS, without a socket.
pub struct SimulatorTransport(pub Arc<EcpaySimulator>);

impl GatewayTransport for SimulatorTransport {
    fn post_form<'a>(
        &'a self,
        url: &'a str,
        form: &'a BTreeMap<String, String>,
    ) -> TransportFuture<'a> {
        Box::pin(async move {
            let pairs: Vec<(String, String)> =
                form.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            if url.ends_with(QUERY_PATH) {
                Ok(self.0.query_trade_info(&pairs))
            } else if url.ends_with(CREDIT_QUERY_PATH) || url.ends_with(DO_ACTION_PATH) {
                Ok(self.0.credit_api(url, &pairs))
            } else {
                Err(format!("the simulator does not serve {url}"))
            }
        })
    }

    fn post_json<'a>(&'a self, url: &'a str, body: &'a str) -> TransportFuture<'a> {
        Box::pin(async move {
            if url.contains("/B2CInvoice/") {
                Ok(self.0.invoices.handle(url, body, self.0.now()))
            } else {
                Err(format!("the simulator does not serve {url}"))
            }
        })
    }
}

/// ECPay's trade number: `yyMMddHHmm` (Taipei) and six random digits.
fn ecpay_trade_no(now: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "{}{:06}",
        ecpay::taipei_time(now)
            .replace(['/', ' ', ':'], "")
            .get(2..12)
            .unwrap_or("0000000000"),
        rand::thread_rng().gen_range(0..1_000_000)
    )
}

fn char_count(value: &str) -> usize {
    value.chars().count()
}

/// ECPay's format rules for an AioCheckOut V5 form (see the module comment).
fn check_formats(form: &BTreeMap<String, String>) -> Result<(), String> {
    let trade_no = &form["MerchantTradeNo"];
    if trade_no.len() > 20 || !trade_no.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("MerchantTradeNo must be at most 20 letters and digits".into());
    }
    let date = &form["MerchantTradeDate"];
    if chrono::NaiveDateTime::parse_from_str(date, "%Y/%m/%d %H:%M:%S").is_err() || date.len() != 19
    {
        return Err("MerchantTradeDate must be yyyy/MM/dd HH:mm:ss".into());
    }
    if form["PaymentType"] != "aio" || form["EncryptType"] != "1" {
        return Err("EncryptType must be 1 and PaymentType aio".into());
    }
    if !["Credit", "ATM", "CVS", "BARCODE", "WebATM", "ALL"]
        .contains(&form["ChoosePayment"].as_str())
    {
        return Err("ChoosePayment is not a payment method".into());
    }
    let amount = &form["TotalAmount"];
    if !amount.bytes().all(|b| b.is_ascii_digit()) || amount.parse::<u64>().map_or(true, |a| a == 0)
    {
        return Err("TotalAmount must be a positive whole number".into());
    }
    if char_count(&form["TradeDesc"]) > 200 {
        return Err("TradeDesc is longer than 200 characters".into());
    }
    if char_count(&form["ItemName"]) > 400 {
        return Err("ItemName is longer than 400 characters".into());
    }
    for url in ["ReturnURL", "ClientBackURL", "OrderResultURL"] {
        if let Some(value) = form.get(url) {
            if value.len() > 200 || !(value.starts_with("http://") || value.starts_with("https://"))
            {
                return Err(format!(
                    "{url} must be an http(s) URL of at most 200 characters"
                ));
            }
        }
    }
    for i in 1..=4 {
        let key = format!("CustomField{i}");
        if let Some(value) = form.get(&key) {
            if char_count(value) > 50 {
                return Err(format!("{key} is longer than 50 characters"));
            }
            if let Some(bad) = value.chars().find(|c| {
                !(c.is_ascii_alphanumeric()
                    || (!c.is_ascii() && c.is_alphabetic())
                    || CUSTOM_FIELD_SPECIALS.contains(*c))
            }) {
                return Err(format!(
                    "{key} contains {bad:?}, which ECPay does not allow"
                ));
            }
        }
    }
    Ok(())
}

/// CheckMacValue written independently of `shared::ecpay::check_mac_value`: WHATWG form encoding
/// (`form_urlencoded::byte_serialize`, which keeps `*-._` and turns space into `+`) instead of a
/// hand-written PHP `urlencode`, then the .NET-compatible `!()` restored, over keys ordered by their
/// ASCII-lower-cased form. Held to ECPay's published examples below. It shares no table, constant
/// or function of ours with the shipped signer (the field's name is spelt out here, not borrowed), so
/// the tests that sign with it (`api_tests::paid_notification`, `independently_signed`) are an
/// oracle, not the code under test checking itself.
pub fn independent_check_mac(fields: &[(String, String)], hash_key: &str, hash_iv: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut pairs: Vec<&(String, String)> = fields
        .iter()
        .filter(|(k, _)| k != "CheckMacValue")
        .collect();
    pairs.sort_by_key(|(k, _)| k.to_ascii_lowercase());
    let joined = std::iter::once(format!("HashKey={hash_key}"))
        .chain(pairs.iter().map(|(k, v)| format!("{k}={v}")))
        .chain(std::iter::once(format!("HashIV={hash_iv}")))
        .collect::<Vec<_>>()
        .join("&");
    let encoded: String = form_urlencoded::byte_serialize(joined.as_bytes()).collect();
    let restored = encoded
        .to_ascii_lowercase()
        .replace("%21", "!")
        .replace("%28", "(")
        .replace("%29", ")");
    Sha256::digest(restored.as_bytes())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// `fields` with a CheckMacValue computed by [`independent_check_mac`] (any previous one replaced):
/// how tests sign what ECPay would send without trusting the shipped signer.
pub fn independently_signed(
    mut fields: BTreeMap<String, String>,
    hash_key: &str,
    hash_iv: &str,
) -> BTreeMap<String, String> {
    fields.remove("CheckMacValue");
    let pairs: Vec<(String, String)> = fields.clone().into_iter().collect();
    fields.insert(
        "CheckMacValue".into(),
        independent_check_mac(&pairs, hash_key, hash_iv),
    );
    fields
}

/// POSTs a form to an `http://` URL and returns the status code and body: the server-to-server call
/// ECPay makes. Plain HTTP/1.1 over one connection is all a local ReturnURL needs.
async fn post_form(url: &str, body: &str) -> Result<(u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| "the simulator can only notify http:// URLs".to_string())?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let address = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&address)
            .await
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<Vec<u8>, String>(response)
    };
    // ECPay waits about 10 seconds for an answer.
    let response = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "no answer within 10 s".to_string())??;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "not an HTTP response".to_string())?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// A page in `language` (the browser's `Accept-Language`, as ECPay's own pages follow it).
fn page_in(language: Language, title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n{body}\n</body></html>\n",
        lang = language.tag()
    )
}

/// A developer's page (the simulator's own switches), in English.
fn page(title: &str, body: &str) -> String {
    page_in(Language::English, title, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(fields: &[(&str, &str)]) -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_independent_verifier_reproduces_ecpays_published_examples() {
        // AioCheckOut V5 documentation example.
        let checkout = owned(&[
            ("ChoosePayment", "ALL"),
            ("EncryptType", "1"),
            ("ItemName", "Apple iphone 15"),
            ("MerchantID", "3002607"),
            ("MerchantTradeDate", "2023/03/12 15:30:23"),
            ("MerchantTradeNo", "ecpay20230312153023"),
            ("PaymentType", "aio"),
            ("ReturnURL", "https://www.ecpay.com.tw/receive.php"),
            ("TotalAmount", "30000"),
            ("TradeDesc", "促銷方案"),
        ]);
        assert_eq!(
            independent_check_mac(&checkout, ecpay::STAGE_HASH_KEY, ecpay::STAGE_HASH_IV),
            "6C51C9E6888DE861FD62FB1DD17029FC742634498FD813DC43D4243B5685B840"
        );
        // ECPay SDK's payment-notification example.
        let notification = owned(&[
            ("MerchantID", "3002607"),
            ("MerchantTradeNo", "WPLL4E341E122DB44D62"),
            ("PaymentDate", "2019/05/09 00:01:21"),
            ("PaymentType", "Credit_CreditCard"),
            ("PaymentTypeChargeFee", "1"),
            ("RtnCode", "1"),
            ("RtnMsg", "交易成功"),
            ("SimulatePaid", "0"),
            ("TradeAmt", "500"),
            ("TradeDate", "2019/05/09 00:00:18"),
            ("TradeNo", "1905090000188278"),
        ]);
        assert_eq!(
            independent_check_mac(&notification, ecpay::STAGE_HASH_KEY, ecpay::STAGE_HASH_IV),
            "6E7F053EF215FC851A050A2FF01D72CBE440EA138DC3E905647985DDF236FD25"
        );
    }

    #[test]
    fn the_two_implementations_agree_on_awkward_values() {
        for value in [
            "~ ' # & ?",
            "烏龍茶 禮盒 (2入) *限量*!",
            "  two  spaces  ",
            "a+b=c",
            "",
        ] {
            let fields = owned(&[("ItemName", value), ("MerchantID", "3002607")]);
            let ours = ecpay::check_mac_value(
                fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                ecpay::STAGE_HASH_KEY,
                ecpay::STAGE_HASH_IV,
            );
            assert_eq!(
                independent_check_mac(&fields, ecpay::STAGE_HASH_KEY, ecpay::STAGE_HASH_IV),
                ours,
                "{value:?}"
            );
        }
    }

    #[test]
    fn custom_fields_follow_ecpays_character_rules() {
        let mut form: BTreeMap<String, String> = [
            ("MerchantTradeNo", "PT2611290000ABCDEF"),
            ("MerchantTradeDate", "2026/11/29 10:00:00"),
            ("PaymentType", "aio"),
            ("EncryptType", "1"),
            ("ChoosePayment", "Credit"),
            ("TotalAmount", "500"),
            ("TradeDesc", "Points recharge"),
            ("ItemName", "點數儲值 500 點"),
            (
                "ReturnURL",
                "http://127.0.0.1:3000/api/payments/ecpay/callback/",
            ),
            ("CustomField1", "0191b1f0c2a37e4c9e1d7b2a3c4d5e6f"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(check_formats(&form), Ok(()));
        form.insert(
            "CustomField1".into(),
            "0191b1f0-c2a3-7e4c-9e1d-7b2a3c4d5e6f".into(),
        );
        assert!(check_formats(&form).unwrap_err().contains("'-'"));
        form.insert("CustomField1".into(), "x".repeat(51));
        assert!(check_formats(&form).is_err());
        form.insert("CustomField1".into(), String::new());
        form.insert("MerchantTradeNo".into(), "PT-1".into());
        assert!(check_formats(&form).is_err());
        form.insert("MerchantTradeNo".into(), "PT1".into());
        form.insert("MerchantTradeDate".into(), "2026-11-29 10:00:00".into());
        assert!(check_formats(&form).is_err());
        form.insert("MerchantTradeDate".into(), "2026/11/29 10:00:00".into());
        form.insert("TotalAmount".into(), "500.5".into());
        assert!(check_formats(&form).is_err());
    }
}
