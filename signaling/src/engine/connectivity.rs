//! The SFU side of the browser's connection test: a short-lived token for a room of the
//! client's own, on the SFU node that serves (or would serve) its zone, so the client can
//! check that it reaches that node over UDP and over TCP without joining anyone's room.

use super::{ConnId, SfuClaims, WorldEngine};
use crate::protocol::{ServerMessage, SfuAccess};

/// How long a probe token is good for: one connection test, with room to spare.
pub const PROBE_TOKEN_SECONDS: u64 = 60;

impl WorldEngine {
    /// `probe_sfu`: answers `sfu_probe` with a token for the room `<world>/probe/<avatar>`
    /// (nobody else's room: the probe sees and sends nothing), or without one when this
    /// workspace has no SFU with room.
    pub fn probe_sfu(&mut self, now: std::time::Instant, conn: ConnId) {
        let Some(&id) = self.by_conn.get(&conn) else { return };
        let Some(avatar) = self.avatars.get(&id) else { return };
        let (user, zone) = (avatar.user.clone(), avatar.zone);
        let unix = self.unix(now);
        let room = format!("{}/probe/{id}", self.name);
        let key = self.config.media.sfu.as_ref().map(|sfu| sfu.key.clone());
        let placed = self.placements.contains_key(&zone);
        let url = self.sfu_node_for(zone).map(|node| node.url.clone());
        if !placed {
            // Choosing a node for the test does not place the zone there.
            self.placements.remove(&zone);
        }
        let sfu = match (key, url) {
            (Some(key), Some(url)) => {
                let claims = SfuClaims {
                    room: room.clone(),
                    sub: user,
                    avatar: id,
                    publish: false,
                    audio_muted: true,
                    video_muted: true,
                    e2ee: false,
                    exp: unix + PROBE_TOKEN_SECONDS,
                };
                Some(SfuAccess { url, room, token: key.sign(&claims) })
            }
            _ => None,
        };
        self.send(conn, ServerMessage::SfuProbe { sfu });
    }
}
