//! The `hegpu` command line: `info` and `bench`.

use hegpu::backend::GpuBackend;
use hegpu::backend::device::gpu_required;
use hegpu::bench::{BenchPlan, Devices, Record, ckks as ckks_bench, run};
use hegpu::ckks::Preset;
use hegpu::{Error, Result};
use std::process::ExitCode;

const USAGE: &str = "usage:
  hegpu info                          the GPU adapter, its backend, type and limits
  hegpu bench [--quick] [--json FILE] NTT, linear-layer and CKKS throughput: CPU, GPU, tfhe-ntt

environment: HEGPU_DEVICE=auto|cpu|gpu, HEGPU_REQUIRE_GPU=1 (a missing adapter is an error)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("info") => info(),
        Some("bench") => bench(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(Error::Config(format!("unknown command\n{USAGE}"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hegpu: {e}");
            ExitCode::FAILURE
        }
    }
}

fn info() -> Result<()> {
    match GpuBackend::new() {
        Ok(gpu) => println!("{}", gpu.report()),
        Err(Error::NoAdapter(why)) if !gpu_required() => {
            println!("no GPU adapter ({why}); hegpu runs on the CPU")
        }
        Err(e) => return Err(e),
    }
    println!("CPU threads:            {}", rayon::current_num_threads());
    Ok(())
}

fn bench(args: &[String]) -> Result<()> {
    let mut plan = BenchPlan::full();
    let mut json = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => plan = BenchPlan::quick(),
            "--json" => {
                json = Some(
                    it.next()
                        .ok_or_else(|| Error::Config("--json needs a file name".into()))?
                        .clone(),
                )
            }
            other => {
                return Err(Error::Config(format!(
                    "unknown bench option '{other}'\n{USAGE}"
                )));
            }
        }
    }
    let devices = Devices::open(gpu_required())?;
    if let Some(note) = &devices.gpu_note {
        println!("({note}: GPU rows left out)");
    }
    println!(
        "{:<12} {:>6} {:>5} {:>6}  {:<44} {:>7} {:>14}  unit",
        "op", "N", "limbs", "batch", "backend", "threads", "per second"
    );
    let records = run(&plan, &devices, |r: &Record| {
        println!(
            "{:<12} {:>6} {:>5} {:>6}  {:<44} {:>7} {:>14.4e}  {}",
            r.op, r.n, r.limbs, r.batch, r.backend, r.threads, r.per_second, r.unit
        );
    })?;
    for preset in [Preset::CryptoNets8192, Preset::Deep16384] {
        let (packed, device) = ckks_bench::ciphertext_bytes(preset)?;
        println!(
            "fresh ciphertext, {preset:?}: {packed} bytes in the compact format, {device} bytes on a device"
        );
    }
    if let Some(path) = json {
        let body: Vec<String> = records.iter().map(Record::to_json).collect();
        std::fs::write(&path, format!("[\n{}\n]\n", body.join(",\n")))
            .map_err(|e| Error::Config(format!("cannot write {path}: {e}")))?;
        println!("wrote {} records to {path}", records.len());
    }
    Ok(())
}
