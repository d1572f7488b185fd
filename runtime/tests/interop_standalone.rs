//! The published Python client (PyPI `wse-client` 2.5.1, unmodified) against the standalone
//! server stack (HTTP API + built-in client protocol), started in-process: it subscribes itself,
//! receives what an HTTP publish sends, is refused a topic outside its ACL, and recovers missed
//! messages after a reconnect through the built-in handler. Runs
//! `tests/interop_standalone/*.py`.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use serde_json::json;
use wse_core::auth::encode_jwt;
use wse_core::config::{JwtAlgorithm, JwtSettings, ServerConfig};
use wse_runtime::server::ServerHandle;
use wse_runtime::standalone::app::{self, AppPolicy};
use wse_runtime::standalone::http_api::{ApiOptions, ApiService};

const SECRET: &[u8] = b"standalone-interop-secret-of-32-bytes!!";
const API_KEY: &str = "interop-api-key-0123456789";

#[test]
fn the_published_client_uses_the_standalone_server() {
    let py = common::python();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let jwt = JwtSettings {
            secret: SECRET.to_vec(),
            ..Default::default()
        };
        let config = ServerConfig {
            port: 0,
            jwt: Some(jwt.clone()),
            recovery_enabled: true,
            ..Default::default()
        };
        let api = ApiService::new(ApiOptions {
            jwt: Some(jwt),
            ..ApiOptions::new(API_KEY)
        });
        let server = ServerHandle::start_with_http(&config, Some(Arc::new(api)))
            .await
            .unwrap();
        let app_task = tokio::spawn(app::run(
            (*server).clone(),
            AppPolicy {
                client_publish: false,
                default_acl: None,
            },
        ));
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        let claims = json!({
            "sub": "standalone-user",
            "exp": exp,
            "wse_topics": {"allow": ["news", "room.*"], "deny": ["room.secret"]},
        });
        let token = encode_jwt(
            claims.as_object().unwrap(),
            SECRET,
            JwtAlgorithm::Hs256,
            None,
        )
        .unwrap();
        let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop_standalone");
        let addr = server.local_addr();
        let output = tokio::task::spawn_blocking(move || {
            Command::new(py)
                .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
                .arg(&suite)
                .env("WSE_URL", format!("ws://{addr}/wse"))
                .env("WSE_HTTP", format!("http://{addr}"))
                .env("WSE_API_KEY", API_KEY)
                .env("WSE_TOKEN", token)
                .output()
                .expect("pytest runs")
        })
        .await
        .unwrap();
        server.stop().await;
        let _ = app_task.await;
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "pytest failed:\n{text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(text.contains("3 passed"), "all three tests ran:\n{text}");
    });
}
