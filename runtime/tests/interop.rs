//! Interop with the real published client: runs the pytest suite in `tests/interop/` (the
//! PyPI `wse-client` 2.5.1, unmodified) against this server, started in-process.
//!
//! Python: `$WSE_INTEROP_PYTHON` if set (an interpreter that already has `wse-client[msgpack]`
//! and `pytest`); otherwise a virtualenv is created once under `target/interop-venv` and the
//! pinned packages are installed from PyPI.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use wse_core::auth::encode_jwt;
use wse_core::config::{JwtAlgorithm, JwtSettings, ServerConfig};
use wse_runtime::server::{ServerEvent, ServerHandle};

const SECRET: &[u8] = b"interop-secret-that-is-at-least-32-bytes!";
/// Answers `interop_request` with the three framings the suite checks.
async fn respond(server: &ServerHandle) {
    while let Some(ev) = server.next_event(Duration::from_secs(120)).await {
        let ServerEvent::Msg(id, v) = ev else {
            continue;
        };
        if v["t"] != "interop_request" {
            continue;
        }
        let n = v["p"]["n"].clone();
        if v["p"]["presence"] == true {
            // Join a topic's presence: the presence_join is delivered to the client itself
            // (sealed, on an encrypted connection).
            let _ = server.subscribe_connection(
                id,
                &["lobby".to_owned()],
                Some(&json!({"status": "here"})),
                None,
            );
        }
        let obj = |v: Value| v.as_object().cloned().expect("literal object");
        server.send_event(id, &obj(json!({"t": "evt_json", "p": {"n": n}})), 1024);
        server.send_event(
            id,
            &obj(json!({"t": "evt_big", "p": {"pad": "x".repeat(3000)}})),
            1024,
        );
        server.broadcast_all(r#"{"t":"evt_broadcast","p":{"n":2}}"#);
    }
}

#[test]
fn the_published_python_client_interoperates() {
    let py = common::python();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = ServerConfig {
            port: 0,
            jwt: Some(JwtSettings {
                secret: SECRET.to_vec(),
                ..Default::default()
            }),
            ping_interval_secs: 1,
            idle_timeout_secs: 3,
            presence_enabled: true,
            // `evt_json` carries a `sig`: the published client must take it unchanged.
            signed_event_types: vec!["evt_json".into()],
            signing_secret: Some(b"interop-signing-secret-of-32-bytes!!".to_vec()),
            ..Default::default()
        };
        let server = std::sync::Arc::new(ServerHandle::start(&config).await.unwrap());
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        let claims = json!({"sub": "interop-user", "exp": exp});
        let token = encode_jwt(
            claims.as_object().unwrap(),
            SECRET,
            JwtAlgorithm::Hs256,
            None,
        )
        .unwrap();
        let responder = {
            let server = std::sync::Arc::clone(&server);
            tokio::spawn(async move { respond(&server).await })
        };
        let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
        let url = format!("ws://{}/wse", server.local_addr());
        let output = tokio::task::spawn_blocking(move || {
            Command::new(py)
                .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
                .arg(&suite)
                .env("WSE_URL", url)
                .env("WSE_TOKEN", token)
                .output()
                .expect("pytest runs")
        })
        .await
        .unwrap();
        responder.abort();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "pytest failed:\n{text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            text.contains("5 passed"),
            "all five interop tests ran:\n{text}"
        );
    });
}
