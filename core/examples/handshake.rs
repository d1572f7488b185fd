//! Drives one `wse-core` connection machine by hand and prints every output a driver would act
//! on: the JWT handshake (`server_ready`), a `client_hello`, a `ping`, a `send_event`, then an
//! application close. The clock and the random generator are the driver's (here: the system
//! clock and a generator seeded from it), exactly as the runtime will supply them.
#![allow(clippy::print_stdout, reason = "an example's job is to print")]

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use serde_json::json;
use wse_core::auth::encode_jwt;
use wse_core::config::{JwtAlgorithm, JwtSettings, ServerConfig};
use wse_core::conn::{ConnSettings, Connection, Handshake, Output, close_code};
use wse_core::protocol::Frame;
use wse_core::{Instant, WallClock};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let unix_micros = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros())?;
    let wall = WallClock::from_unix_micros(unix_micros);
    let now = Instant::ZERO;
    let mut rng = ChaCha8Rng::seed_from_u64(unix_micros);

    let secret = b"example-secret-that-is-at-least-32-bytes".to_vec();
    let config = ServerConfig {
        jwt: Some(JwtSettings {
            secret: secret.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let settings = Arc::new(ConnSettings::from_config(&config)?);

    let claims = json!({"sub": "alice", "exp": wall.unix_secs() + 3600});
    let token = encode_jwt(
        claims.as_object().expect("literal object"),
        &secret,
        JwtAlgorithm::Hs256,
        None,
    )?;
    let cookie = format!("access_token={token}");
    let handshake = Handshake {
        cookie: Some(cookie.as_bytes()),
        ..Default::default()
    };

    let mut conn = Connection::accept(settings, &handshake, now, wall, &mut rng);
    show("accept", &mut conn);

    conn.handle_text(
        now,
        wall,
        r#"{"c":"WSE","t":"client_hello","p":{"protocol_version":1}}"#,
    );
    show("client_hello", &mut conn);

    let ping = format!(
        r#"{{"c":"WSE","t":"ping","p":{{"timestamp":{}}},"v":1}}"#,
        wall.unix_millis()
    );
    conn.handle_text(now, wall, &ping);
    show("ping", &mut conn);

    conn.handle_text(now, wall, r#"{"t":"chat","p":{"text":"hi"}}"#);
    show("application message", &mut conn);

    let event = json!({"t": "order_update", "p": {"id": 7, "status": "filled"}});
    let outcome = conn.send_event(
        now,
        wall,
        event.as_object().expect("literal object"),
        1024,
        1,
        &mut rng,
    );
    println!("send_event -> {outcome:?}");
    show("send_event", &mut conn);

    conn.close(now, close_code::NORMAL, "example done");
    show("close", &mut conn);
    Ok(())
}

fn show(step: &str, conn: &mut Connection) {
    println!("== {step}");
    while let Some(out) = conn.poll_output() {
        match out {
            Output::Frame(Frame::Text(t)) => println!("  text   {}", String::from_utf8_lossy(&t)),
            Output::Frame(Frame::Binary(b)) => println!("  binary {}", String::from_utf8_lossy(&b)),
            Output::Event(e) => println!("  event  {e:?}"),
            Output::Close { code, reason } => println!("  close  {code} {reason:?}"),
            Output::Terminate => println!("  terminate"),
        }
    }
}
