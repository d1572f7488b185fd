use proptest::prelude::*;

use super::*;

const T0: Instant = Instant::from_secs(100);

fn at(s: u64) -> Instant {
    T0.saturating_add(Duration::from_secs(s))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn m(own: &str, statics: &[&str], seeds: &[&str]) -> Membership {
    Membership::new(
        MembershipConfig::default(),
        Some(own.to_owned()),
        &strings(statics),
        &strings(seeds),
    )
}

#[test]
fn addresses_are_host_port_with_a_name_or_an_ip_literal() {
    for ok in [
        "10.0.0.1:7100",
        "node-a.svc.local:7100",
        "[::1]:7100",
        "n_1:1",
    ] {
        assert!(is_valid_addr(ok), "{ok}");
    }
    for bad in [
        "",
        "10.0.0.1",
        ":7100",
        "host:0",
        "host:70000",
        "ho st:1",
        "[::zz]:1",
        "a/b:1",
        "host:port",
    ] {
        assert!(!is_valid_addr(bad), "{bad}");
    }
    assert!(!is_valid_addr(&format!("{}:1", "a".repeat(300))));
}

#[test]
fn new_addresses_are_dialled_and_gossiped_once_and_our_own_is_ignored() {
    let mut a = m("10.0.0.1:1", &[], &["10.0.0.2:1"]);
    let got = a.learn(&strings(&["10.0.0.3:1", "10.0.0.1:1", "10.0.0.2:1", "bad"]));
    assert_eq!(
        got,
        vec![
            Event::Dial("10.0.0.3:1".into()),
            Event::Gossip(strings(&["10.0.0.3:1"]))
        ]
    );
    assert!(
        a.learn(&strings(&["10.0.0.3:1"])).is_empty(),
        "no amplification"
    );
    assert_eq!(a.addresses(), strings(&["10.0.0.2:1", "10.0.0.3:1"]));
    assert_eq!(a.ignored(), 2);
}

#[test]
fn a_node_silent_for_the_heartbeat_timeout_is_dead() {
    let mut a = m("a:1", &["b:1"], &[]);
    assert!(a.linked("B1", Some("b:1")).is_empty());
    assert_eq!(a.alive(), 1);
    a.unlinked("B1", at(2));
    assert_eq!(a.poll_timeout(), Some(at(17)));
    assert!(a.handle_timeout(at(16)).is_empty());
    assert_eq!(
        a.handle_timeout(at(17)),
        vec![Event::Dead {
            instance: "B1".into()
        }]
    );
    assert!(a.nodes().is_empty());
    // A static peer stays on the dial list however long it is dead.
    assert!(a.handle_timeout(at(10_000)).is_empty());
    assert!(a.should_dial("b:1"));
}

#[test]
fn a_node_that_says_goodbye_is_dead_at_once() {
    let mut a = m("a:1", &["b:1"], &[]);
    a.linked("B1", Some("b:1"));
    a.unlinked("B1", at(0));
    assert_eq!(a.suspects(), 1);
    assert_eq!(
        a.left("B1", at(1)),
        vec![Event::Dead {
            instance: "B1".into()
        }]
    );
    assert!(a.left("B1", at(1)).is_empty(), "once");
    assert!(a.handle_timeout(at(60)).is_empty());
    assert_eq!(a.suspects(), 0);
}

#[test]
fn a_link_that_comes_back_in_time_is_no_death() {
    let mut a = m("a:1", &["b:1"], &[]);
    a.linked("B1", Some("b:1"));
    a.unlinked("B1", at(0));
    a.linked("B1", None);
    assert!(a.handle_timeout(at(60)).is_empty());
    assert_eq!(a.alive(), 1);
}

#[test]
fn a_restarted_node_ends_its_previous_life_at_once() {
    let mut a = m("a:1", &[], &[]);
    a.linked("C1", None);
    assert!(
        a.announced("C1", "c:1").len() == 2,
        "learned, dialled, gossiped"
    );
    a.unlinked("C1", at(0));
    // C restarts as C2 before C1's timeout: C1 is dead now, not 15 s later.
    assert_eq!(
        a.linked("C2", Some("c:1")),
        vec![Event::Dead {
            instance: "C1".into()
        }]
    );
    assert!(a.handle_timeout(at(60)).is_empty(), "declared once");
    assert_eq!(a.nodes().len(), 1);
}

#[test]
fn discovered_addresses_are_forgotten_after_their_node_stays_dead() {
    let mut a = m("a:1", &[], &["seed:1"]);
    a.learn(&strings(&["d:1"]));
    a.linked("D1", Some("d:1"));
    a.unlinked("D1", at(0));
    assert_eq!(
        a.handle_timeout(at(15)),
        vec![Event::Dead {
            instance: "D1".into()
        }]
    );
    assert_eq!(a.poll_timeout(), Some(at(615)));
    assert_eq!(a.handle_timeout(at(615)), vec![Event::Forget("d:1".into())]);
    assert!(!a.should_dial("d:1"));
    assert!(a.should_dial("seed:1"), "seeds stay");
    // Learned again later: dialled again.
    assert_eq!(a.learn(&strings(&["d:1"])).len(), 2);
}

#[test]
fn the_peer_bound_holds() {
    let mut a = Membership::new(
        MembershipConfig {
            max_peers: 2,
            ..MembershipConfig::default()
        },
        None,
        &[],
        &[],
    );
    a.learn(&strings(&["x:1", "y:1", "z:1"]));
    assert_eq!(a.addresses().len(), 2);
    a.linked("1", None);
    a.linked("2", None);
    a.linked("3", None);
    assert_eq!(a.nodes().len(), 2);
    assert_eq!(a.ignored(), 2);
}

proptest! {
    /// Nodes joining through one seed, linking in any order and passing on what they learn,
    /// end up knowing every address, and no node passes an address on more than once.
    #[test]
    fn gossip_from_one_seed_converges_without_amplification(
        n in 2usize..8,
        order in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let addr = |i: usize| format!("10.0.0.{i}:7100");
        let mut nodes: Vec<Membership> = (0..n)
            .map(|i| {
                let seeds = if i == 0 { vec![] } else { vec![addr(0)] };
                Membership::new(MembershipConfig::default(), Some(addr(i)), &[], &seeds)
            })
            .collect();
        // Messages in flight: (to, addresses). Every node announces itself to the seed first.
        let mut inbox: Vec<(usize, Vec<String>)> = (1..n).map(|i| (0, vec![addr(i)])).collect();
        let mut gossiped = vec![std::collections::BTreeMap::<String, u32>::new(); n];
        let mut picks = order.into_iter().cycle();
        let mut steps = 0;
        while !inbox.is_empty() {
            steps += 1;
            prop_assert!(steps < 10_000, "gossip did not settle");
            let k = usize::from(picks.next().unwrap_or(0)) % inbox.len();
            let (to, addrs) = inbox.swap_remove(k);
            for e in nodes[to].learn(&addrs) {
                match e {
                    Event::Dial(a) => {
                        // Dialling: the peer learns our address, we get its list.
                        let peer = (0..n).find(|i| addr(*i) == a).expect("a real node");
                        inbox.push((peer, vec![addr(to)]));
                        inbox.push((to, nodes[peer].addresses()));
                    }
                    Event::Gossip(list) => {
                        for a in &list {
                            *gossiped[to].entry(a.clone()).or_default() += 1;
                        }
                        for peer in 0..n {
                            if peer != to && nodes[to].should_dial(&addr(peer)) {
                                inbox.push((peer, list.clone()));
                            }
                        }
                    }
                    other => prop_assert!(false, "unexpected {other:?}"),
                }
            }
        }
        for (i, node) in nodes.iter().enumerate() {
            let mut want: Vec<String> = (0..n).filter(|j| *j != i).map(addr).collect();
            want.sort();
            prop_assert_eq!(node.addresses(), want, "node {}", i);
            prop_assert!(gossiped[i].values().all(|c| *c == 1), "node {} re-gossiped", i);
        }
    }
}
