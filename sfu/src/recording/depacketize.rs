//! RTP packets to whole codec frames (Opus, VP8, VP9), in order, decodable.
//!
//! Packets arrive in any order, duplicated or late. They wait here, by extended sequence
//! number, until they form a complete frame that follows the last one handed out without
//! a gap; frames therefore leave in sequence (and RTP timestamp) order.
//!
//! Invariants:
//! - Every sequence number below `next_seq` is settled (handed out, dropped or skipped): a
//!   packet arriving for one is ignored.
//! - A gap is waited for until a complete frame [`GIVE_UP_AFTER_MS`] of RTP time newer than
//!   it is pending (time for a retransmission to arrive), or [`GIVE_UP_AFTER_FRAMES`] newer
//!   complete frames are (a guard against frozen timestamps); then everything before
//!   the first complete frame after it is dropped. At the start nothing is known to be
//!   missing, but earlier packets may still come: the first frame waits the same way.
//! - Video waiting for a keyframe (at the start, after a drop) does not wait for gaps:
//!   nothing before a complete keyframe is of use, so it goes as soon as it is complete.
//! - Pending packets are bounded in bytes, packets and pictures: past a bound the oldest
//!   picture is dropped.
//! - Video: after a drop the decoder's references are gone, so every frame until the next
//!   keyframe is dropped and a keyframe is requested (also at the start).
//!
//! Bad packets (malformed payload descriptors, oversized payloads) never panic: they
//! count as lost. Empty payloads (padding-only packets, which senders use to probe
//! bandwidth) are fillers: they occupy their sequence number and carry nothing, and
//! break only a frame they sit inside of.

use std::collections::{BTreeMap, VecDeque};

use super::track::TrackCodec;

/// How long (RTP time) a gap is waited for once newer frames are complete.
pub const GIVE_UP_AFTER_MS: u32 = 300;
/// How many newer complete frames make a gap be given up whatever their timestamps say.
pub const GIVE_UP_AFTER_FRAMES: usize = 30;
/// Bounds on what waits here.
pub const MAX_PENDING_BYTES: usize = 8 << 20;
pub const MAX_PENDING_PACKETS: usize = 8192;
pub const MAX_PENDING_PICTURES: usize = 200;
/// No RTP payload over UDP is larger.
pub const MAX_PAYLOAD: usize = 65_535;

/// One codec frame, ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub timestamp: u32,
    /// Decodable alone (always for Opus).
    pub keyframe: bool,
    /// A video keyframe's picture size, read from its bitstream header.
    pub dimensions: Option<(u16, u16)>,
    pub data: Vec<u8>,
}

/// One RTP stream's reassembly: push packets, poll frames.
#[derive(Debug)]
pub struct Depacketizer {
    codec: TrackCodec,
    /// [`GIVE_UP_AFTER_MS`] in RTP ticks.
    give_up_ticks: u32,
    pending: BTreeMap<u64, Packet>,
    pending_bytes: usize,
    /// The first unsettled sequence number; `None` until the first frame settles one.
    next_seq: Option<u64>,
    ready: VecDeque<Frame>,
    waiting_for_keyframe: bool,
    keyframe_request: bool,
    dropped_frames: u64,
}

#[derive(Debug)]
struct Packet {
    timestamp: u32,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// A piece of a frame this stream records.
    Part(Part),
    /// Received, nothing to record (padding, a VP9 spatial layer above 0).
    Filler,
    /// Received and unusable (malformed): as good as lost.
    Broken,
}

#[derive(Debug)]
struct Part {
    begins: bool,
    ends: bool,
    /// On a frame's first packet: the frame may be a keyframe (VP8's frame tag, VP9's P
    /// bit); the whole frame's header decides.
    key_hint: bool,
    data: Vec<u8>,
}

/// What the first pending packet is to the frame order.
enum Head {
    /// Not the next sequence number: packets are missing before it.
    Gap,
    /// The next one, carrying nothing.
    Filler,
    /// The next one, unusable: broken, or a frame's piece without its beginning.
    Orphan,
    /// The next one, beginning a frame.
    Begins,
}

/// The packets from a frame's first one onwards, as far as they are pending.
enum HeadRun {
    /// Complete up to this sequence number.
    Complete(u64),
    /// Cut before this sequence number (a packet that cannot continue the frame).
    Broken(u64),
    /// Some packets still missing.
    Incomplete,
}

/// What the pending packets hold, for deciding to stop waiting for a gap.
#[derive(Debug, Default)]
struct Survey {
    first_complete: Option<u64>,
    first_complete_keyframe: Option<u64>,
    complete: usize,
    newest_complete_timestamp: Option<u32>,
    pictures: usize,
}

impl Depacketizer {
    /// `clock_rate`: the RTP clock (48 000 for Opus, 90 000 for video).
    pub fn new(codec: TrackCodec, clock_rate: u32) -> Depacketizer {
        let video = codec != TrackCodec::Opus;
        Depacketizer {
            codec,
            give_up_ticks: u32::try_from(u64::from(clock_rate) * u64::from(GIVE_UP_AFTER_MS) / 1000)
                .unwrap_or(u32::MAX),
            pending: BTreeMap::new(),
            pending_bytes: 0,
            next_seq: None,
            ready: VecDeque::new(),
            waiting_for_keyframe: video,
            keyframe_request: video,
            dropped_frames: 0,
        }
    }

    /// One received packet; `seq_no` is the extended (unwrapped) sequence number.
    pub fn push(&mut self, seq_no: u64, timestamp: u32, marker: bool, payload: &[u8]) {
        if self.next_seq.is_some_and(|next| seq_no < next) || self.pending.contains_key(&seq_no) {
            return;
        }
        let kind = self.classify(marker, payload);
        if let Kind::Part(part) = &kind {
            self.pending_bytes += part.data.len();
        }
        self.pending.insert(seq_no, Packet { timestamp, kind });
        self.drain(false);
    }

    /// The next frame, in order.
    pub fn poll_frame(&mut self) -> Option<Frame> {
        self.ready.pop_front()
    }

    /// True once after frames had to be dropped until a keyframe (and at the start).
    /// Whether video is dropped until a keyframe comes (at the start, after a loss).
    pub fn waiting_for_keyframe(&self) -> bool {
        self.waiting_for_keyframe
    }

    pub fn take_keyframe_request(&mut self) -> bool {
        std::mem::take(&mut self.keyframe_request)
    }

    /// Frames dropped so far: incomplete, broken, or undecodable for want of a keyframe.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames
    }

    /// The stream has ended: complete frames go out, gaps are no longer waited for, and
    /// what remains incomplete is dropped.
    pub fn flush(&mut self) {
        self.drain(true);
    }

    fn classify(&self, marker: bool, payload: &[u8]) -> Kind {
        if payload.is_empty() {
            return Kind::Filler;
        }
        if payload.len() > MAX_PAYLOAD {
            return Kind::Broken;
        }
        match self.codec {
            TrackCodec::Opus => Kind::Part(Part { begins: true, ends: true, key_hint: true, data: payload.to_vec() }),
            TrackCodec::Vp8 => match Vp8Descriptor::parse(payload) {
                Some(descriptor) if descriptor.header_len < payload.len() => {
                    let data = payload[descriptor.header_len..].to_vec();
                    let begins = descriptor.begins_frame();
                    // The frame tag's P bit: clear on a keyframe.
                    let key_hint = begins && data[0] & 0x01 == 0;
                    Kind::Part(Part { begins, ends: marker, key_hint, data })
                }
                _ => Kind::Broken,
            },
            TrackCodec::Vp9 => match Vp9Descriptor::parse(payload) {
                Some(descriptor) if descriptor.layers.is_some_and(|layers| layers.spatial != 0) => Kind::Filler,
                Some(descriptor) if descriptor.header_len < payload.len() => Kind::Part(Part {
                    begins: descriptor.begins_frame,
                    ends: descriptor.ends_frame,
                    key_hint: descriptor.begins_frame && !descriptor.predicted,
                    data: payload[descriptor.header_len..].to_vec(),
                }),
                _ => Kind::Broken,
            },
        }
    }

    /// Hands out every frame that can go, and settles gaps that waited long enough
    /// (all of them when `flushing`).
    fn drain(&mut self, flushing: bool) {
        while let Some((&seq, packet)) = self.pending.first_key_value() {
            let oldest_timestamp = packet.timestamp;
            let head = match &packet.kind {
                _ if self.next_seq != Some(seq) => Head::Gap,
                Kind::Filler => Head::Filler,
                Kind::Broken | Kind::Part(Part { begins: false, .. }) => Head::Orphan,
                Kind::Part(Part { begins: true, .. }) => Head::Begins,
            };
            match head {
                Head::Filler => {
                    self.settle_through(seq);
                    continue;
                }
                Head::Orphan => {
                    self.settle_through(seq);
                    self.lost();
                    continue;
                }
                Head::Begins => match self.head_run(seq) {
                    HeadRun::Complete(last) => {
                        self.emit(last);
                        continue;
                    }
                    HeadRun::Broken(at) => {
                        self.settle_before(at);
                        self.lost();
                        continue;
                    }
                    HeadRun::Incomplete => {}
                },
                Head::Gap => {}
            }
            // Blocked: packets missing before the first pending one, or inside its frame.
            let survey = self.survey();
            if self.waiting_for_keyframe
                && let Some(keyframe) = survey.first_complete_keyframe
            {
                // Already waiting: what comes before the keyframe would be dropped anyway.
                self.settle_before(keyframe);
                continue;
            }
            let waited_enough = survey.complete >= GIVE_UP_AFTER_FRAMES
                || survey
                    .newest_complete_timestamp
                    .is_some_and(|newest| newest.wrapping_sub(oldest_timestamp) as i32 >= self.give_up_ticks as i32);
            if (flushing || waited_enough)
                && let Some(first_complete) = survey.first_complete
            {
                // A loss unless nothing is dropped and nothing is known to be missing (the start).
                let missing = self.next_seq.is_some_and(|next| next < first_complete);
                if self.settle_before(first_complete) > 0 || missing {
                    self.lost();
                }
                continue;
            }
            if flushing {
                if let Some((&last, _)) = self.pending.last_key_value() {
                    self.settle_through(last);
                    self.lost();
                }
                return;
            }
            if self.pending_bytes > MAX_PENDING_BYTES
                || self.pending.len() > MAX_PENDING_PACKETS
                || survey.pictures > MAX_PENDING_PICTURES
            {
                self.drop_oldest_picture();
                continue;
            }
            return;
        }
    }

    /// How far the frame beginning at `begin` (the next sequence number) is pending.
    fn head_run(&self, begin: u64) -> HeadRun {
        let mut expected = begin;
        let mut timestamp = None;
        for (&seq, packet) in self.pending.range(begin..) {
            if seq != expected {
                return HeadRun::Incomplete;
            }
            let Kind::Part(part) = &packet.kind else { return HeadRun::Broken(seq) };
            match timestamp {
                None => timestamp = Some(packet.timestamp),
                Some(timestamp) if part.begins || timestamp != packet.timestamp => return HeadRun::Broken(seq),
                Some(_) => {}
            }
            if part.ends {
                return HeadRun::Complete(seq);
            }
            expected = seq.saturating_add(1);
        }
        HeadRun::Incomplete
    }

    fn survey(&self) -> Survey {
        let mut survey = Survey::default();
        // The frame being followed: its first and last sequence numbers, its timestamp,
        // whether it may be a keyframe.
        let mut run: Option<(u64, u64, u32, bool)> = None;
        let mut last_timestamp = None;
        for (&seq, packet) in &self.pending {
            if last_timestamp != Some(packet.timestamp) {
                survey.pictures += 1;
                last_timestamp = Some(packet.timestamp);
            }
            let Kind::Part(part) = &packet.kind else {
                run = None;
                continue;
            };
            run = if part.begins {
                Some((seq, seq, packet.timestamp, part.key_hint))
            } else {
                run.filter(|&(_, last, timestamp, _)| last.checked_add(1) == Some(seq) && timestamp == packet.timestamp)
                    .map(|(first, _, timestamp, key)| (first, seq, timestamp, key))
            };
            if part.ends
                && let Some((first, _, timestamp, key)) = run.take()
            {
                survey.complete += 1;
                survey.first_complete.get_or_insert(first);
                if key && self.codec != TrackCodec::Opus {
                    survey.first_complete_keyframe.get_or_insert(first);
                }
                survey.newest_complete_timestamp = Some(timestamp);
            }
        }
        survey
    }

    /// Takes the frame from the first pending packet through `last` and hands it out
    /// (or drops it when the decoder cannot use it).
    fn emit(&mut self, last: u64) {
        let mut data = Vec::new();
        let mut timestamp = 0;
        let mut key_hint = false;
        let mut first = true;
        while let Some((seq, packet)) = self.pop_first_through(last) {
            self.next_seq = Some(seq.saturating_add(1));
            let Kind::Part(part) = packet.kind else { continue };
            if first {
                (timestamp, key_hint, first) = (packet.timestamp, part.key_hint, false);
                if seq == last {
                    data = part.data;
                    break;
                }
            }
            data.extend_from_slice(&part.data);
        }
        let dimensions = match self.codec {
            TrackCodec::Opus => None,
            _ if !key_hint => None,
            TrackCodec::Vp8 => vp8_keyframe_dimensions(&data),
            TrackCodec::Vp9 => vp9_keyframe_dimensions(&data),
        };
        let keyframe = self.codec == TrackCodec::Opus || dimensions.is_some();
        if self.waiting_for_keyframe && !keyframe {
            self.dropped_frames += 1;
            return;
        }
        self.waiting_for_keyframe = false;
        self.ready.push_back(Frame { timestamp, keyframe, dimensions, data });
    }

    fn pop_first_through(&mut self, last: u64) -> Option<(u64, Packet)> {
        if self.pending.first_key_value().is_none_or(|(&seq, _)| seq > last) {
            return None;
        }
        let (seq, packet) = self.pending.pop_first()?;
        if let Kind::Part(part) = &packet.kind {
            self.pending_bytes -= part.data.len();
        }
        Some((seq, packet))
    }

    /// Drops every pending packet up to `last` and settles their sequence numbers;
    /// returns how many packets it dropped.
    fn settle_through(&mut self, last: u64) -> usize {
        let mut dropped = 0;
        while let Some((_, packet)) = self.pop_first_through(last) {
            if matches!(packet.kind, Kind::Part(Part { begins: true, .. })) {
                self.dropped_frames += 1;
            }
            dropped += 1;
        }
        let after = last.saturating_add(1);
        self.next_seq = Some(self.next_seq.map_or(after, |next| next.max(after)));
        dropped
    }

    /// Drops every pending packet before `seq`, which becomes the next expected one;
    /// returns how many packets it dropped.
    fn settle_before(&mut self, seq: u64) -> usize {
        let dropped = seq.checked_sub(1).map_or(0, |last| self.settle_through(last));
        self.next_seq = Some(seq);
        dropped
    }

    fn drop_oldest_picture(&mut self) {
        let Some((&first, oldest)) = self.pending.first_key_value() else { return };
        let timestamp = oldest.timestamp;
        let last = self.pending.range(first..).take_while(|(_, p)| p.timestamp == timestamp).last().map(|(&s, _)| s);
        self.settle_through(last.unwrap_or(first));
        self.lost();
    }

    /// Packets are gone for good: a video decoder needs a keyframe to go on. Raised again
    /// on every loss while waiting, since a lost packet may belong to the keyframe asked for.
    fn lost(&mut self) {
        if self.codec != TrackCodec::Opus {
            self.waiting_for_keyframe = true;
            self.keyframe_request = true;
        }
    }
}

/// The fields of a VP8 payload descriptor (RFC 7741 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Descriptor {
    /// N: the frame is not used as a reference.
    pub non_reference: bool,
    /// S: the packet starts a partition.
    pub start_of_partition: bool,
    /// PID: the partition's index.
    pub partition_index: u8,
    /// 7- or 15-bit PictureID.
    pub picture_id: Option<u16>,
    pub tl0_pic_idx: Option<u8>,
    /// TID (with T).
    pub temporal_id: Option<u8>,
    /// Y: layer sync (meaningful with T).
    pub layer_sync: bool,
    /// KEYIDX (with K).
    pub key_index: Option<u8>,
    /// The descriptor's length: the VP8 data starts there.
    pub header_len: usize,
}

impl Vp8Descriptor {
    /// `None` when the payload is shorter than its descriptor says.
    pub fn parse(payload: &[u8]) -> Option<Vp8Descriptor> {
        let first = *payload.first()?;
        let mut descriptor = Vp8Descriptor {
            non_reference: first & 0x20 != 0,
            start_of_partition: first & 0x10 != 0,
            partition_index: first & 0x07,
            picture_id: None,
            tl0_pic_idx: None,
            temporal_id: None,
            layer_sync: false,
            key_index: None,
            header_len: 1,
        };
        if first & 0x80 == 0 {
            return Some(descriptor);
        }
        let extension = *payload.get(1)?;
        let mut index = 2;
        if extension & 0x80 != 0 {
            descriptor.picture_id = Some(read_picture_id(payload, &mut index)?);
        }
        if extension & 0x40 != 0 {
            descriptor.tl0_pic_idx = Some(*payload.get(index)?);
            index += 1;
        }
        let (has_tid, has_key_index) = (extension & 0x20 != 0, extension & 0x10 != 0);
        if has_tid || has_key_index {
            let byte = *payload.get(index)?;
            if has_tid {
                descriptor.temporal_id = Some(byte >> 6);
                descriptor.layer_sync = byte & 0x20 != 0;
            }
            if has_key_index {
                descriptor.key_index = Some(byte & 0x1F);
            }
            index += 1;
        }
        descriptor.header_len = index;
        Some(descriptor)
    }

    /// The packet carries the beginning of a frame (partition 0 starts).
    pub fn begins_frame(&self) -> bool {
        self.start_of_partition && self.partition_index == 0
    }
}

/// The fields of a VP9 payload descriptor (RFC 9628 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp9Descriptor {
    /// P: inter-picture predicted (not a keyframe when on a frame's first packet).
    pub predicted: bool,
    /// F: flexible mode (reference indices in the descriptor).
    pub flexible: bool,
    /// B: the packet begins a layer frame.
    pub begins_frame: bool,
    /// E: the packet ends a layer frame.
    pub ends_frame: bool,
    /// Z: not used for inter-layer prediction by upper spatial layers.
    pub not_upper_reference: bool,
    /// 7- or 15-bit PictureID.
    pub picture_id: Option<u16>,
    pub layers: Option<Vp9Layers>,
    /// Flexible mode's P_DIFFs (up to 3), `reference_count` of them.
    pub reference_diffs: [u8; 3],
    pub reference_count: u8,
    /// The scalability structure's summary (when V is set).
    pub scalability: Option<Vp9Scalability>,
    /// The descriptor's length: the VP9 data starts there.
    pub header_len: usize,
}

/// Layer indices (L).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp9Layers {
    pub temporal: u8,
    /// U: switching up point.
    pub switching_up: bool,
    pub spatial: u8,
    /// D: inter-layer dependency.
    pub inter_layer_dependency: bool,
    /// Non-flexible mode only.
    pub tl0_pic_idx: Option<u8>,
}

/// What the scalability structure (V) says, summarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp9Scalability {
    pub spatial_layers: u8,
    /// Spatial layer 0's size, when the structure gives sizes (Y).
    pub first_resolution: Option<(u16, u16)>,
    /// Pictures in the group of pictures description (G).
    pub picture_group_len: u8,
}

impl Vp9Descriptor {
    /// `None` when the payload is shorter than its descriptor says, or has more than 3
    /// reference indices.
    pub fn parse(payload: &[u8]) -> Option<Vp9Descriptor> {
        let first = *payload.first()?;
        let mut descriptor = Vp9Descriptor {
            predicted: first & 0x40 != 0,
            flexible: first & 0x10 != 0,
            begins_frame: first & 0x08 != 0,
            ends_frame: first & 0x04 != 0,
            not_upper_reference: first & 0x01 != 0,
            picture_id: None,
            layers: None,
            reference_diffs: [0; 3],
            reference_count: 0,
            scalability: None,
            header_len: 0,
        };
        let mut index = 1;
        if first & 0x80 != 0 {
            descriptor.picture_id = Some(read_picture_id(payload, &mut index)?);
        }
        if first & 0x20 != 0 {
            let byte = *payload.get(index)?;
            index += 1;
            let tl0_pic_idx = if descriptor.flexible {
                None
            } else {
                index += 1;
                Some(*payload.get(index - 1)?)
            };
            descriptor.layers = Some(Vp9Layers {
                temporal: byte >> 5,
                switching_up: byte & 0x10 != 0,
                spatial: (byte >> 1) & 0x07,
                inter_layer_dependency: byte & 0x01 != 0,
                tl0_pic_idx,
            });
        }
        if descriptor.flexible && descriptor.predicted {
            loop {
                let byte = *payload.get(index)?;
                index += 1;
                let slot = descriptor.reference_diffs.get_mut(usize::from(descriptor.reference_count))?;
                *slot = byte >> 1;
                descriptor.reference_count += 1;
                if byte & 0x01 == 0 {
                    break;
                }
            }
        }
        if first & 0x02 != 0 {
            let (scalability, length) = parse_scalability(payload.get(index..)?)?;
            descriptor.scalability = Some(scalability);
            index += length;
        }
        descriptor.header_len = index;
        Some(descriptor)
    }
}

/// The scalability structure (RFC 9628 §4.2.1) at the start of `data`, and its length.
fn parse_scalability(data: &[u8]) -> Option<(Vp9Scalability, usize)> {
    let first = *data.first()?;
    let spatial_layers = (first >> 5) + 1;
    let mut index = 1;
    let mut first_resolution = None;
    if first & 0x10 != 0 {
        let sizes = data.get(index..index + 4 * usize::from(spatial_layers))?;
        first_resolution = Some((u16::from_be_bytes([sizes[0], sizes[1]]), u16::from_be_bytes([sizes[2], sizes[3]])));
        index += sizes.len();
    }
    let mut picture_group_len = 0;
    if first & 0x08 != 0 {
        picture_group_len = *data.get(index)?;
        index += 1;
        for _ in 0..picture_group_len {
            let picture = *data.get(index)?;
            let references = usize::from((picture >> 2) & 0x03);
            index += 1 + references;
        }
        if index > data.len() {
            return None;
        }
    }
    Some((Vp9Scalability { spatial_layers, first_resolution, picture_group_len }, index))
}

/// A VP8 keyframe's size (RFC 6386 §9.1: a 3-byte frame tag whose bit 0 is clear on a
/// keyframe, the start code 9D 01 2A, then 14-bit width and height); `None` for other frames.
pub fn vp8_keyframe_dimensions(frame: &[u8]) -> Option<(u16, u16)> {
    let header = frame.get(..10)?;
    if header[0] & 0x01 != 0 || header[3..6] != [0x9D, 0x01, 0x2A] {
        return None;
    }
    let width = u16::from_le_bytes([header[6], header[7]]) & 0x3FFF;
    let height = u16::from_le_bytes([header[8], header[9]]) & 0x3FFF;
    (width > 0 && height > 0).then_some((width, height))
}

/// A VP9 keyframe's size, from its uncompressed header (VP9 bitstream spec §6.2); `None`
/// for other frames and for headers that do not parse.
pub fn vp9_keyframe_dimensions(frame: &[u8]) -> Option<(u16, u16)> {
    let mut bits = BitReader { data: frame, position: 0 };
    if bits.read(2)? != 2 {
        return None; // frame_marker
    }
    let profile_low = bits.read(1)?;
    let profile = (bits.read(1)? << 1) | profile_low;
    if profile == 3 {
        bits.read(1)?; // reserved_zero
    }
    if bits.read(1)? == 1 {
        return None; // show_existing_frame: no new picture
    }
    if bits.read(1)? != 0 {
        return None; // frame_type: not KEY_FRAME
    }
    bits.read(2)?; // show_frame, error_resilient_mode
    if bits.read(24)? != 0x49_8342 {
        return None; // frame_sync_code
    }
    if profile >= 2 {
        bits.read(1)?; // ten_or_twelve_bit
    }
    const CS_RGB: u32 = 7;
    let color_space = bits.read(3)?;
    let odd_profile = profile == 1 || profile == 3;
    if color_space != CS_RGB {
        bits.read(1)?; // color_range
        if odd_profile {
            bits.read(3)?; // subsampling_x, subsampling_y, reserved_zero
        }
    } else if odd_profile {
        bits.read(1)?; // reserved_zero
    }
    let width = bits.read(16)? + 1;
    let height = bits.read(16)? + 1;
    Some((u16::try_from(width).ok()?, u16::try_from(height).ok()?))
}

/// Reads big-endian bit fields.
struct BitReader<'a> {
    data: &'a [u8],
    position: usize,
}

impl BitReader<'_> {
    /// The next `count` (at most 32) bits; `None` past the end.
    fn read(&mut self, count: u32) -> Option<u32> {
        let mut value = 0u32;
        for _ in 0..count {
            let byte = *self.data.get(self.position / 8)?;
            let bit = (byte >> (7 - self.position % 8)) & 1;
            value = (value << 1) | u32::from(bit);
            self.position += 1;
        }
        Some(value)
    }
}

/// A 7- or 15-bit PictureID at `index` (VP8 and VP9 write it alike: M, the high bit,
/// says 15 bits), moving `index` past it.
fn read_picture_id(payload: &[u8], index: &mut usize) -> Option<u16> {
    let high = *payload.get(*index)?;
    if high & 0x80 != 0 {
        let low = *payload.get(*index + 1)?;
        *index += 2;
        Some(u16::from(high & 0x7F) << 8 | u16::from(low))
    } else {
        *index += 1;
        Some(u16::from(high))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_descriptor_without_extension_is_one_byte() {
        let descriptor = Vp8Descriptor::parse(&[0x10, 0xAB]).unwrap();
        assert!(descriptor.begins_frame());
        assert_eq!(descriptor.header_len, 1);
        assert_eq!(descriptor.picture_id, None);
        let continuation = Vp8Descriptor::parse(&[0x00, 0xAB]).unwrap();
        assert!(!continuation.begins_frame());
        let other_partition = Vp8Descriptor::parse(&[0x11, 0xAB]).unwrap();
        assert!(!other_partition.begins_frame(), "S on partition 1 is not a frame's start");
    }

    #[test]
    fn vp8_descriptor_with_a_7_bit_picture_id() {
        // X S, I, PictureID 0x55.
        let descriptor = Vp8Descriptor::parse(&[0x90, 0x80, 0x55, 0xAB]).unwrap();
        assert_eq!(descriptor.picture_id, Some(0x55));
        assert_eq!(descriptor.header_len, 3);
        assert!(descriptor.begins_frame());
    }

    #[test]
    fn vp8_descriptor_with_a_15_bit_picture_id_and_every_extension() {
        // X N S PID 0; I L T K; M + 0x1234; TL0PICIDX 9; TID 2, Y, KEYIDX 5.
        let payload = [0xB0, 0xF0, 0x80 | 0x12, 0x34, 0x09, 0b1010_0101, 0xAB];
        let descriptor = Vp8Descriptor::parse(&payload).unwrap();
        assert_eq!(
            descriptor,
            Vp8Descriptor {
                non_reference: true,
                start_of_partition: true,
                partition_index: 0,
                picture_id: Some(0x1234),
                tl0_pic_idx: Some(9),
                temporal_id: Some(2),
                layer_sync: true,
                key_index: Some(5),
                header_len: 6,
            }
        );
        // K alone still takes the TID/KEYIDX byte.
        let key_only = Vp8Descriptor::parse(&[0x90, 0x10, 0x03, 0xAB]).unwrap();
        assert_eq!((key_only.key_index, key_only.temporal_id, key_only.header_len), (Some(3), None, 3));
    }

    #[test]
    fn vp8_descriptors_cut_short_do_not_parse() {
        for payload in [&[][..], &[0x80], &[0x80, 0x80], &[0x80, 0x80, 0x80], &[0x80, 0x40], &[0x80, 0x20]] {
            assert_eq!(Vp8Descriptor::parse(payload), None, "{payload:?}");
        }
    }

    #[test]
    fn vp9_non_flexible_descriptor_with_layer_indices() {
        // I P L B E; PictureID 15-bit 0x0102; TID 1 U SID 2 D; TL0PICIDX 7.
        let payload = [0xEC, 0x81, 0x02, 0b0011_0101, 0x07, 0xAB];
        let descriptor = Vp9Descriptor::parse(&payload).unwrap();
        assert!(descriptor.predicted && descriptor.begins_frame && descriptor.ends_frame && !descriptor.flexible);
        assert_eq!(descriptor.picture_id, Some(0x0102));
        assert_eq!(
            descriptor.layers,
            Some(Vp9Layers {
                temporal: 1,
                switching_up: true,
                spatial: 2,
                inter_layer_dependency: true,
                tl0_pic_idx: Some(7)
            })
        );
        assert_eq!(descriptor.header_len, 5);
    }

    #[test]
    fn vp9_flexible_descriptor_with_reference_diffs() {
        // I P L F B; 7-bit PictureID 3; TID 0 SID 0 (no TL0PICIDX in flexible mode);
        // P_DIFF 1 with N, P_DIFF 4 without.
        let payload = [0xF8, 0x03, 0x00, 0x03, 0x08, 0xAB];
        let descriptor = Vp9Descriptor::parse(&payload).unwrap();
        assert!(descriptor.flexible);
        assert_eq!(descriptor.layers.map(|l| l.tl0_pic_idx), Some(None));
        assert_eq!((descriptor.reference_count, &descriptor.reference_diffs[..2]), (2, &[1, 4][..]));
        assert_eq!(descriptor.header_len, 5);
        // A fourth reference is not allowed.
        assert_eq!(Vp9Descriptor::parse(&[0x50, 0x03, 0x03, 0x03, 0x02, 0xAB]), None);
        // Flexible without layer indices.
        let plain = Vp9Descriptor::parse(&[0x5C, 0x02, 0xAB]).unwrap();
        assert_eq!((plain.layers, plain.reference_count, plain.header_len), (None, 1, 2));
    }

    #[test]
    fn vp9_scalability_structure_is_skipped_whole() {
        // I B V (keyframe, non-flexible, no L); PictureID 1; SS: N_S=2 (3 layers), Y, G;
        // three sizes; N_G=2: one picture with 1 reference, one with 2.
        let mut payload = vec![0x8A, 0x01, 0b0101_1000];
        for (width, height) in [(320u16, 180u16), (640, 360), (1280, 720)] {
            payload.extend_from_slice(&width.to_be_bytes());
            payload.extend_from_slice(&height.to_be_bytes());
        }
        payload.extend_from_slice(&[2, 0b0001_0100, 1, 0b0010_1000, 1, 2]);
        let header_len = payload.len();
        payload.extend_from_slice(&[0x82, 0x49]);
        let descriptor = Vp9Descriptor::parse(&payload).unwrap();
        assert_eq!(
            descriptor.scalability,
            Some(Vp9Scalability { spatial_layers: 3, first_resolution: Some((320, 180)), picture_group_len: 2 })
        );
        assert_eq!(descriptor.header_len, header_len);
        // Without sizes or groups: one byte.
        let small = Vp9Descriptor::parse(&[0x0A, 0x00, 0xAB]).unwrap();
        assert_eq!(small.header_len, 2);
        // A structure cut short does not parse.
        assert_eq!(Vp9Descriptor::parse(&payload[..header_len - 1]), None);
    }

    #[test]
    fn vp9_descriptor_with_layers_and_scalability() {
        // I L B V; PictureID 9; TID 0 SID 0; TL0PICIDX 1; SS with N_S=0, no Y or G.
        let descriptor = Vp9Descriptor::parse(&[0xAA, 0x09, 0x00, 0x01, 0x00, 0xAB]).unwrap();
        assert_eq!(descriptor.header_len, 5);
        assert_eq!(descriptor.scalability.map(|s| s.spatial_layers), Some(1));
    }

    fn vp8_keyframe(width: u16, height: u16) -> Vec<u8> {
        let mut frame = vec![0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A];
        frame.extend_from_slice(&width.to_le_bytes());
        frame.extend_from_slice(&height.to_le_bytes());
        frame.extend_from_slice(&[0; 4]);
        frame
    }

    #[test]
    fn vp8_keyframe_header_gives_the_size() {
        assert_eq!(vp8_keyframe_dimensions(&vp8_keyframe(320, 240)), Some((320, 240)));
        // Scaling bits are not part of the size.
        assert_eq!(vp8_keyframe_dimensions(&vp8_keyframe(0xC000 | 640, 0x4000 | 480)), Some((640, 480)));
        let mut delta = vp8_keyframe(320, 240);
        delta[0] |= 1;
        assert_eq!(vp8_keyframe_dimensions(&delta), None);
        assert_eq!(vp8_keyframe_dimensions(&[0x10, 0x02, 0x00, 0x9D]), None);
    }

    /// A VP9 profile 0 keyframe's uncompressed header up to its size.
    fn vp9_keyframe(width: u16, height: u16) -> Vec<u8> {
        // frame_marker 10, profile 0 (0, 0), show_existing 0, frame_type 0, show_frame 1,
        // error_resilient 0: 1000 0010, then the sync code, color space BT.601 (1) and
        // range 0, then width-1 and height-1.
        let mut bits: Vec<u8> = vec![1, 0, 0, 0, 0, 0, 1, 0];
        let mut push = |value: u32, count: u32| {
            for shift in (0..count).rev() {
                bits.push(((value >> shift) & 1) as u8);
            }
        };
        push(0x49_8342, 24);
        push(1, 3);
        push(0, 1);
        push(u32::from(width) - 1, 16);
        push(u32::from(height) - 1, 16);
        bits.chunks(8).map(|chunk| chunk.iter().enumerate().fold(0u8, |byte, (i, bit)| byte | bit << (7 - i))).collect()
    }

    #[test]
    fn vp9_keyframe_header_gives_the_size() {
        assert_eq!(vp9_keyframe_dimensions(&vp9_keyframe(320, 240)), Some((320, 240)));
        assert_eq!(vp9_keyframe_dimensions(&vp9_keyframe(1280, 720)), Some((1280, 720)));
        let mut inter = vp9_keyframe(320, 240);
        inter[0] |= 0x04; // frame_type 1
        assert_eq!(vp9_keyframe_dimensions(&inter), None);
        let mut bad_sync = vp9_keyframe(320, 240);
        bad_sync[1] ^= 0xFF;
        assert_eq!(vp9_keyframe_dimensions(&bad_sync), None);
        assert_eq!(vp9_keyframe_dimensions(&vp9_keyframe(320, 240)[..5]), None);
    }

    /// Packets of a VP8 stream: `(seq, timestamp, marker, payload)`.
    type Packet = (u64, u32, bool, Vec<u8>);

    /// A VP8 picture split into `parts` packets; a keyframe when `key`.
    fn vp8_picture(seq: u64, timestamp: u32, key: bool, parts: usize, tag: u8) -> Vec<Packet> {
        let frame = if key {
            let mut frame = vp8_keyframe(64, 48);
            frame.push(tag);
            frame
        } else {
            vec![0x01, tag, tag, tag, tag, tag]
        };
        let chunk = frame.len().div_ceil(parts);
        assert_eq!(frame.len().div_ceil(chunk), parts);
        frame
            .chunks(chunk)
            .enumerate()
            .map(|(index, data)| {
                let mut payload = vec![if index == 0 { 0x10 } else { 0x00 }];
                payload.extend_from_slice(data);
                (seq + index as u64, timestamp, index == parts - 1, payload)
            })
            .collect()
    }

    /// A stream of `count` pictures, a keyframe every `key_every`, 3 packets each.
    fn vp8_stream(count: usize, key_every: usize, first_timestamp: u32) -> Vec<Packet> {
        (0..count)
            .flat_map(|picture| {
                let timestamp = first_timestamp.wrapping_add(3000 * picture as u32);
                vp8_picture(3 * picture as u64 + 100, timestamp, picture % key_every == 0, 3, picture as u8)
            })
            .collect()
    }

    fn run(depacketizer: &mut Depacketizer, packets: &[Packet]) -> Vec<Frame> {
        let mut frames = Vec::new();
        for (seq, timestamp, marker, payload) in packets {
            depacketizer.push(*seq, *timestamp, *marker, payload);
            frames.extend(std::iter::from_fn(|| depacketizer.poll_frame()));
        }
        frames
    }

    fn finish(depacketizer: &mut Depacketizer) -> Vec<Frame> {
        depacketizer.flush();
        std::iter::from_fn(|| depacketizer.poll_frame()).collect()
    }

    #[test]
    fn shuffled_and_duplicated_packets_give_the_same_frames_in_order() {
        let packets = vp8_stream(40, 10, 1000);
        let mut ordered = Depacketizer::new(TrackCodec::Vp8, 90_000);
        let expected = run(&mut ordered, &packets);
        assert_eq!(expected.len(), 40);
        assert_eq!(expected.iter().filter(|f| f.keyframe).count(), 4);

        // Reverse every window of 7 and send some packets twice.
        let mut shuffled: Vec<Packet> = packets.chunks(7).flat_map(|w| w.iter().rev().cloned()).collect();
        for index in (0..shuffled.len()).step_by(5).rev() {
            let duplicate = shuffled[index].clone();
            shuffled.insert(index + 2, duplicate);
        }
        let mut depacketizer = Depacketizer::new(TrackCodec::Vp8, 90_000);
        let mut frames = run(&mut depacketizer, &shuffled);
        frames.extend(finish(&mut depacketizer));
        assert_eq!(frames, expected);
        assert_eq!(depacketizer.dropped_frames(), 0);
    }

    #[test]
    fn a_loss_drops_frames_until_the_next_keyframe_and_asks_for_one_once() {
        let packets = vp8_stream(30, 10, 0);
        let mut depacketizer = Depacketizer::new(TrackCodec::Vp8, 90_000);
        assert!(depacketizer.take_keyframe_request(), "asked for at the start");
        assert!(!depacketizer.take_keyframe_request());
        // Picture 4's middle packet never comes.
        let lost_seq = 100 + 3 * 4 + 1;
        let mut frames = Vec::new();
        let mut requests = 0;
        for (seq, timestamp, marker, payload) in packets.iter().filter(|p| p.0 != lost_seq) {
            depacketizer.push(*seq, *timestamp, *marker, payload);
            frames.extend(std::iter::from_fn(|| depacketizer.poll_frame()));
            requests += usize::from(depacketizer.take_keyframe_request());
        }
        frames.extend(finish(&mut depacketizer));
        assert_eq!(requests, 1);
        let tags: Vec<u8> = frames.iter().map(|f| *f.data.last().unwrap()).collect();
        let expected: Vec<u8> = (0..4).chain(10..30).collect();
        assert_eq!(tags, expected, "pictures 4 to 9 dropped, the keyframe at 10 resumes");
        assert_eq!(depacketizer.dropped_frames(), 6);
    }

    #[test]
    fn a_gap_is_waited_for_until_newer_frames_are_300_ms_ahead() {
        let packets = vp8_stream(20, 100, 0);
        let mut depacketizer = Depacketizer::new(TrackCodec::Vp8, 90_000);
        // Picture 1's last packet is late: pictures 2.. are complete meanwhile.
        let late = packets[5].clone();
        let mut frames = run(&mut depacketizer, &packets[..5]);
        assert_eq!(frames.len(), 1);
        // 8 newer pictures (267 ms) complete: still waiting.
        frames.extend(run(&mut depacketizer, &packets[6..30]));
        assert_eq!(frames.len(), 1);
        frames.extend(run(&mut depacketizer, std::slice::from_ref(&late)));
        assert_eq!(frames.len(), 10, "the late packet completes picture 1 and releases the rest");

        // The same without the late packet: once picture 10 (300 ms after picture 1) is
        // complete, picture 1 is given up.
        let mut depacketizer = Depacketizer::new(TrackCodec::Vp8, 90_000);
        let mut without: Vec<Packet> = packets.clone();
        without.remove(5);
        let frames = run(&mut depacketizer, &without[..31]);
        assert_eq!(frames.len(), 1, "picture 10 is not complete yet");
        let frames = run(&mut depacketizer, &without[31..32]);
        assert!(frames.is_empty(), "given up, but no keyframe follows");
        assert_eq!(depacketizer.dropped_frames(), 10);
        assert!(run(&mut depacketizer, &[late]).is_empty(), "too late now");
    }

    #[test]
    fn timestamps_wrapping_around_keep_the_order() {
        let packets = vp8_stream(10, 5, u32::MAX - 3 * 3000);
        let mut shuffled = packets.clone();
        shuffled.swap(10, 13);
        shuffled.swap(11, 12);
        let mut depacketizer = Depacketizer::new(TrackCodec::Vp8, 90_000);
        let frames = run(&mut depacketizer, &shuffled);
        let timestamps: Vec<u32> = frames.iter().map(|f| f.timestamp).collect();
        let expected: Vec<u32> = (0..10).map(|i| (u32::MAX - 9000).wrapping_add(3000 * i)).collect();
        assert_eq!(timestamps, expected);
    }

    #[test]
    fn bad_packets_never_panic_and_count_as_loss() {
        let mut depacketizer = Depacketizer::new(TrackCodec::Vp8, 90_000);
        let mut frames = run(&mut depacketizer, &vp8_stream(3, 3, 0));
        assert_eq!(frames.len(), 3);
        depacketizer.take_keyframe_request();
        // A descriptor cut short where picture 3 should begin.
        depacketizer.push(109, 9000, false, &[0x90, 0x80]);
        depacketizer.push(110, 9000, false, &[0x00, 0x01]);
        depacketizer.push(111, 9000, true, &[0x00, 0x01]);
        assert!(depacketizer.poll_frame().is_none());
        assert!(depacketizer.take_keyframe_request());
        // Nonsense of every size, in both codecs.
        let mut vp9 = Depacketizer::new(TrackCodec::Vp9, 90_000);
        let mut opus = Depacketizer::new(TrackCodec::Opus, 48_000);
        let huge = vec![0xFF; MAX_PAYLOAD + 1];
        for length in 0..64u64 {
            let payload: Vec<u8> = (0..length).map(|i| (i * 37 + length) as u8).collect();
            for codec in [&mut depacketizer, &mut vp9, &mut opus] {
                codec.push(200 + length, length as u32, length % 2 == 0, &payload);
                codec.push(300 + length, 0, true, &[0xFF; 3]);
            }
        }
        for codec in [&mut depacketizer, &mut vp9, &mut opus] {
            codec.push(u64::MAX, u32::MAX, true, &huge);
            frames.extend(finish(codec));
        }
        assert!(frames.iter().all(|f| !f.data.is_empty()));
    }

    #[test]
    fn vp9_records_spatial_layer_0_only() {
        // Two pictures, each SID 0 (two packets) then SID 1 (one packet), non-flexible.
        let descriptor = |begins: bool, ends: bool, predicted: bool, spatial: u8| {
            let flag = |on: bool, bit: u8| if on { bit } else { 0 };
            vec![0x20 | flag(begins, 0x08) | flag(ends, 0x04) | flag(predicted, 0x40), spatial << 1, 0]
        };
        let key = vp9_keyframe(64, 48);
        let mut packets: Vec<Packet> = Vec::new();
        let mut seq = 10;
        for (picture, predicted) in [(0u32, false), (1, true)] {
            let data: Vec<u8> = if predicted { vec![0x86, 1, 2, 3] } else { key.clone() };
            let (head, tail) = data.split_at(2);
            for (begins, ends, spatial, part) in
                [(true, false, 0, head), (false, true, 0, tail), (true, true, 1, &[0x99u8, 0x99][..])]
            {
                let mut payload = descriptor(begins, ends, predicted, spatial);
                payload.extend_from_slice(part);
                packets.push((seq, picture * 3000, spatial == 1, payload));
                seq += 1;
            }
        }
        packets.swap(0, 4);
        let mut depacketizer = Depacketizer::new(TrackCodec::Vp9, 90_000);
        let mut frames = run(&mut depacketizer, &packets);
        frames.extend(finish(&mut depacketizer));
        assert_eq!(frames.len(), 2);
        assert_eq!((frames[0].keyframe, frames[0].dimensions), (true, Some((64, 48))));
        assert_eq!(frames[0].data, key);
        assert_eq!((frames[1].keyframe, &frames[1].data[..]), (false, &[0x86, 1, 2, 3][..]));
        assert_eq!(depacketizer.dropped_frames(), 0);
    }

    #[test]
    fn pending_memory_is_bounded() {
        let mut depacketizer = Depacketizer::new(TrackCodec::Vp8, 90_000);
        // Beginnings of pictures that never complete, each 60 kB, no timestamps moving.
        for index in 0..1000u64 {
            let mut payload = vec![0x10];
            payload.resize(60_000, 0x01);
            depacketizer.push(2 * index, 0, false, &payload);
            assert!(depacketizer.pending_bytes <= MAX_PENDING_BYTES + 60_000);
            assert!(depacketizer.pending.len() <= MAX_PENDING_PACKETS + 1);
        }
    }
}
