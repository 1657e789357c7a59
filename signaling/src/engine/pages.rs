//! Pages opened for a whole zone: in a meeting room, someone opens a board or a document
//! and everyone inside sees the same page beside the map.
//!
//! The world's own websites need no server: each client opens them from the world file
//! as its avatar walks. A shared page is zone state, like presence: whoever enters the
//! zone finds it in the snapshot, and it ends when closed or when its opener leaves the
//! zone (a page nobody answers for does not linger).
//!
//! Invariants:
//! - A zone has at most one shared page; its opener is a member of the zone.
//! - Its URL's origin is on the workspace's `embed_origins` list (checked with the same
//!   origin rules the world format uses for websites), so every client may show it.

use isoplane_world_format::{ZoneIndex, ZoneKind, web_origin};

use super::{ConnId, WorldEngine};
use crate::protocol::{AvatarId, ErrorCode, ServerMessage, SharedPage};

impl WorldEngine {
    /// `share_page`: opens `url` for everyone in the sender's zone (replacing the page
    /// open there), or closes the zone's page (`None`).
    pub fn share_page(&mut self, conn: ConnId, url: Option<String>) {
        let Some(&id) = self.by_conn.get(&conn) else { return };
        let Some(avatar) = self.avatars.get(&id) else { return };
        let zone = avatar.zone;
        let open_now = &self.zones[usize::from(zone.0)].page;
        let Some(url) = url else {
            // Anyone in the zone may close its page (a speaker who left the podium too).
            if open_now.is_some() {
                self.set_zone_page(zone, None);
            }
            return;
        };
        if open_now.as_ref().is_some_and(|page| page.by == id && page.url == url) {
            return; // already open, by the same person: nothing to tell anyone
        }
        let may_share = match &self.world.zone(zone).kind {
            ZoneKind::Open { .. } => false,
            // On a stage the speakers present; the audience does not.
            ZoneKind::Stage { .. } => avatar.plan.as_ref().is_some_and(|plan| plan.publish),
            ZoneKind::MeetingRoom { .. } | ZoneKind::Private { .. } | ZoneKind::Silent => true,
        };
        if !may_share {
            return self.error(conn, ErrorCode::PageNotHere);
        }
        if !web_origin(&url).is_ok_and(|origin| self.config.embed_origins.contains(&origin)) {
            return self.error(conn, ErrorCode::PageRefused);
        }
        let page = SharedPage { url, by: id, name: avatar.name.clone() };
        self.set_zone_page(zone, Some(page));
    }

    /// `id` left `zone` (for another zone or the world): a page it opened there closes.
    pub(super) fn page_opener_left(&mut self, zone: ZoneIndex, id: AvatarId) {
        if self.zones[usize::from(zone.0)].page.as_ref().is_some_and(|page| page.by == id) {
            self.set_zone_page(zone, None);
        }
    }

    fn set_zone_page(&mut self, zone: ZoneIndex, page: Option<SharedPage>) {
        self.zones[usize::from(zone.0)].page.clone_from(&page);
        self.send_zone(zone, None, &ServerMessage::PageShared { page });
    }

    /// Checks this module's invariants (for the engine's property tests).
    #[cfg(test)]
    pub(super) fn pages_invariants(&self) -> Result<(), String> {
        for (index, zone) in self.zones.iter().enumerate() {
            if let Some(page) = &zone.page {
                if !zone.members.contains(&page.by) {
                    return Err(format!("zone {index}'s page was opened by {}, who is not in it", page.by));
                }
                let origin = web_origin(&page.url).map_err(|why| format!("zone {index}'s page: {why}"))?;
                if !self.config.embed_origins.contains(&origin) {
                    return Err(format!("zone {index}'s page {} is not of an allowed origin", page.url));
                }
            }
        }
        Ok(())
    }
}
