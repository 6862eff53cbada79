//! The network section of the benchmark suite on a small CryptoNets-shaped model: every
//! device gives rows, the later devices' output bytes must equal the first's (the bench checks
//! and this test sees the check in the rows), the first decrypts to the plaintext model's
//! answers, and the rows serialize (the chart is the command's: cli/src/chart.rs). The dense-layer sample the tfhe-rs peer uses is
//! checked against the float model.

mod common;

use hegpu::backend::gpu_required;
use hegpu::backend::{DeviceChoice, GpuOptions};
use hegpu::nn::{
    Conv2d, Dense, Flatten, Layer, Model, Square, WeightType, cryptonets, initialize, save_model,
};
use hegpu_cli::bench::{DenseSample, Devices, NetworkBench, Record, run_network};
use std::path::PathBuf;

/// The CryptoNets shape made small enough for lavapipe: one 5×5 map at stride 6 (4×4 outputs),
/// x², dense to 4, x², dense to 10.
fn small_model_file(dir: &std::path::Path) -> PathBuf {
    let mut model = Model {
        input: vec![1, 28, 28],
        layers: vec![
            Layer::Conv2d(Conv2d {
                in_channels: 1,
                out_channels: 1,
                kernel: 5,
                stride: 6,
                padding: 0,
                weight: vec![0.0; 25],
                bias: vec![0.0],
            }),
            Layer::Square(Square),
            Layer::Flatten(Flatten),
            Layer::Dense(Dense {
                inputs: 16,
                outputs: 4,
                weight: vec![0.0; 64],
                bias: vec![0.0; 4],
            }),
            Layer::Square(Square),
            Layer::Dense(Dense {
                inputs: 4,
                outputs: 10,
                weight: vec![0.0; 40],
                bias: vec![0.0; 10],
            }),
        ],
    };
    initialize(&mut model, 5).unwrap();
    let path = dir.join("small.safetensors");
    save_model(&model, &path, WeightType::F32).unwrap();
    path
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hegpu-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn network_rows_agree_across_devices() {
    let dir = temp_dir("bench");
    let bench = NetworkBench {
        model: small_model_file(&dir),
        log_n: vec![13],
        batches: vec![1500, 100_000],
        software_gpu: true,
        // The repository's MNIST sample (the test runs in cli/).
        data: concat!(env!("CARGO_MANIFEST_DIR"), "/../data/mnist").into(),
    };
    let devices = Devices::open(DeviceChoice::Auto, required()).unwrap();
    let dense = bench.dense_sample().unwrap();
    assert_eq!((dense.inputs.len(), dense.outputs), (16, 4));
    let mut rows: Vec<Record> = Vec::new();
    run_network(&bench, &devices, Some(&dense), &mut |r| rows.push(r)).unwrap();

    let network: Vec<&Record> = rows.iter().filter(|r| r.op == "network").collect();
    // A batch above N/2 is left out: one row per device. 1,500 images repeat the 1,000 test
    // images.
    assert_eq!(network.len(), devices.list.len(), "{rows:#?}");
    let dense_rows = rows.iter().filter(|r| r.op == "dense_layer").count();
    assert_eq!(dense_rows, devices.list.len(), "{rows:#?}");
    for (i, r) in network.iter().enumerate() {
        assert_eq!((r.n, r.limbs, r.batch, r.unit), (8192, 6, 1500, "images"));
        assert!(r.per_second > 0.0 && r.per_second.is_finite());
        assert!(
            r.detail.contains(" key switches, ") && r.detail.contains(" bytes sent"),
            "{}",
            r.detail
        );
        if i == 0 {
            let agree: f64 = r
                .detail
                .split('%')
                .next()
                .unwrap()
                .rsplit(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(agree >= 95.0, "{}", r.detail);
        } else {
            assert!(r.detail.contains("output bytes equal"), "{}", r.detail);
        }
    }
    let json: serde_json::Value =
        serde_json::from_str(&rows[0].to_json()).expect("a record is JSON");
    assert_eq!(json["op"], "network");
    assert_eq!(json["batch"], 1500);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_dense_sample_is_the_quantized_first_dense_layer() {
    let mut model = cryptonets(2, 3);
    initialize(&mut model, 9).unwrap();
    let mut r = common::rng(4);
    let image: Vec<f32> = (0..784)
        .map(|_| rand::Rng::random_range(&mut r, 0.0..1.0))
        .collect();
    let sample = DenseSample::from_model(&model, &image).unwrap();
    // The float activations before the dense layer, from the layers themselves.
    let shapes = model.shapes().unwrap();
    let mut x = image.clone();
    let mut weights = None;
    for (layer, shape) in model.layers.iter().zip(&shapes) {
        if let Layer::Dense(Dense { weight, inputs, .. }) = layer {
            weights = Some(weight[..*inputs].to_vec());
            break;
        }
        x = layer.forward(shape, &x).unwrap();
    }
    let w = weights.unwrap();
    assert_eq!((sample.inputs.len(), sample.outputs), (338, 3));
    let top = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let w_top = w.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (q, v) in sample.inputs.iter().zip(&x) {
        assert!((f32::from(*q) / 255.0 - v / top).abs() <= 0.5 / 255.0 + 1e-6);
    }
    for (q, v) in sample.weights.iter().zip(&w) {
        assert!((f32::from(*q) / 127.0 - v / w_top).abs() <= 0.5 / 127.0 + 1e-6);
    }
    assert!(sample.inputs.contains(&255) && sample.weights.iter().any(|q| q.abs() == 127));
    // A model without a dense layer has no sample.
    let conv_only = Model {
        input: vec![1, 28, 28],
        layers: vec![Layer::Square(Square)],
    };
    assert!(DenseSample::from_model(&conv_only, &image).is_err());
}

/// The throughput section on small shapes: a row per op and device, each with its calls per
/// sync and a positive traffic floor; `--quick` leaves the section out and the full plan has
/// calls of at least 10,000 single-limb rows.
#[test]
fn throughput_rows_fill_every_device_and_stay_out_of_quick_runs() {
    use hegpu::ckks::Preset;
    use hegpu_cli::bench::{BenchPlan, ThroughputPlan, run_throughput};
    let plan = ThroughputPlan {
        ntt: vec![(1 << 10, 2, 3)],
        linear: vec![(1 << 10, 2, 3, 5)],
        key_switch: vec![(Preset::CryptoNets8192, 2)],
        client_encrypt: vec![(Preset::CryptoNets8192, 3)],
        calls: 3,
    };
    let devices = Devices::open(DeviceChoice::Auto, required()).unwrap();
    let mut rows: Vec<Record> = Vec::new();
    let min = std::time::Duration::from_millis(1);
    run_throughput(&plan, &devices, min, &mut |r| rows.push(r)).unwrap();
    for op in [
        "ntt_forward",
        "ntt_inverse",
        "linear_sparse_mac",
        "key_switch",
        "client_encrypt",
    ] {
        let of_op: Vec<&Record> = rows.iter().filter(|r| r.op == op).collect();
        assert_eq!(of_op.len(), devices.list.len(), "{op}: {rows:#?}");
        for r in of_op {
            assert!(r.per_second > 0.0, "{r:?}");
            let gb: f64 = r
                .detail
                .split("≥ ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                r.detail.starts_with("throughput: 3 calls per sync") && gb >= 0.0,
                "{r:?}"
            );
        }
    }
    assert!(BenchPlan::quick().throughput.is_empty());
    let full = BenchPlan::full().throughput;
    assert!(
        full.ntt
            .iter()
            .all(|&(_, limbs, batch)| limbs * batch >= 10_000)
    );
    assert!(full.calls > 1 && !full.linear.is_empty() && !full.key_switch.is_empty());
    assert!(BenchPlan::full().only("ntt").unwrap().throughput.is_empty());
}

/// `hegpu bench --profile`: a GPU opened to profile times every dispatch of the rows it runs.
#[test]
fn profiled_throughput_rows_time_every_gpu_dispatch() {
    use hegpu_cli::bench::{ThroughputPlan, run_throughput};
    let options = GpuOptions {
        profile: true,
        ..required()
    };
    let devices = Devices::open(DeviceChoice::Auto, options).unwrap();
    let plan = ThroughputPlan {
        ntt: vec![(1 << 10, 2, 3)],
        linear: vec![(1 << 10, 2, 3, 5)],
        key_switch: vec![],
        client_encrypt: vec![],
        calls: 2,
    };
    let min = std::time::Duration::from_millis(1);
    run_throughput(&plan, &devices, min, &mut |_| {}).unwrap();
    let Some(gpu) = devices.list.iter().find(|(d, _)| d.gpu_stats().is_some()) else {
        assert!(!gpu_required(), "no GPU row");
        return;
    };
    let Some(kernels) = gpu.0.kernel_profile() else {
        // Only an adapter without TIMESTAMP_QUERY has nothing to time.
        let timestamps = common::gpu().is_some_and(|g| g.report().timestamp_query);
        assert!(!timestamps, "an adapter with timestamps gives a profile");
        return;
    };
    let dispatches: u64 = kernels.iter().map(|k| k.dispatches).sum();
    assert_eq!(dispatches, gpu.0.gpu_stats().unwrap().counts.dispatches);
    for name in ["ntt_forward_local", "ntt_inverse_local", "linear_sparse"] {
        let k = kernels.iter().find(|k| k.kernel == name);
        assert!(k.is_some_and(|k| k.gpu_ns > 0), "{name}: {kernels:#?}");
    }
    // The CPU rows are not profiled.
    assert!(devices.list[0].0.kernel_profile().is_none());
}

/// The GPU options of a test: required when `HEGPU_REQUIRE_GPU=1`.
fn required() -> GpuOptions {
    GpuOptions {
        required: gpu_required(),
        ..Default::default()
    }
}
