#!/usr/bin/env python3
"""Regenerates the demo world (world.json) and its tileset (assets/*.svg).

The demo world exercises every ZoneType and every kind of exclusive object; tests and
the all-in-one binary load it. Edit the layout below, run `python3 make_demo.py`, then
`cargo run -- world validate worlds/demo/world.json`.
"""
import hashlib
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))

# One character per tile. Blocked: '#' wall, 'T' table, 'B' bookshelf, 'P' plant.
# Walkable: '.' floor, plus the marks below that only choose a floor picture.
LAYOUT = [
    "########################",
    "#......#...........#...#",
    "#.s..s.#...........#...#",
    "#.TTTT.#...........#.B.#",
    "#.s..s.#...........#.B.#",
    "#......#...........#...#",
    "###d####...............#",
    "#......................#",
    "#......................#",
    "#......................#",
    "#.cTc..................#",
    "#......................#",
    "#.cTc..................#",
    "#P....................E#",
    "#P.....................#",
    "########################",
]
WIDTH, HEIGHT = len(LAYOUT[0]), len(LAYOUT)
BLOCKED = set("#TBP")

# Tileset: 8 columns x 2 rows of 64x64 pictures; the footprint diamond is 64x32 at the bottom.
TILE_W, TILE_H, PIC = 64, 32, 64
TILES = [
    # name, kind, colour(s)
    ("floor", "floor", "#d9c7a7"),
    ("carpet", "floor", "#8fa6c9"),
    ("stage", "floor", "#b5838d"),
    ("cafe", "floor", "#e0b872"),
    ("library", "floor", "#a3b18a"),
    ("booth", "floor", "#c9ada7"),
    ("mat", "floor", "#6d597a"),
    ("exit", "floor", "#52b788"),
    ("wall", "block", "#6c757d"),
    ("table", "block", "#8d6e63"),
    ("shelf", "block", "#5d4037"),
    ("plant", "plant", "#40916c"),
    ("chair", "chair", "#355070"),
    ("podium", "block", "#9d6b76"),
    ("passage", "floor", "#adb5bd"),
    ("stool", "chair", "#e56b6f"),
]
GID = {name: i + 1 for i, (name, _, _) in enumerate(TILES)}


def shade(colour, factor):
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return "#%02x%02x%02x" % tuple(max(0, min(255, int(c * factor))) for c in (r, g, b))


def diamond(cx, top, colour):
    pts = f"{cx},{top} {cx + 32},{top + 16} {cx},{top + 32} {cx - 32},{top + 16}"
    return f'<polygon points="{pts}" fill="{colour}" stroke="{shade(colour, 0.8)}" stroke-width="1"/>'


def block(cx, top, height, colour):
    base = top + height
    left = f"{cx - 32},{top + 16} {cx},{top + 32} {cx},{base + 32} {cx - 32},{base + 16}"
    right = f"{cx + 32},{top + 16} {cx},{top + 32} {cx},{base + 32} {cx + 32},{base + 16}"
    return (
        f'<polygon points="{left}" fill="{shade(colour, 0.75)}"/>'
        f'<polygon points="{right}" fill="{shade(colour, 0.6)}"/>' + diamond(cx, top, colour)
    )


def picture(kind, colour, ox, oy):
    cx = ox + 32
    floor_top = oy + PIC - TILE_H
    if kind == "floor":
        return diamond(cx, floor_top, colour)
    if kind == "block":
        return block(cx, floor_top - 24, 24, colour)
    if kind == "chair":
        return block(cx, floor_top - 10, 10, colour) + block(cx, floor_top - 20, 6, shade(colour, 1.2))
    if kind == "plant":
        return (
            block(cx, floor_top - 8, 8, "#7f5539")
            + f'<circle cx="{cx}" cy="{floor_top - 6}" r="18" fill="{colour}"/>'
        )
    raise ValueError(kind)


def tileset_svg():
    cols, rows = 8, 2
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{cols * PIC}" height="{rows * PIC}" '
        f'viewBox="0 0 {cols * PIC} {rows * PIC}">'
    ]
    for i, (_, kind, colour) in enumerate(TILES):
        parts.append(picture(kind, colour, (i % cols) * PIC, (i // cols) * PIC))
    parts.append("</svg>\n")
    return "\n".join(parts).encode()


def rect(x, y, w=1, h=1):
    return {"x": x, "y": y, "w": w, "h": h}


def inside(r, x, y):
    return r["x"] <= x < r["x"] + r["w"] and r["y"] <= y < r["y"] + r["h"]


ZONES = [
    {"id": "meeting", "name": "Meeting room", "type": "meeting_room", "sfu_threshold": 4, "capacity": 12,
     "area": [rect(1, 1, 6, 5)], "entry_via": ["meeting-door"]},
    {"id": "stage", "name": "Stage", "type": "stage", "podium": [rect(12, 1, 4, 2)], "max_speakers": 3,
     "area": [rect(8, 1, 11, 5)], "entry_via": []},
    {"id": "library", "name": "Library", "type": "silent", "area": [rect(20, 1, 3, 5)], "entry_via": []},
    {"id": "cafe", "name": "Cafe", "type": "open", "talk_radius": 2, "area": [rect(1, 9, 7, 5)], "entry_via": []},
    {"id": "booth", "name": "Phone booth", "type": "private", "capacity": 2, "lockable": True,
     "area": [rect(12, 10, 7, 3)], "entry_via": ["booth-door"]},
]
OBJECTS = [
    {"id": "meeting-door", "kind": "door", "area": [rect(3, 6)], "capacity": 1, "requires": []},
    {"id": "meeting-seat-1", "kind": "seat", "area": [rect(2, 2)], "capacity": 1, "facing": "south", "requires": []},
    {"id": "meeting-seat-2", "kind": "seat", "area": [rect(5, 2)], "capacity": 1, "facing": "south", "requires": []},
    {"id": "meeting-seat-3", "kind": "seat", "area": [rect(2, 4)], "capacity": 1, "facing": "north", "requires": []},
    {"id": "meeting-seat-4", "kind": "seat", "area": [rect(5, 4)], "capacity": 1, "facing": "north", "requires": []},
    {"id": "cafe-stool-1", "kind": "seat", "area": [rect(2, 10)], "capacity": 1, "facing": "east", "requires": []},
    {"id": "cafe-stool-2", "kind": "seat", "area": [rect(4, 10)], "capacity": 1, "facing": "west", "requires": []},
    {"id": "cafe-stool-3", "kind": "seat", "area": [rect(2, 12)], "capacity": 1, "facing": "east", "requires": []},
    {"id": "cafe-stool-4", "kind": "seat", "area": [rect(4, 12)], "capacity": 1, "facing": "west", "requires": []},
    {"id": "booth-passage", "kind": "passage", "area": [rect(15, 8, 1, 2)], "capacity": 1, "requires": []},
    {"id": "booth-door", "kind": "door", "area": [rect(15, 10)], "capacity": 1, "requires": ["booth-passage"]},
]

# The booth's thin walls: around rows 10-12, columns 12-18, with a gap under the passage,
# which is walled on both sides so it is one tile wide.
WALLS = [
    {"from": [12, 10], "to": [15, 10]}, {"from": [16, 10], "to": [19, 10]},
    {"from": [12, 10], "to": [12, 13]}, {"from": [19, 10], "to": [19, 13]},
    {"from": [12, 13], "to": [19, 13]},
    {"from": [15, 8], "to": [15, 10]}, {"from": [16, 8], "to": [16, 10]},
]


def floor_at(x, y):
    c = LAYOUT[y][x]
    if c == "E":
        return GID["exit"]
    for obj in OBJECTS:
        if obj["kind"] == "passage" and any(inside(r, x, y) for r in obj["area"]):
            return GID["passage"]
        if obj["kind"] == "door" and any(inside(r, x, y) for r in obj["area"]):
            return GID["mat"]
    names = {"meeting": "carpet", "stage": "stage", "library": "library", "cafe": "cafe", "booth": "booth"}
    for zone in ZONES:
        if any(inside(r, x, y) for r in zone["area"]):
            return GID[names[zone["id"]]]
    return GID["floor"]


def furniture_at(x, y):
    c = LAYOUT[y][x]
    if c == "#":
        return GID["wall"]
    if c == "T":
        return GID["table"]
    if c == "B":
        return GID["shelf"]
    if c == "P":
        return GID["plant"]
    for obj in OBJECTS:
        if obj["kind"] == "seat" and any(inside(r, x, y) for r in obj["area"]):
            return GID["chair"] if obj["id"].startswith("meeting") else GID["stool"]
    if any(inside(r, x, y) for r in ZONES[1]["podium"]):
        return GID["podium"]
    return 0


def main():
    svg = tileset_svg()
    asset_id = "sha256-" + hashlib.sha256(svg).hexdigest()
    assets = os.path.join(HERE, "assets")
    os.makedirs(assets, exist_ok=True)
    for old in os.listdir(assets):
        os.remove(os.path.join(assets, old))
    with open(os.path.join(assets, asset_id + ".svg"), "wb") as f:
        f.write(svg)

    # The podium is raised one level, the rest of the floor is level 0.
    heights = ["".join("1" if any(inside(r, x, y) for r in ZONES[1]["podium"]) else "0" for x in range(WIDTH))
               for y in range(HEIGHT)]
    # The layout marks (c, d, s, E) are walkable floor; podium tiles stay walkable.
    rows = ["".join("#" if c in BLOCKED else "." for c in line) for line in LAYOUT]
    world = {
        "format": "isoplane.world",
        "version": 1,
        "name": "Isoplane demo office",
        "grid": {"orientation": "isometric", "width": WIDTH, "height": HEIGHT, "tile_width": TILE_W,
                 "tile_height": TILE_H, "levels": 2, "level_height": 16},
        "movement": {"max_speed": 4.0, "slack": 0.5},
        "tilesets": [{"name": "office", "image": asset_id, "image_width": 8 * PIC, "image_height": 2 * PIC,
                      "tile_width": PIC, "tile_height": PIC, "columns": 8, "tile_count": len(TILES), "first_gid": 1}],
        "layers": [
            {"name": "floor", "depth": "below", "opacity": 1.0, "visible": True,
             "tiles": [floor_at(x, y) for y in range(HEIGHT) for x in range(WIDTH)]},
            {"name": "furniture", "depth": "sorted", "opacity": 1.0, "visible": True,
             "tiles": [furniture_at(x, y) for y in range(HEIGHT) for x in range(WIDTH)]},
        ],
        "collision": {"rows": rows, "heights": heights, "walls": WALLS},
        "spawns": [
            {"id": "entrance", "x": 10, "y": 7, "facing": "south"},
            {"id": "cafe", "x": 6, "y": 11, "facing": "west"},
        ],
        "default_zone": {"id": "lobby", "name": "Lobby", "type": "open", "talk_radius": 3},
        "zones": ZONES,
        "objects": OBJECTS,
        "exits": [{"id": "to-garden", "area": [rect(22, 13)], "world": "garden", "spawn": "gate"}],
    }
    with open(os.path.join(HERE, "world.json"), "w") as f:
        json.dump(world, f, indent=2)
        f.write("\n")
    print("wrote world.json and assets/" + asset_id + ".svg")


if __name__ == "__main__":
    main()
