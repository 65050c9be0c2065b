//! Key shapes of the single table. See docs/data-model.md for the access patterns they serve.

pub fn user_pk(user_id: &str) -> String {
    format!("USER#{user_id}")
}
pub const USER_PROFILE_SK: &str = "PROFILE";
pub const ACCOUNT_SK: &str = "ACCOUNT";
/// gsi1 / gsi2 of user profiles: the directory operators search, by canonical username and by
/// canonical email. One partition each: sign-ups are far below its 1,000 writes per second.
pub const USERS_BY_NAME_GSI: &str = "USERS_BY_NAME";
pub const USERS_BY_EMAIL_GSI: &str = "USERS_BY_EMAIL";
/// The operators' audit log: one partition, newest first by a time-ordered id. Admin actions are
/// rare, so one partition is far below its limits, and a list needs no merge.
pub const AUDIT_PK: &str = "AUDIT";
pub fn audit_sk(entry_id: &str) -> String {
    format!("ENTRY#{entry_id}")
}
pub const AUDIT_SK_PREFIX: &str = "ENTRY#";
/// An Idempotency-Key for a points adjustment, scoped to the member adjusted: two operators
/// following one runbook with the same key make one adjustment, not two. (Beside the member's own
/// redemption keys, told apart by the sort key.)
pub fn adjustment_idempotency_pk(member_id: &str, key: &str) -> String {
    format!("IDEMPOTENCY#{member_id}#{key}")
}
pub const ADJUSTMENT_IDEMPOTENCY_SK: &str = "ADJUST";

/// Uniqueness guards: one item per lower-cased username and email, written in the registration
/// transaction with `attribute_not_exists`, so two users can never share either.
pub fn username_pk(canonical_username: &str) -> String {
    format!("USERNAME#{canonical_username}")
}
pub const USERNAME_SK: &str = "USERNAME";
pub fn email_pk(canonical_email: &str) -> String {
    format!("EMAIL#{canonical_email}")
}
pub const EMAIL_SK: &str = "EMAIL";

pub fn token_family_pk(family: &str) -> String {
    format!("TOKENFAMILY#{family}")
}
pub const TOKEN_FAMILY_SK: &str = "FAMILY";

pub fn product_pk(product_id: &str) -> String {
    format!("PRODUCT#{product_id}")
}
pub const PRODUCT_SK: &str = "PRODUCT";
/// A product's stock shard `index`. Each shard is its own partition key, not a sort key under the
/// product's: DynamoDB's 1,000 write units per second are per partition ("Best practices for
/// designing and using partition keys effectively"), and adaptive capacity splits a hot partition
/// only after minutes of heat, too late for a flash sale.
pub fn stock_shard_pk(product_id: &str, index: usize) -> String {
    format!("PRODUCT#{product_id}#STOCK#{index:02}")
}
pub const STOCK_SHARD_SK: &str = "STOCK";
/// gsi1: a merchant's products, newest first (the sort key is the time-ordered product id).
pub fn merchant_products_gsi(merchant_id: &str) -> String {
    format!("MERCHANT_PRODUCTS#{merchant_id}")
}
/// gsi2: the active catalogue, spread over [`CATALOGUE_PARTITIONS`] index partitions by product id
/// and read back merged (`store::spread_lists`). Sparse: only active products carry these keys.
/// One partition serves 3,000 read units a second, and every member browsing during a sale reads
/// the catalogue's newest page; spread, each page reads about a quarter of its items from each
/// partition. The count is part of the stored keys: changing it means re-keying every product.
pub const CATALOGUE_PARTITIONS: usize = 4;
pub fn catalogue_gsi(product_id: &str) -> String {
    format!("CATALOGUE#{}", spread(product_id, CATALOGUE_PARTITIONS))
}
pub fn catalogue_partitions() -> Vec<String> {
    (0..CATALOGUE_PARTITIONS)
        .map(|i| format!("CATALOGUE#{i}"))
        .collect()
}

/// Ledger rows live in the member's own partition, keyed by the account version their change
/// produced: exactly one row per version, so the order is the true order of balance changes (no
/// reliance on clocks), and a second row for one version cannot be written.
pub fn ledger_sk(account_version: i64) -> String {
    format!("TXN#{account_version:012}")
}
pub const LEDGER_SK_PREFIX: &str = "TXN#";

pub fn payment_pk(merchant_trade_no: &str) -> String {
    format!("PAYMENT#{merchant_trade_no}")
}
pub const PAYMENT_SK: &str = "PAYMENT";
/// A payment's signed checkout form, beside it (see `payments.rs`).
pub const CHECKOUT_SK: &str = "CHECKOUT";
/// gsi1: a member's payments, newest first.
pub fn member_payments_gsi(member_id: &str) -> String {
    format!("MEMBER_PAYMENTS#{member_id}")
}

pub fn order_pk(order_id: &str) -> String {
    format!("ORDER#{order_id}")
}
pub const ORDER_SK: &str = "ORDER";
/// Guards the human-friendly order number's uniqueness.
pub fn order_number_pk(order_number: &str) -> String {
    format!("ORDERNO#{order_number}")
}
pub const ORDER_NUMBER_SK: &str = "ORDERNO";
/// gsi1: a member's orders, newest first.
pub fn member_orders_gsi(member_id: &str) -> String {
    format!("MEMBER_ORDERS#{member_id}")
}
/// gsi2: orders on a merchant's products, newest first, spread over
/// [`MERCHANT_ORDER_PARTITIONS`] index partitions by order id. A flash sale writes every order of
/// one merchant at once, and an index partition takes 1,000 writes a second (an index that cannot
/// keep up throttles the table's writes); spread, one merchant's sale can take eight times that.
/// The count is part of the stored keys: changing it means re-keying every order.
pub const MERCHANT_ORDER_PARTITIONS: usize = 8;
pub fn merchant_orders_gsi(merchant_id: &str, order_id: &str) -> String {
    format!(
        "MERCHANT_ORDERS#{merchant_id}#{}",
        spread(order_id, MERCHANT_ORDER_PARTITIONS)
    )
}
pub fn merchant_orders_partitions(merchant_id: &str) -> Vec<String> {
    (0..MERCHANT_ORDER_PARTITIONS)
        .map(|i| format!("MERCHANT_ORDERS#{merchant_id}#{i}"))
        .collect()
}

/// A pickup code's guard: names the order (and its merchant) the code completes, and queues the
/// order for expiry on gsi2 (`pickups_due_gsi`) until it is collected or cancelled.
pub fn pickup_code_pk(code: &str) -> String {
    format!("PICKUPCODE#{code}")
}
pub const PICKUP_CODE_SK: &str = "PICKUPCODE";
/// gsi2: pickups by the time they expire, spread like a merchant's orders (a sale writes one per
/// order); the sort key is the expiry time then the order id.
pub const PICKUPS_DUE_PARTITIONS: usize = 8;
pub fn pickups_due_gsi(order_id: &str) -> String {
    format!("PICKUPS_DUE#{}", spread(order_id, PICKUPS_DUE_PARTITIONS))
}
pub fn pickups_due_partitions() -> Vec<String> {
    (0..PICKUPS_DUE_PARTITIONS)
        .map(|i| format!("PICKUPS_DUE#{i}"))
        .collect()
}

/// An order's place in the queue of `work` due (`store::due`): one item per order and kind.
pub fn due_pk(work: &str, order_id: &str) -> String {
    format!("DUE#{work}#{order_id}")
}
pub const DUE_SK: &str = "DUE";
/// gsi2: the queue of `work`, spread over partitions by order id, sorted by when it is due.
pub const DUE_PARTITIONS: usize = 8;
pub fn due_gsi(work: &str, order_id: &str) -> String {
    format!("{work}_DUE#{}", spread(order_id, DUE_PARTITIONS))
}
pub fn due_partitions(work: &str) -> Vec<String> {
    (0..DUE_PARTITIONS)
        .map(|i| format!("{work}_DUE#{i}"))
        .collect()
}

/// Which of `partitions` an id's index entry lives in: FNV-1a of the id, a hash fixed by its
/// definition (unlike std's `DefaultHasher`), so every version of the code agrees where an item is.
fn spread(id: &str, partitions: usize) -> usize {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % partitions as u64) as usize
}
/// The outcome of an `Idempotency-Key`, per member.
pub fn idempotency_pk(member_id: &str, key: &str) -> String {
    format!("IDEMPOTENCY#{member_id}#{key}")
}
pub const IDEMPOTENCY_SK: &str = "REDEEM";
/// gsi2: payments still open (pending), oldest first: what reconciliation walks. Sparse: a payment
/// leaves it when it is paid or expired.
pub const OPEN_PAYMENTS_GSI: &str = "OPEN_PAYMENTS";
/// Under a payment's partition: what ECPay said about it, oldest first.
pub const PAYMENT_AUDIT_SK_PREFIX: &str = "GATEWAY#";
/// ECPay-wide state (the QueryTradeInfo cool-down after a 403).
pub const GATEWAY_PK: &str = "ECPAY";
pub const GATEWAY_COOLDOWN_SK: &str = "QUERY_COOLDOWN";
/// ECPay-wide: when QueryTradeInfo was last called, by any function (the shared pacing slot).
pub const GATEWAY_QUERY_SLOT_SK: &str = "QUERY_SLOT";
/// A scheduled job's lease: one run at a time across every instance.
pub fn job_lease_pk(job: &str) -> String {
    format!("JOB#{job}")
}
pub const JOB_LEASE_SK: &str = "LEASE";
/// Under a user's partition: the set of the member's recharges still open (the cap's slots).
pub const OPEN_RECHARGES_SK: &str = "OPEN_RECHARGES";
/// Under a member's partition: one saved delivery address, and the set of their ids (the cap's
/// slots).
pub fn address_sk(id: &str) -> String {
    format!("ADDRESS#{id}")
}
pub const ADDRESS_SK_PREFIX: &str = "ADDRESS#";
pub const ADDRESS_SLOTS_SK: &str = "ADDRESS_SLOTS";

/// A member's refunds live in the member's partition, newest last (ids are UUIDv7).
pub fn refund_sk(refund_id: &str) -> String {
    format!("REFUND#{refund_id}")
}
pub const REFUND_SK_PREFIX: &str = "REFUND#";
/// The refund request's Idempotency-Key, beside the redemption's under the same member and key.
pub const REFUND_IDEMPOTENCY_SK: &str = "REFUND";
/// gsi1: every refund, newest first, for operators.
pub const REFUNDS_GSI: &str = "REFUNDS";
/// gsi2: refunds with work due (requested or processing), by when, spread like the other queues.
pub const REFUNDS_DUE_PARTITIONS: usize = 8;
pub fn refunds_due_gsi(refund_id: &str) -> String {
    format!("REFUNDS_DUE#{}", spread(refund_id, REFUNDS_DUE_PARTITIONS))
}
pub fn refunds_due_partitions() -> Vec<String> {
    (0..REFUNDS_DUE_PARTITIONS)
        .map(|i| format!("REFUNDS_DUE#{i}"))
        .collect()
}

/// A gift of promotional points due to expire: one item per gift, queued on gsi2 by when.
pub fn gift_expiry_pk(member_id: &str, gift_id: &str) -> String {
    format!("GIFT_EXPIRY#{member_id}#{gift_id}")
}
pub const GIFTS_EXPIRING_PARTITIONS: usize = 8;
pub fn gifts_expiring_gsi(gift_id: &str) -> String {
    format!(
        "GIFTS_EXPIRING#{}",
        spread(gift_id, GIFTS_EXPIRING_PARTITIONS)
    )
}
pub fn gifts_expiring_partitions() -> Vec<String> {
    (0..GIFTS_EXPIRING_PARTITIONS)
        .map(|i| format!("GIFTS_EXPIRING#{i}"))
        .collect()
}

/// A settlement line: one item per order and type (`SALE`, `REVERSAL`).
pub fn settlement_line_pk(order_id: &str) -> String {
    format!("SETTLEMENT#{order_id}")
}
/// gsi2: a merchant's lines in no statement yet, by when they become available.
pub fn open_lines_gsi(merchant_id: &str) -> String {
    format!("OPEN_LINES#{merchant_id}")
}
/// gsi1: a statement's lines.
pub fn statement_lines_gsi(statement_id: &str) -> String {
    format!("STATEMENT_LINES#{statement_id}")
}
pub fn statement_pk(statement_id: &str) -> String {
    format!("STATEMENT#{statement_id}")
}
pub const STATEMENT_SK: &str = "STATEMENT";
/// gsi1: a merchant's statements, newest period first.
pub fn merchant_statements_gsi(merchant_id: &str) -> String {
    format!("MERCHANT_STATEMENTS#{merchant_id}")
}
/// gsi2: every statement in one state (operators).
pub fn statements_by_state_gsi(state: &str) -> String {
    format!("STATEMENTS#{state}")
}
/// A merchant's own commission (an operator's override) and payout account, in the user's partition.
pub const COMMISSION_SK: &str = "COMMISSION";
pub const PAYOUT_ACCOUNT_SK: &str = "PAYOUT_ACCOUNT";
/// A member's invoice preference (where their e-invoices go).
pub const INVOICE_PREFERENCE_SK: &str = "INVOICE_PREFERENCE";
/// An e-invoice, keyed by its RelateNumber (derived from what it invoices, so the sale's
/// transaction, a cancellation and a refund all find it without a read of anything else).
pub fn invoice_pk(relate_number: &str) -> String {
    format!("INVOICE#{relate_number}")
}
pub const INVOICE_SK: &str = "INVOICE";
/// gsi1: a member's invoices, newest first.
pub fn member_invoices_gsi(member_id: &str) -> String {
    format!("MEMBER_INVOICES#{member_id}")
}
/// gsi2: invoices with a call due, by when, spread like the other queues.
pub const INVOICES_DUE_PARTITIONS: usize = 8;
pub fn invoices_due_gsi(relate_number: &str) -> String {
    format!(
        "INVOICES_DUE#{}",
        spread(relate_number, INVOICES_DUE_PARTITIONS)
    )
}
pub fn invoices_due_partitions() -> Vec<String> {
    (0..INVOICES_DUE_PARTITIONS)
        .map(|i| format!("INVOICES_DUE#{i}"))
        .collect()
}
/// gsi2: failed invoices, for operators, by when they failed.
pub const FAILED_INVOICES_GSI: &str = "INVOICES_FAILED";
/// The periods the month-end run has closed (sort key: the period's last day).
pub const CLOSED_PERIODS_PK: &str = "SETTLEMENT_PERIODS";

/// A merchant's webhook endpoints live in the merchant's partition, counted by a set of their ids
/// (the slots item) kept in the transactions that add and remove them.
pub fn webhook_sk(id: &str) -> String {
    format!("WEBHOOK#{id}")
}
pub const WEBHOOK_SK_PREFIX: &str = "WEBHOOK#";
pub const WEBHOOK_SLOTS_SK: &str = "WEBHOOK_SLOTS";
/// An endpoint's deliveries live in its own partition, newest last (ids are UUIDv7).
pub fn webhook_pk(id: &str) -> String {
    format!("WEBHOOK#{id}")
}
pub fn delivery_sk(id: &str) -> String {
    format!("DELIVERY#{id}")
}
pub const DELIVERY_SK_PREFIX: &str = "DELIVERY#";
/// The gsi2 queue of deliveries waiting longer than a queue can hold them (`due_gsi`).
pub const WEBHOOK_DUE_WORK: &str = "WEBHOOK";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_spread_over_every_partition_and_always_to_the_same_one() {
        let ids: Vec<String> = (0..400).map(|i| format!("01J{i:08}")).collect();
        let mut counts = [0usize; MERCHANT_ORDER_PARTITIONS];
        for id in &ids {
            counts[spread(id, MERCHANT_ORDER_PARTITIONS)] += 1;
            assert_eq!(merchant_orders_gsi("m", id), merchant_orders_gsi("m", id));
        }
        // 50 expected in each; a fair hash keeps every one within a wide margin.
        assert!(counts.iter().all(|c| (20..=80).contains(c)), "{counts:?}");
        // FNV-1a's published value for "a" (64-bit): the hash cannot drift between versions.
        assert_eq!(
            "a".bytes()
                .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b))
                    .wrapping_mul(0x0100_0000_01b3)),
            0xaf63_dc4c_8601_ec8c
        );
        assert!(catalogue_partitions().contains(&catalogue_gsi("01JABC")));
        assert!(merchant_orders_partitions("m").contains(&merchant_orders_gsi("m", "01JABC")));
    }
}
