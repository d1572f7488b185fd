//! One link's tasks, and the loops that make links.
//!
//! A session has two tasks: the **reader** (this task) decodes frames, feeds the link machine
//! and acts on what it reports (registration at HELLO, delivery of MSG); the **writer** drains
//! the machine's queue into writes of up to [`MAX_BATCH_BYTES`], and runs the heartbeat timer.
//! Either ends the session through the slot's cancellation token.
//!
//! A **dial loop** per configured address connects, runs a session, and redials with the
//! circuit breaker and jittered backoff of `wse-core`; it waits instead while the node that
//! announced that address is linked anyway (it dialled us). The **accept loop** takes inbound
//! streams on the cluster port, at most [`super::MAX_INBOUND_HANDSHAKES`] in their handshake at
//! once.

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wse_core::cluster::presence_sync::decode_chunk;
use wse_core::cluster::{
    Backoff, CircuitBreaker, DlqReason, FrameDecoder, FrameEncoder, Inbound, Link, LinkError,
    PeerFrame, Role,
};

use super::mesh::Slot;
use super::{Inner, MAX_BATCH_BYTES, lock};
use crate::net::{Connector, Listener};

/// Any byte stream a link runs over (TCP, TLS over TCP, a simulated stream).
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type BoxIo = Box<dyn Io>;

/// How a session ended.
enum SessionEnd {
    /// The HELLO exchange never completed, or the link was refused.
    NotEstablished,
    /// The link was registered, carried traffic, and ended; the peer's instance id.
    Ended(String),
}

pub(super) async fn accept_loop<L: Listener>(inner: Arc<Inner>, mut listener: L) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = inner.cancel.cancelled() => return,
            r = listener.accept() => r,
        };
        let Ok((stream, peer)) = accepted else {
            // Out of file descriptors and the like: do not spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = Arc::clone(&inner.inbound_handshakes).try_acquire_owned() else {
            continue; // too many handshakes in flight: drop the socket
        };
        let task_inner = Arc::clone(&inner);
        inner.tasks.spawn(async move {
            let timeout = task_inner.config.link.handshake_timeout;
            let io: BoxIo = match &task_inner.tls {
                None => Box::new(stream),
                Some(tls) => match tokio::time::timeout(timeout, tls.accept(stream)).await {
                    Ok(Ok(s)) => Box::new(s),
                    _ => return,
                },
            };
            let _ = run_session(
                &task_inner,
                io,
                Role::Acceptor,
                peer.to_string(),
                Some(permit),
            )
            .await;
        });
    }
}

pub(super) async fn dial_loop<C: Connector>(inner: Arc<Inner>, connector: Arc<C>, addr: String) {
    let mut breaker = CircuitBreaker::new(inner.config.breaker);
    let mut backoff = Backoff::new(inner.config.backoff);
    let mut delay = Duration::ZERO;
    loop {
        if !delay.is_zero() && !pause(&inner, delay).await {
            return;
        }
        delay = Duration::ZERO;
        {
            let mesh = lock(&inner.mesh);
            // Stopped, or a discovered address membership has forgotten.
            if inner.cancel.is_cancelled()
                || mesh.is_stopped()
                || !mesh.membership().should_dial(&addr)
            {
                return;
            }
        }
        // The node behind this address dialled us: nothing to do while that link lives.
        if lock(&inner.mesh).is_linked_at(&addr) {
            let changed = inner.changed.notified();
            tokio::select! {
                biased;
                () = inner.cancel.cancelled() => return,
                () = changed => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        let (now, _) = inner.now();
        if breaker.try_attempt(now).is_err() {
            delay = breaker
                .poll_timeout()
                .map_or(Duration::from_secs(1), |t| t.saturating_duration_since(now))
                .max(Duration::from_millis(10));
            breaker.handle_timeout(now.saturating_add(delay));
            continue;
        }
        let end = match dial_once(&inner, &*connector, &addr).await {
            Ok(io) => run_session(&inner, io, Role::Dialer, addr.clone(), None).await,
            Err(_) => SessionEnd::NotEstablished,
        };
        let (now, _) = inner.now();
        let mut rng = lock(&inner.rng);
        match end {
            SessionEnd::NotEstablished => {
                let opened = breaker.stats().opened;
                breaker.handle_failure(now);
                let opened = breaker.stats().opened - opened;
                inner.counters.breaker_opened.fetch_add(opened, Relaxed);
                delay = backoff.next_delay(&mut *rng);
            }
            SessionEnd::Ended(remote) => {
                breaker.handle_success(now);
                backoff.reset();
                inner.counters.reconnects.fetch_add(1, Relaxed);
                delay = backoff.next_delay(&mut *rng);
                // The lower instance id redials first; the higher one waits a little longer
                // and then finds the link already there.
                if inner.instance_id > remote {
                    delay += inner.config.link.higher_id_grace;
                }
            }
        }
    }
}

/// Runs the membership timers until the cluster stops.
pub(super) async fn membership_loop(inner: Arc<Inner>) {
    let tick = inner
        .config
        .link
        .heartbeat_interval
        .min(Duration::from_millis(250));
    while pause(&inner, tick).await {
        inner.membership_tick();
    }
}

/// Sleeps `d`; false when the cluster stopped meanwhile.
async fn pause(inner: &Inner, d: Duration) -> bool {
    tokio::select! {
        biased;
        () = inner.cancel.cancelled() => false,
        () = tokio::time::sleep(d) => true,
    }
}

async fn dial_once<C: Connector>(inner: &Inner, connector: &C, addr: &str) -> io::Result<BoxIo> {
    let timeout = inner.config.link.handshake_timeout;
    let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "cluster connect timed out");
    let stream = tokio::time::timeout(timeout, connector.connect(addr))
        .await
        .map_err(|_| timed_out())??;
    match &inner.tls {
        None => Ok(Box::new(stream)),
        Some(tls) => {
            let s = tokio::time::timeout(timeout, tls.connect(addr, stream))
                .await
                .map_err(|_| timed_out())??;
            Ok(Box::new(s))
        }
    }
}

async fn run_session(
    inner: &Arc<Inner>,
    io: BoxIo,
    role: Role,
    addr: String,
    handshake_permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> SessionEnd {
    let (now, _) = inner.now();
    let config = inner.link_config();
    let link = match role {
        Role::Dialer => Link::dial(config, now),
        Role::Acceptor => Link::accept(config, now),
    };
    let serial = lock(&inner.mesh).next_serial();
    let slot = Arc::new(Slot {
        serial,
        role,
        link: Mutex::new(link),
        wake: Notify::new(),
        end: CancellationToken::new(),
        addr,
        registered: Mutex::new(None),
    });
    let (rd, wr) = tokio::io::split(io);
    let writer = inner
        .tasks
        .spawn(write_loop(Arc::clone(inner), Arc::clone(&slot), wr));
    let why = read_loop(inner, &slot, rd, handshake_permit).await;
    tracing::debug!(peer = %slot.addr, ?why, "cluster link ended");
    slot.end.cancel();
    let _ = writer.await;
    let remote = lock(&slot.registered)
        .as_ref()
        .map(|r| r.remote.instance_id.clone());
    inner.unregister(&slot);
    if let (ReadEnd::Shutdown, Some(id)) = (&why, &remote) {
        inner.left(id);
    }
    remote.map_or(SessionEnd::NotEstablished, SessionEnd::Ended)
}

/// Why the reader stopped (logged at debug level).
#[derive(Debug)]
#[allow(dead_code)] // the fields are read through `Debug` only
enum ReadEnd {
    Closed,
    /// The peer said goodbye (SHUTDOWN): it left the cluster.
    Shutdown,
    Frame(wse_core::cluster::FrameError),
    Link(LinkError),
    Refused(&'static str),
    /// A presence chunk that does not decode, or speaks for another origin.
    Presence,
}

async fn read_loop(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    mut rd: ReadHalf<BoxIo>,
    mut handshake_permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> ReadEnd {
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut unknown_seen = 0;
    loop {
        let n = tokio::select! {
            biased;
            () = slot.end.cancelled() => return ReadEnd::Closed,
            () = inner.cancel.cancelled() => return ReadEnd::Closed,
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => return ReadEnd::Closed,
                Ok(n) => n,
            },
        };
        inner.counters.bytes_received.fetch_add(n as u64, Relaxed);
        let mut data = &buf[..n];
        loop {
            let taken = decoder.push(data);
            data = &data[taken..];
            for frame in decoder.by_ref() {
                let frame = match frame {
                    Ok(f) => f,
                    Err(e) => return ReadEnd::Frame(e),
                };
                let (now, _) = inner.now();
                let inbound = lock(&slot.link).handle_frame(frame, now);
                match inbound {
                    Ok(inbound) => {
                        if let Err(end) = act(inner, slot, inbound) {
                            return end;
                        }
                        if lock(&slot.registered).is_some() {
                            handshake_permit.take();
                        }
                    }
                    Err(e) => return ReadEnd::Link(e),
                }
            }
            if data.is_empty() {
                break;
            }
            if decoder.is_failed() {
                return ReadEnd::Closed;
            }
        }
        let unknown = decoder.unknown_skipped();
        if unknown > unknown_seen {
            inner
                .counters
                .unknown_message_types
                .fetch_add(unknown - unknown_seen, Relaxed);
            unknown_seen = unknown;
        }
        slot.wake.notify_one();
    }
}

/// Acts on one frame's meaning; `Err` ends the session.
fn act(inner: &Arc<Inner>, slot: &Arc<Slot>, inbound: Inbound) -> Result<(), ReadEnd> {
    match inbound {
        Inbound::Hello(remote) => inner.register(slot, remote).map_err(ReadEnd::Refused),
        Inbound::Msg {
            topic,
            payload,
            trailer,
        } => {
            inner.counters.messages_delivered.fetch_add(1, Relaxed);
            if let Some(node) = inner.node.upgrade()
                && !node.deliver_routed(&topic, &payload, trailer)
            {
                inner.counters.messages_unwanted.fetch_add(1, Relaxed);
            }
            Ok(())
        }
        Inbound::Announce(addr) => {
            inner.announced(slot, addr);
            Ok(())
        }
        Inbound::Peers(addrs) => {
            inner.learned(&addrs);
            Ok(())
        }
        Inbound::Shutdown => Err(ReadEnd::Shutdown),
        Inbound::Presence(PeerFrame::PresenceFull { chunk }) => {
            let chunk = decode_chunk(&chunk).map_err(|_| ReadEnd::Presence)?;
            if inner.presence_received(slot, chunk) {
                Ok(())
            } else {
                Err(ReadEnd::Presence)
            }
        }
        // We never send the original's PresenceUpdate layout, and do not apply it.
        Inbound::Presence(_) | Inbound::Drain | Inbound::Nothing => Ok(()),
    }
}

async fn write_loop(inner: Arc<Inner>, slot: Arc<Slot>, mut wr: WriteHalf<BoxIo>) {
    let mut encoder = FrameEncoder::new();
    let mut buf: Vec<u8> = Vec::with_capacity(MAX_BATCH_BYTES);
    let write_timeout = inner.config.link.write_timeout;
    loop {
        buf.clear();
        let mut unencodable = Vec::new();
        let (closed, deadline) = {
            let mut link = lock(&slot.link);
            while buf.len() < MAX_BATCH_BYTES {
                let Some(frame) = link.poll_transmit() else {
                    break;
                };
                if encoder.encode(&frame, &mut buf).is_err() {
                    unencodable.push(frame);
                }
            }
            (link.is_closed(), link.poll_timeout())
        };
        if !unencodable.is_empty() {
            inner.dead_letters(&unencodable, &slot.addr, DlqReason::Unencodable);
        }
        if !buf.is_empty() {
            let wrote = tokio::time::timeout(write_timeout, async {
                wr.write_all(&buf).await?;
                wr.flush().await
            })
            .await;
            if !matches!(wrote, Ok(Ok(()))) {
                break;
            }
            inner
                .counters
                .bytes_sent
                .fetch_add(buf.len() as u64, Relaxed);
            continue;
        }
        if closed {
            break;
        }
        let (now, _) = inner.now();
        let sleep = deadline.map(|d| d.saturating_duration_since(now));
        tokio::select! {
            biased;
            () = slot.end.cancelled() => break,
            () = inner.cancel.cancelled() => break,
            () = slot.wake.notified() => {}
            () = sleep_or_forever(sleep) => {
                let (now, _) = inner.now();
                if lock(&slot.link).handle_timeout(now).is_err() {
                    break;
                }
            }
        }
    }
    slot.end.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
}

async fn sleep_or_forever(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
