//! The ECPay-facing function: the server-to-server payment notification (no JWT; authenticated by
//! CheckMacValue) and the signed checkout link that hands a member's browser to ECPay.

use lambda_http::{http::StatusCode, Body, Request, Response};
use shared::domain::{MerchantTradeNo, Settlement};
use shared::error::messages::Language;
use shared::http::{escape_html, html, language_of, parse_form, query_param, text, Answer, Call};
use shared::services::recharge::{
    invalid_checkout_link, NotificationOutcome, NotificationRejected,
};
use shared::{AppContext, AppError};

shared::api! {
    pub struct PaymentsApi {
        // Each route once: its method and path are in its `#[utoipa::path]`, nowhere else.
        handlers: [
            ecpay_notification: PUBLIC,
            checkout: PUBLIC,
        ],
        tags((name = "payments", description = "ECPay-facing routes (no bearer token)"))
    }
}

pub async fn handle(ctx: &AppContext, req: Request) -> Response<Body> {
    PaymentsApi::router().serve(ctx, &req).await
}

/// The form fields ECPay posts (documentation only: every received field is verified).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct EcpayNotification {
    #[schema(rename = "MerchantID", example = "3002607")]
    merchant_id: String,
    #[schema(rename = "MerchantTradeNo")]
    merchant_trade_no: String,
    #[schema(rename = "RtnCode", example = "1")]
    rtn_code: String,
    #[schema(rename = "RtnMsg")]
    rtn_msg: String,
    #[schema(rename = "TradeNo")]
    trade_no: String,
    #[schema(rename = "TradeAmt")]
    trade_amt: String,
    #[schema(rename = "PaymentDate")]
    payment_date: String,
    #[schema(rename = "PaymentType")]
    payment_type: String,
    #[schema(rename = "SimulatePaid", example = "0")]
    simulate_paid: String,
    #[schema(rename = "CheckMacValue")]
    check_mac_value: String,
}

/// ECPay's payment notification (ReturnURL). Verified by CheckMacValue over every field; credits the
/// member once however often it arrives. Answers `1|OK` when handled (also for repeats and declines),
/// `0|<reason>` with 400 when refused.
#[utoipa::path(
    post, path = "/api/payments/ecpay/callback/", tag = "payments",
    request_body(content = inline(EcpayNotification), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Handled", body = String, content_type = "text/plain", example = "1|OK"),
        (status = 400, description = "Refused, nothing changed", body = String, content_type = "text/plain", example = "0|CheckMacValue mismatch"),
        (status = 413, description = "Body over 64 KiB", body = shared::http::ErrorResponse),
        (status = 415, description = "Not a form body", body = shared::http::ErrorResponse),
        (status = 503, description = "Storage contended; ECPay retries later", body = shared::http::ErrorResponse),
    )
)]
async fn ecpay_notification(ctx: &AppContext, req: &Request, _call: &Call) -> Answer {
    let fields = parse_form(req)?;
    let trade_no = fields
        .iter()
        .find(|(k, _)| k == "MerchantTradeNo")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    match ctx.recharge().handle_notification(&fields).await? {
        Ok(outcome) => {
            match &outcome {
                NotificationOutcome::Settled(Settlement::Credited { balance_after, .. }) => {
                    tracing::info!(merchant_trade_no = %trade_no, balance_after, "recharge credited")
                }
                NotificationOutcome::Settled(Settlement::Recorded) => {
                    tracing::info!(merchant_trade_no = %trade_no, "ECPay reported a failure; the payment stays open")
                }
                NotificationOutcome::Settled(Settlement::AlreadySettled(status)) => {
                    tracing::info!(merchant_trade_no = %trade_no, ?status, "repeated notification ignored")
                }
                NotificationOutcome::SimulationIgnored => {
                    tracing::info!(merchant_trade_no = %trade_no, "SimulatePaid=1 notification acknowledged, not credited")
                }
            }
            text(StatusCode::OK, "1|OK")
        }
        Err(NotificationRejected(reason)) => {
            tracing::warn!(merchant_trade_no = %trade_no, reason, "ECPay notification refused");
            shared::observe::count(shared::observe::Metric::RechargeCallbacksRefused, 1.0);
            text(StatusCode::BAD_REQUEST, &format!("0|{reason}"))
        }
    }
}

/// The page a checkout link opens: an auto-submitting form that hands the browser to ECPay. Each
/// opening is a new checkout attempt with its own MerchantTradeNo (ECPay refuses a number twice).
/// Links are signed and work for 15 minutes, while the recharge is unpaid.
#[utoipa::path(
    get, path = "/api/payments/ecpay/checkout/{merchant_trade_no}/", tag = "payments",
    params(
        ("merchant_trade_no" = String, Path, description = "The payment's MerchantTradeNo"),
        ("expires" = i64, Query, description = "From the checkout_url"),
        ("signature" = String, Query, description = "From the checkout_url"),
    ),
    responses(
        (status = 200, description = "Auto-submitting form", body = String, content_type = "text/html"),
        (status = 403, description = "Invalid or expired link", body = String, content_type = "text/html"),
        (status = 404, description = "No such payment", body = String, content_type = "text/html"),
        (status = 409, description = "Already paid or closed, or opened too often", body = String, content_type = "text/html"),
        (status = 503, description = "Storage contended; open the link again", body = String, content_type = "text/html"),
    )
)]
async fn checkout(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let expires = query_param(req, "expires");
    let signature = query_param(req, "signature");
    let payment = async {
        // Not a trade number at all: as invalid a link as a forged one.
        let trade_no = call.parse(
            "merchant_trade_no",
            MerchantTradeNo::parse,
            invalid_checkout_link,
        )?;
        ctx.recharge()
            .checkout_page(&trade_no, expires.as_deref(), signature.as_deref())
            .await
    };
    let language = language_of(req);
    let payment = match payment.await {
        Ok(payment) => payment,
        Err(err @ AppError::Internal { .. }) => return Err(err),
        Err(err) => {
            let status = err.status();
            let message = match language {
                Language::TraditionalChinese => {
                    shared::error::messages::message(err.code(), language)
                        .map(str::to_string)
                        .unwrap_or_else(|| err.to_string())
                }
                Language::English => err.to_string(),
            };
            return html(
                status,
                page(
                    language,
                    language.pick("Cannot continue to payment", "無法前往付款"),
                    &escape_html(&message),
                ),
            );
        }
    };
    let inputs: String = payment
        .checkout_fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                escape_html(k),
                escape_html(v)
            )
        })
        .collect();
    let going = match language {
        Language::TraditionalChinese => format!(
            "正在前往綠界付款：以新臺幣 {} 元購買 {} 點。",
            payment.amount, payment.points
        ),
        Language::English => format!(
            "Redirecting to ECPay to pay NT${} for {} points.",
            payment.amount, payment.points
        ),
    };
    let body = format!(
        "<p>{going}</p>\n\
         <form id=\"ecpay\" method=\"post\" action=\"{action}\" accept-charset=\"UTF-8\">\n{inputs}\
         <noscript><button type=\"submit\">{button}</button></noscript>\n</form>\n\
         <script>document.getElementById('ecpay').submit();</script>",
        button = language.pick("Continue to ECPay", "前往綠界付款"),
        action = escape_html(&payment.action_url),
    );
    html(
        StatusCode::OK,
        page(language, language.pick("Checkout", "前往付款"), &body),
    )
}

/// A page in `language` (the member's `Accept-Language`).
fn page(language: Language, title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n{body}\n</body></html>\n",
        lang = language.tag()
    )
}
