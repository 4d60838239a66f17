//! Randomness for client ids, event ids and backoff jitter.

/// A random number for client ids and backoff jitter, from the standard library's
/// per-process random hash keys (no extra dependency, not for cryptography).
pub(crate) fn u64() -> u64 {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::collections::hash_map::RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}
