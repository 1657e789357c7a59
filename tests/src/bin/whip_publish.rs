//! A WHIP (RFC 9725) broadcaster for the tests, built on webrtc-rs: publishes the VP8
//! frames of an IVF file (made with ffmpeg, say) at their own rate, with silent Opus
//! beside, to a WHIP endpoint with an ingest key; ends the stream with DELETE.
//!
//! `isoplane-whip-publish URL KEY IVF SECONDS`
//!
//! Prints `published LOCATION` once the endpoint answered, `connected` when the media
//! path is up, and `stopped` at the end. A refused offer prints `refused STATUS BODY` and
//! exits with 3. Only loopback candidates are offered: tests send nothing off this machine.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use webrtc::api::APIBuilder;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::interceptor::registry::Registry;
use webrtc::media::Sample;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The frames of an IVF file (32-byte header, then a 12-byte header per frame).
fn ivf_frames(bytes: &[u8]) -> Result<(Vec<Bytes>, Duration), Error> {
    if bytes.len() < 32 || &bytes[0..4] != b"DKIF" {
        return Err("not an IVF file".into());
    }
    let rate = u32::from_le_bytes(bytes[16..20].try_into()?);
    let scale = u32::from_le_bytes(bytes[20..24].try_into()?);
    let interval = Duration::from_secs_f64(f64::from(scale.max(1)) / f64::from(rate.max(1)));
    let mut frames = Vec::new();
    let mut at = 32;
    while at + 12 <= bytes.len() {
        let size = u32::from_le_bytes(bytes[at..at + 4].try_into()?) as usize;
        let start = at + 12;
        let frame = bytes.get(start..start + size).ok_or("a frame runs past the file's end")?;
        frames.push(Bytes::copy_from_slice(frame));
        at = start + size;
    }
    Ok((frames, interval))
}

fn track(mime: &str, clock_rate: u32, channels: u16, kind: &str) -> Arc<TrackLocalStaticSample> {
    let codec = RTCRtpCodecCapability {
        mime_type: mime.to_owned(),
        clock_rate,
        channels,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    };
    Arc::new(TrackLocalStaticSample::new(codec, kind.to_owned(), "broadcast".to_owned()))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [url, key, ivf, seconds] = arguments.as_slice() else {
        eprintln!("usage: isoplane-whip-publish URL KEY IVF SECONDS");
        std::process::exit(2);
    };
    let seconds: f64 = seconds.parse()?;
    let (frames, interval) = ivf_frames(&std::fs::read(ivf)?)?;
    if frames.is_empty() {
        return Err("the IVF file has no frames".into());
    }

    let mut media_engine = MediaEngine::default();
    media_engine.register_default_codecs()?;
    let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
    let mut settings = SettingEngine::default();
    settings.set_network_types(vec![NetworkType::Udp4]);
    settings.set_include_loopback_candidate(true);
    settings.set_ip_filter(Box::new(|ip: IpAddr| ip.is_loopback()));
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    let api = APIBuilder::new()
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build();
    let pc = Arc::new(api.new_peer_connection(RTCConfiguration::default()).await?);
    let video = track(MIME_TYPE_VP8, 90_000, 0, "video");
    let audio = track(MIME_TYPE_OPUS, 48_000, 2, "audio");
    for sending in [Arc::clone(&video), Arc::clone(&audio)] {
        let init = RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Sendonly, send_encodings: vec![] };
        let transceiver = pc.add_transceiver_from_track(sending as _, Some(init)).await?;
        // The interceptors need the sender's RTCP read.
        let sender = transceiver.sender().await;
        tokio::spawn(async move { while sender.read_rtcp().await.is_ok() {} });
    }
    let (connected_tx, mut connected) = tokio::sync::watch::channel(false);
    pc.on_peer_connection_state_change(Box::new(move |state| {
        if state == RTCPeerConnectionState::Connected {
            let _ = connected_tx.send(true);
        }
        Box::pin(async {})
    }));

    // WHIP: the whole offer, candidates included, in one POST.
    let offer = pc.create_offer(None).await?;
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(offer).await?;
    tokio::time::timeout(Duration::from_secs(10), gathered.recv()).await?;
    let offer = pc.local_description().await.ok_or("no local description")?;
    let client = reqwest::Client::new();
    let response =
        client.post(url).bearer_auth(key).header("content-type", "application/sdp").body(offer.sdp).send().await?;
    let status = response.status();
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = response.text().await?;
    if status.as_u16() != 201 {
        println!("refused {} {body}", status.as_u16());
        std::process::exit(3);
    }
    let location = location.ok_or("201 without a Location")?;
    println!("published {location}");
    pc.set_remote_description(RTCSessionDescription::answer(body)?).await?;
    tokio::time::timeout(Duration::from_secs(15), connected.wait_for(|up| *up)).await??;
    println!("connected");

    // Frames at their rate (the file again from its start when it ends), 20 ms of Opus
    // silence (a CELT frame) beside.
    let silence = Bytes::from_static(&[0xf8, 0xff, 0xfe]);
    let end = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
    let mut video_tick = tokio::time::interval(interval);
    let mut audio_tick = tokio::time::interval(Duration::from_millis(20));
    let mut next = 0;
    while tokio::time::Instant::now() < end {
        tokio::select! {
            _ = video_tick.tick() => {
                let data = frames[next % frames.len()].clone();
                next += 1;
                video.write_sample(&Sample { data, duration: interval, ..Default::default() }).await?;
            }
            _ = audio_tick.tick() => {
                let sample = Sample { data: silence.clone(), duration: Duration::from_millis(20), ..Default::default() };
                audio.write_sample(&sample).await?;
            }
        }
    }
    let base = url.split("/v1/").next().unwrap_or(url);
    let deleted = client.delete(format!("{base}{location}")).bearer_auth(key).send().await?;
    pc.close().await?;
    println!("stopped {}", deleted.status().as_u16());
    Ok(())
}
