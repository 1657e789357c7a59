//! UDP clients, served by shards: each has a core of its own, a socket of its own on the
//! listening port and the relay sockets of its allocations.
//!
//! - The listening sockets share the port (SO_REUSEPORT): the kernel hashes each client's
//!   address to one of them, so a client's every packet reaches the same shard, and the
//!   peers of its allocation reach that shard through the relay sockets it owns. Nothing
//!   on the packet path is shared between shards: no lock.
//! - What the shards must agree on (quotas, reserved ports) is in the [`Ledger`] and
//!   [`ReservedPorts`], touched only by Allocate and the end of an allocation.
//! - Threads on demand: every thread that wakes costs a context switch, so all shards
//!   start on one thread, which waits on their event queues at once (each shard's epoll
//!   descriptor is registered in the thread's own). When that thread is busy for more than
//!   `udp_spread_at_percent` of a second, it hands a shard to a new thread of its own, so
//!   under load the relay uses every core; a thread once started stays until shutdown.
//! - Each shard's socket is read with recvmmsg, up to [`BATCH`] datagrams a call, until a
//!   call returns fewer (the queue was empty: a datagram arriving later raises a new
//!   edge); datagrams to clients go out together with sendmmsg at the end of each turn. A
//!   full socket buffer drops a datagram, as UDP may.
//! - The HTTP server asks each shard for its counters, and shutdown asks each to close its
//!   allocations, through a channel and a waker.

use super::relay::{ReservedPorts, bind_relays};
use super::{LISTENER_BUFFER, MAX_DATAGRAM, bind_std_udp};
use crate::config::Config;
use crate::core::{AllocationId, ClientAddr, Family, FastMap, Ledger, Metrics, Output, Transport, TurnCore};
use isoplane_service::udp_batch::{ReceiveBatch, SendBatch};
use mio::net::UdpSocket;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// Datagrams read or sent in one system call.
const BATCH: usize = 32;
/// Datagrams read from a relay socket in one call: a peer's datagrams mostly come one at
/// a time, and each unused slot of a call costs a message header to prepare.
const RELAY_BATCH: usize = 4;
/// A thread wakes at least this often, to run its cores' timers.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// How often a thread serving several shards weighs handing one to a new thread.
const SPREAD_WINDOW: Duration = Duration::from_secs(1);
/// Receive errors in a row after which a socket is left until its next event.
const MAX_RECEIVE_ERRORS: usize = 8;
/// Reads of one socket in one turn, at most: a socket that stays full (a flood) waits for
/// the next turn, so the shard's other sockets, timers and commands are served meanwhile.
const READS_PER_TURN: usize = 8;
/// Events taken from a shard's queue at a time.
const EVENTS: usize = 256;
const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// Relay sockets are registered from this token on.
const FIRST_RELAY: usize = 2;

/// What the rest of the server asks of a shard.
#[derive(Debug)]
enum Command {
    Metrics(oneshot::Sender<Metrics>),
    /// Close every allocation and stop.
    Stop,
}

#[derive(Debug)]
struct ShardHandle {
    commands: mpsc::Sender<Command>,
    waker: Arc<Waker>,
}

impl ShardHandle {
    fn ask(&self, command: Command) {
        if self.commands.send(command).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

/// The running shards.
#[derive(Debug)]
pub(super) struct UdpShards {
    shards: Vec<ShardHandle>,
    threads: Arc<Threads>,
}

/// The threads serving shards: their handles, joined at shutdown, and how many run.
#[derive(Debug, Default)]
struct Threads {
    handles: Mutex<Vec<JoinHandle<()>>>,
    running: AtomicUsize,
}

impl Threads {
    fn handles(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.handles.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a thread serving `shards` (spreading them further when busy past `spread_at`).
    fn start(self: &Arc<Self>, shards: Vec<Shard>, spread_at: f64) -> io::Result<()> {
        let numbers: Vec<String> = shards.iter().map(|shard| shard.number.to_string()).collect();
        let threads = self.clone();
        self.running.fetch_add(1, Ordering::Relaxed);
        let started = std::thread::Builder::new().name(format!("turn-udp-{}", numbers.join("-"))).spawn(move || {
            Runner { shards, spread_at }.run(&threads);
            threads.running.fetch_sub(1, Ordering::Relaxed);
        });
        match started {
            Ok(handle) => {
                self.handles().push(handle);
                Ok(())
            }
            Err(e) => {
                self.running.fetch_sub(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

/// Binds `count` sockets on `addr` sharing its port (the first one picks it if `addr` has
/// port 0), non-blocking, with large buffers.
pub(super) fn bind_listeners(addr: SocketAddr, count: usize) -> io::Result<Vec<std::net::UdpSocket>> {
    let first = bind_std_udp(addr, LISTENER_BUFFER, true)?;
    let addr = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(bind_std_udp(addr, LISTENER_BUFFER, true)?);
    }
    Ok(sockets)
}

impl UdpShards {
    /// Starts a shard on each of `listeners`: all on one thread, or each on its own when
    /// `config.udp_spread_at_percent` is 0.
    pub(super) fn start(
        config: &Config,
        listeners: Vec<std::net::UdpSocket>,
        nonce_key: [u8; 32],
        ledger: &Arc<Ledger>,
        reserved: &Arc<ReservedPorts>,
    ) -> io::Result<UdpShards> {
        let unix_now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut handles = Vec::new();
        let mut shards = Vec::new();
        for (index, listener) in listeners.into_iter().enumerate() {
            // Shard numbers 1.. : the stream shell's core is number 0.
            let number = u8::try_from(index + 1).unwrap_or(u8::MAX);
            let core = TurnCore::sharded(config, nonce_key, Instant::now(), unix_now, ledger.clone(), number);
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let listener_family = Family::of(listener.local_addr()?.ip());
            let mut listener = UdpSocket::from_std(listener);
            poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
            let (commands, inbox) = mpsc::channel();
            handles.push(ShardHandle { commands, waker });
            shards.push(Shard {
                number,
                core,
                poll,
                events: Events::with_capacity(EVENTS),
                listener,
                listener_family,
                relays: FastMap::default(),
                of_allocation: FastMap::default(),
                next_token: FIRST_RELAY,
                config: config.clone(),
                reserved: reserved.clone(),
                inbox,
                to_clients: Outbox::default(),
                unfinished: Vec::new(),
                ready: Vec::new(),
            });
        }
        let threads = Arc::new(Threads::default());
        let spread_at = f64::from(config.udp_spread_at_percent) / 100.0;
        if spread_at == 0.0 {
            for shard in shards {
                threads.start(vec![shard], spread_at)?;
            }
        } else {
            threads.start(shards, spread_at)?;
        }
        Ok(UdpShards { shards: handles, threads })
    }

    /// The counters of every shard, added up.
    pub(super) async fn metrics(&self) -> Metrics {
        let mut total = Metrics::default();
        for shard in &self.shards {
            let (tx, rx) = oneshot::channel();
            shard.ask(Command::Metrics(tx));
            if let Ok(metrics) = rx.await {
                total.add(&metrics);
            }
        }
        total
    }

    /// How many threads serve the shards now.
    pub(super) fn threads(&self) -> usize {
        self.threads.running.load(Ordering::Relaxed)
    }

    /// Asks every shard to close its allocations and stop.
    pub(super) fn stop(&self) {
        for shard in &self.shards {
            shard.ask(Command::Stop);
        }
    }

    /// Waits for every shard's thread to end (threads started meanwhile included).
    pub(super) async fn join(&self) {
        let threads = self.threads.clone();
        let _ = tokio::task::spawn_blocking(move || {
            loop {
                let Some(handle) = threads.handles().pop() else { return };
                if handle.join().is_err() {
                    tracing::error!("a UDP shard's thread panicked");
                }
            }
        })
        .await;
    }
}

/// The system call buffers of one thread (they hold raw pointers: made where they are used).
#[derive(Debug)]
struct Buffers {
    received: ReceiveBatch,
    sent: SendBatch,
}

/// One thread's shards and its loop.
#[derive(Debug)]
struct Runner {
    shards: Vec<Shard>,
    /// The busy share of a second past which one of several shards moves to a new thread.
    spread_at: f64,
}

impl Runner {
    fn run(mut self, threads: &Arc<Threads>) {
        let mut buffers = Buffers { received: ReceiveBatch::new(BATCH, MAX_DATAGRAM), sent: SendBatch::new(BATCH) };
        // Several shards: this thread waits on their queues at once.
        let mut all = match Poll::new() {
            Ok(poll) => poll,
            Err(e) => return tracing::error!(error = %e, "UDP shards cannot wait for their sockets"),
        };
        for shard in &self.shards {
            let fd = shard.poll.as_raw_fd();
            if let Err(e) = all.registry().register(&mut SourceFd(&fd), Token(shard.number.into()), Interest::READABLE)
            {
                return tracing::error!(error = %e, "UDP shards cannot wait for their sockets");
            }
        }
        let mut ready = Events::with_capacity(EVENTS);
        let (mut window, mut busy) = (Instant::now(), Duration::ZERO);
        while !self.shards.is_empty() {
            let now = Instant::now();
            let sleep = self.shards.iter().map(|shard| shard.sleep(now)).min().unwrap_or(MAX_SLEEP);
            let woke;
            if let [shard] = &mut self.shards[..] {
                let waited = shard.wait(sleep);
                woke = Instant::now();
                if waited.is_err() || !shard.handle(&mut buffers) {
                    self.shards.clear();
                }
            } else {
                if let Err(e) = all.poll(&mut ready, Some(sleep))
                    && e.kind() != io::ErrorKind::Interrupted
                {
                    return tracing::error!(error = %e, "UDP shards cannot wait for their sockets");
                }
                woke = Instant::now();
                let mut stopped = Vec::new();
                for shard in &mut self.shards {
                    let signalled = ready.iter().any(|event| event.token() == Token(shard.number.into()));
                    if !signalled && shard.sleep(woke) > Duration::ZERO {
                        continue;
                    }
                    // A full batch of events may leave more queued, which raise no new edge.
                    loop {
                        if shard.wait(Duration::ZERO).is_err() || !shard.handle(&mut buffers) {
                            stopped.push(shard.number);
                            break;
                        }
                        if shard.events.iter().count() < EVENTS {
                            break;
                        }
                    }
                }
                self.shards.retain(|shard| !stopped.contains(&shard.number));
            }
            busy += woke.elapsed();
            let elapsed = window.elapsed();
            if elapsed >= SPREAD_WINDOW {
                if self.shards.len() > 1
                    && busy.as_secs_f64() >= self.spread_at * elapsed.as_secs_f64()
                    && let Some(shard) = self.shards.pop()
                {
                    let fd = shard.poll.as_raw_fd();
                    let _ = all.registry().deregister(&mut SourceFd(&fd));
                    tracing::info!(shard = shard.number, busy = ?busy, "UDP shard moves to a thread of its own");
                    if let Err(e) = threads.start(vec![shard], self.spread_at) {
                        tracing::error!(error = %e, "cannot start a thread for a UDP shard; it is lost");
                    }
                }
                (window, busy) = (Instant::now(), Duration::ZERO);
            }
        }
    }
}

/// One relay socket of an allocation.
#[derive(Debug)]
struct Relay {
    socket: UdpSocket,
    allocation: AllocationId,
    family: Family,
}

#[derive(Debug)]
struct Shard {
    number: u8,
    core: TurnCore,
    /// This shard's own event queue: its listener, relay sockets and waker.
    poll: Poll,
    events: Events,
    listener: UdpSocket,
    listener_family: Family,
    relays: FastMap<Token, Relay>,
    /// Each allocation's relay sockets: one, or one per family of a dual allocation.
    of_allocation: FastMap<AllocationId, Vec<Token>>,
    next_token: usize,
    config: Config,
    reserved: Arc<ReservedPorts>,
    inbox: mpsc::Receiver<Command>,
    to_clients: Outbox,
    /// Sockets whose last turn ended with datagrams still queued.
    unfinished: Vec<Token>,
    /// The sockets to read this turn (kept for its capacity).
    ready: Vec<Token>,
}

impl Drop for Shard {
    /// A shard ending any way (told to stop, its thread failing, a panic) closes its
    /// allocations, which gives their quota back to the ledger, and lets its reserved ports
    /// go; after a stop this finds nothing left to do.
    fn drop(&mut self) {
        self.core.shutdown();
        while let Some(output) = self.core.poll_output() {
            if let Output::DropReservation(token) = output {
                self.reserved.drop_port(&token);
            }
        }
    }
}

/// Where a socket's datagrams come from.
#[derive(Debug, Clone, Copy)]
enum Source {
    Clients,
    Peers(AllocationId),
}

impl Shard {
    /// How long until the core's next timer (at most [`MAX_SLEEP`]).
    fn sleep(&self, now: Instant) -> Duration {
        if !self.unfinished.is_empty() {
            return Duration::ZERO;
        }
        self.core.poll_timeout().map_or(MAX_SLEEP, |at| at.saturating_duration_since(now)).min(MAX_SLEEP)
    }

    /// Waits up to `timeout` for this shard's events.
    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                self.events.clear();
                Ok(())
            }
            Err(e) => {
                tracing::error!(shard = self.number, error = %e, "UDP shard cannot wait for its sockets; it stops");
                Err(e)
            }
            Ok(()) => Ok(()),
        }
    }

    /// Handles the events of the last wait and the timers due, then sends what is queued;
    /// false once told to stop (everything closed by then).
    fn handle(&mut self, buffers: &mut Buffers) -> bool {
        // Sockets left full last turn raise no new edge: they are read again first.
        // A wait names each socket once; only those left over need checking against it.
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.append(&mut self.unfinished);
        let left_over = ready.len();
        for token in self.events.iter().map(|event| event.token()) {
            if !ready[..left_over].contains(&token) {
                ready.push(token);
            }
        }
        for &token in &ready {
            match token {
                WAKER => {
                    if !self.obey(buffers) {
                        return false;
                    }
                }
                LISTENER => self.read(buffers, LISTENER, Source::Clients),
                token => {
                    if let Some(allocation) = self.relays.get(&token).map(|relay| relay.allocation) {
                        self.read(buffers, token, Source::Peers(allocation));
                    }
                }
            }
        }
        self.ready = ready;
        let now = Instant::now();
        if self.core.poll_timeout().is_some_and(|at| at <= now) {
            self.core.handle_timeout(now);
            self.carry_out(buffers);
        }
        self.to_clients.flush(&self.listener, &mut buffers.sent);
        true
    }

    /// Answers the commands waiting; false when told to stop (after closing everything).
    fn obey(&mut self, buffers: &mut Buffers) -> bool {
        while let Ok(command) = self.inbox.try_recv() {
            match command {
                Command::Metrics(reply) => {
                    let _ = reply.send(self.core.metrics());
                }
                Command::Stop => {
                    self.core.shutdown();
                    self.carry_out(buffers);
                    self.to_clients.flush(&self.listener, &mut buffers.sent);
                    return false;
                }
            }
        }
        true
    }

    /// Reads the socket under `token` until it is empty, feeding the core each datagram.
    fn read(&mut self, buffers: &mut Buffers, token: Token, source: Source) {
        let mut errors = 0;
        let limit = match source {
            Source::Clients => BATCH,
            Source::Peers(_) => RELAY_BATCH,
        };
        for _ in 0..READS_PER_TURN {
            let (socket, family) = match token {
                LISTENER => (&self.listener, self.listener_family),
                _ => match self.relays.get(&token) {
                    Some(relay) => (&relay.socket, relay.family),
                    None => return,
                },
            };
            let count = match buffers.received.read_at_most(socket, family == Family::V6, limit) {
                Ok(count) => count,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // ICMP errors (port unreachable) surface here on Linux, once each: they end
                // nothing, and the datagrams behind them are still read.
                Err(e) => {
                    tracing::trace!(error = %e, "UDP receive error");
                    errors += 1;
                    if errors > MAX_RECEIVE_ERRORS {
                        return;
                    }
                    continue;
                }
            };
            let now = Instant::now();
            for (data, from) in buffers.received.datagrams() {
                match source {
                    Source::Clients => {
                        let client = ClientAddr { transport: Transport::Udp, remote: from };
                        self.core.handle_client(now, client, data);
                    }
                    Source::Peers(allocation) => self.core.handle_peer(now, allocation, from, data),
                }
            }
            self.carry_out(buffers);
            if count < limit {
                return;
            }
        }
        self.unfinished.push(token);
    }

    /// Carries out what the core asked for.
    fn carry_out(&mut self, buffers: &mut Buffers) {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::ToClient { client, data } => {
                    if self.to_clients.push(client.remote, data) {
                        self.to_clients.flush(&self.listener, &mut buffers.sent);
                    }
                }
                Output::ToPeer { allocation, peer, data } => {
                    let family = Family::of(peer.ip());
                    let tokens = self.of_allocation.get(&allocation).into_iter().flatten();
                    let relay = tokens.filter_map(|token| self.relays.get(token)).find(|relay| relay.family == family);
                    if let Some(relay) = relay {
                        let _ = relay.socket.send_to(&data, peer);
                    }
                }
                Output::OpenRelay(request) => {
                    let mut bound = Vec::new();
                    for socket in bind_relays(&self.config, request, &self.reserved) {
                        let Ok(local) = socket.local_addr() else { continue };
                        let token = Token(self.next_token);
                        self.next_token += 1;
                        let mut socket = UdpSocket::from_std(socket);
                        if self.poll.registry().register(&mut socket, token, Interest::READABLE).is_err() {
                            continue;
                        }
                        bound.push(local);
                        let family = Family::of(local.ip());
                        self.relays.insert(token, Relay { socket, allocation: request.allocation, family });
                        self.of_allocation.entry(request.allocation).or_default().push(token);
                    }
                    self.core.complete_allocation(Instant::now(), request.allocation, &bound);
                }
                Output::CloseRelay(allocation) => {
                    for token in self.of_allocation.remove(&allocation).into_iter().flatten() {
                        self.close(token);
                    }
                }
                Output::CloseRelayFamily { allocation, family } => {
                    let Some(tokens) = self.of_allocation.get_mut(&allocation) else { continue };
                    let (closing, keeping) =
                        tokens.iter().partition(|token| self.relays.get(token).is_some_and(|r| r.family == family));
                    *tokens = keeping;
                    for token in closing {
                        self.close(token);
                    }
                }
                Output::DropReservation(token) => self.reserved.drop_port(&token),
                // RFC 6062 needs a TCP control connection: never a UDP client's.
                Output::ConnectPeer { .. } | Output::BindData { .. } | Output::ClosePeerConnection(_) => {}
            }
        }
    }

    fn close(&mut self, token: Token) {
        if let Some(mut relay) = self.relays.remove(&token) {
            let _ = self.poll.registry().deregister(&mut relay.socket);
        }
    }
}

/// Datagrams to clients waiting to go out together.
#[derive(Debug, Default)]
struct Outbox {
    datagrams: Vec<(SocketAddr, Vec<u8>)>,
}

impl Outbox {
    /// Queues one; true when a batch is full and should go now.
    fn push(&mut self, to: SocketAddr, data: Vec<u8>) -> bool {
        self.datagrams.push((to, data));
        self.datagrams.len() >= BATCH
    }

    /// Sends everything queued (a datagram the kernel refuses is dropped).
    fn flush(&mut self, socket: &UdpSocket, batch: &mut SendBatch) {
        batch.send(socket, &self.datagrams, |(to, data)| (*to, data));
        self.datagrams.clear();
    }
}
