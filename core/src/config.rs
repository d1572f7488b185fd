//! The one typed server configuration.
//!
//! [`ServerConfig`] carries every option of the original `RustWSEServer` constructor (UPSTREAM
//! §7.2) with the same defaults, plus our additions (CONTRACT D2, D3). It is validated once, by
//! [`crate::conn::ConnSettings::from_config`]: limits here ([`ServerConfig::validate_limits`]),
//! JWT keys by [`crate::auth::JwtValidator::new`], Origin patterns by
//! [`crate::auth::OriginPolicy::new`]. Every error names the field at fault so the Python binding
//! can raise `ValueError("<field>: <reason>")`.
//!
//! Durations keep the unit in the field name (`ping_interval_secs`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Which JWT algorithm the server accepts. Exactly one: a token whose header names another is
/// rejected (algorithm-confusion safe).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret of at least 32 bytes (the default).
    #[default]
    Hs256,
    /// RSA PKCS#1 v1.5 with SHA-256; the secret is a PEM public key.
    Rs256,
    /// ECDSA P-256 with SHA-256; the secret is a PEM public key.
    Es256,
}

impl JwtAlgorithm {
    /// The JOSE name (`"HS256"`, `"RS256"`, `"ES256"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::Hs256 => "HS256",
            JwtAlgorithm::Rs256 => "RS256",
            JwtAlgorithm::Es256 => "ES256",
        }
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JwtAlgorithm {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "HS256" => Ok(JwtAlgorithm::Hs256),
            "RS256" => Ok(JwtAlgorithm::Rs256),
            "ES256" => Ok(JwtAlgorithm::Es256),
            other => Err(ConfigError::new(
                "jwt_algorithm",
                format!("unsupported algorithm {other:?} (expected HS256, RS256 or ES256)"),
            )),
        }
    }
}

/// JWT settings, present only when authentication is on (`jwt_secret` given).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct JwtSettings {
    /// HS256: the shared secret (≥ 32 bytes). RS256/ES256: the PEM public key.
    pub secret: Vec<u8>,
    /// The accepted algorithm.
    pub algorithm: JwtAlgorithm,
    /// Required `iss` when set and non-empty (CONTRACT D4).
    pub issuer: Option<String>,
    /// Required `aud` when set and non-empty (CONTRACT D4).
    pub audience: Option<String>,
    /// Cookie carrying the token; `None` means `access_token`.
    pub cookie_name: Option<String>,
    /// The key before the last rotation (same kind as `secret`), tried when `secret` fails on
    /// signature or `kid`.
    pub previous_secret: Option<Vec<u8>>,
    /// When set, the token header's `kid` must equal it.
    pub key_id: Option<String>,
    /// RS256/ES256 private key: validated as PEM at construction, then unused by the server.
    pub private_key: Option<Vec<u8>>,
}

impl JwtSettings {
    /// Default cookie name, as the original server and the published clients use.
    pub const DEFAULT_COOKIE_NAME: &'static str = "access_token";

    /// The cookie name in force.
    pub fn cookie_name(&self) -> &str {
        self.cookie_name
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(Self::DEFAULT_COOKIE_NAME)
    }
}

impl fmt::Debug for JwtSettings {
    // Secrets never reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSettings")
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .field("algorithm", &self.algorithm)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("cookie_name", &self.cookie_name)
            .field(
                "previous_secret",
                &self.previous_secret.as_ref().map(|_| "<set>"),
            )
            .field("key_id", &self.key_id)
            .field("private_key", &self.private_key.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// Every server option, with the original's defaults. Build with `..Default::default()`.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    /// Bind address.
    pub host: String,
    /// Bind port.
    pub port: u16,
    /// Registered connections cap (default 1000).
    pub max_connections: usize,
    /// Authentication; `None` disables it (`connect` events, no `server_ready`).
    pub jwt: Option<JwtSettings>,
    /// Capacity of the inbound event queue drained by the application (default 131 072).
    pub max_inbound_queue_size: usize,
    /// Per-topic message recovery (default off).
    pub recovery_enabled: bool,
    /// Ring capacity per topic; rounded up to a power of two, minimum 16 (default 128).
    pub recovery_buffer_size: usize,
    /// Idle time after which a topic's ring is dropped (default 300 s).
    pub recovery_ttl_secs: u64,
    /// Most messages one recovery may replay (default 500).
    pub recovery_max_messages: usize,
    /// Global bytes budget of all rings (default 256 MiB).
    pub recovery_memory_budget: usize,
    /// Presence tracking (default off).
    pub presence_enabled: bool,
    /// Largest presence data, in bytes of JSON (default 4096).
    pub presence_max_data_size: usize,
    /// Most users per topic; 0 = unlimited (default).
    pub presence_max_members: usize,
    /// Outbound `send_event` token bucket capacity (default 100 000).
    pub rate_limit_capacity: f64,
    /// Outbound `send_event` refill, tokens per second (default 10 000).
    pub rate_limit_refill: f64,
    /// Largest inbound message and frame, and the cap on inbound decompression (default 1 MiB).
    pub max_message_size: usize,
    /// Server `ping` period (default 25 s). Must be > 0 and < `idle_timeout_secs` (D13).
    pub ping_interval_secs: u64,
    /// Close 4408 after this long without inbound activity (default 60 s).
    pub idle_timeout_secs: u64,
    /// Per-connection outbound byte budget; over it the connection closes 1013. 0 = unlimited.
    pub max_outbound_queue_bytes: usize,
    /// Subscriptions (topics + queue-group memberships) per connection; 0 = unlimited.
    pub max_subscriptions_per_connection: usize,
    /// Allowed `Origin` values (exact, or globs like `https://*.example.com`); empty = no check (D3).
    pub allowed_origins: Vec<String>,
    /// Inbound token bucket capacity, messages (D2, default 100 000).
    pub inbound_rate_capacity: f64,
    /// Inbound refill, messages per second; 0 disables inbound limiting (D2, default 10 000).
    pub inbound_rate_refill: f64,
    /// How long a connection may stay over the inbound limit before it is closed with 4429.
    pub inbound_rate_grace_ms: u64,
    /// `send_event` ids remembered per connection for dedup (D11: per connection, bounded).
    pub send_dedup_window: usize,
    /// E2E key rotation interval in seconds for clients that negotiate it
    /// (`features.key_rotation`); 0 disables rotation (default 3600).
    pub key_rotation_interval_secs: u64,
    /// Event types whose `send_event` messages the server signs (`sig`, `docs/encryption.md`
    /// §6); empty (the default) signs nothing.
    pub signed_event_types: Vec<String>,
    /// The HMAC key for signing (at least 32 bytes). `None`: only encrypted connections get
    /// signatures, with a key derived from their session key.
    pub signing_secret: Option<Vec<u8>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".to_owned(),
            port: 5007,
            max_connections: 1000,
            jwt: None,
            max_inbound_queue_size: 131_072,
            recovery_enabled: false,
            recovery_buffer_size: 128,
            recovery_ttl_secs: 300,
            recovery_max_messages: 500,
            recovery_memory_budget: 268_435_456,
            presence_enabled: false,
            presence_max_data_size: 4096,
            presence_max_members: 0,
            rate_limit_capacity: 100_000.0,
            rate_limit_refill: 10_000.0,
            max_message_size: 1_048_576,
            ping_interval_secs: 25,
            idle_timeout_secs: 60,
            max_outbound_queue_bytes: 16_777_216,
            max_subscriptions_per_connection: 0,
            allowed_origins: Vec::new(),
            inbound_rate_capacity: 100_000.0,
            inbound_rate_refill: 10_000.0,
            inbound_rate_grace_ms: 5_000,
            send_dedup_window: 4096,
            key_rotation_interval_secs: 3600,
            signed_event_types: Vec::new(),
            signing_secret: None,
        }
    }
}

/// A configuration value that cannot be used; `field` is the constructor parameter's name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    /// The parameter at fault, as the Python constructor spells it.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// An error about `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        ConfigError {
            field,
            reason: reason.into(),
        }
    }
}

impl ServerConfig {
    /// Checks every field that does not need key parsing and returns the derived values.
    /// JWT keys are parsed by [`crate::auth::JwtValidator::new`].
    pub fn validate_limits(&self) -> Result<Limits, ConfigError> {
        if self.ping_interval_secs == 0 {
            return Err(ConfigError::new("ping_interval", "must be greater than 0"));
        }
        if self.ping_interval_secs >= self.idle_timeout_secs {
            return Err(ConfigError::new(
                "ping_interval",
                format!(
                    "must be less than idle_timeout ({} >= {})",
                    self.ping_interval_secs, self.idle_timeout_secs
                ),
            ));
        }
        if self.max_message_size == 0 {
            return Err(ConfigError::new(
                "max_message_size",
                "must be greater than 0",
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::new(
                "max_connections",
                "must be greater than 0",
            ));
        }
        if self.max_inbound_queue_size == 0 {
            return Err(ConfigError::new(
                "max_inbound_queue_size",
                "must be greater than 0",
            ));
        }
        if self.send_dedup_window == 0 {
            return Err(ConfigError::new(
                "send_dedup_window",
                "must be greater than 0",
            ));
        }
        check_rate("rate_limit_capacity", self.rate_limit_capacity)?;
        check_rate("rate_limit_refill", self.rate_limit_refill)?;
        check_rate("inbound_rate_capacity", self.inbound_rate_capacity)?;
        check_rate("inbound_rate_refill", self.inbound_rate_refill)?;
        if self.inbound_rate_refill > 0.0 && self.inbound_rate_capacity < 1.0 {
            return Err(ConfigError::new(
                "inbound_rate_capacity",
                "must be at least 1 when inbound_rate_refill is not 0",
            ));
        }
        let recovery_buffer_size = self
            .recovery_buffer_size
            .max(16)
            .checked_next_power_of_two()
            .ok_or_else(|| ConfigError::new("recovery_buffer_size", "too large"))?;
        Ok(Limits {
            ping_interval: Duration::from_secs(self.ping_interval_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            recovery_buffer_size,
            inbound_rate_grace: Duration::from_millis(self.inbound_rate_grace_ms),
        })
    }
}

fn check_rate(field: &'static str, v: f64) -> Result<(), ConfigError> {
    if !v.is_finite() || v < 0.0 {
        return Err(ConfigError::new(
            field,
            format!("must be a finite number >= 0, got {v}"),
        ));
    }
    // The bucket keeps micro-tokens in a u64; 1e12 tokens leaves room for 1e6 µ-units.
    if v > 1e12 {
        return Err(ConfigError::new(
            field,
            format!("must be at most 1e12, got {v}"),
        ));
    }
    Ok(())
}

/// Values derived from a valid [`ServerConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Server ping period.
    pub ping_interval: Duration,
    /// Inbound inactivity before close 4408.
    pub idle_timeout: Duration,
    /// Effective ring capacity: `max(16, n)` rounded up to a power of two.
    pub recovery_buffer_size: usize,
    /// Time over the inbound limit before close 4429.
    pub inbound_rate_grace: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut ServerConfig)) -> ServerConfig {
        let mut c = ServerConfig::default();
        f(&mut c);
        c
    }

    #[test]
    fn defaults_are_the_original_servers() {
        let c = ServerConfig::default();
        assert_eq!(c.max_connections, 1000);
        assert_eq!(c.max_inbound_queue_size, 131_072);
        assert_eq!(c.recovery_buffer_size, 128);
        assert_eq!(c.recovery_ttl_secs, 300);
        assert_eq!(c.recovery_max_messages, 500);
        assert_eq!(c.recovery_memory_budget, 256 << 20);
        assert_eq!(c.presence_max_data_size, 4096);
        assert_eq!(c.rate_limit_capacity, 100_000.0);
        assert_eq!(c.rate_limit_refill, 10_000.0);
        assert_eq!(c.max_message_size, 1 << 20);
        assert_eq!((c.ping_interval_secs, c.idle_timeout_secs), (25, 60));
        assert_eq!(c.max_outbound_queue_bytes, 16 << 20);
        assert_eq!(c.max_subscriptions_per_connection, 0);
        assert!(c.validate_limits().is_ok());
    }

    #[test]
    fn invalid_values_are_rejected_naming_the_field() {
        let cases: Vec<(ServerConfig, &str)> = vec![
            (with(|c| c.ping_interval_secs = 0), "ping_interval"),
            (with(|c| c.ping_interval_secs = 60), "ping_interval"),
            (with(|c| c.ping_interval_secs = 61), "ping_interval"),
            (with(|c| c.max_message_size = 0), "max_message_size"),
            (with(|c| c.max_connections = 0), "max_connections"),
            (
                with(|c| c.rate_limit_capacity = f64::NAN),
                "rate_limit_capacity",
            ),
            (with(|c| c.rate_limit_refill = -1.0), "rate_limit_refill"),
            (
                with(|c| c.inbound_rate_refill = f64::INFINITY),
                "inbound_rate_refill",
            ),
            (
                with(|c| c.inbound_rate_capacity = 0.5),
                "inbound_rate_capacity",
            ),
            (
                with(|c| c.recovery_buffer_size = usize::MAX),
                "recovery_buffer_size",
            ),
        ];
        for (cfg, field) in cases {
            let err = cfg.validate_limits().expect_err(field);
            assert_eq!(err.field, field, "{err}");
        }
    }

    #[test]
    fn inbound_limit_can_be_disabled_with_zero_refill() {
        let c = with(|c| {
            c.inbound_rate_refill = 0.0;
            c.inbound_rate_capacity = 0.0;
        });
        assert!(c.validate_limits().is_ok());
    }

    #[test]
    fn recovery_buffer_size_rounds_up_to_a_power_of_two_of_at_least_16() {
        for (n, want) in [(0, 16), (1, 16), (16, 16), (17, 32), (128, 128), (129, 256)] {
            let got = with(|c| c.recovery_buffer_size = n)
                .validate_limits()
                .unwrap();
            assert_eq!(got.recovery_buffer_size, want, "n={n}");
        }
    }

    #[test]
    fn algorithm_names_parse_exactly() {
        assert_eq!("RS256".parse::<JwtAlgorithm>(), Ok(JwtAlgorithm::Rs256));
        assert_eq!("ES256".parse::<JwtAlgorithm>(), Ok(JwtAlgorithm::Es256));
        let err = "hs256".parse::<JwtAlgorithm>().unwrap_err();
        assert_eq!(err.field, "jwt_algorithm");
        assert!("none".parse::<JwtAlgorithm>().is_err());
    }

    #[test]
    fn jwt_settings_debug_hides_secrets() {
        let s = JwtSettings {
            secret: b"super-secret-value".to_vec(),
            ..Default::default()
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("super-secret"), "{shown}");
        assert_eq!(s.cookie_name(), "access_token");
    }
}
