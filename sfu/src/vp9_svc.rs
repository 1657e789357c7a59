//! VP9 spatial layers (SVC) for one forwarded track.
//!
//! A publisher sending VP9 with spatial layers (Chromium's `L3T3_KEY`: three sizes, each
//! a quarter of the next) sends them all in one RTP stream: every picture is a
//! superframe of up to three layer frames with one timestamp, and the marker bit ends
//! the superframe (RFC 9628). Each packet's payload descriptor says which spatial layer
//! (SID) it carries and whether it begins (B) or ends (E) its layer frame.
//!
//! A subscriber that wants less gets the layers up to its target: packets of higher
//! layers are dropped (the forwarder closes the gap in sequence numbers) and the last
//! packet of the highest layer kept gets the marker. Going down is safe at any picture
//! (lower layers never predict from higher ones); going up waits for a keyframe, where
//! every layer starts afresh (with `L3T3_KEY` a higher layer predicts from the lower
//! ones only on keyframes).

/// The fields of a VP9 payload descriptor the SFU reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp9Layers {
    /// Spatial layer ID.
    pub spatial: u8,
    /// The packet begins a layer frame (B).
    pub begins_frame: bool,
    /// The packet ends a layer frame (E).
    pub ends_frame: bool,
    /// Inter-picture predicted (P): not a keyframe.
    pub predicted: bool,
}

impl Vp9Layers {
    /// The descriptor's layer fields; `None` without layer indices (no SVC) or when
    /// the payload is too short.
    pub fn parse(payload: &[u8]) -> Option<Vp9Layers> {
        let first = *payload.first()?;
        let has_picture_id = first & 0x80 != 0;
        let has_layer_indices = first & 0x20 != 0;
        if !has_layer_indices {
            return None;
        }
        let mut index = 1;
        if has_picture_id {
            let picture_id = *payload.get(index)?;
            // M set: a 15-bit PictureID in two bytes.
            index += if picture_id & 0x80 != 0 { 2 } else { 1 };
        }
        // TID (3 bits), U, SID (3 bits), D.
        let layers = *payload.get(index)?;
        Some(Vp9Layers {
            spatial: (layers >> 1) & 0x07,
            begins_frame: first & 0x08 != 0,
            ends_frame: first & 0x04 != 0,
            predicted: first & 0x40 != 0,
        })
    }

    /// The first packet of a picture: its lowest layer's frame begins.
    pub fn begins_picture(&self) -> bool {
        self.begins_frame && self.spatial == 0
    }

    /// The first packet of a keyframe.
    pub fn begins_keyframe(&self) -> bool {
        self.begins_picture() && !self.predicted
    }
}

/// What to do with one packet of an SVC stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpatialVerdict {
    /// Forward it; `ends_picture`: it is the last packet of the highest layer kept, so
    /// it carries the marker.
    Forward { ends_picture: bool },
    /// A layer above the subscriber's: leave it out.
    Drop,
}

/// Which spatial layers go to one subscriber.
#[derive(Debug, Clone)]
pub struct SpatialFilter {
    /// The highest layer wanted (`u8::MAX`: all the publisher sends).
    target: u8,
    /// The highest layer being sent; changes at picture boundaries.
    current: u8,
    /// The highest layer sent before the last change, and the sequence number the change
    /// came at: a packet from before it (a retransmission, reordering) is judged by the
    /// layers of its time, so it never takes a number that was already sent.
    previous: u8,
    changed_at: u64,
}

impl Default for SpatialFilter {
    fn default() -> SpatialFilter {
        SpatialFilter { target: u8::MAX, current: u8::MAX, previous: u8::MAX, changed_at: 0 }
    }
}

impl SpatialFilter {
    /// The highest layer wanted.
    pub fn target(&self) -> u8 {
        self.target
    }

    /// Asks for layers up to `target`; returns whether a keyframe is needed for it (a
    /// layer above those being sent).
    pub fn set_target(&mut self, target: u8) -> bool {
        self.target = target;
        target > self.current
    }

    /// Whether a layer above those being sent is wanted (it starts at a keyframe).
    pub fn awaiting_keyframe(&self) -> bool {
        self.target != u8::MAX && self.target > self.current
    }

    /// Decides on one packet with incoming sequence number `seq_no`.
    pub fn decide(&mut self, layers: &Vp9Layers, seq_no: u64) -> SpatialVerdict {
        if seq_no < self.changed_at {
            let top = self.previous;
            if layers.spatial > top {
                return SpatialVerdict::Drop;
            }
            return SpatialVerdict::Forward { ends_picture: layers.ends_frame && layers.spatial == top };
        }
        if layers.begins_picture()
            && self.target != self.current
            && (self.target < self.current || layers.begins_keyframe())
        {
            self.previous = self.current;
            self.changed_at = seq_no;
            self.current = self.target;
        }
        if layers.spatial > self.current {
            return SpatialVerdict::Drop;
        }
        SpatialVerdict::Forward { ends_picture: layers.ends_frame && layers.spatial == self.current }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A non-flexible descriptor: I with a 15-bit PictureID, L, then TID/U/SID/D and
    /// TL0PICIDX.
    fn packet(spatial: u8, begins: bool, ends: bool, predicted: bool) -> Vec<u8> {
        let mut first = 0x80 | 0x20;
        if predicted {
            first |= 0x40;
        }
        if begins {
            first |= 0x08;
        }
        if ends {
            first |= 0x04;
        }
        vec![first, 0x81, 0x23, spatial << 1, 0x05, 0xaa]
    }

    fn layers(spatial: u8, begins: bool, ends: bool, predicted: bool) -> Vp9Layers {
        Vp9Layers::parse(&packet(spatial, begins, ends, predicted)).unwrap()
    }

    /// A filter with the next incoming sequence number.
    struct Stream {
        filter: SpatialFilter,
        seq: u64,
    }

    impl Stream {
        fn new() -> Stream {
            Stream { filter: SpatialFilter::default(), seq: 1000 }
        }

        fn decide(&mut self, layers: &Vp9Layers) -> SpatialVerdict {
            self.seq += 1;
            self.filter.decide(layers, self.seq)
        }
    }

    /// One picture of three layers, two packets each: the verdicts in order.
    fn picture(stream: &mut Stream, keyframe: bool) -> Vec<SpatialVerdict> {
        let mut verdicts = Vec::new();
        for spatial in 0..3 {
            for (begins, ends) in [(true, false), (false, true)] {
                let predicted = !keyframe;
                verdicts.push(stream.decide(&layers(spatial, begins, ends, predicted)));
            }
        }
        verdicts
    }

    use SpatialVerdict::{Drop, Forward};
    const KEEP: SpatialVerdict = Forward { ends_picture: false };
    const LAST: SpatialVerdict = Forward { ends_picture: true };

    #[test]
    fn the_descriptor_gives_layer_and_frame_bits() {
        let parsed = layers(2, true, false, true);
        assert_eq!(parsed, Vp9Layers { spatial: 2, begins_frame: true, ends_frame: false, predicted: true });
        assert!(!parsed.begins_picture());
        assert!(layers(0, true, false, false).begins_keyframe());
        assert!(!layers(0, true, false, true).begins_keyframe());
        // A 7-bit PictureID, then the layer byte.
        assert_eq!(Vp9Layers::parse(&[0xa8, 0x05, 0x02 << 1]).map(|l| l.spatial), Some(2));
        assert_eq!(Vp9Layers::parse(&[0x88, 0x05]), None, "no layer indices");
        assert_eq!(Vp9Layers::parse(&[0xa8, 0x85, 0x00]), None, "cut short");
        assert_eq!(Vp9Layers::parse(&[]), None);
    }

    #[test]
    fn all_layers_pass_untouched_until_a_lower_target() {
        let mut stream = Stream::new();
        assert_eq!(picture(&mut stream, true), vec![KEEP; 6], "the publisher's own marker stands");
        assert!(!stream.filter.set_target(0), "going down needs no keyframe");
        assert_eq!(picture(&mut stream, false), vec![KEEP, LAST, Drop, Drop, Drop, Drop]);
        assert!(stream.filter.set_target(1), "going up needs a keyframe");
        assert_eq!(picture(&mut stream, false), vec![KEEP, LAST, Drop, Drop, Drop, Drop], "up waits");
    }

    #[test]
    fn going_up_waits_for_a_keyframe_going_down_for_the_next_picture() {
        let mut stream = Stream::new();
        stream.filter.set_target(0);
        assert_eq!(picture(&mut stream, true), vec![KEEP, LAST, Drop, Drop, Drop, Drop]);
        assert!(stream.filter.set_target(1), "a keyframe is needed to go up");
        assert_eq!(picture(&mut stream, false), vec![KEEP, LAST, Drop, Drop, Drop, Drop]);
        assert_eq!(picture(&mut stream, true), vec![KEEP, KEEP, KEEP, LAST, Drop, Drop], "up at the keyframe");
        // Down in the middle of a picture: the picture ends as it began.
        let mut verdicts = vec![stream.decide(&layers(0, true, false, true))];
        stream.filter.set_target(0);
        verdicts.push(stream.decide(&layers(0, false, true, true)));
        verdicts.push(stream.decide(&layers(1, true, false, true)));
        verdicts.push(stream.decide(&layers(1, false, true, true)));
        assert_eq!(verdicts, vec![KEEP, KEEP, KEEP, LAST]);
        assert_eq!(picture(&mut stream, false), vec![KEEP, LAST, Drop, Drop, Drop, Drop], "then down");
    }

    #[test]
    fn a_late_packet_is_judged_by_the_layers_of_its_time() {
        let mut stream = Stream::new();
        stream.filter.set_target(0);
        picture(&mut stream, true);
        // Picture N at layer 0 only: its first layer-1 packet (seq 1009) is left out.
        let before_switch = stream.seq + 3;
        picture(&mut stream, false);
        stream.filter.set_target(1);
        assert_eq!(picture(&mut stream, true), vec![KEEP, KEEP, KEEP, LAST, Drop, Drop], "up at the keyframe");
        // A retransmission of picture N's layer-1 packet: still left out.
        assert_eq!(stream.filter.decide(&layers(1, true, false, true), before_switch), Drop);
        assert_eq!(stream.filter.decide(&layers(0, false, true, true), before_switch - 1), LAST);
    }
}
