use serde::{Deserialize, Serialize};

use std::num::NonZeroI64;

use super::{
    MerchantTradeNo, OrderId, PointTransaction, Points, RefundId, Timestamp, TransactionType,
    UserId,
};

/// A member's points. Invariants: `balance == total_earned - total_spent ==
/// purchased + promotional`, neither kind below zero, and each equals the sum of its column in the
/// member's ledger rows.
///
/// Two kinds, because the law treats them apart: **purchased** points are sold value (a prepaid
/// voucher under 經濟部's 零售業等商品(服務)禮券定型化契約應記載及不得記載事項: no expiry, refundable);
/// **promotional** points were given (operators' adjustments, campaigns) and are neither.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointAccount {
    pub user_id: UserId,
    pub balance: i64,
    pub purchased: i64,
    pub promotional: i64,
    pub total_earned: i64,
    pub total_spent: i64,
}

impl PointAccount {
    pub fn opening(user_id: &UserId) -> Self {
        PointAccount {
            user_id: user_id.clone(),
            balance: 0,
            purchased: 0,
            promotional: 0,
            total_earned: 0,
            total_spent: 0,
        }
    }
}

/// What refunding `purchased` points pays back, in whole NT$ rounded down: their value at
/// `points_per_twd` points per NT$, less `fee_percent` of it.
pub fn refundable_twd(purchased: i64, points_per_twd: i64, fee_percent: u32) -> i64 {
    if purchased <= 0 || points_per_twd <= 0 {
        return 0;
    }
    let kept = 100 - i128::from(fee_percent.min(100));
    let twd = i128::from(purchased) * kept / (100 * i128::from(points_per_twd));
    i64::try_from(twd).unwrap_or(i64::MAX)
}

/// The account as read for a balance change. The write of the change is conditioned on this
/// `version` and `balance`, so a change worked out on a stale read never lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountSnapshot {
    pub balance: i64,
    /// Of `balance`, the points bought (accounts from before the two kinds: all of it).
    pub purchased: i64,
    /// Of `balance`, the points given.
    pub promotional: i64,
    /// Every promotional point ever given, a running total that never goes down: an expiring gift
    /// remembers it, and what was given after the gift is what it tells apart (see
    /// [`expiring_points`]).
    pub promotional_granted: i64,
    pub total_earned: i64,
    pub total_spent: i64,
    pub version: i64,
}

/// What expires of a gift of `granted` promotional points when the account holds `promotional`
/// and `granted_since` were given after the gift. Promotional points are spent first and, among
/// them, the oldest first: whatever was given later is still held before any of this gift is, so
/// the gift's unspent part is what the account holds beyond the later gifts, at most the gift.
/// Purchased points never enter it.
pub fn expiring_points(granted: i64, promotional: i64, granted_since: i64) -> i64 {
    (promotional - granted_since.max(0)).clamp(0, granted.max(0))
}

/// Why points move, and what the movement is tied to. Every amount is positive by its type but an
/// adjustment's, which carries its sign and is never zero.
#[derive(Debug, Clone, Copy)]
pub enum Movement<'a> {
    /// Points bought: a paid ECPay payment (its MerchantTradeNo).
    Recharge {
        points: Points,
        payment: &'a MerchantTradeNo,
    },
    /// Points redeemed for an order: promotional points first, then purchased ones (what the member
    /// was given is used before what they paid for, which stays refundable).
    Spend { points: Points, order: &'a OrderId },
    /// A cancelled order's points given back: it undoes a spend, so `total_spent` goes down. Each
    /// kind goes back as the spend took it: `promotional` of `points` were promotional.
    Refund {
        points: Points,
        order: &'a OrderId,
        promotional: i64,
    },
    /// Purchased points handed back for money (a refund to the card): only purchased points, so
    /// `total_earned` goes down (they are un-bought).
    CashRefund {
        points: Points,
        refund: &'a RefundId,
    },
    /// A failed refund's unpaid points back on the balance, as purchased points.
    CashRefundReturned {
        points: Points,
        refund: &'a RefundId,
    },
    /// Promotional points past `PROMOTIONAL_POINTS_EXPIRE_DAYS`: only promotional points, never
    /// more than are held; `gift` says which gift (the reason on the ledger row).
    Expiry { points: Points, gift: &'a str },
    /// An operator's correction, either way, always with a reason: upward it gives promotional
    /// points; downward it takes promotional points first, then purchased ones.
    Adjustment {
        delta: NonZeroI64,
        reason: &'a str,
        operator: &'a UserId,
    },
}

/// A balance change worked out on a snapshot: what the account must still be (`read`), what it
/// becomes (`next`, one version on), and the ledger row that records it with the exact balance
/// after. The store writes exactly this, in one transaction, or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceChange {
    pub read: AccountSnapshot,
    pub next: AccountSnapshot,
    pub entry: PointTransaction,
}

/// Why a movement cannot be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The balance would go below zero.
    #[error("the balance is {balance}; this needs {needed}")]
    Overdraft { balance: i64, needed: i64 },
    /// A refund asks for more than the purchased points.
    #[error("{purchased} purchased points can be refunded; this needs {needed}")]
    NotRefundable { purchased: i64, needed: i64 },
    /// Arithmetic past `i64` (an amount's sign is in its type).
    #[error("the amount is out of range")]
    OutOfRange,
}

impl AccountSnapshot {
    /// The one place a balance changes: `movement` applied to this snapshot, refused if it would
    /// take the balance below zero (or overflow). `id` is the ledger row's id.
    pub fn apply(
        &self,
        member_id: &UserId,
        movement: Movement<'_>,
        id: String,
        at: Timestamp,
    ) -> Result<BalanceChange, Refusal> {
        let add = |a: i64, b: i64| a.checked_add(b).ok_or(Refusal::OutOfRange);
        // Taking `count` points: promotional ones first, then purchased; (purchased, promotional)
        // deltas, both zero or negative.
        let take = |count: i64| {
            let promotional = self.promotional.clamp(0, count);
            (-(count - promotional), -promotional)
        };
        let (transaction_type, amount, earned, spent, (purchased, promotional)) = match movement {
            Movement::Recharge { points, .. } => {
                let points = points.get();
                (TransactionType::Recharge, points, points, 0, (points, 0))
            }
            Movement::Spend { points, .. } => {
                let points = points.get();
                (TransactionType::Spend, -points, 0, points, take(points))
            }
            Movement::Refund {
                points,
                promotional,
                ..
            } => {
                let points = points.get();
                let promotional = promotional.clamp(0, points);
                (
                    TransactionType::Refund,
                    points,
                    0,
                    -points,
                    (points - promotional, promotional),
                )
            }
            Movement::CashRefund { points, .. } => {
                let points = points.get();
                if points > self.purchased {
                    return Err(Refusal::NotRefundable {
                        purchased: self.purchased,
                        needed: points,
                    });
                }
                (TransactionType::Refund, -points, -points, 0, (-points, 0))
            }
            Movement::CashRefundReturned { points, .. } => {
                let points = points.get();
                (TransactionType::Refund, points, points, 0, (points, 0))
            }
            Movement::Expiry { points, .. } => {
                let points = points.get().min(self.promotional.max(0));
                (TransactionType::Expiry, -points, 0, points, (0, -points))
            }
            Movement::Adjustment { delta, .. } => match delta.get() {
                given if given > 0 => (TransactionType::Adjustment, given, given, 0, (0, given)),
                taken => {
                    let taken_back = taken.checked_neg().ok_or(Refusal::OutOfRange)?;
                    (
                        TransactionType::Adjustment,
                        taken,
                        0,
                        taken_back,
                        take(taken_back),
                    )
                }
            },
        };
        let balance = add(self.balance, amount)?;
        let next_purchased = add(self.purchased, purchased)?;
        let next_promotional = add(self.promotional, promotional)?;
        if balance < 0 || next_purchased < 0 || next_promotional < 0 {
            return Err(Refusal::Overdraft {
                balance: self.balance,
                needed: -amount,
            });
        }
        let given = match movement {
            Movement::Adjustment { delta, .. } if delta.get() > 0 => delta.get(),
            _ => 0,
        };
        let next = AccountSnapshot {
            balance,
            purchased: next_purchased,
            promotional: next_promotional,
            promotional_granted: add(self.promotional_granted, given)?,
            total_earned: add(self.total_earned, earned)?,
            total_spent: add(self.total_spent, spent)?,
            version: add(self.version, 1)?,
        };
        let (mut payment_id, mut order_id, mut reason, mut adjusted_by, mut refund_id) =
            (None, None, None, None, None);
        match movement {
            Movement::Recharge { payment, .. } => payment_id = Some(payment.as_str()),
            Movement::Spend { order, .. } | Movement::Refund { order, .. } => {
                order_id = Some(order.as_str())
            }
            Movement::CashRefund { refund, .. } | Movement::CashRefundReturned { refund, .. } => {
                refund_id = Some(refund.as_str())
            }
            Movement::Adjustment {
                reason: why,
                operator,
                ..
            } => {
                reason = Some(why);
                adjusted_by = Some(operator.as_str());
            }
            Movement::Expiry { gift, .. } => reason = Some(gift),
        }
        Ok(BalanceChange {
            read: *self,
            next,
            entry: PointTransaction {
                id,
                member_id: member_id.clone(),
                transaction_type,
                amount,
                purchased,
                promotional,
                balance_after: balance,
                payment_id: payment_id.map(str::to_string),
                order_id: order_id.map(str::to_string),
                reason: reason.map(str::to_string),
                adjusted_by: adjusted_by.map(str::to_string),
                refund_id: refund_id.map(str::to_string),
                created_at: at,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> UserId {
        UserId::parse("0191b1f0-c2a3-7e4c-9e1d-7b2a3c4d5e6f").unwrap()
    }

    fn points(count: i64) -> Points {
        Points::new(count).unwrap()
    }

    fn delta(change: i64) -> NonZeroI64 {
        NonZeroI64::new(change).unwrap()
    }

    fn account(balance: i64) -> AccountSnapshot {
        AccountSnapshot {
            balance,
            purchased: balance,
            promotional: 0,
            promotional_granted: 0,
            total_earned: balance + 40,
            total_spent: 40,
            version: 7,
        }
    }

    fn apply(read: AccountSnapshot, movement: Movement<'_>) -> Result<BalanceChange, Refusal> {
        read.apply(&member(), movement, "row".into(), chrono::Utc::now())
    }

    #[test]
    fn every_movement_keeps_balance_equal_to_earned_minus_spent_and_records_the_balance_after() {
        let start = account(100);
        let (payment, order, operator) = (
            MerchantTradeNo::parse("PT1").unwrap(),
            OrderId::generate(),
            UserId::generate(),
        );
        let movements = [
            Movement::Recharge {
                points: points(500),
                payment: &payment,
            },
            Movement::Spend {
                points: points(300),
                order: &order,
            },
            Movement::Refund {
                points: points(300),
                order: &order,
                promotional: 0,
            },
            Movement::Adjustment {
                delta: delta(-250),
                reason: "duplicate credit",
                operator: &operator,
            },
            Movement::Adjustment {
                delta: delta(20),
                reason: "goodwill",
                operator: &operator,
            },
        ];
        let mut read = start;
        let mut ledger_sum = start.balance;
        for movement in movements {
            let change = apply(read, movement).unwrap();
            ledger_sum += change.entry.amount;
            assert_eq!(change.read, read);
            assert_eq!(change.next.version, read.version + 1);
            assert_eq!(change.next.balance, change.entry.balance_after);
            assert_eq!(change.next.balance, ledger_sum);
            assert_eq!(
                change.next.balance,
                change.next.total_earned - change.next.total_spent
            );
            assert_eq!(
                change.next.balance,
                change.next.purchased + change.next.promotional
            );
            assert_eq!(
                change.entry.amount,
                change.entry.purchased + change.entry.promotional
            );
            read = change.next;
        }
        assert_eq!(read.balance, 370);
    }

    #[test]
    fn nothing_takes_a_balance_below_zero_and_the_last_point_can_be_spent() {
        let read = account(100);
        let (order, operator) = (OrderId::generate(), UserId::generate());
        let spend = |count| Movement::Spend {
            points: points(count),
            order: &order,
        };
        assert_eq!(apply(read, spend(100)).unwrap().next.balance, 0);
        assert_eq!(
            apply(read, spend(101)),
            Err(Refusal::Overdraft {
                balance: 100,
                needed: 101
            })
        );
        let take = Movement::Adjustment {
            delta: delta(-101),
            reason: "r",
            operator: &operator,
        };
        assert!(matches!(apply(read, take), Err(Refusal::Overdraft { .. })));
    }

    #[test]
    fn arithmetic_never_wraps() {
        // A zero or negative amount cannot even be written (`Points`, `NonZeroI64`); what is left
        // to refuse is arithmetic past `i64`.
        let read = account(100);
        let (payment, operator) = (MerchantTradeNo::parse("PT1").unwrap(), UserId::generate());
        for movement in [
            Movement::Recharge {
                points: points(i64::MAX),
                payment: &payment,
            },
            Movement::Adjustment {
                delta: delta(i64::MIN),
                reason: "r",
                operator: &operator,
            },
        ] {
            assert_eq!(
                apply(read, movement),
                Err(Refusal::OutOfRange),
                "{movement:?}"
            );
        }
    }

    #[test]
    fn given_points_are_spent_first_and_come_back_as_they_were_taken() {
        let (order, operator) = (OrderId::generate(), UserId::generate());
        // 300 bought, then 50 given by an operator.
        let given = apply(
            account(300),
            Movement::Adjustment {
                delta: delta(50),
                reason: "welcome",
                operator: &operator,
            },
        )
        .unwrap();
        assert_eq!((given.next.purchased, given.next.promotional), (300, 50));
        assert_eq!((given.entry.purchased, given.entry.promotional), (0, 50));
        // An order of 80 takes the 50 given, then 30 bought.
        let spend = apply(
            given.next,
            Movement::Spend {
                points: points(80),
                order: &order,
            },
        )
        .unwrap();
        assert_eq!((spend.next.purchased, spend.next.promotional), (270, 0));
        assert_eq!((spend.entry.purchased, spend.entry.promotional), (-30, -50));
        // Cancelled, each kind goes back as it was taken.
        let refund = apply(
            spend.next,
            Movement::Refund {
                points: points(80),
                order: &order,
                promotional: -spend.entry.promotional,
            },
        )
        .unwrap();
        assert_eq!((refund.next.purchased, refund.next.promotional), (300, 50));
        // A correction downward takes promotional points first.
        let taken = apply(
            refund.next,
            Movement::Adjustment {
                delta: delta(-70),
                reason: "duplicate",
                operator: &operator,
            },
        )
        .unwrap();
        assert_eq!((taken.next.purchased, taken.next.promotional), (280, 0));
        assert_eq!((taken.entry.purchased, taken.entry.promotional), (-20, -50));
    }

    #[test]
    fn expiry_takes_only_the_gifts_unspent_promotional_points_never_purchased_ones() {
        // 100 given, then 50 given later; 120 promotional held (30 of the first gift spent).
        assert_eq!(expiring_points(100, 120, 50), 70);
        // Everything of the first gift spent: nothing of it expires.
        assert_eq!(expiring_points(100, 40, 50), 0);
        // Never more than the gift, whatever is held.
        assert_eq!(expiring_points(100, 500, 0), 100);
        let mut read = account(300);
        read.promotional = 80;
        read.balance = 380;
        read.total_earned += 80;
        let gift = "row-1";
        let expired = apply(
            read,
            Movement::Expiry {
                points: points(100),
                gift,
            },
        )
        .unwrap();
        // At most what is held, and never a purchased point.
        assert_eq!((expired.next.purchased, expired.next.promotional), (300, 0));
        assert_eq!(expired.entry.amount, -80);
        assert_eq!(expired.entry.transaction_type, TransactionType::Expiry);
        assert_eq!(
            expired.next.balance,
            expired.next.total_earned - expired.next.total_spent
        );
    }

    #[test]
    fn a_refund_pays_whole_nt_dollars_rounded_down_after_the_fee() {
        assert_eq!(refundable_twd(1_000, 1, 0), 1_000);
        assert_eq!(refundable_twd(1_000, 1, 3), 970);
        assert_eq!(refundable_twd(999, 1, 3), 969); // 969.03
        assert_eq!(refundable_twd(1_001, 2, 0), 500); // 500.5
        assert_eq!(refundable_twd(0, 1, 3), 0);
        assert_eq!(refundable_twd(i64::MAX, 1, 0), i64::MAX);
    }
}
