//! The console page in a real browser: the standalone server (HTTP API with the embedded
//! console, built-in client protocol) runs in-process, and `tests/console/console.test.mjs`
//! drives headless Chromium through the page with `playwright-core`: API key, live connection
//! count, topic table, publish box, live feed over the page's own WebSocket.
//!
//! Needs Node 20+ (with npm) and Chromium at `/usr/bin/chromium` (`apt-get install -y
//! chromium`; `.ci/run` installs it). `playwright-core` is installed once from npm under
//! `target/console-node`. The final page is saved as `target/console-screenshot.png`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use wse_core::auth::encode_jwt;
use wse_core::config::{JwtAlgorithm, JwtSettings, ServerConfig};
use wse_runtime::server::ServerHandle;
use wse_runtime::standalone::app::{self, AppPolicy};
use wse_runtime::standalone::console;
use wse_runtime::standalone::http_api::{ApiOptions, ApiService};

const SECRET: &[u8] = b"console-test-secret-that-is-at-least-32-bytes";
const API_KEY: &str = "console-test-api-key";
const CHROMIUM: &str = "/usr/bin/chromium";
const PLAYWRIGHT: &str = "playwright-core@1";
/// npm downloads one small package; the browser script has its own 120 s watchdog.
const NPM_TIMEOUT: Duration = Duration::from_secs(300);
const BROWSER_TIMEOUT: Duration = Duration::from_secs(180);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

fn workspace_target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// Runs `command` with stdout and stderr in `log`, killing it after `limit`. `Ok(output)` when
/// it exits 0, otherwise `Err` with what went wrong and the output.
fn run_bounded(mut command: Command, limit: Duration, log: &Path) -> Result<String, String> {
    let out = File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cannot clone the log: {e}"))?;
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let output = std::fs::read_to_string(log).unwrap_or_default();
    match status {
        Some(status) if status.success() => Ok(output),
        Some(status) => Err(format!("{program} failed ({status}):\n{output}")),
        None => Err(format!("{program} killed after {limit:?}:\n{output}")),
    }
}

/// The folder whose `node_modules` holds playwright-core, installed on first use.
fn playwright_dir() -> PathBuf {
    let dir = workspace_target().join("console-node");
    if dir
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        return dir;
    }
    std::fs::create_dir_all(&dir).expect("target/console-node is creatable");
    std::fs::write(dir.join("package.json"), "{\"private\": true}\n")
        .expect("target/console-node/package.json is writable");
    let mut npm = Command::new("npm");
    npm.args(["install", "--no-audit", "--no-fund", PLAYWRIGHT])
        .current_dir(&dir);
    if let Err(e) = run_bounded(npm, NPM_TIMEOUT, &dir.join("npm-install.log")) {
        panic!(
            "npm install {PLAYWRIGHT} failed (needs Node 20+ with npm, and the npm registry): {e}"
        );
    }
    dir
}

/// An HS256 token for `claims`, valid for an hour.
fn token(claims: &Value) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
        + 3600;
    let mut claims = claims.as_object().cloned().expect("claims are an object");
    claims.insert("exp".into(), exp.into());
    encode_jwt(&claims, SECRET, JwtAlgorithm::Hs256, None).expect("HS256 token")
}

/// A second client besides the page: connects with a cookie, subscribes to `demo` (checking
/// the ack) and forwards every text frame it receives afterwards.
async fn demo_subscriber(addr: std::net::SocketAddr) -> mpsc::Receiver<String> {
    let mut request = format!("ws://{addr}/wse")
        .into_client_request()
        .expect("a valid ws URL");
    let cookie = format!(
        "access_token={}",
        token(&json!({"sub": "rust-client", "wse_topics": {"allow": ["demo"], "deny": []}}))
    );
    request.headers_mut().insert(
        "cookie",
        HeaderValue::from_str(&cookie).expect("a token is a valid header value"),
    );
    let (ws, _) = tokio::time::timeout(CLIENT_TIMEOUT, tokio_tungstenite::connect_async(request))
        .await
        .expect("the WebSocket handshake finishes in time")
        .expect("the server accepts a cookie-authenticated client");
    let (mut sink, mut stream) = ws.split();
    let mut next_json = async || loop {
        let frame = tokio::time::timeout(CLIENT_TIMEOUT, stream.next())
            .await
            .expect("the server answers in time")
            .expect("the socket stays open")
            .expect("a valid frame");
        match frame {
            Message::Text(text) => {
                return serde_json::from_str::<Value>(&text).expect("text frames are JSON");
            }
            // `send_event` output (the subscription ack among it) is binary JSON.
            Message::Binary(data) => {
                if let Ok(value) = serde_json::from_slice::<Value>(&data) {
                    return value;
                }
            }
            _ => {}
        }
    };
    while next_json().await["t"] != "server_ready" {}
    let subscribe =
        json!({"t": "subscription_update", "p": {"action": "subscribe", "topics": ["demo"]}});
    sink.send(Message::text(subscribe.to_string()))
        .await
        .expect("subscribe sent");
    let ack = loop {
        let message = next_json().await;
        if message["t"] == "subscription_update" {
            break message;
        }
    };
    assert_eq!(
        ack["p"]["success_topics"],
        json!(["demo"]),
        "the Rust client's subscription ack: {ack}"
    );
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(Ok(frame)) = stream.next().await {
            let Message::Text(text) = frame else { continue };
            if text.contains(r#""t":"ping""#) {
                let _ = sink.send(Message::text(r#"{"t":"pong"}"#)).await;
            } else if tx.send(text.to_string()).await.is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn the_console_page_shows_live_state_and_publishes_into_its_own_feed() {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "Chromium is missing at {CHROMIUM}: install it with `apt-get install -y chromium` \
         (.ci/run does this before the tests)"
    );
    let playwright = playwright_dir();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let config = ServerConfig {
            port: 0,
            jwt: Some(JwtSettings {
                secret: SECRET.to_vec(),
                ..Default::default()
            }),
            recovery_enabled: true,
            presence_enabled: true,
            ..Default::default()
        };
        let api = ApiService::new(ApiOptions {
            api_key: API_KEY.to_owned(),
            jwt: config.jwt.clone(),
            static_files: Some(console::asset),
            max_body_bytes: 1 << 20,
        });
        let server = ServerHandle::start_with_http(&config, Some(Arc::new(api)))
            .await
            .expect("the server starts");
        let app = tokio::spawn(app::run(
            server.clone(),
            AppPolicy {
                client_publish: false,
                default_acl: None,
            },
        ));
        let mut received = demo_subscriber(server.local_addr()).await;

        let target = workspace_target();
        let screenshot = target.join("console-screenshot.png");
        let log = target.join("console-test.log");
        let mut node = Command::new("node");
        node.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/console.test.mjs"))
            .env("WSE_URL", format!("http://{}", server.local_addr()))
            .env("WSE_API_KEY", API_KEY)
            .env("SCREENSHOT", &screenshot)
            .env("PLAYWRIGHT_DIR", &playwright)
            // The page's own WebSocket plus the Rust client above.
            .env("WSE_EXPECT_CONNECTIONS", "2");
        let result = tokio::task::spawn_blocking(move || run_bounded(node, BROWSER_TIMEOUT, &log))
            .await
            .expect("the browser run does not panic");
        match result {
            Ok(output) => println!("{output}"),
            Err(e) => panic!("the browser test failed (needs Node 20+): {e}"),
        }

        // What the page published reached every subscriber, not only the page's feed.
        let published = tokio::time::timeout(CLIENT_TIMEOUT, async {
            while let Some(text) = received.recv().await {
                let message: Value = serde_json::from_str(&text).expect("topic messages are JSON");
                if message["t"] == "demo" && message["p"] == json!({"n": 1}) {
                    return Some(message);
                }
            }
            None
        })
        .await;
        assert!(
            matches!(published, Ok(Some(_))),
            "the Rust subscriber of demo did not receive the page's publish"
        );
        app.abort();
        server.stop().await;
    });
}
