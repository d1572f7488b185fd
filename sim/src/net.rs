//! The simulated network behind the runtime's network seams: a turmoil listener for server
//! hosts ([`SimListener`], a [`wse_runtime::net::Listener`]) and a turmoil dialer for client
//! hosts ([`SimDialer`], a [`wse_runtime::client::Dialer`] that fails over between servers),
//! and a turmoil connector for cluster links ([`SimConnector`], a
//! [`wse_runtime::net::Connector`]).
//!
//! Accepted streams can be throttled per client address ([`Throttles`]): turmoil's TCP never
//! pushes back on a writer (a receiver's buffer grows without bound), so a slow consumer is
//! modelled as a bandwidth limit on the server's writes to that client.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use turmoil::net::{TcpListener, TcpStream};

/// Write-bandwidth limits (bytes per second of virtual time) per client address, shared by
/// the fault timeline (which sets them) and the server's accepted streams (which obey them).
#[derive(Clone, Debug, Default)]
pub struct Throttles(Arc<Mutex<BTreeMap<IpAddr, u64>>>);

impl Throttles {
    /// Limits writes towards `ip` to `bytes_per_sec` (0 stalls them completely).
    pub fn set(&self, ip: IpAddr, bytes_per_sec: u64) {
        lock(&self.0).insert(ip, bytes_per_sec);
    }

    /// Removes the limit towards `ip`.
    pub fn clear(&self, ip: IpAddr) {
        lock(&self.0).remove(&ip);
    }

    /// Removes every limit.
    pub fn clear_all(&self) {
        lock(&self.0).clear();
    }

    fn get(&self, ip: IpAddr) -> Option<u64> {
        lock(&self.0).get(&ip).copied()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A turmoil TCP listener for a server host.
pub struct SimListener {
    inner: TcpListener,
    throttles: Throttles,
}

impl std::fmt::Debug for SimListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimListener").finish_non_exhaustive()
    }
}

impl SimListener {
    /// Binds `0.0.0.0:port` on the current host.
    pub async fn bind(port: u16, throttles: Throttles) -> io::Result<SimListener> {
        let inner = TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, port)).await?;
        Ok(SimListener { inner, throttles })
    }
}

impl wse_runtime::net::Listener for SimListener {
    type Stream = SimStream;

    async fn accept(&mut self) -> io::Result<(SimStream, SocketAddr)> {
        let (stream, peer) = self.inner.accept().await?;
        Ok((
            SimStream {
                inner: stream,
                peer: peer.ip(),
                throttles: Some(self.throttles.clone()),
                pause: None,
            },
            peer,
        ))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A turmoil TCP stream, optionally throttled on the write side.
#[derive(Debug)]
pub struct SimStream {
    inner: TcpStream,
    peer: IpAddr,
    throttles: Option<Throttles>,
    pause: Option<Pin<Box<Sleep>>>,
}

/// Bytes a throttled stream writes per step; with the rate this sets the pause after it.
const THROTTLE_CHUNK: usize = 512;

impl AsyncRead for SimStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Some(pause) = this.pause.as_mut() {
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.pause = None;
        }
        let limit = this.throttles.as_ref().and_then(|t| t.get(this.peer));
        match limit {
            None => Pin::new(&mut this.inner).poll_write(cx, buf),
            Some(0) => {
                // Stalled: look again in a while (the fault timeline may lift the limit).
                let mut sleep = Box::pin(tokio::time::sleep(Duration::from_millis(50)));
                let _ = sleep.as_mut().poll(cx);
                this.pause = Some(sleep);
                Poll::Pending
            }
            Some(rate) => {
                let n = buf.len().min(THROTTLE_CHUNK);
                match Pin::new(&mut this.inner).poll_write(cx, &buf[..n]) {
                    Poll::Ready(Ok(written)) => {
                        let micros = (written as u64).saturating_mul(1_000_000) / rate.max(1);
                        let mut sleep = Box::pin(tokio::time::sleep_until(
                            Instant::now() + Duration::from_micros(micros),
                        ));
                        let _ = sleep.as_mut().poll(cx);
                        this.pause = Some(sleep);
                        Poll::Ready(Ok(written))
                    }
                    other => other,
                }
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Dials the server hosts by name over turmoil's network, failing over: each attempt after a
/// failure tries the next server (home first, then the others in order); a successful dial
/// makes the next reconnection start at home again. Which server a connection reached is kept
/// for the trace ([`SimDialer::connected_to`]).
#[derive(Clone, Debug)]
pub struct SimDialer {
    hosts: Arc<Vec<String>>,
    port: u16,
    home: usize,
    /// Attempts since the last successful dial.
    attempts: Arc<AtomicUsize>,
    /// The index (into `hosts`) of the last successful dial.
    last: Arc<AtomicUsize>,
}

impl SimDialer {
    /// Dials `host:port` (a turmoil host name), and only that.
    pub fn new(host: impl Into<String>, port: u16) -> SimDialer {
        SimDialer::failover(vec![host.into()], 0, port)
    }

    /// Dials `hosts[home]` first and fails over to the others in order.
    pub fn failover(hosts: Vec<String>, home: usize, port: u16) -> SimDialer {
        let home = home % hosts.len().max(1);
        SimDialer {
            hosts: Arc::new(hosts),
            port,
            home,
            attempts: Arc::new(AtomicUsize::new(0)),
            last: Arc::new(AtomicUsize::new(home)),
        }
    }

    /// The index of the server the last successful dial reached.
    pub fn connected_to(&self) -> usize {
        self.last.load(Ordering::SeqCst)
    }
}

impl wse_runtime::client::Dialer for SimDialer {
    type Stream = SimStream;

    async fn dial(&self) -> io::Result<SimStream> {
        // Counted before the attempt: a connect the client's timeout abandons still moves on.
        let k = self.attempts.fetch_add(1, Ordering::SeqCst);
        let target = (self.home + k) % self.hosts.len().max(1);
        let inner = TcpStream::connect((self.hosts[target].as_str(), self.port)).await?;
        let peer = inner.peer_addr()?.ip();
        self.attempts.store(0, Ordering::SeqCst);
        self.last.store(target, Ordering::SeqCst);
        Ok(SimStream {
            inner,
            peer,
            throttles: None,
            pause: None,
        })
    }
}

/// Opens cluster links over turmoil's network: `host:port` with a turmoil host name.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimConnector;

impl wse_runtime::net::Connector for SimConnector {
    type Stream = SimStream;

    async fn connect(&self, addr: &str) -> io::Result<SimStream> {
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "expected host:port"))?;
        let inner = TcpStream::connect((host, port)).await?;
        let peer = inner.peer_addr()?.ip();
        Ok(SimStream {
            inner,
            peer,
            throttles: None,
            pause: None,
        })
    }
}
