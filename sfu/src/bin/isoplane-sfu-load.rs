//! Load tool for the SFU: publishers and subscribers with synthetic RTP (str0m peers on
//! 127.0.0.1), against the Isoplane SFU or Janus's VideoRoom, or straight to each other
//! (the baseline). It reports forwarded (received) packets per second, the server's
//! CPU-seconds per million forwarded packets, p50/p99 latency through the SFU, loss,
//! and the server's memory per participant. docs/benchmarks.md has the recorded runs;
//! bench/janus/ has Janus's configuration and the side-by-side script.
//!
//! ```sh
//! cargo build --release -p isoplane-sfu
//! ISOPLANE_SFU_SECRET=load-secret-0123456789 ISOPLANE_SFU_LISTEN_HTTP=127.0.0.1:7880 \
//!   ISOPLANE_SFU_LISTEN_UDP=127.0.0.1:7882 ISOPLANE_SFU_LISTEN_TCP=off ISOPLANE_SFU_WORKERS=2 \
//!   taskset -c 0 target/release/isoplane-sfu &
//! taskset -c 1 target/release/isoplane-sfu-load --target isoplane --server-pid $! \
//!   --secret load-secret-0123456789 --rooms 4 --publishers 2 --subscribers 10
//! ```

mod load;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use isoplane_auth::TokenKey;
use serde_json::json;

use crate::load::peer::MediaPlan;
use crate::load::run::{self, Load, Outcome, Target};
use crate::load::{isoplane, janus};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TargetKind {
    /// The Isoplane SFU's `/v1/sfu` WebSocket sessions.
    Isoplane,
    /// Janus's VideoRoom plugin over its HTTP API.
    Janus,
    /// No server: each publisher sends straight to each of its subscribers.
    Direct,
}

#[derive(Debug, Parser)]
#[command(about = "Load tool for the SFU (Isoplane or Janus VideoRoom), on 127.0.0.1 only")]
struct Options {
    #[arg(long, value_enum, default_value = "isoplane")]
    target: TargetKind,
    /// Isoplane SFU's HTTP address (loopback only).
    #[arg(long, default_value = "127.0.0.1:7880")]
    isoplane: SocketAddr,
    /// The SFU's shared secret, to sign room tokens (default: $ISOPLANE_SFU_SECRET).
    #[arg(long)]
    secret: Option<String>,
    /// Janus's HTTP API (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8088/janus")]
    janus: String,
    /// The server's process ID: CPU time and memory are read from /proc around the window.
    #[arg(long)]
    server_pid: Option<u32>,
    #[arg(long, default_value_t = 4)]
    rooms: u32,
    /// Publishers per room, each sending one audio and one video stream.
    #[arg(long, default_value_t = 2)]
    publishers: u32,
    /// Subscribers per room, each receiving every publisher of the room.
    #[arg(long, default_value_t = 10)]
    subscribers: u32,
    /// Video packets per second per publisher (audio is 50: one per 20 ms).
    #[arg(long, default_value_t = 100)]
    video_pps: u32,
    /// Video payload bytes per packet.
    #[arg(long, default_value_t = 1000)]
    video_bytes: usize,
    /// Audio payload bytes per packet.
    #[arg(long, default_value_t = 100)]
    audio_bytes: usize,
    /// A keyframe every this many video packets (besides the ones asked for).
    #[arg(long, default_value_t = 300)]
    keyframe_every: u32,
    /// Seconds of media before measuring.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Seconds measured.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Seconds of a direct (no SFU) baseline with the same rooms, run first; 0: none.
    #[arg(long, default_value_t = 0)]
    baseline_seconds: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn is_loopback_url(url: &str) -> bool {
    let rest = url.strip_prefix("http://").unwrap_or("");
    ["127.0.0.1:", "127.0.0.1/", "localhost:", "[::1]:"].iter().any(|prefix| rest.starts_with(prefix))
}

fn target(options: &Options) -> Result<Target, String> {
    match options.target {
        TargetKind::Isoplane => {
            if !options.isoplane.ip().is_loopback() {
                return Err("the load tool only talks to loopback: --isoplane must be 127.0.0.1:PORT".into());
            }
            let secret =
                options.secret.clone().or_else(|| std::env::var("ISOPLANE_SFU_SECRET").ok()).unwrap_or_default();
            if secret.len() < 16 {
                return Err("set --secret (or ISOPLANE_SFU_SECRET) to the SFU's secret, 16+ bytes".into());
            }
            let key = TokenKey::new(secret.as_bytes());
            Ok(Target::Isoplane(isoplane::Target { http: options.isoplane, key }))
        }
        TargetKind::Janus => {
            if !is_loopback_url(&options.janus) {
                return Err("the load tool only talks to loopback: --janus must be http://127.0.0.1:PORT/...".into());
            }
            Ok(Target::Janus(janus::Target::new(&options.janus)?))
        }
        TargetKind::Direct => Ok(Target::Direct),
    }
}

fn per_second(count: u64, outcome: &Outcome) -> f64 {
    count as f64 / outcome.window_seconds.max(f64::MIN_POSITIVE)
}

/// Everything reported for one run, as JSON (the text line is made from it).
fn report(name: &str, load: &Load, outcome: &Outcome, baseline: Option<&Outcome>) -> serde_json::Value {
    let summary = &outcome.summary;
    let received = summary.received;
    let cpu = outcome.server_cpu_seconds;
    let rss_per_participant = match (outcome.server_rss_idle_kib, outcome.server_rss_end_kib) {
        (Some(idle), Some(end)) if outcome.participants > 0 => {
            Some(end.saturating_sub(idle) as f64 / f64::from(outcome.participants))
        }
        _ => None,
    };
    let added = |ours: Option<f64>, base: Option<f64>| ours.zip(base).map(|(a, b)| a - b);
    let base = baseline.map(|b| b.summary);
    json!({
        "target": name,
        "rooms": load.rooms,
        "publishers_per_room": load.publishers,
        "subscribers_per_room": load.subscribers,
        "video_pps": (1.0 / load.plan.video_interval.as_secs_f64()).round(),
        "video_bytes": load.plan.video_bytes,
        "window_seconds": outcome.window_seconds,
        "sent_pps": per_second(summary.sent, outcome),
        "received_pps": per_second(received, outcome),
        "received_mbps": per_second(summary.bytes_received, outcome) * 8.0 / 1e6,
        "loss": summary.loss_fraction(),
        "latency_p50_us": summary.p50_us,
        "latency_p99_us": summary.p99_us,
        "latency_max_us": summary.max_us,
        "baseline_p50_us": base.and_then(|b| b.p50_us),
        "baseline_p99_us": base.and_then(|b| b.p99_us),
        "added_p50_us": added(summary.p50_us, base.and_then(|b| b.p50_us)),
        "added_p99_us": added(summary.p99_us, base.and_then(|b| b.p99_us)),
        "server_cpu_seconds": cpu,
        "server_cpu_share": cpu.map(|c| c / outcome.window_seconds),
        "server_cpu_seconds_per_million": cpu.filter(|_| received > 0).map(|c| c / (received as f64 / 1e6)),
        "forwarded_per_server_cpu_second": cpu.filter(|c| *c > 0.0).map(|c| received as f64 / c),
        "server_rss_idle_kib": outcome.server_rss_idle_kib,
        "server_rss_end_kib": outcome.server_rss_end_kib,
        "server_rss_per_participant_kib": rss_per_participant,
        "tool_cpu_share": outcome.tool_cpu_seconds / outcome.window_seconds,
        "failed_peers": outcome.failed_peers,
        "refused_destinations": summary.refused_destinations,
    })
}

fn text(report: &serde_json::Value) -> String {
    let number = |key: &str, scale: f64, digits: usize| match report[key].as_f64() {
        Some(value) => format!("{:.*}", digits, value * scale),
        None => "-".to_owned(),
    };
    format!(
        "target={} rooms={} publishers={} subscribers={} sent={}pkt/s forwarded(received)={}pkt/s ({} Mbit/s) \
         loss={}% latency p50={}ms p99={}ms max={}ms (baseline p50/p99 {}/{}ms; added {}/{}ms) \
         server cpu={}s ({} of a core) = {}s per 1M forwarded = {} forwarded per CPU-s \
         rss/participant={}KiB (idle {} KiB, end {} KiB) tool cpu={} of a core failed_peers={}",
        report["target"].as_str().unwrap_or("?"),
        report["rooms"],
        report["publishers_per_room"],
        report["subscribers_per_room"],
        number("sent_pps", 1.0, 0),
        number("received_pps", 1.0, 0),
        number("received_mbps", 1.0, 1),
        number("loss", 100.0, 3),
        number("latency_p50_us", 1e-3, 3),
        number("latency_p99_us", 1e-3, 3),
        number("latency_max_us", 1e-3, 1),
        number("baseline_p50_us", 1e-3, 3),
        number("baseline_p99_us", 1e-3, 3),
        number("added_p50_us", 1e-3, 3),
        number("added_p99_us", 1e-3, 3),
        number("server_cpu_seconds", 1.0, 2),
        number("server_cpu_share", 1.0, 2),
        number("server_cpu_seconds_per_million", 1.0, 2),
        number("forwarded_per_server_cpu_second", 1.0, 0),
        number("server_rss_per_participant_kib", 1.0, 1),
        report["server_rss_idle_kib"],
        report["server_rss_end_kib"],
        number("tool_cpu_share", 1.0, 2),
        report["failed_peers"],
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // RUST_LOG=str0m=debug shows the peers' ICE and DTLS when a target will not connect.
    if let Ok(filter) = std::env::var("RUST_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let options = Options::parse();
    match run_all(&options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("isoplane-sfu-load: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_all(options: &Options) -> Result<(), String> {
    str0m::crypto::from_feature_flags().install_process_default();
    let target = target(options)?;
    let plan = MediaPlan {
        audio_interval: Duration::from_millis(20),
        audio_bytes: options.audio_bytes,
        video_interval: Duration::from_secs_f64(1.0 / f64::from(options.video_pps.max(1))),
        video_bytes: options.video_bytes,
        keyframe_every: options.keyframe_every,
    };
    let load = Load {
        rooms: options.rooms,
        publishers: options.publishers,
        subscribers: options.subscribers,
        plan,
        warmup: Duration::from_secs(options.warmup),
        window: Duration::from_secs(options.seconds),
    };
    let baseline = if options.baseline_seconds > 0 && options.target != TargetKind::Direct {
        let baseline_load = Load { window: Duration::from_secs(options.baseline_seconds), ..load };
        let outcome = run::run(&Target::Direct, &baseline_load, None).await?;
        let report = report("direct", &baseline_load, &outcome, None);
        print(options, &report);
        Some(outcome)
    } else {
        None
    };
    let pid = options.server_pid.map(|pid| pid.to_string());
    let outcome = run::run(&target, &load, pid.as_deref()).await?;
    print(options, &report(target.name(), &load, &outcome, baseline.as_ref()));
    Ok(())
}

fn print(options: &Options, report: &serde_json::Value) {
    if options.json {
        println!("{report}");
    } else {
        println!("{}", text(report));
    }
}
