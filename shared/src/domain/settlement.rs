//! What the platform owes merchants for the gifts they hand over. Marketplaces that do this well
//! (Stripe Connect's balance transactions and payouts, Shopify payouts) share the rules kept here:
//! one immutable line per completed order, a reversal is a new negative line (a line is never
//! edited), a statement is exactly the sum of its lines, and each line is in at most one statement.
//! Pure rules; the store keeps the lines and statements (`store::settlements`).

use serde::{Deserialize, Serialize};

use super::{OrderId, Timestamp, UserId};

/// The most commission an operator may set, in percent.
pub const COMMISSION_PERCENT_MAX: u32 = 50;

/// A sale (the order completed) or its reversal (an operator cancelled the completed order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LineType {
    Sale,
    Reversal,
}

impl LineType {
    pub fn as_str(self) -> &'static str {
        match self {
            LineType::Sale => "sale",
            LineType::Reversal => "reversal",
        }
    }
}

/// What one line is worth, in whole NT$: `gross_twd - commission_twd = net_twd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineAmounts {
    pub points: i64,
    pub gross_twd: i64,
    /// The commission rate the line was written with (lines keep it when the rate changes).
    pub commission_percent: u32,
    pub commission_twd: i64,
    pub net_twd: i64,
}

/// `numerator / denominator` rounded half up, for non-negative values.
fn half_up(numerator: i128, denominator: i128) -> i64 {
    if denominator <= 0 {
        return 0;
    }
    let rounded = (2 * numerator + denominator) / (2 * denominator);
    i64::try_from(rounded).unwrap_or(i64::MAX)
}

/// A sale of `points` at `points_per_twd` points per NT$ (whatever their kind: promotional points
/// are the platform's own cost), with `commission_percent` kept by the platform. Gross and
/// commission are each rounded half up to whole NT$ per line; net is what is left.
pub fn sale(points: i64, points_per_twd: i64, commission_percent: u32) -> LineAmounts {
    let points = points.max(0);
    let gross_twd = half_up(i128::from(points), i128::from(points_per_twd.max(1)));
    let percent = commission_percent.min(100);
    let commission_twd = half_up(i128::from(gross_twd) * i128::from(percent), 100);
    LineAmounts {
        points,
        gross_twd,
        commission_percent: percent,
        commission_twd,
        net_twd: gross_twd - commission_twd,
    }
}

impl LineAmounts {
    /// The reversal of this sale: every amount negated, at the rate the sale was written with.
    pub fn reversed(self) -> LineAmounts {
        LineAmounts {
            points: -self.points,
            gross_twd: -self.gross_twd,
            commission_percent: self.commission_percent,
            commission_twd: -self.commission_twd,
            net_twd: -self.net_twd,
        }
    }
}

/// One settlement line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementLine {
    pub order_id: OrderId,
    pub order_number: String,
    pub merchant_id: UserId,
    pub line_type: LineType,
    pub amounts: LineAmounts,
    /// When the order completed (a sale) or was cancelled after completion (a reversal).
    pub at: Timestamp,
    /// `pending` until this (`SETTLEMENT_HOLD_DAYS` after `at`), then `available`.
    pub available_at: Timestamp,
    /// The statement it landed in, once one did.
    pub statement_id: Option<String>,
}

/// The sums of some lines: what a statement's totals must be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Totals {
    pub gross_twd: i64,
    pub commission_twd: i64,
    pub net_twd: i64,
    pub lines: i64,
}

impl Totals {
    pub fn of<'a>(lines: impl IntoIterator<Item = &'a LineAmounts>) -> Totals {
        lines.into_iter().fold(Totals::default(), |t, l| Totals {
            gross_twd: t.gross_twd + l.gross_twd,
            commission_twd: t.commission_twd + l.commission_twd,
            net_twd: t.net_twd + l.net_twd,
            lines: t.lines + 1,
        })
    }
}

/// The statement period a day ends: `YYYY-MM` of `period_end` (a Taipei date).
pub fn period_of(period_end: chrono::NaiveDate) -> String {
    period_end.format("%Y-%m").to_string()
}

/// The end of `day` in Taipei time (the first instant after it), as UTC.
pub fn end_of_taipei_day(day: chrono::NaiveDate) -> Timestamp {
    let next = day.succ_opt().unwrap_or(day);
    let midnight = next.and_hms_opt(0, 0, 0).unwrap_or_default();
    (midnight - chrono::Duration::hours(8)).and_utc()
}

/// The last day of the month before the one `now` is in, in Taipei time: the period the month-end
/// run closes.
pub fn last_closed_month_end(now: Timestamp) -> chrono::NaiveDate {
    use chrono::Datelike;
    let today = super::codes::in_taipei(now).date_naive();
    today
        .with_day(1)
        .and_then(|first| first.pred_opt())
        .unwrap_or(today)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commission_rounds_half_up_per_line_and_net_is_what_is_left() {
        let line = sale(1_005, 1, 10);
        assert_eq!(
            (line.gross_twd, line.commission_twd, line.net_twd),
            (1_005, 101, 904)
        ); // 100.5 → 101
        let line = sale(1_004, 1, 10);
        assert_eq!(line.commission_twd, 100); // 100.4 → 100
        let line = sale(15, 2, 10);
        assert_eq!((line.gross_twd, line.commission_twd), (8, 1)); // 7.5 → 8; 0.8 → 1
        assert_eq!(sale(999, 1, 0).net_twd, 999);
        let reversal = sale(1_005, 1, 10).reversed();
        assert_eq!(
            (
                reversal.gross_twd,
                reversal.commission_twd,
                reversal.net_twd
            ),
            (-1_005, -101, -904)
        );
        assert_eq!(
            Totals::of([&sale(1_005, 1, 10), &reversal]),
            Totals {
                gross_twd: 0,
                commission_twd: 0,
                net_twd: 0,
                lines: 2
            }
        );
    }

    #[test]
    fn periods_are_taipei_months() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        assert_eq!(period_of(day), "2026-11");
        assert_eq!(
            end_of_taipei_day(day).to_rfc3339(),
            "2026-11-30T16:00:00+00:00"
        );
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T00:30:00+08:00")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(last_closed_month_end(now), day);
    }
}
