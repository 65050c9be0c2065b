use serde::{Deserialize, Serialize};

use std::num::NonZeroI64;

use super::{
    MerchantTradeNo, OrderId, PointTransaction, Points, Timestamp, TransactionType, UserId,
};

/// A member's points. Invariant: `balance == total_earned - total_spent`, and `balance` equals the
/// sum of the member's ledger rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointAccount {
    pub user_id: UserId,
    pub balance: i64,
    pub total_earned: i64,
    pub total_spent: i64,
}

impl PointAccount {
    pub fn opening(user_id: &UserId) -> Self {
        PointAccount {
            user_id: user_id.clone(),
            balance: 0,
            total_earned: 0,
            total_spent: 0,
        }
    }
}

/// The account as read for a balance change. The write of the change is conditioned on this
/// `version` and `balance`, so a change worked out on a stale read never lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountSnapshot {
    pub balance: i64,
    pub total_earned: i64,
    pub total_spent: i64,
    pub version: i64,
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
    /// Points redeemed for an order.
    Spend { points: Points, order: &'a OrderId },
    /// A cancelled order's points given back: it undoes a spend, so `total_spent` goes down.
    Refund { points: Points, order: &'a OrderId },
    /// An operator's correction, either way, always with a reason.
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
        let (transaction_type, amount, earned, spent) = match movement {
            Movement::Recharge { points, .. } => {
                let points = points.get();
                (TransactionType::Recharge, points, points, 0)
            }
            Movement::Spend { points, .. } => {
                let points = points.get();
                (TransactionType::Spend, -points, 0, points)
            }
            Movement::Refund { points, .. } => {
                let points = points.get();
                (TransactionType::Refund, points, 0, -points)
            }
            Movement::Adjustment { delta, .. } => match delta.get() {
                given if given > 0 => (TransactionType::Adjustment, given, given, 0),
                taken => {
                    let taken_back = taken.checked_neg().ok_or(Refusal::OutOfRange)?;
                    (TransactionType::Adjustment, taken, 0, taken_back)
                }
            },
        };
        let balance = add(self.balance, amount)?;
        if balance < 0 {
            return Err(Refusal::Overdraft {
                balance: self.balance,
                needed: -amount,
            });
        }
        let next = AccountSnapshot {
            balance,
            total_earned: add(self.total_earned, earned)?,
            total_spent: add(self.total_spent, spent)?,
            version: add(self.version, 1)?,
        };
        let (payment_id, order_id, reason, adjusted_by) = match movement {
            Movement::Recharge { payment, .. } => (Some(payment.as_str()), None, None, None),
            Movement::Spend { order, .. } | Movement::Refund { order, .. } => {
                (None, Some(order.as_str()), None, None)
            }
            Movement::Adjustment {
                reason, operator, ..
            } => (None, None, Some(reason), Some(operator.as_str())),
        };
        Ok(BalanceChange {
            read: *self,
            next,
            entry: PointTransaction {
                id,
                member_id: member_id.clone(),
                transaction_type,
                amount,
                balance_after: balance,
                payment_id: payment_id.map(str::to_string),
                order_id: order_id.map(str::to_string),
                reason: reason.map(str::to_string),
                adjusted_by: adjusted_by.map(str::to_string),
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
}
