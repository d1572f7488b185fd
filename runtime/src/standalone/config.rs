//! The standalone server's configuration: every [`ServerConfig`] option plus the standalone
//! ones, from four layers (lowest to highest precedence):
//!
//! 1. the embedded defaults ([`ServerConfig::default`], [`StandaloneDefaults`]),
//! 2. a TOML file (`--config PATH`, or `WSE_CONFIG`), keys named like the options,
//! 3. the environment, `WSE_<OPTION>` (`WSE_PORT`, `WSE_RECOVERY_ENABLED`, lists comma-separated),
//! 4. command-line flags (`--port`, `--recovery-enabled[=true|false]`).
//!
//! One [`Options`] struct is all three layers' schema: clap parses the flags into it, serde the
//! TOML table, and each `WSE_*` variable is parsed by clap as the matching flag, so a value means
//! the same wherever it is written. Secrets (JWT secret, previous secret, private key, API key,
//! signing secret) are never flag values: they come from `WSE_JWT_SECRET`,
//! `WSE_JWT_PREVIOUS_SECRET`, `WSE_JWT_PRIVATE_KEY`, `WSE_API_KEY`, `WSE_SIGNING_SECRET`, or from
//! files (`--jwt-secret-file`, TOML `jwt_secret_file`, `WSE_JWT_SECRET_FILE`, …), so they stay
//! out of `ps` and shell history.
//!
//! Without a JWT secret a random 32-byte development secret is generated (HS256 only), and
//! without an API key a random one; [`Loaded`] says which, so the binary can announce them. The
//! result is validated by [`ConnSettings::from_config`]; every error names the option.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use rand_core::{OsRng, RngCore};
use serde::Deserialize;
use serde_json::Value;
use wse_core::auth::TopicAcl;
use wse_core::config::{JwtAlgorithm, JwtSettings, ServerConfig};
use wse_core::conn::ConnSettings;

use crate::cluster::{ClusterConfig, TlsFiles};

/// Largest TOML or secret file read (a PEM key is a few KiB).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Bytes of a generated development JWT secret (the HS256 minimum).
pub const DEV_SECRET_BYTES: usize = 32;
/// Shortest API key accepted: a key guards publishing and disconnecting, so no toy keys.
pub const MIN_API_KEY_CHARS: usize = 16;
/// Longest API key accepted (it travels in one header).
pub const MAX_API_KEY_CHARS: usize = 256;
/// Longest drain accepted; the process must end in bounded time.
pub const MAX_DRAIN_TIMEOUT_SECS: u64 = 3600;

/// The standalone server's whole configuration, resolved and validated.
#[derive(Clone, PartialEq)]
pub struct StandaloneConfig {
    /// The engine's options (JWT always set after [`load`]).
    pub server: ServerConfig,
    /// The HTTP API key (`Authorization: apikey <key>`); always set after [`load`] (generated
    /// when none is configured). `None` only in a config built by hand: no HTTP API.
    pub api_key: Option<String>,
    /// Clients may publish to topics their token's `wse_topics.publish` globs allow.
    pub client_publish: bool,
    /// Allow globs given to connections whose token carries no `wse_topics` ACL.
    pub default_allow: Vec<String>,
    /// Deny globs given to connections whose token carries no `wse_topics` ACL.
    pub default_deny: Vec<String>,
    /// Serve the console page at `/console`.
    pub console: bool,
    /// A `tracing` filter (`info`, `wse_runtime=debug,warn`).
    pub log_level: String,
    /// How long a shutdown waits for clients to close after the 4300 drain, in seconds.
    pub drain_timeout_secs: u64,
    /// The cluster to join at start (`cluster_peers`, `cluster_seeds` or `cluster_port` set).
    pub cluster: Option<ClusterConfig>,
}

impl fmt::Debug for StandaloneConfig {
    // The API key and the signing secret never reach logs (`ServerConfig`'s own `Debug` would
    // print the signing secret's bytes, so it is shown without it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut server = self.server.clone();
        let signing_secret = server.signing_secret.take().map(|_| "<set>");
        f.debug_struct("StandaloneConfig")
            .field("server", &server)
            .field("signing_secret", &signing_secret)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("client_publish", &self.client_publish)
            .field("default_allow", &self.default_allow)
            .field("default_deny", &self.default_deny)
            .field("console", &self.console)
            .field("log_level", &self.log_level)
            .field("drain_timeout_secs", &self.drain_timeout_secs)
            .field("cluster", &self.cluster)
            .finish()
    }
}

impl StandaloneConfig {
    /// The ACL for connections without one: `None` when both default lists are empty.
    pub fn default_acl(&self) -> Option<TopicAcl> {
        (!self.default_allow.is_empty() || !self.default_deny.is_empty())
            .then(|| TopicAcl::new(self.default_allow.clone(), self.default_deny.clone()))
    }
}

/// The defaults of the standalone options (the engine's are [`ServerConfig::default`], except
/// that the bind address is always `127.0.0.1:5007`).
#[derive(Clone, Copy, Debug)]
pub struct StandaloneDefaults;

impl StandaloneDefaults {
    /// Clients may not publish unless enabled.
    pub const CLIENT_PUBLISH: bool = false;
    /// The console is served.
    pub const CONSOLE: bool = true;
    /// Log filter.
    pub const LOG_LEVEL: &'static str = "info";
    /// Drain wait on shutdown.
    pub const DRAIN_TIMEOUT_SECS: u64 = 10;
}

/// The `wse` command line. Parse it with [`Cli::parse_args`] / [`Cli::try_parse_args`], which
/// add each option's environment variable to its help line.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "wse",
    version,
    about = "WSE standalone WebSocket server: clients subscribe within their JWT's ACL, \
             backends publish over the HTTP API on the same port.",
    after_help = "Every option can also come from a TOML file (--config, WSE_CONFIG; keys named \
                  like the options, e.g. max_connections = 5000) and from the environment \
                  (WSE_<OPTION>, e.g. WSE_MAX_CONNECTIONS; lists comma-separated). Precedence: \
                  defaults < file < environment < flags.\n\nSecrets are never flag values: \
                  WSE_JWT_SECRET, WSE_JWT_PREVIOUS_SECRET, WSE_JWT_PRIVATE_KEY, WSE_API_KEY, \
                  WSE_SIGNING_SECRET, or the *_file options. Without a JWT secret a development \
                  secret is generated (tokens die with the process); without an API key one is \
                  generated and printed."
)]
pub struct Cli {
    /// TOML configuration file [env: WSE_CONFIG]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The options.
    #[command(flatten)]
    pub options: Options,
    /// Refused: secrets are not flag values.
    #[arg(
        long = "jwt-secret",
        global = true,
        hide = true,
        value_name = "REFUSED"
    )]
    pub refused_jwt_secret: Option<String>,
    /// Refused: secrets are not flag values.
    #[arg(
        long = "jwt-previous-secret",
        global = true,
        hide = true,
        value_name = "REFUSED"
    )]
    pub refused_jwt_previous_secret: Option<String>,
    /// Refused: secrets are not flag values.
    #[arg(
        long = "jwt-private-key",
        global = true,
        hide = true,
        value_name = "REFUSED"
    )]
    pub refused_jwt_private_key: Option<String>,
    /// Refused: secrets are not flag values.
    #[arg(long = "api-key", global = true, hide = true, value_name = "REFUSED")]
    pub refused_api_key: Option<String>,
    /// Refused: secrets are not flag values.
    #[arg(
        long = "signing-secret",
        global = true,
        hide = true,
        value_name = "REFUSED"
    )]
    pub refused_signing_secret: Option<String>,
    /// What to do; `serve` when absent.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default)
    Serve,
    /// Print a JWT for a user, signed with the configured secret (HS256) or private key
    Token(TokenArgs),
}

/// `wse token` arguments.
#[derive(Clone, Debug, Args)]
pub struct TokenArgs {
    /// The token's subject (user id)
    #[arg(long, value_name = "USER")]
    pub sub: String,
    /// Lifetime in seconds, 1 to 31536000
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub ttl_secs: u64,
    /// An extra claim, KEY=JSON (repeatable), e.g. --claim 'wse_topics={"allow":["chat:*"]}';
    /// a value that is not JSON is taken as a string
    #[arg(long = "claim", value_name = "KEY=JSON", value_parser = parse_claim)]
    pub claims: Vec<(String, Value)>,
}

/// Every option that may come from the TOML file, the environment or a flag. `None` = not set
/// in that layer. Field names are the TOML keys; flags are the kebab-case forms; environment
/// variables are `WSE_` + the upper-case field name.
#[derive(Clone, Debug, Default, PartialEq, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Bind address [default: 127.0.0.1]
    #[arg(long, global = true, value_name = "ADDR")]
    pub host: Option<String>,
    /// Bind port; 0 picks a free one [default: 5007]
    #[arg(long, global = true)]
    pub port: Option<u16>,
    /// Most connections at once; more get HTTP 503 [default: 1000]
    #[arg(long, global = true, value_name = "N")]
    pub max_connections: Option<usize>,
    /// JWT algorithm: HS256, RS256 or ES256 [default: HS256]
    #[arg(long, global = true, value_name = "ALG")]
    pub jwt_algorithm: Option<String>,
    /// Required `iss` claim
    #[arg(long, global = true, value_name = "ISS")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim
    #[arg(long, global = true, value_name = "AUD")]
    pub jwt_audience: Option<String>,
    /// Cookie carrying the token [default: access_token]
    #[arg(long, global = true, value_name = "NAME")]
    pub jwt_cookie_name: Option<String>,
    /// Required `kid` header
    #[arg(long, global = true, value_name = "KID")]
    pub jwt_key_id: Option<String>,
    /// File holding the JWT secret (HS256) or PEM public key (RS256/ES256)
    #[arg(long, global = true, value_name = "PATH")]
    pub jwt_secret_file: Option<PathBuf>,
    /// File holding the key before the last rotation (same kind as the secret)
    #[arg(long, global = true, value_name = "PATH")]
    pub jwt_previous_secret_file: Option<PathBuf>,
    /// File holding the RS256/ES256 PEM private key (lets `wse token` sign)
    #[arg(long, global = true, value_name = "PATH")]
    pub jwt_private_key_file: Option<PathBuf>,
    /// Capacity of the inbound event queue [default: 131072]
    #[arg(long, global = true, value_name = "N")]
    pub max_inbound_queue_size: Option<usize>,
    /// Per-topic message recovery [default: false]
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub recovery_enabled: Option<bool>,
    /// Recovery ring slots per topic (rounded up to a power of two, at least 16) [default: 128]
    #[arg(long, global = true, value_name = "N")]
    pub recovery_buffer_size: Option<usize>,
    /// Idle time after which a topic's ring is dropped, seconds [default: 300]
    #[arg(long, global = true, value_name = "SECS")]
    pub recovery_ttl_secs: Option<u64>,
    /// Most messages one recovery replays [default: 500]
    #[arg(long, global = true, value_name = "N")]
    pub recovery_max_messages: Option<usize>,
    /// Bytes budget of all recovery rings [default: 268435456]
    #[arg(long, global = true, value_name = "BYTES")]
    pub recovery_memory_budget: Option<usize>,
    /// Presence tracking [default: false]
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub presence_enabled: Option<bool>,
    /// Largest presence data, bytes of JSON [default: 4096]
    #[arg(long, global = true, value_name = "BYTES")]
    pub presence_max_data_size: Option<usize>,
    /// Most users per topic's presence; 0 = unlimited [default: 0]
    #[arg(long, global = true, value_name = "N")]
    pub presence_max_members: Option<usize>,
    /// Outbound send_event token bucket capacity [default: 100000]
    #[arg(long, global = true, value_name = "TOKENS")]
    pub rate_limit_capacity: Option<f64>,
    /// Outbound send_event refill, tokens per second [default: 10000]
    #[arg(long, global = true, value_name = "PER_SEC")]
    pub rate_limit_refill: Option<f64>,
    /// Largest inbound message and frame, bytes [default: 1048576]
    #[arg(long, global = true, value_name = "BYTES")]
    pub max_message_size: Option<usize>,
    /// Server ping period, seconds; less than the idle timeout [default: 25]
    #[arg(long, global = true, value_name = "SECS")]
    pub ping_interval_secs: Option<u64>,
    /// Close 4408 after this long without inbound traffic, seconds [default: 60]
    #[arg(long, global = true, value_name = "SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Per-connection outbound byte budget; over it the connection closes 1013; 0 = unlimited
    /// [default: 16777216]
    #[arg(long, global = true, value_name = "BYTES")]
    pub max_outbound_queue_bytes: Option<usize>,
    /// Subscriptions per connection; 0 = unlimited [default: 0]
    #[arg(long, global = true, value_name = "N")]
    pub max_subscriptions_per_connection: Option<usize>,
    /// Allowed Origin values (exact or globs), comma-separated; empty = no check
    #[arg(long, global = true, value_name = "ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,
    /// Inbound token bucket capacity, messages [default: 100000]
    #[arg(long, global = true, value_name = "MSGS")]
    pub inbound_rate_capacity: Option<f64>,
    /// Inbound refill, messages per second; 0 disables inbound limiting [default: 10000]
    #[arg(long, global = true, value_name = "PER_SEC")]
    pub inbound_rate_refill: Option<f64>,
    /// Time over the inbound limit before close 4429, milliseconds [default: 5000]
    #[arg(long, global = true, value_name = "MS")]
    pub inbound_rate_grace_ms: Option<u64>,
    /// send_event ids remembered per connection for dedup [default: 4096]
    #[arg(long, global = true, value_name = "N")]
    pub send_dedup_window: Option<usize>,
    /// E2E key rotation interval for clients that negotiate it, seconds; 0 disables [default: 3600]
    #[arg(long, global = true, value_name = "SECS")]
    pub key_rotation_interval_secs: Option<u64>,
    /// Event types the server signs with a `sig` field (docs/encryption.md §6), comma-separated;
    /// in wse its replies subscription_update and error [default: none]
    #[arg(long, global = true, value_name = "TYPES", value_delimiter = ',')]
    pub signed_event_types: Option<Vec<String>>,
    /// File holding the HMAC signing secret, at least 32 bytes (or WSE_SIGNING_SECRET); without
    /// one only encrypted connections get signatures, with their session's key
    #[arg(long, global = true, value_name = "PATH")]
    pub signing_secret_file: Option<PathBuf>,
    /// File holding the HTTP API key (or WSE_API_KEY); generated and printed when absent
    #[arg(long, global = true, value_name = "PATH")]
    pub api_key_file: Option<PathBuf>,
    /// Let clients publish where their token's wse_topics.publish globs allow [default: false]
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub client_publish: Option<bool>,
    /// Allow globs for connections whose token has no wse_topics ACL, comma-separated
    #[arg(long, global = true, value_name = "GLOBS", value_delimiter = ',')]
    pub default_allow: Option<Vec<String>>,
    /// Deny globs for connections whose token has no wse_topics ACL, comma-separated
    #[arg(long, global = true, value_name = "GLOBS", value_delimiter = ',')]
    pub default_deny: Option<Vec<String>>,
    /// Serve the console page at /console [default: true]
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub console: Option<bool>,
    /// Log filter (also WSE_LOG), e.g. debug or wse_runtime=debug,info [default: info]
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Shutdown: how long clients get to close after the 4300 drain, seconds [default: 10]
    #[arg(long, global = true, value_name = "SECS")]
    pub drain_timeout_secs: Option<u64>,
    /// Cluster peers to dial and keep dialling, host:port, comma-separated (docs/cluster.md)
    #[arg(long, global = true, value_name = "ADDRS", value_delimiter = ',')]
    pub cluster_peers: Option<Vec<String>>,
    /// Cluster seeds, host:port, comma-separated; replace cluster_peers, need cluster_addr
    #[arg(long, global = true, value_name = "ADDRS", value_delimiter = ',')]
    pub cluster_seeds: Option<Vec<String>>,
    /// The host:port other nodes reach this node's cluster port at (announced to peers)
    #[arg(long, global = true, value_name = "ADDR")]
    pub cluster_addr: Option<String>,
    /// Port inbound cluster peers connect to; without it this node only dials
    #[arg(long, global = true, value_name = "PORT")]
    pub cluster_port: Option<u16>,
    /// Address the cluster port binds [default: 0.0.0.0]
    #[arg(long, global = true, value_name = "HOST")]
    pub cluster_bind_host: Option<String>,
    /// mTLS: this node's certificate chain (PEM); all three TLS files or none
    #[arg(long, global = true, value_name = "PATH")]
    pub cluster_tls_cert: Option<PathBuf>,
    /// mTLS: this node's private key (PEM: PKCS#8, PKCS#1 or SEC1)
    #[arg(long, global = true, value_name = "PATH")]
    pub cluster_tls_key: Option<PathBuf>,
    /// mTLS: the CA bundle peers' certificates must chain to (PEM)
    #[arg(long, global = true, value_name = "PATH")]
    pub cluster_tls_ca: Option<PathBuf>,
}

/// Why the configuration cannot be used. Every variant names the option, variable or file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A value is invalid; `option` is the option's name (or the variable's).
    #[error("{option}: {reason}")]
    Invalid {
        /// The option, as the TOML key (or `WSE_*` variable) spells it.
        option: String,
        /// What is wrong.
        reason: String,
    },
    /// A file could not be read.
    #[error("{option}: cannot read {path}: {reason}")]
    File {
        /// The option naming the file.
        option: String,
        /// The file.
        path: PathBuf,
        /// The OS error, or the size limit.
        reason: String,
    },
    /// The TOML file is not valid TOML or has a key or value that is not allowed.
    #[error("{path}: {reason}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parser's message, naming the key.
        reason: String,
    },
}

impl LoadError {
    fn invalid(option: impl Into<String>, reason: impl Into<String>) -> LoadError {
        LoadError::Invalid {
            option: option.into(),
            reason: reason.into(),
        }
    }
}

/// A loaded configuration and what was generated for it.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: StandaloneConfig,
    /// The JWT secret was generated: tokens are valid for this process only.
    pub jwt_secret_generated: bool,
    /// The API key was generated: print it once.
    pub api_key_generated: bool,
    /// `WSE_*` variables that name no option (likely typos).
    pub unknown_env: Vec<String>,
}

impl Cli {
    /// The command with each option's environment variable added to its help.
    pub fn command_with_env() -> clap::Command {
        Cli::command().mut_args(|arg| {
            let env = option_names()
                .into_iter()
                .find(|o| Some(o.flag.as_str()) == arg.get_long())
                .map(|o| o.env);
            match (env, arg.get_help().map(ToString::to_string)) {
                (Some(env), Some(help)) => arg.help(format!("{help} [env: {env}]")),
                _ => arg,
            }
        })
    }

    /// Parses `args` (program name first).
    pub fn try_parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Cli::command_with_env().try_get_matches_from(args)?;
        Cli::from_arg_matches(&matches)
    }

    /// Parses the process arguments; prints help, version or the error and exits as clap does.
    pub fn parse_args() -> Cli {
        Cli::try_parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }
}

/// One option's three spellings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionName {
    /// TOML key (`max_connections`).
    pub key: String,
    /// Flag without dashes (`max-connections`).
    pub flag: String,
    /// Environment variable (`WSE_MAX_CONNECTIONS`).
    pub env: String,
}

/// Every option of [`Options`], in declaration order.
pub fn option_names() -> Vec<OptionName> {
    #[derive(Parser)]
    struct OnlyOptions {
        #[command(flatten)]
        options: Options,
    }
    OnlyOptions::command()
        .get_arguments()
        .filter_map(|a| {
            let flag = a.get_long()?.to_owned();
            let key = flag.replace('-', "_");
            let env = format!("WSE_{}", key.to_ascii_uppercase());
            Some(OptionName { key, flag, env })
        })
        .filter(|o| o.key != "help" && o.key != "version")
        .collect()
}

/// Variables read besides `WSE_<OPTION>`: the file, the log alias, and the secrets.
pub const EXTRA_ENV: [&str; 7] = [
    "WSE_CONFIG",
    "WSE_LOG",
    "WSE_JWT_SECRET",
    "WSE_JWT_PREVIOUS_SECRET",
    "WSE_JWT_PRIVATE_KEY",
    "WSE_API_KEY",
    "WSE_SIGNING_SECRET",
];

/// The process's `WSE_*` variables. A non-UTF-8 value is an error naming the variable.
pub fn process_env() -> Result<BTreeMap<String, String>, LoadError> {
    let mut env = BTreeMap::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| n.starts_with("WSE_")) else {
            continue;
        };
        let value = value
            .into_string()
            .map_err(|_| LoadError::invalid(name, "not valid UTF-8"))?;
        env.insert(name.to_owned(), value);
    }
    Ok(env)
}

/// Resolves the configuration from `cli` and the `WSE_*` variables in `env` (see the module
/// doc for the layers), generating what is missing, and validates it.
pub fn load(cli: &Cli, env: &BTreeMap<String, String>) -> Result<Loaded, LoadError> {
    refuse_secret_flags(cli)?;
    let path = cli.config.clone().or_else(|| {
        env.get("WSE_CONFIG")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    });
    let file = match &path {
        Some(p) => options_from_toml_file(p)?,
        None => Options::default(),
    };
    let from_env = options_from_env(env)?;
    let secrets = Secrets::of_layer(&file)
        .overlay(Secrets::of_env(env, &from_env)?)
        .overlay(Secrets::of_layer(&cli.options));
    let merged = file.overlay(from_env).overlay(cli.options.clone());
    let mut loaded = resolve(merged, &secrets)?;
    loaded.unknown_env = unknown_env(env);
    Ok(loaded)
}

/// Reads a TOML options file: unknown keys and inline secrets are errors naming the key;
/// relative `*_file` paths are taken relative to the file's directory.
pub fn options_from_toml_file(path: &Path) -> Result<Options, LoadError> {
    let text = read_bounded("config", path)?;
    let text = String::from_utf8(text).map_err(|_| LoadError::Toml {
        path: path.to_owned(),
        reason: "not valid UTF-8".into(),
    })?;
    let mut options = options_from_toml(&text).map_err(|reason| LoadError::Toml {
        path: path.to_owned(),
        reason,
    })?;
    let base = path.parent().unwrap_or(Path::new(""));
    for file in [
        &mut options.jwt_secret_file,
        &mut options.jwt_previous_secret_file,
        &mut options.jwt_private_key_file,
        &mut options.api_key_file,
        &mut options.signing_secret_file,
        &mut options.cluster_tls_cert,
        &mut options.cluster_tls_key,
        &mut options.cluster_tls_ca,
    ] {
        if let Some(f) = file.as_mut().filter(|f| f.is_relative()) {
            *f = base.join(&*f);
        }
    }
    Ok(options)
}

/// Parses TOML text into [`Options`]; the error names the offending key.
pub fn options_from_toml(text: &str) -> Result<Options, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let known = option_names();
    for key in table.keys() {
        if let Some(hint) = inline_secret_hint(key) {
            return Err(format!(
                "key `{key}`: secrets are not written in the config file; {hint}"
            ));
        }
        if !known.iter().any(|o| &o.key == key) {
            return Err(format!(
                "unknown key `{key}` (the keys are the options of `wse --help`, with \
                 underscores)"
            ));
        }
    }
    toml::from_str(text).map_err(|e: toml::de::Error| e.to_string())
}

/// The options set by `WSE_<OPTION>` variables, each parsed as its flag; an error names the
/// variable. `WSE_LOG` is `WSE_LOG_LEVEL`'s alias (the latter wins).
pub fn options_from_env(env: &BTreeMap<String, String>) -> Result<Options, LoadError> {
    #[derive(Parser)]
    #[command(no_binary_name = true)]
    struct EnvOption {
        #[command(flatten)]
        options: Options,
    }
    let mut out = Options::default();
    let log_alias = env.get("WSE_LOG").map(|v| ("WSE_LOG", "log-level", v));
    let names = option_names();
    let direct = names.iter().filter_map(|o| {
        env.get(&o.env)
            .map(|v| (o.env.as_str(), o.flag.as_str(), v))
    });
    for (var, flag, value) in log_alias.into_iter().chain(direct) {
        let parsed = EnvOption::try_parse_from([format!("--{flag}={value}")])
            .map_err(|e| LoadError::invalid(var, clap_reason(&e)))?;
        out = out.overlay(parsed.options);
    }
    Ok(out)
}

impl Options {
    /// `self` with every option `higher` sets replaced by `higher`'s value.
    #[must_use]
    pub fn overlay(self, higher: Options) -> Options {
        Options {
            host: higher.host.or(self.host),
            port: higher.port.or(self.port),
            max_connections: higher.max_connections.or(self.max_connections),
            jwt_algorithm: higher.jwt_algorithm.or(self.jwt_algorithm),
            jwt_issuer: higher.jwt_issuer.or(self.jwt_issuer),
            jwt_audience: higher.jwt_audience.or(self.jwt_audience),
            jwt_cookie_name: higher.jwt_cookie_name.or(self.jwt_cookie_name),
            jwt_key_id: higher.jwt_key_id.or(self.jwt_key_id),
            jwt_secret_file: higher.jwt_secret_file.or(self.jwt_secret_file),
            jwt_previous_secret_file: higher
                .jwt_previous_secret_file
                .or(self.jwt_previous_secret_file),
            jwt_private_key_file: higher.jwt_private_key_file.or(self.jwt_private_key_file),
            max_inbound_queue_size: higher
                .max_inbound_queue_size
                .or(self.max_inbound_queue_size),
            recovery_enabled: higher.recovery_enabled.or(self.recovery_enabled),
            recovery_buffer_size: higher.recovery_buffer_size.or(self.recovery_buffer_size),
            recovery_ttl_secs: higher.recovery_ttl_secs.or(self.recovery_ttl_secs),
            recovery_max_messages: higher.recovery_max_messages.or(self.recovery_max_messages),
            recovery_memory_budget: higher
                .recovery_memory_budget
                .or(self.recovery_memory_budget),
            presence_enabled: higher.presence_enabled.or(self.presence_enabled),
            presence_max_data_size: higher
                .presence_max_data_size
                .or(self.presence_max_data_size),
            presence_max_members: higher.presence_max_members.or(self.presence_max_members),
            rate_limit_capacity: higher.rate_limit_capacity.or(self.rate_limit_capacity),
            rate_limit_refill: higher.rate_limit_refill.or(self.rate_limit_refill),
            max_message_size: higher.max_message_size.or(self.max_message_size),
            ping_interval_secs: higher.ping_interval_secs.or(self.ping_interval_secs),
            idle_timeout_secs: higher.idle_timeout_secs.or(self.idle_timeout_secs),
            max_outbound_queue_bytes: higher
                .max_outbound_queue_bytes
                .or(self.max_outbound_queue_bytes),
            max_subscriptions_per_connection: higher
                .max_subscriptions_per_connection
                .or(self.max_subscriptions_per_connection),
            allowed_origins: higher.allowed_origins.or(self.allowed_origins),
            inbound_rate_capacity: higher.inbound_rate_capacity.or(self.inbound_rate_capacity),
            inbound_rate_refill: higher.inbound_rate_refill.or(self.inbound_rate_refill),
            inbound_rate_grace_ms: higher.inbound_rate_grace_ms.or(self.inbound_rate_grace_ms),
            send_dedup_window: higher.send_dedup_window.or(self.send_dedup_window),
            key_rotation_interval_secs: higher
                .key_rotation_interval_secs
                .or(self.key_rotation_interval_secs),
            signed_event_types: higher.signed_event_types.or(self.signed_event_types),
            signing_secret_file: higher.signing_secret_file.or(self.signing_secret_file),
            api_key_file: higher.api_key_file.or(self.api_key_file),
            client_publish: higher.client_publish.or(self.client_publish),
            default_allow: higher.default_allow.or(self.default_allow),
            default_deny: higher.default_deny.or(self.default_deny),
            console: higher.console.or(self.console),
            log_level: higher.log_level.or(self.log_level),
            drain_timeout_secs: higher.drain_timeout_secs.or(self.drain_timeout_secs),
            cluster_peers: higher.cluster_peers.or(self.cluster_peers),
            cluster_seeds: higher.cluster_seeds.or(self.cluster_seeds),
            cluster_addr: higher.cluster_addr.or(self.cluster_addr),
            cluster_port: higher.cluster_port.or(self.cluster_port),
            cluster_bind_host: higher.cluster_bind_host.or(self.cluster_bind_host),
            cluster_tls_cert: higher.cluster_tls_cert.or(self.cluster_tls_cert),
            cluster_tls_key: higher.cluster_tls_key.or(self.cluster_tls_key),
            cluster_tls_ca: higher.cluster_tls_ca.or(self.cluster_tls_ca),
        }
    }
}

/// Where one secret comes from.
#[derive(Clone, PartialEq, Eq)]
enum Secret {
    /// From an environment variable (named for errors).
    Value(&'static str, String),
    /// From a file (the option naming it, for errors).
    File(&'static str, PathBuf),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Value(var, _) => write!(f, "Value({var}, <hidden>)"),
            Secret::File(option, path) => write!(f, "File({option}, {path:?})"),
        }
    }
}

impl Secret {
    /// The secret's bytes, trailing whitespace (a file's final newline) removed.
    fn read(&self, option: &'static str) -> Result<Vec<u8>, LoadError> {
        let mut bytes = match self {
            Secret::Value(_, v) => v.as_bytes().to_vec(),
            Secret::File(from, path) => read_bounded(from, path)?,
        };
        while bytes.last().is_some_and(u8::is_ascii_whitespace) {
            bytes.pop();
        }
        if bytes.is_empty() {
            let from = match self {
                Secret::Value(var, _) => (*var).to_owned(),
                Secret::File(_, path) => path.display().to_string(),
            };
            return Err(LoadError::invalid(option, format!("{from} is empty")));
        }
        Ok(bytes)
    }
}

/// The secrets' sources in one layer, or several layers overlaid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Secrets {
    jwt_secret: Option<Secret>,
    jwt_previous_secret: Option<Secret>,
    jwt_private_key: Option<Secret>,
    api_key: Option<Secret>,
    signing_secret: Option<Secret>,
}

impl Secrets {
    /// The `*_file` options of one layer.
    fn of_layer(o: &Options) -> Secrets {
        let file = |option, p: &Option<PathBuf>| p.clone().map(|p| Secret::File(option, p));
        Secrets {
            jwt_secret: file("jwt_secret_file", &o.jwt_secret_file),
            jwt_previous_secret: file("jwt_previous_secret_file", &o.jwt_previous_secret_file),
            jwt_private_key: file("jwt_private_key_file", &o.jwt_private_key_file),
            api_key: file("api_key_file", &o.api_key_file),
            signing_secret: file("signing_secret_file", &o.signing_secret_file),
        }
    }

    /// The environment layer: a value variable or its `_FILE` variable, not both.
    fn of_env(env: &BTreeMap<String, String>, from_env: &Options) -> Result<Secrets, LoadError> {
        let files = Secrets::of_layer(from_env);
        let pick = |var: &'static str, file: Option<Secret>| match (env.get(var), file) {
            (Some(_), Some(_)) => Err(LoadError::invalid(
                var,
                format!("both {var} and {var}_FILE are set; use one"),
            )),
            (Some(v), None) => Ok(Some(Secret::Value(var, v.clone()))),
            (None, file) => Ok(file),
        };
        Ok(Secrets {
            jwt_secret: pick("WSE_JWT_SECRET", files.jwt_secret)?,
            jwt_previous_secret: pick("WSE_JWT_PREVIOUS_SECRET", files.jwt_previous_secret)?,
            jwt_private_key: pick("WSE_JWT_PRIVATE_KEY", files.jwt_private_key)?,
            api_key: pick("WSE_API_KEY", files.api_key)?,
            signing_secret: pick("WSE_SIGNING_SECRET", files.signing_secret)?,
        })
    }

    fn overlay(self, higher: Secrets) -> Secrets {
        Secrets {
            jwt_secret: higher.jwt_secret.or(self.jwt_secret),
            jwt_previous_secret: higher.jwt_previous_secret.or(self.jwt_previous_secret),
            jwt_private_key: higher.jwt_private_key.or(self.jwt_private_key),
            api_key: higher.api_key.or(self.api_key),
            signing_secret: higher.signing_secret.or(self.signing_secret),
        }
    }
}

fn refuse_secret_flags(cli: &Cli) -> Result<(), LoadError> {
    let refused = [
        (
            "--jwt-secret",
            &cli.refused_jwt_secret,
            "WSE_JWT_SECRET or --jwt-secret-file",
        ),
        (
            "--jwt-previous-secret",
            &cli.refused_jwt_previous_secret,
            "WSE_JWT_PREVIOUS_SECRET or --jwt-previous-secret-file",
        ),
        (
            "--jwt-private-key",
            &cli.refused_jwt_private_key,
            "WSE_JWT_PRIVATE_KEY or --jwt-private-key-file",
        ),
        (
            "--api-key",
            &cli.refused_api_key,
            "WSE_API_KEY or --api-key-file",
        ),
        (
            "--signing-secret",
            &cli.refused_signing_secret,
            "WSE_SIGNING_SECRET or --signing-secret-file",
        ),
    ];
    for (flag, value, instead) in refused {
        if value.is_some() {
            return Err(LoadError::invalid(
                flag,
                format!(
                    "secrets are not accepted as flag values (they would show in the process \
                     list); use {instead}"
                ),
            ));
        }
    }
    Ok(())
}

/// TOML keys that would hold a secret inline, with what to use instead.
fn inline_secret_hint(key: &str) -> Option<&'static str> {
    match key {
        "jwt_secret" => Some("use jwt_secret_file or WSE_JWT_SECRET"),
        "jwt_previous_secret" => Some("use jwt_previous_secret_file or WSE_JWT_PREVIOUS_SECRET"),
        "jwt_private_key" => Some("use jwt_private_key_file or WSE_JWT_PRIVATE_KEY"),
        "api_key" => Some("use api_key_file or WSE_API_KEY"),
        "signing_secret" => Some("use signing_secret_file or WSE_SIGNING_SECRET"),
        _ => None,
    }
}

/// Builds and validates the configuration from merged options and secret sources.
fn resolve(o: Options, secrets: &Secrets) -> Result<Loaded, LoadError> {
    let cluster = cluster_config(&o)?;
    let d = ServerConfig::default();
    let algorithm = match &o.jwt_algorithm {
        Some(a) => a
            .parse::<JwtAlgorithm>()
            .map_err(|e| LoadError::invalid("jwt_algorithm", e.reason))?,
        None => JwtAlgorithm::Hs256,
    };
    let read = |s: &Option<Secret>, option| s.as_ref().map(|s| s.read(option)).transpose();
    let (secret, jwt_secret_generated) = match read(&secrets.jwt_secret, "jwt_secret")? {
        Some(secret) => (secret, false),
        None if algorithm == JwtAlgorithm::Hs256 => (random_bytes(DEV_SECRET_BYTES), true),
        None => {
            return Err(LoadError::invalid(
                "jwt_secret",
                format!("{algorithm} needs the PEM public key (WSE_JWT_SECRET or jwt_secret_file)"),
            ));
        }
    };
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let jwt = JwtSettings {
        secret,
        algorithm,
        issuer: non_empty(o.jwt_issuer),
        audience: non_empty(o.jwt_audience),
        cookie_name: non_empty(o.jwt_cookie_name),
        previous_secret: read(&secrets.jwt_previous_secret, "jwt_previous_secret")?,
        key_id: non_empty(o.jwt_key_id),
        private_key: read(&secrets.jwt_private_key, "jwt_private_key")?,
    };
    let server = ServerConfig {
        host: o.host.unwrap_or(d.host),
        port: o.port.unwrap_or(d.port),
        max_connections: o.max_connections.unwrap_or(d.max_connections),
        jwt: Some(jwt),
        max_inbound_queue_size: o.max_inbound_queue_size.unwrap_or(d.max_inbound_queue_size),
        recovery_enabled: o.recovery_enabled.unwrap_or(d.recovery_enabled),
        recovery_buffer_size: o.recovery_buffer_size.unwrap_or(d.recovery_buffer_size),
        recovery_ttl_secs: o.recovery_ttl_secs.unwrap_or(d.recovery_ttl_secs),
        recovery_max_messages: o.recovery_max_messages.unwrap_or(d.recovery_max_messages),
        recovery_memory_budget: o.recovery_memory_budget.unwrap_or(d.recovery_memory_budget),
        presence_enabled: o.presence_enabled.unwrap_or(d.presence_enabled),
        presence_max_data_size: o.presence_max_data_size.unwrap_or(d.presence_max_data_size),
        presence_max_members: o.presence_max_members.unwrap_or(d.presence_max_members),
        rate_limit_capacity: o.rate_limit_capacity.unwrap_or(d.rate_limit_capacity),
        rate_limit_refill: o.rate_limit_refill.unwrap_or(d.rate_limit_refill),
        max_message_size: o.max_message_size.unwrap_or(d.max_message_size),
        ping_interval_secs: o.ping_interval_secs.unwrap_or(d.ping_interval_secs),
        idle_timeout_secs: o.idle_timeout_secs.unwrap_or(d.idle_timeout_secs),
        max_outbound_queue_bytes: o
            .max_outbound_queue_bytes
            .unwrap_or(d.max_outbound_queue_bytes),
        max_subscriptions_per_connection: o
            .max_subscriptions_per_connection
            .unwrap_or(d.max_subscriptions_per_connection),
        allowed_origins: o.allowed_origins.map_or(d.allowed_origins, without_empty),
        inbound_rate_capacity: o.inbound_rate_capacity.unwrap_or(d.inbound_rate_capacity),
        inbound_rate_refill: o.inbound_rate_refill.unwrap_or(d.inbound_rate_refill),
        inbound_rate_grace_ms: o.inbound_rate_grace_ms.unwrap_or(d.inbound_rate_grace_ms),
        send_dedup_window: o.send_dedup_window.unwrap_or(d.send_dedup_window),
        key_rotation_interval_secs: o
            .key_rotation_interval_secs
            .unwrap_or(d.key_rotation_interval_secs),
        // Signing applies to `send_event`: in `wse`, its own `subscription_update` and `error`
        // replies (HTTP publishes are topic broadcasts, which are never signed).
        signed_event_types: o
            .signed_event_types
            .map_or(d.signed_event_types, without_empty),
        signing_secret: read(&secrets.signing_secret, "signing_secret")?,
    };
    ConnSettings::from_config(&server)
        .map_err(|e| LoadError::invalid(option_of_core_field(e.field), e.reason))?;

    let (api_key, api_key_generated) = match read(&secrets.api_key, "api_key")? {
        Some(bytes) => (check_api_key(bytes)?, false),
        None => (hex(&random_bytes(32)), true),
    };
    let log_level = o
        .log_level
        .unwrap_or_else(|| StandaloneDefaults::LOG_LEVEL.to_owned());
    tracing_subscriber::EnvFilter::try_new(&log_level)
        .map_err(|e| LoadError::invalid("log_level", e.to_string()))?;
    let drain_timeout_secs = o
        .drain_timeout_secs
        .unwrap_or(StandaloneDefaults::DRAIN_TIMEOUT_SECS);
    if drain_timeout_secs > MAX_DRAIN_TIMEOUT_SECS {
        return Err(LoadError::invalid(
            "drain_timeout_secs",
            format!("must be at most {MAX_DRAIN_TIMEOUT_SECS}, got {drain_timeout_secs}"),
        ));
    }
    Ok(Loaded {
        config: StandaloneConfig {
            server,
            api_key: Some(api_key),
            client_publish: o
                .client_publish
                .unwrap_or(StandaloneDefaults::CLIENT_PUBLISH),
            default_allow: o.default_allow.map_or_else(Vec::new, without_empty),
            default_deny: o.default_deny.map_or_else(Vec::new, without_empty),
            console: o.console.unwrap_or(StandaloneDefaults::CONSOLE),
            log_level,
            drain_timeout_secs,
            cluster,
        },
        jwt_secret_generated,
        api_key_generated,
        unknown_env: Vec::new(),
    })
}

/// The cluster section: `None` unless peers, seeds or a cluster port are configured. The TLS
/// files are checked to be all three or none here and read when the cluster starts.
fn cluster_config(o: &Options) -> Result<Option<ClusterConfig>, LoadError> {
    let peers = o.cluster_peers.clone().map_or_else(Vec::new, without_empty);
    let seeds = o.cluster_seeds.clone().map_or_else(Vec::new, without_empty);
    if peers.is_empty() && seeds.is_empty() && o.cluster_port.is_none() {
        let stray = [
            ("cluster_addr", o.cluster_addr.is_some()),
            ("cluster_bind_host", o.cluster_bind_host.is_some()),
            ("cluster_tls_cert", o.cluster_tls_cert.is_some()),
            ("cluster_tls_key", o.cluster_tls_key.is_some()),
            ("cluster_tls_ca", o.cluster_tls_ca.is_some()),
        ];
        if let Some((option, _)) = stray.iter().find(|(_, set)| *set) {
            return Err(LoadError::invalid(
                *option,
                "needs cluster_peers, cluster_seeds or cluster_port (no cluster is configured)",
            ));
        }
        return Ok(None);
    }
    let mut config = ClusterConfig::new(peers);
    config.seeds = seeds;
    config.cluster_addr = o.cluster_addr.clone();
    config.cluster_port = o.cluster_port;
    if let Some(host) = &o.cluster_bind_host {
        config.bind_host = host.clone();
    }
    config.tls = TlsFiles::from_parts(
        o.cluster_tls_cert.clone(),
        o.cluster_tls_key.clone(),
        o.cluster_tls_ca.clone(),
    )
    .map_err(|e| LoadError::invalid("cluster_tls_cert", e.to_string()))?;
    config.validate().map_err(|e| {
        let option = match e {
            crate::cluster::ClusterError::SeedsNeedAddr => "cluster_addr",
            _ => "cluster_peers",
        };
        LoadError::invalid(option, e.to_string())
    })?;
    Ok(Some(config))
}

/// The option behind a [`wse_core::config::ConfigError`] field: the core spells fields as the
/// Python constructor does, which differs from ours only for the ping interval.
fn option_of_core_field(field: &str) -> &str {
    match field {
        "ping_interval" => "ping_interval_secs",
        other => other,
    }
}

fn check_api_key(bytes: Vec<u8>) -> Result<String, LoadError> {
    let key = String::from_utf8(bytes)
        .ok()
        .filter(|k| k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| LoadError::invalid("api_key", "must be printable ASCII without spaces"))?;
    if !(MIN_API_KEY_CHARS..=MAX_API_KEY_CHARS).contains(&key.len()) {
        return Err(LoadError::invalid(
            "api_key",
            format!(
                "must be {MIN_API_KEY_CHARS} to {MAX_API_KEY_CHARS} characters, got {}",
                key.len()
            ),
        ));
    }
    Ok(key)
}

fn without_empty(list: Vec<String>) -> Vec<String> {
    list.into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn unknown_env(env: &BTreeMap<String, String>) -> Vec<String> {
    let names = option_names();
    env.keys()
        .filter(|k| k.starts_with("WSE_"))
        .filter(|k| !EXTRA_ENV.contains(&k.as_str()))
        .filter(|k| !names.iter().any(|o| &o.env == *k))
        .cloned()
        .collect()
}

fn read_bounded(option: &str, path: &Path) -> Result<Vec<u8>, LoadError> {
    let error = |reason: String| LoadError::File {
        option: option.to_owned(),
        path: path.to_owned(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| error(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| error(e.to_string()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(error(format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    Ok(bytes)
}

/// `n` bytes from the OS generator.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0; n];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The message of a clap error without its `error: ` prefix and usage tail.
fn clap_reason(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

/// `KEY=JSON` → `(KEY, value)`; a value that is not JSON is a string.
fn parse_claim(s: &str) -> Result<(String, Value), String> {
    let (key, raw) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=JSON, got {s:?}"))?;
    if key.is_empty() {
        return Err("the claim name is empty".into());
    }
    let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
    Ok((key.to_owned(), value))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
