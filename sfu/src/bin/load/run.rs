//! One measured run against one target: build the rooms, let media flow for the
//! warm-up, then measure the window and sample the server around it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::load::media::Clock;
use crate::load::peer::{MediaPlan, Peer, RemoteOffer};
use crate::load::stats::{Stats, Summary, Window};
use crate::load::{direct, isoplane, janus, server};

/// After the window, packets sent in it may still be on their way for this long.
const LATE_MARGIN: Duration = Duration::from_millis(500);

/// A number for this run (its start, in seconds since the Unix epoch, modulo 10⁶).
fn run_id() -> u64 {
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *START.get_or_init(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() % 1_000_000)
    })
}

/// What to run against.
#[derive(Debug, Clone)]
pub enum Target {
    Isoplane(isoplane::Target),
    Janus(janus::Target),
    Direct,
}

impl Target {
    pub fn name(&self) -> &'static str {
        match self {
            Target::Isoplane(_) => "isoplane",
            Target::Janus(_) => "janus",
            Target::Direct => "direct",
        }
    }
}

/// The shape of the load: every subscriber of a room receives every publisher of it.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub rooms: u32,
    pub publishers: u32,
    pub subscribers: u32,
    pub plan: MediaPlan,
    pub warmup: Duration,
    pub window: Duration,
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub summary: Summary,
    pub window_seconds: f64,
    /// Server CPU-seconds in the window, and RSS idle and at the end.
    pub server_cpu_seconds: Option<f64>,
    pub server_rss_idle_kib: Option<u64>,
    pub server_rss_end_kib: Option<u64>,
    /// This tool's own CPU-seconds in the window (is the tool the bottleneck?).
    pub tool_cpu_seconds: f64,
    pub participants: u32,
    /// Peers whose session failed before the end.
    pub failed_peers: u32,
}

/// Runs `load` against `target`; `server_pid` is sampled around the window.
pub async fn run(target: &Target, load: &Load, server_pid: Option<&str>) -> Result<Outcome, String> {
    let clock = Clock::new();
    let stats = Arc::new(Stats::default());
    let ticks = server::clock_ticks();
    let idle = server_pid.map(|pid| server::sample(pid, ticks)).transpose()?;
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    let mut janus_handles = Vec::new();
    let peer = |id: u32| Peer::new(id, clock, stats.clone(), load.plan);
    let spawn = |peer: Peer,
                 offers: mpsc::UnboundedReceiver<RemoteOffer>,
                 tasks: &mut Vec<tokio::task::JoinHandle<Option<String>>>| {
        tasks.push(tokio::spawn(peer.run(offers, stop.clone())));
    };
    let janus_control = match target {
        Target::Janus(janus) => Some(janus.attach().await?),
        _ => None,
    };
    for room in 0..load.rooms {
        // IDs unique across rooms: avatar IDs for Isoplane, feed IDs for Janus.
        let publisher_ids: Vec<u32> = (0..load.publishers).map(|i| room * 10_000 + i + 1).collect();
        let subscriber_ids: Vec<u32> = (0..load.subscribers).map(|i| room * 10_000 + 5_000 + i + 1).collect();
        match target {
            Target::Isoplane(sfu) => {
                let name = format!("load/room-{room}");
                for (ids, publish) in [(&publisher_ids, true), (&subscriber_ids, false)] {
                    for id in ids {
                        let mut peer = peer(*id).await?;
                        let session = isoplane::connect(sfu, &name, &mut peer, publish, stop.clone()).await?;
                        spawn(peer, session.offers, &mut tasks);
                    }
                }
            }
            Target::Janus(janus) => {
                // Rooms of earlier runs may still exist: numbers unique to this run.
                let janus_room = run_id() * 1_000 + u64::from(room);
                if let Some(control) = &janus_control {
                    janus.create_room(control, janus_room, load.publishers).await?;
                }
                for id in &publisher_ids {
                    let mut peer = peer(*id).await?;
                    janus_handles.push(janus.publish(janus_room, &mut peer).await?);
                    spawn(peer, mpsc::unbounded_channel().1, &mut tasks);
                }
                for id in &subscriber_ids {
                    let mut peer = peer(*id).await?;
                    janus_handles.push(janus.subscribe(janus_room, &publisher_ids, &mut peer).await?);
                    spawn(peer, mpsc::unbounded_channel().1, &mut tasks);
                }
            }
            Target::Direct => {
                // One pair per (publisher, subscriber): the same streams received.
                for publisher in &publisher_ids {
                    for subscriber in &subscriber_ids {
                        let mut from = peer(*publisher).await?;
                        let mut to = peer(*subscriber).await?;
                        direct::connect(&mut from, &mut to)?;
                        spawn(from, mpsc::unbounded_channel().1, &mut tasks);
                        spawn(to, mpsc::unbounded_channel().1, &mut tasks);
                    }
                }
            }
        }
    }
    tokio::time::sleep(load.warmup).await;

    let start = Instant::now();
    let window = Window { start_ns: clock.ns(start), end_ns: clock.ns(start + load.window) };
    stats.set_window(window);
    let before = server_pid.map(|pid| server::sample(pid, ticks)).transpose()?;
    let tool_before = server::sample("self", ticks)?;
    tokio::time::sleep_until(clock.at(window.end_ns).into()).await;
    let after = server_pid.map(|pid| server::sample(pid, ticks)).transpose()?;
    let tool_after = server::sample("self", ticks)?;
    let window_seconds = start.elapsed().as_secs_f64();
    tokio::time::sleep(LATE_MARGIN).await;
    let summary = stats.summary();

    stop.cancel();
    let mut failed_peers = 0;
    for task in tasks {
        if let Ok(Some(reason)) = task.await {
            failed_peers += 1;
            eprintln!("{}: a peer failed: {reason}", target.name());
        }
    }
    if let Target::Janus(janus) = target {
        for handle in &janus_handles {
            janus.destroy(handle).await;
        }
        if let Some(control) = &janus_control {
            for room in 0..load.rooms {
                janus.destroy_room(control, run_id() * 1_000 + u64::from(room)).await;
            }
            janus.destroy(control).await;
        }
    }
    let participants = match target {
        Target::Direct => 0,
        _ => load.rooms * (load.publishers + load.subscribers),
    };
    Ok(Outcome {
        summary,
        window_seconds,
        server_cpu_seconds: before.zip(after).map(|(b, a)| a.cpu_seconds - b.cpu_seconds),
        server_rss_idle_kib: idle.map(|s| s.rss_kib),
        server_rss_end_kib: after.map(|s| s.rss_kib),
        tool_cpu_seconds: tool_after.cpu_seconds - tool_before.cpu_seconds,
        participants,
        failed_peers,
    })
}
