//! `wse-sim`: run a seed, sweep seeds, check determinism, list scenarios.
//!
//! ```text
//! wse-sim run --seed 7                         # a scenario generated from seed 7
//! wse-sim run --seed 7 --scenario partition-heal
//! wse-sim run --seeds 0..20                    # each seed in its own process
//! wse-sim run --seed 7 --check-determinism     # twice, in two processes: same digest?
//! wse-sim list
//! ```
//!
//! Exit status: 0 when every run passed, 1 when a checker failed (the replay command is
//! printed), 2 for bad arguments.

use std::process::{Command, ExitCode};
use std::time::SystemTime;

use clap::{Parser, Subcommand};
use wse_sim::run::{self, Plant, RunOptions};
use wse_sim::scenario::{self, Scenario};

#[derive(Parser, Debug)]
#[command(
    name = "wse-sim",
    about = "Deterministic simulation of WSE under faults"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run one seed, or sweep a range of seeds.
    Run {
        /// The seed (printed first; a failure prints the command that replays it).
        #[arg(long, conflicts_with = "seeds")]
        seed: Option<u64>,
        /// A range `A..B` (B excluded), each seed in its own process.
        #[arg(long)]
        seeds: Option<String>,
        /// A scenario name (`scenarios/<name>.toml`) or path; without it the seed generates one.
        #[arg(long)]
        scenario: Option<String>,
        /// Plant a bug (drop-stamped, deliver-twice, ghost-presence, misroute, dlq-drop,
        /// dlq-forge) to see a checker catch it.
        #[arg(long)]
        plant: Option<String>,
        /// Run the seed twice in separate processes and compare the trace digests.
        #[arg(long)]
        check_determinism: bool,
        /// Print the whole trace.
        #[arg(long)]
        trace: bool,
    },
    /// List the scenarios in `scenarios/`.
    List,
}

#[allow(clippy::print_stdout)] // a CLI's output
fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::List => {
            for name in scenario::list(&scenario::scenarios_dir()) {
                match Scenario::load(&name) {
                    Ok(s) => println!("{name:24} {}", s.description),
                    Err(e) => println!("{name:24} INVALID: {e}"),
                }
            }
            ExitCode::SUCCESS
        }
        Cmd::Run {
            seed,
            seeds,
            scenario,
            plant,
            check_determinism,
            trace,
        } => {
            let plant = match plant.as_deref().map(str::parse::<Plant>).transpose() {
                Ok(p) => p,
                Err(e) => return usage(&e),
            };
            if let Some(range) = seeds {
                let Some((a, b)) = range
                    .split_once("..")
                    .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
                else {
                    return usage("--seeds takes A..B");
                };
                return sweep(a..b, scenario.as_deref(), plant);
            }
            let Some(seed) = seed else {
                return usage("give --seed N or --seeds A..B");
            };
            if check_determinism {
                return determinism(seed, scenario.as_deref(), plant);
            }
            one(seed, scenario.as_deref(), plant, trace)
        }
    }
}

#[allow(clippy::print_stderr)]
fn usage(msg: &str) -> ExitCode {
    eprintln!("wse-sim: {msg}");
    ExitCode::from(2)
}

fn replay_command(seed: u64, scenario: Option<&str>, plant: Option<Plant>) -> String {
    let mut cmd = format!("cargo run -p wse-sim -- run --seed {seed}");
    if let Some(s) = scenario {
        cmd.push_str(&format!(" --scenario {s}"));
    }
    if let Some(p) = plant {
        cmd.push_str(&format!(" --plant {}", plant_name(p)));
    }
    cmd
}

fn plant_name(p: Plant) -> &'static str {
    p.name()
}

/// One simulation in this process.
#[allow(clippy::print_stdout)]
fn one(seed: u64, scenario: Option<&str>, plant: Option<Plant>, trace: bool) -> ExitCode {
    println!("seed {seed}");
    let s = match scenario {
        Some(name) => match Scenario::load(name) {
            Ok(s) => s,
            Err(e) => return usage(&e.to_string()),
        },
        None => Scenario::random(seed),
    };
    let started = SystemTime::now();
    let report = run::run(&s, &RunOptions { seed, plant });
    if trace {
        for e in &report.entries {
            println!("{e}");
        }
    }
    println!("scenario {}", report.scenario);
    println!("digest {}", report.digest);
    println!(
        "virtual {} ms, wall {:.1} s, {}",
        report.virtual_ms,
        run::wall_seconds(started),
        report.summary()
    );
    if report.violations.is_empty() {
        println!("PASS seed {seed}");
        ExitCode::SUCCESS
    } else {
        for v in &report.violations {
            println!("violation [{}] {}", v.checker, v.detail);
        }
        println!("FAIL seed {seed}");
        println!("replay: {}", replay_command(seed, scenario, plant));
        ExitCode::from(1)
    }
}

/// Runs `seed` in a child process; returns (passed, digest, output).
fn child(
    seed: u64,
    scenario: Option<&str>,
    plant: Option<Plant>,
) -> (bool, Option<String>, String) {
    let exe = std::env::current_exe().unwrap_or_else(|_| "wse-sim".into());
    let mut cmd = Command::new(exe);
    cmd.args(["run", "--seed", &seed.to_string()]);
    if let Some(s) = scenario {
        cmd.args(["--scenario", s]);
    }
    if let Some(p) = plant {
        cmd.args(["--plant", plant_name(p)]);
    }
    match cmd.output() {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            let digest = text
                .lines()
                .find_map(|l| l.strip_prefix("digest "))
                .map(str::to_owned);
            (out.status.success(), digest, text)
        }
        Err(e) => (false, None, format!("cannot start a child: {e}")),
    }
}

#[allow(clippy::print_stdout)]
fn sweep(seeds: std::ops::Range<u64>, scenario: Option<&str>, plant: Option<Plant>) -> ExitCode {
    let mut failed = Vec::new();
    for seed in seeds.clone() {
        let (ok, _, out) = child(seed, scenario, plant);
        let result = out
            .lines()
            .filter(|l| l.starts_with("virtual ") || l.starts_with("violation "))
            .collect::<Vec<_>>()
            .join("\n    ");
        println!("{} seed {seed}: {result}", if ok { "PASS" } else { "FAIL" });
        if !ok {
            failed.push(seed);
        }
    }
    println!(
        "{} of {} seeds passed",
        seeds.end - seeds.start - failed.len() as u64,
        seeds.end - seeds.start
    );
    for seed in &failed {
        println!("replay: {}", replay_command(*seed, scenario, plant));
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[allow(clippy::print_stdout)]
fn determinism(seed: u64, scenario: Option<&str>, plant: Option<Plant>) -> ExitCode {
    println!("seed {seed}");
    let (_, a, _) = child(seed, scenario, plant);
    let (_, b, _) = child(seed, scenario, plant);
    match (a, b) {
        (Some(a), Some(b)) if a == b => {
            println!("deterministic: both runs have digest {a}");
            ExitCode::SUCCESS
        }
        (a, b) => {
            println!("NOT deterministic: digests {a:?} and {b:?}");
            println!(
                "replay: {} --check-determinism",
                replay_command(seed, scenario, plant)
            );
            ExitCode::from(1)
        }
    }
}
