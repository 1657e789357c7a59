//! ChannelData (RFC 8656 §12.4): a 4-byte header (channel number, length) then data,
//! and how to cut frames out of a TCP byte stream, where ChannelData is padded to 4.

use super::HEADER_LEN;

/// Lowest and highest channel numbers a client may bind. RFC 8656 §12 narrowed the range
/// to 0x4000–0x4FFF, but RFC 5766 clients (coturn's among them) use up to 0x7FFF, and
/// ChannelData framing is the same for all, so we accept the older range.
pub const MIN_CHANNEL: u16 = 0x4000;
pub const MAX_CHANNEL: u16 = 0x7FFF;

/// A ChannelData frame borrowing its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelData<'a> {
    pub channel: u16,
    pub data: &'a [u8],
}

impl<'a> ChannelData<'a> {
    /// Parses a frame; trailing bytes past the length (padding) are allowed.
    pub fn parse(bytes: &'a [u8]) -> Option<ChannelData<'a>> {
        if bytes.len() < 4 {
            return None;
        }
        let channel = u16::from_be_bytes([bytes[0], bytes[1]]);
        if !(MIN_CHANNEL..=0x7FFF).contains(&channel) {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        let data = bytes.get(4..4 + len)?;
        Some(ChannelData { channel, data })
    }

    /// Encodes a frame; `pad` adds zero padding to a multiple of 4 (required over TCP).
    pub fn encode(channel: u16, data: &[u8], pad: bool, out: &mut Vec<u8>) {
        let len = data.len().min(usize::from(u16::MAX));
        out.reserve(4 + len + 3);
        out.extend_from_slice(&channel.to_be_bytes());
        out.extend_from_slice(&(len as u16).to_be_bytes());
        out.extend_from_slice(&data[..len]);
        if pad {
            let padding = (4 - len % 4) % 4;
            out.extend_from_slice(&[0u8; 3][..padding]);
        }
    }
}

/// What kind of frame starts a stream buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Stun,
    ChannelData,
}

/// Over a stream: the size of the frame at the start of `buf`, once its 4-byte header is
/// there. `Ok(None)`: need more bytes. `Err(())`: not STUN nor ChannelData (close).
#[allow(clippy::result_unit_err)]
pub fn frame_length(buf: &[u8]) -> Result<Option<(FrameKind, usize)>, ()> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    match buf[0] >> 6 {
        0b00 => Ok(Some((FrameKind::Stun, HEADER_LEN + len))),
        0b01 => Ok(Some((FrameKind::ChannelData, 4 + ((len + 3) & !3)))),
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_data_round_trips_with_padding() {
        let mut out = Vec::new();
        ChannelData::encode(0x4001, b"hello", true, &mut out);
        assert_eq!(out.len(), 12);
        assert_eq!(frame_length(&out), Ok(Some((FrameKind::ChannelData, 12))));
        assert_eq!(ChannelData::parse(&out), Some(ChannelData { channel: 0x4001, data: b"hello" }));
        assert_eq!(ChannelData::parse(&[0x40, 0x01, 0, 9, 1]), None);
        assert_eq!(ChannelData::parse(&[0x80, 0x01, 0, 0]), None);
        assert_eq!(frame_length(&[0xC0, 0, 0, 0]), Err(()));
        assert_eq!(frame_length(&[0x00, 1, 0]), Ok(None));
    }
}
