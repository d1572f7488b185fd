//! Message recovery on one node (UPSTREAM §8, with §13.3 #7–#9 fixed): publications to a topic
//! are stamped and stored by `wse-core`'s [`RecoveryStore`]; `subscribe_with_recovery` replays
//! what a reconnecting client missed.
//!
//! Ordering: the store's lock is held from stamping a publication until it is queued to every
//! subscriber, and from subscribing a connection until its replay is queued. So for one
//! connection a replay never interleaves with live traffic of the same topic: every publication
//! is either in the replay (stored before) or queued after it (published after).
//!
//! Budget: a replay is not charged to the connection's outbound byte budget. Its frames are the
//! ring's own `Bytes` (already counted by the recovery memory budget, and at most
//! `recovery_max_messages` of them), and a slow consumer closed with 1013 has by construction
//! missed more than its budget: charging the replay would make it unrecoverable forever. Live
//! traffic queued after the replay is charged as usual, so a client that is still slow is
//! closed again; a full frame queue closes it too (1013). Never a silent gap.
//!
//! Lock order: the store, then the entropy source, then topic shards, then `conns`, then a
//! machine (the same order `broadcast_local` takes).

use std::collections::BTreeMap;
use std::time::Duration;

use wse_core::ConnId;
use wse_core::cluster::RecoveryTrailer;
use wse_core::glob::is_glob;
use wse_core::protocol::Frame;
use wse_core::pubsub::SubscribeError;
use wse_core::recovery::{Epoch, EpochParseError, Recovery, RecoveryStore};

use super::{Server, Shared, lock};
use crate::wsframe;

/// How often idle rings are checked for expiry (their TTL is counted in seconds).
pub(super) const EXPIRY_TICK: Duration = Duration::from_secs(1);

/// The recovery answer for one topic: the per-topic dict of UPSTREAM §8.4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicRecovery {
    /// The topic ring's epoch, `None` when there is no ring (or the topic was refused).
    pub epoch: Option<Epoch>,
    /// The newest stored offset (0 without a ring).
    pub offset: u64,
    /// Whether the topic has a ring at all.
    pub recoverable: bool,
    /// Whether the missed messages were replayed (all of them).
    pub recovered: bool,
    /// How many messages were replayed.
    pub count: usize,
}

impl TopicRecovery {
    /// No ring (or not probed): `epoch: None, offset: 0`, nothing recoverable.
    pub const NOTHING: TopicRecovery = TopicRecovery {
        epoch: None,
        offset: 0,
        recoverable: false,
        recovered: false,
        count: 0,
    };

    fn position(epoch: Epoch, last_offset: u64) -> TopicRecovery {
        TopicRecovery {
            epoch: Some(epoch),
            offset: last_offset,
            recoverable: true,
            recovered: false,
            count: 0,
        }
    }
}

/// The result of [`Server::subscribe_with_recovery`] (UPSTREAM §8.4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryOutcome {
    /// True only when recovery was asked for, topics were given, and every topic recovered.
    pub recovered: bool,
    /// Per requested topic.
    pub topics: BTreeMap<String, TopicRecovery>,
}

/// Why [`Server::subscribe_with_recovery`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// `epoch` is not 1–8 hex digits.
    #[error(transparent)]
    InvalidEpoch(#[from] EpochParseError),
    /// The subscription limit was reached.
    #[error(transparent)]
    Subscribe(#[from] SubscribeError),
}

/// What a topic's ring holds, for the HTTP API: the epoch, the offset of the first message, and
/// the messages (stamped JSON text), oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History {
    /// The ring's epoch.
    pub epoch: Epoch,
    /// The offset of `messages[0]`.
    pub first_offset: u64,
    /// The stored messages as sent.
    pub messages: Vec<String>,
}

impl Server {
    /// The newest `limit` messages stored for `topic` (`None` without recovery or without a
    /// ring).
    pub fn recovery_history(&self, topic: &str, limit: usize) -> Option<History> {
        let store = self.shared.recovery.as_ref()?;
        let (epoch, first_offset, frames) = lock(store).history(topic, limit)?;
        let messages = frames
            .iter()
            .filter_map(wsframe::server_frame_payload)
            .map(|p| String::from_utf8_lossy(&p).into_owned())
            .collect();
        Some(History {
            epoch,
            first_offset,
            messages,
        })
    }

    /// Subscribes `conn` to `topics` and, when `recover` is set and both `epoch` and `offset`
    /// (the client's last position) are given, replays what it missed in every topic, using that
    /// one position for each topic as the original does (call once per topic for per-topic
    /// positions). Topics the connection's ACL refuses are reported as having nothing and are
    /// never probed (fail closed). See [`TopicRecovery`] for the per-topic answer.
    pub fn subscribe_with_recovery(
        &self,
        conn: ConnId,
        topics: &[String],
        recover: bool,
        epoch: Option<&str>,
        offset: Option<u64>,
    ) -> Result<RecoveryOutcome, RecoveryError> {
        let position = match (recover, epoch, offset) {
            (true, Some(e), Some(o)) => Some((e.parse::<Epoch>()?, o)),
            _ => None,
        };
        let shared = &self.shared;
        let Some(store) = &shared.recovery else {
            self.subscribe_connection(conn, topics, None, None)?;
            let topics = topics
                .iter()
                .map(|t| (t.clone(), TopicRecovery::NOTHING))
                .collect();
            return Ok(RecoveryOutcome {
                recovered: false,
                topics,
            });
        };
        // Held until the replay is queued: see the module doc.
        let store = lock(store);
        self.subscribe_connection(conn, topics, None, None)?;
        let peer = lock(&shared.conns).get(&conn).cloned();
        let acl = peer.as_ref().map(|p| lock(&p.machine).topic_acl().cloned());
        let mut outcome = RecoveryOutcome::default();
        let mut all_recovered = !topics.is_empty();
        for topic in topics {
            let permitted = acl.as_ref().is_none_or(|acl| {
                acl.as_ref().is_none_or(|a| {
                    a.allows_subscription(topic) && (is_glob(topic) || a.allows_topic(topic))
                })
            });
            let answer = if !permitted {
                TopicRecovery::NOTHING
            } else if let (Some((epoch, after)), Some(peer)) = (position, &peer) {
                self.replay(&store, peer, topic, epoch, after)
            } else {
                store
                    .position(topic)
                    .map_or(TopicRecovery::NOTHING, |(e, o)| {
                        TopicRecovery::position(e, o)
                    })
            };
            all_recovered &= answer.recovered;
            outcome.topics.insert(topic.clone(), answer);
        }
        outcome.recovered = position.is_some() && all_recovered;
        Ok(outcome)
    }

    fn replay(
        &self,
        store: &RecoveryStore,
        peer: &super::Peer,
        topic: &str,
        epoch: Epoch,
        after_offset: u64,
    ) -> TopicRecovery {
        let shared = &self.shared;
        match store.since(topic, epoch, after_offset) {
            Recovery::NoHistory => TopicRecovery::NOTHING,
            Recovery::NotRecovered { epoch, last_offset } => {
                TopicRecovery::position(epoch, last_offset)
            }
            Recovery::Recovered {
                epoch,
                last_offset,
                messages,
            } => {
                let mut m = lock(&peer.machine);
                if !m.is_open() {
                    return TopicRecovery::position(epoch, last_offset);
                }
                let count = messages.len();
                for wire in &messages {
                    shared.enqueue_replay(peer, &mut m, wire);
                }
                shared.route(peer, &mut m);
                TopicRecovery {
                    epoch: Some(epoch),
                    offset: last_offset,
                    recoverable: true,
                    recovered: true,
                    count,
                }
            }
        }
    }
}

impl Shared {
    /// Publishes an injected text to `topic`: stamped and stored when recovery is on, then sent
    /// to the topic's subscribers, under the store's lock (module doc), and with `route` to the
    /// cluster peers that want it, carrying the same stamp (D16) — still under that lock, so
    /// peers receive one origin's messages in offset order. Returns the stamp.
    pub(super) fn publish(&self, topic: &str, injected: &str, route: bool) -> Option<(Epoch, u64)> {
        let cluster = self.cluster.get().filter(|_| route);
        let Some(store) = &self.recovery else {
            let wire = wsframe::encode_core(&Frame::text(injected.to_owned()));
            self.deliver(topic, &wire);
            if let Some(cluster) = cluster {
                cluster.route(topic, injected, None);
            }
            return None;
        };
        let mut store = lock(store);
        let (now, _) = self.now();
        let published = {
            let mut rng = lock(&self.rng);
            store.publish(topic, injected, now, &mut *rng, |stamped| {
                wsframe::encode_core(&Frame::text(stamped.to_owned()))
            })
        };
        self.deliver(topic, &published.bytes);
        if let Some(cluster) = cluster {
            let stamp = RecoveryTrailer {
                epoch: published.epoch,
                offset: published.offset,
            };
            cluster.route(topic, injected, Some(stamp));
        }
        Some((published.epoch, published.offset))
    }

    /// Delivers a publication a peer routed here: stored under its origin's stamp when it has
    /// one and recovery is on (a duplicate identity is not delivered twice), else sent as the
    /// plain text it came as. Under the store's lock, like a local publish.
    pub(super) fn deliver_routed(&self, topic: &str, text: &str, trailer: Option<RecoveryTrailer>) {
        self.topic_counts
            .record(topic, |t| self.registry.subscriber_count(t) > 0);
        let (Some(trailer), Some(store)) = (trailer, &self.recovery) else {
            let wire = wsframe::encode_core(&Frame::text(text.to_owned()));
            self.deliver(topic, &wire);
            return;
        };
        let mut store = lock(store);
        let (now, _) = self.now();
        let stored = store.store_foreign(topic, text, trailer.epoch, trailer.offset, now, |s| {
            wsframe::encode_core(&Frame::text(s.to_owned()))
        });
        if !stored.duplicate {
            self.deliver(topic, &stored.bytes);
        }
    }

    /// `(recovery_topic_count, recovery_total_bytes)`, zeros when recovery is off.
    pub(super) fn recovery_figures(&self) -> (usize, usize) {
        self.recovery.as_ref().map_or((0, 0), |store| {
            let store = lock(store);
            (store.topic_count(), store.total_bytes())
        })
    }
}

/// Drops the rings whose TTL passed (run every [`EXPIRY_TICK`]).
pub(super) fn expire_rings(shared: &Shared) {
    if let Some(store) = &shared.recovery {
        let (now, _) = shared.now();
        let _ = lock(store).evict_expired(now);
    }
}
