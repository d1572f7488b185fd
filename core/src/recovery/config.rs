//! Settings of the recovery store, derived from [`ServerConfig`].

use std::time::Duration;

use crate::config::ServerConfig;

/// Limits of a [`super::RecoveryStore`]. Each one bounds memory or work, and says what happens
/// when it is hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoveryConfig {
    /// Ring slots per topic. [`super::RecoveryStore::new`] rounds it up to a power of two (at
    /// least 1); [`RecoveryConfig::from_server_config`] uses the original's `max(16, n)` first.
    /// When a ring is full the oldest message is overwritten.
    pub buffer_size: usize,
    /// A ring with no write for this long is dropped by [`super::RecoveryStore::evict_expired`].
    pub ttl: Duration,
    /// A recovery that would replay more than this many messages answers `NotRecovered`.
    pub max_messages: usize,
    /// Bytes all rings may hold: payloads plus slot arrays plus per-topic overhead (see
    /// [`super::RecoveryStore::total_bytes`]). Enforced on every publish.
    pub memory_budget: usize,
}

impl RecoveryConfig {
    /// The store settings for `config` (UPSTREAM §8.1): ring capacity is the next power of two of
    /// `max(16, recovery_buffer_size)`.
    pub fn from_server_config(config: &ServerConfig) -> Self {
        RecoveryConfig {
            buffer_size: ring_capacity(config.recovery_buffer_size.max(16)),
            ttl: Duration::from_secs(config.recovery_ttl_secs),
            max_messages: config.recovery_max_messages,
            memory_budget: config.recovery_memory_budget,
        }
    }
}

/// `n` rounded up to a power of two (at least 1). A size with no representable power of two
/// (`ServerConfig::validate_limits` rejects those) becomes the largest one, which no budget can
/// hold, so such a store keeps nothing rather than failing.
pub(crate) fn ring_capacity(n: usize) -> usize {
    n.max(1)
        .checked_next_power_of_two()
        .unwrap_or(1 << (usize::BITS - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_config_defaults_give_the_originals_store_settings() {
        let got = RecoveryConfig::from_server_config(&ServerConfig::default());
        let want = RecoveryConfig {
            buffer_size: 128,
            ttl: Duration::from_secs(300),
            max_messages: 500,
            memory_budget: 256 << 20,
        };
        assert_eq!(got, want);
    }

    #[test]
    fn buffer_size_is_a_power_of_two_of_at_least_16() {
        let cases = [
            (0, 16),
            (1, 16),
            (16, 16),
            (17, 32),
            (128, 128),
            (1000, 1024),
        ];
        for (n, want) in cases {
            let config = ServerConfig {
                recovery_buffer_size: n,
                ..ServerConfig::default()
            };
            let got = RecoveryConfig::from_server_config(&config).buffer_size;
            assert_eq!(got, want, "n={n}");
        }
    }

    #[test]
    fn unrepresentable_capacity_saturates_instead_of_panicking() {
        assert_eq!(ring_capacity(usize::MAX), 1 << (usize::BITS - 1));
        assert_eq!(ring_capacity(0), 1);
        assert_eq!(ring_capacity(5), 8);
    }
}
