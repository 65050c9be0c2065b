//! Every error `code`'s message in English and in Traditional Chinese (Taiwan), and which of the two
//! a request asked for (`Accept-Language`). The `code` never changes with the language; only the
//! `message` does. English answers keep the specific message the code path wrote (it may name what
//! was wrong); Traditional Chinese answers use this catalogue's. Per-field problems (`fields`) stay
//! as written (their keys are what a frontend reads).

/// The languages answers are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    #[default]
    English,
    /// 繁體中文 (臺灣).
    TraditionalChinese,
}

impl Language {
    /// The language `accept_language` prefers among the two, by RFC 9110 §12.5.4: each range with
    /// its q-value (1 unless given, 0 meaning "not this"), the highest q first, earlier first on a
    /// tie. `zh`, `zh-TW…` and `zh-Hant…` are Traditional Chinese; `en…` and `*` are English; any
    /// other range is passed over. Nothing acceptable, or no header, is English.
    pub fn negotiate(accept_language: Option<&str>) -> Self {
        let Some(header) = accept_language else {
            return Language::English;
        };
        let mut ranges: Vec<(u16, usize, Option<Language>)> = Vec::new();
        for (position, item) in header.split(',').enumerate() {
            let mut parts = item.split(';');
            let range = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let mut q = 1000u16;
            for param in parts {
                let param = param.trim();
                if let Some(value) = param
                    .strip_prefix("q=")
                    .or_else(|| param.strip_prefix("Q="))
                {
                    q = parse_q(value.trim()).unwrap_or(0);
                }
            }
            if range.is_empty() || q == 0 {
                continue;
            }
            let language =
                if range == "zh" || range.starts_with("zh-tw") || range.starts_with("zh-hant") {
                    Some(Language::TraditionalChinese)
                } else if range == "*" || range == "en" || range.starts_with("en-") {
                    Some(Language::English)
                } else {
                    None
                };
            ranges.push((q, position, language));
        }
        ranges.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        ranges
            .into_iter()
            .find_map(|(_, _, language)| language)
            .unwrap_or_default()
    }

    /// Its `Content-Language` tag.
    pub fn tag(self) -> &'static str {
        match self {
            Language::English => "en",
            Language::TraditionalChinese => "zh-Hant-TW",
        }
    }

    /// `english` or `chinese`, as this language reads.
    pub fn pick(self, english: &'static str, chinese: &'static str) -> &'static str {
        match self {
            Language::English => english,
            Language::TraditionalChinese => chinese,
        }
    }
}

/// A q-value: 0 to 1 with at most three decimals, in thousandths.
fn parse_q(value: &str) -> Option<u16> {
    let number: f64 = value.parse().ok()?;
    (0.0..=1.0)
        .contains(&number)
        .then(|| (number * 1000.0).round() as u16)
}

/// `(code, English, 繁體中文)` for every error code the API answers.
pub const MESSAGES: &[(&str, &str, &str)] = &[
    // Any route.
    (
        "validation_failed",
        "the request has invalid fields",
        "請求中有欄位不正確",
    ),
    (
        "malformed_json",
        "the request body is not valid JSON",
        "請求內容不是有效的 JSON",
    ),
    (
        "invalid_body",
        "the request body has the wrong shape",
        "請求內容的格式不正確",
    ),
    (
        "missing_field",
        "a required field is missing",
        "缺少必填欄位",
    ),
    ("value_too_long", "a value is too long", "欄位內容過長"),
    (
        "invalid_query",
        "a query parameter is invalid",
        "查詢參數不正確",
    ),
    (
        "invalid_cursor",
        "the page cursor is invalid or belongs to another list",
        "分頁游標無效或不屬於此清單",
    ),
    (
        "invalid_header",
        "a request header is invalid",
        "請求標頭不正確",
    ),
    (
        "method_not_allowed",
        "this route does not accept that method",
        "此路徑不接受這個 HTTP 方法",
    ),
    (
        "payload_too_large",
        "the request body is too large",
        "請求內容過大",
    ),
    (
        "unsupported_media_type",
        "the request body's media type is not accepted",
        "不接受此請求內容的媒體類型",
    ),
    (
        "request_timeout",
        "the request body did not arrive in time",
        "請求內容未在時限內送達",
    ),
    (
        "route_not_found",
        "nothing is served at this path",
        "此路徑沒有提供任何服務",
    ),
    (
        "service_unavailable",
        "the service is busy, retry shortly",
        "服務忙碌中，請稍後再試",
    ),
    (
        "overloaded",
        "the service is overloaded, retry shortly",
        "服務負載過高，請稍後再試",
    ),
    (
        "internal_error",
        "something went wrong on our side",
        "系統發生錯誤，請稍後再試",
    ),
    // Authentication and access.
    (
        "missing_token",
        "an access token is required",
        "需要存取權杖",
    ),
    ("invalid_token", "the token is invalid", "權杖無效"),
    ("token_expired", "the token has expired", "權杖已過期"),
    (
        "wrong_token_type",
        "this kind of token is not accepted here",
        "此處不接受這種權杖",
    ),
    (
        "token_reused",
        "this refresh token was already used: the session is revoked",
        "此更新權杖已使用過，登入階段已被撤銷",
    ),
    (
        "token_revoked",
        "the session was logged out",
        "登入階段已登出",
    ),
    (
        "invalid_credentials",
        "wrong username or password",
        "帳號或密碼錯誤",
    ),
    (
        "account_disabled",
        "this account is disabled",
        "此帳號已停用",
    ),
    (
        "too_many_failed_logins",
        "too many failed logins; try again later",
        "登入失敗次數過多，請稍後再試",
    ),
    (
        "forbidden",
        "your role may not do this",
        "您的身分無法執行此操作",
    ),
    (
        "username_taken",
        "this username is already taken",
        "此使用者名稱已被使用",
    ),
    (
        "email_taken",
        "this email is already registered",
        "此電子郵件已被註冊",
    ),
    (
        "cannot_disable_self",
        "an operator cannot disable their own account",
        "管理員不能停用自己的帳號",
    ),
    // What a path names.
    ("user_not_found", "no such user", "找不到此使用者"),
    ("member_not_found", "no such member", "找不到此會員"),
    ("merchant_not_found", "no such merchant", "找不到此商家"),
    ("product_not_found", "no such product", "找不到此商品"),
    ("order_not_found", "no such order", "找不到此訂單"),
    ("payment_not_found", "no such payment", "找不到此付款"),
    (
        "address_not_found",
        "no such address of mine",
        "找不到此收件地址",
    ),
    ("refund_not_found", "no such refund", "找不到此退款"),
    ("statement_not_found", "no such statement", "找不到此對帳單"),
    (
        "webhook_not_found",
        "no such webhook of mine",
        "找不到此 Webhook",
    ),
    (
        "delivery_not_found",
        "no such delivery of this webhook",
        "找不到此 Webhook 的傳送紀錄",
    ),
    ("invoice_not_found", "no such invoice", "找不到此發票"),
    (
        "payout_account_not_found",
        "no payout account is kept yet",
        "尚未設定收款帳戶",
    ),
    (
        "pickup_code_not_found",
        "no pending order has this pickup code",
        "沒有待取貨訂單使用此取貨碼",
    ),
    // Points, orders and money.
    ("insufficient_points", "not enough points", "點數不足"),
    ("insufficient_stock", "not enough stock", "庫存不足"),
    (
        "insufficient_refundable_points",
        "not enough purchased points to refund",
        "可退款的購買點數不足",
    ),
    (
        "price_changed",
        "the price changed: check the new price and try again",
        "價格已變更，請確認新價格後再試",
    ),
    (
        "product_blocked",
        "this product is not for sale",
        "此商品目前不開放兌換",
    ),
    (
        "version_conflict",
        "someone changed this meanwhile: reload and try again",
        "資料已被他人修改，請重新載入後再試",
    ),
    (
        "idempotency_key_reused",
        "this Idempotency-Key was used with another request",
        "此 Idempotency-Key 已用於另一個請求",
    ),
    (
        "order_not_pending",
        "the order can no longer change",
        "此訂單已無法變更",
    ),
    ("order_cancelled", "the order was cancelled", "此訂單已取消"),
    (
        "order_not_completed",
        "only a completed order can be cancelled here",
        "只有已完成的訂單可以在此取消",
    ),
    (
        "already_completed",
        "the order is already completed",
        "此訂單已完成",
    ),
    (
        "already_shipped",
        "the order is already shipped",
        "此訂單已出貨",
    ),
    (
        "not_a_delivery",
        "the order is not a delivery",
        "此訂單不是宅配訂單",
    ),
    (
        "not_shipped",
        "the order has not shipped yet",
        "此訂單尚未出貨",
    ),
    (
        "pickup_code_required",
        "this order is completed with its pickup code",
        "此訂單需以取貨碼完成",
    ),
    (
        "too_many_attempts",
        "too many wrong pickup codes; try again later",
        "取貨碼錯誤次數過多，請稍後再試",
    ),
    (
        "too_many_webhooks",
        "too many webhooks",
        "Webhook 數量已達上限",
    ),
    (
        "webhook_disabled",
        "the webhook is disabled",
        "此 Webhook 已停用",
    ),
    (
        "too_many_addresses",
        "too many saved addresses",
        "儲存的收件地址已達上限",
    ),
    (
        "payment_settled",
        "the payment is already settled",
        "此付款已結清",
    ),
    (
        "payment_not_pending",
        "the payment is no longer pending",
        "此付款已不在待付款狀態",
    ),
    (
        "too_many_open_recharges",
        "too many unpaid recharges: pay one or wait until it expires",
        "未付款的儲值過多，請先付款或等待逾期",
    ),
    (
        "too_many_checkout_attempts",
        "this checkout link was opened too many times",
        "此付款連結開啟次數過多",
    ),
    (
        "refund_not_open",
        "the refund is already refunded or failed",
        "此退款已完成或已失敗",
    ),
    (
        "refund_in_flight",
        "a call to ECPay for this refund is not yet settled",
        "此退款向綠界的請求尚未確認",
    ),
    (
        "statement_not_issued",
        "the statement is no longer issued",
        "此對帳單已不在待付款狀態",
    ),
    (
        "invoice_not_failed",
        "only a failed invoice is retried",
        "只有開立失敗的發票可以重試",
    ),
];

/// The message of `code` in `language`, if the catalogue has it.
pub fn message(code: &str, language: Language) -> Option<&'static str> {
    MESSAGES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, english, chinese)| language.pick(english, chinese))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_chooses_by_q_value_and_anything_else_is_english() {
        use Language::*;
        for (header, expected) in [
            (None, English),
            (Some(""), English),
            (Some("zh-TW"), TraditionalChinese),
            (Some("zh-Hant-HK"), TraditionalChinese),
            (Some("zh"), TraditionalChinese),
            (Some("ZH-tw,en;q=0.5"), TraditionalChinese),
            (Some("zh-CN"), English),
            (Some("fr"), English),
            (Some("en;q=0.9, zh-TW;q=0.8"), English),
            (Some("en;q=0.5, zh-TW"), TraditionalChinese),
            (Some("fr, zh-TW;q=0.3"), TraditionalChinese),
            (Some("zh-TW;q=0, en"), English),
            (Some("zh-TW;q=bogus"), English),
            (Some("*;q=0.1, zh;q=0.2"), TraditionalChinese),
            (Some("ja, en-GB;q=0.4, zh;q=0.4"), English),
        ] {
            assert_eq!(Language::negotiate(header), expected, "{header:?}");
        }
    }

    #[test]
    fn every_code_has_an_english_and_a_traditional_chinese_message_once() {
        let mut seen = std::collections::BTreeSet::new();
        for (code, english, chinese) in MESSAGES {
            assert!(seen.insert(*code), "{code} twice");
            assert!(
                code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code}"
            );
            assert!(
                !english.is_empty() && english.is_ascii(),
                "{code}: {english}"
            );
            assert!(
                chinese
                    .chars()
                    .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "{code}: {chinese} is not Chinese"
            );
        }
    }
}
