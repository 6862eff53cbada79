//! The scheduler against the plain CPU run of the same network (a linear stage alone, one
//! with its square, and a square alone; and two maps the CPU runs in one pass): the GPU
//! resident, streamed
//! within a budget of an eighth of what the resident run held, shared with the CPU, and losing
//! its device in the middle of a batch must all give the same ciphertext bytes.

mod common;

use hegpu::backend::{Backend, CpuBackend, GpuBackend, GpuOptions};
use hegpu::ckks::*;
use hegpu::nn::*;
use hegpu::tensor::{Mode, ScheduleOptions, ScheduleReport, Scheduler};
use rand::Rng;
use std::sync::{Arc, OnceLock};

/// The network, keys and an encrypted batch, made once.
struct Setup {
    params: Arc<Parameters>,
    keys: EvaluationKeys,
    net: EncryptedNetwork,
    input: Vec<u8>,
    /// The CPU's output bytes.
    expected: Vec<u8>,
}

fn model() -> Model {
    let mut m = Model {
        input: vec![1, 6, 6],
        layers: vec![
            Layer::Conv2d(Conv2d {
                in_channels: 1,
                out_channels: 2,
                kernel: 3,
                stride: 1,
                padding: 0,
                weight: vec![0.0; 18],
                bias: vec![0.0; 2],
            }),
            Layer::Flatten(Flatten),
            Layer::Dense(Dense {
                inputs: 32,
                outputs: 12,
                weight: vec![0.0; 384],
                bias: vec![0.0; 12],
            }),
            Layer::Square(Square),
            Layer::Square(Square),
            Layer::Dense(Dense {
                inputs: 12,
                outputs: 3,
                weight: vec![0.0; 36],
                bias: vec![0.0; 3],
            }),
        ],
    };
    initialize(&mut m, 21).unwrap();
    m
}

/// A network whose map narrowing its inputs by more than half follows another (784→845→100
/// in the shipped one): the CPU runs the two in one pass, never holding the first one's
/// outputs whole, where a GPU runs them one after the other.
fn fused_model() -> Model {
    // conv, flatten, x², dense 32→12, x², dense 12→3.
    let mut m = model();
    m.layers.retain(|l| !matches!(l, Layer::Square(Square)));
    m.layers.insert(2, Layer::Square(Square));
    m.layers.insert(4, Layer::Square(Square));
    initialize(&mut m, 22).unwrap();
    m
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| make_setup(model()))
}

fn fused_setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| make_setup(fused_model()))
}

fn make_setup(model: Model) -> Setup {
    {
        let params = Parameters::preset(Preset::CryptoNets8192).unwrap();
        let mut kg = KeyGenerator::new(&params, Seed::from_u64(31));
        let sk = kg.secret_key().unwrap();
        let keys = EvaluationKeys {
            relin: Some(kg.relin_key(&sk).unwrap()),
            ..Default::default()
        };
        let cpu: Arc<dyn Backend> = Arc::new(CpuBackend::new(None).unwrap());
        let mut r = common::rng(32);
        let images: Vec<f32> = (0..6 * 36).map(|_| r.random_range(0.0..1.0)).collect();
        let net =
            EncryptedNetwork::plan(&model, &params, &Bounds::measure(&model, &images).unwrap())
                .unwrap();
        let encryptor =
            Encryptor::with_secret_key(&params, &sk, cpu.clone(), Seed::from_u64(33)).unwrap();
        let x = encrypt_images(&net, &Encoder::new(&params), &encryptor, &images).unwrap();
        let input = x.to_bytes(&params, &*cpu).unwrap();
        let mut setup = Setup {
            params,
            keys,
            net,
            input,
            expected: Vec::new(),
        };
        let (expected, report) = run(&setup, cpu, ScheduleOptions::default());
        assert_eq!(report.mode, Mode::Cpu);
        setup.expected = expected;
        setup
    }
}

/// The network on the setup's batch; the output's bytes and the report.
fn run(s: &Setup, device: Arc<dyn Backend>, options: ScheduleOptions) -> (Vec<u8>, ScheduleReport) {
    run_batches(s, device, options, 1).remove(0)
}

/// The network on the setup's batch `count` times with one scheduler: each output's bytes and
/// report.
fn run_batches(
    s: &Setup,
    device: Arc<dyn Backend>,
    options: ScheduleOptions,
    count: usize,
) -> Vec<(Vec<u8>, ScheduleReport)> {
    let scheduler = Scheduler::new(&s.params, &s.keys, device, options).unwrap();
    let host = scheduler.host().clone();
    (0..count)
        .map(|_| {
            let shape = s.net.shape().0;
            let x = hegpu::tensor::CipherTensor::from_bytes(&s.input, shape, &s.params, &*host)
                .unwrap();
            let (y, report) = s.net.forward_report(&scheduler, x).unwrap();
            assert_eq!(report.stages.len(), s.net.layer_plan().stages.len());
            (y.to_bytes(&s.params, &*host).unwrap(), report)
        })
        .collect()
}

fn gpu(options: GpuOptions) -> Option<Arc<GpuBackend>> {
    common::gpu()?;
    Some(Arc::new(GpuBackend::with_options(options).unwrap()))
}

#[test]
fn resident_gpu_equals_cpu_and_counts_its_traffic() {
    let s = setup();
    let Some(gpu) = gpu(GpuOptions::default()) else {
        return;
    };
    // A warm-up batch, then the batch whose host work is counted.
    let runs = run_batches(s, gpu, ScheduleOptions::default(), 2);
    for (got, report) in &runs {
        assert_eq!(report.mode, Mode::Resident);
        assert!(report.fallback.is_none());
        assert!(
            *got == s.expected,
            "the resident GPU run differs from the CPU"
        );
    }
    let reports: Vec<&ScheduleReport> = runs.iter().map(|(_, r)| r).collect();
    let (warm_up, report) = (reports[0], reports[1]);
    for stage in &report.stages {
        assert!(
            stage.counts.dispatches > 0 && stage.gpu_chunks > 0,
            "{stage:?}"
        );
        assert_eq!(stage.cpu_chunks, 0);
    }
    // The input goes up once and the output comes back once; no readback in between.
    let readbacks: u64 = report.stages.iter().map(|s| s.counts.readbacks).sum();
    assert_eq!(readbacks, 0, "{report:?}");
    // The host's work around the dispatches: once warm, every buffer comes from the arena
    // (none created, none zero-filled or cleared) and every bind group from the cache.
    let total = |r: &ScheduleReport| {
        let mut sum = hegpu::backend::TransferCounts::default();
        r.stages.iter().for_each(|s| sum.add(&s.counts));
        sum
    };
    let (first, sum) = (total(warm_up), total(report));
    eprintln!("warm-up batch: {first:?}\nresident batch: {sum:?}");
    assert!(
        first.buffers_created > 0 && first.bind_groups > 0,
        "{first:?}"
    );
    assert_eq!(
        (
            sum.buffers_created,
            sum.zeroed_bytes,
            sum.cleared_bytes,
            sum.bind_groups
        ),
        (0, 0, 0, 0),
        "{sum:?}"
    );
    // One submission per stage: operations record into one open command buffer, submitted
    // when the scheduler syncs at the end of the stage.
    for stage in &report.stages {
        assert_eq!(stage.counts.submits, 1, "{stage:?}");
    }
    // The tables the operations use are kept, so a warm batch uploads nothing.
    assert_eq!(sum.uploads, 0, "{sum:?}");
}

#[test]
fn the_cpu_pass_fusing_two_maps_equals_the_gpu_running_them_one_by_one() {
    let s = fused_setup();
    let cpu: Arc<dyn Backend> = Arc::new(CpuBackend::new(None).unwrap());
    let (_, on_cpu) = run(s, cpu, ScheduleOptions::default());
    let Some(gpu) = gpu(GpuOptions::default()) else {
        return;
    };
    let (got, report) = run(s, gpu, ScheduleOptions::default());
    assert_eq!(report.mode, Mode::Resident);
    assert!(
        got == s.expected,
        "the GPU's stages differ from the CPU's fused pass"
    );
    // The same work, in another order: key switches and NTTs are equal.
    let work = |r: &ScheduleReport| (r.key_switches, r.ntts);
    assert_eq!(work(&on_cpu), work(&report));
}

#[test]
fn a_profiled_batch_times_every_dispatch_and_still_equals_cpu() {
    let s = setup();
    let Some(gpu) = gpu(GpuOptions {
        profile: true,
        ..Default::default()
    }) else {
        return;
    };
    let timestamps = gpu.report().timestamp_query;
    let (got, report) = run(s, gpu.clone(), ScheduleOptions::default());
    assert!(
        got == s.expected,
        "the profiled GPU run differs from the CPU"
    );
    let Some(kernels) = gpu.kernel_profile() else {
        assert!(!timestamps, "an adapter with timestamps gives a profile");
        return;
    };
    let mut sum = hegpu::backend::TransferCounts::default();
    report.stages.iter().for_each(|s| sum.add(&s.counts));
    // Every dispatch of the batch is in the profile (the scheduler's setup dispatches none),
    // each kernel has GPU time, and the stages' GPU time is the kernels'.
    let dispatches: u64 = kernels.iter().map(|k| k.dispatches).sum();
    assert_eq!(dispatches, sum.dispatches, "{kernels:#?}");
    for k in &kernels {
        assert!(
            k.dispatches > 0 && k.gpu_ns > 0 && k.bytes_written > 0,
            "{k:?}"
        );
        assert!(k.gb_per_second() > 0.0, "{k:?}");
    }
    let gpu_ns: u64 = kernels.iter().map(|k| k.gpu_ns).sum();
    assert_eq!(gpu_ns, sum.gpu_ns);
    assert!(sum.host_ns > 0);
    for name in [
        "ntt_forward_local",
        "linear_sparse",
        "key_mul_acc",
        "ct_tensor",
    ] {
        assert!(
            kernels.iter().any(|k| k.kernel == name),
            "{name}: {kernels:#?}"
        );
    }
}

#[test]
fn streaming_within_an_eighth_of_the_memory_equals_cpu() {
    let s = setup();
    let Some(free) = gpu(GpuOptions::default()) else {
        return;
    };
    let base = free.live_bytes();
    let (_, report) = run(s, free.clone(), ScheduleOptions::default());
    assert_eq!(report.mode, Mode::Resident);
    let working_set = free.gpu_stats().unwrap().peak_bytes - base;
    drop(free);
    let small = gpu(GpuOptions::default()).unwrap();
    let (keys_and_tables, estimate) = {
        // What a scheduler holds before any batch: keys and ring tables.
        let probe = Scheduler::new(&s.params, &s.keys, small.clone(), Default::default()).unwrap();
        let inputs = s.net.shape().0.iter().product();
        let estimate = probe.resident_bytes(s.net.layer_plan(), inputs, s.params.max_level());
        (small.live_bytes(), estimate)
    };
    // The scheduler's estimate of the resident run covers what it held, without being so
    // loose that it would stream batches that fit.
    let held = working_set - keys_and_tables;
    assert!(
        estimate >= held && estimate <= 2 * held,
        "{estimate} for {held}"
    );
    drop(small);
    let budget = keys_and_tables + working_set / 8;
    let tight = gpu(GpuOptions {
        memory_budget: Some(budget),
        ..Default::default()
    })
    .unwrap();
    let (got, report) = run(s, tight.clone(), ScheduleOptions::default());
    assert_eq!(report.mode, Mode::Streamed, "{report:?}");
    assert!(report.fallback.is_none(), "{:?}", report.fallback);
    assert!(
        got == s.expected,
        "the streamed GPU run differs from the CPU"
    );
    assert!(tight.gpu_stats().unwrap().peak_bytes <= budget);
    let chunks: usize = report.stages.iter().map(|s| s.gpu_chunks).sum();
    assert!(chunks > report.stages.len(), "{report:?}");
}

#[test]
fn a_gpu_shared_with_the_cpu_equals_cpu() {
    let s = setup();
    let Some(gpu) = gpu(GpuOptions::default()) else {
        return;
    };
    let options = ScheduleOptions {
        split: true,
        gpu_memory: Some(64 << 20),
    };
    let (got, report) = run(s, gpu, options);
    assert_eq!(report.mode, Mode::Streamed);
    assert!(got == s.expected, "the split run differs from the CPU");
}

#[test]
fn losing_the_gpu_mid_batch_completes_on_the_cpu() {
    let s = setup();
    for (streamed, lose_after) in [(false, 40), (true, 60)] {
        let Some(gpu) = gpu(GpuOptions {
            lose_after_dispatches: Some(lose_after),
            ..Default::default()
        }) else {
            return;
        };
        let options = ScheduleOptions {
            gpu_memory: streamed.then_some(64 << 20),
            ..Default::default()
        };
        let scheduler = Scheduler::new(&s.params, &s.keys, gpu.clone(), options).unwrap();
        let host = scheduler.host().clone();
        let x =
            hegpu::tensor::CipherTensor::from_bytes(&s.input, s.net.shape().0, &s.params, &*host)
                .unwrap();
        let (y, report) = s.net.forward_report(&scheduler, x).unwrap();
        let why = report.fallback.clone().expect("a fallback is reported");
        assert!(why.contains("lost"), "{why}");
        // The scheduler hands the caller the warning to show (the library prints nothing).
        assert_eq!(scheduler.take_warnings(), vec![format!("warning: {why}")]);
        assert!(scheduler.take_warnings().is_empty());
        assert!(
            y.to_bytes(&s.params, &*host).unwrap() == s.expected,
            "after losing the GPU (streamed: {streamed}) the output differs"
        );
        assert!(matches!(
            gpu.sync(),
            Err(hegpu::Error::Gpu(hegpu::GpuError::DeviceLost(_)))
        ));
        // The next batch runs on the CPU straight away.
        let x =
            hegpu::tensor::CipherTensor::from_bytes(&s.input, s.net.shape().0, &s.params, &*host)
                .unwrap();
        let (_, next) = s.net.forward_report(&scheduler, x).unwrap();
        assert_eq!(next.mode, Mode::Cpu);
        if streamed {
            assert_eq!(report.mode, Mode::Streamed);
            let (gpu_chunks, cpu_chunks) = report
                .stages
                .iter()
                .fold((0, 0), |(g, c), st| (g + st.gpu_chunks, c + st.cpu_chunks));
            assert!(gpu_chunks > 0 && cpu_chunks > 0, "{report:?}");
        } else {
            assert_eq!(report.mode, Mode::Cpu);
        }
    }
}
