//! The embedded DNS server of user-defined networks (as Podman's aardvark-dns or Docker's embedded DNS):
//! one per network, on its gateway address, which containers' `/etc/resolv.conf` names. It answers the
//! names the engine says are its own (A records of TTL 0, so a change is seen at once) and forwards every
//! other query, unchanged, to the upstream resolvers the engine names. Who owns a name is the engine's
//! business, asked through [`Names`]; this module knows nothing of containers.
//!
//! [`DnsServers::serve`] binds UDP and TCP on an address and answers only clients inside the network's
//! subnet (it is not an open resolver for the LAN); [`DnsServers::stop`] closes them. The message rules are
//! in `message`, pure functions on bytes.
//!
//! For the daemon: the runtime handed to [`DnsServers::new`] needs both its IO and its time drivers (the
//! netlink runtime of [`super::Network::setup`] enables IO only); serve a network's gateway once its bridge
//! has that address (else the bind fails, EADDRNOTAVAIL); call [`DnsServers::stop`] from a thread that is
//! not one of that runtime's workers. Upstreams are reached from the host's namespace, so the host's own
//! resolver (127.0.0.53, say) is a valid upstream. Not done: IPv6 (AAAA of our names is an empty answer),
//! reverse (PTR) names of our own (the engine may forward them), EDNS (our answers stay within 512 bytes
//! over UDP, TC set beyond; over TCP all fit).

mod message;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{mpsc as sync_mpsc, Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::Subnet;
use message::{Action, Forward};

/// What the engine says about one queried name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The name is ours: these addresses (A records, TTL 0). Empty: the name is ours but has no address
    /// -> NXDOMAIN, authoritative.
    Ours(Vec<Ipv4Addr>),
    /// Not ours: forward the query as it came to these upstream servers, in order (empty -> SERVFAIL).
    Forward(Vec<SocketAddr>),
}

/// The engine's side: who owns a name.
pub trait Names: Send + Sync + 'static {
    /// `server`: the address the query came to (the network's gateway); `client`: its source address;
    /// `name`: the queried name, ASCII-lowercased, without the trailing dot (a byte other than a letter,
    /// digit, `-` or `_` written `\DDD`, so it matches no container's name).
    fn answer(&self, server: Ipv4Addr, client: Ipv4Addr, name: &str) -> Answer;
}

/// How long an upstream has to answer a forwarded query before the next is tried.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Forwards in flight per server, UDP and TCP together; a query beyond them gets SERVFAIL at once.
pub const MAX_FORWARDS: usize = 256;
/// TCP connections open per server; one beyond them is closed at once.
const MAX_TCP: usize = 32;
/// How long a TCP connection may sit idle (or take to send a query) before it is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// How long [`DnsServers::stop`] waits for a server's sockets to be closed.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// The set of running servers, one per address.
pub struct DnsServers {
    runtime: tokio::runtime::Handle,
    names: Arc<dyn Names>,
    running: Mutex<HashMap<Ipv4Addr, Running>>,
}

struct Running {
    bound: SocketAddrV4,
    cancel: CancellationToken,
    /// Disconnected once every task holding one of the server's sockets has ended.
    done: sync_mpsc::Receiver<()>,
}

/// What a server's tasks share.
struct Ctx {
    names: Arc<dyn Names>,
    server: Ipv4Addr,
    allowed: Subnet,
    forwards: Arc<Semaphore>,
    cancel: CancellationToken,
}

impl DnsServers {
    /// No server yet; each [`DnsServers::serve`] spawns its tasks onto `runtime` (which needs its IO and
    /// time drivers enabled).
    pub fn new(runtime: tokio::runtime::Handle, names: Arc<dyn Names>) -> DnsServers {
        DnsServers { runtime, names, running: Mutex::new(HashMap::new()) }
    }

    /// Serves UDP and TCP on `addr` (port 53 in production; port 0 picks one, the same for both) and
    /// returns the address bound. Only clients whose source is inside `allowed` are answered; others get
    /// nothing at all. Serving an address already served is Ok (its first `allowed` stays) and returns
    /// the address bound then.
    pub fn serve(&self, addr: SocketAddrV4, allowed: Subnet) -> io::Result<SocketAddrV4> {
        let mut running = lock(&self.running);
        if let Some(r) = running.get(addr.ip()) {
            return Ok(r.bound);
        }
        let (udp, tcp, bound) = bind(addr).inspect_err(|e| warn!(%addr, error = %e, "cannot bind the DNS server"))?;
        let (udp, tcp) = {
            let _entered = self.runtime.enter();
            (UdpSocket::from_std(udp)?, TcpListener::from_std(tcp)?)
        };
        let cancel = CancellationToken::new();
        let ctx = Arc::new(Ctx {
            names: Arc::clone(&self.names),
            server: *bound.ip(),
            allowed,
            forwards: Arc::new(Semaphore::new(MAX_FORWARDS)),
            cancel: cancel.clone(),
        });
        let (done_tx, done) = sync_mpsc::channel();
        let (udp_done, udp_ctx) = (done_tx.clone(), Arc::clone(&ctx));
        self.runtime.spawn(async move {
            udp_loop(udp, udp_ctx).await;
            drop(udp_done);
        });
        self.runtime.spawn(async move {
            tcp_loop(tcp, ctx, &done_tx).await;
            drop(done_tx);
        });
        running.insert(*bound.ip(), Running { bound, cancel, done });
        Ok(bound)
    }

    /// Stops the server on this address; its sockets are closed when this returns (it waits up to 2 s for
    /// its tasks, so call it from a thread that is not one of the runtime's). No-op if none.
    pub fn stop(&self, addr: Ipv4Addr) {
        let Some(r) = lock(&self.running).remove(&addr) else {
            return;
        };
        r.cancel.cancel();
        // Nothing is ever sent: the wait ends when the last task holding a socket drops its sender.
        if let Err(sync_mpsc::RecvTimeoutError::Timeout) = r.done.recv_timeout(STOP_WAIT) {
            debug!(%addr, "DNS server's tasks not ended in time");
        }
    }

    /// The addresses served now.
    pub fn served(&self) -> Vec<SocketAddrV4> {
        lock(&self.running).values().map(|r| r.bound).collect()
    }
}

impl Drop for DnsServers {
    /// Every server is told to stop (not waited for).
    fn drop(&mut self) {
        for r in lock(&self.running).values() {
            r.cancel.cancel();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The UDP socket and TCP listener of `addr`, on the same port (when `addr`'s is 0, the first that both
/// take).
fn bind(addr: SocketAddrV4) -> io::Result<(std::net::UdpSocket, std::net::TcpListener, SocketAddrV4)> {
    let mut tries = 0;
    loop {
        let udp = std::net::UdpSocket::bind(addr)?;
        let bound = match udp.local_addr()? {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => return Err(io::Error::other("an IPv4 bind gave an IPv6 address")),
        };
        match std::net::TcpListener::bind(bound) {
            Ok(tcp) => {
                udp.set_nonblocking(true)?;
                tcp.set_nonblocking(true)?;
                return Ok((udp, tcp, bound));
            }
            Err(e) if addr.port() == 0 && e.kind() == io::ErrorKind::AddrInUse && tries < 8 => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

enum Event {
    Stop,
    Relay(SocketAddrV4, Vec<u8>),
    Packet(io::Result<(usize, SocketAddr)>),
}

/// Receives queries on `socket` until the server is stopped; forwards run as tasks (at most
/// [`MAX_FORWARDS`]) whose replies come back here to be sent, so only this loop holds the socket.
async fn udp_loop(socket: UdpSocket, ctx: Arc<Ctx>) {
    let (relay_tx, mut relay) = mpsc::channel::<(SocketAddrV4, Vec<u8>)>(MAX_FORWARDS);
    let mut buf = vec![0u8; 4096];
    loop {
        let event = tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => Event::Stop,
            Some((to, bytes)) = relay.recv() => Event::Relay(to, bytes),
            r = socket.recv_from(&mut buf) => Event::Packet(r),
        };
        let (n, from) = match event {
            Event::Stop => return,
            Event::Relay(to, bytes) => {
                send(&socket, &bytes, to).await;
                continue;
            }
            Event::Packet(Ok((n, SocketAddr::V4(from)))) if ctx.allowed.contains(*from.ip()) => (n, from),
            Event::Packet(Ok(_)) => continue,
            Event::Packet(Err(e)) => {
                debug!(server = %ctx.server, error = %e, "DNS receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let packet = buf.get(..n).unwrap_or_default();
        let action = message::handle(packet, message::UDP_MAX, |name| ctx.names.answer(ctx.server, *from.ip(), name));
        match action {
            Action::Drop => {}
            Action::Reply(bytes) => send(&socket, &bytes, from).await,
            Action::Forward(forward) => match Arc::clone(&ctx.forwards).try_acquire_owned() {
                Ok(permit) => {
                    let (query, relay_tx, cancel) = (packet.to_vec(), relay_tx.clone(), ctx.cancel.clone());
                    tokio::spawn(async move {
                        let _permit = permit;
                        let reply = tokio::select! {
                            () = cancel.cancelled() => return,
                            r = forward_query(&query, &forward) => r,
                        };
                        if let Some(bytes) = reply.or_else(|| reply_bytes(message::servfail(&query))) {
                            let _ = relay_tx.send((from, bytes)).await;
                        }
                    });
                }
                Err(_) => {
                    debug!(server = %ctx.server, client = %from, "too many DNS forwards in flight");
                    if let Some(bytes) = reply_bytes(message::servfail(packet)) {
                        send(&socket, &bytes, from).await;
                    }
                }
            },
        }
    }
}

async fn send(socket: &UdpSocket, bytes: &[u8], to: SocketAddrV4) {
    if let Err(e) = socket.send_to(bytes, to).await {
        debug!(client = %to, error = %e, "DNS reply not sent");
    }
}

fn reply_bytes(action: Action) -> Option<Vec<u8>> {
    match action {
        Action::Reply(bytes) => Some(bytes),
        _ => None,
    }
}

/// Sends `query` to each upstream in turn over UDP, from a fresh ephemeral socket; the first reply that
/// answers it (its ID and question) within [`UPSTREAM_TIMEOUT`] is returned as it came.
async fn forward_query(query: &[u8], forward: &Forward) -> Option<Vec<u8>> {
    for &upstream in &forward.upstreams {
        match tokio::time::timeout(UPSTREAM_TIMEOUT, ask(upstream, query, forward)).await {
            Ok(Ok(reply)) => return Some(reply),
            Ok(Err(e)) => debug!(%upstream, error = %e, "DNS forward failed"),
            Err(_) => debug!(%upstream, "DNS forward timed out"),
        }
    }
    None
}

async fn ask(upstream: SocketAddr, query: &[u8], forward: &Forward) -> io::Result<Vec<u8>> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    // Connected: only the upstream's datagrams are received (and a closed port's ICMP error is seen).
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; message::TCP_MAX];
    loop {
        let n = socket.recv(&mut buf).await?;
        let reply = buf.get(..n).unwrap_or_default();
        if message::answers(reply, forward) {
            return Ok(reply.to_vec());
        }
    }
}

/// Accepts TCP connections (at most [`MAX_TCP`] at once) until the server is stopped.
async fn tcp_loop(listener: TcpListener, ctx: Arc<Ctx>, done: &sync_mpsc::Sender<()>) {
    let conns = Arc::new(Semaphore::new(MAX_TCP));
    loop {
        let accepted = tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, SocketAddr::V4(from))) if ctx.allowed.contains(*from.ip()) => {
                let Ok(permit) = Arc::clone(&conns).try_acquire_owned() else {
                    debug!(server = %ctx.server, client = %from, "too many DNS connections");
                    continue;
                };
                let (ctx, done) = (Arc::clone(&ctx), done.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    let mut stream = stream;
                    tokio::select! {
                        () = ctx.cancel.cancelled() => {}
                        () = tcp_conn(&mut stream, from, &ctx) => {}
                    }
                    drop(stream);
                    drop(done);
                });
            }
            Ok(_) => {}
            Err(e) => {
                // Out of descriptors, say: the next accept a moment later.
                debug!(server = %ctx.server, error = %e, "DNS accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Answers the length-prefixed queries of one connection, one at a time, until it closes, idles or sends
/// something that is not a query.
async fn tcp_conn(stream: &mut TcpStream, from: SocketAddrV4, ctx: &Ctx) {
    loop {
        let Ok(Ok(query)) = tokio::time::timeout(TCP_IDLE, read_message(stream)).await else {
            return;
        };
        let action = message::handle(&query, message::TCP_MAX, |name| ctx.names.answer(ctx.server, *from.ip(), name));
        let reply = match action {
            Action::Drop => return,
            Action::Reply(bytes) => bytes,
            Action::Forward(forward) => {
                let relayed = match Arc::clone(&ctx.forwards).try_acquire_owned() {
                    Ok(_permit) => forward_query(&query, &forward).await,
                    Err(_) => None,
                };
                match relayed.or_else(|| reply_bytes(message::servfail(&query))) {
                    Some(bytes) => bytes,
                    None => return,
                }
            }
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&reply);
        if !matches!(tokio::time::timeout(TCP_IDLE, stream.write_all(&framed)).await, Ok(Ok(()))) {
            return;
        }
    }
}

async fn read_message(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let len = stream.read_u16().await?;
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}
