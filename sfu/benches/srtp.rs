//! What the SFU's own SRTP costs per packet (sfu/src/srtp.rs): a forwarded video packet
//! (1,000 bytes of payload) written into an outgoing buffer and protected, for each
//! profile; and a subscriber's NACK protected and read back. For comparison, the whole
//! send path a forwarded packet takes through str0m today is in docs/benchmarks.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use isoplane_sfu::srtp::{Context, Profile};

const PROFILES: [Profile; 3] = [Profile::Aes128CmSha1_80, Profile::AeadAes128Gcm, Profile::AeadAes256Gcm];

fn context(profile: Profile) -> Context {
    let key: Vec<u8> = (0..profile.master_key_len() as u8).collect();
    let salt: Vec<u8> = (0..profile.master_salt_len() as u8).map(|b| b ^ 0x5a).collect();
    Context::new(profile, &key, &salt).unwrap_or_else(|e| panic!("{e}"))
}

/// A VP8 packet as the SFU forwards it: header, one-byte extensions (MID, TWCC sequence
/// number, audio-less video: 8 bytes), 1,000 bytes of payload.
fn video_packet() -> Vec<u8> {
    let mut packet = vec![0x90, 96, 0x12, 0x34, 0, 1, 0x5f, 0x90, 0xca, 0xfe, 0xba, 0xbe];
    packet.extend_from_slice(&[0xbe, 0xde, 0, 2, 0x10, b'1', 0x31, 0x00, 0x2a, 0, 0, 0]);
    packet.extend((0..1000).map(|i| i as u8));
    packet
}

fn protect_rtp(c: &mut Criterion) {
    let plain = video_packet();
    for profile in PROFILES {
        let context = context(profile);
        let mut buffer = Vec::with_capacity(plain.len() + profile.rtp_overhead());
        c.bench_function(&format!("srtp/protect_rtp_1000B/{profile:?}"), |b| {
            b.iter(|| {
                buffer.clear();
                buffer.extend_from_slice(black_box(&plain));
                context.protect_rtp(&mut buffer, 0).unwrap_or_else(|e| panic!("{e}"));
                black_box(&buffer);
            })
        });
    }
}

fn nack_round_trip(c: &mut Criterion) {
    // A receiver report and a generic NACK, as a subscriber's compound packet.
    let mut plain = vec![0x80, 201, 0, 1, 1, 2, 3, 4];
    plain.extend_from_slice(&[0x81, 205, 0, 3, 1, 2, 3, 4, 0xca, 0xfe, 0xba, 0xbe, 0x12, 0x34, 0, 5]);
    for profile in PROFILES {
        let (mut sender, mut reader) = (context(profile), context(profile));
        let mut buffer = Vec::with_capacity(plain.len() + profile.rtcp_overhead());
        c.bench_function(&format!("srtp/protect_and_read_nack/{profile:?}"), |b| {
            b.iter(|| {
                buffer.clear();
                buffer.extend_from_slice(black_box(&plain));
                sender.protect_rtcp(&mut buffer).unwrap_or_else(|e| panic!("{e}"));
                black_box(reader.unprotect_rtcp(&mut buffer).unwrap_or_else(|e| panic!("{e}")));
            })
        });
    }
}

criterion_group!(benches, protect_rtp, nack_round_trip);
criterion_main!(benches);
