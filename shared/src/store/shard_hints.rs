//! What one process remembers of each product's stock shards, to plan its next read (see
//! docs/architecture.md, "What a process keeps between requests"). Only ever a plan: every decision
//! about stock is taken on a fresh consistent read, and every write is conditioned on the stored
//! stock, so a stale hint costs a retry, never a wrong write.

use super::Store;

/// What one process remembers of a product's stock shards, to plan its next read. Only ever a
/// plan: every decision about stock is taken on a fresh consistent read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ShardHint {
    /// How many shards it has (a count only ever grows), so that a redemption reads exactly the
    /// product's shards; an unknown product is read with every shard key it could have.
    pub count: u8,
    /// Bit `i` set: shard `i` held no stock when last read (or refused an order for want of it).
    /// A redemption samples the others; when every shard is believed dry it reads them all at
    /// once, so the end of a sale (and every "sold out" after it) costs one read, not a sample
    /// followed by a full read.
    pub dry: u32,
}

impl ShardHint {
    /// Shards not believed dry.
    pub fn stocked(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.count as usize).filter(|i| self.dry & (1 << i) == 0)
    }
}

/// The shard hints remembered per process are bounded: past this many products the memory is
/// cleared (the next read of each product learns its shards again).
const SHARD_COUNT_MEMORY: usize = 10_000;
// A shard hint keeps one bit per shard.
const _: () = assert!(crate::domain::stock::MAX_SHARDS <= 32);

impl Store {
    /// What this process last saw of a product's shards, if anything.
    pub(crate) fn shard_hint(&self, product_id: &str) -> Option<ShardHint> {
        self.shard_hints
            .lock()
            .ok()
            .and_then(|hints| hints.get(product_id).copied())
    }

    pub(crate) fn known_shards(&self, product_id: &str) -> Option<u8> {
        self.shard_hint(product_id).map(|hint| hint.count)
    }

    fn update_hint(&self, product_id: &str, change: impl FnOnce(&mut ShardHint)) {
        if let Ok(mut hints) = self.shard_hints.lock() {
            if hints.len() >= SHARD_COUNT_MEMORY && !hints.contains_key(product_id) {
                hints.clear();
            }
            change(hints.entry(product_id.to_string()).or_default());
        }
    }

    pub(crate) fn remember_shards(&self, product_id: &str, shards: u8) {
        self.update_hint(product_id, |hint| hint.count = hint.count.max(shards));
    }

    /// Records the stock read (or found short) on some of a product's shards: `(index, stock)`.
    pub(crate) fn remember_stock(
        &self,
        product_id: &str,
        seen: impl IntoIterator<Item = (usize, i64)>,
    ) {
        self.update_hint(product_id, |hint| {
            for (index, stock) in seen {
                let bit = 1u32 << index.min(31);
                if stock > 0 {
                    hint.dry &= !bit;
                } else {
                    hint.dry |= bit;
                }
            }
        });
    }
}
