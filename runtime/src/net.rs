//! The network seam: the server is generic over a [`Listener`], so the same code runs on tokio
//! sockets here and on turmoil's simulated network in `wse-sim` — no `cfg` switch.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

/// A source of accepted byte streams.
pub trait Listener: Send + 'static {
    /// One accepted connection.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Waits for the next connection.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;

    /// The bound address.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// Plain TCP; every accepted socket gets `TCP_NODELAY` (small frames must not wait for Nagle).
#[derive(Debug)]
pub struct TcpListener(tokio::net::TcpListener);

impl TcpListener {
    /// Binds `addr` now, so a bind failure surfaces to the caller (CONTRACT D1).
    pub async fn bind(addr: &str) -> io::Result<TcpListener> {
        tokio::net::TcpListener::bind(addr).await.map(TcpListener)
    }
}

impl Listener for TcpListener {
    type Stream = tokio::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, peer) = self.0.accept().await?;
        // Best effort: a socket that refuses the option still works, only slower.
        let _ = stream.set_nodelay(true);
        Ok((stream, peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// Opens outbound byte streams to `host:port` addresses (cluster peers). The simulator passes
/// its own, like [`Listener`].
pub trait Connector: Send + Sync + 'static {
    /// A connected stream.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Connects to `addr` (`host:port`; hostnames resolved on every call), one attempt.
    fn connect(&self, addr: &str) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Plain TCP with `TCP_NODELAY` (UPSTREAM §10.1 tunes the peer sockets the same way).
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    type Stream = tokio::net::TcpStream;

    async fn connect(&self, addr: &str) -> io::Result<Self::Stream> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}
