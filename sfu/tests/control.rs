//! The control API and the client session's refusals, against a real SFU over real
//! sockets: who may drive it, room limits, moderation (mute, remove, close), stats, and
//! bad input from clients and from the network that changes nothing for anyone else.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is a failed test

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use isoplane_auth::{SfuClaims, SfuControlClaims, TokenKey};
use isoplane_sfu::protocol::{ApiError, ClientMessage, ErrorCode, RoomStats, RoomSummary, ServerMessage};
use reqwest::StatusCode;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "control-test-secret-0123456789";
const WAIT: Duration = Duration::from_secs(10);

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("time after 1970").as_secs()
}

struct Sfu {
    http: SocketAddr,
    /// Each worker's media port.
    udp: Vec<SocketAddr>,
    key: TokenKey,
    client: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for Sfu {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Sfu {
    async fn start() -> Sfu {
        Sfu::start_with(isoplane_sfu::Config::for_tests(SECRET)).await
    }

    async fn start_with(config: isoplane_sfu::Config) -> Sfu {
        let sfu = isoplane_sfu::bind(config).await.expect("the SFU binds");
        let (http, udp) = (sfu.http_addr(), sfu.udp_addrs());
        let shutdown = CancellationToken::new();
        tokio::spawn(sfu.run(shutdown.clone()));
        Sfu { http, udp, key: TokenKey::new(SECRET), client: reqwest::Client::new(), shutdown }
    }

    fn control_token(&self) -> String {
        self.key.sign(&SfuControlClaims::new(unix_now() + 60))
    }

    fn room_token(&self, room: &str, sub: &str, avatar: u32) -> String {
        self.key.sign(&SfuClaims {
            room: room.into(),
            sub: sub.into(),
            avatar,
            publish: true,
            audio_muted: false,
            video_muted: false,
            e2ee: false,
            exp: unix_now() + 60,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Option<serde_json::Value>) -> reqwest::Response {
        let mut request = self.client.request(method, self.url(path)).bearer_auth(self.control_token());
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("the control API answers")
    }

    async fn stats(&self, room: &str) -> RoomStats {
        let response = self.control(reqwest::Method::GET, &format!("/v1/rooms/{room}"), None).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("room stats")
    }

    /// Joins over WebSocket; returns the socket after `joined` (or the refusal).
    async fn join(&self, token: &str) -> (Session, ServerMessage) {
        let (socket, _) =
            tokio_tungstenite::connect_async(format!("ws://{}/v1/sfu", self.http)).await.expect("the WebSocket opens");
        let mut session = Session { socket };
        session.send(&ClientMessage::Join { token: token.into() }).await;
        let first = session.next().await.expect("an answer to join");
        (session, first)
    }
}

struct Session {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Session {
    async fn send(&mut self, message: &ClientMessage) {
        let text = serde_json::to_string(message).expect("messages serialize");
        self.socket.send(Message::Text(text.into())).await.expect("the message goes out");
    }

    /// The next message from the SFU, or `None` when the socket closed.
    async fn next(&mut self) -> Option<ServerMessage> {
        loop {
            match tokio::time::timeout(WAIT, self.socket.next()).await.expect("the SFU answers in time") {
                Some(Ok(Message::Text(text))) => return Some(serde_json::from_str(&text).expect("a server message")),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }
}

fn is_error(message: &ServerMessage, expected: ErrorCode) -> bool {
    matches!(message, ServerMessage::Error { code, .. } if *code == expected)
}

#[tokio::test]
async fn only_a_control_token_drives_the_control_api() {
    let sfu = Sfu::start().await;
    let plain = sfu.client.get(sfu.url("/v1/rooms")).send().await.expect("answer");
    assert_eq!(plain.status(), StatusCode::UNAUTHORIZED);
    let body: ApiError = plain.json().await.expect("a JSON error");
    assert_eq!(body.error.code, "unauthorized");

    let forged = TokenKey::new("not-the-secret-at-all").sign(&SfuControlClaims::new(unix_now() + 60));
    let response = sfu.client.get(sfu.url("/v1/rooms")).bearer_auth(forged).send().await.expect("answer");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // A room token is signed with the same secret, but is not a control token.
    let room_token = sfu.room_token("w/z", "u1", 1);
    let response = sfu.client.get(sfu.url("/v1/rooms")).bearer_auth(room_token).send().await.expect("answer");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let wrong_scope = sfu.key.sign(&SfuControlClaims { scope: "other".into(), exp: unix_now() + 60 });
    let response = sfu.client.get(sfu.url("/v1/rooms")).bearer_auth(wrong_scope).send().await.expect("answer");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let expired = sfu.key.sign(&SfuControlClaims::new(unix_now() - 3600));
    let response = sfu.client.get(sfu.url("/v1/rooms")).bearer_auth(expired).send().await.expect("answer");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let response = sfu.control(reqwest::Method::GET, "/v1/rooms", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Vec<RoomSummary>>().await.expect("rooms"), vec![]);
    let unknown = sfu.control(reqwest::Method::PUT, "/v1/rooms/w%2Fz", Some(serde_json::json!({"size": 3}))).await;
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY, "unknown settings are refused");
}

#[tokio::test]
async fn room_limits_moderation_and_closing() {
    let sfu = Sfu::start().await;
    let room = "office%2Fmeeting";
    let created = sfu
        .control(reqwest::Method::PUT, &format!("/v1/rooms/{room}"), Some(serde_json::json!({"max_participants": 2})))
        .await;
    assert_eq!(created.status(), StatusCode::NO_CONTENT);

    let (mut ada, joined) = sfu.join(&sfu.room_token("office/meeting", "ada", 1)).await;
    assert!(matches!(joined, ServerMessage::Joined { avatar: 1, publish: true, .. }), "{joined:?}");
    let (mut bob, joined) = sfu.join(&sfu.room_token("office/meeting", "bob", 2)).await;
    assert!(matches!(joined, ServerMessage::Joined { avatar: 2, .. }), "{joined:?}");
    let (_, refused) = sfu.join(&sfu.room_token("office/meeting", "cy", 3)).await;
    assert!(is_error(&refused, ErrorCode::RoomFull), "a third person is refused: {refused:?}");
    let (_, twice) = sfu.join(&sfu.room_token("office/meeting", "ada", 1)).await;
    assert!(matches!(twice, ServerMessage::Error { .. }), "the same avatar twice is refused: {twice:?}");

    let stats = sfu.stats(room).await;
    assert_eq!(stats.max_participants, 2);
    let mut subs: Vec<&str> = stats.participants.iter().map(|p| p.sub.as_str()).collect();
    subs.sort();
    assert_eq!(subs, ["ada", "bob"]);

    // A moderator mutes Bob's audio and takes away his right to publish video.
    let muted = sfu
        .control(
            reqwest::Method::PATCH,
            &format!("/v1/rooms/{room}/participants/bob"),
            Some(serde_json::json!({"audio_muted": true, "publish_video": false})),
        )
        .await;
    assert_eq!(muted.status(), StatusCode::NO_CONTENT);
    let stats = sfu.stats(room).await;
    let bob_stats = stats.participants.iter().find(|p| p.sub == "bob").expect("bob is listed");
    assert!(bob_stats.audio_muted && !bob_stats.permissions.publish_video && bob_stats.permissions.publish_audio);
    let nobody = sfu
        .control(reqwest::Method::PATCH, &format!("/v1/rooms/{room}/participants/zed"), Some(serde_json::json!({})))
        .await;
    assert_eq!(nobody.status(), StatusCode::NOT_FOUND);

    // Removing Bob ends his session; Ada stays.
    let removed = sfu.control(reqwest::Method::DELETE, &format!("/v1/rooms/{room}/participants/bob"), None).await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert!(matches!(bob.next().await, Some(ServerMessage::Removed { .. })));
    assert_eq!(bob.next().await, None, "then the socket closes");
    assert_eq!(sfu.stats(room).await.participants.len(), 1);

    // Signaling takes one avatar out (its plan left the room); the same user's other
    // avatars and everyone else stay.
    let (mut cy, joined) = sfu.join(&sfu.room_token("office/meeting", "cy", 3)).await;
    assert!(matches!(joined, ServerMessage::Joined { avatar: 3, .. }), "{joined:?}");
    let out = sfu.control(reqwest::Method::DELETE, &format!("/v1/rooms/{room}/avatars/3"), None).await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert!(matches!(cy.next().await, Some(ServerMessage::Removed { .. })));
    let unknown = sfu.control(reqwest::Method::DELETE, &format!("/v1/rooms/{room}/avatars/99"), None).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(sfu.stats(room).await.participants.len(), 1, "Ada stays");

    // Closing the room ends everyone's session, and the room is gone.
    let closed = sfu.control(reqwest::Method::DELETE, &format!("/v1/rooms/{room}"), None).await;
    assert_eq!(closed.status(), StatusCode::NO_CONTENT);
    assert!(matches!(ada.next().await, Some(ServerMessage::Removed { .. })));
    let gone = sfu.control(reqwest::Method::GET, &format!("/v1/rooms/{room}"), None).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_tokens_and_bad_messages_are_refused_and_the_session_goes_on() {
    let sfu = Sfu::start().await;
    let forged = TokenKey::new("someone-elses-secret-value").sign(&SfuClaims {
        room: "w/z".into(),
        sub: "mallory".into(),
        avatar: 9,
        publish: true,
        audio_muted: false,
        video_muted: false,
        e2ee: false,
        exp: unix_now() + 60,
    });
    let (mut session, refused) = sfu.join(&forged).await;
    assert!(is_error(&refused, ErrorCode::BadToken), "{refused:?}");
    assert_eq!(session.next().await, None, "no session without a valid token");
    let expired = sfu.key.sign(&SfuClaims {
        room: "w/z".into(),
        sub: "u".into(),
        avatar: 1,
        publish: true,
        audio_muted: false,
        video_muted: false,
        e2ee: false,
        exp: 1,
    });
    assert!(is_error(&sfu.join(&expired).await.1, ErrorCode::BadToken));
    let control_as_room = sfu.control_token();
    assert!(is_error(&sfu.join(&control_as_room).await.1, ErrorCode::BadToken), "a control token is no room token");

    let (mut ada, joined) = sfu.join(&sfu.room_token("w/z", "ada", 1)).await;
    assert!(matches!(joined, ServerMessage::Joined { .. }));
    ada.socket.send(Message::Text("{not json".into())).await.expect("sent");
    assert!(is_error(&ada.next().await.expect("an answer"), ErrorCode::BadMessage));
    ada.send(&ClientMessage::Offer { id: 1, sdp: "v=0 nonsense".into(), sources: Default::default() }).await;
    assert!(is_error(&ada.next().await.expect("an answer"), ErrorCode::BadSdp));
    ada.send(&ClientMessage::Join { token: sfu.room_token("w/other", "ada", 1) }).await;
    assert!(is_error(&ada.next().await.expect("an answer"), ErrorCode::BadMessage), "one room per session");
    // Too many sending tracks: refused before the SDP is even parsed by the session.
    let mut sdp = String::from("v=0\r\n");
    for _ in 0..5 {
        sdp.push_str("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\n");
    }
    ada.send(&ClientMessage::Offer { id: 2, sdp, sources: Default::default() }).await;
    assert!(is_error(&ada.next().await.expect("an answer"), ErrorCode::TooManyTracks));
    assert_eq!(sfu.stats("w%2Fz").await.participants.len(), 1, "Ada is still in");

    // Too large a frame closes that socket only.
    let (mut big, _) = sfu.join(&sfu.room_token("w/z", "bob", 2)).await;
    let _ = big.socket.send(Message::Text("x".repeat(300 * 1024).into())).await;
    assert_eq!(big.next().await, None);
    ada.send(&ClientMessage::Subscribe { avatars: None }).await;
    assert_eq!(sfu.stats("w%2Fz").await.participants.len(), 1);
}

#[tokio::test]
async fn garbage_on_the_media_port_changes_nothing() {
    let sfu = Sfu::start().await;
    let (_ada, joined) = sfu.join(&sfu.room_token("w/z", "ada", 1)).await;
    assert!(matches!(joined, ServerMessage::Joined { .. }));
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("a loopback socket");
    let mut stun_for_nobody = vec![0x00, 0x01, 0x00, 0x10, 0x21, 0x12, 0xa4, 0x42];
    stun_for_nobody.extend_from_slice(&[7; 12]);
    stun_for_nobody.extend_from_slice(&[0x00, 0x06, 0x00, 0x0c]);
    stun_for_nobody.extend_from_slice(b"w9xzzzz:abcd");
    let garbage: [&[u8]; 5] = [&[], &[0x80; 1200], &[22; 300], &stun_for_nobody, &[0xff; 3]];
    for _ in 0..200 {
        for (datagram, port) in garbage.iter().flat_map(|d| sfu.udp.iter().map(move |p| (d, p))) {
            let _ = socket.send_to(datagram, port).await;
        }
    }
    let metrics = sfu.client.get(sfu.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("isoplane_sfu_participants 1"), "{metrics}");
    assert!(sfu.client.get(sfu.url("/readyz")).send().await.expect("ready").status().is_success());
    let (_bob, joined) = sfu.join(&sfu.room_token("w/z", "bob", 2)).await;
    assert!(matches!(joined, ServerMessage::Joined { .. }), "still serving: {joined:?}");
}

#[tokio::test]
async fn recording_is_started_and_stopped_by_id_and_refused_where_it_cannot_be() {
    let disabled = Sfu::start().await;
    let start = |id: &str| Some(serde_json::json!({"id": id, "started_by": "Ada"}));
    let put = disabled.control(reqwest::Method::PUT, "/v1/rooms/demo%2Fmeeting/recording", start("r1")).await;
    assert_eq!(put.status(), StatusCode::SERVICE_UNAVAILABLE, "recording is off unless enabled");

    let store = tempfile::tempdir().expect("a folder for the store");
    let mut config = isoplane_sfu::Config::for_tests(SECRET);
    config.recording.enabled = true;
    config.recording.store.directory = Some(store.path().to_owned());
    let sfu = Sfu::start_with(config).await;
    let path = "/v1/rooms/demo%2Fmeeting/recording";
    let put = sfu.control(reqwest::Method::PUT, path, start("../assets")).await;
    assert_eq!(put.status(), StatusCode::BAD_REQUEST, "an ID that would leave the recordings folder");
    assert_eq!(sfu.control(reqwest::Method::PUT, path, start("r1")).await.status(), StatusCode::NO_CONTENT);
    // A renewal of the same recording is no new one.
    assert_eq!(sfu.control(reqwest::Method::PUT, path, start("r1")).await.status(), StatusCode::NO_CONTENT);
    let renew = |id: &str| Some(serde_json::json!({"id": id, "started_by": "Ada", "renew": true}));
    assert_eq!(sfu.control(reqwest::Method::PUT, path, renew("r1")).await.status(), StatusCode::NO_CONTENT);
    // A renewal never starts what is not going on (an SFU that restarted would write over
    // the recording's files).
    let other_room = "/v1/rooms/demo%2Fcafe/recording";
    assert_eq!(sfu.control(reqwest::Method::PUT, other_room, renew("r9")).await.status(), StatusCode::NOT_FOUND);
    assert!(!store.path().join("recordings/r9").exists());
    // The room is open (empty) while it is recorded.
    assert_eq!(sfu.stats("demo%2Fmeeting").await.participants.len(), 0);
    // A stop of another recording leaves this one alone.
    let other = sfu.control(reqwest::Method::DELETE, &format!("{path}?id=r0"), None).await;
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        sfu.control(reqwest::Method::DELETE, &format!("{path}?id=r1"), None).await.status(),
        StatusCode::NO_CONTENT
    );
    // A start that comes after its own stop (requests overtaking each other) is refused.
    assert_eq!(sfu.control(reqwest::Method::PUT, path, start("r1")).await.status(), StatusCode::CONFLICT);
    // So is one whose stop came first.
    let early = sfu.control(reqwest::Method::DELETE, &format!("{path}?id=r2"), None).await;
    assert_eq!(early.status(), StatusCode::NOT_FOUND);
    assert_eq!(sfu.control(reqwest::Method::PUT, path, start("r2")).await.status(), StatusCode::CONFLICT);
    let manifest = store.path().join("recordings/r1/manifest.json");
    let manifest: serde_json::Value =
        serde_json::from_slice(&read_eventually(&manifest).await).expect("the manifest is JSON");
    assert_eq!(manifest["room"], "demo/meeting");
    assert_eq!(manifest["started_by"], "Ada");

    // An end-to-end encrypted room is never recorded.
    let token = sfu.key.sign(&SfuClaims {
        room: "demo/private".into(),
        sub: "bob".into(),
        avatar: 7,
        publish: true,
        audio_muted: false,
        video_muted: false,
        e2ee: true,
        exp: unix_now() + 60,
    });
    let (_session, joined) = sfu.join(&token).await;
    assert!(matches!(joined, ServerMessage::Joined { .. }), "{joined:?}");
    let put = sfu.control(reqwest::Method::PUT, "/v1/rooms/demo%2Fprivate/recording", start("r3")).await;
    assert_eq!(put.status(), StatusCode::CONFLICT);
}

/// The file's bytes once it has a stopped manifest (the uploader writes in the background).
async fn read_eventually(path: &std::path::Path) -> Vec<u8> {
    for _ in 0..100 {
        if let Ok(bytes) = std::fs::read(path)
            && serde_json::from_slice::<serde_json::Value>(&bytes).is_ok_and(|m| !m["stopped_at"].is_null())
        {
            return bytes;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{} was not written with its end", path.display());
}
