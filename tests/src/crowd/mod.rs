//! Simulated people for the soak and fault tests: each walks a world of open zones
//! against a running signaling server, as a browser would, and the crowd counts what
//! happens.
//!
//! A person is one tokio task with one timer: it joins (the crowd arrives over
//! [`CrowdSettings::ramp_up`]), walks inside its zone and now and then to another one at
//! [`CrowdSettings::moves_per_second`], snaps back on a `correction`, and with churn
//! leaves after a random stay and comes back after a pause. A lost connection is tried
//! again with the browser's jittered exponential backoff ([`backoff`]); a kick, a ban or
//! another error the browser treats as final ends the person for good. Optionally people
//! send WebRTC `signal`s to the peers their media plan names, and open an SFU session
//! whenever their plan says SFU.
//!
//! Move → peer latency is measured as the load tool does: moves carry nothing extra;
//! each person remembers where it recently moved and when, and a receiver looking at a
//! presence frame finds the sender's position among those.
//!
//! ```no_run
//! # async fn example() {
//! use std::sync::Arc;
//! use isoplane_tests::crowd::{Crowd, CrowdSettings, CrowdWorld};
//! let world = CrowdWorld::new(20); // publish world.json as world "crowd" first
//! let settings = CrowdSettings::new("ws://127.0.0.1:8080/v1/ws", "crowd", world, 1000,
//!     Arc::new(|person| format!("token for user {person}")));
//! let crowd = Crowd::start(settings);
//! crowd.wait_all_connected(std::time::Duration::from_secs(60)).await.unwrap();
//! println!("{:?}", crowd.stats());
//! crowd.stop().await;
//! # }
//! ```

pub mod backoff;
pub mod latency;
mod person;
pub mod world;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use isoplane_signaling::protocol::AvatarId;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use latency::LatencySummary;
pub use world::{CrowdWorld, CrowdZone, Rect, world_json};

/// Makes the join token of person `index` (0-based). Every person should be a user of
/// its own: two people with one user replace each other.
pub type TokenMaker = Arc<dyn Fn(usize) -> String + Send + Sync>;

/// People leave and come back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Churn {
    /// Mean time a person stays (exponentially distributed) before it says `leave`.
    pub mean_stay: Duration,
    /// Mean time away before joining again (uniform in [½, 1½] of it).
    pub mean_pause: Duration,
}

/// What the crowd does.
#[derive(Clone)]
pub struct CrowdSettings {
    /// Signaling's WebSocket, `ws://127.0.0.1:PORT/v1/ws`.
    pub url: String,
    /// The world's name on the server.
    pub world: String,
    /// Its layout: people start in zone `index % zones` and walk between these.
    pub layout: CrowdWorld,
    pub people: usize,
    pub token: TokenMaker,
    /// Moves each person sends per second while connected (browsers send 15).
    pub moves_per_second: u32,
    /// Walking speed, tiles per second (below the world's [`world::MAX_SPEED`]).
    pub walk_speed: f64,
    /// Chance that a person's next destination is in another zone.
    pub wander: f64,
    /// First joins are spread evenly over this time.
    pub ramp_up: Duration,
    /// `None`: people stay until stopped.
    pub churn: Option<Churn>,
    /// Open an SFU session (and close it) as the media plan says.
    pub sfu_sessions: bool,
    /// Send a `signal` to one of the plan's peers every 1–3 s.
    pub signals: bool,
}

impl std::fmt::Debug for CrowdSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrowdSettings")
            .field("url", &self.url)
            .field("world", &self.world)
            .field("zones", &self.layout.zones.len())
            .field("people", &self.people)
            .field("moves_per_second", &self.moves_per_second)
            .field("walk_speed", &self.walk_speed)
            .field("wander", &self.wander)
            .field("ramp_up", &self.ramp_up)
            .field("churn", &self.churn)
            .field("sfu_sessions", &self.sfu_sessions)
            .field("signals", &self.signals)
            .finish_non_exhaustive()
    }
}

impl CrowdSettings {
    /// `people` staying people walking at 15 moves/s, arriving over 5 s, sending no
    /// signals and opening no SFU sessions.
    pub fn new(url: &str, world: &str, layout: CrowdWorld, people: usize, token: TokenMaker) -> CrowdSettings {
        CrowdSettings {
            url: url.into(),
            world: world.into(),
            layout,
            people,
            token,
            moves_per_second: 15,
            walk_speed: 2.5,
            wander: 0.15,
            ramp_up: Duration::from_secs(5),
            churn: None,
            sfu_sessions: false,
            signals: false,
        }
    }
}

/// A snapshot of what the crowd saw; every count is since [`Crowd::start`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CrowdStats {
    pub people: usize,
    /// Joined right now.
    pub connected: u64,
    /// Connections opened to join (first joins, rejoins after churn, reconnections).
    pub attempts: u64,
    /// `attempts` per second since the start: index `s` counts second `s`.
    pub attempts_per_second: Vec<u64>,
    /// Joins the server welcomed.
    pub joins: u64,
    /// Of those, the ones that resumed an earlier session.
    pub resumed: u64,
    /// Connections that failed or were refused before the welcome.
    pub join_failures: u64,
    /// Joined connections that closed without the person leaving.
    pub unexpected_closes: u64,
    /// Joins that followed an unexpected close or failed attempts after one.
    pub reconnects: u64,
    /// Leaves by churn.
    pub leaves: u64,
    /// People kicked or banned (they do not come back).
    pub moderated: u64,
    /// People who stopped for good on an error the browser treats as final.
    pub gave_up: u64,
    pub moves_sent: u64,
    /// Move → peer latency.
    pub latency: LatencySummary,
    pub corrections: u64,
    pub signals_sent: u64,
    pub signals_received: u64,
    pub sfu_joined: u64,
    /// The SFU answered the join with an error.
    pub sfu_refused: u64,
    /// The SFU could not be reached or did not answer.
    pub sfu_failed: u64,
    /// `error` messages by code: signaling's (`invalid_token`…), the SFU's as `sfu:CODE`,
    /// and `unreadable` for frames the client could not decode.
    pub errors: BTreeMap<String, u64>,
}

impl CrowdStats {
    /// The most connection attempts in one second, from second `from` on.
    pub fn peak_attempts_per_second(&self, from: usize) -> u64 {
        self.attempts_per_second.iter().skip(from).copied().max().unwrap_or(0)
    }

    /// How many errors with this code arrived.
    pub fn errors_with(&self, code: &str) -> u64 {
        self.errors.get(code).copied().unwrap_or(0)
    }
}

/// The counters people add to.
#[derive(Debug, Default)]
struct Counters {
    connected: AtomicI64,
    attempts: AtomicU64,
    joins: AtomicU64,
    resumed: AtomicU64,
    join_failures: AtomicU64,
    unexpected_closes: AtomicU64,
    reconnects: AtomicU64,
    leaves: AtomicU64,
    moderated: AtomicU64,
    gave_up: AtomicU64,
    moves_sent: AtomicU64,
    corrections: AtomicU64,
    signals_sent: AtomicU64,
    signals_received: AtomicU64,
    sfu_joined: AtomicU64,
    sfu_refused: AtomicU64,
    sfu_failed: AtomicU64,
}

fn add(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What every person shares.
#[derive(Debug)]
struct Shared {
    settings: CrowdSettingsInner,
    started: Instant,
    stop: CancellationToken,
    counters: Counters,
    attempts_per_second: Mutex<Vec<u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    latency: latency::Histogram,
    /// Where each person recently moved, by person index.
    moves: Vec<Mutex<person::SentMoves>>,
    /// Which person each avatar is, for the latency measure.
    avatars: Mutex<HashMap<AvatarId, usize>>,
}

/// The settings without the token maker's closure, so `Shared` prints.
struct CrowdSettingsInner(CrowdSettings);

impl std::fmt::Debug for CrowdSettingsInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A poisoned lock only means another person panicked; its data is still counts.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn count_attempt(&self) {
        add(&self.counters.attempts);
        let second = self.started.elapsed().as_secs() as usize;
        let mut histogram = lock(&self.attempts_per_second);
        if histogram.len() <= second {
            histogram.resize(second + 1, 0);
        }
        histogram[second] += 1;
    }

    fn count_error(&self, code: String) {
        *lock(&self.errors).entry(code).or_insert(0) += 1;
    }
}

/// A running crowd; [`Crowd::stop`] ends it (dropping it stops the people too, without
/// waiting for them).
#[derive(Debug)]
pub struct Crowd {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Crowd {
    /// Starts every person's task on the current tokio runtime.
    pub fn start(settings: CrowdSettings) -> Crowd {
        let people = settings.people;
        let shared = Arc::new(Shared {
            settings: CrowdSettingsInner(settings),
            started: Instant::now(),
            stop: CancellationToken::new(),
            counters: Counters::default(),
            attempts_per_second: Mutex::new(Vec::new()),
            errors: Mutex::new(BTreeMap::new()),
            latency: latency::Histogram::default(),
            moves: (0..people).map(|_| Mutex::new(person::SentMoves::default())).collect(),
            avatars: Mutex::new(HashMap::new()),
        });
        let tasks = (0..people).map(|index| tokio::spawn(person::run(index, shared.clone()))).collect();
        Crowd { shared, tasks }
    }

    pub fn stats(&self) -> CrowdStats {
        let c = &self.shared.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CrowdStats {
            people: self.shared.settings.0.people,
            connected: c.connected.load(Ordering::Relaxed).max(0) as u64,
            attempts: load(&c.attempts),
            attempts_per_second: lock(&self.shared.attempts_per_second).clone(),
            joins: load(&c.joins),
            resumed: load(&c.resumed),
            join_failures: load(&c.join_failures),
            unexpected_closes: load(&c.unexpected_closes),
            reconnects: load(&c.reconnects),
            leaves: load(&c.leaves),
            moderated: load(&c.moderated),
            gave_up: load(&c.gave_up),
            moves_sent: load(&c.moves_sent),
            latency: self.shared.latency.summary(),
            corrections: load(&c.corrections),
            signals_sent: load(&c.signals_sent),
            signals_received: load(&c.signals_received),
            sfu_joined: load(&c.sfu_joined),
            sfu_refused: load(&c.sfu_refused),
            sfu_failed: load(&c.sfu_failed),
            errors: lock(&self.shared.errors).clone(),
        }
    }

    /// Forgets the latencies measured so far (to measure a phase of its own).
    pub fn reset_latency(&self) {
        self.shared.latency.reset();
    }

    /// Waits until at least `people` are joined at once; the stats when they are, or
    /// when `timeout` passed first (as the error).
    pub async fn wait_connected(&self, people: u64, timeout: Duration) -> Result<CrowdStats, Box<CrowdStats>> {
        self.wait_for(timeout, |stats| stats.connected >= people).await
    }

    /// Waits until every person is joined at once (meaningful without churn).
    pub async fn wait_all_connected(&self, timeout: Duration) -> Result<CrowdStats, Box<CrowdStats>> {
        self.wait_connected(self.shared.settings.0.people as u64, timeout).await
    }

    /// Waits until `condition` holds for the stats, polling every 100 ms.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        condition: impl Fn(&CrowdStats) -> bool,
    ) -> Result<CrowdStats, Box<CrowdStats>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let stats = self.stats();
            if condition(&stats) {
                return Ok(stats);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Box::new(stats));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every person leaves (saying `leave`) and its task ends; the final stats.
    pub async fn stop(mut self) -> CrowdStats {
        self.shared.stop.cancel();
        for task in std::mem::take(&mut self.tasks) {
            // A person ends within its close timeouts; a panic in one shows here.
            if let Err(error) = task.await
                && error.is_panic()
            {
                std::panic::resume_unwind(error.into_panic());
            }
        }
        self.stats()
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}
