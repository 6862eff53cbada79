//! The `hegpu` command line: `mnist`, `info`, `bench`, `train`, `import`, `he-bench`, `serve`
//! and `client`.

// One exception, in allocator.rs: a measured setting of glibc's allocator for `hegpu serve`.
#![deny(unsafe_code)]

mod allocator;
mod chart;
mod service;

use clap::{Args, CommandFactory, Parser, Subcommand};
use hegpu::backend::gpu_required;
use hegpu::backend::{DeviceChoice, GpuBackend};
use hegpu::{Error, Result};
use hegpu_cli::bench::{BenchPlan, Devices, Record, ckks as ckks_bench, run};
use std::path::PathBuf;
use std::process::ExitCode;

const ENVIRONMENT: &str = "Environment: HEGPU_DEVICE=auto|cpu|gpu (the server's device), \
HEGPU_REQUIRE_GPU=1 (a missing adapter is an error), HEGPU_GPU_MEMORY=SIZE (the GPU memory \
budget), HEGPU_SIMULATE_DEVICE_LOSS=K (the GPU is lost after K kernel dispatches: for testing \
the fallback).";

/// Homomorphic encryption on any GPU: encrypted MNIST, benchmarks, training.
#[derive(Parser)]
#[command(name = "hegpu", version, after_help = ENVIRONMENT)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The encrypted MNIST batch job: client keys and encryption, server evaluation on public
    /// keys only, client decryption (in one process, or one step per process with a command).
    #[command(args_conflicts_with_subcommands = true)]
    Mnist {
        #[command(subcommand)]
        step: Option<MnistStep>,
        #[command(flatten)]
        job: JobArgs,
    },
    /// The GPU adapter hegpu finds: its backend, type and limits.
    Info,
    /// CPU (1 thread, all threads) against the GPU, with tfhe-ntt and tfhe-rs as peers.
    Bench(BenchArgs),
    /// Train a network on MNIST: CryptoNets, or one described with --arch
    Train(TrainArgs),
    /// Import an ONNX model (exported by PyTorch, opset 13+) as a hegpu model file, replacing
    /// ReLU, sigmoid, tanh and SiLU with polynomials fitted on calibration images
    Import(ImportArgs),
    /// One stage of HomomorphicEncryption.org's ML-inference harness (the submission in
    /// benchmarks/he-ml-inference/ runs these), in the harness's working directory
    HeBench(HeBenchArgs),
    /// Serve a model over HTTP: clients register evaluation keys and send encrypted images;
    /// the secret key never reaches the server
    Serve(service::ServeArgs),
    /// The MNIST job against a `hegpu serve` server: keys, encryption and decryption here,
    /// evaluation there; prints accuracy and per-request latency
    Client(service::ClientArgs),
}

#[derive(Args)]
struct HeBenchArgs {
    /// client_key_generation, client_preprocess_input, client_encode_encrypt_input,
    /// server_encrypted_compute, client_decrypt_decode or client_postprocess
    #[arg(value_name = "STAGE")]
    stage: hegpu_cli::job::he_bench::Stage,
    /// The instance: 0 (single, 1 image: the latency packing), 1 (small), 2 (medium) or 3
    /// (large; the batch packing)
    #[arg(value_name = "SIZE", value_parser = clap::value_parser!(u8).range(0..4))]
    size: u8,
    /// The harness's working directory
    #[arg(long, value_name = "DIR", default_value = ".")]
    root: PathBuf,
    /// The hegpu model the server evaluates (server_preprocess_model writes it)
    #[arg(
        long,
        value_name = "FILE",
        default_value = "io/hegpu/model.safetensors"
    )]
    model: PathBuf,
    /// MNIST IDX files whose training images calibrate the plans
    #[arg(
        long,
        value_name = "DIR",
        default_value = "harness/mnist/data/MNIST/raw"
    )]
    data: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
struct ImportArgs {
    /// The ONNX file
    #[arg(value_name = "MODEL.onnx")]
    onnx: PathBuf,
    /// The model file to write [default: MODEL.safetensors beside the ONNX file]
    #[arg(short, long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace every FUNCTION (relu, sigmoid, tanh, silu) with a least-squares polynomial of
    /// DEGREE (2 to 16) on the range its inputs take on the calibration images; repeat for
    /// several functions
    #[arg(long, value_name = "FUNCTION:DEGREE")]
    approx: Vec<hegpu::nn::ApproxSpec>,
    /// Directory of the MNIST IDX files: training images calibrate, test digits measure the
    /// accuracy before and after the replacement
    #[arg(long, value_name = "DIR", default_value = "data/mnist")]
    data: PathBuf,
    /// Training images that calibrate the ranges
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = at_least_one)]
    calibration: usize,
    /// Store weights as f32 instead of f16
    #[arg(long)]
    f32: bool,
}

/// Where the server evaluates.
#[derive(Args, Clone)]
struct ServerArgs {
    /// auto, cpu or gpu [default: HEGPU_DEVICE, else auto]
    #[arg(long, value_name = "DEVICE")]
    device: Option<DeviceChoice>,
    /// GPU memory the server may use (e.g. 512M); past it the network streams through the GPU
    /// in chunks
    #[arg(long, value_name = "SIZE", value_parser = gpu_memory)]
    gpu_memory: Option<u64>,
    /// Let the CPU take chunks of each stage too (a GPU failure makes the batch complete on
    /// the CPU in any case)
    #[arg(long)]
    split: bool,
}

impl ServerArgs {
    fn server(&self) -> Result<hegpu_cli::job::ServerDevice> {
        Ok(hegpu_cli::job::ServerDevice {
            device: match self.device {
                Some(d) => d,
                None => DeviceChoice::from_env()?,
            },
            gpu_memory: self.gpu_memory,
            split: self.split,
            profile: false,
            // The command line reads the GPU's options from the environment; the library never
            // does.
            gpu: hegpu::backend::GpuOptions::from_env()?,
        })
    }
}

fn gpu_memory(text: &str) -> Result<u64> {
    hegpu::backend::parse_bytes(text)
}

/// The in-process job's options.
#[derive(Args)]
struct JobArgs {
    /// Test images to classify (several batches past 4,096)
    #[arg(long, value_name = "K", default_value_t = 1000, value_parser = at_least_one)]
    images: usize,
    /// Batch packing: images per batch, at most and by default N/2 (4,096). A batch costs the
    /// server the same however full it is; the client encrypts the next batch and decrypts
    /// the last while the server evaluates one
    #[arg(long, value_name = "B", value_parser = at_least_one)]
    batch: Option<usize>,
    /// Batch packing: batches between encryption and decryption at once (1: client and
    /// server one after the other; 2: the client works while the server evaluates)
    #[arg(long, value_name = "K", default_value_t = 2, value_parser = at_least_one)]
    in_flight: usize,
    /// Directory of the MNIST IDX files (gzip or not)
    #[arg(long, value_name = "DIR", default_value = "data/mnist")]
    data: PathBuf,
    /// Model file (safetensors with hegpu metadata), or a shipped model: cryptonets-5 (98.1%)
    /// or cryptonets-16 (98.8%, about a fifth of the throughput)
    #[arg(long, value_name = "FILE|NAME", default_value = "cryptonets-5")]
    model: PathBuf,
    /// How images are packed: batch (CryptoNets, an image per slot: throughput), latency (an
    /// image per ciphertext, rotations: each image answered in milliseconds), or auto (latency
    /// up to 32 images)
    #[arg(long, value_name = "PACKING", default_value = "auto")]
    packing: hegpu_cli::job::Packing,
    /// Latency packing: images that may share a ciphertext (rounded down to a power of two
    /// whose layouts fit; 1 answers each image on its own, the shortest latency; 4 costs the
    /// server about what 1 does for four images)
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = at_least_one)]
    per_ciphertext: usize,
    /// Write the report as JSON (- for standard output)
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    #[command(flatten)]
    profile: ProfileArgs,
    #[command(flatten)]
    server: ServerArgs,
}

/// `--profile` and `--bandwidth`, for the job and the bench.
#[derive(Args)]
struct ProfileArgs {
    /// Time every GPU kernel with GPU timestamps and print, per kernel (and per stage for the
    /// job), its GPU time and the bytes its bindings hold; each submission waits for its
    /// timestamps, so a profiled run is slower
    #[arg(long)]
    profile: bool,
    /// The GPU's memory bandwidth in GB/s, to print each kernel's share of it with --profile
    #[arg(long, value_name = "GBPS", requires = "profile", value_parser = positive_rate)]
    bandwidth: Option<f64>,
}

fn positive_rate(text: &str) -> std::result::Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("'{text}' is not a positive number of GB/s")),
    }
}

/// One side of the job per process, sharing a directory.
#[derive(Subcommand)]
enum MnistStep {
    /// Client: make keys; write params.bin, evaluation-keys.bin and secret.key (created new,
    /// owner-only) to DIR
    Keys {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Parameter preset: cryptonets8192 (the shipped models), deep16384 or deep32768 (for
        /// deeper models: `hegpu import` prints the smallest that holds one) [default: with
        /// --model, the smallest its plan fits; else cryptonets8192]
        #[arg(long, value_name = "NAME", value_parser = preset_name)]
        preset: Option<hegpu::ckks::Preset>,
        #[command(flatten)]
        packing: SplitArgs,
        /// The server's model: the keys are made for its plan, the preset's chain cut to the
        /// levels it uses (the latency packing needs it, for the Galois keys its rotations need)
        #[arg(long, value_name = "FILE|NAME")]
        model: Option<PathBuf>,
        /// Calibration data (training images) for the model's plan
        #[arg(long, value_name = "DIR", default_value = "data/mnist")]
        data: PathBuf,
    },
    /// Client: encrypt test images into batch files in DIR (in the latency packing, one file
    /// per request)
    Encrypt {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        #[arg(long, value_name = "K", default_value_t = 1000, value_parser = at_least_one)]
        images: usize,
        /// Images per batch (at most N/2 = 4,096; a batch costs the server the same however
        /// full it is) [default: 4096]
        #[arg(long, value_name = "B", value_parser = at_least_one)]
        batch: Option<usize>,
        #[arg(long, value_name = "DIR", default_value = "data/mnist")]
        data: PathBuf,
        #[command(flatten)]
        packing: SplitArgs,
        /// Latency packing: the server's model, whose plan lays the images out
        #[arg(long, value_name = "FILE|NAME")]
        model: Option<PathBuf>,
    },
    /// Server: evaluate every batch in DIR with public files only; write result files (a bad
    /// batch is reported and the others go on)
    Serve {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        #[arg(long, value_name = "FILE|NAME", default_value = "cryptonets-5")]
        model: PathBuf,
        /// Calibration data (training images) for the server's plan
        #[arg(long, value_name = "DIR", default_value = "data/mnist")]
        data: PathBuf,
        #[command(flatten)]
        packing: SplitArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Client: decrypt the result files in DIR and score them (a bad result is reported and
    /// the others are scored)
    Decrypt {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        #[arg(long, value_name = "DIR", default_value = "data/mnist")]
        data: PathBuf,
        /// Also compare with this model's plaintext predictions (the latency packing needs
        /// the server's model to read the outputs)
        #[arg(long, value_name = "FILE|NAME")]
        model: Option<PathBuf>,
        #[command(flatten)]
        packing: SplitArgs,
    },
}

/// The packing of the split steps: every step of one directory must be given the same.
#[derive(Args)]
struct SplitArgs {
    /// batch (an image per slot) or latency (an image per ciphertext; every step then needs
    /// the server's --model, whose plan is public)
    #[arg(long, value_name = "PACKING", default_value = "batch", value_parser = split_packing)]
    packing: hegpu_cli::job::Packing,
    /// Latency packing: images that may share a ciphertext (as `hegpu mnist --per-ciphertext`)
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = at_least_one)]
    per_ciphertext: usize,
}

impl SplitArgs {
    fn packing(&self) -> hegpu::pair::SplitPacking {
        use hegpu::pair::SplitPacking;
        match self.packing {
            hegpu_cli::job::Packing::Latency => SplitPacking::Latency {
                per_ciphertext: self.per_ciphertext,
            },
            _ => SplitPacking::Batch,
        }
    }
}

fn split_packing(text: &str) -> std::result::Result<hegpu_cli::job::Packing, String> {
    match text.trim() {
        "batch" => Ok(hegpu_cli::job::Packing::Batch),
        "latency" => Ok(hegpu_cli::job::Packing::Latency),
        _ => Err(format!("'{text}': the split steps take batch or latency")),
    }
}

#[derive(Args)]
struct BenchArgs {
    /// A short run (under a minute here)
    #[arg(long)]
    quick: bool,
    /// Sections, comma-separated: ntt (with tfhe-ntt), linear, ckks, network, peers (tfhe-rs
    /// on the dense layer, in builds with `-p hegpu-cli --features peers`), throughput (calls that fill a
    /// GPU, several per sync, with GB/s; not in --quick) [default: all]
    #[arg(long, value_name = "SECTIONS")]
    only: Option<String>,
    /// Batch sizes of the network rows, run at N = 2^13 and 2^14 [default: 64,512,4096,8192]
    #[arg(long, value_name = "LIST", value_parser = batch_list)]
    batches: Option<BatchList>,
    /// Write the records as JSON (- for standard output)
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Draw the network's images/s against batch size as SVG
    #[arg(long, value_name = "FILE.svg")]
    chart: Option<PathBuf>,
    #[command(flatten)]
    profile: ProfileArgs,
}

#[derive(Args)]
struct TrainArgs {
    #[arg(long, value_name = "DIR", default_value = "data/mnist")]
    data: PathBuf,
    /// Output model file [default: models/cryptonets-MAPS.safetensors]
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Feature maps of the convolution
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = at_least_one)]
    maps: usize,
    /// Width of the hidden dense layer
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = at_least_one)]
    hidden: usize,
    /// Train this network instead of CryptoNets: layers separated by spaces, e.g. "conv:16:5:2
    /// square dense:100 poly:0:0.5:0.25 dense:10". Kinds: conv:MAPS:K[:STRIDE[:PAD]],
    /// dense:N, avgpool:K[:STRIDE], sumpool:K[:STRIDE], pad:P or pad:T:B:L:R, flatten, square,
    /// poly:C0:C1:...:Cd (any degree), relu, sigmoid, tanh, silu
    #[arg(long, value_name = "LAYERS", conflicts_with_all = ["maps", "hidden"])]
    arch: Option<String>,
    /// After training, replace every FUNCTION (relu, sigmoid, tanh, silu) with a polynomial of
    /// DEGREE fitted on the training images, printing the accuracy before and after; repeat
    /// for several functions
    #[arg(long, value_name = "FUNCTION:DEGREE")]
    approx: Vec<hegpu::nn::ApproxSpec>,
    #[arg(long, value_name = "N", default_value_t = 60, value_parser = at_least_one)]
    epochs: usize,
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// Learning rate [default: 0.002]
    #[arg(long, value_name = "X", value_parser = positive)]
    lr: Option<f32>,
    /// Largest random shift of the training images, in pixels [default: 2]
    #[arg(long, value_name = "N")]
    shift: Option<usize>,
    /// Store weights as f32 instead of f16
    #[arg(long)]
    f32: bool,
}

fn at_least_one(text: &str) -> std::result::Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(format!("'{text}' is not a whole number of at least 1")),
    }
}

fn preset_name(text: &str) -> std::result::Result<hegpu::ckks::Preset, String> {
    hegpu::ckks::Preset::from_name(text.trim()).ok_or_else(|| {
        let names: Vec<&str> = hegpu::ckks::Preset::ALL.iter().map(|p| p.name()).collect();
        format!("'{text}' is not a preset: {}", names.join(", "))
    })
}

fn positive(text: &str) -> std::result::Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("'{text}' is not a positive number")),
    }
}

/// Batch sizes, each at least 1.
#[derive(Clone)]
struct BatchList(Vec<usize>);

fn batch_list(text: &str) -> std::result::Result<BatchList, String> {
    text.split(',')
        .map(|b| {
            at_least_one(b).map_err(|_| {
                format!("'{b}' is not a batch size (a whole number of images, at least 1)")
            })
        })
        .collect::<std::result::Result<_, _>>()
        .map(BatchList)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return refuse_arguments(e, &args),
    };
    let result = match cli.command {
        Command::Info => info(),
        Command::Bench(a) => bench(a),
        Command::Train(a) => train(a),
        Command::Import(a) => import(a),
        Command::HeBench(a) => he_bench(a),
        Command::Serve(a) => service::serve(a),
        Command::Client(a) => service::client(a),
        Command::Mnist { step: Some(s), .. } => mnist_step(s),
        Command::Mnist { step: None, job } => mnist(job),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hegpu: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints clap's help or version (success), or its error with the options the command takes
/// (exit status 2).
fn refuse_arguments(e: clap::Error, args: &[String]) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let text = e.render().to_string();
    eprint!("hegpu: {}", text.strip_prefix("error: ").unwrap_or(&text));
    if matches!(
        e.kind(),
        ErrorKind::UnknownArgument | ErrorKind::InvalidSubcommand
    ) {
        eprintln!("{}", valid_choices(args));
    }
    ExitCode::from(2)
}

/// The options (and commands) of the command `args` names, for an unknown-option message.
fn valid_choices(args: &[String]) -> String {
    let mut cmd = Cli::command();
    cmd.build();
    let mut path = vec!["hegpu".to_string()];
    for a in args.iter().skip(1).take_while(|a| !a.starts_with('-')) {
        match cmd.find_subcommand(a) {
            Some(sub) => {
                path.push(a.clone());
                cmd = sub.clone();
            }
            None => break,
        }
    }
    let options: Vec<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    let commands: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
    let mut out = format!("'{}' takes: {}", path.join(" "), options.join(", "));
    if !commands.is_empty() {
        out += &format!("; commands: {}", commands.join(", "));
    }
    out
}

fn info() -> Result<()> {
    match GpuBackend::new() {
        Ok(gpu) => println!("{}", gpu.report()),
        Err(Error::Gpu(hegpu::GpuError::NoAdapter(why))) if !gpu_required() => {
            println!("no GPU adapter ({why}); hegpu runs on the CPU")
        }
        Err(e) => return Err(e),
    }
    println!("CPU threads:            {}", rayon::current_num_threads());
    Ok(())
}

fn bench(args: BenchArgs) -> Result<()> {
    let mut plan = if args.quick {
        BenchPlan::quick()
    } else {
        BenchPlan::full()
    };
    if let Some(BatchList(b)) = args.batches {
        plan.network.batches = b;
    }
    if let Some(sections) = &args.only {
        plan = plan.only(sections)?;
    }
    if args.chart.is_some() && plan.network.batches.is_empty() {
        return Err(Error::Config(
            "--chart draws the network rows: keep the network section".into(),
        ));
    }
    let gpu_options = hegpu::backend::GpuOptions {
        profile: args.profile.profile,
        ..hegpu::backend::GpuOptions::from_env()?
    };
    let devices = Devices::open(DeviceChoice::from_env()?, gpu_options)?;
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
    if let Some(path) = args.json {
        let body: Vec<String> = records.iter().map(Record::to_json).collect();
        if write_output(&path, &format!("[\n{}\n]\n", body.join(",\n")))? {
            println!("wrote {} records to {}", records.len(), path.display());
        }
    }
    if let Some(path) = args.chart {
        let title = "hegpu: the encrypted CryptoNets network on MNIST";
        let lines = chart::network_chart(&records, &path, title)?;
        println!("drew {lines} lines in {}", path.display());
    }
    if args.profile.profile {
        let gpu = devices.list.iter().find_map(|(d, _)| d.kernel_profile());
        match gpu {
            Some(kernels) => print_kernels(&kernels, args.profile.bandwidth),
            None => println!("profile: no GPU timestamps (no GPU, or it lacks TIMESTAMP_QUERY)"),
        }
    }
    Ok(())
}

/// Writes `text` to `path` (true), or to standard output for `-` (false).
fn write_output(path: &std::path::Path, text: &str) -> Result<bool> {
    if path == std::path::Path::new("-") {
        print!("{text}");
        Ok(false)
    } else {
        hegpu::files::write_file(path, text.as_bytes())?;
        Ok(true)
    }
}

fn train(args: TrainArgs) -> Result<()> {
    use hegpu::nn::{MnistRecipe, WeightType, save_model, train_mnist};
    let mut recipe = MnistRecipe {
        maps: args.maps,
        hidden: args.hidden,
        arch: args.arch.clone(),
        ..Default::default()
    };
    recipe.train.epochs = args.epochs;
    recipe.train.seed = args.seed;
    if let Some(lr) = args.lr {
        recipe.train.learning_rate = lr;
    }
    if let Some(shift) = args.shift {
        recipe.train.shift = shift;
    }
    let dtype = if args.f32 {
        WeightType::F32
    } else {
        WeightType::F16
    };
    let out = args.out.unwrap_or_else(|| match &args.arch {
        Some(_) => "models/trained.safetensors".into(),
        None => format!("models/cryptonets-{}.safetensors", recipe.maps).into(),
    });
    let mnist = hegpu::data::Mnist::load(&args.data)?;
    let what = match &args.arch {
        Some(arch) => format!("\"{arch}\""),
        None => format!(
            "CryptoNets ({} maps, {} hidden)",
            recipe.maps, recipe.hidden
        ),
    };
    println!(
        "training {what} on {} images, testing on {}, {} threads",
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
    let (model, accuracy) = if args.approx.is_empty() {
        (model, accuracy)
    } else {
        let calibration =
            &hegpu::nn::pixels(&mnist.train_images)[..784 * 1000.min(mnist.train_labels.len())];
        let (approximated, replaced) = hegpu::nn::approximate(&model, calibration, &args.approx)?;
        for r in &replaced {
            println!(
                "layer {}: {} replaced by a degree-{} polynomial on [-{:.3}, {:.3}]",
                r.layer,
                r.spec.function.name(),
                r.spec.degree,
                r.range,
                r.range
            );
        }
        let test_px = hegpu::nn::pixels(&mnist.test_images);
        let test = hegpu::nn::Dataset {
            images: &test_px,
            labels: &mnist.test_labels,
            shape: vec![1, 28, 28],
        };
        let after = hegpu::nn::accuracy(&approximated, &test)?;
        println!(
            "test accuracy {:.2}% as trained, {:.2}% with the polynomials",
            100.0 * accuracy,
            100.0 * after
        );
        (approximated, after)
    };
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

fn import(args: ImportArgs) -> Result<()> {
    use hegpu_cli::job::{ImportOptions, run_import};
    let out = args
        .out
        .unwrap_or_else(|| args.onnx.with_extension("safetensors"));
    let report = run_import(&ImportOptions {
        onnx: args.onnx.clone(),
        out: out.clone(),
        approx: args.approx,
        data: args.data,
        calibration: args.calibration,
        weights: if args.f32 {
            hegpu::nn::WeightType::F32
        } else {
            hegpu::nn::WeightType::F16
        },
    })?;
    println!("imported {}:", args.onnx.display());
    for (i, layer) in report.layers.iter().enumerate() {
        println!("  {i:>2}  {layer}");
    }
    for note in &report.notes {
        println!("note: {note}");
    }
    for r in &report.replaced {
        println!(
            "layer {}: {} replaced by a degree-{} polynomial on [-{:.3}, {:.3}], largest error \
             {:.3e} on the calibration values",
            r.layer,
            r.spec.function.name(),
            r.spec.degree,
            r.range,
            r.range,
            r.max_error
        );
    }
    let percent = |a: Option<f32>| a.map_or("-".into(), |a| format!("{:.2}%", 100.0 * a));
    if report.test_images > 0 {
        println!(
            "plaintext accuracy on {} test digits: {} imported, {} as written{}",
            report.test_images,
            percent(report.accuracy_imported),
            percent(report.accuracy_written),
            if report.replaced.is_empty() {
                ""
            } else {
                " (with the polynomials)"
            }
        );
    }
    if !report.unreplaced.is_empty() {
        let names: Vec<&str> = report.unreplaced.iter().map(|f| f.name()).collect();
        println!(
            "the model keeps {}: it runs in plaintext only; add --approx {}:DEGREE to run it \
             encrypted",
            names.join(", "),
            names[0]
        );
    }
    if let Some(levels) = report.levels {
        println!("encrypted pass: {levels} levels");
    }
    match &report.preset {
        Some(Ok(name)) => println!("parameters:    {name} (the smallest preset that holds it)"),
        Some(Err(why)) => println!("parameters:    none: {why}"),
        None => {}
    }
    println!("wrote {}", out.display());
    Ok(())
}

fn he_bench(args: HeBenchArgs) -> Result<()> {
    use hegpu_cli::job::he_bench::{Instance, StageOptions, run_stage};
    let instance = Instance::new(&args.root, usize::from(args.size))?;
    let at = |p: &std::path::Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            args.root.join(p)
        }
    };
    let opts = StageOptions {
        model: at(&args.model),
        calibration: at(&args.data),
        server: args.server.server()?,
    };
    let done = run_stage(args.stage, &instance, &opts)?;
    println!("hegpu {:?} ({}): {done}", args.stage, instance.name());
    Ok(())
}

/// The library's warnings (why the CPU was chosen, a GPU failure), on standard error.
fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("hegpu: {w}");
    }
}

/// Prints each failure; an error saying how many `what` (singular, plural) failed in `place`,
/// when any did.
fn failures(failed: &[String], what: (&str, &str), place: &str) -> Result<()> {
    for f in failed {
        eprintln!("hegpu: FAILED {f}");
    }
    match failed.len() {
        0 => Ok(()),
        k => Err(Error::Data {
            path: place.to_string(),
            why: format!(
                "{k} {} failed (listed above); the others are done",
                if k == 1 { what.0 } else { what.1 }
            ),
        }),
    }
}

/// `hegpu mnist keys|encrypt|serve|decrypt --dir D …`: one side of the job per process.
fn mnist_step(step: MnistStep) -> Result<()> {
    use hegpu_cli::job::files;
    match step {
        MnistStep::Keys {
            dir,
            preset,
            packing,
            model,
            data,
        } => {
            files::client_keys(&dir, preset, packing.packing(), (model.as_deref(), &data))?;
            println!(
                "wrote params.bin, evaluation-keys.bin and secret.key to {}",
                dir.display()
            );
            Ok(())
        }
        MnistStep::Encrypt {
            dir,
            images,
            batch,
            data,
            packing,
            model,
        } => {
            let source = (data.as_path(), model.as_deref());
            let n = files::client_encrypt(&dir, source, images, batch, packing.packing())?;
            println!("encrypted {n} test images into {}", dir.display());
            Ok(())
        }
        MnistStep::Serve {
            dir,
            model,
            data,
            packing,
            server,
        } => {
            let report = files::server_evaluate(
                &dir,
                (&model, &data),
                &server.server()?,
                packing.packing(),
            )?;
            warn(&report.warnings);
            println!(
                "evaluated {} batch(es) in {:.2} s; results in {}",
                report.evaluated,
                report.seconds,
                dir.display()
            );
            failures(
                &report.failed,
                ("batch", "batches"),
                &dir.display().to_string(),
            )
        }
        MnistStep::Decrypt {
            dir,
            data,
            model,
            packing,
        } => {
            let source = (data.as_path(), model.as_deref());
            let r = files::client_decrypt(&dir, source, packing.packing())?;
            let share = |k: usize| 100.0 * k as f64 / r.images.max(1) as f64;
            println!("accuracy: {:.2}% of {} images", share(r.correct), r.images);
            if let Some(a) = &r.agreement {
                println!("agrees with plaintext: {:.2}%", 100.0 * a.share());
                println!("logit error:           {}", a.error_line());
            }
            failures(&r.failed, ("result", "results"), &dir.display().to_string())
        }
    }
}

fn mnist(args: JobArgs) -> Result<()> {
    use hegpu_cli::job::{JobOptions, Phase, run_mnist};
    use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
    let opts = JobOptions {
        images: args.images,
        data: args.data,
        model: args.model,
        packing: args.packing,
        per_ciphertext: args.per_ciphertext,
        batch: args.batch,
        in_flight: args.in_flight,
        server: hegpu_cli::job::ServerDevice {
            profile: args.profile.profile,
            ..args.server.server()?
        },
    };
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
    warn(&report.warnings);
    println!("device:                {}", report.device);
    println!(
        "parameters:            {} with {} levels (the smallest preset that holds the plan, cut to the levels it uses)",
        report.preset, report.levels
    );
    for f in &report.fallbacks {
        println!("GPU fallback:          {f}");
    }
    if report.latency.is_some() {
        println!(
            "images:                {} in {} request(s) (latency packing), {} classified",
            report.images, report.batches, report.classified
        );
    } else {
        println!(
            "images:                {} in {} batch(es) (batch packing), {} classified",
            report.images, report.batches, report.classified
        );
    }
    println!("accuracy:              {:.2}%", 100.0 * report.accuracy());
    println!(
        "agrees with plaintext: {:.2}%",
        100.0 * report.agreement.share()
    );
    println!("logit error:           {}", report.agreement.error_line());
    println!(
        "time (s):              keys {:.2}, encrypt {:.2}, evaluate {:.2}, decrypt {:.2}",
        report.seconds_keys,
        report.seconds_encrypt,
        report.seconds_evaluate,
        report.seconds_decrypt
    );
    let failed = match &report.latency {
        Some(latency) => {
            print_latency(&report, latency);
            ("image", "images")
        }
        None => {
            print_batch(&report);
            ("batch", "batches")
        }
    };
    if args.profile.profile {
        print_profile(&report, args.profile.bandwidth);
    }
    if let Some(bytes) = report.peak_memory_bytes {
        println!(
            "peak memory:           {:.0} MiB (client and server in one process)",
            bytes as f64 / f64::from(1 << 20)
        );
    }
    if let Some(path) = args.json
        && write_output(&path, &(report.to_json() + "\n"))?
    {
        println!("wrote {}", path.display());
    }
    failures(&report.failed_batches, failed, "the job")
}

/// The batch packing's per-batch lines.
fn print_batch(report: &hegpu_cli::job::JobReport) {
    let per_batch = |k: u64| k as f64 / report.modes.len().max(1) as f64;
    println!(
        "server work per batch: {:.0} key switches, {:.0} single-limb NTTs",
        per_batch(report.key_switches),
        per_batch(report.ntts)
    );
    let gpu = report.gpu_counts();
    if gpu.dispatches > 0 {
        println!(
            "GPU host work per batch: {:.0} dispatches, {:.0} submits, {:.0} buffers created, {:.1} MB zero-filled",
            per_batch(gpu.dispatches),
            per_batch(gpu.submits),
            per_batch(gpu.buffers_created),
            per_batch(gpu.zeroed_bytes) / 1e6
        );
        println!(
            "GPU traffic per batch: {:.2} GB read and written by the kernels (modelled, no cache)",
            per_batch(gpu.bytes_read + gpu.bytes_written) / 1e9
        );
    }
    println!(
        "server:                {:.0} images/s ({:.0} images/s with full batches of {})",
        report.server_images_per_second(),
        report.server_images_per_second_full(),
        report.batch_capacity
    );
    println!(
        "end to end:            {:.0} images/s (from the first encryption to the last decryption)",
        report.end_to_end_images_per_second()
    );
    let per = |b: usize| b as f64 / report.classified.max(1) as f64;
    println!(
        "bytes per image:       {:.0} sent, {:.0} received (evaluation keys once: {} bytes)",
        per(report.bytes_sent),
        per(report.bytes_received),
        report.bytes_keys
    );
}

/// The latency packing's per-request and per-image lines.
fn print_latency(report: &hegpu_cli::job::JobReport, latency: &hegpu_cli::job::LatencyReport) {
    let k = latency.images_per_request;
    let requests = latency.evaluate_seconds.len().max(1) as f64;
    let per_request = |x: f64| 1e3 * x / requests;
    let kb = |b: usize| b as f64 / requests / 1e3;
    println!(
        "per request ({k} image{}): encrypt {:.1} ms, upload {:.0} KB ({} ciphertexts), evaluate \
         {:.1} ms (median; 90% within {:.1} ms), download {:.0} KB, decrypt {:.1} ms",
        if k == 1 { "" } else { "s" },
        per_request(report.seconds_encrypt),
        kb(report.bytes_sent),
        latency.input_ciphertexts,
        1e3 * latency.evaluate_quantile(0.5),
        1e3 * latency.evaluate_quantile(0.9),
        kb(report.bytes_received),
        per_request(report.seconds_decrypt)
    );
    println!(
        "server:                {:.0} images/s, {:.1} ms per image",
        report.server_images_per_second(),
        1e3 * report.seconds_evaluate / report.classified.max(1) as f64
    );
    println!(
        "server work per request: {} key switches (rotations, relinearizations), {} plaintext products",
        latency.key_switches, latency.plaintext_products
    );
    println!(
        "evaluation keys once:  relinearization + {} Galois keys, {:.1} MB (keys {:.2} s)",
        latency.galois_keys,
        report.bytes_keys as f64 / 1e6,
        report.seconds_keys
    );
}

/// The `--profile` tables: GPU time and bytes per kernel, then GPU against host time per stage.
fn print_profile(report: &hegpu_cli::job::JobReport, bandwidth: Option<f64>) {
    let Some(kernels) = &report.kernels else {
        println!(
            "profile:               no GPU timestamps (the server ran on the CPU, or the adapter lacks TIMESTAMP_QUERY)"
        );
        return;
    };
    print_kernels(kernels, bandwidth);
    println!("\nper stage, all batches:");
    println!(
        "{:<40} {:>10} {:>10} {:>14} {:>10}",
        "stage", "seconds", "GPU ms", "host record ms", "dispatches"
    );
    for s in &report.stages {
        println!(
            "{:<40} {:>10.3} {:>10.2} {:>14.2} {:>10}",
            s.what,
            s.seconds,
            s.counts.gpu_ns as f64 / 1e6,
            s.counts.host_ns as f64 / 1e6,
            s.counts.dispatches
        );
    }
}

/// GPU time, dispatches, bytes bound and GB/s per kernel (`--profile`).
fn print_kernels(kernels: &[hegpu::backend::KernelProfile], bandwidth: Option<f64>) {
    let share =
        |gbps: f64| bandwidth.map_or(String::new(), |b| format!("{:>6.1}%", 100.0 * gbps / b));
    println!(
        "\nGPU time per kernel (bytes: global-memory traffic modelled from each kernel's reads and writes, no cache):"
    );
    println!(
        "{:<20} {:>10} {:>10} {:>10} {:>11} {:>8} {}",
        "kernel",
        "dispatches",
        "GPU ms",
        "read MB",
        "written MB",
        "GB/s",
        if bandwidth.is_some() { " share" } else { "" }
    );
    for k in kernels {
        println!(
            "{:<20} {:>10} {:>10.2} {:>10.1} {:>11.1} {:>8.1} {}",
            k.kernel,
            k.dispatches,
            k.gpu_ns as f64 / 1e6,
            k.bytes_read as f64 / 1e6,
            k.bytes_written as f64 / 1e6,
            k.gb_per_second(),
            share(k.gb_per_second())
        );
    }
}
