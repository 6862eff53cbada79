//! The `hegpu` command line: `info`, `bench` and `train`.

use hegpu::backend::GpuBackend;
use hegpu::backend::device::gpu_required;
use hegpu::bench::{BenchPlan, Devices, Record, ckks as ckks_bench, run};
use hegpu::ckks::Preset;
use hegpu::{Error, Result};
use std::process::ExitCode;

const USAGE: &str = "usage:
  hegpu info                          the GPU adapter, its backend, type and limits
  hegpu bench [--quick] [--json FILE] NTT, linear-layer and CKKS throughput: CPU, GPU, tfhe-ntt
  hegpu train [--data DIR] [--out FILE] [--maps N] [--hidden N] [--epochs N] [--seed N]
              [--lr X] [--shift N] [--f32]
                                      train the CryptoNets network on MNIST (defaults: data/mnist,
                                      models/cryptonets-5.safetensors, 5 maps, 100 hidden, f16)

environment: HEGPU_DEVICE=auto|cpu|gpu, HEGPU_REQUIRE_GPU=1 (a missing adapter is an error)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("info") => info(),
        Some("bench") => bench(&args[1..]),
        Some("train") => train(&args[1..]),
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

/// The value after a flag, parsed.
fn value<T: std::str::FromStr>(flag: &str, it: &mut std::slice::Iter<'_, String>) -> Result<T> {
    let v = it
        .next()
        .ok_or_else(|| Error::Config(format!("{flag} needs a value")))?;
    v.parse()
        .map_err(|_| Error::Config(format!("{flag}: '{v}' is not a valid value")))
}

fn train(args: &[String]) -> Result<()> {
    use hegpu::nn::{MnistRecipe, WeightType, save_model, train_mnist};
    let mut recipe = MnistRecipe::default();
    let mut data = std::path::PathBuf::from("data/mnist");
    let mut out = None;
    let mut dtype = WeightType::F16;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--data" => data = value::<String>(a, &mut it)?.into(),
            "--out" => out = Some(std::path::PathBuf::from(value::<String>(a, &mut it)?)),
            "--maps" => recipe.maps = value(a, &mut it)?,
            "--hidden" => recipe.hidden = value(a, &mut it)?,
            "--epochs" => recipe.train.epochs = value(a, &mut it)?,
            "--seed" => recipe.train.seed = value(a, &mut it)?,
            "--lr" => recipe.train.learning_rate = value(a, &mut it)?,
            "--shift" => recipe.train.shift = value(a, &mut it)?,
            "--f32" => dtype = WeightType::F32,
            other => {
                return Err(Error::Config(format!(
                    "unknown train option '{other}'\n{USAGE}"
                )));
            }
        }
    }
    if recipe.maps == 0 || recipe.hidden == 0 || recipe.train.epochs == 0 {
        return Err(Error::Config(
            "--maps, --hidden and --epochs must be at least 1".into(),
        ));
    }
    let out =
        out.unwrap_or_else(|| format!("models/cryptonets-{}.safetensors", recipe.maps).into());
    let mnist = hegpu::data::Mnist::load(&data)?;
    println!(
        "training CryptoNets ({} maps, {} hidden) on {} images, testing on {}, {} threads",
        recipe.maps,
        recipe.hidden,
        mnist.train_labels.len(),
        mnist.test_labels.len(),
        rayon::current_num_threads()
    );
    let start = std::time::Instant::now();
    let (model, accuracy) = train_mnist(&mnist, &recipe, |r, test| {
        println!(
            "epoch {:>3}  loss {:.4}  train {:.2}%  test {:.2}%  ({:.0} s)",
            r.epoch,
            r.loss,
            100.0 * r.train_accuracy,
            100.0 * test,
            start.elapsed().as_secs_f32()
        );
    })?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?;
    }
    save_model(&model, &out, dtype)?;
    println!(
        "test accuracy {:.2}%; wrote {}",
        100.0 * accuracy,
        out.display()
    );
    Ok(())
}
