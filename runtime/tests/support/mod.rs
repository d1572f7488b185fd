//! Helpers shared by the loopback test suites (each includes this module with `mod support;`).

use serde_json::{Value, json};
use wse_core::auth::encode_jwt;
use wse_core::config::JwtAlgorithm;

/// An HS256 token for `sub`, valid for ten minutes from now, signed with `secret`, with the
/// extra claims of `extra` (an object) merged in.
#[allow(dead_code)] // not every suite that includes this module authenticates
pub(crate) fn hs256_token(secret: &[u8], sub: &str, extra: Option<Value>) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
        + 600;
    let mut claims = json!({"sub": sub, "exp": exp});
    if let Some(Value::Object(more)) = extra {
        for (k, v) in more {
            claims[k] = v;
        }
    }
    encode_jwt(
        claims.as_object().expect("an object"),
        secret,
        JwtAlgorithm::Hs256,
        None,
    )
    .expect("a valid HS256 secret")
}

/// A client WebSocket over plain TCP, as `tokio_tungstenite::connect_async` returns it.
pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next message within 5 s; panics on a timeout, a closed stream or a protocol error.
#[allow(dead_code)] // not every suite that includes this module reads frames this way
pub(crate) async fn next(ws: &mut Ws) -> tokio_tungstenite::tungstenite::Message {
    use futures_util::StreamExt;
    tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
        .await
        .expect("a frame in time")
        .expect("open")
        .expect("valid")
}

/// A WebSocket client to `server`, with the token as the `access_token` cookie when given.
#[allow(dead_code)] // not every suite that includes this module connects this way
pub(crate) async fn connect(
    server: &wse_runtime::server::ServerHandle,
    cookie_token: Option<&str>,
) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{}/wse", server.local_addr())
        .into_client_request()
        .expect("a valid URL");
    if let Some(t) = cookie_token {
        req.headers_mut().insert(
            "Cookie",
            format!("access_token={t}").parse().expect("a valid header"),
        );
    }
    let (ws, _) = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("connected in time")
    .expect("upgraded");
    ws
}
