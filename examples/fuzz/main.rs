//! A fuzzer for every reader of untrusted bytes in hegpu, on stable Rust:
//!
//! ```sh
//! cargo run --release --example fuzz -- --inputs 1000000 --seed 1
//! ```
//!
//! Inputs are random bytes and structure-aware mutations of valid files (bit flips, bytes set
//! to edge values, truncations, insertions, deletions, splices, length fields set huge); for
//! the checksummed formats some mutants get their checksum recomputed, so that the decoders
//! behind the checksum are reached too (a forgery: what an attacker could do, not an
//! accident). Model files and IDX files without a checksum are fuzzed too.
//! Every input runs under `catch_unwind`; its time is measured; the process's peak memory is
//! read from the operating system (Linux). The run fails (exit status 1) on any panic, any
//! input slower than `--max-ms`, a peak above `--max-memory-mib`, or any accidentally
//! corrupted input accepted with metadata other than its seed's. An abort (for example an
//! allocation failure) ends the process, which fails the run too.

mod mutate;
mod targets;

use clap::Parser;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use targets::{Integrity, Target};

#[derive(Parser)]
#[command(about = "Fuzz every reader of untrusted bytes in hegpu")]
struct Options {
    /// Inputs in all, shared evenly by the targets
    #[arg(long, default_value_t = 100_000)]
    inputs: u64,
    /// Seed of the input generator (the same seed makes the same inputs)
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Targets to run, comma-separated [default: all]
    #[arg(long)]
    only: Option<String>,
    /// An input slower than this fails the run
    #[arg(long, default_value_t = 100)]
    max_ms: u64,
    /// A peak resident memory above this fails the run
    #[arg(long, default_value_t = 512)]
    max_memory_mib: u64,
    /// Save failing and slowest inputs in this directory
    #[arg(long)]
    save: Option<PathBuf>,
}

/// Where an input came from.
#[derive(Clone, Copy)]
enum Origin {
    /// Random bytes.
    Random,
    /// A checksummed seed with mutations: an accident the checksum must catch.
    Corrupted,
    /// A seed with mutations that no checksum covers: a seed without one, or a forgery (the
    /// checksum recomputed).
    Unchecked,
}

/// One target's tally.
#[derive(Default)]
struct Tally {
    inputs: u64,
    accepted: u64,
    panics: u64,
    slow: u64,
    slowest: Duration,
    /// Accidental corruptions accepted with metadata other than the seed's.
    changed: u64,
    /// Unchecked inputs accepted with other metadata (informational: nothing can tell).
    unchecked_changed: u64,
}

fn main() -> ExitCode {
    let opts = Options::parse();
    // Panics are counted, not printed per input.
    std::panic::set_hook(Box::new(|_| {}));
    let mut all = targets::all();
    if let Some(only) = &opts.only {
        let keep: Vec<&str> = only.split(',').map(str::trim).collect();
        all.retain(|t| keep.contains(&t.name));
        if all.is_empty() {
            eprintln!("fuzz: no target named in '{only}'");
            return ExitCode::from(2);
        }
    }
    if let Some(dir) = &opts.save
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        eprintln!("fuzz: {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    let per_target = opts.inputs.div_ceil(all.len() as u64);
    let start = Instant::now();
    println!(
        "{:<16} {:>9} {:>9} {:>6} {:>6} {:>10} {:>8} {:>9} {:>9}",
        "target",
        "inputs",
        "accepted",
        "panics",
        "slow",
        "slowest",
        "changed",
        "unchecked",
        "peak MiB"
    );
    let mut failed = false;
    let mut total = Tally::default();
    for (t, target) in all.iter().enumerate() {
        reset_peak_memory();
        let tally = fuzz(target, per_target, opts.seed ^ (t as u64) << 32, &opts);
        let peak = peak_memory_mib();
        println!(
            "{:<16} {:>9} {:>9} {:>6} {:>6} {:>8.2}ms {:>8} {:>9} {:>9}",
            target.name,
            tally.inputs,
            tally.accepted,
            tally.panics,
            tally.slow,
            tally.slowest.as_secs_f64() * 1e3,
            tally.changed,
            tally.unchecked_changed,
            peak.map_or("?".into(), |p| p.to_string())
        );
        failed |= tally.panics > 0 || tally.slow > 0 || tally.changed > 0;
        failed |= peak.is_some_and(|p| p > opts.max_memory_mib);
        total.inputs += tally.inputs;
        total.panics += tally.panics;
        total.slow += tally.slow;
        total.changed += tally.changed;
        total.slowest = total.slowest.max(tally.slowest);
    }
    let peak = peak_memory_mib();
    println!(
        "{} inputs in {:.0} s: {} panics, {} over {} ms (slowest {:.2} ms), {} corrupted inputs accepted with changed metadata, peak memory {} MiB (limit {})",
        total.inputs,
        start.elapsed().as_secs_f64(),
        total.panics,
        total.slow,
        opts.max_ms,
        total.slowest.as_secs_f64() * 1e3,
        total.changed,
        peak.map_or("unknown".into(), |p| p.to_string()),
        opts.max_memory_mib
    );
    if failed {
        println!("fuzz: FAILED");
        ExitCode::FAILURE
    } else {
        println!("fuzz: passed");
        ExitCode::SUCCESS
    }
}

/// Runs `inputs` inputs through `target`.
fn fuzz(target: &Target, inputs: u64, seed: u64, opts: &Options) -> Tally {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut expected = Vec::new();
    for (i, seed) in target.seeds.iter().enumerate() {
        match (target.read)(&seed.bytes) {
            Ok(meta) => expected.push(meta),
            Err(e) => {
                eprintln!("fuzz: {}: seed {i} is refused: {e}", target.name);
                std::process::exit(2);
            }
        }
    }
    let limit = Duration::from_millis(opts.max_ms);
    let mut tally = Tally::default();
    for i in 0..inputs {
        let which = rng.random_range(0..target.seeds.len());
        let (input, origin) = if rng.random_ratio(1, 16) {
            (mutate::random_bytes(&mut rng), Origin::Random)
        } else {
            let seed = &target.seeds[which];
            let mut bytes = seed.bytes.clone();
            match target.structure {
                Some(structure) if rng.random_ratio(1, 2) => structure(&mut rng, &mut bytes),
                _ => mutate::mutate(&mut rng, &mut bytes),
            }
            match seed.integrity {
                Integrity::Trailing if rng.random_ratio(1, 2) => {
                    mutate::fix_trailing_crc(&mut bytes);
                    (bytes, Origin::Unchecked)
                }
                Integrity::None => (bytes, Origin::Unchecked),
                Integrity::Trailing | Integrity::Internal => (bytes, Origin::Corrupted),
            }
        };
        let t = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| (target.read)(&input)));
        let spent = t.elapsed();
        tally.inputs += 1;
        if spent > tally.slowest {
            tally.slowest = spent;
            save(opts, target.name, "slowest", &input);
        }
        if spent > limit {
            tally.slow += 1;
            save(opts, target.name, &format!("slow-{i}"), &input);
        }
        match outcome {
            Err(_) => {
                tally.panics += 1;
                save(opts, target.name, &format!("panic-{i}"), &input);
            }
            Ok(Err(_)) => {}
            Ok(Ok(meta)) => {
                tally.accepted += 1;
                let changed = input != target.seeds[which].bytes && meta != expected[which];
                match origin {
                    _ if !changed => {}
                    Origin::Random => {}
                    Origin::Unchecked => tally.unchecked_changed += 1,
                    Origin::Corrupted => {
                        tally.changed += 1;
                        save(opts, target.name, &format!("changed-{i}"), &input);
                    }
                }
            }
        }
    }
    tally
}

fn save(opts: &Options, target: &str, what: &str, bytes: &[u8]) {
    if let Some(dir) = &opts.save {
        let _ = std::fs::write(dir.join(format!("{target}-{what}.bin")), bytes);
    }
}

/// Resets the peak resident set the kernel reports (Linux; elsewhere nothing).
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak resident set since the last reset, in MiB (`VmHWM` in /proc/self/status, Linux;
/// read here as the command's job reads it: an example of the library cannot use the command's
/// crate).
fn peak_memory_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib >> 10)
}
