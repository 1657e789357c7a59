//! What a Tiled object (or a tile layer used as an area) means for Isoplane.
//!
//! Reading happens in two steps: [`object_source`] turns an object into a [`Source`]
//! (its tiles and properties), and [`interpret`] decides what the source makes: a zone,
//! an exclusive object, a podium, an exit and/or a spawn point. Conflicts between sources
//! (overlaps, references) are the assembler's business.

use serde_json::Value;

use super::names::{exit_target, facing};
use super::read::{self, Notes, Properties, quoted};
use super::shapes::{Footprint, ObjectSpace, Shape, footprint};
use crate::limits::{MAX_CAPACITY, MAX_TALK_RADIUS};
use crate::model::defaults;
use crate::model::{Facing, ObjectKind, WebsiteTrigger, ZONE_TYPES, ZoneKind};

/// Something that covers tiles and carries properties.
#[derive(Debug, Clone)]
pub(super) struct Source {
    /// Names the source in report lines: `layer "floorLayer", object "Lounge" (#5)`.
    pub label: String,
    pub name: String,
    pub class: String,
    /// Tiled's object or layer ID, for fallback IDs.
    pub tiled_id: Option<i64>,
    pub footprint: Footprint,
    pub properties: Properties,
}

/// A zone's `recording` and `e2ee` properties.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct ZoneMedia {
    pub recording: bool,
    pub e2ee: bool,
}

/// One thing a source makes.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Meaning {
    /// A zone; a stage's podium is filled in later from `podium` objects.
    Zone {
        name: String,
        kind: ZoneKind,
        entry_via: Vec<String>,
        media: ZoneMedia,
    },
    Object {
        kind: ObjectKind,
        capacity: u32,
        facing: Option<Facing>,
        requires: Vec<String>,
    },
    Podium,
    Exit {
        world: String,
        spawn: Option<String>,
    },
    /// `first`: the map's main entry (the `start` layer), listed first.
    Spawn {
        name: String,
        facing: Facing,
        first: bool,
    },
    /// A web page that opens for whoever stands on the area (WorkAdventure's
    /// `openWebsite`).
    Website {
        name: String,
        url: String,
        trigger: WebsiteTrigger,
    },
}

/// Default capacity of a private zone that does not give one.
pub(super) const PRIVATE_CAPACITY: u32 = 8;

/// The source for one object of an object layer, or `None` (reported) for objects
/// that cannot cover tiles.
pub(super) fn object_source(object: &Value, layer: &str, space: &ObjectSpace, notes: &mut Notes) -> Option<Source> {
    let name = read::text(object, "name").trim().to_owned();
    let tiled_id = read::whole(object, "id");
    let label = format!("{layer}, object {} (#{})", quoted(&name), tiled_id.unwrap_or(0));
    let class = read::class_of(object);
    let properties = Properties::of(object);
    let meaningful = !class.is_empty() || !properties.is_empty();
    let skip = |why: &str, notes: &mut Notes| {
        let lost = if meaningful { " (its class and properties are ignored too)" } else { "" };
        notes.add(format!("{label}: {why}; skipped{lost}"));
        None
    };
    if !read::text(object, "template").is_empty() {
        return skip("objects from templates are not supported: detach the template in Tiled", notes);
    }
    if read::number(object, "rotation").unwrap_or(0.0) != 0.0 {
        return skip("rotated objects are not supported", notes);
    }
    if object.get("gid").is_some() {
        return skip(
            "tile objects are visuals Isoplane cannot place (worlds have no free sprites); draw it on a tile layer",
            notes,
        );
    }
    if object.get("text").is_some() {
        return skip("text objects are not supported", notes);
    }
    if object.get("polyline").is_some() {
        return skip("polylines enclose no tiles", notes);
    }
    if object.get("polygon").is_some_and(|p| p.as_array().is_none_or(|points| points.len() < 3)) {
        return skip("a polygon needs at least 3 points", notes);
    }
    let shape = shape_of(object, space);
    let footprint = footprint(&shape, space.width, space.height);
    if footprint.tiles.is_empty() {
        return skip("it lies outside the map", notes);
    }
    if footprint.cut {
        notes.add(format!("{label}: it reaches outside the map; the part outside was cut"));
    }
    Some(Source { label, name, class, tiled_id, footprint, properties })
}

fn shape_of(object: &Value, space: &ObjectSpace) -> Shape {
    let x = read::number(object, "x").unwrap_or(0.0);
    let y = read::number(object, "y").unwrap_or(0.0);
    let w = read::number(object, "width").unwrap_or(0.0);
    let h = read::number(object, "height").unwrap_or(0.0);
    if let Some(points) = object.get("polygon").and_then(Value::as_array) {
        let corners = points
            .iter()
            .map(|p| space.to_tiles((x + read::number(p, "x").unwrap_or(0.0), y + read::number(p, "y").unwrap_or(0.0))))
            .collect();
        return Shape::Polygon(corners);
    }
    let (x0, y0) = space.to_tiles((x, y));
    if read::flag(object, "point", false) || (w == 0.0 && h == 0.0) {
        return Shape::Point(x0, y0);
    }
    let (x1, y1) = space.to_tiles((x + w, y + h));
    if read::flag(object, "ellipse", false) { Shape::Ellipse { x0, y0, x1, y1 } } else { Shape::Box { x0, y0, x1, y1 } }
}

/// The Isoplane classes an object (or an area layer) can have, with every property each
/// one reads (a zone reads some only for some `zoneType`s). `tools/tiled/isoplane.tiled-project`
/// declares the same classes for Tiled's UI; tests keep the two equal. Aliases (`chair`,
/// `start`, and the ZoneType names as shorthands for a zone) are read too but not offered.
pub const ISOPLANE_CLASSES: [(&str, &[&str]); 8] = [
    (
        "zone",
        &[
            "zoneType",
            "talk_radius",
            "sfu_threshold",
            "capacity",
            "max_speakers",
            "lockable",
            "entry_via",
            "recording",
            "e2ee",
        ],
    ),
    ("door", &["capacity", "requires"]),
    ("seat", &["capacity", "facing", "requires"]),
    ("passage", &["capacity", "requires"]),
    ("podium", &[]),
    ("spawn", &["facing"]),
    ("exit", &["world", "spawn"]),
    ("website", &["url", "trigger"]),
];

/// Property names a layer or map understands by itself; on an area they mean nothing.
pub(super) const LAYER_PROPERTIES: [&str; 3] = ["depth", "collides", "startLayer"];

/// What a source means, with its ignored properties reported in one line. An empty
/// result with `meaningless` set means the source had no class or properties at all.
pub(super) fn interpret(source: &Source, notes: &mut Notes) -> (Vec<Meaning>, bool) {
    let mut reader = Reader { source, used: Vec::new(), ignored: Vec::new() };
    let mut out = Vec::new();
    let class = source.class.to_ascii_lowercase();
    match class.as_str() {
        "zone" => out.extend(reader.zone(None)),
        // The obvious guess: an area whose class is a ZoneType name is such a zone.
        shorthand if ZONE_TYPES.contains(&shorthand) => {
            notes.add(format!(
                "{}: class {} read as class \"zone\" with zoneType {shorthand}",
                source.label,
                quoted(&source.class)
            ));
            out.extend(reader.zone(Some(shorthand)));
        }
        "door" => out.push(reader.object(ObjectKind::Door)),
        "seat" | "chair" => out.push(reader.object(ObjectKind::Seat)),
        "passage" => out.push(reader.object(ObjectKind::Passage)),
        "podium" => out.push(Meaning::Podium),
        "exit" => out.extend(reader.exit()),
        "website" => out.extend(reader.website()),
        "spawn" | "start" => out.push(reader.spawn(None)),
        "" | "area" => {}
        other => reader.ignored.push(format!("class {} (not an Isoplane or WorkAdventure class)", quoted(other))),
    }
    reader.workadventure(&mut out);
    reader.report_rest(notes);
    // An object with no class (or WorkAdventure's bare `area`) and no properties means
    // nothing here; the caller lists them so the author knows they were dropped.
    let meaningless = out.is_empty() && matches!(class.as_str(), "" | "area") && source.properties.is_empty();
    (out, meaningless)
}

struct Reader<'s> {
    source: &'s Source,
    used: Vec<&'static str>,
    ignored: Vec<String>,
}

impl Reader<'_> {
    fn props(&self) -> &Properties {
        &self.source.properties
    }

    fn take(&mut self, name: &'static str) -> Option<&Value> {
        self.used.push(name);
        self.source.properties.get(name)
    }

    /// A whole number property within `range`, or `default` (a bad value is reported).
    fn number(&mut self, name: &'static str, default: u32, max: u32) -> u32 {
        self.used.push(name);
        match self.source.properties.whole(name) {
            None => default,
            Some(Ok(n)) if (1..=i64::from(max)).contains(&n) => n as u32,
            Some(Ok(n)) => {
                let clamped = n.clamp(1, i64::from(max)) as u32;
                self.ignored.push(format!("{name} = {n} (out of 1..{max}; used {clamped})"));
                clamped
            }
            Some(Err(raw)) => {
                self.ignored.push(format!("{name} = {raw} (not a whole number; used {default})"));
                default
            }
        }
    }

    fn list(&mut self, name: &'static str) -> Vec<String> {
        self.used.push(name);
        self.source.properties.list(name)
    }

    /// A zone of the `zoneType` property's type, or of `shorthand` (the class named the
    /// type; a `zoneType` that says otherwise is reported and not used).
    fn zone(&mut self, shorthand: Option<&str>) -> Option<Meaning> {
        let property = self.take("zoneType").and_then(Value::as_str).map(|s| s.trim().to_ascii_lowercase());
        let zone_type = match (shorthand, property) {
            (Some(class), Some(other)) if other != class => {
                self.ignored.push(format!("zoneType {} (the class says {class})", quoted(&other)));
                Some(class.to_owned())
            }
            (Some(class), _) => Some(class.to_owned()),
            (None, property) => property,
        };
        let kind = match zone_type.as_deref().unwrap_or("open") {
            "open" => {
                ZoneKind::Open { talk_radius: self.number("talk_radius", defaults::TALK_RADIUS, MAX_TALK_RADIUS) }
            }
            "meeting_room" => {
                let sfu_threshold = self.number("sfu_threshold", defaults::SFU_THRESHOLD, MAX_CAPACITY);
                self.used.push("capacity");
                let capacity = self.has_capacity().then(|| self.number("capacity", 1, MAX_CAPACITY));
                ZoneKind::MeetingRoom { sfu_threshold, capacity }
            }
            "stage" => ZoneKind::Stage {
                podium: Vec::new(),
                max_speakers: self.number("max_speakers", defaults::MAX_SPEAKERS, MAX_CAPACITY),
            },
            "silent" => ZoneKind::Silent,
            "private" => {
                self.used.push("capacity");
                let capacity = if self.has_capacity() {
                    self.number("capacity", PRIVATE_CAPACITY, MAX_CAPACITY)
                } else {
                    self.ignored.push(format!("(no `capacity` on a private zone; used {PRIVATE_CAPACITY})"));
                    PRIVATE_CAPACITY
                };
                self.used.push("lockable");
                let lockable = self.props().get("lockable").is_none_or(read::value_is_true);
                ZoneKind::Private { capacity, lockable }
            }
            other => {
                self.ignored.push(format!(
                    "zoneType {} (expected one of {}; the zone is skipped)",
                    quoted(other),
                    ZONE_TYPES.join(", ")
                ));
                return None;
            }
        };
        let entry_via = self.list("entry_via");
        let mut flag = |name: &'static str| {
            self.used.push(name);
            self.props().get(name).is_some_and(read::value_is_true)
        };
        let media = ZoneMedia { recording: flag("recording"), e2ee: flag("e2ee") };
        Some(Meaning::Zone { name: self.source.name.clone(), kind, entry_via, media })
    }

    /// Whether a zone's `capacity` is given: 0 (the Tiled project's default) means "not
    /// set", since Tiled does not write a property left at its class's default.
    fn has_capacity(&self) -> bool {
        self.props().has("capacity") && !matches!(self.props().whole("capacity"), Some(Ok(0)))
    }

    fn object(&mut self, kind: ObjectKind) -> Meaning {
        let capacity = self.number("capacity", defaults::OBJECT_CAPACITY, MAX_CAPACITY);
        let requires = self.list("requires");
        self.used.push("facing");
        // `any` (the Tiled project's default for seats) and blank mean no facing.
        let facing_text = self.props().text("facing").filter(|t| !matches!(t.trim(), "" | "any"));
        let facing = facing_text.as_deref().and_then(facing);
        if let Some(text) = &facing_text {
            if facing.is_none() {
                self.ignored.push(format!("facing {} (expected north, north_east, east, … north_west)", quoted(text)));
            } else if kind != ObjectKind::Seat {
                self.ignored.push("facing (only seats face a direction)".into());
            }
        }
        let facing = facing.filter(|_| kind == ObjectKind::Seat);
        Meaning::Object { kind, capacity, facing, requires }
    }

    fn exit(&mut self) -> Option<Meaning> {
        self.used.extend(["world", "spawn"]);
        let world = self.props().text("world").map(|w| super::names::slug(&w)).filter(|w| !w.is_empty());
        let spawn = self.props().text("spawn").map(|s| super::names::slug(&s)).filter(|s| !s.is_empty());
        if world.is_none() {
            self.ignored.push("(an exit needs a `world` property naming the target world; the exit is skipped)".into());
        }
        Some(Meaning::Exit { world: world?, spawn })
    }

    fn spawn(&mut self, name: Option<String>) -> Meaning {
        self.used.push("facing");
        let text = self.props().text("facing");
        let parsed = text.as_deref().and_then(facing);
        if let (Some(text), None) = (&text, parsed) {
            self.ignored.push(format!("facing {} (expected north, north_east, east, … north_west)", quoted(text)));
        }
        let name = name.unwrap_or_else(|| self.source.name.clone());
        Meaning::Spawn { name, facing: parsed.unwrap_or(Facing::South), first: false }
    }

    /// WorkAdventure's area properties.
    fn workadventure(&mut self, out: &mut Vec<Meaning>) {
        let has_zone = out.iter().any(|m| matches!(m, Meaning::Zone { .. }));
        let mut meeting = None;
        for key in ["jitsiRoom", "bbbMeeting", "livekitRoom"] {
            let Some(value) = self.take(key).cloned() else { continue };
            let name = match &value {
                Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                v if read::value_is_true(v) => Some(self.source.name.clone()),
                _ => None,
            };
            match (name, has_zone || meeting.is_some()) {
                (Some(_), true) => self.ignored.push(format!("{key} (the area already is a zone)")),
                (Some(name), false) => meeting = Some(name),
                (None, _) => {}
            }
        }
        let silent = self.take("silent").is_some_and(read::value_is_true);
        match (meeting, silent) {
            (Some(name), silent) => {
                if silent {
                    self.ignored.push("silent (the area is a meeting room)".into());
                }
                let kind = ZoneKind::MeetingRoom { sfu_threshold: defaults::SFU_THRESHOLD, capacity: None };
                out.push(Meaning::Zone {
                    name: if name.is_empty() { self.source.name.clone() } else { name },
                    kind,
                    entry_via: Vec::new(),
                    media: ZoneMedia::default(),
                });
            }
            (None, true) if has_zone => self.ignored.push("silent (the area already is a zone)".into()),
            (None, true) => out.push(Meaning::Zone {
                name: self.source.name.clone(),
                kind: ZoneKind::Silent,
                entry_via: Vec::new(),
                media: ZoneMedia::default(),
            }),
            (None, false) => {}
        }
        self.wa_exit(out);
        self.wa_website(out);
        let start = self.take("start").cloned();
        let start_name = match &start {
            Some(Value::String(s)) if !s.trim().is_empty() && !s.trim().eq_ignore_ascii_case("true") => {
                Some(Some(s.trim().to_owned()))
            }
            Some(v) if read::value_is_true(v) => Some(None),
            _ => None,
        };
        if let Some(name) = start_name
            && !out.iter().any(|m| matches!(m, Meaning::Spawn { .. }))
        {
            out.push(self.spawn(name));
        }
    }

    fn wa_exit(&mut self, out: &mut Vec<Meaning>) {
        for key in ["exitUrl", "exitSceneUrl"] {
            let Some(url) = self.take(key).and_then(Value::as_str).map(str::to_owned) else { continue };
            if out.iter().any(|m| matches!(m, Meaning::Exit { .. })) {
                self.ignored.push(format!("{key} (the area already is an exit)"));
            } else if let Some((world, spawn)) = exit_target(&url) {
                out.push(Meaning::Exit { world, spawn });
            } else {
                self.ignored.push(format!("{key} {} (names no map file)", quoted(&url)));
            }
        }
    }

    /// An Isoplane `website`: `url`, and `trigger` (`enter`, the default, or `action`).
    fn website(&mut self) -> Option<Meaning> {
        self.used.extend(["url", "trigger"]);
        let url = self.props().text("url").map(|u| u.trim().to_owned()).unwrap_or_default();
        let trigger = match self.props().text("trigger").map(|t| t.trim().to_ascii_lowercase()).as_deref() {
            None | Some("" | "enter") => WebsiteTrigger::Enter,
            Some("action") => WebsiteTrigger::Action,
            Some(other) => {
                self.ignored.push(format!("trigger {} (expected enter or action)", quoted(other)));
                WebsiteTrigger::Enter
            }
        };
        self.website_at(&url, trigger, "url")
    }

    /// WorkAdventure's `openWebsite` (with `openWebsiteTrigger`: `onaction` or `onicon`
    /// ask first; absent, the page opens on entering). Options that only WorkAdventure's
    /// own frame understands are reported.
    fn wa_website(&mut self, out: &mut Vec<Meaning>) {
        let Some(url) = self.take("openWebsite").and_then(Value::as_str).map(|u| u.trim().to_owned()) else { return };
        self.used.push("openWebsiteTrigger");
        let trigger = match self.props().text("openWebsiteTrigger").map(|t| t.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") => WebsiteTrigger::Enter,
            Some("onaction" | "onicon") => WebsiteTrigger::Action,
            Some(other) => {
                self.ignored.push(format!("openWebsiteTrigger {} (expected onaction or onicon)", quoted(other)));
                WebsiteTrigger::Enter
            }
        };
        if out.iter().any(|m| matches!(m, Meaning::Website { .. })) {
            self.ignored.push("openWebsite (the area already is a website)".into());
        } else {
            out.extend(self.website_at(&url, trigger, "openWebsite"));
        }
    }

    /// A website of the source's name (its URL's host when it has none) opening `url`, if
    /// `url` may be embedded at all; else the reason, reported under `property`.
    fn website_at(&mut self, url: &str, trigger: WebsiteTrigger, property: &str) -> Option<Meaning> {
        if let Err(why) = crate::web_origin(url) {
            let hint = if url.contains("://") { "" } else { ": a page beside the map needs a full https:// URL" };
            self.ignored.push(format!("{property} {} ({why}{hint}; the website is skipped)", quoted(url)));
            return None;
        }
        let name = match self.source.name.as_str() {
            "" => url.split("://").nth(1).and_then(|rest| rest.split(['/', '?', '#']).next()).unwrap_or(url).to_owned(),
            name => name.to_owned(),
        };
        Some(Meaning::Website { name, url: url.to_owned(), trigger })
    }

    /// One report line for everything the source carried that Isoplane does not use.
    fn report_rest(mut self, notes: &mut Notes) {
        for name in self.source.properties.names() {
            if self.used.contains(&name) || LAYER_PROPERTIES.contains(&name) {
                continue;
            }
            self.ignored.push(format!("{name} ({})", why_unsupported(name)));
        }
        if !self.ignored.is_empty() {
            notes.add(format!("{}: ignored {}", self.source.label, self.ignored.join(", ")));
        }
    }
}

/// Why Isoplane does nothing with a property, for the report.
fn why_unsupported(name: &str) -> &'static str {
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| name.starts_with(p));
    if matches!(name, "focusable" | "zoom_margin" | "zoomMargin") {
        "Isoplane has no camera focus"
    } else if starts(&["openWebsite", "openCoWebsite"]) {
        "Isoplane embeds the page in its own sandboxed frame, with the workspace's allow-list"
    } else if starts(&["openTab", "website", "openUrl", "allowApi", "policy"]) {
        "Isoplane opens pages beside the map only (openWebsite)"
    } else if starts(&["playAudio", "audio"]) {
        "audio areas are not supported"
    } else if starts(&["jitsi", "bbb", "livekit"]) {
        "meeting options are not supported: an Isoplane meeting room connects everyone inside"
    } else if starts(&["speakerMegaphone", "listenerMegaphone"]) {
        "megaphones are not supported: use a zone of zoneType stage"
    } else if starts(&["chatName", "matrix"]) {
        "chat rooms are not supported"
    } else {
        "not a property Isoplane understands"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn source(class: &str, properties: Value) -> Source {
        Source {
            label: "object \"x\"".into(),
            name: "Big Room".into(),
            class: class.into(),
            tiled_id: Some(3),
            footprint: Footprint { tiles: vec![(0, 0)], cut: false, centre: (0.5, 0.5) },
            properties: Properties::of(&json!({ "properties": properties })),
        }
    }

    #[test]
    fn a_workadventure_area_makes_a_meeting_room_an_exit_and_a_spawn() {
        let mut notes = Notes::default();
        let area = source(
            "area",
            json!({"jitsiRoom": "Daily", "silent": true, "exitUrl": "b.tmj#door", "start": true, "focusable": true,
                "openWebsite": "https://board.example.com/r/1", "openWebsiteTrigger": "onaction",
                "openWebsiteTriggerMessage": "Press SPACE"}),
        );
        let (meanings, _) = interpret(&area, &mut notes);
        assert_eq!(
            meanings,
            vec![
                Meaning::Zone {
                    name: "Daily".into(),
                    kind: ZoneKind::MeetingRoom { sfu_threshold: defaults::SFU_THRESHOLD, capacity: None },
                    entry_via: vec![],
                    media: ZoneMedia::default(),
                },
                Meaning::Exit { world: "b".into(), spawn: Some("door".into()) },
                Meaning::Website {
                    name: "Big Room".into(),
                    url: "https://board.example.com/r/1".into(),
                    trigger: WebsiteTrigger::Action
                },
                Meaning::Spawn { name: "Big Room".into(), facing: Facing::South, first: false },
            ]
        );
        let line = &notes.lines[0];
        assert!(
            line.contains("silent (the area is a meeting room)")
                && line.contains("focusable")
                && line.contains("openWebsiteTriggerMessage")
                && !line.contains("openWebsite ("),
            "{line}"
        );
    }

    #[test]
    fn the_website_class_reads_its_url_and_trigger() {
        let mut notes = Notes::default();
        let (meanings, _) = interpret(
            &source("website", json!({"url": "https://board.example.com/r/1", "trigger": "action"})),
            &mut notes,
        );
        let board = Meaning::Website {
            name: "Big Room".into(),
            url: "https://board.example.com/r/1".into(),
            trigger: WebsiteTrigger::Action,
        };
        assert_eq!(meanings, vec![board]);
        assert!(notes.lines.is_empty(), "{:?}", notes.lines);
        let (meanings, _) = interpret(&source("website", json!({"url": "", "trigger": "sometimes"})), &mut notes);
        assert_eq!(meanings, vec![]);
        assert!(notes.lines[0].contains("trigger \"sometimes\"") && notes.lines[0].contains("url \"\""), "{notes:?}");
    }

    #[test]
    fn a_website_needs_a_full_http_url() {
        let mut notes = Notes::default();
        for url in ["./board/index.html", "javascript:alert(1)", "https://user@evil.example/"] {
            let (meanings, _) = interpret(&source("area", json!({ "openWebsite": url })), &mut notes);
            assert_eq!(meanings, vec![], "{url}");
        }
        assert!(notes.lines[0].contains("needs a full https:// URL"), "{:?}", notes.lines);
        assert!(notes.lines.iter().all(|line| line.contains("the website is skipped")), "{:?}", notes.lines);
        let (meanings, _) = interpret(&source("", json!({ "openWebsite": "https://pad.example.org/p/x" })), &mut notes);
        assert_eq!(
            meanings,
            vec![Meaning::Website {
                name: "Big Room".into(),
                url: "https://pad.example.org/p/x".into(),
                trigger: WebsiteTrigger::Enter
            }]
        );
    }

    #[test]
    fn isoplane_classes_read_their_options() {
        let mut notes = Notes::default();
        let (zone, _) = interpret(
            &source("zone", json!({"zoneType": "private", "capacity": "3", "lockable": false, "entry_via": "Door A"})),
            &mut notes,
        );
        assert_eq!(
            zone,
            vec![Meaning::Zone {
                name: "Big Room".into(),
                kind: ZoneKind::Private { capacity: 3, lockable: false },
                entry_via: vec!["Door A".into()],
                media: ZoneMedia::default(),
            }]
        );
        let (seat, _) = interpret(
            &source("chair", json!({"facing": "north-west", "requires": "a,b", "capacity": 99999})),
            &mut notes,
        );
        assert_eq!(
            seat,
            vec![Meaning::Object {
                kind: ObjectKind::Seat,
                capacity: MAX_CAPACITY,
                facing: Some(Facing::NorthWest),
                requires: vec!["a".into(), "b".into()]
            }]
        );
        assert!(notes.lines.iter().any(|l| l.contains("capacity = 99999")), "{:?}", notes.lines);
        let (none, meaningless) = interpret(&source("", json!({})), &mut notes);
        assert!(none.is_empty() && meaningless);
    }

    /// A value each Isoplane property accepts, so that a property is reported only when
    /// the class does not read it.
    fn valid_value(property: &str) -> Value {
        match property {
            "lockable" => json!(true),
            "facing" => json!("south"),
            "world" => json!("elsewhere"),
            "requires" | "entry_via" | "spawn" => json!("somewhere"),
            "url" => json!("https://board.example.com/"),
            "trigger" => json!("action"),
            _ => json!(2),
        }
    }

    #[test]
    fn the_class_table_lists_exactly_the_properties_each_class_reads() {
        let every: Vec<&str> = ISOPLANE_CLASSES.iter().flat_map(|(_, props)| props.iter().copied()).collect();
        for (class, declared) in ISOPLANE_CLASSES {
            let variants: Vec<Option<&str>> =
                if class == "zone" { ZONE_TYPES.iter().copied().map(Some).collect() } else { vec![None] };
            let mut understood: Vec<&str> = Vec::new();
            for zone_type in variants {
                let mut properties = serde_json::Map::new();
                for property in &every {
                    properties.insert((*property).to_owned(), valid_value(property));
                }
                if let Some(zone_type) = zone_type {
                    properties.insert("zoneType".into(), json!(zone_type));
                }
                let mut notes = Notes::default();
                let (meanings, _) = interpret(&source(class, Value::Object(properties)), &mut notes);
                assert_eq!(meanings.len(), 1, "{class} {zone_type:?}: {meanings:?} {:?}", notes.lines);
                let report = notes.lines.join("\n");
                understood.extend(every.iter().filter(|p| !report.contains(&format!(" {p} ("))));
            }
            understood.sort_unstable();
            understood.dedup();
            let mut declared = declared.to_vec();
            declared.sort_unstable();
            assert_eq!(understood, declared, "class {class}");
        }
    }

    #[test]
    fn a_zone_type_name_as_class_is_that_zone() {
        for zone_type in ZONE_TYPES {
            let mut notes = Notes::default();
            let (short, _) = interpret(&source(zone_type, json!({"capacity": 4})), &mut notes);
            assert!(
                notes.lines.iter().any(|l| l.contains(&format!("read as class \"zone\" with zoneType {zone_type}")))
            );
            let (full, _) =
                interpret(&source("zone", json!({"zoneType": zone_type, "capacity": 4})), &mut Notes::default());
            assert_eq!(short, full, "{zone_type}");
        }
        let mut notes = Notes::default();
        let (stage, _) = interpret(&source("Stage", json!({"zoneType": "silent"})), &mut notes);
        assert!(matches!(&stage[..], [Meaning::Zone { kind: ZoneKind::Stage { .. }, .. }]), "{stage:?}");
        assert!(
            notes.lines.iter().any(|l| l.contains("zoneType \"silent\" (the class says stage)")),
            "{:?}",
            notes.lines
        );
    }
}
