//! Forwarding a client to the node that serves its world.
//!
//! Clients reach any node (say, through one load balancer); a node that does not serve
//! the world a client joins opens a WebSocket to the owner's internal URL, replays the
//! `join`, and then copies frames both ways until either side ends. The client never
//! notices. The owner learns the client's address from a short-lived token in the
//! `x-isoplane-forwarded` header, signed with the workspace's token secret, so its
//! per-address limits apply to the real client and not to the forwarding node.

use std::net::IpAddr;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::auth::{TimedClaims, TokenKey};

/// The header carrying [`ForwardedClaims`].
pub const FORWARDED_HEADER: &str = "x-isoplane-forwarded";
const FORWARDED_SCOPE: &str = "forwarded";
const FORWARDED_SECONDS: u64 = 30;
/// How long one write to either side may take before the forwarding ends.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long the owner may take to accept a forwarded connection.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Who a forwarded connection is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardedClaims {
    pub scope: String,
    /// The client's address, as the first node saw it.
    pub ip: IpAddr,
    pub exp: u64,
}

impl TimedClaims for ForwardedClaims {
    fn expires_at(&self) -> u64 {
        self.exp
    }
}

/// The client address a forwarded connection vouches for, if its header is genuine.
pub fn forwarded_ip(key: &TokenKey, header: &str, unix_now: u64) -> Option<IpAddr> {
    let claims: ForwardedClaims = key.verify(header, unix_now).ok()?;
    (claims.scope == FORWARDED_SCOPE).then_some(claims.ip)
}

/// A connection to the node serving the client's world, its `join` already sent.
pub type Upstream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket to `base` (`http://host:port` of the owner) for the client at
/// `client_ip`, and replays its `join`.
pub async fn connect(
    base: &str,
    join: String,
    client_ip: IpAddr,
    key: &TokenKey,
    unix_now: u64,
) -> Result<Upstream, String> {
    let url = format!("{}/v1/ws", base.replacen("http", "ws", 1));
    let mut request = url.as_str().into_client_request().map_err(|e| format!("{url}: {e}"))?;
    let claims = ForwardedClaims { scope: FORWARDED_SCOPE.into(), ip: client_ip, exp: unix_now + FORWARDED_SECONDS };
    let header = key.sign(&claims).parse().map_err(|e| format!("the forwarding header: {e}"))?;
    request.headers_mut().insert(FORWARDED_HEADER, header);
    let connecting = tokio_tungstenite::connect_async(request);
    let (mut upstream, _) = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| format!("{url}: no answer"))?
        .map_err(|e| format!("{url}: {e}"))?;
    upstream.send(tungstenite::Message::text(join)).await.map_err(|e| e.to_string())?;
    Ok(upstream)
}

/// Copies frames between the client and the owner until either side ends.
pub async fn pipe(
    mut client_sink: SplitSink<WebSocket, Message>,
    mut client_stream: SplitStream<WebSocket>,
    upstream: Upstream,
) {
    let (mut upstream_sink, mut upstream_stream) = upstream.split();
    let to_owner = async {
        while let Some(Ok(message)) = client_stream.next().await {
            let Some(message) = to_upstream(message) else { continue };
            let closing = matches!(message, tungstenite::Message::Close(_));
            let sent = tokio::time::timeout(WRITE_TIMEOUT, upstream_sink.send(message)).await;
            if !matches!(sent, Ok(Ok(()))) || closing {
                break;
            }
        }
        let _ = upstream_sink.close().await;
    };
    let to_client = async {
        while let Some(Ok(message)) = upstream_stream.next().await {
            let Some(message) = to_client(message) else { continue };
            let closing = matches!(message, Message::Close(_));
            // A client that stopped reading is cut off, as it would be on the owner.
            let sent = tokio::time::timeout(WRITE_TIMEOUT, client_sink.send(message)).await;
            if !matches!(sent, Ok(Ok(()))) || closing {
                break;
            }
        }
        let _ = client_sink.close().await;
    };
    // Whichever side ends first ends the other.
    tokio::select! {
        () = to_owner => {}
        () = to_client => {}
    }
}

fn to_upstream(message: Message) -> Option<tungstenite::Message> {
    Some(match message {
        Message::Text(text) => tungstenite::Message::text(text.as_str()),
        Message::Binary(data) => tungstenite::Message::Binary(data),
        Message::Close(frame) => tungstenite::Message::Close(
            frame.map(|f| tungstenite::protocol::CloseFrame { code: f.code.into(), reason: f.reason.as_str().into() }),
        ),
        // Each hop answers its own pings.
        Message::Ping(_) | Message::Pong(_) => return None,
    })
}

fn to_client(message: tungstenite::Message) -> Option<Message> {
    Some(match message {
        tungstenite::Message::Text(text) => Message::Text(Utf8Bytes::from(text.as_str())),
        tungstenite::Message::Binary(data) => Message::Binary(data),
        tungstenite::Message::Close(frame) => Message::Close(
            frame.map(|f| CloseFrame { code: f.code.into(), reason: Utf8Bytes::from(f.reason.as_str()) }),
        ),
        tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) | tungstenite::Message::Frame(_) => return None,
    })
}
