//! `GET /ws`: a WebSocket for authenticated clients. The auth layer resolved the
//! credential (Authorization header or `token` query parameter) before the upgrade, so an
//! unauthenticated handshake never reaches this handler (401/403/503).
//!
//! Protocol: the server sends `{"type":"hello","user_id":..,"auth_method":..}`; every text
//! message `ping` is answered `{"type":"pong"}`; anything else `{"type":"error"}`.

use auth_core::http::Authenticated;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use serde_json::json;

/// The upgrade.
pub(crate) async fn upgrade(
    Authenticated(principal): Authenticated,
    ws: WebSocketUpgrade,
) -> Response {
    let hello = json!({
        "type": "hello",
        "user_id": principal.user_id(),
        "auth_method": principal.method().as_str(),
    })
    .to_string();
    ws.max_message_size(4096)
        .on_upgrade(move |socket| session(socket, hello))
}

async fn session(mut socket: WebSocket, hello: String) {
    if socket.send(Message::Text(hello.into())).await.is_err() {
        return;
    }
    while let Some(Ok(message)) = socket.recv().await {
        let reply = match message {
            Message::Text(t) if t.as_str() == "ping" => json!({ "type": "pong" }),
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
            _ => json!({ "type": "error", "error": "unsupported_message" }),
        };
        if socket
            .send(Message::Text(reply.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
}
