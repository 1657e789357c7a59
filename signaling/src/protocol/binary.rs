//! The binary frames of the `/v1/ws` protocol: the hot path, both ways.
//!
//! All integers are little-endian. The first byte names the frame:
//!
//! ```text
//! 0x01 presence (server → client), one per zone per tick, only the avatars that changed:
//!      u8 0x01 | u32 tick | u16 count | count × (u32 avatar | u16 x | u16 y | u8 pose)
//!      x, y: position in 1/64 tile (sub-tile units ÷ 4); pose: facing (bits 0-2,
//!      north = 0 clockwise to north_west = 7) | state << 3 (0 idle, 1 walking, 2 sitting)
//! 0x02 move intent (client → server):
//!      u8 0x02 | u32 seq | i32 x | i32 y | u8 pose      x, y in sub-tile units (1/256 tile)
//! ```
//! Presence quantises to 1/64 tile (9 bytes an avatar); moves keep full precision because
//! the server checks them exactly.

use isoplane_world_format::Facing;

use super::control::{AvatarId, AvatarState, Point};

pub const PRESENCE: u8 = 0x01;
pub const MOVE_INTENT: u8 = 0x02;

const PRESENCE_HEADER: usize = 1 + 4 + 2;
const PRESENCE_ENTRY: usize = 4 + 2 + 2 + 1;
const MOVE_INTENT_LEN: usize = 1 + 4 + 4 + 4 + 1;
/// Presence positions are sub-tile units divided by this.
const PRESENCE_QUANTUM: i32 = 4;

/// An avatar's pose: where it faces and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pose {
    pub facing: Facing,
    pub state: AvatarState,
}

impl Pose {
    fn to_byte(self) -> u8 {
        let facing = Facing::ALL.iter().position(|&f| f == self.facing).unwrap_or(0) as u8;
        let state = AvatarState::ALL.iter().position(|&s| s == self.state).unwrap_or(0) as u8;
        facing | (state << 3)
    }

    fn from_byte(byte: u8) -> Result<Pose, FrameError> {
        let facing = Facing::ALL[usize::from(byte & 0b111)];
        let state = *AvatarState::ALL.get(usize::from(byte >> 3)).ok_or(FrameError::BadPose(byte))?;
        Ok(Pose { facing, state })
    }
}

/// One avatar's line in a presence frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceEntry {
    pub avatar: AvatarId,
    /// Sub-tile units, rounded down to the presence quantum.
    pub position: Point,
    pub pose: Pose,
}

/// A client's move, as the server receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoveIntent {
    /// Client's sequence number, echoed in a correction.
    pub seq: u32,
    pub position: Point,
    pub pose: Pose,
}

/// A decoded binary frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Presence { tick: u32, entries: Vec<PresenceEntry> },
    MoveIntent(MoveIntent),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("empty frame")]
    Empty,
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    #[error("frame of type 0x{kind:02x} has {actual} bytes, expected {expected}")]
    WrongLength { kind: u8, expected: usize, actual: usize },
    #[error("pose byte 0x{0:02x} names no avatar state")]
    BadPose(u8),
}

/// Encodes a presence frame. Positions must be on a grid of at most 1024 tiles a side.
pub fn encode_presence(tick: u32, entries: &[PresenceEntry]) -> Vec<u8> {
    let count = entries.len().min(usize::from(u16::MAX));
    let mut out = Vec::with_capacity(PRESENCE_HEADER + count * PRESENCE_ENTRY);
    out.push(PRESENCE);
    out.extend_from_slice(&tick.to_le_bytes());
    out.extend_from_slice(&(count as u16).to_le_bytes());
    for entry in &entries[..count] {
        out.extend_from_slice(&entry.avatar.to_le_bytes());
        out.extend_from_slice(&quantise(entry.position.x).to_le_bytes());
        out.extend_from_slice(&quantise(entry.position.y).to_le_bytes());
        out.push(entry.pose.to_byte());
    }
    out
}

fn quantise(value: i32) -> u16 {
    (value / PRESENCE_QUANTUM).clamp(0, i32::from(u16::MAX)) as u16
}

/// Encodes a move intent (what clients send).
pub fn encode_move_intent(intent: &MoveIntent) -> Vec<u8> {
    let mut out = Vec::with_capacity(MOVE_INTENT_LEN);
    out.push(MOVE_INTENT);
    out.extend_from_slice(&intent.seq.to_le_bytes());
    out.extend_from_slice(&intent.position.x.to_le_bytes());
    out.extend_from_slice(&intent.position.y.to_le_bytes());
    out.push(intent.pose.to_byte());
    out
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Decodes any binary frame. Never panics, whatever the bytes.
pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
    let kind = *bytes.first().ok_or(FrameError::Empty)?;
    match kind {
        PRESENCE => {
            if bytes.len() < PRESENCE_HEADER {
                return Err(FrameError::WrongLength { kind, expected: PRESENCE_HEADER, actual: bytes.len() });
            }
            let tick = u32_at(bytes, 1);
            let count = usize::from(u16_at(bytes, 5));
            let expected = PRESENCE_HEADER + count * PRESENCE_ENTRY;
            if bytes.len() != expected {
                return Err(FrameError::WrongLength { kind, expected, actual: bytes.len() });
            }
            let entries = bytes[PRESENCE_HEADER..]
                .chunks_exact(PRESENCE_ENTRY)
                .map(|e| {
                    Ok(PresenceEntry {
                        avatar: u32_at(e, 0),
                        position: Point {
                            x: i32::from(u16_at(e, 4)) * PRESENCE_QUANTUM,
                            y: i32::from(u16_at(e, 6)) * PRESENCE_QUANTUM,
                        },
                        pose: Pose::from_byte(e[8])?,
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok(Frame::Presence { tick, entries })
        }
        MOVE_INTENT => {
            if bytes.len() != MOVE_INTENT_LEN {
                return Err(FrameError::WrongLength { kind, expected: MOVE_INTENT_LEN, actual: bytes.len() });
            }
            Ok(Frame::MoveIntent(MoveIntent {
                seq: u32_at(bytes, 1),
                position: Point { x: u32_at(bytes, 5) as i32, y: u32_at(bytes, 9) as i32 },
                pose: Pose::from_byte(bytes[13])?,
            }))
        }
        other => Err(FrameError::UnknownType(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_round_trips_at_the_quantum() {
        let entries = vec![
            PresenceEntry {
                avatar: 7,
                position: Point { x: 1000, y: 260 },
                pose: Pose { facing: Facing::SouthWest, state: AvatarState::Walking },
            },
            PresenceEntry {
                avatar: 70_000,
                position: Point { x: 262_140, y: 0 },
                pose: Pose { facing: Facing::North, state: AvatarState::Sitting },
            },
        ];
        let bytes = encode_presence(42, &entries);
        assert_eq!(bytes.len(), 7 + 2 * 9);
        assert_eq!(decode(&bytes), Ok(Frame::Presence { tick: 42, entries }));
    }

    #[test]
    fn move_intents_round_trip_exactly() {
        let intent = MoveIntent {
            seq: 9,
            position: Point { x: 1234, y: 5679 },
            pose: Pose { facing: Facing::East, state: AvatarState::Idle },
        };
        assert_eq!(decode(&encode_move_intent(&intent)), Ok(Frame::MoveIntent(intent)));
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        assert_eq!(decode(&[]), Err(FrameError::Empty));
        assert_eq!(decode(&[9]), Err(FrameError::UnknownType(9)));
        assert!(matches!(decode(&[2, 0, 0]), Err(FrameError::WrongLength { .. })));
        assert!(matches!(decode(&[1, 0, 0, 0, 0, 5, 0]), Err(FrameError::WrongLength { expected: 52, .. })));
        let mut bad_pose = encode_move_intent(&MoveIntent {
            seq: 1,
            position: Point { x: 1, y: 1 },
            pose: Pose { facing: Facing::East, state: AvatarState::Idle },
        });
        bad_pose[13] = 0xff;
        assert_eq!(decode(&bad_pose), Err(FrameError::BadPose(0xff)));
    }
}
