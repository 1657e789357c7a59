//! VP8 picture numbering across simulcast layer switches, for one forwarded track.
//!
//! Each simulcast layer is its own VP8 stream with its own PictureID (7 or 15 bits) and
//! TL0PICIDX counters (RFC 7741). A subscriber sees one stream whatever layer it is sent,
//! so when the layer changes, its decoder would see these counters jump (Chromium then
//! assumes lost pictures and may ask for a keyframe or freeze). The munger gives the
//! first picture of a new layer the number after the last one sent, and every later
//! picture of that layer the same offset, so the counters run on without a gap.
//!
//! The numbers are written into the descriptor of the payload the SFU copies into the
//! packet it sends ([`write_numbers`], crate::egress), and again into a retransmission.

use str0m::rtp::Vp8Descriptor;

/// PictureIDs are 15-bit numbers (7-bit ones are their low bits).
const PICTURE_ID_MASK: u16 = (1 << 15) - 1;
const SHORT_PICTURE_ID_MASK: u16 = 0x7f;

/// The PictureID and TL0PICIDX a packet was sent with: what the SFU's own sending writes
/// into the payload descriptor, and again into a retransmission of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Numbers {
    pub picture: Option<u16>,
    pub tl0: Option<u8>,
}

/// One subscriber's rewriting state for one VP8 track.
#[derive(Debug, Default, Clone)]
pub struct Vp8Munger {
    /// `out = in + offset` (mod 2^15) for the layer being sent.
    picture_offset: u16,
    /// `out = in + offset` (mod 2^8).
    tl0_offset: u8,
    /// The newest PictureID and TL0PICIDX sent.
    last_picture: Option<u16>,
    last_tl0: Option<u8>,
}

impl Vp8Munger {
    /// The numbers to send for one packet about to be sent, for [`write_numbers`].
    /// `starts_layer`: the packet is the first of a layer (the forwarder switched to it
    /// here).
    pub fn numbers_for(&mut self, payload: &[u8], descriptor: &Vp8Descriptor, starts_layer: bool) -> Vp8Numbers {
        let short = has_short_picture_id(payload);
        let (picture, tl0) = self.numbers(descriptor.picture_id(), descriptor.tl0_pic_idx(), short, starts_layer);
        Vp8Numbers { picture, tl0 }
    }

    /// The PictureID and TL0PICIDX to send for a packet that carries `picture` (a 7-bit
    /// one when `short`) and `tl0`.
    fn numbers(
        &mut self,
        picture: Option<u16>,
        tl0: Option<u8>,
        short: bool,
        starts_layer: bool,
    ) -> (Option<u16>, Option<u8>) {
        if starts_layer {
            // The first layer keeps its own numbers; a later one continues from the last.
            if let (Some(last), Some(picture)) = (self.last_picture, picture) {
                self.picture_offset = last.wrapping_add(1).wrapping_sub(picture) & PICTURE_ID_MASK;
            }
            if let (Some(last), Some(tl0)) = (self.last_tl0, tl0) {
                self.tl0_offset = last.wrapping_add(1).wrapping_sub(tl0);
            }
        }
        let picture = picture.map(|picture| picture.wrapping_add(self.picture_offset) & PICTURE_ID_MASK);
        let tl0 = tl0.map(|tl0| tl0.wrapping_add(self.tl0_offset));
        // 7-bit numbers wrap at 128: newer is judged in their space.
        let space = if short { SHORT_PICTURE_ID_MASK } else { PICTURE_ID_MASK };
        if let Some(out) = picture
            && self.last_picture.is_none_or(|last| picture_is_newer(out, last, space))
        {
            self.last_picture = Some(out);
        }
        if let Some(out) = tl0
            && self.last_tl0.is_none_or(|last| out.wrapping_sub(last) < 0x80)
        {
            self.last_tl0 = Some(out);
        }
        (picture, tl0)
    }
}

/// Writes the numbers into a VP8 payload descriptor (RFC 7741 section 4.2) in place,
/// in the fields' own widths: a 7-bit PictureID gets the low bits. A number the
/// descriptor has no field for is left out; a descriptor too short for its flags is left
/// as it is (false).
pub fn write_numbers(payload: &mut [u8], numbers: Vp8Numbers) -> bool {
    let Some(&first) = payload.first() else { return false };
    if first & 0x80 == 0 {
        return true;
    }
    let Some(&extension) = payload.get(1) else { return false };
    let mut at = 2;
    if extension & 0x80 != 0 {
        let Some(&high) = payload.get(at) else { return false };
        let long = high & 0x80 != 0;
        if long && payload.len() < at + 2 {
            return false;
        }
        if let Some(picture) = numbers.picture {
            if long {
                let picture = picture & PICTURE_ID_MASK;
                payload[at] = 0x80 | (picture >> 8) as u8;
                payload[at + 1] = picture as u8;
            } else {
                payload[at] = (picture & SHORT_PICTURE_ID_MASK) as u8;
            }
        }
        at += if long { 2 } else { 1 };
    }
    if extension & 0x40 != 0 {
        let Some(field) = payload.get_mut(at) else { return false };
        if let Some(tl0) = numbers.tl0 {
            *field = tl0;
        }
    }
    true
}

/// Whether `a` comes after `b` in serial number order, in the number space `mask`
/// (15 or 7 bits).
fn picture_is_newer(a: u16, b: u16, mask: u16) -> bool {
    let forward = a.wrapping_sub(b) & mask;
    forward != 0 && forward <= mask / 2
}

/// Whether a VP8 payload descriptor carries a 7-bit PictureID (X, then I, then M clear).
fn has_short_picture_id(payload: &[u8]) -> bool {
    match payload {
        [first, extension, picture, ..] => first & 0x80 != 0 && extension & 0x80 != 0 && picture & 0x80 == 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VP8 payload descriptor with a 15-bit PictureID, TL0PICIDX and TID, then `S`
    /// and a keyframe-ish first payload byte.
    fn payload(picture: u16, tl0: u8, start: bool) -> Vec<u8> {
        let s = if start { 0x10 } else { 0x00 };
        vec![0x80 | s, 0xe0, 0x80 | (picture >> 8) as u8, picture as u8, tl0, 0x00, 0x9d, 0x01, 0x2a]
    }

    /// The numbers the munger sends for `payload`, as a decoder reads them once written.
    fn sent(munger: &mut Vp8Munger, payload: &[u8], starts_layer: bool) -> (u16, u8) {
        let numbers = munger.numbers_for(payload, &Vp8Descriptor::parse(payload).unwrap(), starts_layer);
        let mut written = payload.to_vec();
        assert!(write_numbers(&mut written, numbers));
        let read = Vp8Descriptor::parse(&written).unwrap();
        assert_eq!((read.picture_id(), read.tl0_pic_idx()), (numbers.picture, numbers.tl0));
        assert_eq!(written[5..], payload[5..], "nothing else changes");
        (numbers.picture.unwrap(), numbers.tl0.unwrap())
    }

    #[test]
    fn a_layer_switch_continues_the_picture_and_tl0_numbers() {
        let mut munger = Vp8Munger::default();
        // The low layer: pictures 100..=102, sent as they are.
        assert_eq!(sent(&mut munger, &payload(100, 7, true), true), (100, 7));
        assert_eq!(sent(&mut munger, &payload(100, 7, false), false), (100, 7), "a picture's second packet");
        assert_eq!(sent(&mut munger, &payload(101, 8, true), false), (101, 8));
        assert_eq!(sent(&mut munger, &payload(102, 9, true), false), (102, 9));
        // The high layer's keyframe is picture 20,000 with TL0PICIDX 250.
        assert_eq!(sent(&mut munger, &payload(20_000, 250, true), true), (103, 10));
        assert_eq!(sent(&mut munger, &payload(20_000, 250, false), false), (103, 10));
        assert_eq!(sent(&mut munger, &payload(20_001, 251, true), false), (104, 11));
        // A retransmission of the layer's first picture keeps its rewritten number.
        assert_eq!(sent(&mut munger, &payload(20_000, 250, false), false), (103, 10));
        // And back down: the low layer has moved on meanwhile.
        assert_eq!(sent(&mut munger, &payload(160, 60, true), true), (105, 12));
        assert_eq!(sent(&mut munger, &payload(161, 61, true), false), (106, 13));
    }

    #[test]
    fn numbers_wrap_around_without_a_gap() {
        let mut munger = Vp8Munger::default();
        assert_eq!(sent(&mut munger, &payload(0x7ffe, 255, true), true), (0x7ffe, 255));
        assert_eq!(sent(&mut munger, &payload(9, 3, true), true), (0x7fff, 0), "continues across the switch");
        assert_eq!(sent(&mut munger, &payload(10, 4, true), false), (0, 1), "15-bit and 8-bit wrap");
    }

    #[test]
    fn a_seven_bit_picture_id_wraps_at_128() {
        // X, S; I; a 7-bit PictureID.
        let short = |picture: u8| vec![0x90, 0x80, picture & 0x7f, 0x9d, 0x01, 0x2a];
        let mut munger = Vp8Munger::default();
        let mut send = |picture: u8, starts: bool| {
            let mut payload = short(picture);
            let numbers = munger.numbers_for(&payload, &Vp8Descriptor::parse(&payload).unwrap(), starts);
            assert!(write_numbers(&mut payload, numbers));
            payload[2]
        };
        // The first layer wraps on its own: 126, 127, 0, 1 go as they are.
        for (picture, starts) in [(126, true), (127, false), (0, false), (1, false)] {
            assert_eq!(send(picture, starts), picture);
        }
        assert_eq!(send(40, true), 2, "a new layer continues after the wrap, at 2");
        assert_eq!(send(41, false), 3);
    }

    /// Written in place, in either PictureID width; a descriptor too short for its flags
    /// is left alone.
    #[test]
    fn numbers_are_written_in_place() {
        let mut munger = Vp8Munger::default();
        let first = payload(100, 7, true);
        munger.numbers_for(&first, &Vp8Descriptor::parse(&first).unwrap(), true);
        let mut switched = payload(20_000, 250, true);
        let numbers = munger.numbers_for(&switched, &Vp8Descriptor::parse(&switched).unwrap(), true);
        assert_eq!(numbers, Vp8Numbers { picture: Some(101), tl0: Some(8) });
        assert!(write_numbers(&mut switched, numbers));
        let read = Vp8Descriptor::parse(&switched).unwrap();
        assert_eq!((read.picture_id(), read.tl0_pic_idx()), (Some(101), Some(8)));
        assert_eq!(&switched[5..], &payload(0, 0, true)[5..], "the rest is untouched");

        let mut short = vec![0x90, 0x80, 40, 0x9d, 0x01, 0x2a];
        assert!(write_numbers(&mut short, Vp8Numbers { picture: Some(130), tl0: Some(1) }));
        assert_eq!(short, [0x90, 0x80, 2, 0x9d, 0x01, 0x2a], "130 in 7 bits; no TL0PICIDX field to write");
        assert!(!write_numbers(&mut [0x80, 0xe0, 0x80][..], numbers), "too short for its 15-bit PictureID");
        assert!(!write_numbers(&mut [0x80, 0x40][..], numbers), "too short for its TL0PICIDX");
        let mut plain = vec![0x10, 0x9d];
        assert!(write_numbers(&mut plain, numbers), "no extension: nothing to write");
        assert_eq!(plain, [0x10, 0x9d]);
    }

    #[test]
    fn without_a_switch_nothing_is_rewritten() {
        let mut munger = Vp8Munger::default();
        for picture in 500..600 {
            assert_eq!(
                sent(&mut munger, &payload(picture, picture as u8, true), picture == 500),
                (picture, picture as u8)
            );
        }
    }
}
