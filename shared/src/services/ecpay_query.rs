//! ECPay's QueryTradeInfo V5, asked through one pace shared by every function (`store::query_slot`)
//! and honouring ECPay's 30-minute refusal after a 403 (`store`'s cool-down item). Answers are
//! verified before anyone believes them: the MAC, our MerchantID, the trade asked about.

use super::recharge::RechargeService;
use crate::domain::MerchantTradeNo;
use crate::ecpay;
use crate::store::QuerySlot;

/// Why QueryTradeInfo gave no trustworthy answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryFailure {
    /// ECPay answered 403 (too many queries) now or within the last 30 minutes.
    #[error("ECPay is refusing queries until {until} (it answered 403)")]
    CoolingDown { until: i64 },
    #[error("ECPay could not be queried: {0}")]
    Unreachable(String),
    /// Our own pacing has no moment free soon enough (other functions are querying): nothing was
    /// asked; come back after `free_at` (Unix seconds).
    #[error("every query moment is taken until {free_at}")]
    Paced { free_at: i64 },
    #[error("the query answer was refused: {0}")]
    Rejected(ecpay::TradeInfoRejected),
}

/// ECPay answers queries that come too fast with 403 and then refuses every one for 30 minutes.
const QUERY_COOLDOWN_SECS: i64 = 30 * 60;

/// The longest a query waits for its moment in the table-wide pacing (see `store::query_slot`):
/// past that, the caller is told to come back (the run stops, an operator gets 503).
const QUERY_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(10);

impl RechargeService<'_> {
    /// Asks ECPay about one trade (QueryTradeInfo V5) and verifies the answer: the MAC, our
    /// MerchantID, the trade asked about. A 403 puts every query on hold for 30 minutes.
    pub async fn query_trade(
        &self,
        merchant_trade_no: &MerchantTradeNo,
    ) -> Result<ecpay::TradeInfo, QueryFailure> {
        let url = self
            .payments
            .query_url()
            .ok_or_else(|| QueryFailure::Unreachable("no QueryTradeInfo URL".into()))?;
        let reply = self
            .paced_query(&url, || {
                ecpay::query_trade_info_form(
                    merchant_trade_no,
                    self.clock.now(),
                    &self.payments.credentials,
                )
            })
            .await?;
        ecpay::verify_trade_info(&reply.body, merchant_trade_no, &self.payments.credentials)
            .map_err(QueryFailure::Rejected)
    }

    /// POSTs the form `form` makes to one of ECPay's query APIs (QueryTradeInfo, QueryTrade/V2) in
    /// its turn of the table-wide pacing, honouring and recording ECPay's 30-minute refusal after
    /// a 403. `form` is built once the turn has come (a `TimeStamp` in it is then fresh). The
    /// answer, HTTP 200, is the caller's to verify.
    pub(crate) async fn paced_query(
        &self,
        url: &str,
        form: impl FnOnce() -> std::collections::BTreeMap<String, String>,
    ) -> Result<crate::gateway::GatewayReply, QueryFailure> {
        let now = self.clock.now();
        match self.store.gateway_cooldown().await {
            Ok(Some(until)) if until > now.timestamp() => {
                return Err(QueryFailure::CoolingDown { until })
            }
            Ok(_) => {}
            Err(err) => return Err(QueryFailure::Unreachable(err.to_string())),
        }
        // `query_spacing` apart across every function and instance, whoever asks (reconciliation,
        // an operator, a notification being confirmed, a refund): ECPay locks out a caller that
        // queries too fast, and it sees all of ours as one.
        self.wait_for_query_moment().await?;
        let form = form();
        let reply = self
            .gateway
            .post_form(url, &form)
            .await
            .map_err(QueryFailure::Unreachable)?;
        if reply.status == 403 {
            let until = now.timestamp() + QUERY_COOLDOWN_SECS;
            tracing::warn!(
                until,
                "ECPay answered a query with 403: queries paused for 30 minutes"
            );
            if let Err(err) = self.store.set_gateway_cooldown(until).await {
                tracing::warn!(error = %err, "could not record the query cool-down");
            }
            return Err(QueryFailure::CoolingDown { until });
        }
        if reply.status != 200 {
            return Err(QueryFailure::Unreachable(format!("HTTP {}", reply.status)));
        }
        Ok(reply)
    }

    /// Takes this query's moment in the table-wide pacing and waits for it.
    async fn wait_for_query_moment(&self) -> Result<(), QueryFailure> {
        let spacing = i64::try_from(self.payments.query_spacing.as_millis()).unwrap_or(i64::MAX);
        let max_wait = QUERY_WAIT_MAX.as_millis() as i64;
        // Each race lost means another caller took a moment: a few in a row is a crowd.
        for _ in 0..16 {
            let now = self.clock.now().timestamp_millis();
            match self.store.reserve_query_slot(now, spacing, max_wait).await {
                Ok(QuerySlot::At(at)) => {
                    let wait = u64::try_from(at - now).unwrap_or(0);
                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                    return Ok(());
                }
                Ok(QuerySlot::Busy { free_at }) => {
                    return Err(QueryFailure::Paced {
                        free_at: free_at / 1000,
                    })
                }
                Ok(QuerySlot::Raced) => continue,
                Err(err) => return Err(QueryFailure::Unreachable(err.to_string())),
            }
        }
        Err(QueryFailure::Paced {
            free_at: self.clock.now().timestamp() + 1,
        })
    }
}
