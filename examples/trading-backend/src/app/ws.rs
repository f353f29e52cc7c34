//! `GET /ws`: a WebSocket for authenticated clients. The route's own auth layer resolved
//! the credential (Authorization header, or on this route only a `token` query
//! parameter) before the upgrade, so an unauthenticated handshake never reaches this
//! handler (401/403/503).
//!
//! Protocol: the server sends `{"type":"hello","user_id":..,"auth_method":..}`; every text
//! message `ping` is answered `{"type":"pong"}`; anything else `{"type":"error"}`.
//!
//! The credential is re-checked through the chain every `WS_RECHECK_SECS` seconds
//! (default 5) against the shared store, so a logout, a password change, a key
//! revocation or an expiry on any instance closes the socket within that interval (plus
//! one store lookup): close code 1008 (policy violation) when the credential ended, 1013
//! (try again later) when the store could not answer. The re-check also runs while a
//! reply is blocked on a client that stopped reading; if the reply still cannot get
//! through within one more interval, the socket is dropped without a close frame.
//!
//! A request that is not a WebSocket handshake gets the service's JSON error body,
//! `{"error": "websocket_upgrade_required"}`, with axum's status for it (400, or 426 when
//! the connection cannot be upgraded), not axum's plain-text rejection.

use std::time::Duration;

use auth_core::http::{Authenticated, Recheck};
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Shared;
use super::error::ApiError;

/// `GET /ws`: the WebSocket upgrade (see the module docs for the protocol).
#[utoipa::path(
    get, operation_id = "ws_upgrade", path = "/ws", tag = "operations",
    responses(
        (status = 101, description = "Switched to a WebSocket: a `hello` message, then `ping` is answered `pong`; closed with 1008 when the credential ends."),
        (status = 400, description = "Not a WebSocket handshake: `{\"error\": \"websocket_upgrade_required\"}`.", body = super::openapi::ErrorBody),
        (status = 426, description = "Not a WebSocket handshake: `{\"error\": \"websocket_upgrade_required\"}`.", body = super::openapi::ErrorBody),
    )
)]
pub(crate) async fn upgrade(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
    recheck: Recheck,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return ApiError::Code(rejection.status(), "websocket_upgrade_required")
                .into_response();
        }
    };
    let hello = json!({
        "type": "hello",
        "user_id": principal.user_id(),
        "auth_method": principal.method().as_str(),
    })
    .to_string();
    let every = state.ws_recheck;
    ws.max_message_size(4096)
        .on_upgrade(move |socket| session(socket, hello, recheck, every))
}

async fn session(mut socket: WebSocket, hello: String, recheck: Recheck, every: Duration) {
    if socket.send(Message::Text(hello.into())).await.is_err() {
        return;
    }
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let message = tokio::select! {
            _ = ticks.tick() => {
                if let Err(outcome) = recheck.check().await {
                    close(&mut socket, ended(&recheck, &outcome), every).await;
                    return;
                }
                continue;
            }
            received = socket.recv() => received,
        };
        let Some(Ok(message)) = message else { return };
        let reply = match message {
            Message::Text(t) if t.as_str() == "ping" => json!({ "type": "pong" }),
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => continue,
            _ => json!({ "type": "error", "error": "unsupported_message" }),
        };
        let mut ended_with = None;
        let sent = {
            let send = socket.send(Message::Text(reply.to_string().into()));
            tokio::pin!(send);
            // A client that stops reading blocks this write; the re-check keeps running.
            // When it fails, the pending reply gets one more interval to get through (a
            // client that reads then sees the close frame), else the socket is dropped.
            loop {
                tokio::select! {
                    sent = &mut send => break sent.is_ok(),
                    _ = ticks.tick() => {
                        if let Err(outcome) = recheck.check().await {
                            ended_with = Some(ended(&recheck, &outcome));
                            break matches!(tokio::time::timeout(every, &mut send).await, Ok(Ok(())));
                        }
                    }
                }
            }
        };
        match (ended_with, sent) {
            (Some(code), true) => {
                close(&mut socket, code, every).await;
                return;
            }
            (Some(_), false) | (None, false) => return,
            (None, true) => {}
        }
    }
}

/// Sends a close frame with `code`, waiting at most `every` (a client that stopped
/// reading must not hold the socket open).
async fn close(socket: &mut WebSocket, code: u16, every: Duration) {
    let frame = CloseFrame {
        code,
        reason: "credential_ended".into(),
    };
    let _ = tokio::time::timeout(every, socket.send(Message::Close(Some(frame)))).await;
}

/// Logs a failed re-check; the close code for it.
fn ended(recheck: &Recheck, outcome: &auth_core::Outcome) -> u16 {
    let code = Recheck::close_code(outcome);
    let principal = recheck.principal();
    tracing::info!(
        code = outcome.code(),
        close_code = code,
        user_id = principal.user_id(),
        credential_id = principal.credential_id(),
        "websocket closed: credential no longer valid"
    );
    code
}
