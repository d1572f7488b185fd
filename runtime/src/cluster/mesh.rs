//! The registry of live links and what is routed through it.
//!
//! Exactly one link per peer (D14): a link is registered when its HELLO exchange completes. If
//! a link to the same instance is already registered, the one whose **dialer has the lower
//! instance id** is kept — both ends compute the same answer, so two simultaneous dials leave
//! one link, never zero — and the other is closed (its unwritten messages go to the DLQ). A
//! peer whose link ended is remembered with its last interest (bounded by
//! [`MAX_CLUSTER_PEERS`]) until it comes back, so a message it would have wanted meanwhile is
//! recorded in the DLQ as `PeerGone` rather than vanishing.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wse_core::cluster::frame::RecoveryTrailer;
use wse_core::cluster::membership::{Event, Membership};
use wse_core::cluster::presence_sync::PresenceChunk;
use wse_core::cluster::{
    DeadLetter, DlqReason, Link, PeerFrame, PeerInterest, Remote, Role, Routed,
};
use wse_core::presence::NodeId;

use super::{Inner, MAX_CLUSTER_PEERS, PeerInfo, lock};

/// One link's shared state: the machine, the writer's wake-up, the session's end.
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) serial: u64,
    pub(super) role: Role,
    pub(super) link: Mutex<Link>,
    pub(super) wake: Notify,
    pub(super) end: CancellationToken,
    /// The dialled address (dialer) or the socket's peer address (acceptor).
    pub(super) addr: String,
    /// Set at registration.
    pub(super) registered: Mutex<Option<Registered>>,
}

#[derive(Clone, Debug)]
pub(super) struct Registered {
    pub(super) remote: Remote,
    pub(super) connected_at_ms: u64,
    /// What the peer was known to want before this link (its departed interest, or the link
    /// this one replaced): kept if this link ends before the peer's RESYNC arrived on it.
    pub(super) previous: Option<PeerInterest>,
}

#[derive(Debug)]
struct Departed {
    addr: String,
    interest: PeerInterest,
}

/// Live links and what the node knows about its peers.
#[derive(Debug)]
pub(super) struct Mesh {
    membership: Membership,
    links: BTreeMap<u64, Arc<Slot>>,
    by_remote: BTreeMap<String, u64>,
    /// Announced cluster address → the instance that announced it.
    instance_at: BTreeMap<String, String>,
    /// Instance → its announced address.
    addr_of: BTreeMap<String, String>,
    departed: BTreeMap<String, Departed>,
    /// Instance → the presence origin its chunks carry (purged when it is dead).
    origins: BTreeMap<String, NodeId>,
    next_serial: u64,
    draining: bool,
    stopped: bool,
}

impl Mesh {
    pub(super) fn new(membership: Membership) -> Mesh {
        Mesh {
            membership,
            links: BTreeMap::new(),
            by_remote: BTreeMap::new(),
            instance_at: BTreeMap::new(),
            addr_of: BTreeMap::new(),
            departed: BTreeMap::new(),
            origins: BTreeMap::new(),
            next_serial: 0,
            draining: false,
            stopped: false,
        }
    }

    pub(super) fn membership(&self) -> &Membership {
        &self.membership
    }

    pub(super) fn len(&self) -> usize {
        self.links.len()
    }

    pub(super) fn is_linked(&self, instance: &str) -> bool {
        self.by_remote.contains_key(instance)
    }

    /// True when the instance that announced `addr` has a live link.
    pub(super) fn is_linked_at(&self, addr: &str) -> bool {
        self.instance_at
            .get(addr)
            .is_some_and(|id| self.is_linked(id))
    }

    pub(super) fn next_serial(&mut self) -> u64 {
        self.next_serial += 1;
        self.next_serial
    }

    pub(super) fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Live links a publication on `topic` would be routed to now.
    pub(super) fn routes(&self, topic: &str) -> usize {
        self.links
            .values()
            .filter(|s| lock(&s.link).wants(topic))
            .count()
    }

    /// The instance `id` is at the cluster address `addr` now: an earlier instance there (the
    /// node restarted under a new instance id) is forgotten — its address mapping, and its
    /// departed interest, which would otherwise record every later message as lost to it
    /// (`PeerGone`) although the node behind that address receives it.
    fn forget_previous_instances(&mut self, addr: &str, id: &str) {
        self.departed
            .retain(|other, d| other.as_str() == id || d.addr != addr);
        self.addr_of
            .retain(|other, a| other.as_str() == id || a.as_str() != addr);
    }

    pub(super) fn info(&self) -> Vec<PeerInfo> {
        let mut out: Vec<PeerInfo> = self
            .links
            .values()
            .filter_map(|slot| {
                let r = lock(&slot.registered).clone()?;
                let address = self
                    .addr_of
                    .get(&r.remote.instance_id)
                    .cloned()
                    .unwrap_or_else(|| slot.addr.clone());
                Some(PeerInfo {
                    address,
                    instance_id: r.remote.instance_id,
                    capabilities: r.remote.capabilities.bits(),
                    connected_at_ms: r.connected_at_ms,
                })
            })
            .collect();
        out.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        out
    }
}

impl Inner {
    /// Registers a link whose HELLO exchange completed and starts its session; `Err` says why
    /// the link must be dropped instead.
    pub(super) fn register(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        remote: Remote,
    ) -> Result<(), &'static str> {
        let Some(node) = self.node.upgrade() else {
            return Err("server gone");
        };
        let mut result = Err("not registered");
        let mut remote = Some(remote);
        // Snapshot and registration with subscription changes held back: a subscription racing
        // with this registration is sent as a SUB after it, never lost between the two.
        let mut events = Vec::new();
        node.with_snapshot(&mut |keys, presence| {
            if let Some(remote) = remote.take() {
                result = self.register_with(slot, remote, keys, presence, &mut events);
            }
        });
        if result.is_ok() {
            slot.wake.notify_one();
            self.changed.notify_waiters();
        }
        self.apply(events);
        result
    }

    fn register_with(
        &self,
        slot: &Arc<Slot>,
        remote: Remote,
        keys: &[String],
        presence: &[String],
        events: &mut Vec<Event>,
    ) -> Result<(), &'static str> {
        let (_, wall) = self.now();
        let mut mesh = lock(&self.mesh);
        if mesh.stopped {
            return Err("stopping");
        }
        let dialer_of = |role: Role, remote: &str| match role {
            Role::Dialer => self.instance_id.clone(),
            Role::Acceptor => remote.to_owned(),
        };
        let mut previous = None;
        if let Some(&serial) = mesh.by_remote.get(&remote.instance_id) {
            let existing = Arc::clone(&mesh.links[&serial]);
            let new_dialer = dialer_of(slot.role, &remote.instance_id);
            let old_dialer = dialer_of(existing.role, &remote.instance_id);
            if new_dialer >= old_dialer {
                return Err("a link to this peer exists");
            }
            // The new link wins on both ends: retire the old one now.
            mesh.links.remove(&serial);
            mesh.by_remote.remove(&remote.instance_id);
            let unsent = {
                let mut link = lock(&existing.link);
                previous = Some(link.interest().clone()).filter(PeerInterest::is_synced);
                link.close()
            };
            existing.end.cancel();
            self.dead_letters(&unsent, &existing.addr, DlqReason::PeerGone);
        } else if mesh.links.len() >= MAX_CLUSTER_PEERS {
            return Err("too many peers");
        }
        mesh.links.insert(slot.serial, Arc::clone(slot));
        mesh.by_remote
            .insert(remote.instance_id.clone(), slot.serial);
        if let Some(d) = mesh.departed.remove(&remote.instance_id) {
            previous = previous.or(Some(d.interest));
        }
        let dialled = (slot.role == Role::Dialer).then_some(slot.addr.as_str());
        if let Some(addr) = dialled {
            // We dialled the peer's cluster address: whatever instance was there before (the
            // node restarted) is not coming back.
            mesh.forget_previous_instances(addr, &remote.instance_id);
            mesh.instance_at
                .insert(addr.to_owned(), remote.instance_id.clone());
        }
        events.extend(mesh.membership.linked(&remote.instance_id, dialled));
        *lock(&slot.registered) = Some(Registered {
            remote,
            connected_at_ms: wall.unix_millis(),
            previous: previous.clone(),
        });
        let known = mesh.membership.addresses();
        let mut link = lock(&slot.link);
        if let Some(previous) = previous {
            link.assume_interest(previous);
        }
        let started = link
            .start_session(keys, self.config.cluster_addr.as_deref(), &known)
            .and_then(|()| {
                if mesh.draining {
                    link.send_drain()
                } else {
                    Ok(())
                }
            })
            .and_then(|()| {
                for chunk in presence {
                    let full = PeerFrame::PresenceFull {
                        chunk: chunk.clone(),
                    };
                    if link.route_presence(full) == Routed::QueueFull {
                        return Err(wse_core::cluster::LinkError::Overloaded);
                    }
                }
                Ok(())
            });
        drop(link);
        drop(mesh);
        started.map_err(|_| "session start failed")
    }

    /// Forgets a link whose session ended; its unwritten messages become dead letters and its
    /// interest is remembered until the peer is back.
    pub(super) fn unregister(&self, slot: &Arc<Slot>) {
        let unsent = lock(&slot.link).close();
        let mut mesh = lock(&self.mesh);
        let mine = mesh
            .links
            .get(&slot.serial)
            .is_some_and(|s| Arc::ptr_eq(s, slot));
        if mine {
            mesh.links.remove(&slot.serial);
            if let Some(r) = lock(&slot.registered).as_ref() {
                let id = r.remote.instance_id.clone();
                mesh.by_remote.remove(&id);
                let last_heard = lock(&slot.link).last_received();
                mesh.membership.unlinked(&id, last_heard);
                if mesh.departed.len() < MAX_CLUSTER_PEERS || mesh.departed.contains_key(&id) {
                    let addr = mesh.addr_of.get(&id).cloned().unwrap_or(slot.addr.clone());
                    // A link that ended before the peer's RESYNC knew nothing new: keep what
                    // was known before it (else its empty set would hide every later loss).
                    let interest = Some(lock(&slot.link).interest().clone())
                        .filter(PeerInterest::is_synced)
                        .or_else(|| r.previous.clone())
                        .unwrap_or_default();
                    mesh.departed.insert(id, Departed { addr, interest });
                }
            }
            drop(mesh);
            self.dead_letters(&unsent, &slot.addr, DlqReason::PeerGone);
            self.changed.notify_waiters();
        }
    }

    /// The peer on `slot` announced its cluster address.
    pub(super) fn announced(self: &Arc<Self>, slot: &Slot, addr: String) {
        let Some(id) = lock(&slot.registered)
            .as_ref()
            .map(|r| r.remote.instance_id.clone())
        else {
            return;
        };
        if Some(&addr) == self.config.cluster_addr.as_ref() {
            return;
        }
        let mut mesh = lock(&self.mesh);
        if mesh.addr_of.len() >= MAX_CLUSTER_PEERS && !mesh.addr_of.contains_key(&id) {
            return;
        }
        if let Some(old) = mesh.addr_of.insert(id.clone(), addr.clone()) {
            mesh.instance_at.remove(&old);
        }
        mesh.forget_previous_instances(&addr, &id);
        let events = mesh.membership.announced(&id, &addr);
        mesh.instance_at.insert(addr, id);
        drop(mesh);
        self.changed.notify_waiters();
        self.apply(events);
    }

    /// Addresses a peer listed (its PeerList).
    pub(super) fn learned(self: &Arc<Self>, addrs: &[String]) {
        let events = lock(&self.mesh).membership.learn(addrs);
        self.apply(events);
    }

    /// `instance` left gracefully (SHUTDOWN): dead at once, and nothing is recorded for it
    /// any more (it meant to go).
    pub(super) fn left(self: &Arc<Self>, instance: &str) {
        let (now, _) = self.now();
        let events = {
            let mut mesh = lock(&self.mesh);
            mesh.departed.remove(instance);
            mesh.membership.left(instance, now)
        };
        self.apply(events);
    }

    /// Membership timers (suspects → dead, forgetting discovered addresses).
    pub(super) fn membership_tick(self: &Arc<Self>) {
        let (now, _) = self.now();
        let events = lock(&self.mesh).membership.handle_timeout(now);
        self.apply(events);
    }

    /// Carries out what membership decided.
    fn apply(self: &Arc<Self>, events: Vec<Event>) {
        for event in events {
            match event {
                Event::Dial(addr) => (self.spawn_dial)(Arc::clone(self), addr),
                Event::Gossip(addrs) => {
                    let mesh = lock(&self.mesh);
                    for slot in mesh.links.values() {
                        if lock(&slot.link).send_peer_list(&addrs).is_err() {
                            slot.end.cancel();
                        }
                        slot.wake.notify_one();
                    }
                }
                Event::Dead { instance } => {
                    // Dead: what it owned (presence) is purged. Its interest stays, so what it
                    // would have received is recorded (DLQ) until it comes back, restarts as a
                    // new incarnation, leaves gracefully, or its address is forgotten.
                    let origin = lock(&self.mesh).origins.remove(&instance);
                    if let (Some(origin), Some(node)) = (origin, self.node.upgrade()) {
                        node.forget_presence(origin);
                    }
                    self.counters.dead_peers.fetch_add(1, Relaxed);
                    self.changed.notify_waiters();
                }
                Event::Forget(addr) => {
                    lock(&self.mesh).departed.retain(|_, d| d.addr != addr);
                    self.changed.notify_waiters();
                }
            }
        }
    }

    pub(super) fn route(&self, topic: &str, payload: &str, stamp: Option<RecoveryTrailer>) {
        let mesh = lock(&self.mesh);
        let mut lost: Vec<(&str, DlqReason)> = Vec::new();
        for slot in mesh.links.values() {
            let routed = lock(&slot.link).route_msg(topic, payload, stamp);
            match routed {
                Routed::Queued => {
                    self.counters.messages_sent.fetch_add(1, Relaxed);
                    slot.wake.notify_one();
                }
                Routed::QueueFull => lost.push((&slot.addr, DlqReason::QueueFull)),
                Routed::Skipped => {}
            }
        }
        for d in mesh.departed.values() {
            if d.interest.matches(topic) {
                lost.push((&d.addr, DlqReason::PeerGone));
            }
        }
        if lost.is_empty() {
            return;
        }
        let payload: Arc<str> = Arc::from(payload);
        let mut dlq = lock(&self.dlq);
        for (peer, reason) in lost {
            self.counters.messages_dropped.fetch_add(1, Relaxed);
            dlq.push(DeadLetter {
                topic: topic.to_owned(),
                payload: Arc::clone(&payload),
                peer: peer.to_owned(),
                reason,
            });
        }
    }

    /// Records unwritten MSG frames as dead letters.
    pub(super) fn dead_letters(&self, frames: &[PeerFrame], peer: &str, reason: DlqReason) {
        let mut dlq = lock(&self.dlq);
        for f in frames {
            if let PeerFrame::Msg { topic, payload, .. } = f {
                self.counters.messages_dropped.fetch_add(1, Relaxed);
                dlq.push(DeadLetter {
                    topic: topic.clone(),
                    payload: Arc::from(payload.as_str()),
                    peer: peer.to_owned(),
                    reason,
                });
            }
        }
    }

    pub(super) fn route_presence(&self, chunks: &[String]) {
        let mesh = lock(&self.mesh);
        for slot in mesh.links.values() {
            let mut link = lock(&slot.link);
            for chunk in chunks {
                let full = PeerFrame::PresenceFull {
                    chunk: chunk.clone(),
                };
                if link.route_presence(full) == Routed::QueueFull {
                    slot.end.cancel();
                    break;
                }
            }
            drop(link);
            slot.wake.notify_one();
        }
    }

    /// A presence chunk arrived on `slot`: it must come from one origin per link, never ours.
    pub(super) fn presence_received(&self, slot: &Slot, chunk: PresenceChunk) -> bool {
        let Some(id) = lock(&slot.registered)
            .as_ref()
            .map(|r| r.remote.instance_id.clone())
        else {
            return false;
        };
        {
            let mut mesh = lock(&self.mesh);
            match mesh.origins.get(&id) {
                Some(o) if *o != chunk.origin => return false,
                Some(_) => {}
                None => {
                    mesh.origins.insert(id, chunk.origin);
                }
            }
        }
        if let Some(node) = self.node.upgrade() {
            node.merge_presence(chunk);
        }
        true
    }

    pub(super) fn interest_changed(&self, first: &[String], last: &[String]) {
        let mesh = lock(&self.mesh);
        for slot in mesh.links.values() {
            let mut link = lock(&slot.link);
            let sent = first
                .iter()
                .try_for_each(|k| link.send_sub(k))
                .and_then(|()| last.iter().try_for_each(|k| link.send_unsub(k)));
            drop(link);
            if sent.is_err() {
                // Overloaded: a rebuilt link starts with a full RESYNC.
                slot.end.cancel();
            }
            slot.wake.notify_one();
        }
    }

    pub(super) fn drain(&self) {
        let mut mesh = lock(&self.mesh);
        mesh.draining = true;
        for slot in mesh.links.values() {
            if lock(&slot.link).send_drain().is_err() {
                slot.end.cancel();
            }
            slot.wake.notify_one();
        }
    }

    pub(super) async fn stop(&self, grace: Duration) {
        {
            let mut mesh = lock(&self.mesh);
            mesh.stopped = true;
            for slot in mesh.links.values() {
                lock(&slot.link).send_shutdown();
                slot.wake.notify_one();
            }
        }
        let deadline = tokio::time::Instant::now() + grace;
        while lock(&self.mesh).len() > 0 && tokio::time::Instant::now() < deadline {
            let changed = self.changed.notified();
            let _ = tokio::time::timeout(Duration::from_millis(50), changed).await;
        }
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}
