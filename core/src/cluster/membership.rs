//! Cluster membership (issue 12, UPSTREAM §10.4–§10.7, CONTRACT D14–D15): who the node should
//! dial, who is alive, and when a peer that went away is declared dead.
//!
//! Two tables:
//!
//! - **addresses** to dial: the static peers and seeds of the configuration and every address
//!   learned by gossip (PeerAnnounce, PeerList), each with where it came from and the instance
//!   last seen behind it. Static peers and seeds are dialled forever; a discovered address whose
//!   node is dead is forgotten after [`MembershipConfig::forget_after`].
//! - **nodes** by instance id (a node's incarnation: a fresh id per start): alive while a link to
//!   it is up, suspect once the link ended, dead at `last_heard + dead_after` (so a node that
//!   stopped answering is dead exactly one heartbeat timeout after it was last heard, whether the
//!   link ended by the heartbeat or by a reset), or **at once** when its address shows up with a
//!   new instance id — the node restarted, and its previous life is over.
//!
//! Gossip converges without amplification: an address is passed on ([`Event::Gossip`]) only the
//! first time this node learns it, so each address crosses each node at most once. Addresses are
//! `host:port` with a hostname or an IP literal (`[v6]:port` included); anything else, this
//! node's own address, and addresses past [`MembershipConfig::max_peers`] are ignored and
//! counted.
//!
//! Inputs: [`Membership::learn`], [`Membership::linked`], [`Membership::announced`],
//! [`Membership::unlinked`], [`Membership::handle_timeout`]. Outputs: [`Event`]s for the driver
//! (dial, gossip, purge a dead node, stop dialling). No clock, no I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::Instant;

/// Most addresses and nodes tracked (UPSTREAM `MAX_CLUSTER_PEERS`).
pub const MAX_PEERS: usize = 256;
/// Longest address accepted (a DNS name is at most 253 bytes, plus `:port`).
pub const MAX_ADDR_LEN: usize = 261;

/// Membership timings and bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MembershipConfig {
    /// A node not heard from for this long is dead (the link heartbeat timeout, 15 s).
    pub dead_after: Duration,
    /// A discovered address whose node is dead is dropped from the dial list after this.
    pub forget_after: Duration,
    /// Most addresses, and most nodes, tracked.
    pub max_peers: usize,
}

impl Default for MembershipConfig {
    fn default() -> MembershipConfig {
        MembershipConfig {
            dead_after: Duration::from_secs(15),
            forget_after: Duration::from_secs(600),
            max_peers: MAX_PEERS,
        }
    }
}

/// Where an address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// The configuration's peer list: dialled forever.
    Static,
    /// The configuration's seeds: dialled forever.
    Seed,
    /// Learned by gossip: forgotten after its node has been dead for `forget_after`.
    Discovered,
}

/// A node's liveness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// A link to it is up.
    Alive,
    /// Its link ended; dead at `dead_at` unless a link comes back.
    Suspect {
        /// When it will be declared dead.
        dead_at: Instant,
    },
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Start dialling this newly learned address.
    Dial(String),
    /// Tell every linked peer about these newly learned addresses (a PeerList).
    Gossip(Vec<String>),
    /// This node incarnation is dead: purge what it owned (presence), forget its interest.
    Dead {
        /// Its instance id.
        instance: String,
    },
    /// Stop dialling this discovered address.
    Forget(String),
}

#[derive(Clone, Debug)]
struct AddrInfo {
    source: Source,
    /// The instance last seen behind it.
    instance: Option<String>,
    /// When its node was declared dead (discovered addresses are forgotten from there).
    dead_since: Option<Instant>,
}

#[derive(Clone, Debug)]
struct Node {
    state: NodeState,
    addr: Option<String>,
}

/// One node's view of the cluster (see the module doc).
#[derive(Clone, Debug)]
pub struct Membership {
    config: MembershipConfig,
    own_addr: Option<String>,
    addrs: BTreeMap<String, AddrInfo>,
    nodes: BTreeMap<String, Node>,
    ignored: u64,
}

/// True for `host:port` with a non-empty host of letters, digits, `-`, `.`, `_`, or an IP
/// literal (`[v6]` for IPv6), and a non-zero port.
pub fn is_valid_addr(addr: &str) -> bool {
    if addr.len() > MAX_ADDR_LEN {
        return false;
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return false;
    };
    if !port.parse::<u16>().is_ok_and(|p| p != 0) {
        return false;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

impl Membership {
    /// The configured addresses (invalid ones and `own_addr` skipped, and counted).
    pub fn new(
        config: MembershipConfig,
        own_addr: Option<String>,
        statics: &[String],
        seeds: &[String],
    ) -> Membership {
        let mut m = Membership {
            config,
            own_addr,
            addrs: BTreeMap::new(),
            nodes: BTreeMap::new(),
            ignored: 0,
        };
        for (list, source) in [(statics, Source::Static), (seeds, Source::Seed)] {
            for a in list {
                m.add(a, source);
            }
        }
        m
    }

    fn add(&mut self, addr: &str, source: Source) -> bool {
        if self.addrs.contains_key(addr) {
            return false;
        }
        if Some(addr) == self.own_addr.as_deref()
            || !is_valid_addr(addr)
            || self.addrs.len() >= self.config.max_peers
        {
            self.ignored += 1;
            return false;
        }
        self.addrs.insert(
            addr.to_owned(),
            AddrInfo {
                source,
                instance: None,
                dead_since: None,
            },
        );
        true
    }

    /// Addresses a peer told us about (its PeerAnnounce or PeerList): each one new to us is
    /// dialled and passed on once.
    pub fn learn(&mut self, addrs: &[String]) -> Vec<Event> {
        let mut fresh = Vec::new();
        for a in addrs {
            if self.add(a, Source::Discovered) {
                fresh.push(a.clone());
            }
        }
        let mut events: Vec<Event> = fresh.iter().cloned().map(Event::Dial).collect();
        if !fresh.is_empty() {
            events.push(Event::Gossip(fresh));
        }
        events
    }

    /// A link to `instance` was registered (`addr` when the dialled address is known).
    pub fn linked(&mut self, instance: &str, addr: Option<&str>) -> Vec<Event> {
        if !self.nodes.contains_key(instance) && self.nodes.len() >= self.config.max_peers {
            self.ignored += 1;
            return Vec::new();
        }
        let node = self.nodes.entry(instance.to_owned()).or_insert(Node {
            state: NodeState::Alive,
            addr: None,
        });
        node.state = NodeState::Alive;
        match addr {
            Some(a) => self.announced(instance, a),
            None => Vec::new(),
        }
    }

    /// `instance` says it is reachable at `addr` (its PeerAnnounce). If another, earlier
    /// instance was behind that address, that one restarted into this one: it is dead now.
    pub fn announced(&mut self, instance: &str, addr: &str) -> Vec<Event> {
        let mut events = Vec::new();
        if Some(addr) == self.own_addr.as_deref() || !is_valid_addr(addr) {
            self.ignored += 1;
            return events;
        }
        if !self.addrs.contains_key(addr) {
            events.extend(self.learn(&[addr.to_owned()]));
            if !self.addrs.contains_key(addr) {
                return events; // over the bound
            }
        }
        let info = self
            .addrs
            .get_mut(addr)
            .expect("invariant: the address was found or added above");
        info.dead_since = None;
        let previous = info.instance.replace(instance.to_owned());
        if let Some(node) = self.nodes.get_mut(instance) {
            node.addr = Some(addr.to_owned());
        }
        if let Some(old) = previous.filter(|old| old != instance)
            && self.nodes.remove(&old).is_some()
        {
            events.push(Event::Dead { instance: old });
        }
        events
    }

    /// The link to `instance` ended; it was last heard at `last_heard`.
    pub fn unlinked(&mut self, instance: &str, last_heard: Instant) {
        if let Some(node) = self.nodes.get_mut(instance) {
            node.state = NodeState::Suspect {
                dead_at: last_heard.saturating_add(self.config.dead_after),
            };
        }
    }

    /// `instance` said goodbye (SHUTDOWN): it is dead now, not a heartbeat timeout later, so its
    /// users leave at once on a graceful stop.
    pub fn left(&mut self, instance: &str, now: Instant) -> Vec<Event> {
        let Some(node) = self.nodes.remove(instance) else {
            return Vec::new();
        };
        if let Some(info) = node.addr.and_then(|a| self.addrs.get_mut(&a)) {
            info.dead_since = Some(now);
        }
        vec![Event::Dead {
            instance: instance.to_owned(),
        }]
    }

    /// Nodes whose link ended and that are not dead yet.
    pub fn suspects(&self) -> usize {
        self.nodes.len() - self.alive()
    }

    /// When [`Membership::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let suspects = self.nodes.values().filter_map(|n| match n.state {
            NodeState::Suspect { dead_at } => Some(dead_at),
            NodeState::Alive => None,
        });
        let forgets = self.addrs.values().filter_map(|a| {
            (a.source == Source::Discovered)
                .then_some(a.dead_since?)
                .map(|since| since.saturating_add(self.config.forget_after))
        });
        suspects.chain(forgets).min()
    }

    /// Declares suspects dead and forgets long-dead discovered addresses.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        let dead: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| matches!(n.state, NodeState::Suspect { dead_at } if dead_at <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in dead {
            let node = self.nodes.remove(&id).expect("invariant: listed above");
            if let Some(info) = node.addr.and_then(|a| self.addrs.get_mut(&a)) {
                info.dead_since = Some(now);
            }
            events.push(Event::Dead { instance: id });
        }
        let forget: Vec<String> = self
            .addrs
            .iter()
            .filter(|(_, a)| {
                a.source == Source::Discovered
                    && a.dead_since
                        .is_some_and(|s| s.saturating_add(self.config.forget_after) <= now)
            })
            .map(|(addr, _)| addr.clone())
            .collect();
        for addr in forget {
            self.addrs.remove(&addr);
            events.push(Event::Forget(addr));
        }
        events
    }

    /// True while `addr` is on the dial list.
    pub fn should_dial(&self, addr: &str) -> bool {
        self.addrs.contains_key(addr)
    }

    /// Every address on the dial list, sorted (the PeerList this node sends a new peer).
    pub fn addresses(&self) -> Vec<String> {
        self.addrs.keys().cloned().collect()
    }

    /// Live and suspect nodes: `(instance, announced address, state)`, by instance id.
    pub fn nodes(&self) -> Vec<(String, Option<String>, NodeState)> {
        self.nodes
            .iter()
            .map(|(id, n)| (id.clone(), n.addr.clone(), n.state))
            .collect()
    }

    /// Nodes with a live link.
    pub fn alive(&self) -> usize {
        self.nodes
            .values()
            .filter(|n| n.state == NodeState::Alive)
            .count()
    }

    /// Addresses and nodes ignored (invalid, our own, over the bound).
    pub fn ignored(&self) -> u64 {
        self.ignored
    }
}

#[cfg(test)]
#[path = "membership_tests.rs"]
mod tests;
