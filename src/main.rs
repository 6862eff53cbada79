//! The `hegpu` command line: `mnist`, `info`, `bench` and `train`.

use hegpu::backend::GpuBackend;
use hegpu::backend::device::gpu_required;
use hegpu::bench::{BenchPlan, Devices, Record, ckks as ckks_bench, run};
use hegpu::{Error, Result};
use std::process::ExitCode;

const USAGE: &str = "usage:
  hegpu mnist [--images K] [--data DIR] [--model FILE] [--json FILE] [SERVER]
                                      the encrypted MNIST batch job: client keys and encryption,
                                      server evaluation on public keys only, client decryption
     SERVER: [--device auto|cpu|gpu] [--gpu-memory SIZE (e.g. 512M)] [--split]
             past SIZE the network streams through the GPU in chunks; --split lets the CPU
             take chunks too; a GPU failure makes the batch complete on the CPU
  hegpu mnist keys --dir D            the same as separate processes sharing directory D:
  hegpu mnist encrypt --dir D [--images K] [--data DIR]            (client)
  hegpu mnist serve --dir D [--model FILE] [--data DIR] [SERVER]   (server: public files only)
  hegpu mnist decrypt --dir D [--data DIR] [--model FILE]          (client)
  hegpu info                          the GPU adapter, its backend, type and limits
  hegpu bench [--quick] [--only SECTIONS] [--batches LIST] [--json FILE] [--chart FILE.svg]
                                      CPU (1 thread, all threads) against the GPU: SECTIONS of
                                      ntt (with tfhe-ntt), linear, ckks, network, peers (tfhe-rs
                                      on the dense layer, in builds with `--features peers`);
                                      default all. The network runs at N = 2^13 and 2^14 for
                                      each batch size in LIST (default 64,512,4096,8192);
                                      --chart draws its images/s against batch size
  hegpu train [--data DIR] [--out FILE] [--maps N] [--hidden N] [--epochs N] [--seed N]
              [--lr X] [--shift N] [--f32]
                                      train the CryptoNets network on MNIST (defaults: data/mnist,
                                      models/cryptonets-5.safetensors, 5 maps, 100 hidden, f16)

environment: HEGPU_DEVICE=auto|cpu|gpu, HEGPU_REQUIRE_GPU=1 (a missing adapter is an error),
  HEGPU_GPU_MEMORY=SIZE (the GPU memory budget), HEGPU_SIMULATE_DEVICE_LOSS=K (the GPU is
  lost after K kernel dispatches: for testing the fallback)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("info") => info(),
        Some("bench") => bench(&args[1..]),
        Some("train") => train(&args[1..]),
        Some("mnist") => mnist(&args[1..]),
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
    let mut quick = false;
    let (mut only, mut batches) = (None, None);
    let (mut json, mut chart) = (None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--only" => only = Some(value::<String>(a, &mut it)?),
            "--batches" => batches = Some(batch_list(&value::<String>(a, &mut it)?)?),
            "--json" => json = Some(value::<String>(a, &mut it)?),
            "--chart" => chart = Some(value::<String>(a, &mut it)?),
            other => {
                return Err(Error::Config(format!(
                    "unknown bench option '{other}'\n{USAGE}"
                )));
            }
        }
    }
    let mut plan = if quick {
        BenchPlan::quick()
    } else {
        BenchPlan::full()
    };
    if let Some(b) = batches {
        plan.network.batches = b;
    }
    if let Some(sections) = only {
        plan = plan.only(&sections)?;
    }
    if chart.is_some() && plan.network.batches.is_empty() {
        return Err(Error::Config(
            "--chart draws the network rows: keep the network section".into(),
        ));
    }
    let devices = Devices::open(gpu_required())?;
    if let Some(note) = &devices.gpu_note {
        println!("({note}: GPU rows left out)");
    }
    if devices.gpu_is_software && !plan.network.batches.is_empty() {
        println!("(the GPU adapter is a software rasterizer: no GPU rows for the network)");
    }
    println!(
        "{:<17} {:>6} {:>5} {:>6}  {:<44} {:>7} {:>14}  unit",
        "op", "N", "limbs", "batch", "backend", "threads", "per second"
    );
    let records = run(&plan, &devices, |r: &Record| {
        println!(
            "{:<17} {:>6} {:>5} {:>6}  {:<44} {:>7} {:>14.4e}  {}",
            r.op, r.n, r.limbs, r.batch, r.backend, r.threads, r.per_second, r.unit
        );
        if !r.detail.is_empty() {
            println!("{:>19}{}", "", r.detail);
        }
    })?;
    for &preset in &plan.ckks_presets {
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
    if let Some(path) = chart {
        let title = "hegpu: the encrypted CryptoNets network on MNIST";
        let lines = hegpu::bench::chart::network_chart(&records, path.as_ref(), title)?;
        println!("drew {lines} lines in {path}");
    }
    Ok(())
}

/// A comma-separated list of batch sizes, each at least 1.
fn batch_list(text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .map(|b| match b.trim().parse::<usize>() {
            Ok(v) if v >= 1 => Ok(v),
            _ => Err(Error::Config(format!(
                "--batches: '{b}' is not a batch size (a whole number of images, at least 1)"
            ))),
        })
        .collect()
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

/// The server's device as `HEGPU_DEVICE` chooses it.
fn server_from_env() -> Result<hegpu::job::ServerDevice> {
    Ok(hegpu::job::ServerDevice {
        device: hegpu::backend::DeviceChoice::from_env()?,
        ..Default::default()
    })
}

/// Reads `--device`, `--gpu-memory` or `--split` into `server`; false for any other option.
fn server_option<'a>(
    server: &mut hegpu::job::ServerDevice,
    option: &str,
    it: &mut std::slice::Iter<'a, String>,
) -> Result<bool> {
    match option {
        "--device" => server.device = value(option, it)?,
        "--gpu-memory" => {
            let size: String = value(option, it)?;
            server.gpu_memory = Some(hegpu::backend::gpu::parse_bytes(&size)?);
        }
        "--split" => server.split = true,
        _ => return Ok(false),
    }
    Ok(true)
}

/// `hegpu mnist keys|encrypt|serve|decrypt --dir D …`: one side of the job per process.
fn mnist_split(step: &str, args: &[String]) -> Result<()> {
    use hegpu::job::files;
    let defaults = hegpu::job::JobOptions::default();
    let (mut dir, mut data, mut model) = (None, defaults.data, None);
    let mut images = defaults.images;
    let mut server = server_from_env()?;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dir" => dir = Some(std::path::PathBuf::from(value::<String>(a, &mut it)?)),
            "--data" => data = value::<String>(a, &mut it)?.into(),
            "--model" => model = Some(std::path::PathBuf::from(value::<String>(a, &mut it)?)),
            "--images" => images = value(a, &mut it)?,
            other if server_option(&mut server, other, &mut it)? => {}
            other => return Err(Error::Config(format!("unknown option '{other}'\n{USAGE}"))),
        }
    }
    let dir = dir.ok_or_else(|| Error::Config(format!("mnist {step} needs --dir\n{USAGE}")))?;
    match step {
        "keys" => {
            files::client_keys(&dir)?;
            println!(
                "wrote params.bin, evaluation-keys.bin and secret.key to {}",
                dir.display()
            );
        }
        "encrypt" => {
            let n = files::client_encrypt(&dir, &data, images)?;
            println!("encrypted {n} test images into {}", dir.display());
        }
        "serve" => {
            let model = model.unwrap_or(defaults.model);
            let (batches, seconds) = files::server_evaluate(&dir, &model, &data, &server)?;
            println!(
                "evaluated {batches} batch(es) in {seconds:.2} s; results in {}",
                dir.display()
            );
        }
        _ => {
            let (total, correct, agree) = files::client_decrypt(&dir, &data, model.as_deref())?;
            println!(
                "accuracy: {:.2}% of {total} images",
                100.0 * correct as f64 / total.max(1) as f64
            );
            if let Some(a) = agree {
                println!(
                    "agrees with plaintext: {:.2}%",
                    100.0 * a as f64 / total.max(1) as f64
                );
            }
        }
    }
    Ok(())
}

fn mnist(args: &[String]) -> Result<()> {
    use hegpu::job::{JobOptions, Phase, run_mnist};
    if let Some(step @ ("keys" | "encrypt" | "serve" | "decrypt")) =
        args.first().map(String::as_str)
    {
        return mnist_split(step, &args[1..]);
    }
    use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
    let mut opts = JobOptions {
        server: server_from_env()?,
        ..Default::default()
    };
    let mut json = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--images" => opts.images = value(a, &mut it)?,
            "--data" => opts.data = value::<String>(a, &mut it)?.into(),
            "--model" => opts.model = value::<String>(a, &mut it)?.into(),
            "--json" => json = Some(value::<String>(a, &mut it)?),
            other if server_option(&mut opts.server, other, &mut it)? => {}
            other => {
                return Err(Error::Config(format!(
                    "unknown mnist option '{other}'\n{USAGE}"
                )));
            }
        }
    }
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len} {msg}")
        .expect("a valid template")
        .progress_chars("=> ");
    let bar = |name: &str| {
        let b = bars.add(ProgressBar::new(1));
        b.set_style(style.clone());
        b.set_prefix(name.to_string());
        b
    };
    let (keys, enc, eval, dec) = (bar("keys"), bar("encrypt"), bar("evaluate"), bar("decrypt"));
    let report = run_mnist(&opts, |phase, done, total| {
        let b = match phase {
            Phase::Keys => &keys,
            Phase::Encrypt => &enc,
            Phase::Evaluate => &eval,
            Phase::Decrypt => &dec,
        };
        b.set_length(total as u64);
        b.set_position(done as u64);
    })?;
    for b in [&keys, &enc, &eval, &dec] {
        b.finish();
    }
    println!("device:                {}", report.device);
    for f in &report.fallbacks {
        println!("GPU fallback:          {f}");
    }
    println!(
        "images:                {} in {} batch(es), {} classified",
        report.images, report.batches, report.classified
    );
    for f in &report.failed_batches {
        println!("FAILED batch:          {f}");
    }
    println!("accuracy:              {:.2}%", 100.0 * report.accuracy());
    println!("agrees with plaintext: {:.2}%", 100.0 * report.agreement());
    println!(
        "time (s):              keys {:.2}, encrypt {:.2}, evaluate {:.2}, decrypt {:.2}",
        report.seconds_keys,
        report.seconds_encrypt,
        report.seconds_evaluate,
        report.seconds_decrypt
    );
    println!(
        "server:                {:.0} images/s ({:.0} images/s with full batches of {})",
        report.server_images_per_second(),
        report.server_images_per_second_full(),
        report.batch_capacity
    );
    if let Some(bytes) = report.peak_memory_bytes {
        println!(
            "peak memory:           {:.0} MiB (client and server in one process)",
            bytes as f64 / f64::from(1 << 20)
        );
    }
    let per = |b: usize| b as f64 / report.classified.max(1) as f64;
    println!(
        "bytes per image:       {:.0} sent, {:.0} received (evaluation keys once: {} bytes)",
        per(report.bytes_sent),
        per(report.bytes_received),
        report.bytes_keys
    );
    if let Some(path) = json {
        std::fs::write(&path, report.to_json() + "\n")
            .map_err(|e| Error::Config(format!("cannot write {path}: {e}")))?;
        println!("wrote {path}");
    }
    if !report.failed_batches.is_empty() {
        return Err(Error::Config(format!(
            "{} batch(es) failed",
            report.failed_batches.len()
        )));
    }
    Ok(())
}
