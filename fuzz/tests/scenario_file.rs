//! Fuzz target: the simulator's scenario files (`wse_sim::scenario::Scenario::parse`), the one
//! decoder the simulator adds. Any text either parses into a scenario that passes its own
//! validation (so a run can rely on it: known hosts, faults before the heal, 1–8 servers) or is
//! refused with an error; it never panics. Raw mode (even byte 0) feeds the text as is,
//! structured mode (odd) builds TOML from a generated description so deep paths are reached.

use bolero::TypeGenerator;
use wse_fuzz::{Mode, split_mode, structured};
use wse_sim::scenario::Scenario;

#[derive(Debug, TypeGenerator)]
struct Shape {
    clients: u8,
    servers: u8,
    topics: Vec<u8>,
    every: u16,
    until: u16,
    heal: u16,
    faults: Vec<(u16, u8, u8, u8)>,
}

const ACTIONS: [&str; 13] = [
    "partition",
    "partition_oneway",
    "repair",
    "repair_oneway",
    "hold",
    "release",
    "latency",
    "loss",
    "throttle",
    "unthrottle",
    "crash",
    "bounce",
    "explode",
];

fn toml_of(s: &Shape) -> String {
    let mut t = format!(
        "[topology]\nservers = {}\nclients = {}\n[workload]\ntopics = [{}]\npublish_every_ms = {}\npublish_until_ms = {}\n[timing]\nheal_at_ms = {}\nsettle_ms = 1000\n",
        s.servers % 3,
        s.clients % 70,
        s.topics
            .iter()
            .map(|t| format!("\"t{t}\""))
            .collect::<Vec<_>>()
            .join(","),
        s.every,
        s.until,
        s.heal,
    );
    for (at, action, a, b) in &s.faults {
        let action = ACTIONS[usize::from(*action) % ACTIONS.len()];
        let host = |i: u8| {
            if i % 4 == 0 {
                "server0".to_owned()
            } else {
                format!("client{}", i % 9)
            }
        };
        t.push_str(&format!(
            "[[fault]]\nat_ms = {at}\naction = \"{action}\"\na = \"{}\"\nb = \"{}\"\nfrom = \"{}\"\nto = \"{}\"\nclient = \"{}\"\nhost = \"{}\"\nms = {a}\nrate = 0.{b}\nbytes_per_sec = {b}\n",
            host(*a), host(*b), host(*a), host(*b), host(*a), host(*b)
        ));
    }
    t
}

#[test]
fn scenario_file() {
    bolero::check!().for_each(|input: &[u8]| {
        let Some((mode, rest)) = split_mode(input) else {
            return;
        };
        let text = match mode {
            Mode::Raw => String::from_utf8_lossy(rest).into_owned(),
            Mode::Structured => match structured::<Shape>(rest) {
                Some(shape) => toml_of(&shape),
                None => return,
            },
        };
        if let Ok(s) = Scenario::parse(&text) {
            s.validate().expect("a parsed scenario is valid");
            assert!((1..=8).contains(&s.topology.servers));
            assert!(s.topology.clients >= 1);
            assert!(s.faults.iter().all(|f| f.at_ms < s.timing.heal_at_ms));
        }
    });
}

#[test]
fn generated_scenarios_are_valid_for_any_seed() {
    bolero::check!().with_type::<u64>().for_each(|seed: &u64| {
        Scenario::random(*seed)
            .validate()
            .expect("Scenario::random is always valid");
    });
}
