//! What every connection machine of one server shares: the validated configuration and the
//! authentication policies, built once from a [`ServerConfig`].

use std::time::Duration;

use crate::auth::{JwtValidator, OriginPolicy};
use crate::config::{ConfigError, ServerConfig};

/// Validated, immutable settings shared (behind an `Arc`) by every [`super::Connection`].
#[derive(Debug)]
pub struct ConnSettings {
    /// JWT policy; `None` = authentication off.
    pub jwt: Option<JwtValidator>,
    /// Origin allow-list (disabled when empty).
    pub origins: OriginPolicy,
    /// Advertised in `server_ready` and `server_hello` (`features.recovery`).
    pub recovery_enabled: bool,
    /// Largest inbound message, and the inbound decompression cap.
    pub max_message_size: usize,
    /// Server `ping` period.
    pub ping_interval: Duration,
    /// Inactivity before close 4408.
    pub idle_timeout: Duration,
    /// How long a closing connection may wait for the peer's Close before the socket is dropped.
    pub close_grace: Duration,
    /// Outbound `send_event` bucket.
    pub rate_limit_capacity: f64,
    /// Outbound refill per second.
    pub rate_limit_refill: f64,
    /// Inbound bucket (CONTRACT D2).
    pub inbound_rate_capacity: f64,
    /// Inbound refill per second; 0 disables inbound limiting.
    pub inbound_rate_refill: f64,
    /// Time over the inbound limit before close 4429.
    pub inbound_rate_grace: Duration,
    /// `send_event` ids remembered per connection.
    pub send_dedup_window: usize,
    /// `server_hello.p.server_version`.
    pub server_version: &'static str,
    /// E2E sessions: replay cache and key rotation (interval from
    /// `key_rotation_interval_secs`, grace the smaller of 30 s and half the interval).
    pub crypto: crate::crypto::CryptoConfig,
    /// Event types `send_event` signs, and the shared key (else a per-session derived one).
    pub signing: Signing,
}

/// What `send_event` signs (`docs/encryption.md` §6).
#[derive(Debug, Default)]
pub struct Signing {
    /// Event types (`t`) to sign.
    pub event_types: std::collections::BTreeSet<String>,
    /// The configured shared secret; without it only encrypted connections sign, with their
    /// session-derived key.
    pub shared: Option<crate::crypto::SigningKey>,
}

impl ConnSettings {
    /// How long a close handshake may take by default.
    pub const DEFAULT_CLOSE_GRACE: Duration = Duration::from_secs(5);

    /// Validates `config` once (limits, JWT keys, Origin patterns); errors name the field.
    pub fn from_config(config: &ServerConfig) -> Result<ConnSettings, ConfigError> {
        let limits = config.validate_limits()?;
        let jwt = config.jwt.as_ref().map(JwtValidator::new).transpose()?;
        let origins = OriginPolicy::new(&config.allowed_origins)?;
        Ok(ConnSettings {
            jwt,
            origins,
            recovery_enabled: config.recovery_enabled,
            max_message_size: config.max_message_size,
            ping_interval: limits.ping_interval,
            idle_timeout: limits.idle_timeout,
            close_grace: Self::DEFAULT_CLOSE_GRACE,
            rate_limit_capacity: config.rate_limit_capacity,
            rate_limit_refill: config.rate_limit_refill,
            inbound_rate_capacity: config.inbound_rate_capacity,
            inbound_rate_refill: config.inbound_rate_refill,
            inbound_rate_grace: limits.inbound_rate_grace,
            send_dedup_window: config.send_dedup_window,
            server_version: env!("CARGO_PKG_VERSION"),
            crypto: crypto_config(config.key_rotation_interval_secs),
            signing: Signing {
                event_types: config.signed_event_types.iter().cloned().collect(),
                shared: config
                    .signing_secret
                    .as_deref()
                    .map(crate::crypto::SigningKey::from_shared_secret)
                    .transpose()
                    .map_err(|e| ConfigError::new("signing_secret", e.to_string()))?,
            },
        })
    }
}

/// The session settings for a rotation interval (0 disables rotation).
fn crypto_config(interval_secs: u64) -> crate::crypto::CryptoConfig {
    let interval = Duration::from_secs(interval_secs);
    crate::crypto::CryptoConfig {
        rotation_interval: interval,
        rotation_grace: crate::crypto::session::DEFAULT_ROTATION_GRACE.min(interval / 2),
        ..crate::crypto::CryptoConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{JwtAlgorithm, JwtSettings};

    fn with(f: impl FnOnce(&mut ServerConfig)) -> Result<ConnSettings, ConfigError> {
        let mut c = ServerConfig::default();
        f(&mut c);
        ConnSettings::from_config(&c)
    }

    #[test]
    fn every_invalid_setting_is_reported_by_its_constructor_name() {
        let jwt = |secret: &[u8], alg| JwtSettings {
            secret: secret.to_vec(),
            algorithm: alg,
            ..Default::default()
        };
        let cases: Vec<(Result<ConnSettings, ConfigError>, &str)> = vec![
            (with(|c| c.ping_interval_secs = 0), "ping_interval"),
            (
                with(|c| c.jwt = Some(jwt(b"short", JwtAlgorithm::Hs256))),
                "jwt_secret",
            ),
            (
                with(|c| c.jwt = Some(jwt(b"not a pem", JwtAlgorithm::Rs256))),
                "jwt_secret",
            ),
            (
                with(|c| c.jwt = Some(jwt(b"not a pem", JwtAlgorithm::Es256))),
                "jwt_secret",
            ),
            (
                with(|c| {
                    let mut s = jwt(&[7; 32], JwtAlgorithm::Hs256);
                    s.previous_secret = Some(vec![1; 31]);
                    c.jwt = Some(s);
                }),
                "jwt_previous_secret",
            ),
            (
                with(|c| c.allowed_origins = vec!["not an origin".into()]),
                "allowed_origins",
            ),
        ];
        for (got, field) in cases {
            assert_eq!(got.expect_err(field).field, field);
        }
    }

    #[test]
    fn a_valid_config_carries_its_values_into_the_settings() {
        let s = with(|c| {
            c.jwt = Some(JwtSettings {
                secret: vec![7; 32],
                ..Default::default()
            });
            c.recovery_enabled = true;
            c.ping_interval_secs = 10;
            c.allowed_origins = vec!["https://app.example.com".into()];
        })
        .expect("valid");
        assert!(s.jwt.is_some() && s.origins.is_enabled() && s.recovery_enabled);
        assert_eq!(s.ping_interval, Duration::from_secs(10));
        assert_eq!(s.idle_timeout, Duration::from_secs(60));
    }
}
