//! Node identity and the hybrid logical clock that stamps presence entries.
//!
//! Owns [`NodeId`] (who wrote an entry), [`Hlc`] (when, as a totally ordered stamp) and
//! [`HlcClock`] (the per-node generator of stamps).
//!
//! Inputs: the driver's [`WallClock`] on every [`HlcClock::now`], and every remote stamp the node
//! receives through [`HlcClock::observe`]. Output: stamps.
//!
//! Invariants:
//!
//! - stamps are ordered by `(wall_ms, counter, node)`, a total order: two different nodes never
//!   produce equal stamps, so last-writer-wins never needs arrival order to break a tie (the
//!   original used `>=` on bare milliseconds, which made the winner depend on delivery order);
//! - [`HlcClock::now`] is strictly increasing, even when the wall clock steps backwards: it then
//!   keeps the last wall time and counts up;
//! - after [`HlcClock::observe`]`(r)`, every later local stamp is greater than `r`.
//!
//! A peer stamp far in the future would drag this node's clock along with it. Cluster peers are
//! authenticated (mTLS), and the cluster layer should drop frames whose stamp is implausibly far
//! ahead ([`Hlc::is_within_skew`]) before observing them.

use std::fmt;

use crate::time::WallClock;

/// The identity of a cluster node, the origin of presence entries.
///
/// A `u64` rather than a string: it is `Copy`, cheap to compare and to put in every key, and has
/// a fixed wire size. The driver chooses it once per process start (for example from the
/// injected entropy source), so a restarted node is a new origin and cannot collide with stamps
/// it issued in a previous life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node-{:016x}", self.0)
    }
}

/// A hybrid logical clock stamp. Ordered by `wall_ms`, then `counter`, then `node` (the field
/// order, so the derived `Ord` is exactly that).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hlc {
    /// Wall-clock milliseconds since the Unix epoch (the largest one this clock has seen).
    pub wall_ms: u64,
    /// Logical counter within one `wall_ms`.
    pub counter: u32,
    /// The node that issued the stamp.
    pub node: NodeId,
}

impl Hlc {
    /// A stamp from its parts.
    pub const fn new(wall_ms: u64, counter: u32, node: NodeId) -> Self {
        Hlc {
            wall_ms,
            counter,
            node,
        }
    }

    /// The next stamp after `self` issued by `node`: one counter step later (carrying into
    /// `wall_ms` when the counter is exhausted). Saturates at the largest stamp.
    pub fn successor(self, node: NodeId) -> Hlc {
        match self.counter.checked_add(1) {
            Some(counter) => Hlc::new(self.wall_ms, counter, node),
            None => match self.wall_ms.checked_add(1) {
                Some(wall_ms) => Hlc::new(wall_ms, 0, node),
                None => Hlc::new(u64::MAX, u32::MAX, node.max(self.node)),
            },
        }
    }

    /// Whether this stamp is at most `max_skew_ms` ahead of `wall`: the check a cluster layer
    /// applies to peer stamps before [`HlcClock::observe`].
    pub fn is_within_skew(self, wall: WallClock, max_skew_ms: u64) -> bool {
        self.wall_ms <= wall.unix_millis().saturating_add(max_skew_ms)
    }
}

/// The stamp generator of one node. See the module documentation.
#[derive(Clone, Debug)]
pub struct HlcClock {
    /// Whose stamps these are.
    node: NodeId,
    /// The largest `(wall_ms, counter)` issued or observed so far.
    last_wall_ms: u64,
    last_counter: u32,
}

impl HlcClock {
    /// A clock for `node` that has seen nothing yet.
    pub const fn new(node: NodeId) -> Self {
        HlcClock {
            node,
            last_wall_ms: 0,
            last_counter: 0,
        }
    }

    /// The node this clock stamps for.
    pub const fn node(&self) -> NodeId {
        self.node
    }

    /// A fresh stamp, greater than every stamp issued or observed before.
    pub fn now(&mut self, wall: WallClock) -> Hlc {
        let wall_ms = wall.unix_millis();
        let stamp = if wall_ms > self.last_wall_ms {
            Hlc::new(wall_ms, 0, self.node)
        } else {
            Hlc::new(self.last_wall_ms, self.last_counter, self.node).successor(self.node)
        };
        self.last_wall_ms = stamp.wall_ms;
        self.last_counter = stamp.counter;
        stamp
    }

    /// Takes a remote stamp into account, so that every later [`HlcClock::now`] exceeds it.
    pub fn observe(&mut self, remote: Hlc) {
        if (remote.wall_ms, remote.counter) > (self.last_wall_ms, self.last_counter) {
            self.last_wall_ms = remote.wall_ms;
            self.last_counter = remote.counter;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NodeId = NodeId(1);
    const B: NodeId = NodeId(2);

    #[test]
    fn stamps_order_by_wall_then_counter_then_node() {
        let ordered = [
            Hlc::new(1, 5, B),
            Hlc::new(2, 0, A),
            Hlc::new(2, 1, A),
            Hlc::new(2, 1, B),
            Hlc::new(3, 0, A),
        ];
        for pair in ordered.windows(2) {
            assert!(pair[0] < pair[1], "{:?} < {:?}", pair[0], pair[1]);
        }
    }

    #[test]
    fn now_is_strictly_increasing_even_when_the_wall_clock_goes_backwards() {
        let mut clock = HlcClock::new(A);
        let walls_ms = [1_000, 1_000, 999, 500, 1_001, 1_001, 0];
        let mut last = None;
        for ms in walls_ms {
            let stamp = clock.now(WallClock::from_unix_millis(ms));
            if let Some(prev) = last {
                assert!(stamp > prev, "{stamp:?} after {prev:?} (wall {ms})");
            }
            assert_eq!(stamp.node, A);
            last = Some(stamp);
        }
        assert_eq!(last, Some(Hlc::new(1_001, 2, A)));
    }

    #[test]
    fn now_after_observe_exceeds_the_remote_stamp() {
        let cases = [
            // (local wall before, remote stamp, local wall after)
            (1_000, Hlc::new(5_000, 7, B), 1_000),
            (1_000, Hlc::new(1_000, 3, B), 1_000),
            (9_000, Hlc::new(5_000, 7, B), 9_000),
        ];
        for (before, remote, after) in cases {
            let mut clock = HlcClock::new(A);
            clock.now(WallClock::from_unix_millis(before));
            clock.observe(remote);
            let stamp = clock.now(WallClock::from_unix_millis(after));
            assert!(stamp > remote, "{stamp:?} > {remote:?}");
        }
    }

    #[test]
    fn successor_carries_into_wall_ms_and_saturates() {
        assert_eq!(Hlc::new(4, 9, B).successor(A), Hlc::new(4, 10, A));
        assert_eq!(Hlc::new(4, u32::MAX, B).successor(A), Hlc::new(5, 0, A));
        let top = Hlc::new(u64::MAX, u32::MAX, B);
        assert!(top.successor(A) >= top);
    }

    #[test]
    fn stamps_far_ahead_of_the_wall_clock_are_not_within_skew() {
        let wall = WallClock::from_unix_millis(10_000);
        assert!(Hlc::new(10_500, 0, B).is_within_skew(wall, 1_000));
        assert!(!Hlc::new(11_001, 0, B).is_within_skew(wall, 1_000));
    }
}
