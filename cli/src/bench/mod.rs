//! The measurements behind `hegpu bench`: NTT forward/inverse and the linear-layer MAC on the
//! CPU (one thread and all threads), the GPU, and tfhe-ntt prime32 as the peer; the CKKS
//! operations of each preset ([`ckks`]); the whole encrypted network across ring degrees and
//! batch sizes ([`run_network`], drawn by `hegpu bench --chart`); and, with the `peers` feature, tfhe-rs on the
//! network's dense layer (`peers`).

pub mod ckks;
pub(crate) mod network;
#[cfg(feature = "peers")]
pub mod peers;
pub(crate) mod throughput;

pub use network::{DenseSample, NetworkBench, NetworkCase, network_parameters, run_network};
pub use throughput::{ThroughputPlan, run_throughput};

use hegpu::backend::open_gpu;
use hegpu::backend::{Backend, CpuBackend, DeviceChoice, GpuOptions, PolyBatch};
use hegpu::math::Ring;
use hegpu::math::ntt_primes;
use hegpu::{Error, GpuError, ParamsError, Result};
use rayon::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One measured figure. `per_second` counts single-limb transforms for the NTT ops, modular
/// multiply-adds for `linear_mac`, ciphertexts for the CKKS ops and images for the network
/// (see `unit`); `detail` says what else the row needs to be read right.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Record {
    pub op: &'static str,
    pub n: usize,
    pub limbs: usize,
    pub batch: usize,
    pub backend: String,
    pub threads: usize,
    pub per_second: f64,
    pub unit: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Record {
    /// The record as one JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a record is plain data")
    }
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchPlan {
    /// (N, limbs, batch) for the NTT.
    pub ntt_shapes: Vec<(usize, usize, usize)>,
    /// (N, limbs, outputs J, inputs K) for the linear layer.
    pub linear_shapes: Vec<(usize, usize, usize, usize)>,
    /// CKKS presets whose operations are measured.
    pub ckks_presets: Vec<hegpu::ckks::Preset>,
    /// The whole network (no rows when its batch list is empty).
    pub network: NetworkBench,
    /// Terms of the dense-layer dot product the tfhe-rs peer times; 0 leaves it out. Only
    /// builds with the `peers` feature can measure it.
    pub peer_terms: usize,
    /// Large calls, several per sync ([`run_throughput`]).
    pub throughput: ThroughputPlan,
    /// Least time spent per measurement.
    pub min_time: Duration,
}

/// The parts of a plan `--only` can keep.
pub const SECTIONS: [&str; 6] = ["ntt", "linear", "ckks", "network", "peers", "throughput"];

impl BenchPlan {
    /// Under a minute on two cores, lavapipe included: the primitives and CKKS operations, and
    /// the network at N = 2^13 on full batches only.
    pub fn quick() -> Self {
        Self {
            ntt_shapes: vec![(1 << 13, 1, 1), (1 << 13, 8, 4), (1 << 14, 8, 2)],
            linear_shapes: vec![(1 << 13, 6, 16, 64)],
            ckks_presets: vec![hegpu::ckks::Preset::CryptoNets8192],
            network: NetworkBench {
                log_n: vec![13],
                batches: vec![4096],
                ..Default::default()
            },
            peer_terms: if cfg!(feature = "peers") { 4 } else { 0 },
            throughput: ThroughputPlan::default(),
            min_time: Duration::from_millis(300),
        }
    }

    /// The sizes of docs/benchmarks.md's table, N = 2^12 … 2^16 with 16 limbs.
    pub fn full() -> Self {
        Self {
            ntt_shapes: vec![
                (1 << 13, 1, 1),
                (1 << 12, 16, 8),
                (1 << 13, 16, 8),
                (1 << 14, 16, 4),
                (1 << 15, 16, 2),
                (1 << 16, 16, 1),
            ],
            linear_shapes: vec![(1 << 13, 6, 16, 64), (1 << 13, 6, 100, 845)],
            ckks_presets: vec![
                hegpu::ckks::Preset::CryptoNets8192,
                hegpu::ckks::Preset::Deep16384,
            ],
            network: NetworkBench::default(),
            peer_terms: if cfg!(feature = "peers") { 16 } else { 0 },
            throughput: ThroughputPlan::full(),
            min_time: Duration::from_secs(1),
        }
    }

    /// Keeps only the comma-separated `sections` (of [`SECTIONS`]).
    pub fn only(mut self, sections: &str) -> Result<Self> {
        let keep: Vec<&str> = sections.split(',').map(str::trim).collect();
        if let Some(bad) = keep.iter().find(|s| !SECTIONS.contains(s)) {
            return Err(Error::Config(format!(
                "'{bad}' is not a bench section; they are {}",
                SECTIONS.join(", ")
            )));
        }
        if keep.contains(&"peers") && !cfg!(feature = "peers") {
            return Err(Error::Config(
                "the peers section needs a build with `-p hegpu-cli --features peers`".into(),
            ));
        }
        let has = |s: &str| keep.contains(&s);
        if !has("ntt") {
            self.ntt_shapes.clear();
        }
        if !has("linear") {
            self.linear_shapes.clear();
        }
        if !has("ckks") {
            self.ckks_presets.clear();
        }
        if !has("network") {
            self.network.batches.clear();
        }
        if !has("peers") {
            self.peer_terms = 0;
        }
        if !has("throughput") {
            self.throughput = ThroughputPlan::default();
        }
        Ok(self)
    }
}

/// Runs `op` until `min_time` has passed (after one warm-up run); returns runs per second.
fn rate(min_time: Duration, mut op: impl FnMut() -> Result<()>) -> Result<f64> {
    op()?;
    let start = Instant::now();
    let mut runs = 0u64;
    while start.elapsed() < min_time {
        op()?;
        runs += 1;
    }
    Ok(runs as f64 / start.elapsed().as_secs_f64())
}

/// Rows of forward and inverse NTTs of `batch` polynomials of `ring` on every device, `calls`
/// calls per sync for at least `min_time` each; `detail(bytes per second)` completes a row.
fn ntt_rows(
    ring: &Arc<Ring>,
    batch: usize,
    devices: &Devices,
    (calls, min_time): (usize, Duration),
    detail: &dyn Fn(f64) -> String,
    push: &mut dyn FnMut(Record),
) -> Result<()> {
    let (n, limbs) = (ring.degree(), ring.limbs());
    let words = sample_words(ring, batch);
    let rows = (calls * batch * limbs) as f64;
    for (dev, threads) in &devices.list {
        let mut x: PolyBatch = dev.upload(ring, batch, &words)?;
        for (op, forward) in [("ntt_forward", true), ("ntt_inverse", false)] {
            let per_second = rows
                * rate(min_time, || {
                    for _ in 0..calls {
                        match forward {
                            true => dev.ntt_forward(&mut x)?,
                            false => dev.ntt_inverse(&mut x)?,
                        }
                    }
                    dev.sync()
                })?;
            push(Record {
                op,
                n,
                limbs,
                batch,
                backend: dev.name(),
                threads: *threads,
                per_second,
                unit: "transforms",
                // In place: every word read and written once at least.
                detail: detail(per_second * (8 * n) as f64),
            });
        }
    }
    Ok(())
}

/// A dense `outputs × inputs` matrix of deterministic reduced words as compressed rows.
fn dense_matrix(ring: &Ring, outputs: usize, inputs: usize) -> hegpu::backend::SparseRows {
    let limbs = ring.limbs();
    hegpu::backend::SparseRows {
        offsets: (0..=outputs).map(|j| j * inputs).collect(),
        columns: (0..outputs).flat_map(|_| 0..inputs).collect(),
        words: (0..outputs * inputs * limbs)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761) % ring.modulus(i % limbs).value())
            .collect(),
        bias: Vec::new(),
    }
}

fn ring_for(n: usize, limbs: usize) -> Result<Arc<Ring>> {
    Ring::new(n, &ntt_primes(n, 30, limbs, &[])?)
}

/// Deterministic reduced words for `batch` polynomials (benchmark inputs).
pub fn sample_words(ring: &Ring, batch: usize) -> Vec<u32> {
    let mut s = 0x9E37_79B9u32;
    (0..batch * ring.poly_words())
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s % ring.modulus((i / ring.degree()) % ring.limbs()).value()
        })
        .collect()
}

/// The devices measured: CPU one thread, CPU all threads, and the GPU when an adapter exists.
/// The GPU's thread count is 0.
pub struct Devices {
    pub list: Vec<(Arc<dyn Backend>, usize)>,
    pub gpu_note: Option<String>,
    /// The GPU adapter is a software rasterizer (lavapipe): the CPU again, by another road.
    pub gpu_is_software: bool,
}

impl Devices {
    /// Opens the devices: the CPU with one thread and with all threads, and the GPU (opened
    /// with `gpu`: to profile it, say) unless `choice` is the CPU. With `DeviceChoice::Gpu` or
    /// [`GpuOptions::required`], a missing adapter is an error.
    pub fn open(choice: DeviceChoice, gpu: GpuOptions) -> Result<Self> {
        let all = CpuBackend::new(None)?;
        let threads = all.threads();
        let mut list: Vec<(Arc<dyn Backend>, usize)> =
            vec![(Arc::new(CpuBackend::new(Some(1))?), 1)];
        if threads > 1 {
            list.push((Arc::new(all), threads));
        }
        let mut gpu_note = None;
        let mut gpu_is_software = false;
        let require = gpu.required || choice == DeviceChoice::Gpu;
        match choice {
            DeviceChoice::Cpu => gpu_note = Some("the CPU was chosen".to_string()),
            _ => match open_gpu(gpu) {
                Ok(g) => {
                    gpu_is_software = g.software;
                    list.push((g.backend, 0));
                }
                Err(e @ Error::Gpu(GpuError::NoAdapter(_))) if !require => {
                    gpu_note = Some(e.to_string())
                }
                Err(e) => return Err(e),
            },
        }
        Ok(Self {
            list,
            gpu_note,
            gpu_is_software,
        })
    }

    /// The devices as (name, backend) pairs, for benchmark ids.
    pub fn named(self) -> Vec<(String, Arc<dyn Backend>)> {
        self.list
            .into_iter()
            .map(|(dev, _)| (dev.name(), dev))
            .collect()
    }
}

/// Measures every op of `plan` on every device and on the peers.
pub fn run(
    plan: &BenchPlan,
    devices: &Devices,
    mut report: impl FnMut(&Record),
) -> Result<Vec<Record>> {
    // The model and data first: a missing file is an error before minutes of measuring.
    let dense = match plan.network.batches.is_empty() && plan.peer_terms == 0 {
        true => None,
        false => Some(plan.network.dense_sample()?),
    };
    let mut records = Vec::new();
    let mut push = |r: Record| {
        report(&r);
        records.push(r);
    };
    run_ntt(plan, devices, &mut push)?;
    run_linear(plan, devices, &mut push)?;
    for &preset in &plan.ckks_presets {
        ckks::run_ckks(preset, devices, plan.min_time, &mut push)?;
    }
    if !plan.throughput.is_empty() {
        throughput::run_throughput(&plan.throughput, devices, plan.min_time, &mut push)?;
    }
    if !plan.network.batches.is_empty() {
        network::run_network(&plan.network, devices, dense.as_ref(), &mut push)?;
    }
    #[cfg(feature = "peers")]
    if let (Some(sample), true) = (&dense, plan.peer_terms > 0) {
        push(peers::tfhe_dense_layer(sample, plan.peer_terms)?);
    }
    Ok(records)
}

/// The forward NTT of `plan.ntt_shapes` on every device, and tfhe-ntt's as a peer.
fn run_ntt(plan: &BenchPlan, devices: &Devices, push: &mut dyn FnMut(Record)) -> Result<()> {
    for &(n, limbs, batch) in &plan.ntt_shapes {
        let ring = ring_for(n, limbs)?;
        let words = sample_words(&ring, batch);
        let rows = (batch * limbs) as f64;
        ntt_rows(
            &ring,
            batch,
            devices,
            (1, plan.min_time),
            &|_| String::new(),
            push,
        )?;
        // The peer: tfhe-ntt's prime32 plans over the same rows, one thread and all threads.
        let plans: Vec<tfhe_ntt::prime32::Plan> = ring
            .primes()
            .iter()
            .map(|&p| {
                tfhe_ntt::prime32::Plan::try_new(n, p)
                    .ok_or(Error::Params(ParamsError::NotNttFriendly { p, n }))
            })
            .collect::<Result<_>>()?;
        for (dev_threads, pool) in peer_pools(devices)? {
            let mut data = words.clone();
            let per_second = rows
                * rate(plan.min_time, || {
                    if dev_threads == 1 || rows == 1.0 {
                        data.chunks_mut(n)
                            .enumerate()
                            .for_each(|(row, r)| plans[row % limbs].fwd(r));
                    } else {
                        pool.install(|| {
                            data.par_chunks_mut(n)
                                .enumerate()
                                .for_each(|(row, r)| plans[row % limbs].fwd(r))
                        });
                    }
                    Ok(())
                })?;
            let backend = "tfhe-ntt prime32 (peer)".to_string();
            push(Record {
                op: "ntt_forward",
                n,
                limbs,
                batch,
                backend,
                threads: dev_threads,
                per_second,
                unit: "transforms",
                detail: String::new(),
            });
        }
    }
    Ok(())
}

/// Dense and sparse plaintext-by-ciphertext maps of `plan.linear_shapes` on every device.
fn run_linear(plan: &BenchPlan, devices: &Devices, push: &mut dyn FnMut(Record)) -> Result<()> {
    for &(n, limbs, outputs, inputs) in &plan.linear_shapes {
        let ring = ring_for(n, limbs)?;
        let x_words = sample_words(&ring, inputs);
        let macs = (outputs * inputs * limbs * n) as f64;
        // The matrix as compressed rows (the kernel the encrypted network uses), and its
        // words `[j][k][l]` (which is `[entry][limb]`) as dense weights.
        let sparse = dense_matrix(&ring, outputs, inputs);
        let w_words = &sparse.words;
        for (dev, threads) in &devices.list {
            let x = dev.upload(&ring, inputs, &x_words)?;
            let w = dev.upload_weights(&ring, outputs, inputs, w_words)?;
            let ws = dev.upload_sparse(&ring, inputs, &sparse)?;
            for (op, sparse) in [("linear_mac", false), ("linear_sparse_mac", true)] {
                let per_second = macs
                    * rate(plan.min_time, || {
                        match sparse {
                            true => dev.linear_sparse(&ws, &x)?,
                            false => dev.linear(&w, &x)?,
                        };
                        dev.sync()
                    })?;
                push(Record {
                    op,
                    n,
                    limbs,
                    batch: outputs * inputs,
                    backend: dev.name(),
                    threads: *threads,
                    per_second,
                    unit: "multiply-adds",
                    detail: String::new(),
                });
            }
        }
    }
    Ok(())
}

fn peer_pools(devices: &Devices) -> Result<Vec<(usize, rayon::ThreadPool)>> {
    devices
        .list
        .iter()
        .filter(|(_, t)| *t > 0)
        .map(|(_, t)| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(*t)
                .build()
                .map_err(|e| Error::Config(e.to_string()))?;
            Ok((*t, pool))
        })
        .collect()
}
