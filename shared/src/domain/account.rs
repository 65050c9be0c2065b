use serde::{Deserialize, Serialize};

/// A member's points. Invariant: `balance == total_earned - total_spent`, and `balance` equals the
/// sum of the member's ledger rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointAccount {
    pub user_id: String,
    pub balance: i64,
    pub total_earned: i64,
    pub total_spent: i64,
}

impl PointAccount {
    pub fn opening(user_id: &str) -> Self {
        PointAccount {
            user_id: user_id.to_string(),
            balance: 0,
            total_earned: 0,
            total_spent: 0,
        }
    }
}
