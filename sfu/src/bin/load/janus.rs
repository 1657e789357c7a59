//! Janus's VideoRoom as the target, over its HTTP API: one Janus session and one
//! VideoRoom handle per peer. Publishers `joinandconfigure` with their offer; each
//! subscriber `join`s every publisher of its room in one multistream subscription,
//! answers Janus's offer and `start`s. Candidates travel in the SDP both ways (Janus
//! runs with `full_trickle = false`), then a trickle says ours are complete.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::load::peer::Peer;

/// One request, or one event to wait for, may take this long.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often to ask again for a feed that is not up yet (every 100 ms).
const FEED_WAIT_TRIES: u32 = 100;

/// The Janus HTTP API at `base` (e.g. `http://127.0.0.1:8088/janus`).
#[derive(Debug, Clone)]
pub struct Target {
    pub base: String,
    pub http: reqwest::Client,
}

/// A Janus session with one VideoRoom handle.
#[derive(Debug)]
pub struct Handle {
    session: u64,
    handle: u64,
}

static TRANSACTION: AtomicU64 = AtomicU64::new(1);

fn transaction() -> String {
    format!("t{}", TRANSACTION.fetch_add(1, Ordering::Relaxed))
}

impl Target {
    pub fn new(base: &str) -> Result<Target, String> {
        let http = reqwest::Client::builder()
            // Long polls return within 30 s (Janus then sends a keepalive).
            .timeout(Duration::from_secs(45))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Target { base: base.trim_end_matches('/').to_owned(), http })
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let response =
            self.http.post(&url).body(body.to_string()).send().await.map_err(|e| format!("POST {url}: {e}"))?;
        let bytes = response.bytes().await.map_err(|e| format!("POST {url}: {e}"))?;
        let reply: Value = serde_json::from_slice(&bytes).map_err(|e| format!("POST {url}: bad JSON: {e}"))?;
        if reply["janus"] == "error" {
            return Err(format!("Janus refused {body}: {}", reply["error"]));
        }
        Ok(reply)
    }

    /// A new session with the VideoRoom plugin attached.
    pub async fn attach(&self) -> Result<Handle, String> {
        let created = self.post("", json!({"janus": "create", "transaction": transaction()})).await?;
        let session = created["data"]["id"].as_u64().ok_or("no session id from Janus")?;
        let attached = self
            .post(
                &format!("/{session}"),
                json!({"janus": "attach", "plugin": "janus.plugin.videoroom", "transaction": transaction()}),
            )
            .await?;
        let handle = attached["data"]["id"].as_u64().ok_or("no handle id from Janus")?;
        Ok(Handle { session, handle })
    }

    /// A plugin request answered at once (e.g. `create`): its `plugindata.data`.
    async fn request(&self, handle: &Handle, body: Value) -> Result<Value, String> {
        let path = format!("/{}/{}", handle.session, handle.handle);
        let reply = self.post(&path, json!({"janus": "message", "body": body, "transaction": transaction()})).await?;
        let data = reply["plugindata"]["data"].clone();
        if let Some(error) = data.get("error") {
            return Err(format!("VideoRoom refused {body}: {error}"));
        }
        Ok(data)
    }

    /// A plugin request answered by an event (with JSEP, usually): the event.
    async fn request_async(&self, handle: &Handle, body: Value, jsep: Option<Value>) -> Result<Value, String> {
        let path = format!("/{}/{}", handle.session, handle.handle);
        let mut message = json!({"janus": "message", "body": body, "transaction": transaction()});
        if let Some(jsep) = jsep {
            message["jsep"] = jsep;
        }
        self.post(&path, message).await?;
        let event = tokio::time::timeout(STEP_TIMEOUT, self.next_plugin_event(handle))
            .await
            .map_err(|_| "no event from Janus in time".to_string())??;
        if let Some(error) = event["plugindata"]["data"].get("error") {
            return Err(format!("VideoRoom refused {body}: {error}"));
        }
        Ok(event)
    }

    /// Long-polls the session until the handle's next plugin event.
    async fn next_plugin_event(&self, handle: &Handle) -> Result<Value, String> {
        let url = format!("{}/{}?maxev=1", self.base, handle.session);
        loop {
            let response = self.http.get(&url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
            let bytes = response.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
            let event: Value = serde_json::from_slice(&bytes).map_err(|e| format!("GET {url}: bad JSON: {e}"))?;
            if event["janus"] == "event" && event["sender"].as_u64() == Some(handle.handle) {
                return Ok(event);
            }
            // Keepalives, webrtcup, media, ...: not what we wait for.
        }
    }

    async fn trickle_completed(&self, handle: &Handle) -> Result<(), String> {
        let path = format!("/{}/{}", handle.session, handle.handle);
        self.post(&path, json!({"janus": "trickle", "candidate": {"completed": true}, "transaction": transaction()}))
            .await
            .map(|_| ())
    }

    /// Creates room `room` (on a handle used for nothing else).
    pub async fn create_room(&self, control: &Handle, room: u64, publishers: u32) -> Result<(), String> {
        self.request(
            control,
            json!({"request": "create", "room": room, "publishers": publishers.max(1), "audiocodec": "opus",
                   "videocodec": "vp8", "bitrate": 0, "fir_freq": 0, "notify_joining": false, "permanent": false}),
        )
        .await
        .map(|_| ())
    }

    /// Publishes `peer`'s audio and video in `room` under the feed ID `peer.id`.
    pub async fn publish(&self, room: u64, peer: &mut Peer) -> Result<Handle, String> {
        let handle = self.attach().await?;
        let (sdp, pending) = peer.offer_to_publish()?;
        let event = self
            .request_async(
                &handle,
                json!({"request": "joinandconfigure", "room": room, "ptype": "publisher", "id": peer.id,
                       "display": format!("load-{}", peer.id)}),
                Some(json!({"type": "offer", "sdp": sdp})),
            )
            .await?;
        let answer = event["jsep"]["sdp"].as_str().ok_or("Janus's joined event has no answer")?;
        peer.accept_answer(pending, answer)?;
        self.trickle_completed(&handle).await?;
        Ok(handle)
    }

    /// Subscribes `peer` to the feeds `publishers` of `room`, answering Janus's offer.
    pub async fn subscribe(&self, room: u64, publishers: &[u32], peer: &mut Peer) -> Result<Handle, String> {
        let handle = self.attach().await?;
        let streams: Vec<Value> = publishers.iter().map(|feed| json!({"feed": feed})).collect();
        let join = json!({"request": "join", "room": room, "ptype": "subscriber", "streams": streams});
        // A feed can be subscribed to once its PeerConnection is up, a moment after
        // the publisher's `joined`.
        let mut tries = 0;
        let event = loop {
            match self.request_async(&handle, join.clone(), None).await {
                Err(e) if e.contains("No such feed") && tries < FEED_WAIT_TRIES => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                result => break result?,
            }
        };
        let offer = event["jsep"]["sdp"].as_str().ok_or("Janus's attached event has no offer")?;
        let answer = peer.accept_offer(offer)?;
        self.request_async(&handle, json!({"request": "start"}), Some(json!({"type": "answer", "sdp": answer})))
            .await?;
        self.trickle_completed(&handle).await?;
        Ok(handle)
    }

    /// Removes a room this tool created; errors are of no interest any more.
    pub async fn destroy_room(&self, control: &Handle, room: u64) {
        let _ = self.request(control, json!({"request": "destroy", "room": room})).await;
    }

    /// Ends a session (and its handle); errors are of no interest any more.
    pub async fn destroy(&self, handle: &Handle) {
        let _ =
            self.post(&format!("/{}", handle.session), json!({"janus": "destroy", "transaction": transaction()})).await;
    }
}
