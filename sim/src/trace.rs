//! The run's trace: every observation the checkers use, in the order it happened, each with its
//! virtual time. The digest of the trace is what `--check-determinism` compares: same seed,
//! same digest.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use sha2::{Digest, Sha256};

/// One observation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A publication, with the stamp the server gave it.
    Publish {
        /// The topic.
        topic: String,
        /// Its ring's epoch.
        epoch: u32,
        /// Its offset.
        offset: u64,
        /// The publisher's running number (in the payload).
        n: u64,
    },
    /// A stamped message a client delivered to its application.
    Deliver {
        /// Client host index.
        client: usize,
        /// Incarnation of the client host (a crash and bounce starts a new one).
        session: u32,
        /// The topic.
        topic: String,
        /// The stamp's epoch.
        epoch: u32,
        /// The stamp's offset.
        offset: u64,
        /// The payload's number.
        n: u64,
    },
    /// The client was told explicitly that it cannot get what it missed.
    NotRecovered {
        /// Client host index.
        client: usize,
        /// Incarnation.
        session: u32,
        /// The topic.
        topic: String,
        /// The server's epoch (`None`: no ring).
        epoch: Option<u32>,
        /// The server's last offset.
        offset: u64,
    },
    /// A recovery that worked.
    Recovered {
        /// Client host index.
        client: usize,
        /// Incarnation.
        session: u32,
        /// The topic.
        topic: String,
        /// Messages replayed.
        count: u64,
    },
    /// The client noticed a gap and asked for recovery.
    Gap {
        /// Client host index.
        client: usize,
        /// Incarnation.
        session: u32,
        /// The topic.
        topic: String,
        /// The offset it expected.
        expected: u64,
        /// The offset it got.
        got: u64,
    },
    /// Connected and subscribed.
    Ready {
        /// Client host index.
        client: usize,
        /// Incarnation.
        session: u32,
        /// Not the first connection of this incarnation.
        reconnected: bool,
        /// The server it reached.
        server: usize,
    },
    /// Lost the connection.
    Disconnected {
        /// Client host index.
        client: usize,
        /// Incarnation.
        session: u32,
        /// The close code, `None` for a network error.
        close: Option<u16>,
    },
    /// The client reported a malformed or undecryptable frame from the server.
    ProtocolError {
        /// Client host index.
        client: usize,
        /// Incarnation.
        session: u32,
        /// What the client said.
        detail: String,
    },
    /// The client's end-to-end key exchange completed on its current connection.
    Encrypted {
        /// Client host index.
        client: usize,
        /// Incarnation.
        session: u32,
    },
    /// The server rotated the client's key.
    KeyRotated {
        /// Client host index.
        client: usize,
        /// Incarnation.
        session: u32,
    },
    /// A fault the timeline applied (or the heal).
    Fault(String),
    /// A periodic sample of a server's budgets.
    ServerSample {
        /// Server index.
        server: usize,
        /// Bytes held by recovery rings.
        recovery_bytes: u64,
        /// The configured budget.
        recovery_budget: u64,
        /// Open connections.
        connections: u64,
    },
    /// A cluster origin's live links, recorded by its publisher (in the step of a publication)
    /// whenever they changed.
    Links {
        /// The origin.
        server: usize,
        /// Its incarnation.
        incarnation: u32,
        /// The servers it has a live link to.
        linked: Vec<usize>,
        /// The instance id behind each of them (in `linked`'s order): a peer that restarted
        /// between two records shows up with another instance.
        instances: Vec<String>,
    },
    /// A node's cluster figures, sampled with its budgets.
    ClusterSample {
        /// Server index.
        server: usize,
        /// Its incarnation (counters start again at 0 on a restart).
        incarnation: u32,
        /// Live links.
        peers: usize,
        /// MSGs received for topics without a local subscriber.
        unwanted: u64,
        /// Times a dial loop's breaker opened.
        breaker_opened: u64,
    },
    /// A dead letter drained from a node's DLQ.
    DeadLetter {
        /// The node whose DLQ held it.
        server: usize,
        /// The topic.
        topic: String,
        /// The payload's number.
        n: u64,
        /// The peer it did not reach (`None`: an address the harness does not know).
        peer: Option<usize>,
        /// Why.
        reason: String,
        /// Made by the `route` of this very publication (drained in the same step).
        routed: bool,
    },
    /// The harness asked a client to leave (close gracefully): the `Disconnected` that follows
    /// is when the server learned it, not a heartbeat timeout later.
    Leave {
        /// Client host index.
        client: usize,
        /// Incarnation.
        session: u32,
    },
    /// A watcher's subscription to the presence topic was acknowledged (its connection starts
    /// counting here), with its node's presence view of that topic read at that moment (`None`:
    /// the node was not reachable from the harness).
    WatcherReady {
        /// Watcher index (= its server).
        watcher: usize,
        /// The users its node showed.
        present: Option<Vec<String>>,
    },
    /// A watcher's connection ended.
    WatcherDown {
        /// Watcher index.
        watcher: usize,
    },
    /// A `presence_join` (`join`) or `presence_leave` frame a watcher received.
    PresenceEvent {
        /// Watcher index.
        watcher: usize,
        /// Join or leave.
        join: bool,
        /// The user.
        user: String,
    },
    /// A check's finding (recorded so it is part of the digest too).
    Note(String),
}

/// A record with its virtual time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Milliseconds since the simulation started.
    pub at_ms: u64,
    /// What happened.
    pub record: Record,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>8} {:?}", self.at_ms, self.record)
    }
}

/// The shared trace (hosts and the fault timeline all append to it).
#[derive(Clone, Debug, Default)]
pub struct Trace(Arc<Mutex<Vec<Entry>>>);

impl Trace {
    /// Appends `record` at `at_ms`.
    pub fn push(&self, at_ms: u64, record: Record) {
        self.lock().push(Entry { at_ms, record });
    }

    /// A copy of every entry so far.
    pub fn entries(&self) -> Vec<Entry> {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// SHA-256 over the entries' text forms, in hex: equal digests mean equal traces.
pub fn digest(entries: &[Entry]) -> String {
    let mut h = Sha256::new();
    for e in entries {
        h.update(e.to_string().as_bytes());
        h.update(b"\n");
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
