//! A TCP proxy that injects network faults between a client and its server, on command, at any
//! moment of a test: pass, pause, blackhole, reset, slice, delay.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use stream_testkit::proxy::{Fault, FaultProxy};
//! use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
//!
//! // An echo server to stand behind the proxy.
//! let server = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let upstream = server.local_addr()?;
//! tokio::spawn(async move {
//!     while let Ok((mut conn, _)) = server.accept().await {
//!         tokio::spawn(async move {
//!             let (mut r, mut w) = conn.split();
//!             let _ = tokio::io::copy(&mut r, &mut w).await;
//!         });
//!     }
//! });
//!
//! let proxy = FaultProxy::start(upstream).await?;
//! proxy.set(Fault::Slice(2));
//! let mut client = tokio::net::TcpStream::connect(proxy.addr()).await?;
//! client.write_all(b"hello").await?;
//! let mut echoed = [0u8; 5];
//! client.read_exact(&mut echoed).await?;
//! assert_eq!(&echoed, b"hello");
//! # Ok(())
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does to the bytes of every connection, from the moment it is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything as it comes.
    Pass,
    /// Stop forwarding and keep the connections open; the held bytes go on after the pause.
    Pause,
    /// Drop every byte silently and keep the connection open (no FIN, no RST): a half-open
    /// connection. A connection that saw a blackhole stays dead after the mode changes (its
    /// lost bytes would be garbage to either side); new connections work again after it.
    Blackhole,
    /// Reset every connection (RST, as a crashed peer or a firewall would), and every new one
    /// while the mode lasts.
    Reset,
    /// Forward in chunks of at most this many bytes, each written on its own, a millisecond
    /// apart (so the peer reads them one by one, as from a slow network).
    Slice(usize),
    /// Hold every chunk this long before forwarding it.
    Delay(Duration),
}

/// Counters of what the proxy has done so far, and how many resets and blackholes were ordered:
/// a connection open when one was ordered suffers it even if the mode changed again at once.
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    resets: AtomicU64,
    forwarded: AtomicU64,
    dropped: AtomicU64,
    writes: AtomicU64,
    reset_orders: AtomicU64,
    blackhole_orders: AtomicU64,
}

/// A running proxy: clients connect to [`FaultProxy::addr`], the proxy to the upstream server.
/// Dropping it closes the listener and every connection.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    mode: watch::Sender<Fault>,
    counters: Arc<Counters>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards each connection to `upstream`, passing
    /// everything until told otherwise.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (mode, watcher) = watch::channel(Fault::Pass);
        let counters = Arc::new(Counters::default());
        let accept = tokio::spawn(accept_loop(listener, upstream, watcher, counters.clone()));
        Ok(Self {
            addr,
            mode,
            counters,
            accept,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches every connection, open or new, to `fault`.
    pub fn set(&self, fault: Fault) {
        match fault {
            Fault::Reset => self.counters.reset_orders.fetch_add(1, Ordering::SeqCst),
            Fault::Blackhole => self
                .counters
                .blackhole_orders
                .fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
        self.mode.send_replace(fault);
    }

    /// The fault in force.
    pub fn fault(&self) -> Fault {
        *self.mode.borrow()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.counters.accepted.load(Ordering::SeqCst)
    }

    /// Connections reset so far.
    pub fn resets(&self) -> u64 {
        self.counters.resets.load(Ordering::SeqCst)
    }

    /// Bytes forwarded so far (both directions).
    pub fn forwarded_bytes(&self) -> u64 {
        self.counters.forwarded.load(Ordering::SeqCst)
    }

    /// Bytes dropped by a blackhole so far.
    pub fn dropped_bytes(&self) -> u64 {
        self.counters.dropped.load(Ordering::SeqCst)
    }

    /// Writes made so far (a sliced chunk is one write each).
    pub fn writes(&self) -> u64 {
        self.counters.writes.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The connection tasks live in the accept task's JoinSet: aborting it ends them all.
        self.accept.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mode: watch::Receiver<Fault>,
    counters: Arc<Counters>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                counters.accepted.fetch_add(1, Ordering::SeqCst);
                connections.spawn(connection(client, upstream, mode.clone(), counters.clone()));
            }
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Resets a socket: linger 0 makes the close send RST instead of FIN.
// Deprecated because a non-zero linger blocks the thread on drop; zero never does.
#[allow(deprecated)]
fn reset(stream: TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// Whether a connection is dead: born in a blackhole, or open when one was ordered.
#[derive(Debug)]
struct Fate<'a> {
    counters: &'a Counters,
    born_in_blackhole: bool,
    blackholes_at_birth: u64,
    resets_at_birth: u64,
}

impl Fate<'_> {
    fn dead(&self) -> bool {
        self.born_in_blackhole
            || self.counters.blackhole_orders.load(Ordering::SeqCst) != self.blackholes_at_birth
    }

    fn reset(&self) -> bool {
        self.counters.reset_orders.load(Ordering::SeqCst) != self.resets_at_birth
    }
}

async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Fault>,
    counters: Arc<Counters>,
) {
    let fate = Fate {
        counters: &counters,
        blackholes_at_birth: counters.blackhole_orders.load(Ordering::SeqCst),
        resets_at_birth: counters.reset_orders.load(Ordering::SeqCst),
        born_in_blackhole: false,
    };
    let current = *mode.borrow_and_update();
    if current == Fault::Reset {
        counters.resets.fetch_add(1, Ordering::SeqCst);
        reset(client);
        return;
    }
    let fate = Fate {
        born_in_blackhole: current == Fault::Blackhole,
        ..fate
    };
    let Ok(server) = TcpStream::connect(upstream).await else {
        reset(client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut client = client;
    let mut server = server;
    let was_reset = {
        let (mut client_read, mut client_write) = client.split();
        let (mut server_read, mut server_write) = server.split();
        let up = pump(&mut client_read, &mut server_write, mode.clone(), &fate);
        let down = pump(&mut server_read, &mut client_write, mode.clone(), &fate);
        let control = async {
            while !fate.reset() {
                if mode.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            (up, down) = async { tokio::join!(up, down) } => up.is_err() || down.is_err(),
            () = control => true,
        }
    };
    if was_reset {
        counters.resets.fetch_add(1, Ordering::SeqCst);
        reset(client);
        reset(server);
    }
}

/// Copies one direction under the fault in force; `Err` when a side failed (then both are reset).
async fn pump<R, W>(
    from: &mut R,
    to: &mut W,
    mut mode: watch::Receiver<Fault>,
    fate: &Fate<'_>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Paused: read nothing either, so the sender's buffers fill as on a stalled network.
        while *mode.borrow_and_update() == Fault::Pause && !fate.dead() {
            if mode.changed().await.is_err() {
                break;
            }
        }
        let n = from.read(&mut buf).await?;
        if n == 0 {
            if !fate.dead() {
                to.shutdown().await?;
            }
            return Ok(());
        }
        let mut data = &buf[..n];
        while !data.is_empty() {
            let fault = *mode.borrow_and_update();
            let counters = fate.counters;
            if fate.dead() {
                counters
                    .dropped
                    .fetch_add(data.len() as u64, Ordering::SeqCst);
                break;
            }
            let take = match fault {
                Fault::Pause | Fault::Reset => {
                    // Hold the bytes until the mode changes (a reset ends the connection).
                    if mode.changed().await.is_err() {
                        return Ok(());
                    }
                    continue;
                }
                Fault::Delay(d) => {
                    tokio::time::sleep(d).await;
                    data.len()
                }
                Fault::Slice(size) => size.max(1).min(data.len()),
                Fault::Pass | Fault::Blackhole => data.len(),
            };
            to.write_all(&data[..take]).await?;
            to.flush().await?;
            counters.writes.fetch_add(1, Ordering::SeqCst);
            counters.forwarded.fetch_add(take as u64, Ordering::SeqCst);
            data = &data[take..];
            if matches!(fault, Fault::Slice(_)) && !data.is_empty() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An echo server; returns its address.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = conn.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn setup() -> (FaultProxy, TcpStream) {
        let proxy = FaultProxy::start(echo_server().await).await.expect("proxy");
        let client = TcpStream::connect(proxy.addr()).await.expect("connect");
        (proxy, client)
    }

    async fn echo(client: &mut TcpStream, bytes: &[u8]) -> Vec<u8> {
        client.write_all(bytes).await.expect("write");
        let mut back = vec![0u8; bytes.len()];
        tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut back))
            .await
            .expect("echo within 10 s")
            .expect("read");
        back
    }

    /// Whether anything (bytes, EOF or an error) arrives within `wait`.
    async fn nothing_arrives(client: &mut TcpStream, wait: Duration) -> bool {
        let mut one = [0u8; 1];
        tokio::time::timeout(wait, client.read(&mut one))
            .await
            .is_err()
    }

    #[tokio::test]
    async fn pass_forwards_every_byte_both_ways() {
        let (proxy, mut client) = setup().await;
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(echo(&mut client, &payload).await, payload);
        assert_eq!(proxy.forwarded_bytes(), 2 * payload.len() as u64);
        assert_eq!(proxy.accepted(), 1);
    }

    #[tokio::test]
    async fn pause_holds_the_bytes_and_delivers_them_all_after() {
        let (proxy, mut client) = setup().await;
        assert_eq!(echo(&mut client, b"before").await, b"before");
        proxy.set(Fault::Pause);
        client.write_all(b"held back").await.expect("write");
        assert!(nothing_arrives(&mut client, Duration::from_millis(300)).await);
        proxy.set(Fault::Pass);
        let mut back = [0u8; 9];
        client
            .read_exact(&mut back)
            .await
            .expect("read after pause");
        assert_eq!(&back, b"held back");
    }

    #[tokio::test]
    async fn blackhole_drops_silently_and_leaves_the_connection_half_open() {
        let (proxy, mut client) = setup().await;
        assert_eq!(echo(&mut client, b"alive").await, b"alive");
        proxy.set(Fault::Blackhole);
        client
            .write_all(b"lost")
            .await
            .expect("write into the hole");
        // No reply, no FIN, no RST: the read just waits.
        assert!(nothing_arrives(&mut client, Duration::from_millis(300)).await);
        proxy.set(Fault::Pass);
        // The old connection stays dead, and still open.
        client.write_all(b"still lost").await.expect("write");
        assert!(nothing_arrives(&mut client, Duration::from_millis(300)).await);
        assert_eq!(proxy.dropped_bytes(), 14);
        // A new connection works.
        let mut fresh = TcpStream::connect(proxy.addr()).await.expect("connect");
        assert_eq!(echo(&mut fresh, b"fresh").await, b"fresh");
    }

    #[tokio::test]
    async fn reset_sends_rst_to_open_and_new_connections() {
        let (proxy, mut client) = setup().await;
        assert_eq!(echo(&mut client, b"alive").await, b"alive");
        proxy.set(Fault::Reset);
        let mut one = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(10), client.read(&mut one))
            .await
            .expect("the reset arrives");
        let err = read.expect_err("a reset, not an orderly close");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");

        let mut during = TcpStream::connect(proxy.addr()).await.expect("connect");
        let read = tokio::time::timeout(Duration::from_secs(10), during.read(&mut one))
            .await
            .expect("the reset arrives");
        assert_eq!(
            read.expect_err("reset").kind(),
            std::io::ErrorKind::ConnectionReset
        );
        assert_eq!(proxy.resets(), 2);

        proxy.set(Fault::Pass);
        let mut after = TcpStream::connect(proxy.addr()).await.expect("connect");
        assert_eq!(echo(&mut after, b"back").await, b"back");
    }

    #[tokio::test]
    async fn a_fault_lifted_at_once_still_hits_every_open_connection() {
        let (proxy, mut doomed) = setup().await;
        let mut silenced = TcpStream::connect(proxy.addr()).await.expect("connect");
        assert_eq!(echo(&mut doomed, b"a").await, b"a");
        assert_eq!(echo(&mut silenced, b"b").await, b"b");
        proxy.set(Fault::Blackhole);
        proxy.set(Fault::Pass);
        silenced.write_all(b"gone").await.expect("write");
        assert!(nothing_arrives(&mut silenced, Duration::from_millis(300)).await);
        proxy.set(Fault::Reset);
        proxy.set(Fault::Pass);
        let mut one = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(10), doomed.read(&mut one))
            .await
            .expect("the reset arrives");
        assert_eq!(
            read.expect_err("reset").kind(),
            std::io::ErrorKind::ConnectionReset
        );
    }

    #[tokio::test]
    async fn slice_forwards_everything_in_chunks_of_the_given_size() {
        let (proxy, mut client) = setup().await;
        proxy.set(Fault::Slice(3));
        let payload = b"0123456789abcdefghij"; // 20 bytes: 7 slices each way
        assert_eq!(echo(&mut client, payload).await, payload);
        assert!(proxy.writes() >= 14, "{} writes", proxy.writes());
        assert_eq!(proxy.forwarded_bytes(), 40);
    }

    #[tokio::test]
    async fn delay_adds_latency_each_way() {
        let (proxy, mut client) = setup().await;
        assert_eq!(echo(&mut client, b"warm").await, b"warm");
        proxy.set(Fault::Delay(Duration::from_millis(150)));
        let began = Instant::now();
        assert_eq!(echo(&mut client, b"slow").await, b"slow");
        assert!(
            began.elapsed() >= Duration::from_millis(300),
            "round trip took {:?}",
            began.elapsed()
        );
    }

    #[tokio::test]
    async fn dropping_the_proxy_closes_its_connections() {
        let (proxy, mut client) = setup().await;
        assert_eq!(echo(&mut client, b"alive").await, b"alive");
        drop(proxy);
        let mut one = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(10), client.read(&mut one))
            .await
            .expect("the close arrives");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
}
