//! Signaling's side of the SFU's control API: when an avatar's plan no longer includes
//! an SFU room, the SFU ends that avatar's session there, and an admin's mute is applied
//! by the SFU. The client closes its session (or stops sending) itself too, but a client
//! is not trusted to.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use isoplane_service::tasks::Tasks;

use crate::auth::{SfuControlClaims, TokenKey};
use tokio::sync::mpsc;

use crate::engine::{Mute, RecordingChange};
use crate::protocol::AvatarId;

/// How long a control token lives: one request.
const TOKEN_SECONDS: u64 = 60;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The SFU answers an offer after its worker took it in.
const INGEST_TIMEOUT: Duration = Duration::from_secs(12);

/// Calls SFU nodes' control APIs (`http://host:port`, per call: rooms live on
/// different nodes).
#[derive(Debug, Clone)]
pub struct SfuControl {
    client: reqwest::Client,
    key: TokenKey,
    /// The requests in flight stop with the server.
    tasks: Tasks,
    /// Where a world hears of recordings the SFU lost.
    lost: Option<mpsc::UnboundedSender<String>>,
}

impl SfuControl {
    pub fn new(key: TokenKey, tasks: Tasks) -> SfuControl {
        SfuControl { client: reqwest::Client::new(), key, tasks, lost: None }
    }

    /// Ends `avatar`'s session in `room`, in the background. A failure is logged: the
    /// room token in the client's hands expires within minutes anyway.
    pub fn revoke(&self, base: &str, room: &str, avatar: AvatarId) {
        let base = base.trim_end_matches('/');
        let url = format!("{base}/v1/rooms/{}/avatars/{avatar}", encode_segment(room));
        self.send(self.client.delete(url), format!("end avatar {avatar}'s session in {room}"));
    }

    /// Applies a user's mute in `room` at once, in the background (the body is the SFU's
    /// `ParticipantUpdate`). A failure is logged; the user's next room token carries the
    /// mute anyway.
    pub fn set_mute(&self, base: &str, room: &str, user: &str, mute: Mute) {
        let base = base.trim_end_matches('/');
        let url = format!("{base}/v1/rooms/{}/participants/{}", encode_segment(room), encode_segment(user));
        let body = serde_json::json!({"audio_muted": mute.audio, "video_muted": mute.video}).to_string();
        let request = self.client.patch(url).header("content-type", "application/json").body(body);
        self.send(request, format!("mute {user} in {room}"));
    }

    /// Starts, renews or stops recording `room` as `id`, in the background. A failure is
    /// logged (the SFU's logs say why: no store configured, say); the next renewal tries
    /// again. A renewal the SFU answers 404 (it no longer records `id`) is reported on
    /// the world's `lost` channel, when it has one.
    pub fn set_recording(&self, base: &str, room: &str, id: &str, started_by: &str, change: RecordingChange) {
        let base = base.trim_end_matches('/');
        let url = format!("{base}/v1/rooms/{}/recording", encode_segment(room));
        let request = match change {
            RecordingChange::Start | RecordingChange::Renew => {
                let renew = change == RecordingChange::Renew;
                let body = serde_json::json!({"id": id, "started_by": started_by, "renew": renew}).to_string();
                self.client.put(url).header("content-type", "application/json").body(body)
            }
            // The ID: a stop that arrives late never ends a newer recording.
            RecordingChange::Stop => self.client.delete(format!("{url}?id={}", encode_segment(id))),
        };
        let request = request.bearer_auth(self.control_token()).timeout(REQUEST_TIMEOUT);
        let (room, id, lost) = (room.to_owned(), id.to_owned(), self.lost.clone());
        self.tasks.spawn_until_shutdown(async move {
            match request.send().await {
                Ok(response) if response.status().as_u16() == 404 && change == RecordingChange::Renew => {
                    if let Some(lost) = lost {
                        let _ = lost.send(id);
                    }
                }
                Ok(response) if response.status().is_success() || response.status().as_u16() == 404 => {}
                Ok(response) => {
                    tracing::warn!(status = %response.status(), room, ?change, "the SFU refused a recording change")
                }
                Err(error) => {
                    tracing::warn!(%error, room, ?change, "cannot reach the SFU's control API about a recording")
                }
            }
        });
    }

    /// The same calls, with renewals the SFU no longer knows reported on `lost` (by
    /// recording ID): each world gives its own.
    pub fn reporting_lost_recordings(&self, lost: mpsc::UnboundedSender<String>) -> SfuControl {
        SfuControl { lost: Some(lost), ..self.clone() }
    }

    /// Hands a broadcaster's SDP offer to the SFU, which makes it a participant of `room`
    /// publishing as `avatar`; the SDP answer, or why not.
    pub async fn ingest(
        &self,
        base: &str,
        room: &str,
        avatar: AvatarId,
        sub: &str,
        offer: &str,
    ) -> Result<String, String> {
        let base = base.trim_end_matches('/');
        let url = format!("{base}/v1/rooms/{}/ingest", encode_segment(room));
        let body = serde_json::json!({"avatar": avatar, "sub": sub, "sdp": offer});
        let response = self
            .client
            .post(url)
            .bearer_auth(self.control_token())
            .timeout(INGEST_TIMEOUT)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("the SFU does not answer: {e}"))?;
        let status = response.status();
        let answer = json_of(response).await.map_err(|e| format!("the SFU's answer: {e}"))?;
        match answer["sdp"].as_str() {
            Some(sdp) if status.is_success() => Ok(sdp.to_owned()),
            _ => Err(answer["error"]["message"].as_str().unwrap_or("the SFU refused the stream").to_owned()),
        }
    }

    /// Renews a broadcaster's session in `room` (the SFU ends one not renewed):
    /// `Some(connected)`, or `None` when the SFU has no such session (any more).
    pub async fn renew_ingest(&self, base: &str, room: &str, avatar: AvatarId) -> Result<Option<bool>, String> {
        let base = base.trim_end_matches('/');
        let url = format!("{base}/v1/rooms/{}/ingest/{avatar}", encode_segment(room));
        let response = self
            .client
            .put(url)
            .bearer_auth(self.control_token())
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("the SFU does not answer: {e}"))?;
        match response.status().as_u16() {
            204 => Ok(Some(true)),
            409 => Ok(Some(false)),
            404 => Ok(None),
            status => Err(format!("the SFU answered {status}")),
        }
    }

    /// Ends `avatar`'s session in `room` now and says whether the SFU took the request
    /// (404 included: the session is gone either way).
    pub async fn revoke_now(&self, base: &str, room: &str, avatar: AvatarId) -> bool {
        let base = base.trim_end_matches('/');
        let url = format!("{base}/v1/rooms/{}/avatars/{avatar}", encode_segment(room));
        let request = self.client.delete(url).bearer_auth(self.control_token()).timeout(REQUEST_TIMEOUT);
        request.send().await.is_ok_and(|r| r.status().is_success() || r.status().as_u16() == 404)
    }

    fn control_token(&self) -> String {
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        self.key.sign(&SfuControlClaims::new(unix + TOKEN_SECONDS))
    }

    fn send(&self, request: reqwest::RequestBuilder, what: String) {
        let request = request.bearer_auth(self.control_token()).timeout(REQUEST_TIMEOUT);
        self.tasks.spawn_until_shutdown(async move {
            match request.send().await {
                // 404: the session had ended already.
                Ok(response) if response.status().is_success() || response.status().as_u16() == 404 => {}
                Ok(response) => tracing::warn!(status = %response.status(), "the SFU refused to {what}"),
                Err(error) => tracing::warn!(%error, "cannot reach the SFU's control API to {what}"),
            }
        });
    }
}

async fn json_of(response: reqwest::Response) -> Result<serde_json::Value, String> {
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

/// The control API's base URL for a client-facing SFU URL (`ws://host/v1/sfu` →
/// `http://host`), when no control URL is configured.
pub fn control_base_from(sfu_url: &str) -> Option<String> {
    let (scheme, rest) = sfu_url.split_once("://")?;
    let scheme = match scheme {
        "ws" | "http" => "http",
        "wss" | "https" => "https",
        _ => return None,
    };
    let host = rest.split('/').next().filter(|host| !host.is_empty())?;
    Some(format!("{scheme}://{host}"))
}

/// Percent-encodes a path segment (room names are `world/zone`).
fn encode_segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_base_follows_the_client_url_and_rooms_are_encoded() {
        assert_eq!(control_base_from("ws://127.0.0.1:7880/v1/sfu").as_deref(), Some("http://127.0.0.1:7880"));
        assert_eq!(control_base_from("wss://sfu.example/v1/sfu").as_deref(), Some("https://sfu.example"));
        assert_eq!(control_base_from("ftp://x"), None);
        assert_eq!(control_base_from("ws:///v1/sfu"), None);
        assert_eq!(encode_segment("demo/meeting room"), "demo%2Fmeeting%20room");
    }
}
