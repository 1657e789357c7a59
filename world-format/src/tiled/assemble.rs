//! Meanings → the zones, exclusive objects, exits and spawn points of a world, with the
//! world's rules applied so validation passes: zones do not overlap, exclusive objects
//! do not share tiles and stand on walkable tiles, references resolve, podiums lie in
//! their stage, and every spawn point stands on a free tile reachable from the first.
//! Where a rule would fail, the importer resolves it (first source wins a tile, the
//! object's tiles are made walkable, the reference or spawn point is dropped) and
//! reports what it did.

use std::collections::{HashMap, VecDeque};

use super::names::{IdSpace, slug};
use super::objects::{Meaning, Source, ZoneMedia};
use super::read::{Notes, count, quoted};
use super::shapes::{Tile, to_rects};
use crate::limits::MAX_NAME_CHARS;
use crate::model::defaults;
use crate::model::{ExclusiveObject, Exit, Facing, ObjectKind, Spawn, Website, Zone, ZoneKind};

/// Everything placed on the grid, ready for the world file.
#[derive(Debug, Default)]
pub(super) struct Placed {
    pub zones: Vec<Zone>,
    pub objects: Vec<ExclusiveObject>,
    pub exits: Vec<Exit>,
    pub spawns: Vec<Spawn>,
    pub websites: Vec<Website>,
    /// Collision after the tiles under exclusive objects were made walkable.
    pub blocked: Vec<bool>,
    /// Where in the map each zone, object and exit came from (`layer "areas", object
    /// "Meeting room" (#3)`), by index: a world error about one names its place in Tiled.
    pub origins: Origins,
}

/// The Tiled source of each placed zone, exclusive object and exit, by index.
#[derive(Debug, Default)]
pub(super) struct Origins {
    pub zones: Vec<String>,
    pub objects: Vec<String>,
    pub exits: Vec<String>,
    pub websites: Vec<String>,
}

impl Origins {
    /// The place in the map behind a world error's JSON path (`$.zones[2].entry_via[0]`).
    pub fn of_path(&self, path: &str) -> Option<&str> {
        let rest = path.strip_prefix("$.")?;
        let (list, rest) = rest.split_once('[')?;
        let index: usize = rest.split_once(']')?.0.parse().ok()?;
        let labels = match list {
            "zones" => &self.zones,
            "objects" => &self.objects,
            "exits" => &self.exits,
            "websites" => &self.websites,
            _ => return None,
        };
        labels.get(index).map(String::as_str)
    }
}

pub(super) fn assemble(
    (width, height): (u32, u32),
    blocked: Vec<bool>,
    sources: &[Source],
    meanings: &[(usize, Meaning)],
    notes: &mut Notes,
) -> Placed {
    let cells = width as usize * height as usize;
    let mut zone_ids = IdSpace::default();
    zone_ids.reserve(defaults::DEFAULT_ZONE_ID);
    let mut a = Assembler {
        width,
        height,
        sources,
        notes,
        placed: Placed { blocked, ..Placed::default() },
        object_at: vec![None; cells],
        zone_at: vec![None; cells],
        object_names: HashMap::new(),
        object_by_id: HashMap::new(),
        object_ids: IdSpace::default(),
        zone_ids,
        requires: Vec::new(),
        entries: Vec::new(),
        zone_labels: Vec::new(),
        object_labels: Vec::new(),
    };
    for (source, meaning) in meanings {
        if let Meaning::Object { kind, capacity, facing, requires } = meaning {
            a.place_object(*source, *kind, *capacity, *facing, requires);
        }
    }
    for (source, meaning) in meanings {
        if let Meaning::Zone { name, kind, entry_via, media } = meaning {
            a.place_zone(*source, name, kind, entry_via, *media);
        }
    }
    a.place_podiums(meanings);
    a.resolve_entries();
    a.resolve_requires();
    a.place_exits(meanings);
    a.place_websites(meanings);
    a.place_spawns(meanings);
    a.placed.origins.zones = a.zone_labels;
    a.placed.origins.objects = a.object_labels;
    a.placed
}

struct Assembler<'s> {
    width: u32,
    height: u32,
    sources: &'s [Source],
    notes: &'s mut Notes,
    placed: Placed,
    object_at: Vec<Option<usize>>,
    zone_at: Vec<Option<usize>>,
    /// Tiled names of exclusive objects → their index (the first object of a name).
    object_names: HashMap<String, usize>,
    object_by_id: HashMap<String, usize>,
    object_ids: IdSpace,
    zone_ids: IdSpace,
    /// Per object, the names its `requires` property gave.
    requires: Vec<Vec<String>>,
    /// Per zone, the names its `entry_via` property gave.
    entries: Vec<Vec<String>>,
    zone_labels: Vec<String>,
    object_labels: Vec<String>,
}

/// Up to four tiles as "(x, y), (x, y) and N more", for report lines.
fn tile_list(tiles: &[(u32, u32)]) -> String {
    let shown: Vec<String> = tiles.iter().take(4).map(|(x, y)| format!("({x}, {y})")).collect();
    match tiles.len().saturating_sub(4) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

/// Splits `wanted` into the tiles still free in `owners` (one entry per cell of a grid
/// `width` tiles wide) and those already taken, with their owner; the free ones become
/// `me`'s.
fn claim(owners: &mut [Option<usize>], width: u32, wanted: &[Tile], me: usize) -> (Vec<Tile>, Vec<(Tile, usize)>) {
    let mut mine = Vec::new();
    let mut taken = Vec::new();
    for &(x, y) in wanted {
        let cell = &mut owners[y as usize * width as usize + x as usize];
        match *cell {
            Some(owner) => taken.push(((x, y), owner)),
            None => {
                *cell = Some(me);
                mine.push((x, y));
            }
        }
    }
    (mine, taken)
}

fn display_name(name: &str, id: &str) -> String {
    let name = name.trim();
    if name.is_empty() { id.to_owned() } else { name.chars().take(MAX_NAME_CHARS).collect() }
}

impl Assembler<'_> {
    fn cell(&self, (x, y): (u32, u32)) -> usize {
        y as usize * self.width as usize + x as usize
    }

    fn fallback_id(&self, source: usize, what: &str) -> String {
        format!("{what}-{}", self.sources[source].tiled_id.unwrap_or(source as i64 + 1))
    }

    /// One line per earlier owner that kept some of the source's tiles.
    fn report_taken(
        &mut self,
        label: &str,
        taken: &[((u32, u32), usize)],
        owner_id: impl Fn(&Placed, usize) -> String,
    ) {
        let mut by_owner: Vec<(usize, Vec<(u32, u32)>)> = Vec::new();
        for &(tile, owner) in taken {
            match by_owner.iter_mut().find(|(o, _)| *o == owner) {
                Some((_, tiles)) => tiles.push(tile),
                None => by_owner.push((owner, vec![tile])),
            }
        }
        for (owner, tiles) in by_owner {
            self.notes.add(format!(
                "{label}: {} overlap {}, which came first and keeps them: {}",
                count(tiles.len(), "tile"),
                owner_id(&self.placed, owner),
                tile_list(&tiles)
            ));
        }
    }

    fn place_object(
        &mut self,
        source: usize,
        kind: ObjectKind,
        capacity: u32,
        facing: Option<Facing>,
        requires: &[String],
    ) {
        let src = &self.sources[source];
        let index = self.placed.objects.len();
        let (mine, taken) = claim(&mut self.object_at, self.width, &src.footprint.tiles, index);
        self.report_taken(&src.label, &taken, |p, o| format!("{} \"{}\"", p.objects[o].kind.as_str(), p.objects[o].id));
        if mine.is_empty() {
            self.notes.add(format!("{}: no tile left for this {}; skipped", src.label, kind.as_str()));
            return;
        }
        let id = self.object_ids.claim(&src.name, &self.fallback_id(source, kind.as_str()));
        let unblocked: Vec<(u32, u32)> = mine.iter().copied().filter(|&t| self.placed.blocked[self.cell(t)]).collect();
        for &tile in &unblocked {
            let cell = self.cell(tile);
            self.placed.blocked[cell] = false;
        }
        if !unblocked.is_empty() {
            self.notes.add(format!(
                "{}: {} \"{id}\" stands on {} that collision blocked, now made walkable so it can be used: {}",
                src.label,
                kind.as_str(),
                count(unblocked.len(), "tile"),
                tile_list(&unblocked)
            ));
        }
        if !src.name.is_empty() {
            self.object_names.entry(src.name.clone()).or_insert(index);
        }
        self.object_by_id.insert(id.clone(), index);
        self.placed.objects.push(ExclusiveObject {
            id,
            kind,
            area: to_rects(&mine),
            capacity,
            facing,
            requires: Vec::new(),
        });
        self.requires.push(requires.to_vec());
        self.object_labels.push(src.label.clone());
    }

    fn place_zone(&mut self, source: usize, name: &str, kind: &ZoneKind, entry_via: &[String], media: ZoneMedia) {
        let src = &self.sources[source];
        let index = self.placed.zones.len();
        let (mine, taken) = claim(&mut self.zone_at, self.width, &src.footprint.tiles, index);
        self.report_taken(&src.label, &taken, |p, o| format!("zone \"{}\"", p.zones[o].id));
        if mine.is_empty() {
            self.notes.add(format!("{}: no tile left for this {} zone; skipped", src.label, kind.type_name()));
            return;
        }
        let id = self.zone_ids.claim(&src.name, &self.fallback_id(source, kind.type_name()));
        let name = display_name(if name.trim().is_empty() { &src.name } else { name }, &id);
        self.zone_labels.push(src.label.clone());
        self.entries.push(entry_via.to_vec());
        self.placed.zones.push(Zone {
            id,
            name,
            kind: kind.clone(),
            area: to_rects(&mine),
            entry_via: Vec::new(),
            recording: media.recording,
            e2ee: media.e2ee,
        });
    }

    /// Gives each stage the podium objects inside it; a stage left without one becomes
    /// a meeting room, since a stage needs somewhere to speak from.
    fn place_podiums(&mut self, meanings: &[(usize, Meaning)]) {
        let mut podiums: Vec<Vec<(u32, u32)>> = vec![Vec::new(); self.placed.zones.len()];
        for (source, _) in meanings.iter().filter(|(_, m)| *m == Meaning::Podium) {
            let src = &self.sources[*source];
            let is_stage = |z: &usize| matches!(self.placed.zones[*z].kind, ZoneKind::Stage { .. });
            let mut counts: Vec<(usize, usize)> = Vec::new();
            for zone in src.footprint.tiles.iter().filter_map(|&t| self.zone_at[self.cell(t)]).filter(is_stage) {
                match counts.iter_mut().find(|(z, _)| *z == zone) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((zone, 1)),
                }
            }
            let Some(&(stage, _)) = counts.iter().rev().max_by_key(|(_, n)| *n) else {
                self.notes.add(format!("{}: a podium must lie inside a zone of zoneType stage; skipped", src.label));
                continue;
            };
            let (inside, outside): (Vec<Tile>, Vec<Tile>) =
                src.footprint.tiles.iter().partition(|&&t| self.zone_at[self.cell(t)] == Some(stage));
            if !outside.is_empty() {
                self.notes.add(format!(
                    "{}: {} of the podium outside stage \"{}\" left out: {}",
                    src.label,
                    count(outside.len(), "tile"),
                    self.placed.zones[stage].id,
                    tile_list(&outside)
                ));
            }
            podiums[stage].extend(inside);
        }
        for (i, zone) in self.placed.zones.iter_mut().enumerate() {
            if let ZoneKind::Stage { podium, .. } = &mut zone.kind {
                if podiums[i].is_empty() {
                    self.notes.add(format!(
                        "{}: stage \"{}\" has no podium (an object of class podium inside it); imported as a meeting_room",
                        self.zone_labels[i], zone.id
                    ));
                    zone.kind = ZoneKind::MeetingRoom { sfu_threshold: defaults::SFU_THRESHOLD, capacity: None };
                } else {
                    *podium = to_rects(&podiums[i]);
                }
            }
        }
    }

    /// An exclusive object by the name a property gave: its Tiled name, its ID or the
    /// slug of the name.
    fn find_object(&self, name: &str) -> Option<usize> {
        let by_id = |id: &str| self.object_by_id.get(id);
        self.object_names.get(name).or_else(|| by_id(name)).or_else(|| by_id(&slug(name))).copied()
    }

    fn resolve_entries(&mut self) {
        for zone in 0..self.placed.zones.len() {
            let names = std::mem::take(&mut self.entries[zone]);
            let mut resolved = Vec::new();
            for name in names {
                let problem = match self.find_object(&name) {
                    None => Some("no door or passage has that name".to_owned()),
                    Some(o) if self.placed.objects[o].kind == ObjectKind::Seat => {
                        Some("it is a seat; zones are entered through doors and passages".into())
                    }
                    Some(o) if !self.touches(o, zone) => Some("it is neither inside the zone nor next to it".into()),
                    Some(o) => {
                        resolved.push(self.placed.objects[o].id.clone());
                        None
                    }
                };
                if let Some(why) = problem {
                    self.notes.add(format!("{}: entry_via {} ignored: {why}", self.zone_labels[zone], quoted(&name)));
                }
            }
            resolved.dedup();
            self.placed.zones[zone].entry_via = resolved;
        }
    }

    fn touches(&self, object: usize, zone: usize) -> bool {
        let (w, h) = (i64::from(self.width), i64::from(self.height));
        self.placed.objects[object].area.iter().flat_map(|r| r.tiles()).any(|(x, y)| {
            [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)].iter().any(|(dx, dy)| {
                let (nx, ny) = (i64::from(x) + dx, i64::from(y) + dy);
                (0..w).contains(&nx) && (0..h).contains(&ny) && self.zone_at[(ny * w + nx) as usize] == Some(zone)
            })
        })
    }

    fn resolve_requires(&mut self) {
        let mut edges: Vec<Vec<usize>> = Vec::with_capacity(self.placed.objects.len());
        for object in 0..self.placed.objects.len() {
            let names = std::mem::take(&mut self.requires[object]);
            let mut resolved: Vec<usize> = Vec::new();
            for name in names {
                let label = &self.object_labels[object];
                match self.find_object(&name) {
                    Some(o) if o == object => self.notes.add(format!("{label}: requires itself; ignored")),
                    Some(o) if !resolved.contains(&o) => resolved.push(o),
                    Some(_) => {}
                    None => self.notes.add(format!(
                        "{label}: requires {}, which is no door, seat or passage; ignored",
                        quoted(&name)
                    )),
                }
            }
            edges.push(resolved);
        }
        self.break_requirement_loops(&mut edges);
        for (object, required) in edges.into_iter().enumerate() {
            self.placed.objects[object].requires =
                required.into_iter().map(|o| self.placed.objects[o].id.clone()).collect();
        }
    }

    /// A loop of requirements (a needs b, b needs a) means none can ever be taken, which
    /// the world refuses; the requirement that closes each loop is dropped instead.
    fn break_requirement_loops(&mut self, edges: &mut [Vec<usize>]) {
        const NEW: u8 = 0;
        const ON_PATH: u8 = 1;
        let mut state = vec![NEW; edges.len()];
        for start in 0..edges.len() {
            if state[start] != NEW {
                continue;
            }
            state[start] = ON_PATH;
            // Depth-first, each entry a node and the index of its next requirement.
            let mut path = vec![(start, 0usize)];
            while let Some(&(node, next)) = path.last() {
                let Some(&child) = edges[node].get(next) else {
                    state[node] = 2; // done
                    path.pop();
                    continue;
                };
                if state[child] == ON_PATH {
                    edges[node].remove(next);
                    let (label, to) = (&self.object_labels[node], &self.placed.objects[child].id);
                    self.notes.add(format!(
                        "{label}: its requirement \"{to}\" closes a loop of requirements, so none could ever be taken; dropped"
                    ));
                    continue;
                }
                if let Some(top) = path.last_mut() {
                    top.1 += 1;
                }
                if state[child] == NEW {
                    state[child] = ON_PATH;
                    path.push((child, 0));
                }
            }
        }
    }

    fn place_exits(&mut self, meanings: &[(usize, Meaning)]) {
        let mut ids = IdSpace::default();
        for (source, meaning) in meanings {
            if let Meaning::Exit { world, spawn } = meaning {
                let src = &self.sources[*source];
                let id = ids.claim(&src.name, &self.fallback_id(*source, "exit"));
                let area = to_rects(&src.footprint.tiles);
                self.placed.exits.push(Exit { id, area, world: world.clone(), spawn: spawn.clone() });
                self.placed.origins.exits.push(src.label.clone());
            }
        }
    }

    /// Websites may lie over anything: they only open a page.
    fn place_websites(&mut self, meanings: &[(usize, Meaning)]) {
        let mut ids = IdSpace::default();
        for (source, meaning) in meanings {
            if let Meaning::Website { name, url, trigger } = meaning {
                let src = &self.sources[*source];
                let id = ids.claim(&src.name, &self.fallback_id(*source, "website"));
                let area = to_rects(&src.footprint.tiles);
                let name = name.chars().take(MAX_NAME_CHARS).collect();
                self.placed.websites.push(Website { id, name, url: url.clone(), area, trigger: *trigger });
                self.placed.origins.websites.push(src.label.clone());
            }
        }
    }

    fn usable(&self, tile: (u32, u32)) -> bool {
        let cell = self.cell(tile);
        !self.placed.blocked[cell] && self.object_at[cell].is_none()
    }

    /// The free tile of the source's area nearest to the area's centre.
    fn spawn_tile(&self, src: &Source) -> Option<(u32, u32)> {
        let (cx, cy) = src.footprint.centre;
        let distance = |&(x, y): &(u32, u32)| (f64::from(x) + 0.5 - cx).powi(2) + (f64::from(y) + 0.5 - cy).powi(2);
        src.footprint
            .tiles
            .iter()
            .copied()
            .filter(|&t| self.usable(t))
            .min_by(|a, b| distance(a).total_cmp(&distance(b)))
    }

    fn place_spawns(&mut self, meanings: &[(usize, Meaning)]) {
        let mut wanted: Vec<(usize, &str, Facing, bool)> = meanings
            .iter()
            .filter_map(|(source, m)| match m {
                Meaning::Spawn { name, facing, first } => Some((*source, name.as_str(), *facing, *first)),
                _ => None,
            })
            .collect();
        // The map's main entry (the `start` layer) is the default spawn point.
        wanted.sort_by_key(|w| !w.3);
        let mut ids = IdSpace::default();
        for (source, name, facing, first) in wanted {
            let src = &self.sources[source];
            let Some((x, y)) = self.spawn_tile(src) else {
                self.notes.add(format!(
                    "{}: every tile of this spawn point is blocked or an exclusive object; skipped",
                    src.label
                ));
                continue;
            };
            let id = ids.claim(name, &self.fallback_id(source, "spawn"));
            if first {
                self.notes.add(format!(
                    "{}: {} became one spawn point \"{id}\" at ({x}, {y}), the free one nearest their centre",
                    src.label,
                    count(src.footprint.tiles.len(), "start tile")
                ));
            }
            self.placed.spawns.push(Spawn { id, x, y, facing });
        }
        if self.placed.spawns.is_empty() {
            self.add_central_spawn();
        }
        self.drop_unreachable_spawns();
    }

    fn add_central_spawn(&mut self) {
        let height = self.height;
        let (cx, cy) = (f64::from(self.width) / 2.0, f64::from(height) / 2.0);
        let distance = |&(x, y): &(u32, u32)| (f64::from(x) + 0.5 - cx).powi(2) + (f64::from(y) + 0.5 - cy).powi(2);
        let best = (0..height)
            .flat_map(|y| (0..self.width).map(move |x| (x, y)))
            .filter(|&t| self.usable(t))
            .min_by(|a, b| distance(a).total_cmp(&distance(b)));
        match best {
            Some((x, y)) => {
                self.notes.add(format!(
                    "the map has no start layer or start area: the spawn point \"start\" is the walkable tile nearest the centre, ({x}, {y}); add a `start` tile layer to choose"
                ));
                self.placed.spawns.push(Spawn { id: "start".into(), x, y, facing: Facing::South });
            }
            None => {
                self.notes.add("every tile is blocked, so the world has nowhere to spawn; check the collision layer")
            }
        }
    }

    /// Spawn points that cannot be walked to from the default one would fail validation;
    /// they are dropped instead.
    fn drop_unreachable_spawns(&mut self) {
        let Some(first) = self.placed.spawns.first() else { return };
        let reachable = self.flood_from((first.x, first.y));
        let default_id = first.id.clone();
        let spawns = std::mem::take(&mut self.placed.spawns);
        for (i, spawn) in spawns.into_iter().enumerate() {
            if i == 0 || reachable[self.cell((spawn.x, spawn.y))] {
                self.placed.spawns.push(spawn);
            } else {
                self.notes.add(format!(
                    "spawn point \"{}\" at ({}, {}) cannot be reached from the default spawn point \"{default_id}\" (blocked tiles or a door-only zone cut it off); dropped",
                    spawn.id, spawn.x, spawn.y
                ));
            }
        }
    }

    /// Tiles an avatar can walk to from `start`, by the rules the world's check uses:
    /// no blocked tiles, and a door-only zone only through one of its doors.
    fn flood_from(&self, start: (u32, u32)) -> Vec<bool> {
        let (width, height) = (self.width as usize, self.height as usize);
        let entry_objects: Vec<Vec<usize>> = self
            .placed
            .zones
            .iter()
            .map(|z| z.entry_via.iter().filter_map(|id| self.object_by_id.get(id).copied()).collect())
            .collect();
        let can_step = |a: usize, b: usize| {
            if self.placed.blocked[b] {
                return false;
            }
            match (self.zone_at[a], self.zone_at[b]) {
                (from, Some(to)) if from != Some(to) && !entry_objects[to].is_empty() => {
                    [self.object_at[a], self.object_at[b]].iter().flatten().any(|o| entry_objects[to].contains(o))
                }
                _ => true,
            }
        };
        let mut seen = vec![false; self.zone_at.len()];
        let start = self.cell(start);
        seen[start] = true;
        let mut queue = VecDeque::from([start]);
        while let Some(cell) = queue.pop_front() {
            let (x, y) = (cell % width, cell / width);
            let neighbours = [
                (x > 0).then(|| cell - 1),
                (x + 1 < width).then(|| cell + 1),
                (y > 0).then(|| cell - width),
                (y + 1 < height).then(|| cell + width),
            ];
            for next in neighbours.into_iter().flatten() {
                if !seen[next] && can_step(cell, next) {
                    seen[next] = true;
                    queue.push_back(next);
                }
            }
        }
        seen
    }
}

#[cfg(test)]
mod origin_tests {
    use super::Origins;

    #[test]
    fn a_world_error_path_leads_back_to_its_place_in_the_map() {
        let origins = Origins {
            zones: vec![
                "layer \"areas\", object \"Lobby\" (#1)".into(),
                "layer \"areas\", object \"Room\" (#4)".into(),
            ],
            objects: vec!["layer \"things\", object \"Door\" (#7)".into()],
            exits: vec!["layer \"areas\", object \"Out\" (#9)".into()],
            websites: vec!["layer \"floorLayer\", object \"Board\" (#12)".into()],
        };
        assert_eq!(origins.of_path("$.zones[1].entry_via[0]"), Some("layer \"areas\", object \"Room\" (#4)"));
        assert_eq!(origins.of_path("$.objects[0].capacity"), Some("layer \"things\", object \"Door\" (#7)"));
        assert_eq!(origins.of_path("$.websites[0].url"), Some("layer \"floorLayer\", object \"Board\" (#12)"));
        assert_eq!(origins.of_path("$.exits[0]"), Some("layer \"areas\", object \"Out\" (#9)"));
        assert_eq!(origins.of_path("$.zones[2].area"), None, "no such zone");
        assert_eq!(origins.of_path("$.spawns[0].x"), None, "spawns are moved and dropped by the importer itself");
        assert_eq!(origins.of_path("$.grid.width"), None);
    }
}
