//! A small echo server on the real runtime, until the `wse` binary exists:
//!
//! ```sh
//! cargo run -p wse-runtime --example serve            # 127.0.0.1:5007
//! WSE_PORT=6000 WSE_JWT_SECRET=... cargo run -p wse-runtime --example serve
//! ```
//!
//! With `WSE_JWT_SECRET` unset it generates a development secret and prints a token valid for
//! an hour (`sub` = "dev"), so `wse-client` can connect at once. Every client message is echoed
//! back with `send_event` as `{"t":"echo","p":<message>}`; `subscription_update` messages
//! subscribe or unsubscribe the sender and are acknowledged as the published clients expect.
//! Ctrl-C drains (4300) and stops.
#![allow(clippy::print_stdout, reason = "an example's job is to print")]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand_core::{OsRng, RngCore};
use serde_json::json;
use wse_core::auth::encode_jwt;
use wse_core::config::{JwtAlgorithm, JwtSettings, ServerConfig};
use wse_runtime::server::{ServerEvent, ServerHandle};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = std::env::var("WSE_PORT")
        .ok()
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(5007);
    let secret = match std::env::var("WSE_JWT_SECRET") {
        Ok(s) => s.into_bytes(),
        Err(_) => {
            let mut s = [0u8; 32];
            OsRng.fill_bytes(&mut s);
            let hex: String = s.iter().map(|b| format!("{b:02x}")).collect();
            hex.into_bytes()
        }
    };
    let config = ServerConfig {
        port,
        jwt: Some(JwtSettings {
            secret: secret.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let server = ServerHandle::start(&config).await?;
    let exp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3600;
    let claims = json!({"sub": "dev", "exp": exp});
    let token = encode_jwt(
        claims.as_object().expect("literal"),
        &secret,
        JwtAlgorithm::Hs256,
        None,
    )?;
    println!("listening on ws://{}/wse", server.local_addr());
    println!("development token (sub=dev, 1 h): {token}");

    loop {
        tokio::select! {
            biased;
            _ = tokio::signal::ctrl_c() => break,
            ev = server.next_event(Duration::from_secs(1)) => {
                if let Some(ev) = ev {
                    handle(&server, ev);
                }
            }
        }
    }
    println!("draining");
    server
        .drain(4300, "server restarting", Duration::from_secs(5))
        .await;
    server.stop().await;
    Ok(())
}

fn handle(server: &ServerHandle, ev: ServerEvent) {
    match ev {
        ServerEvent::AuthConnect(id, user, _) => println!("connect {id} as {user}"),
        ServerEvent::Disconnect(id) => println!("disconnect {id}"),
        ServerEvent::Msg(id, msg) if msg["t"] == "subscription_update" => {
            let topics: Vec<String> = msg["p"]["topics"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let (ok, failed): (Vec<String>, Vec<String>) = if msg["p"]["action"] == "unsubscribe" {
                server.unsubscribe_connection(id, Some(&topics));
                (topics, Vec::new())
            } else {
                let added = server
                    .subscribe_connection(id, &topics, None, None)
                    .unwrap_or_default();
                topics.into_iter().partition(|t| added.contains(t))
            };
            let ack = json!({"t": "subscription_update", "p": {
                "success": failed.is_empty(), "success_topics": ok, "failed_topics": failed}});
            server.send_event(id, ack.as_object().expect("literal"), 1024);
        }
        ServerEvent::Msg(id, msg) => {
            let echo = json!({"t": "echo", "p": msg});
            server.send_event(id, echo.as_object().expect("literal"), 1024);
        }
        ServerEvent::Raw(id, text) => server.send(id, &text),
        ServerEvent::Bin(id, data) => server.send_bytes(id, &data),
        ServerEvent::Connect(..)
        | ServerEvent::PresenceJoin { .. }
        | ServerEvent::PresenceLeave { .. } => {}
    }
}
