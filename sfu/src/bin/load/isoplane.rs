//! The Isoplane SFU as the target: one WebSocket session (`/v1/sfu`) per peer, with a
//! room token this tool signs with the SFU's secret. Publishers offer audio and video
//! and subscribe to nobody; subscribers offer a data channel only and receive every
//! track the SFU then offers them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use isoplane_auth::{SfuClaims, TokenKey};
use isoplane_sfu::protocol::{ClientMessage, ServerMessage};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::load::peer::{Peer, RemoteOffer};

/// One signaling step (join, an offer/answer) may take this long.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where the SFU is and how to sign tokens for it.
#[derive(Debug, Clone)]
pub struct Target {
    pub http: SocketAddr,
    pub key: TokenKey,
}

/// A peer joined and negotiated, with its signaling session running beside it.
#[derive(Debug)]
pub struct Session {
    pub offers: mpsc::UnboundedReceiver<RemoteOffer>,
}

async fn send(ws: &mut Socket, message: &ClientMessage) -> Result<(), String> {
    let text = serde_json::to_string(message).map_err(|e| e.to_string())?;
    ws.send(Message::text(text)).await.map_err(|e| format!("WebSocket send: {e}"))
}

/// The next protocol message; `None` once the SFU closed the socket.
async fn recv(ws: &mut Socket) -> Result<Option<ServerMessage>, String> {
    loop {
        match ws.next().await {
            None | Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(text.as_str())
                    .map(Some)
                    .map_err(|e| format!("unreadable message from the SFU ({e})"));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("WebSocket: {e}")),
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Joins `room` as `peer` (publishing or not), makes the first offer and applies the
/// SFU's answer. The returned session relays the SFU's later offers to the peer.
pub async fn connect(
    target: &Target,
    room: &str,
    peer: &mut Peer,
    publish: bool,
    stop: CancellationToken,
) -> Result<Session, String> {
    let url = format!("ws://{}/v1/sfu", target.http);
    let (mut ws, _) = tokio::time::timeout(STEP_TIMEOUT, tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| "WebSocket handshake timed out".to_string())?
        .map_err(|e| format!("WebSocket handshake: {e}"))?;
    let claims = SfuClaims {
        room: room.to_owned(),
        sub: format!("load-{}", peer.id),
        avatar: peer.id,
        publish,
        audio_muted: false,
        video_muted: false,
        e2ee: false,
        exp: unix_now() + 24 * 3600,
    };
    send(&mut ws, &ClientMessage::Join { token: target.key.sign(&claims) }).await?;
    match step(recv(&mut ws)).await? {
        Some(ServerMessage::Joined { .. }) => {}
        other => return Err(format!("expected joined, got {other:?}")),
    }
    let (sdp, pending) = if publish { peer.offer_to_publish()? } else { peer.offer_to_receive()? };
    send(&mut ws, &ClientMessage::Offer { id: 1, sdp, sources: BTreeMap::new() }).await?;
    // The SFU's own offers may follow its answer at once; keep them for the relay.
    let mut early = Vec::new();
    let answer = loop {
        match step(recv(&mut ws)).await? {
            Some(ServerMessage::Answer { id: 1, sdp }) => break sdp,
            Some(ServerMessage::Offer { id, sdp, .. }) => early.push((id, sdp)),
            Some(ServerMessage::Error { code, message, .. }) => return Err(format!("refused: {code:?} {message}")),
            Some(ServerMessage::Removed { reason }) => return Err(format!("removed: {reason}")),
            Some(_) => continue,
            None => return Err("the SFU closed the session".into()),
        }
    };
    peer.accept_answer(pending, &answer)?;
    if publish {
        // Publishers receive nothing, as in a Janus VideoRoom.
        send(&mut ws, &ClientMessage::Subscribe { avatars: Some(Vec::new()) }).await?;
    }
    let (offers_in, offers) = mpsc::unbounded_channel();
    tokio::spawn(relay(ws, early, offers_in, stop));
    Ok(Session { offers })
}

async fn step<T>(future: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::time::timeout(STEP_TIMEOUT, future).await.map_err(|_| "the SFU did not answer in time".to_string())?
}

/// Hands the SFU's offers to the peer and its answers back, until `stop`.
async fn relay(
    mut ws: Socket,
    early: Vec<(u32, String)>,
    offers: mpsc::UnboundedSender<RemoteOffer>,
    stop: CancellationToken,
) {
    for (id, sdp) in early {
        if !answer(&mut ws, &offers, id, sdp).await {
            return;
        }
    }
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => break,
            message = recv(&mut ws) => message,
        };
        match message {
            Ok(Some(ServerMessage::Offer { id, sdp, .. })) => {
                if !answer(&mut ws, &offers, id, sdp).await {
                    return;
                }
            }
            Ok(Some(ServerMessage::Removed { reason })) => {
                eprintln!("isoplane: a peer was removed: {reason}");
                return;
            }
            Ok(Some(ServerMessage::Error { code, message, .. })) => {
                eprintln!("isoplane: the SFU reported {code:?}: {message}");
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return,
        }
    }
    let _ = send(&mut ws, &ClientMessage::Leave).await;
    let _ = ws.close(None).await;
}

async fn answer(ws: &mut Socket, offers: &mpsc::UnboundedSender<RemoteOffer>, id: u32, sdp: String) -> bool {
    let (reply, answered) = oneshot::channel();
    if offers.send(RemoteOffer { sdp, answer: reply }).is_err() {
        return false;
    }
    match answered.await {
        Ok(Ok(sdp)) => send(ws, &ClientMessage::Answer { id, sdp }).await.is_ok(),
        Ok(Err(e)) => {
            eprintln!("isoplane: could not answer the SFU's offer: {e}");
            false
        }
        Err(_) => false,
    }
}
