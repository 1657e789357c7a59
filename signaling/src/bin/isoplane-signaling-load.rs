//! Load tool for the signaling server: N clients walking at 15 Hz in zones of Z people.
//!
//! It starts `isoplane-signaling` (the binary next to this one) as a separate process on
//! 127.0.0.1 with a generated world (one open zone per Z clients), joins every client,
//! lets them walk, and reports: presence frames and avatar updates delivered per
//! second, p50/p99 move-to-peer latency, server CPU-seconds per million updates
//! delivered, bytes per client per second, and server memory per connection.
//!
//! With `--nodes N` it starts N servers as a cluster over Redis (`--redis`), spreads the
//! zones over `--worlds` worlds, and connects clients to the nodes in turn, as a load
//! balancer would: each world is served by one node, the others forward its clients.
//! CPU and memory are then summed over every node.
//!
//! ```sh
//! cargo build --release -p isoplane-signaling
//! target/release/isoplane-signaling-load --clients 1000 --zone-size 50 --seconds 20
//! target/release/isoplane-signaling-load --clients 1000 --zone-size 50 --worlds 3 --nodes 3
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // a measuring tool: fail loudly

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use isoplane_signaling::auth::{JoinClaims, Role, TokenKey};
use isoplane_signaling::client::{Client, Event};
use isoplane_signaling::protocol::{AvatarState, Point};
use isoplane_signaling::server::unix_now;
use isoplane_world_format::{Facing, SUBTILE};

#[derive(Debug, Parser)]
struct Options {
    /// Number of clients.
    #[arg(long, default_value_t = 1000)]
    clients: u32,
    /// Clients per zone.
    #[arg(long, default_value_t = 50)]
    zone_size: u32,
    /// ZoneType of the zones: `open` (proximity talk, media re-planned as people move)
    /// or `silent` (presence only).
    #[arg(long, default_value = "open")]
    zone_type: String,
    /// Seconds of measurement after everyone has joined.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Moves per second per client.
    #[arg(long, default_value_t = 15)]
    rate: u32,
    /// The server binary (default: isoplane-signaling next to this tool).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Signaling nodes; more than one runs them as a cluster over Redis.
    #[arg(long, default_value_t = 1)]
    nodes: u32,
    /// Worlds the zones are spread over (a cluster shards by world).
    #[arg(long, default_value_t = 1)]
    worlds: u32,
    /// The cluster's Redis.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// Connect each world's clients to one node (a load balancer routing by world),
    /// instead of to every node in turn.
    #[arg(long)]
    by_world: bool,
}

const SECRET: &str = "load-test-secret-0123456789";
/// Each zone is a square of this many tiles; zones sit side by side.
const ZONE_SIDE: u32 = 16;

fn world_json(zones: u32, zone_type: &str) -> String {
    let columns = (f64::from(zones).sqrt().ceil() as u32).max(1);
    let rows = zones.div_ceil(columns);
    let zone_list: Vec<serde_json::Value> = (0..zones)
        .map(|z| {
            serde_json::json!({"id": format!("z{z}"), "name": format!("Zone {z}"), "type": zone_type,
                "area": [{"x": (z % columns) * ZONE_SIDE, "y": (z / columns) * ZONE_SIDE, "w": ZONE_SIDE, "h": ZONE_SIDE}]})
        })
        .collect();
    let spawns: Vec<serde_json::Value> = (0..zones)
        .map(|z| {
            serde_json::json!({"id": format!("s{z}"), "x": (z % columns) * ZONE_SIDE + ZONE_SIDE / 2,
                "y": (z / columns) * ZONE_SIDE + ZONE_SIDE / 2})
        })
        .collect();
    serde_json::json!({
        "format": "isoplane.world", "version": 1, "name": "load",
        "grid": {"orientation": "isometric", "width": columns * ZONE_SIDE, "height": rows * ZONE_SIDE,
                 "tile_width": 64, "tile_height": 32},
        "movement": {"max_speed": 6.0, "slack": 0.5},
        "spawns": spawns,
        "zones": zone_list,
    })
    .to_string()
}

/// The server process, killed when dropped.
struct Server {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(options: &Options, zones_per_world: u32, workspace: &str, node: u32) -> Server {
    let dir = tempfile::tempdir().unwrap();
    for world in 0..options.worlds {
        std::fs::write(
            dir.path().join(format!("load{world}.world.json")),
            world_json(zones_per_world, &options.zone_type),
        )
        .unwrap();
    }
    let mut config = format!(
        "listen = \"127.0.0.1:0\"\nworkspace = \"{workspace}\"\ntoken_secret = \"{SECRET}\"\n\
         [worlds]\ndirectory = \"{}\"\n[limits]\nconnections_per_ip = 1000000\nmax_connections = 1000000\n\
         messages_per_second = 100\nmessage_burst = 200\n",
        dir.path().display()
    );
    if options.nodes > 1 {
        config.push_str(&format!("[cluster]\nredis_url = \"{}\"\nnode_id = \"node{node}\"\n", options.redis));
    }
    let config_path = dir.path().join("signaling.toml");
    std::fs::write(&config_path, config).unwrap();
    let binary =
        options.server.clone().unwrap_or_else(|| std::env::current_exe().unwrap().with_file_name("isoplane-signaling"));
    let mut child = Command::new(&binary)
        .arg(&config_path)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let address = loop {
        let line = lines.next().expect("the server printed its address").unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining the server's log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, address, _dir: dir }
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0 // CLK_TCK is 100 on Linux
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap()
}

/// Recent moves of one avatar: (position sent, when), so a receiver can time delivery.
type SentLog = Mutex<VecDeque<(Point, Instant)>>;

#[derive(Default)]
struct Totals {
    frames: AtomicU64,
    updates: AtomicU64,
    bytes: AtomicU64,
    moves: AtomicU64,
    corrections: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

fn quantised(p: Point) -> (i32, i32) {
    (p.x / 4, p.y / 4)
}

#[tokio::main]
async fn main() {
    let options = Options::parse();
    let zones = options.clients.div_ceil(options.zone_size);
    let worlds = options.worlds.max(1);
    let zones_per_world = zones.div_ceil(worlds);
    let workspace = format!("load-{:x}", unix_now());
    let servers: Vec<Server> =
        (0..options.nodes.max(1)).map(|node| start_server(&options, zones_per_world, &workspace, node)).collect();
    let pids: Vec<u32> = servers.iter().map(|s| s.child.id()).collect();
    let cpu_total = || pids.iter().map(|&pid| cpu_seconds(pid)).sum::<f64>();
    let rss_total = || pids.iter().map(|&pid| rss_kib(pid)).sum::<u64>();
    let urls: Vec<String> = servers.iter().map(|s| format!("ws://{}/v1/ws", s.address)).collect();
    let key = TokenKey::new(SECRET);
    let rss_before = rss_total();

    println!("joining {} clients in {zones} {} zones of {}…", options.clients, options.zone_type, options.zone_size);
    let mut clients = Vec::new();
    for i in 0..options.clients {
        let claims =
            JoinClaims::new(&format!("user-{i}"), &format!("User {i}"), &workspace, Role::Member, unix_now() + 3600);
        // Zone z is zone z / worlds of world z % worlds; clients go to the nodes in turn.
        let zone = i / options.zone_size;
        let (world, spawn) = (format!("load{}", zone % worlds), format!("s{}", zone / worlds));
        let node = if options.by_world { (zone % worlds) as usize } else { i as usize };
        let url = &urls[node % urls.len()];
        let client = Client::join_at(url, &key.sign(&claims), &world, Some(&spawn)).await.unwrap();
        clients.push(client);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_joined = rss_total();

    // Moves sent, by client index (avatar IDs are not 1..N in a cluster).
    let sent: Arc<Vec<SentLog>> = Arc::new((0..options.clients).map(|_| Mutex::new(VecDeque::new())).collect());
    let avatars: Vec<u32> = clients.iter().map(Client::avatar).collect();
    let totals = Arc::new(Totals::default());
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let interval = Duration::from_secs(1) / options.rate;
    let mut tasks = Vec::new();
    for (i, client) in clients.into_iter().enumerate() {
        // Each client times the deliveries of the next client in its zone.
        let zone_start = i - i % options.zone_size as usize;
        let buddy_index =
            if i + 1 == avatars.len() || (i + 1) % options.zone_size as usize == 0 { zone_start } else { i + 1 };
        let buddy = avatars[buddy_index];
        let centre = client.position();
        let (mut writer, mut reader) = client.split();
        let (sent_w, totals_w, stop_w, measuring_w) = (sent.clone(), totals.clone(), stop.clone(), measuring.clone());
        tasks.push(tokio::spawn(async move {
            // Walk a circle of 3 tiles around the spawn point at about 2 tiles/s.
            let mut ticker = tokio::time::interval(interval);
            let mut step: u32 = 0;
            let phase = f64::from(i as u32) * 0.7;
            while !stop_w.load(Ordering::Relaxed) {
                ticker.tick().await;
                step += 1;
                let angle = phase + f64::from(step) * 0.045;
                let radius = 3.0 * f64::from(SUBTILE);
                let point =
                    Point { x: centre.x + (radius * angle.cos()) as i32, y: centre.y + (radius * angle.sin()) as i32 };
                if let Ok(mut log) = sent_w[i].lock() {
                    log.push_back((point, Instant::now()));
                    if log.len() > 32 {
                        log.pop_front();
                    }
                }
                if writer.send_move(step, point, Facing::East, AvatarState::Walking).await.is_err() {
                    break;
                }
                if measuring_w.load(Ordering::Relaxed) {
                    totals_w.moves.fetch_add(1, Ordering::Relaxed);
                }
            }
            writer.close().await;
        }));
        let (sent_r, totals_r, stop_r, measuring_r) = (sent.clone(), totals.clone(), stop.clone(), measuring.clone());
        tasks.push(tokio::spawn(async move {
            while !stop_r.load(Ordering::Relaxed) {
                let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(500), reader.next_event()).await else {
                    continue;
                };
                if !measuring_r.load(Ordering::Relaxed) {
                    continue;
                }
                match event {
                    Event::Presence { entries, .. } => {
                        totals_r.frames.fetch_add(1, Ordering::Relaxed);
                        totals_r.updates.fetch_add(entries.len() as u64, Ordering::Relaxed);
                        totals_r.bytes.fetch_add(7 + 9 * entries.len() as u64, Ordering::Relaxed);
                        let now = Instant::now();
                        for entry in entries.iter().filter(|e| e.avatar == buddy) {
                            let Ok(log) = sent_r[buddy_index].lock() else { continue };
                            let key = quantised(entry.position);
                            if let Some((_, at)) = log.iter().rev().find(|(p, _)| quantised(*p) == key) {
                                let micros = now.duration_since(*at).as_micros() as u64;
                                if let Ok(mut samples) = totals_r.latencies_us.lock() {
                                    samples.push(micros);
                                }
                            }
                        }
                    }
                    Event::Message(message) => {
                        let text = serde_json::to_string(&message).map_or(0, |t| t.len() as u64);
                        totals_r.bytes.fetch_add(text, Ordering::Relaxed);
                        if matches!(message, isoplane_signaling::protocol::ServerMessage::Correction { .. }) {
                            totals_r.corrections.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Event::Closed(_) => break,
                }
            }
        }));
    }

    // Warm up, then measure.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu_start = cpu_total();
    let started = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(options.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_total() - cpu_start;
    let rss_end = rss_total();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }

    let frames = totals.frames.load(Ordering::Relaxed) as f64;
    let updates = totals.updates.load(Ordering::Relaxed) as f64;
    let mut latencies = totals.latencies_us.lock().unwrap().clone();
    latencies.sort_unstable();
    let percentile = |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0);
    let clients = f64::from(options.clients);
    println!(
        "clients {} in {zones} zones of {} ({}) over {worlds} world(s) and {} node(s), {:.1} s measured",
        options.clients,
        options.zone_size,
        options.zone_type,
        servers.len(),
        elapsed
    );
    println!("moves sent/s              {:>12.0}", totals.moves.load(Ordering::Relaxed) as f64 / elapsed);
    println!("presence frames/s         {:>12.0}", frames / elapsed);
    println!(
        "avatar updates/s          {:>12.0}  (deliveries: one avatar's change to one recipient)",
        updates / elapsed
    );
    println!("server CPU                {:>12.2} s ({:.0}% of one core)", cpu, cpu / elapsed * 100.0);
    println!("updates per CPU-second    {:>12.0}", updates / cpu.max(1e-9));
    println!("CPU-s per million updates {:>12.3}", cpu / (updates / 1e6).max(1e-9));
    println!("latency move→peer p50     {:>9.2} ms", percentile(0.5) as f64 / 1000.0);
    println!("latency move→peer p99     {:>9.2} ms   ({} samples)", percentile(0.99) as f64 / 1000.0, latencies.len());
    println!("bytes/client/s received   {:>12.0}", totals.bytes.load(Ordering::Relaxed) as f64 / clients / elapsed);
    println!(
        "server RSS per connection {:>9.1} KiB (RSS {} → {} KiB joined, {} KiB at end)",
        (rss_joined.saturating_sub(rss_before)) as f64 / clients,
        rss_before,
        rss_joined,
        rss_end
    );
    println!("corrections               {:>12}", totals.corrections.load(Ordering::Relaxed));
}
