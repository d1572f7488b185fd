//! `wse`: WSE as a standalone server (`wse` or `wse serve`), and a token minter (`wse token`).
//!
//! `serve` loads the configuration (`standalone::config`), starts the engine with the HTTP
//! service of the port, runs the built-in client protocol (`standalone::app`) and, on SIGINT or
//! SIGTERM, drains: every client is closed with 4300 (reconnect elsewhere), the process waits up
//! to `drain_timeout_secs` for them to go, stops the engine and exits 0. A second signal during
//! the wait stops at once.
//!
//! Exit codes: 0 after a clean shutdown or a printed token, 1 when the server cannot start or a
//! token cannot be minted, 2 for a configuration error (clap's own usage errors are 2 as well).

#![forbid(unsafe_code)]
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool talks to its operator on stdout and stderr"
)]

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// mimalloc: events are allocated on the runtime's threads and freed on another (Python's), a
/// pattern on which glibc malloc's arena locks showed in profiles (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use serde_json::Value;
use tracing::{info, warn};
use wse_core::auth::encode_jwt;
use wse_core::config::{JwtAlgorithm, JwtSettings};
use wse_runtime::server::ServerHandle;
use wse_runtime::standalone::app::{self, AppPolicy};
use wse_runtime::standalone::claims::standard_claims;
use wse_runtime::standalone::config::{self, Cli, Command, Loaded, TokenArgs};
use wse_runtime::standalone::http_service;

/// Close code of the shutdown drain: clients reconnect (to another node) at once.
const DRAIN_CLOSE_CODE: u16 = 4300;
/// Subject of the development token printed when the JWT secret was generated.
const DEV_USER: &str = "dev-user";
/// Lifetime of that token.
const DEV_TOKEN_TTL_SECS: u64 = 24 * 3600;
/// How long the client protocol task gets to finish after the engine stopped.
const APP_STOP_GRACE: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    let loaded = match config::process_env().and_then(|env| config::load(&cli, &env)) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("wse: {e}");
            return ExitCode::from(2);
        }
    };
    match &cli.command {
        Some(Command::Token(args)) => token(&loaded, args),
        None | Some(Command::Serve) => serve(loaded),
    }
}

/// `wse token`: prints a token signed with the configured key.
fn token(loaded: &Loaded, args: &TokenArgs) -> ExitCode {
    if loaded.jwt_secret_generated {
        eprintln!(
            "wse token: no JWT secret is configured (set WSE_JWT_SECRET or --jwt-secret-file, the \
             same as the server's); a generated development secret exists only inside the \
             server process that made it, which prints its own development token"
        );
        return ExitCode::from(1);
    }
    let Some(jwt) = &loaded.config.server.jwt else {
        eprintln!("wse token: the server has no JWT settings");
        return ExitCode::from(1);
    };
    match mint(jwt, &args.sub, args.ttl_secs, &args.claims) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wse token: {e}");
            ExitCode::from(1)
        }
    }
}

/// A token for `sub` valid `ttl_secs` from now, with `iss`/`aud`/`kid` as the server checks
/// them and the `extra` claims. HS256 signs with the secret, RS256/ES256 with the private key.
fn mint(
    jwt: &JwtSettings,
    sub: &str,
    ttl_secs: u64,
    extra: &[(String, Value)],
) -> Result<String, String> {
    let key = match jwt.algorithm {
        JwtAlgorithm::Hs256 => jwt.secret.as_slice(),
        alg => jwt.private_key.as_deref().ok_or_else(|| {
            format!(
                "{alg} tokens need the private key (WSE_JWT_PRIVATE_KEY or --jwt-private-key-file)"
            )
        })?,
    };
    if sub.is_empty() {
        return Err("--sub must not be empty".into());
    }
    for (name, _) in extra {
        let set_by_server =
            (name == "iss" && jwt.issuer.is_some()) || (name == "aud" && jwt.audience.is_some());
        if matches!(name.as_str(), "sub" | "exp" | "iat") || set_by_server {
            return Err(format!(
                "--claim {name}: set by wse token itself (use --sub, --ttl-secs, or the server's \
                 jwt_issuer/jwt_audience)"
            ));
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "the system clock is before 1970".to_owned())?
        .as_secs();
    let mut claims = standard_claims(jwt, sub, ttl_secs, now);
    claims.extend(extra.iter().cloned());
    encode_jwt(&claims, key, jwt.algorithm, jwt.key_id.as_deref()).map_err(|e| e.to_string())
}

/// `wse serve`.
fn serve(loaded: Loaded) -> ExitCode {
    init_tracing(&loaded.config.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("wse: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run_server(loaded))
}

fn init_tracing(filter: &str) {
    // The filter was validated by the configuration; a failure here falls back to `info`.
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn run_server(loaded: Loaded) -> ExitCode {
    for var in &loaded.unknown_env {
        warn!("{var} names no option and is ignored (see wse --help)");
    }
    announce_generated(&loaded);
    let config = loaded.config;
    let handle = match ServerHandle::start_with_http(&config.server, http_service(&config)).await {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("wse: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(cluster) = config.cluster.clone() {
        let (port, peers, seeds) = (
            cluster.cluster_port,
            cluster.peers.len(),
            cluster.seeds.len(),
        );
        if let Err(e) = handle.connect_cluster(cluster).await {
            eprintln!("wse: cluster: {e}");
            handle.stop().await;
            return ExitCode::from(1);
        }
        info!(
            instance_id = handle.cluster().map(|c| c.instance_id().to_owned()),
            cluster_port = port,
            peers,
            seeds,
            "cluster started"
        );
    }
    info!(
        addr = %handle.local_addr(),
        recovery = config.server.recovery_enabled,
        presence = config.server.presence_enabled,
        client_publish = config.client_publish,
        "wse listening"
    );
    let app_task = tokio::spawn(app::run((*handle).clone(), AppPolicy::from_config(&config)));

    let signal = shutdown_signal().await;
    let drain = Duration::from_secs(config.drain_timeout_secs);
    info!(
        signal,
        connections = handle.connection_count(),
        "draining (close {DRAIN_CLOSE_CODE}) for up to {}s",
        drain.as_secs()
    );
    handle.start_drain(DRAIN_CLOSE_CODE, "server shutting down", drain);
    let deadline = tokio::time::Instant::now() + drain;
    while handle.connection_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::select! {
            second = shutdown_signal() => {
                warn!(signal = second, "second signal: stopping now");
                break;
            }
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    handle.stop().await;
    if tokio::time::timeout(APP_STOP_GRACE, app_task)
        .await
        .is_err()
    {
        warn!("client protocol task did not end in time");
    }
    info!("stopped");
    ExitCode::SUCCESS
}

/// Says, once and loudly, what was generated: a development JWT secret (with a token to try
/// it) and the API key.
fn announce_generated(loaded: &Loaded) {
    if loaded.jwt_secret_generated {
        eprintln!(
            "wse: WARNING: no JWT secret configured: using a random development secret.\n\
             wse: WARNING: tokens signed with it die with this process; set WSE_JWT_SECRET or \
             --jwt-secret-file for anything but development."
        );
        if let Some(jwt) = &loaded.config.server.jwt {
            match mint(jwt, DEV_USER, DEV_TOKEN_TTL_SECS, &[]) {
                Ok(token) => eprintln!(
                    "wse: development token for {DEV_USER:?} (valid {} h): {token}",
                    DEV_TOKEN_TTL_SECS / 3600
                ),
                Err(e) => eprintln!("wse: cannot mint a development token: {e}"),
            }
        }
    }
    if loaded.api_key_generated {
        if let Some(key) = &loaded.config.api_key {
            eprintln!(
                "wse: HTTP API key (generated for this run; set WSE_API_KEY or --api-key-file to \
                 keep one): {key}"
            );
        }
    }
}

/// Waits for SIGINT or SIGTERM (Ctrl-C elsewhere) and names it. A signal that cannot be
/// listened for never fires.
async fn shutdown_signal() -> &'static str {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let terminate = async {
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    term.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = interrupt => "SIGINT",
            () = terminate => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        interrupt.await;
        "Ctrl-C"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wse_core::WallClock;
    use wse_core::auth::JwtValidator;

    fn hs256() -> JwtSettings {
        JwtSettings {
            secret: b"bin-test-secret-of-at-least-32-bytes".to_vec(),
            issuer: Some("wse-test".into()),
            ..JwtSettings::default()
        }
    }

    #[test]
    fn minted_tokens_validate_against_the_servers_settings_with_extra_claims() {
        let jwt = hs256();
        let extra = [("wse_topics".to_owned(), json!({"allow": ["chat:*"]}))];
        let token = mint(&jwt, "alice", 60, &extra).unwrap();
        let validator = JwtValidator::new(&jwt).unwrap();
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros();
        let now = WallClock::from_unix_micros(u64::try_from(micros).unwrap());
        let claims = validator.validate(&token, now).unwrap();
        assert_eq!(claims.sub, "alice");
        assert!(claims.topic_acl.unwrap().allows_topic("chat:1"));
    }

    #[test]
    fn reserved_claims_and_server_set_claims_are_refused() {
        let jwt = hs256();
        for name in ["sub", "exp", "iat", "iss"] {
            let extra = [(name.to_owned(), json!("x"))];
            let err = mint(&jwt, "alice", 60, &extra).unwrap_err();
            assert!(err.contains(name), "{err}");
        }
        // `aud` is free when the server does not check it.
        assert!(mint(&jwt, "alice", 60, &[("aud".to_owned(), json!("x"))]).is_ok());
        assert!(mint(&jwt, "", 60, &[]).is_err());
    }

    #[test]
    fn rs256_tokens_need_the_private_key() {
        let jwt = JwtSettings {
            algorithm: JwtAlgorithm::Rs256,
            ..JwtSettings::default()
        };
        let err = mint(&jwt, "alice", 60, &[]).unwrap_err();
        assert!(err.contains("WSE_JWT_PRIVATE_KEY"), "{err}");
    }
}
