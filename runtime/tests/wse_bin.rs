//! The real `wse` binary: help, token minting, serving, and the SIGTERM drain.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wse_runtime::standalone::config::option_names;

const SECRET: &str = "wse-bin-test-secret-of-32-bytes-or-more";
const API_KEY: &str = "wse-bin-test-api-key-0123456789";
const WAIT: Duration = Duration::from_secs(10);

/// `wse` with no `WSE_*` variable inherited from the test's environment.
fn wse() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wse"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("WSE_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn stderr_file(test: &str) -> PathBuf {
    std::env::temp_dir().join(format!("wse-bin-{}-{test}.log", std::process::id()))
}

/// Waits for the child to exit, at most `WAIT`.
fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("wse did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn help_lists_every_option_and_exits_zero() {
    let out = wse().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for o in option_names() {
        assert!(help.contains(&format!("--{}", o.flag)), "--{}", o.flag);
        assert!(help.contains(&o.env), "{}", o.env);
    }
    for word in [
        "--config",
        "serve",
        "token",
        "WSE_JWT_SECRET",
        "WSE_API_KEY",
    ] {
        assert!(help.contains(word), "{word}");
    }
}

#[test]
fn token_without_a_configured_secret_fails_with_a_clear_error() {
    let out = wse().args(["token", "--sub", "alice"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("WSE_JWT_SECRET"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_configuration_error_names_the_option_and_exits_2() {
    let out = wse().env("WSE_PORT", "high").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("WSE_PORT"), "{err}");
    let out = wse().args(["--jwt-secret", SECRET]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("WSE_JWT_SECRET"), "{err}");
}

#[tokio::test]
async fn sigterm_drains_clients_with_4300_and_exits_zero() {
    let port = free_port();
    let log = stderr_file("sigterm");
    let mut child = wse()
        .env("WSE_PORT", port.to_string())
        .env("WSE_JWT_SECRET", SECRET)
        .env("WSE_API_KEY", API_KEY)
        .env("WSE_DRAIN_TIMEOUT_SECS", "5")
        .env("WSE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();

    let token = wse()
        .env("WSE_JWT_SECRET", SECRET)
        .args(["token", "--sub", "alice", "--ttl-secs", "120"])
        .output()
        .unwrap();
    assert!(token.status.success(), "{token:?}");
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();

    // The server binds shortly after starting.
    let deadline = Instant::now() + WAIT;
    let mut ws = loop {
        let mut req = format!("ws://127.0.0.1:{port}/wse")
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("Cookie", format!("access_token={token}").parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => break ws,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                let _ = child.kill();
                panic!(
                    "cannot connect: {e}\n{}",
                    std::fs::read_to_string(&log).unwrap()
                );
            }
        }
    };
    let ready = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Message::Text(ready) = ready else {
        panic!("expected server_ready, got {ready:?}")
    };
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["t"], "server_ready");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let code = loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, Some(4300));
    drop(ws);
    let exit = wait_exit(&mut child);
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(exit.success(), "{exit:?}\n{stderr}");
    // Configured secrets are not announced as generated, nor printed.
    assert!(!stderr.contains("development secret"), "{stderr}");
    assert!(
        !stderr.contains(API_KEY) && !stderr.contains(SECRET),
        "{stderr}"
    );
}

#[test]
fn without_secrets_the_server_announces_a_dev_token_and_an_api_key() {
    let port = free_port();
    let log = stderr_file("generated");
    let mut child = wse()
        .env("WSE_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let stderr = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("listening") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let exit = wait_exit(&mut child);
    assert!(stderr.contains("development secret"), "{stderr}");
    assert!(
        stderr.contains("development token for \"dev-user\""),
        "{stderr}"
    );
    assert!(stderr.contains("HTTP API key"), "{stderr}");
    assert!(exit.success(), "{exit:?}");
}
