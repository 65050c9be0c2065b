//! A stand-in for ECPay's AioCheckOut V5, for offline development. It is part of the local host only
//! and never compiled into a Lambda function. It checks a posted checkout form as ECPay does, shows
//! the order with Pay and Decline buttons, and then sends a correctly signed server-to-server
//! notification to the form's ReturnURL over real HTTP, as ECPay would.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use rand::Rng;
use shared::ecpay::{self, Credentials};
use shared::http::{escape_html, html, parse_form};
use shared::AppError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const PREFIX: &str = "/dev/ecpay/";
pub const CHECKOUT_PATH: &str = "/dev/ecpay/Cashier/AioCheckOut/V5";

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

struct Order {
    form: BTreeMap<String, String>,
    notification: Option<BTreeMap<String, String>>,
    merchant_answer: Option<String>,
}

pub struct EcpaySimulator {
    credentials: Credentials,
    /// Every MerchantTradeNo ever posted: ECPay refuses one it has seen.
    orders: Mutex<HashMap<String, Order>>,
}

impl EcpaySimulator {
    pub fn new(credentials: Credentials) -> Self {
        EcpaySimulator {
            credentials,
            orders: Mutex::new(HashMap::new()),
        }
    }

    pub async fn handle(&self, req: &Request) -> Result<Response<Body>, AppError> {
        match (req.method().as_str(), req.uri().path()) {
            ("POST", CHECKOUT_PATH) => self.checkout(req),
            ("POST", "/dev/ecpay/pay") => self.settle(req, true).await,
            ("POST", "/dev/ecpay/decline") => self.settle(req, false).await,
            ("POST", "/dev/ecpay/notify-again") => self.notify_again(req).await,
            _ => Err(AppError::not_found(
                "route_not_found",
                "no such simulator page",
            )),
        }
    }

    fn checkout(&self, req: &Request) -> Result<Response<Body>, AppError> {
        let fields = parse_form(req)?;
        let form: BTreeMap<String, String> = fields.iter().cloned().collect();
        let refuse = |message: &str| {
            html(
                StatusCode::BAD_REQUEST,
                page(
                    "ECPay simulator: 交易失敗 Transaction refused",
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
        if !ecpay::verify(
            fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &self.credentials,
        ) {
            return refuse("CheckMacValue Error");
        }
        if form["EncryptType"] != "1" || form["PaymentType"] != "aio" {
            return refuse("EncryptType must be 1 and PaymentType aio");
        }
        if form["TotalAmount"].parse::<u64>().map_or(true, |a| a == 0) {
            return refuse("TotalAmount must be a positive whole number");
        }
        let trade_no = form["MerchantTradeNo"].clone();
        {
            let mut orders = self
                .orders
                .lock()
                .map_err(|_| AppError::internal("simulator state poisoned"))?;
            if orders.contains_key(&trade_no) {
                return refuse("訂單編號重覆 MerchantTradeNo is duplicated");
            }
            orders.insert(
                trade_no.clone(),
                Order {
                    form: form.clone(),
                    notification: None,
                    merchant_answer: None,
                },
            );
        }
        let body = format!(
            "<p>This is the local ECPay simulator: no card, no money.</p>\n\
             <table>\n<tr><th>MerchantTradeNo</th><td id=\"trade-no\">{trade_no}</td></tr>\n\
             <tr><th>Item</th><td>{item}</td></tr>\n<tr><th>Amount</th><td id=\"amount\">NT$ {amount}</td></tr>\n</table>\n\
             <form method=\"post\" action=\"/dev/ecpay/pay\"><input type=\"hidden\" name=\"MerchantTradeNo\" value=\"{trade_no}\">\
             <button id=\"pay\" type=\"submit\">付款 Pay</button></form>\n\
             <form method=\"post\" action=\"/dev/ecpay/decline\"><input type=\"hidden\" name=\"MerchantTradeNo\" value=\"{trade_no}\">\
             <button id=\"decline\" type=\"submit\">拒絕 Decline</button></form>",
            trade_no = escape_html(&trade_no),
            item = escape_html(&form["ItemName"]),
            amount = escape_html(&form["TotalAmount"]),
        );
        html(
            StatusCode::OK,
            page("ECPay simulator: 信用卡付款 Credit card", &body),
        )
    }

    fn trade_no_of(req: &Request) -> Result<String, AppError> {
        parse_form(req)?
            .into_iter()
            .find(|(k, _)| k == "MerchantTradeNo")
            .map(|(_, v)| v)
            .ok_or_else(|| AppError::bad_request("missing_field", "MerchantTradeNo is required"))
    }

    async fn settle(&self, req: &Request, pay: bool) -> Result<Response<Body>, AppError> {
        let trade_no = Self::trade_no_of(req)?;
        let notification = {
            let mut orders = self
                .orders
                .lock()
                .map_err(|_| AppError::internal("simulator state poisoned"))?;
            let order = orders.get_mut(&trade_no).ok_or_else(|| {
                AppError::not_found("order_not_found", "the simulator has no such order")
            })?;
            if order.notification.is_none() {
                order.notification = Some(self.notification_for(&order.form, pay));
            }
            order.notification.clone().unwrap_or_default()
        };
        self.deliver_and_report(&trade_no, notification).await
    }

    async fn notify_again(&self, req: &Request) -> Result<Response<Body>, AppError> {
        let trade_no = Self::trade_no_of(req)?;
        let notification = {
            let orders = self
                .orders
                .lock()
                .map_err(|_| AppError::internal("simulator state poisoned"))?;
            orders
                .get(&trade_no)
                .and_then(|o| o.notification.clone())
                .ok_or_else(|| {
                    AppError::not_found("order_not_found", "nothing was sent for this order yet")
                })?
        };
        self.deliver_and_report(&trade_no, notification).await
    }

    /// The notification ECPay sends to ReturnURL after a card payment.
    fn notification_for(
        &self,
        form: &BTreeMap<String, String>,
        pay: bool,
    ) -> BTreeMap<String, String> {
        let now = chrono::Utc::now();
        let mut rng = rand::thread_rng();
        let trade_no = format!(
            "{}{:06}",
            ecpay::taipei_time(now)
                .replace(['/', ' ', ':'], "")
                .get(2..12)
                .unwrap_or("0000000000"),
            rng.gen_range(0..1_000_000)
        );
        let mut n = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            n.insert(k.to_string(), v.to_string());
        };
        put("MerchantID", &form["MerchantID"]);
        put("MerchantTradeNo", &form["MerchantTradeNo"]);
        put("StoreID", "");
        put("RtnCode", if pay { "1" } else { "10100248" });
        put("RtnMsg", if pay { "交易成功" } else { "拒絕交易" });
        put("TradeNo", &trade_no);
        put("TradeAmt", &form["TotalAmount"]);
        put("PaymentDate", &ecpay::taipei_time(now));
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

    async fn deliver_and_report(
        &self,
        trade_no: &str,
        notification: BTreeMap<String, String>,
    ) -> Result<Response<Body>, AppError> {
        let form = {
            let orders = self
                .orders
                .lock()
                .map_err(|_| AppError::internal("simulator state poisoned"))?;
            orders
                .get(trade_no)
                .map(|o| o.form.clone())
                .unwrap_or_default()
        };
        let return_url = form.get("ReturnURL").cloned().unwrap_or_default();
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
            }
        }
        let paid = notification.get("RtnCode").is_some_and(|c| c == "1");
        let onward = if let Some(url) = form.get("OrderResultURL").filter(|u| !u.is_empty()) {
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
            format!("<form method=\"post\" action=\"{}\">{inputs}<button id=\"back\" type=\"submit\">回到商店 Back to the shop</button></form>", escape_html(url))
        } else if let Some(url) = form.get("ClientBackURL").filter(|u| !u.is_empty()) {
            format!(
                "<p><a id=\"back\" href=\"{}\">回到商店 Back to the shop</a></p>",
                escape_html(url)
            )
        } else {
            String::new()
        };
        let body = format!(
            "<p id=\"result\">{result}</p>\n<p>Notification sent to <code>{url}</code>; the merchant answered: \
             <code id=\"merchant-answer\">{answer}</code></p>\n\
             <form method=\"post\" action=\"/dev/ecpay/notify-again\"><input type=\"hidden\" name=\"MerchantTradeNo\" value=\"{trade_no}\">\
             <button id=\"notify-again\" type=\"submit\">再送一次通知 Send the notification again</button></form>\n{onward}",
            result = if paid { "付款成功 Paid" } else { "付款失敗 Declined" },
            url = escape_html(&return_url),
            answer = escape_html(&answer),
            trade_no = escape_html(trade_no),
        );
        html(
            StatusCode::OK,
            page("ECPay simulator: 付款結果 Result", &body),
        )
    }
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

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"zh-Hant\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n{body}\n</body></html>\n"
    )
}
