//! Bad input at scale: a real `isoplane-signaling` process on 127.0.0.1, twenty clients
//! walking in one open zone at 15 Hz, and an attacker that opens 5,000 WebSocket
//! connections from 100 loopback addresses: some never join, some send malformed JSON,
//! binary junk, oversized frames, unknown message types or forged tokens, some join and
//! spew garbage, and some join and then never read a byte.
//!
//! The well-behaved clients must keep being served at 15 Hz throughout: each gets the
//! presence tick 15 times a second, and the positions in it are fresh (a move is in the
//! next tick). Every bad connection must get a clear error and close, the stalled readers must be cut
//! off (not buffered for ever), the server's memory must stay bounded, and the server
//! must be healthy afterwards. The figures it prints are recorded in docs/operations.md
//! ("Bad input at scale").
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a failed expectation is a failed test

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use isoplane_signaling::auth::{JoinClaims, Role, TokenKey};
use isoplane_signaling::client::{Client, Event};
use isoplane_signaling::protocol::binary::{self, Frame, MoveIntent, Pose, PresenceEntry, encode_move_intent};
use isoplane_signaling::protocol::{AvatarId, AvatarState, ClientMessage, Point, ServerMessage};
use isoplane_signaling::server::unix_now;
use isoplane_world_format::Facing;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{WebSocketStream, client_async};
use tokio_util::sync::CancellationToken;

mod common;

use common::{SECRET, TEST_WORLD, http_get, tiles, token};

/// Clients walking in the lobby, each watching the others.
const WALKERS: usize = 20;
/// The attacker's connections, and how many it opens from each loopback address (under
/// the default `connections_per_ip` of 64, as a botnet would).
const ATTACKERS: usize = 5_000;
const PER_ADDRESS: usize = 50;
/// The walkers' rate (the server's tick rate too).
const WALK_HZ: f64 = 15.0;
/// The least rate at which each walker must get presence ticks, in every stretch of the
/// test (an idle server: 15.0).
const MIN_SERVED_HZ: f64 = 14.0;
/// How old a walker's position may be, at the 99th percentile over every pair of walkers,
/// when another walker is told it: a move waits at most one tick (67 ms) for the next
/// presence tick, so this leaves two more ticks for being late.
const MAX_P99_AGE: Duration = Duration::from_millis(200);
const WINDOW: Duration = Duration::from_secs(10);
/// How long the walkers are watched after the flood.
const AFTER: Duration = Duration::from_secs(5);

/// What each attacker connection does, in the order they are dealt out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Attack {
    /// Opens the WebSocket and sends nothing.
    NeverJoins,
    /// A first message that is not JSON.
    MalformedJson,
    /// A first message of random bytes, as a binary frame.
    BinaryJunk,
    /// A first message of a type the protocol does not have.
    UnknownType,
    /// A join whose token was signed with another secret.
    ForgedToken,
    /// A first message of 1 MiB.
    Oversized,
    /// Joins validly, then sends garbage at 50 messages a second (reading the replies).
    JoinsThenGarbage,
    /// Joins validly with a tiny receive buffer, then never reads.
    JoinsThenStalls,
}

/// Out of every 20 connections: how many of each kind (5,000 in all: 250 of each joined kind).
const DEAL: [(Attack, usize); 8] = [
    (Attack::NeverJoins, 4),
    (Attack::MalformedJson, 3),
    (Attack::BinaryJunk, 3),
    (Attack::UnknownType, 3),
    (Attack::ForgedToken, 2),
    (Attack::Oversized, 3),
    (Attack::JoinsThenGarbage, 1),
    (Attack::JoinsThenStalls, 1),
];

fn attack_of(index: usize) -> Attack {
    let mut slot = index % DEAL.iter().map(|(_, n)| n).sum::<usize>();
    for (attack, count) in DEAL {
        if slot < count {
            return attack;
        }
        slot -= count;
    }
    unreachable!()
}

/// What the server should answer each attack with before closing (`None`: it must stay open).
fn expected_error(attack: Attack) -> Option<&'static str> {
    match attack {
        Attack::NeverJoins => Some("join_timeout"),
        Attack::MalformedJson | Attack::BinaryJunk | Attack::UnknownType => Some("join_first"),
        Attack::ForgedToken => Some("invalid_token"),
        Attack::Oversized => Some("frame_too_large"),
        Attack::JoinsThenGarbage | Attack::JoinsThenStalls => None,
    }
}

#[test]
#[ignore = "a load test: ./test.sh runs it on a release build (cargo test --release … -- --ignored)"]
fn five_thousand_bad_connections_leave_walkers_served_at_15_hz() {
    // The attacker's runtime, and one of their own for the walkers: they stand for
    // people on other machines, whose clients do not wait on the attacker's tasks. The
    // attacker's threads run at a lower priority: on a machine of two cores they would
    // otherwise take the server's CPU, which an attacker elsewhere cannot; they still get
    // every cycle the server and the walkers leave, and the figures say how much.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(lower_this_threads_priority)
        .enable_all()
        .build()
        .unwrap();
    let walkers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("walkers")
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(flood(walkers.handle()));
}

async fn flood(walkers_runtime: &tokio::runtime::Handle) {
    let started = Instant::now();
    let server = ServerProcess::start();
    let rss = RssSampler::start(server.child.id());

    // Twenty walkers, each walking to and fro in the lobby and counting what it sees.
    let stop_walking = CancellationToken::new();
    let (url, stop) = (server.url(), stop_walking.clone());
    let walkers: Vec<Walker> = walkers_runtime
        .spawn(async move {
            let mut walkers = Vec::new();
            for i in 0..WALKERS {
                let user = format!("walker{i}");
                let client = Client::join(&url, &token(&user, "acme", unix_now() + 600), "test").await.unwrap();
                walkers.push(Walker::start(client, stop.clone()));
            }
            walkers
        })
        .await
        .unwrap();
    let ids: Vec<AvatarId> = walkers.iter().map(|w| w.avatar).collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_before = rss.latest();

    // The flood.
    let missed_before_flood = server.metric("isoplane_signaling_presence_ticks_missed_total").await;
    let pid = server.child.id();
    let cpu_before_flood = cpu_seconds(pid);
    let own_cpu_before_flood = cpu_seconds(std::process::id());
    let flood_start = Instant::now();
    let stop_attack = CancellationToken::new();
    let opened = Arc::new(Semaphore::new(0));
    let handshakes = Arc::new(Semaphore::new(256));
    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|i| {
            let (stop, opened, handshakes) = (stop_attack.clone(), opened.clone(), handshakes.clone());
            tokio::spawn(attack(server.address, i, stop, opened, handshakes))
        })
        .collect();
    let all_open = async {
        let _ = opened.acquire_many(ATTACKERS as u32).await.unwrap();
    };
    let ramp = tokio::time::timeout(Duration::from_secs(30), all_open).await.map(|()| flood_start.elapsed());
    let ramp = ramp.expect("the attacker could not open its 5,000 connections in 30 s");
    // Then the flood holds: the garbage goes on, the stalled stay stalled.
    let hold_start = Instant::now();
    let cpu_at_hold = cpu_seconds(pid);
    let own_cpu_at_hold = cpu_seconds(std::process::id());
    tokio::time::sleep(WINDOW).await;
    let window_end = Instant::now();
    let cpu_at_window_end = cpu_seconds(pid);
    let own_cpu_at_window_end = cpu_seconds(std::process::id());

    let open_now = server.metric("isoplane_signaling_connections").await;
    let flood_rss_end = rss.latest();
    stop_attack.cancel();
    let mut outcomes: Vec<(Attack, Seen)> = Vec::new();
    for attacker in attackers {
        outcomes.push(attacker.await.unwrap());
    }
    let flood_end = Instant::now();

    // After the flood: the walkers go on; a newcomer joins; the ops endpoints answer.
    tokio::time::sleep(AFTER).await;
    let after = Instant::now();
    let (health, _) = http_get(server.address, "/healthz", &[]).await;
    let (ready, _) = http_get(server.address, "/readyz", &[]).await;
    let mut newcomer = Client::join(&server.url(), &token("newcomer", "acme", unix_now() + 600), "test").await.unwrap();
    let newcomer_sees = newcomer_sees_walkers(&mut newcomer, &ids).await;
    let open_after = server.metric("isoplane_signaling_connections").await;
    let slow_disconnects = server.metric("isoplane_signaling_slow_disconnects_total").await;
    let malformed = server.metric("isoplane_signaling_malformed_total").await;
    let rate_limited = server.metric("isoplane_signaling_rate_limited_total").await;
    let missed_after = server.metric("isoplane_signaling_presence_ticks_missed_total").await;
    let rss_after = rss.latest();
    stop_walking.cancel();
    let mut logs = Vec::new();
    for walker in walkers {
        logs.push(walker.finish().await);
    }

    // The figures, for docs/operations.md.
    let stretches = [
        ("before the flood", before, flood_start),
        ("while the connections open", flood_start, hold_start),
        ("while the flood holds", hold_start, window_end),
        ("over the whole flood", flood_start, flood_end),
        ("after the flood", flood_end, after),
    ];
    let services: Vec<(&str, Service)> =
        stretches.iter().map(|(name, from, to)| (*name, Service::of(&logs, *from, *to))).collect();
    let peak = rss.peak();
    println!("walkers: {WALKERS} at {WALK_HZ} Hz; attacker: {ATTACKERS} connections");
    for (name, service) in &services {
        println!("{name}: {service}");
    }
    println!("5,000 connections open in {ramp:.1?}");
    println!(
        "server CPU: {:.0}% of a core while the connections open, {:.0}% while the flood holds",
        (cpu_at_hold - cpu_before_flood) / ramp.as_secs_f64() * 100.0,
        (cpu_at_window_end - cpu_at_hold) / WINDOW.as_secs_f64() * 100.0
    );
    println!(
        "attacker and walkers' CPU: {:.0}% of a core while the connections open, {:.0}% while the flood holds",
        (own_cpu_at_hold - own_cpu_before_flood) / ramp.as_secs_f64() * 100.0,
        (own_cpu_at_window_end - own_cpu_at_hold) / WINDOW.as_secs_f64() * 100.0
    );
    println!(
        "server RSS: {} MiB before, peak {} MiB, {} MiB at the flood's end, {} MiB after",
        rss_before / 1024,
        peak / 1024,
        flood_rss_end / 1024,
        rss_after / 1024
    );
    println!("connections open: {open_now} at the window's end, {open_after} after");
    println!("metrics: slow_disconnects {slow_disconnects}, malformed {malformed}, rate_limited {rate_limited}");
    println!(
        "presence ticks the server ran over an interval late and missed: {missed_before_flood} before the flood, \
         {} from its start to the test's end",
        missed_after - missed_before_flood
    );
    let mut tally: HashMap<(Attack, String), usize> = HashMap::new();
    for (attack, seen) in &outcomes {
        *tally.entry((*attack, seen.summary())).or_default() += 1;
    }
    let mut tally: Vec<_> = tally.into_iter().collect();
    tally.sort_by_key(|((a, s), _)| (format!("{a:?}"), s.clone()));
    for ((attack, summary), count) in &tally {
        println!("{attack:?}: {count} × {summary}");
    }
    println!("whole test: {:.1?}", started.elapsed());

    // The requirements.
    for (name, service) in &services {
        assert!(
            service.served_min >= MIN_SERVED_HZ,
            "{name}: a walker got presence ticks at only {:.1}/s (want ≥ {MIN_SERVED_HZ})",
            service.served_min
        );
        assert!(
            service.age_p99 <= MAX_P99_AGE,
            "{name}: walkers' positions reached the others {:?} old at the 99th percentile (want ≤ {MAX_P99_AGE:?})",
            service.age_p99
        );
        // Every position told is one a walker sent (a few at most are the server's
        // corrections of a step that came too fast after a late one).
        assert!(service.unmatched * 100 <= service.ages, "{name}: positions nobody sent: {service}");
    }
    for (attack, seen) in &outcomes {
        match expected_error(*attack) {
            Some(code) => assert!(
                seen.errors.first().map(String::as_str) == Some(code) && seen.ended != Ended::StillOpen,
                "{attack:?} should get `{code}` and a close, got {}",
                seen.summary()
            ),
            None if *attack == Attack::JoinsThenGarbage => assert!(
                seen.joined
                    && seen.ended == Ended::StillOpen
                    && seen.errors.iter().any(|e| e == "malformed_message")
                    && seen.errors.iter().any(|e| e == "malformed_frame"),
                "a joined client sending garbage gets errors and stays connected, got {}",
                seen.summary()
            ),
            // The stalled readers: joined; what they cost is bounded below.
            None => assert!(seen.joined, "a joined client that never reads: {}", seen.summary()),
        }
    }
    // Bounded: each connection costs the server a read buffer and a bounded queue. A
    // stalled reader that was buffered without bound would grow the server by its whole
    // backlog; 150 KiB a connection is several times what they cost.
    let budget = ATTACKERS as u64 * 150;
    assert!(
        peak.saturating_sub(rss_before) < budget,
        "the server grew by {} KiB for 5,000 connections",
        peak - rss_before
    );
    assert_eq!((health, ready), (200, 200), "the server is not healthy after the flood");
    assert_eq!(open_after, (WALKERS + 1) as f64, "connections left open after the flood");
    assert!(newcomer_sees, "a client joining after the flood does not see the walkers move");
}

/// How the walkers were served over one stretch of time.
struct Service {
    /// The least rate (a second) at which a walker got presence ticks naming other walkers.
    served_min: f64,
    /// The longest a walker waited between two such ticks.
    served_gap_max: Duration,
    /// The least rate at which a walker sent its steps, and the longest it went without
    /// sending one: a walker that could not send, because its own thread did not get the
    /// CPU, leaves the others nothing new to be told.
    steps_min: f64,
    steps_gap_max: Duration,
    /// The least and the mean rate at which a walker was told another walker's position
    /// (a walker whose step reaches the server just after a tick shares the next tick
    /// with its following step, so this is under the tick rate by the walkers' own jitter).
    pair_min: f64,
    pair_mean: f64,
    /// How old the positions told were: from the walker sending it to another receiving it.
    age_p50: Duration,
    age_p99: Duration,
    age_max: Duration,
    /// Positions told, and those no walker sent.
    ages: usize,
    unmatched: usize,
}

impl Service {
    fn of(logs: &[WalkerLog], from: Instant, to: Instant) -> Service {
        let seconds = (to - from).as_secs_f64();
        let sent: HashMap<AvatarId, &[(Instant, Point)]> = logs.iter().map(|l| (l.avatar, &l.sent[..])).collect();
        let (mut served, mut pairs, mut ages, mut unmatched) = (Vec::new(), Vec::new(), Vec::new(), 0);
        let (mut served_gap_max, mut steps, mut steps_gap_max) = (Duration::ZERO, Vec::new(), Duration::ZERO);
        for log in logs {
            let step_times: Vec<Instant> =
                log.sent.iter().map(|(at, _)| *at).filter(|at| (from..to).contains(at)).collect();
            steps.push(step_times.len() as f64 / seconds);
            steps_gap_max = steps_gap_max.max(longest_gap(&step_times));
            let ticks = log.received.iter().filter(|(at, _)| (from..to).contains(at));
            let mut told: HashMap<AvatarId, usize> = HashMap::new();
            let mut ticks_with_walkers = 0;
            let mut served_at = Vec::new();
            for (at, entries) in ticks {
                let mut any = false;
                for (peer, position) in entries {
                    let Some(peer_sent) = sent.get(peer).filter(|_| *peer != log.avatar) else { continue };
                    any = true;
                    *told.entry(*peer).or_default() += 1;
                    match sent_when(peer_sent, *position, *at) {
                        Some(when) => ages.push(*at - when),
                        None => unmatched += 1,
                    }
                }
                ticks_with_walkers += usize::from(any);
                if any {
                    served_at.push(*at);
                }
            }
            served.push(ticks_with_walkers as f64 / seconds);
            served_gap_max = served_gap_max.max(longest_gap(&served_at));
            pairs.extend(
                logs.iter()
                    .filter(|l| l.avatar != log.avatar)
                    .map(|l| told.get(&l.avatar).copied().unwrap_or(0) as f64 / seconds),
            );
        }
        ages.sort();
        let percentile = |p: usize| ages.get((ages.len() * p / 100).min(ages.len().saturating_sub(1))).copied();
        Service {
            served_min: served.iter().copied().fold(f64::INFINITY, f64::min),
            served_gap_max,
            steps_min: steps.iter().copied().fold(f64::INFINITY, f64::min),
            steps_gap_max,
            pair_min: pairs.iter().copied().fold(f64::INFINITY, f64::min),
            pair_mean: pairs.iter().sum::<f64>() / pairs.len() as f64,
            age_p50: percentile(50).unwrap_or(Duration::MAX),
            age_p99: percentile(99).unwrap_or(Duration::MAX),
            age_max: ages.last().copied().unwrap_or(Duration::MAX),
            ages: ages.len() + unmatched,
            unmatched,
        }
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "presence ticks/s least {:.1} (longest gap {:.0?}); steps sent/s least {:.1} (longest gap {:.0?}); \
             a peer's position told/s least {:.1}, mean {:.1}; \
             its age p50 {:.0?}, p99 {:.0?}, max {:.0?} ({} told, {} not sent by anyone)",
            self.served_min,
            self.served_gap_max,
            self.steps_min,
            self.steps_gap_max,
            self.pair_min,
            self.pair_mean,
            self.age_p50,
            self.age_p99,
            self.age_max,
            self.ages,
            self.unmatched
        )
    }
}

/// The longest time between two consecutive instants of `times` (in time order).
fn longest_gap(times: &[Instant]) -> Duration {
    times.windows(2).map(|pair| pair[1] - pair[0]).max().unwrap_or(Duration::ZERO)
}

/// When a walker last sent `position` before `at` (within the 2.7 s its walk takes to come
/// back to the same place), from its log of sends in time order.
fn sent_when(sent: &[(Instant, Point)], position: Point, at: Instant) -> Option<Instant> {
    let before = sent.partition_point(|(when, _)| *when <= at);
    sent[..before]
        .iter()
        .rev()
        .take_while(|(when, _)| at - *when < Duration::from_millis(2_700))
        .find(|(_, sent)| *sent == position)
        .map(|(when, _)| *when)
}

/// Whether a client that just joined sees every walker move within two seconds.
async fn newcomer_sees_walkers(client: &mut Client, ids: &[AvatarId]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut missing: Vec<AvatarId> = ids.to_vec();
    while !missing.is_empty() && Instant::now() < deadline {
        if let Ok(Event::Presence { entries, .. }) = client.next_event_within(Duration::from_millis(200)).await {
            missing.retain(|id| !entries.iter().any(|e| e.avatar == *id));
        }
    }
    missing.is_empty()
}

/// A well-behaved client: moves at 15 Hz (3 tiles a second, under the world's 4) to and
/// fro between x 1.5 and 5.5 on row 3 of the lobby, and notes when it sent each position
/// and every presence tick it receives.
struct Walker {
    avatar: AvatarId,
    moving: tokio::task::JoinHandle<Vec<(Instant, Point)>>,
    reading: tokio::task::JoinHandle<Vec<PresenceTick>>,
}

/// A presence tick as a walker received it: when, and who was where.
type PresenceTick = (Instant, Vec<(AvatarId, Point)>);

/// What one walker did and saw.
struct WalkerLog {
    avatar: AvatarId,
    /// Each position it sent (as presence rounds it), with the time, in time order.
    sent: Vec<(Instant, Point)>,
    /// Each presence tick it received.
    received: Vec<PresenceTick>,
}

/// A position as presence ticks carry it: rounded down to the presence quantum.
fn as_presence_tells(position: Point) -> Point {
    let pose = Pose { facing: Facing::East, state: AvatarState::Walking };
    match binary::decode(&binary::encode_presence(1, &[PresenceEntry { avatar: 1, position, pose }])) {
        Ok(Frame::Presence { entries, .. }) => entries[0].position,
        other => unreachable!("a presence frame decodes: {other:?}"),
    }
}

impl Walker {
    fn start(client: Client, stop: CancellationToken) -> Walker {
        let avatar = client.avatar();
        let start = client.position();
        let (mut writer, mut reader) = client.split();
        let (corrected, mut corrections) = tokio::sync::watch::channel(start);
        let stop_moving = stop.clone();
        let moving = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / WALK_HZ));
            // A late tick is skipped, not made up for with a burst of steps.
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let (mut x, mut dx, y) = (f64::from(start.x) / 256.0, 0.2, 3.5);
            let mut seq = 0;
            let mut sent = Vec::new();
            loop {
                tokio::select! {
                    () = stop_moving.cancelled() => return sent,
                    _ = ticker.tick() => {}
                }
                if corrections.has_changed().unwrap_or(false) {
                    x = f64::from(corrections.borrow_and_update().x) / 256.0;
                }
                if !(1.5..=5.5).contains(&(x + dx)) {
                    dx = -dx;
                }
                x += dx;
                seq += 1;
                let pose =
                    Pose { facing: if dx > 0.0 { Facing::East } else { Facing::West }, state: AvatarState::Walking };
                let position = tiles(x, y);
                sent.push((Instant::now(), as_presence_tells(position)));
                writer.send_move(seq, position, pose.facing, pose.state).await.unwrap();
            }
        });
        let reading = tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let event = tokio::select! {
                    () = stop.cancelled() => return seen,
                    event = reader.next_event() => event,
                };
                match event {
                    Ok(Event::Presence { entries, .. }) => {
                        seen.push((Instant::now(), entries.iter().map(|e| (e.avatar, e.position)).collect()));
                    }
                    Ok(Event::Closed(code)) => panic!("the server closed a walker's connection ({code:?})"),
                    Ok(Event::Message(ServerMessage::Correction { position, .. })) => {
                        // As the browser does: carry on from where the server put it.
                        let _ = corrected.send(position);
                    }
                    Ok(Event::Message(_)) => {}
                    Err(error) => panic!("a walker's connection failed: {error}"),
                }
            }
        });
        Walker { avatar, moving, reading }
    }

    async fn finish(self) -> WalkerLog {
        WalkerLog { avatar: self.avatar, sent: self.moving.await.unwrap(), received: self.reading.await.unwrap() }
    }
}

/// How an attacker's connection ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Ended {
    /// A close frame (with its code), or the stream's end.
    Closed(Option<u16>),
    /// The socket failed (reset) after whatever the server sent.
    Failed,
    /// Still open when the attacker gave up waiting (or stopped).
    #[default]
    StillOpen,
}

/// What one attacker connection saw.
#[derive(Debug, Default)]
struct Seen {
    joined: bool,
    /// The codes of the error messages received, in order.
    errors: Vec<String>,
    ended: Ended,
    /// Why it never got as far as the server (a failed connect or handshake).
    refused: Option<String>,
}

impl Seen {
    /// One line for the tally: the joined state, the distinct errors in order, the end.
    fn summary(&self) -> String {
        if let Some(refused) = &self.refused {
            return format!("refused: {refused}");
        }
        let mut errors: Vec<&str> = Vec::new();
        for error in &self.errors {
            if !errors.contains(&error.as_str()) {
                errors.push(error);
            }
        }
        format!("joined {}, errors {errors:?}, {:?}", self.joined, self.ended)
    }
}

type Socket = WebSocketStream<TcpStream>;

/// One attacker connection, from its share of the 100 source addresses.
async fn attack(
    server: SocketAddr,
    index: usize,
    stop: CancellationToken,
    opened: Arc<Semaphore>,
    handshakes: Arc<Semaphore>,
) -> (Attack, Seen) {
    let kind = attack_of(index);
    let source = source_address(index);
    let permit = handshakes.acquire_owned().await.unwrap();
    let connected = connect(server, source, kind == Attack::JoinsThenStalls).await;
    drop(permit);
    opened.add_permits(1);
    let mut seen = Seen::default();
    let mut socket = match connected {
        Ok(socket) => socket,
        Err(error) => {
            seen.refused = Some(error);
            return (kind, seen);
        }
    };
    match kind {
        Attack::NeverJoins => {}
        Attack::MalformedJson => send(&mut socket, Message::Text(r#"{"type": "join", "token": "#.into())).await,
        Attack::BinaryJunk => send(&mut socket, Message::Binary(junk(index).into())).await,
        Attack::UnknownType => send(&mut socket, Message::Text(r#"{"type": "teleport", "to": [1, 2]}"#.into())).await,
        Attack::ForgedToken => {
            let claims = JoinClaims::new("mallory", "Mallory", "acme", Role::Admin, unix_now() + 600);
            let forged = TokenKey::new("not-the-secret-0123456789").sign(&claims);
            send(&mut socket, join_message(&forged)).await;
        }
        Attack::Oversized => {
            // Written while reading: the server answers after the frame's header.
            let (mut sink, mut stream) = socket.split();
            let writing = async { sink.send(Message::Text("x".repeat(1 << 20).into())).await };
            let reading = read_to_end(&mut stream, &mut seen, Duration::from_secs(20));
            let (_, ()) = tokio::join!(writing, reading);
            return (kind, seen);
        }
        Attack::JoinsThenGarbage | Attack::JoinsThenStalls => {
            send(&mut socket, join_message(&token(&format!("attacker{index}"), "acme", unix_now() + 600))).await;
            seen.joined = welcomed(&mut socket, &mut seen).await;
            if !seen.joined {
                return (kind, seen);
            }
            if kind == Attack::JoinsThenGarbage {
                let (mut sink, mut stream) = socket.split();
                let spewing = async {
                    let mut ticker = tokio::time::interval(Duration::from_millis(20));
                    for n in 0usize.. {
                        tokio::select! {
                            () = stop.cancelled() => return,
                            _ = ticker.tick() => {}
                        }
                        let message = match n % 4 {
                            0 => Message::Binary(junk(index + n).into()),
                            1 => Message::Text("{not json".into()),
                            2 => Message::Text(r#"{"type": "teleport"}"#.into()),
                            _ => Message::Binary(encode_move_intent(&bad_move())[..7].to_vec().into()),
                        };
                        if sink.send(message).await.is_err() {
                            return;
                        }
                    }
                };
                let reading = async {
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = read_to_end(&mut stream, &mut seen, Duration::from_secs(600)) => {}
                    }
                };
                tokio::join!(spewing, reading);
                return (kind, seen);
            }
            // Stalled: not a byte read until the flood is over; then whatever is left.
            stop.cancelled().await;
            read_to_end(&mut socket, &mut seen, Duration::from_secs(5)).await;
            return (kind, seen);
        }
    }
    // The unjoined: the server answers and closes (a join timeout takes 10 s).
    read_to_end(&mut socket, &mut seen, Duration::from_secs(20)).await;
    (kind, seen)
}

/// 127.0.1.1 to 127.0.1.100, `PER_ADDRESS` connections each.
fn source_address(index: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1 + (index / PER_ADDRESS) as u8))
}

async fn connect(server: SocketAddr, source: IpAddr, tiny_buffer: bool) -> Result<Socket, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    if tiny_buffer {
        socket.set_recv_buffer_size(4096).map_err(|e| e.to_string())?;
    }
    socket.bind(SocketAddr::new(source, 0)).map_err(|e| e.to_string())?;
    let stream = socket.connect(server).await.map_err(|e| e.to_string())?;
    let (socket, _) = client_async(format!("ws://{server}/v1/ws"), stream).await.map_err(|e| e.to_string())?;
    Ok(socket)
}

async fn send(socket: &mut Socket, message: Message) {
    // A failure shows up as the connection's end when it is read.
    let _ = socket.send(message).await;
}

fn join_message(token: &str) -> Message {
    let join = ClientMessage::Join { token: token.into(), world: "test".into(), spawn: None };
    Message::Text(serde_json::to_string(&join).unwrap().into())
}

/// Up to 200 bytes that are not a valid frame (the first byte names no frame kind).
fn junk(seed: usize) -> Vec<u8> {
    let len = 1 + seed.wrapping_mul(7919) % 200;
    (0..len).map(|i| if i == 0 { 0xEE } else { (seed.wrapping_mul(31).wrapping_add(i * 17) % 251) as u8 }).collect()
}

fn bad_move() -> MoveIntent {
    MoveIntent { seq: 1, position: tiles(3.5, 3.5), pose: Pose { facing: Facing::East, state: AvatarState::Idle } }
}

/// Reads the welcome and the snapshot; false if the server refused the join.
async fn welcomed(socket: &mut Socket, seen: &mut Seen) -> bool {
    for expected in ["welcome", "snapshot"] {
        let message = tokio::time::timeout(Duration::from_secs(20), socket.next()).await;
        let Ok(Some(Ok(Message::Text(text)))) = message else {
            seen.ended = Ended::Failed;
            return false;
        };
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        if value["type"] != expected {
            if value["type"] == "error" {
                seen.errors.push(value["code"].as_str().unwrap_or_default().to_owned());
            }
            return false;
        }
    }
    true
}

/// Reads until the server closes (or `limit` passes), noting its error codes.
async fn read_to_end<S>(stream: &mut S, seen: &mut Seen, limit: Duration)
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let message = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => {
                seen.ended = Ended::StillOpen;
                return;
            }
            Ok(message) => message,
        };
        match message {
            Some(Ok(Message::Text(text))) => {
                let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                if value["type"] == "error" {
                    seen.errors.push(value["code"].as_str().unwrap_or_default().to_owned());
                }
            }
            Some(Ok(Message::Close(frame))) => {
                seen.ended = Ended::Closed(frame.map(|f| u16::from(f.code)));
                return;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) => {
                seen.ended = Ended::Failed;
                return;
            }
            None => {
                seen.ended = Ended::Closed(None);
                return;
            }
        }
    }
}

/// `isoplane-signaling` as deployed: its own process, default limits, the test world.
struct ServerProcess {
    child: Child,
    address: SocketAddr,
    _dir: tempfile::TempDir,
}

impl ServerProcess {
    fn start() -> ServerProcess {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("test.world.json"), TEST_WORLD).unwrap();
        let config = dir.path().join("signaling.toml");
        let toml = format!(
            "listen = \"127.0.0.1:0\"\nworkspace = \"acme\"\ntoken_secret = \"{SECRET}\"\n\
             [worlds]\ndirectory = \"{}\"\n\
             [media]\nsfu_url = \"wss://sfu.test/v1/sfu\"\nsfu_secret = \"sfu-secret-0123456789\"\n\
             sfu_control_url = \"http://127.0.0.1:9\"\n",
            dir.path().display()
        );
        std::fs::write(&config, toml).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_isoplane-signaling"));
        command.arg("--config").arg(&config).env("ISOPLANE_LOG", "info").stdout(Stdio::piped());
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("ISOPLANE_SIGNALING_")) {
            command.env_remove(name);
        }
        let mut child = command.spawn().unwrap();
        // Its log gives the address; the rest of the log is read (and dropped) so the
        // server never blocks on a full pipe.
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let Some((_, rest)) = line.split_once("listening on http://") {
                    let address = rest.split_whitespace().next().unwrap_or_default().to_owned();
                    let _ = tx.send(address);
                }
            }
        });
        let address = rx.recv_timeout(Duration::from_secs(30)).expect("the server did not start");
        ServerProcess { child, address: address.parse().unwrap(), _dir: dir }
    }

    fn url(&self) -> String {
        format!("ws://{}/v1/ws", self.address)
    }

    /// One value from `/metrics`.
    async fn metric(&self, name: &str) -> f64 {
        let (_, text) = http_get(self.address, "/metrics", &[]).await;
        let line = text.lines().find(|line| line.split_whitespace().next() == Some(name));
        line.and_then(|line| line.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server's resident memory, sampled every 250 ms from /proc.
struct RssSampler {
    samples: Arc<std::sync::Mutex<Vec<u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
        let into = samples.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Some(kib) = rss_kib(pid) {
                    into.lock().unwrap().push(kib);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        RssSampler { samples, task }
    }

    fn latest(&self) -> u64 {
        self.samples.lock().unwrap().last().copied().unwrap_or(0)
    }

    fn peak(&self) -> u64 {
        self.samples.lock().unwrap().iter().copied().max().unwrap_or(0)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Lowers the calling thread to nice 10 (`renice` works on one thread by its ID).
fn lower_this_threads_priority() {
    let link = std::fs::read_link("/proc/thread-self").unwrap();
    let tid = link.file_name().unwrap().to_string_lossy().into_owned();
    let status = Command::new("renice").args(["-n", "10", "-p", &tid]).stdout(Stdio::null()).status();
    assert!(status.is_ok_and(|s| s.success()), "renice of thread {tid} failed");
}

/// The CPU time a process has used (user and system), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command (which may hold spaces) in parentheses; utime and
    // stime are the 14th and 15th fields, in clock ticks of 1/100 s on Linux.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// `VmRSS` of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
