//! Polynomial activations of any degree in the encrypted pass, against the plaintext model:
//! the levels they use (⌈log2 d⌉), the key switches they cost, the preset the planner picks,
//! and GPU ciphertexts equal to the CPU's.

mod common;

use hegpu::backend::{Backend, CpuBackend};
use hegpu::ckks::*;
use hegpu::nn::*;
use hegpu::tensor::{Mode, ScheduleOptions, Scheduler};
use rand::Rng;
use std::sync::Arc;

/// N = 2^12 with nine 26-bit levels.
fn params() -> Arc<Parameters> {
    common::test_params(9)
}

fn dense(inputs: usize, outputs: usize, seed: u64) -> Layer {
    let mut r = common::rng(seed);
    let limit = (3.0 / inputs as f32).sqrt();
    Layer::Dense(Dense {
        inputs,
        outputs,
        weight: (0..inputs * outputs)
            .map(|_| r.random_range(-limit..limit))
            .collect(),
        bias: (0..outputs).map(|_| r.random_range(-0.1..0.1)).collect(),
    })
}

/// 32 inputs → 12 → `activation` → 6.
fn network(activation: Layer) -> Model {
    Model {
        input: vec![32],
        layers: vec![dense(32, 12, 1), activation, dense(12, 6, 2)],
    }
}

/// A ReLU stand-in of degree 8 on [-3, 3], and an odd degree-5 polynomial.
fn relu8() -> Layer {
    let samples: Vec<f32> = (0..4000).map(|i| (i as f32 / 4000.0) * 6.0 - 3.0).collect();
    fit_polynomial(Activation::Relu, 8, &samples).unwrap().0
}

fn odd5() -> Layer {
    Layer::Polynomial(Polynomial {
        range: 2.0,
        coefficients: vec![0.1, 0.9, 0.0, -0.4, 0.0, 0.15],
    })
}

fn run(model: &Model, images: &[f32], backend: Arc<dyn Backend>) -> common::EncryptedRun {
    common::encrypted_run(model, images, &params(), backend)
}

fn images(count: usize, seed: u64) -> Vec<f32> {
    let mut r = common::rng(seed);
    (0..count * 32).map(|_| r.random_range(-1.0..1.0)).collect()
}

fn cpu() -> Arc<dyn Backend> {
    Arc::new(CpuBackend::new(None).unwrap())
}

#[test]
fn degree_8_and_5_polynomials_match_the_plaintext_model() {
    let x = images(50, 3);
    for (activation, degree) in [(relu8(), 8usize), (odd5(), 5)] {
        let model = network(activation);
        let got = run(&model, &x, cpu());
        let mut worst = 0.0f32;
        for (i, out) in got.outputs.iter().enumerate() {
            let want = model.forward(&x[i * 32..(i + 1) * 32]).unwrap();
            for (g, w) in out.iter().zip(&want) {
                worst = worst.max((g - w).abs());
            }
        }
        // Outputs are about 1; 26-bit scales leave more than 12 bits after eight powers.
        assert!(worst < 2e-3, "degree {degree}: worst error {worst}");
        // Levels: a linear map, ⌈log2 d⌉ − 1 for the powers, two rescales after the next
        // linear map; nothing else.
        let levels = 2 + degree.next_power_of_two().trailing_zeros() as usize;
        assert_eq!(levels_needed(&model).unwrap(), levels);
        assert_eq!(got.level, params().max_level() - levels, "degree {degree}");
        // Only the powers that are operands of higher ones are relinearized (u², u³, u⁴ for
        // degree 8; u², u⁴ for degree 5), then the 6 outputs of the map that weighs them:
        // 12 × 3 + 6 and 12 × 2 + 6, where relinearizing every power took 12 × (d − 1).
        let per_value = if degree == 8 { 3 } else { 2 };
        assert_eq!(got.key_switches, 12 * per_value + 6, "degree {degree}");
        // On a chain cut to those levels (as the planner cuts a preset's), the outputs end at
        // q_0, as precise.
        let cut = common::encrypted_run(&model, &x, &common::test_params(levels), cpu());
        assert_eq!(cut.level, 0);
        for (i, out) in cut.outputs.iter().enumerate() {
            let want = model.forward(&x[i * 32..(i + 1) * 32]).unwrap();
            for (g, w) in out.iter().zip(&want) {
                assert!((g - w).abs() < 2e-3, "degree {degree}, cut: {g} for {w}");
            }
        }
    }
}

#[test]
fn low_degree_polynomials_cost_a_square_and_constants_cost_nothing() {
    let quadratic = Layer::Polynomial(Polynomial {
        range: 4.0,
        coefficients: vec![0.5, 1.0, 2.0, 0.0],
    });
    let model = network(quadratic.clone());
    assert_eq!(levels_needed(&model).unwrap(), 3);
    let equivalent = network(Layer::Poly(Poly {
        a: 2.0 / 16.0,
        b: 1.0 / 4.0,
        c: 0.5,
    }));
    let x = images(4, 5);
    for i in 0..4 {
        let (a, b) = (
            model.forward(&x[i * 32..(i + 1) * 32]).unwrap(),
            equivalent.forward(&x[i * 32..(i + 1) * 32]).unwrap(),
        );
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() < 1e-5);
        }
    }
    let constant = network(Layer::Polynomial(Polynomial {
        range: 1.0,
        coefficients: vec![0.25],
    }));
    assert_eq!(levels_needed(&constant).unwrap(), 1);
}

#[test]
fn the_planner_picks_the_smallest_preset_or_says_how_many_levels_it_needs() {
    let x = images(20, 7);
    let shallow = network(odd5());
    let bounds = Bounds::measure(&shallow, &x).unwrap();
    let (preset, network) = EncryptedNetwork::plan_smallest(&shallow, &bounds).unwrap();
    assert_eq!(preset, Preset::CryptoNets8192);
    // Linear, 3 levels of powers, linear: 5 levels, N = 2^13's chain whole.
    assert_eq!(network.params().max_level(), 5);
    // Three degree-8 activations: 4 linear maps + 3 × 3 levels = 13, past N = 2^14's 12.
    let mut deep = Model {
        input: vec![32],
        layers: vec![dense(32, 12, 1)],
    };
    for s in 0..3 {
        deep.layers.push(relu8());
        deep.layers.push(dense(12, 12, 10 + s));
    }
    assert_eq!(levels_needed(&deep).unwrap(), 13);
    let bounds = Bounds::measure(&deep, &x).unwrap();
    let (preset, network) = EncryptedNetwork::plan_smallest(&deep, &bounds).unwrap();
    assert_eq!(preset, Preset::Deep32768);
    // Its chain cut to the 13 levels the plan uses, of 28: the preset's first primes.
    let whole = Parameters::preset(Preset::Deep32768).unwrap();
    assert_eq!(network.params().q_primes(), &whole.q_primes()[..14]);
    assert_eq!(network.params().p_primes(), whole.p_primes());
    assert_eq!(Preset::of(network.params().literal()), Some(preset));
    // Forty: more than any preset holds.
    for s in 3..14 {
        deep.layers.push(relu8());
        deep.layers.push(dense(12, 12, 10 + s));
    }
    let bounds = Bounds::measure(&deep, &x).unwrap();
    let err = EncryptedNetwork::plan_smallest(&deep, &bounds)
        .err()
        .expect("too deep")
        .to_string();
    assert!(err.contains("needs 57 levels"), "{err}");
}

#[test]
fn non_polynomial_activations_are_refused_with_the_fix() {
    let model = network(Layer::from(Activation::Relu));
    let err = Bounds::measure(&model, &images(2, 1))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("layer 1 is relu") && err.contains("--approx relu:"),
        "{err}"
    );
    assert!(!LatencyNetwork::supports(&model));
    assert!(LatencyNetwork::supports(&network(relu8())));
    assert!(LatencyNetwork::supports(&network(Layer::Square(Square))));
}

/// The same words on the CPU and on the GPU resident, where the powers and the map that weighs
/// them run as one pass (a piece of values at a time, their products summed), and streamed
/// within a small budget, where they run one after the other (the whole basis on the host,
/// the map in blocks of inputs).
#[test]
fn gpu_and_cpu_give_identical_ciphertexts_for_powers() {
    let Some(_) = common::gpu() else { return };
    let model = network(relu8());
    let x = images(10, 9);
    let on_cpu = run(&model, &x, cpu());
    // The first map, the powers of 12 values in pieces of 8, the map that weighs them summed
    // over the same pieces (one pass); one after the other it would take one chunk.
    assert_eq!(on_cpu.chunks, [1, 2, 2]);
    let gpu = || -> Arc<dyn Backend> { Arc::new(hegpu::backend::GpuBackend::new().unwrap()) };
    let on_gpu = run(&model, &x, gpu());
    assert_eq!(
        (on_gpu.mode, &on_gpu.chunks[..]),
        (Mode::Resident, &[1, 2, 2][..])
    );
    assert!(on_cpu.bytes == on_gpu.bytes, "GPU and CPU outputs differ");
    assert_eq!(on_cpu.key_switches, on_gpu.key_switches);
    let small = ScheduleOptions {
        gpu_memory: Some(1 << 20),
        ..Default::default()
    };
    let streamed = common::encrypted_run_with(&model, &x, &params(), gpu(), small);
    assert_eq!(streamed.mode, Mode::Streamed);
    assert!(
        on_cpu.bytes == streamed.bytes,
        "the powers and the map one after the other differ from one pass"
    );
    assert_eq!(on_cpu.key_switches, streamed.key_switches);
}

/// The latency packing evaluates polynomials of any degree, each in the order its counted cost
/// picks: in the Chebyshev basis by baby steps and giant steps, degree 5 in 3 levels (the
/// powers of the one ciphertext that holds a layer and a sparse map that weighs them take 4),
/// degree 8 in 4 (a tie, 4 key switches each way) and degree 16 in 5 (7 key switches, not 8).
/// For each: the plaintext model's outputs, at the levels its cost says, with the precision in
/// bits of every step against the plan on plaintext slots (f64), and the same ciphertext words
/// on the GPU.
#[test]
fn the_latency_packing_evaluates_polynomials_of_any_degree() {
    let params = params();
    let calibration = images(16, 11);
    let relu16 = {
        let samples: Vec<f32> = (0..4000).map(|i| (i as f32 / 4000.0) * 6.0 - 3.0).collect();
        fit_polynomial(Activation::Relu, 16, &samples).unwrap().0
    };
    for (activation, degree, levels) in [(relu8(), 8usize, 4), (odd5(), 5, 3), (relu16, 16, 5)] {
        let model = network(activation);
        let net = LatencyNetwork::plan(&model, &params, &calibration, 1)
            .and_then(|net| net.with_request_images(5))
            .unwrap();
        // Fresh images, within the range the calibration images took.
        let mut x = images(5, 12);
        net.input_range().clamp(&mut x);
        let cost = net.cost();
        // A linear map, the activation, a linear map.
        assert_eq!(cost.levels, levels + 2, "degree {degree}");
        let mut kg = KeyGenerator::new(&params, Seed::from_u64(31));
        let sk = kg.secret_key().unwrap();
        let keys = EvaluationKeys {
            relin: Some(kg.relin_key(&sk).unwrap()),
            galois: kg.galois_keys_up_to(&sk, &net.rotation_levels()).unwrap(),
        };
        let encoder = Encoder::new(&params);
        let encryptor =
            Encryptor::with_secret_key(&params, &sk, cpu(), Seed::from_u64(32)).unwrap();
        let decryptor = Decryptor::new(&params, &sk).unwrap();
        let ct = net.encrypt(&encoder, &encryptor, &x).unwrap();
        let sent = ct.to_bytes(&params, &*cpu()).unwrap();
        let evaluate_with = |backend: Arc<dyn Backend>, options: ScheduleOptions| {
            let server = Scheduler::new(&params, &keys, backend.clone(), options);
            let ct = Ciphertext::from_bytes(&sent, &params, &*backend).unwrap();
            let (y, report) = net.evaluate_report(&server.unwrap(), ct).unwrap();
            (y.to_bytes(&params, &*cpu()).unwrap(), report.mode)
        };
        let evaluate = |backend: Arc<dyn Backend>| evaluate_with(backend, Default::default()).0;
        let y_bytes = evaluate(cpu());
        if common::gpu().is_some() {
            let gpu = || Arc::new(hegpu::backend::GpuBackend::new().unwrap());
            assert!(
                evaluate(gpu()) == y_bytes,
                "GPU ciphertexts differ from the CPU's"
            );
            // Streamed through a small budget, a group at a time.
            let small = ScheduleOptions {
                gpu_memory: Some(1 << 20),
                ..Default::default()
            };
            assert_eq!(
                evaluate_with(gpu(), small),
                (y_bytes.clone(), Mode::Streamed),
                "streamed GPU ciphertexts differ from the CPU's"
            );
        }
        let y = Ciphertext::from_bytes(&y_bytes, &params, &*cpu()).unwrap();
        assert_eq!(y.level(), params.max_level() - cost.levels);
        let out = net.decrypt(&decryptor, &encoder, &y, 5, &*cpu()).unwrap();
        let mut worst = 0.0f32;
        for (i, got) in out.iter().enumerate() {
            let image = &x[i * 32..(i + 1) * 32];
            let want = model.forward(image).unwrap();
            let planned = net.simulate(image).unwrap();
            for ((g, w), p) in got.iter().zip(&want).zip(&planned) {
                assert!(
                    (*p as f32 - w).abs() < 1e-4,
                    "the plan in slots is the model"
                );
                worst = worst.max((g - w).abs());
            }
        }
        eprintln!("latency, degree {degree}: worst output error {worst:.2e}");
        assert!(worst < 5e-3, "degree {degree}: worst error {worst}");
        // Every step but the power basis, decrypted against the plan on plaintext slots.
        let server = Scheduler::new(&params, &keys, cpu(), Default::default()).unwrap();
        let image = &x[..32];
        let one = net.encrypt(&encoder, &encryptor, image).unwrap();
        let want = net.simulate_steps(image).unwrap();
        let mut got = Vec::new();
        net.evaluate_steps(&server, one, |_, y| {
            got.push(common::step_bits(&encoder, &decryptor, y, &want[got.len()]))
        })
        .unwrap();
        assert_eq!(got.len(), want.len());
        for (step, &bits) in got.iter().enumerate() {
            eprintln!("latency, degree {degree}, step {step}: {bits:.1} bits");
            // Measured 2026-12-07: 14.5, 14.4, 15.0 bits (degree 8; 14.5, 11.9, 12.3 through
            // the powers); 14.9, 13.5, 15.3 (degree 5); 14.5, 13.5, 14.0 (degree 16).
            assert!(bits >= 10.0, "degree {degree}, step {step}: {bits:.1} bits");
        }
    }
}
