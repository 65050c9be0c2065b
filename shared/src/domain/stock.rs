//! A product's stock, split over shards so that a flash sale is not serialised on one item.
//!
//! On DynamoDB every redemption writes the item that holds the stock it takes. One item accepts one
//! transaction at a time (the others are cancelled with `TransactionConflict` while it is being
//! prepared) and at most 1,000 write units per second, so a popular product held in one item caps the
//! whole sale at what that item can take. Here the stock of a product lives in `K` shard items: a
//! redemption takes its units from one shard, chosen at random among those that can cover it, and
//! the product item itself is only condition-checked (price, still on sale), which does not conflict.
//!
//! The rules below are pure arithmetic over the shards' stock figures; the store writes their result
//! with conditions on every shard it touches, so a plan made from a stale read is refused, never
//! applied.

use rand::seq::SliceRandom;
use rand::Rng;

/// The most shards a product's stock is split over. A redemption's transaction holds one of them;
/// a merchant's stock edit writes all of them plus the product in one transaction (far below
/// DynamoDB's 100 items per transaction).
pub const MAX_SHARDS: u8 = 16;
/// The automatic shard count gives each shard about this many units: small stocks stay in one item,
/// a stock of 1,000 gets the full 16.
pub const UNITS_PER_SHARD: i64 = 64;

/// The number of shards a stock gets when the merchant does not ask for more.
pub fn shards_for(stock: i64) -> u8 {
    let wanted = (stock.max(1) + UNITS_PER_SHARD - 1) / UNITS_PER_SHARD;
    wanted.clamp(1, MAX_SHARDS as i64) as u8
}

/// `total` spread as evenly as it goes over `shards` (the first ones take the remainder).
pub fn spread(total: i64, shards: u8) -> Vec<i64> {
    let shards = shards.max(1) as i64;
    let (each, remainder) = (total / shards, total % shards);
    (0..shards)
        .map(|i| each + i64::from(i < remainder))
        .collect()
}

/// Picks, at random, a shard that can cover `need` units, skipping those in `tried` while another
/// candidate remains. `None` when no single shard holds `need` (the caller either consolidates, see
/// [`rebalance_plan`], or the product really is short).
pub fn pick_shard(stocks: &[i64], need: i64, tried: &[usize], rng: &mut impl Rng) -> Option<usize> {
    let candidates: Vec<usize> = (0..stocks.len()).filter(|&i| stocks[i] >= need).collect();
    let fresh: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|i| !tried.contains(i))
        .collect();
    if fresh.is_empty() {
        candidates.choose(rng).copied()
    } else {
        fresh.choose(rng).copied()
    }
}

/// A move of stock between shards: the new figure of each shard it touches. The total is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebalance {
    pub new_stock: Vec<(usize, i64)>,
}

/// Whether stock should move between shards before a redemption of `need` units, and how.
///
/// - **Consolidate** when the product holds `need` units in total but no single shard does: the
///   fullest shard takes from the next fullest until it covers `need`. Without this a large order
///   would be refused while the stock is there, so it is the only way "sold out" stays true.
/// - **Spread** when at least half the shards are dry and the fullest holds two units or more: half
///   of the fullest shard's stock goes to the dry ones, so buyers do not all pile onto the few shards
///   left (which would bring back the single-item contention sharding exists to avoid).
///
/// Otherwise `None`. A plan touches as few shards as it can: a dry shard is not being written by
/// anyone, so moving stock into it contends only with buyers of the donor.
pub fn rebalance_plan(stocks: &[i64], need: i64) -> Option<Rebalance> {
    let total: i64 = stocks.iter().sum();
    if stocks.len() < 2 || total < need || need < 1 {
        return None;
    }
    let mut order: Vec<usize> = (0..stocks.len()).collect();
    // Fullest first; ties by index so a plan is deterministic.
    order.sort_by(|&a, &b| stocks[b].cmp(&stocks[a]).then(a.cmp(&b)));
    let fullest = order[0];
    if stocks[fullest] < need {
        let mut gathered = stocks[fullest];
        let mut new_stock = vec![];
        for &donor in &order[1..] {
            if gathered >= need {
                break;
            }
            let take = stocks[donor].min(need - gathered);
            if take == 0 {
                continue;
            }
            gathered += take;
            new_stock.push((donor, stocks[donor] - take));
        }
        new_stock.insert(0, (fullest, gathered));
        return Some(Rebalance { new_stock });
    }
    let dry: Vec<usize> = (0..stocks.len()).filter(|&i| stocks[i] == 0).collect();
    let moving = stocks[fullest] / 2;
    if dry.len() * 2 < stocks.len() || moving < 1 {
        return None;
    }
    let receivers = &dry[..dry.len().min(moving as usize)];
    let shares = spread(moving, receivers.len() as u8);
    let mut new_stock = vec![(fullest, stocks[fullest] - moving)];
    new_stock.extend(receivers.iter().copied().zip(shares));
    Some(Rebalance { new_stock })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(stocks: &[i64], plan: &Rebalance) -> Vec<i64> {
        let mut after = stocks.to_vec();
        for (i, stock) in &plan.new_stock {
            after[*i] = *stock;
        }
        after
    }

    #[test]
    fn small_stocks_stay_in_one_item_and_large_ones_get_up_to_sixteen() {
        assert_eq!(shards_for(0), 1);
        assert_eq!(shards_for(64), 1);
        assert_eq!(shards_for(65), 2);
        assert_eq!(shards_for(1_000), 16);
        assert_eq!(shards_for(1_000_000), 16);
    }

    #[test]
    fn a_spread_loses_no_unit() {
        for total in [0, 1, 15, 16, 17, 1_000] {
            for shards in 1..=MAX_SHARDS {
                let parts = spread(total, shards);
                assert_eq!(parts.len(), shards as usize);
                assert_eq!(parts.iter().sum::<i64>(), total);
                assert!(parts.iter().max().unwrap() - parts.iter().min().unwrap() <= 1);
            }
        }
    }

    #[test]
    fn a_shard_is_picked_among_those_that_cover_the_order_and_others_are_tried_first() {
        let mut rng = rand::thread_rng();
        let stocks = [0, 3, 1, 5];
        for _ in 0..50 {
            let pick = pick_shard(&stocks, 2, &[], &mut rng).unwrap();
            assert!(pick == 1 || pick == 3);
            assert_eq!(pick_shard(&stocks, 2, &[1], &mut rng), Some(3));
        }
        // Every candidate tried: one of them again rather than nothing.
        assert!(pick_shard(&stocks, 2, &[1, 3], &mut rng).is_some());
        assert_eq!(pick_shard(&stocks, 6, &[], &mut rng), None);
    }

    #[test]
    fn an_order_larger_than_any_shard_is_covered_by_consolidating() {
        let stocks = [3, 0, 4, 2];
        let plan = rebalance_plan(&stocks, 8).unwrap();
        let after = apply(&stocks, &plan);
        assert_eq!(after.iter().sum::<i64>(), 9, "no unit created or lost");
        assert!(after.iter().any(|&s| s >= 8));
        assert!(after.iter().all(|&s| s >= 0));
        // More than the total: nothing to do, the product is short.
        assert_eq!(rebalance_plan(&stocks, 10), None);
    }

    #[test]
    fn dry_shards_are_refilled_from_the_fullest_when_half_have_run_out() {
        let stocks = [0, 0, 9, 1];
        let plan = rebalance_plan(&stocks, 1).unwrap();
        let after = apply(&stocks, &plan);
        assert_eq!(after.iter().sum::<i64>(), 10);
        assert_eq!(after.iter().filter(|&&s| s == 0).count(), 0);
        assert!(
            plan.new_stock.len() <= 3,
            "touches the donor and the dry shards only"
        );
        // Fewer than half dry: leave it alone.
        assert_eq!(rebalance_plan(&[0, 5, 5, 5], 1), None);
        // Nothing worth moving.
        assert_eq!(rebalance_plan(&[0, 0, 1, 0], 1), None);
        // One shard: nowhere to move to.
        assert_eq!(rebalance_plan(&[4], 1), None);
    }

    #[test]
    fn a_few_units_go_to_as_many_dry_shards_as_there_are_units() {
        let stocks = [0, 0, 0, 0, 0, 0, 4, 0];
        let plan = rebalance_plan(&stocks, 1).unwrap();
        let after = apply(&stocks, &plan);
        assert_eq!(after.iter().sum::<i64>(), 4);
        assert_eq!(after.iter().filter(|&&s| s > 0).count(), 3);
    }
}
