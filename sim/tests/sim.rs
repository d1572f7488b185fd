//! The simulator end to end, through its CLI (one simulation per process, as the harness
//! requires): every committed scenario passes, a bounded seed sweep passes, seeds replay with
//! the same digest, and every checker catches the bug planted for it.

use std::process::{Command, Output};

fn sim(args: &[&str]) -> (bool, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_wse-sim"))
        .args(args)
        .output()
        .expect("run wse-sim");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn scenario_passes(name: &str) {
    let (ok, out) = sim(&["run", "--seed", "1", "--scenario", name]);
    assert!(ok, "scenario {name} failed:\n{out}");
    assert!(
        out.starts_with("seed 1\n"),
        "the seed is printed first:\n{out}"
    );
    assert!(out.contains("PASS seed 1"), "{out}");
}

#[test]
fn client_churn_during_fanout_passes() {
    scenario_passes("client-churn-fanout");
}

#[test]
fn a_partitioned_client_recovers_everything_after_the_heal() {
    scenario_passes("partition-heal");
}

#[test]
fn a_slow_client_is_closed_1013_and_recovers_when_it_reads_again() {
    scenario_passes("slow-client");
}

#[test]
fn a_server_bounce_is_reported_as_not_recovered_never_skipped() {
    scenario_passes("server-bounce");
}

#[test]
fn a_long_hold_ends_in_idle_timeouts_then_recovery() {
    scenario_passes("long-hold");
}

#[test]
fn encrypted_clients_with_rotating_keys_lose_nothing_under_faults() {
    scenario_passes("encrypted-rotation");
    let (_, out) = sim(&["run", "--seed", "1", "--scenario", "encrypted-rotation"]);
    let rotations: u64 = out
        .split_whitespace()
        .find_map(|w| w.strip_prefix("key_rotations="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(rotations >= 5, "keys rotated {rotations} times:\n{out}");
}

#[test]
fn cluster_a_node_cut_off_from_its_peers_gets_not_recovered_and_the_origins_dlq() {
    scenario_passes("cluster-partition-heal");
}

#[test]
fn cluster_a_crashed_and_restarted_node_is_forgotten_and_relinked() {
    scenario_passes("cluster-crash-bounce");
}

#[test]
fn cluster_a_one_way_partition_ends_the_link_on_both_ends() {
    scenario_passes("cluster-asymmetric");
}

#[test]
fn cluster_a_flapping_link_opens_the_circuit_breakers() {
    scenario_passes("cluster-flapping");
}

#[test]
fn cluster_clients_of_a_crashed_node_fail_over_and_recover_everything() {
    scenario_passes("cluster-failover");
}

#[test]
fn cluster_nodes_joining_through_one_seed_in_random_order_converge_with_one_presence_truth() {
    scenario_passes("cluster-seed-join");
}

#[test]
fn cluster_membership_and_presence_converge_after_long_chaos() {
    scenario_passes("cluster-membership-chaos");
}

#[test]
fn the_membership_scenarios_pass_on_more_seeds() {
    for (scenario, seeds, n) in [
        ("cluster-seed-join", "2..4", 2),
        ("cluster-membership-chaos", "2..3", 1),
    ] {
        let (ok, out) = sim(&["run", "--seeds", seeds, "--scenario", scenario]);
        assert!(ok, "{scenario} {seeds} failed:\n{out}");
        assert!(out.contains(&format!("{n} of {n} seeds passed")), "{out}");
    }
}

#[test]
fn a_bounded_sweep_of_generated_seeds_passes() {
    let (ok, out) = sim(&["run", "--seeds", "0..40"]);
    assert!(ok, "sweep failed:\n{out}");
    assert!(out.contains("40 of 40 seeds passed"), "{out}");
}

#[test]
fn a_seed_replays_with_the_same_trace_digest() {
    for seed in ["3", "11"] {
        let (ok, out) = sim(&["run", "--seed", seed, "--check-determinism"]);
        assert!(ok, "seed {seed} is not deterministic:\n{out}");
        assert!(
            out.contains("deterministic: both runs have digest"),
            "{out}"
        );
    }
    for scenario in [
        "server-bounce",
        "cluster-crash-bounce",
        "cluster-seed-join",
        "cluster-membership-chaos",
    ] {
        let (ok, out) = sim(&[
            "run",
            "--seed",
            "5",
            "--scenario",
            scenario,
            "--check-determinism",
        ]);
        assert!(ok, "{scenario} seed 5 is not deterministic:\n{out}");
    }
}

fn planted_bug_is_caught(plant: &str, checker: &str) {
    planted_bug_is_caught_in("partition-heal", plant, checker);
}

fn planted_bug_is_caught_in(scenario: &str, plant: &str, checker: &str) {
    let (ok, out) = sim(&[
        "run",
        "--seed",
        "1",
        "--scenario",
        scenario,
        "--plant",
        plant,
    ]);
    assert!(!ok, "planted {plant} went unnoticed:\n{out}");
    assert!(out.starts_with("seed 1\n"), "{out}");
    assert!(
        out.contains(&format!("violation [{checker}]")),
        "planted {plant}: expected the {checker} checker to fire:\n{out}"
    );
    assert!(
        out.contains(&format!(
            "replay: cargo run -p wse-sim -- run --seed 1 --scenario {scenario} --plant {plant}"
        )),
        "the exact replay command is printed:\n{out}"
    );
}

#[test]
fn a_dropped_stamped_message_is_caught_as_a_silent_gap() {
    planted_bug_is_caught("drop-stamped", "silent-gap");
}

#[test]
fn a_message_delivered_twice_is_caught() {
    planted_bug_is_caught("deliver-twice", "order");
}

#[test]
fn a_ghost_presence_entry_is_caught() {
    planted_bug_is_caught("ghost-presence", "presence");
}

#[test]
fn a_message_routed_against_the_announced_interest_is_caught() {
    planted_bug_is_caught_in("cluster-partition-heal", "misroute", "interest");
}

#[test]
fn a_loss_missing_from_the_origins_dlq_is_caught() {
    planted_bug_is_caught_in("cluster-partition-heal", "dlq-drop", "dlq-complete");
}

#[test]
fn a_dead_letter_for_a_message_never_published_is_caught() {
    planted_bug_is_caught_in("cluster-partition-heal", "dlq-forge", "dlq-sound");
}

#[test]
fn a_node_that_never_links_to_one_peer_is_caught_by_membership() {
    planted_bug_is_caught_in("cluster-seed-join", "stuck-partition", "membership");
}

#[test]
fn a_ghost_in_one_nodes_presence_view_is_caught() {
    planted_bug_is_caught_in("cluster-seed-join", "node-ghost", "presence-views");
}

#[test]
fn a_duplicate_join_event_is_caught() {
    planted_bug_is_caught_in("cluster-seed-join", "duplicate-join", "presence-accounting");
}

#[test]
fn a_lost_leave_event_is_caught() {
    planted_bug_is_caught_in("cluster-seed-join", "lost-leave", "presence-accounting");
}

#[test]
fn bad_arguments_exit_2_with_a_reason() {
    let (ok, out) = sim(&["run", "--seed", "1", "--scenario", "no-such-scenario"]);
    assert!(!ok);
    assert!(out.contains("cannot read scenario"), "{out}");
    let (ok, out) = sim(&["run", "--seed", "1", "--plant", "nonsense"]);
    assert!(!ok);
    assert!(out.contains("unknown plant"), "{out}");
}
