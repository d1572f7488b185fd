//! Fuzz target: the cluster membership machine (`wse_core::cluster::membership::Membership`)
//! under arbitrary gossip, links, announcements, unlinks, goodbyes and clock steps.
//!
//! Invariants after every step: at most `max_peers` addresses and nodes; this node's own
//! address is never on the dial list; an address is passed on (`Gossip`) at most once while it
//! stays known, and every `Dial` is for an address that is then on the list; an instance is
//! declared `Dead` at most once per life (until it is linked again) and only if it was known;
//! `Forget` names discovered addresses only (static peers and seeds are dialled forever); the
//! next deadline is never in the past after `handle_timeout`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bolero::TypeGenerator;
use wse_core::Instant;
use wse_core::cluster::membership::{Event, Membership, MembershipConfig, is_valid_addr};

#[derive(Debug, TypeGenerator)]
struct Input {
    max_peers: u8,
    ops: Vec<Op>,
}

#[derive(Debug, TypeGenerator)]
enum Op {
    Learn(Vec<u8>),
    Linked(u8, Option<u8>),
    Announced(u8, u8),
    Unlinked(u8),
    Left(u8),
    /// × 256 ms.
    Tick(u16),
}

const OWN: &str = "10.0.0.0:7100";
const STATIC: &str = "10.0.0.1:7100";
const SEED: &str = "10.0.0.2:7100";

fn addr(n: u8) -> String {
    match n % 12 {
        0 => OWN.into(),
        1 => STATIC.into(),
        2 => SEED.into(),
        3 => "not an address".into(),
        4 => "node-x.local:7100".into(),
        5 => "[::1]:7100".into(),
        k => format!("10.0.0.{k}:7100"),
    }
}

fn instance(n: u8) -> String {
    format!("i{}", n % 8)
}

#[test]
fn cluster_membership() {
    bolero::check!().with_type::<Input>().for_each(|input| {
        let config = MembershipConfig {
            dead_after: Duration::from_secs(15),
            forget_after: Duration::from_secs(60),
            max_peers: usize::from(input.max_peers % 10) + 1,
        };
        let mut m = Membership::new(config, Some(OWN.into()), &[STATIC.into()], &[SEED.into()]);
        let mut now = Instant::from_secs(1);
        let mut gossiped: BTreeSet<String> = BTreeSet::new();
        let mut dead: BTreeMap<String, bool> = BTreeMap::new();
        for op in &input.ops {
            let events = match op {
                Op::Learn(list) => {
                    m.learn(&list.iter().take(8).map(|n| addr(*n)).collect::<Vec<_>>())
                }
                Op::Linked(i, a) => {
                    let a = a.map(addr);
                    dead.insert(instance(*i), false);
                    m.linked(&instance(*i), a.as_deref())
                }
                Op::Announced(i, a) => m.announced(&instance(*i), &addr(*a)),
                Op::Unlinked(i) => {
                    m.unlinked(&instance(*i), now);
                    Vec::new()
                }
                Op::Left(i) => m.left(&instance(*i), now),
                Op::Tick(ms) => {
                    now = now.saturating_add(Duration::from_millis(u64::from(*ms) * 256));
                    let e = m.handle_timeout(now);
                    if let Some(next) = m.poll_timeout() {
                        assert!(next > now, "a deadline left in the past");
                    }
                    e
                }
            };
            for e in events {
                match e {
                    Event::Dial(a) => assert!(m.should_dial(&a), "dial of an unknown {a}"),
                    Event::Gossip(list) => {
                        for a in list {
                            assert!(is_valid_addr(&a) && a != OWN);
                            assert!(gossiped.insert(a.clone()), "{a} gossiped twice");
                        }
                    }
                    Event::Dead { instance } => {
                        let was = dead.insert(instance.clone(), true);
                        assert_eq!(was, Some(false), "{instance} dead twice or never known");
                    }
                    Event::Forget(a) => {
                        assert!(
                            a != STATIC && a != SEED,
                            "a configured address was forgotten"
                        );
                        assert!(!m.should_dial(&a));
                        // Forgotten: it may be learned and passed on again later.
                        gossiped.remove(&a);
                    }
                }
            }
            let addresses = m.addresses();
            assert!(addresses.len() <= config.max_peers);
            assert!(!addresses.iter().any(|a| a == OWN));
            assert!(m.nodes().len() <= config.max_peers);
        }
    });
}
