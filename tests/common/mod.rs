//! Helpers shared by the integration tests: seeded inputs and the GPU-or-skip rule.
#![allow(dead_code)]

#[cfg(feature = "gpu")]
use hegpu::backend::{Backend, CpuBackend, GpuBackend, GpuOptions};
use hegpu::math::Ring;
use hegpu::math::ntt_primes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
#[cfg(feature = "gpu")]
use {hegpu::Error, std::io::Write, std::sync::OnceLock};

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// `batch` random polynomials of `ring`, with the edge words 0 and p-1 planted in every limb.
pub fn random_words(ring: &Ring, batch: usize, seed: u64) -> Vec<u32> {
    let mut r = rng(seed);
    let n = ring.degree();
    let mut words = vec![0u32; batch * ring.poly_words()];
    for (row, chunk) in words.chunks_exact_mut(n).enumerate() {
        let p = ring.modulus(row % ring.limbs()).value();
        for w in chunk.iter_mut() {
            *w = r.random_range(0..p);
        }
        chunk[0] = 0;
        chunk[1] = p - 1;
        chunk[n - 1] = p - 1;
    }
    words
}

/// A ring of `limbs` primes of mixed sizes from 20 to 31 bits.
pub fn mixed_ring(n: usize, limbs: usize) -> Arc<Ring> {
    let sizes = [31u32, 20, 30, 24, 28, 26, 31, 22];
    let mut primes: Vec<u32> = Vec::new();
    for i in 0..limbs {
        let bits = sizes[i % sizes.len()];
        let p = ntt_primes(n, bits, 1, &primes).unwrap()[0];
        primes.push(p);
    }
    Ring::new(n, &primes).unwrap()
}

/// The GPU backend, opened once per test binary. Without an adapter: `None` and a SKIPPED line,
/// unless `HEGPU_REQUIRE_GPU=1`, where a missing adapter fails the test.
#[cfg(feature = "gpu")]
pub fn gpu() -> Option<&'static GpuBackend> {
    static GPU: OnceLock<Option<GpuBackend>> = OnceLock::new();
    GPU.get_or_init(|| match GpuBackend::new() {
        Ok(g) => Some(g),
        Err(Error::Gpu(hegpu::GpuError::NoAdapter(why))) if !hegpu::backend::gpu_required() => {
            // Straight to the stderr handle: libtest captures only the print macros, and this
            // line must be seen even when the tests pass.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: GPU tests, no GPU adapter ({why}); set HEGPU_REQUIRE_GPU=1 to make this a failure"
            );
            None
        }
        Err(e) => panic!("GPU required (HEGPU_REQUIRE_GPU=1) but unavailable: {e}"),
    })
    .as_ref()
}

/// A GPU backend whose bindings hold only about 30 KiB, so every batch here spans chunks, and
/// whose kernels use the portable 16×16 products (`gpu()` uses native 64-bit products where
/// the adapter has them, as lavapipe does). `None` only where `gpu()` skips (no adapter, and
/// none required).
#[cfg(feature = "gpu")]
pub fn tiny_chunks() -> Option<&'static GpuBackend> {
    static TINY: OnceLock<GpuBackend> = OnceLock::new();
    gpu()?;
    Some(TINY.get_or_init(|| {
        GpuBackend::with_options(GpuOptions {
            max_chunk_bytes: Some(30 * 1024),
            portable_products: true,
            ..Default::default()
        })
        .expect("the adapter gpu() opened opens again with small bindings")
    }))
}

/// Runs `op` on the CPU, the GPU and (for N = 2^10, where a polynomial of up to 7 limbs fits)
/// the small-binding GPU; asserts the words are equal and returns them. Each GPU runs `op`
/// twice, the second time on reused buffers filled with a pattern, so a kernel that reads an
/// output word it did not write first fails here.
#[cfg(feature = "gpu")]
pub fn on_every_device(what: &str, n: usize, op: impl Fn(&dyn Backend) -> Vec<u32>) -> Vec<u32> {
    let expected = op(&CpuBackend::new(Some(2)).unwrap());
    let twice = |g: &GpuBackend, which: &str| {
        assert!(op(g) == expected, "{what}: {which} differs from CPU");
        g.scribble_idle_buffers(0x5a5a_5a5a).unwrap();
        assert!(
            op(g) == expected,
            "{what}: {which} differs from CPU on reused buffers"
        );
    };
    if let Some(g) = gpu() {
        twice(g, "GPU");
    }
    if let Some(t) = tiny_chunks().filter(|_| n <= 1 << 10) {
        twice(t, "chunked GPU");
    }
    expected
}

/// A small network on 8×8 images with every linear layer kind (padding, a strided
/// convolution, average pooling, dense), two squares and non-zero biases, from fixed seeds.
pub fn small_network() -> hegpu::nn::Model {
    use hegpu::nn::{
        AvgPool, Conv2d, Dense, Flatten, Layer, Model, Pad2d, Square, initialize, parameters,
        set_parameters,
    };
    let mut m = Model {
        input: vec![1, 8, 8],
        layers: vec![
            Layer::Pad2d(Pad2d {
                top: 1,
                bottom: 0,
                left: 1,
                right: 0,
            }),
            Layer::Conv2d(Conv2d {
                in_channels: 1,
                out_channels: 2,
                kernel: 3,
                stride: 2,
                padding: 0,
                weight: vec![0.0; 18],
                bias: vec![0.0; 2],
            }),
            Layer::Square(Square),
            Layer::AvgPool(AvgPool {
                window: 2,
                stride: 1,
            }),
            Layer::Flatten(Flatten),
            Layer::Dense(Dense {
                inputs: 18,
                outputs: 6,
                weight: vec![0.0; 108],
                bias: vec![0.0; 6],
            }),
            Layer::Square(Square),
            Layer::Dense(Dense {
                inputs: 6,
                outputs: 4,
                weight: vec![0.0; 24],
                bias: vec![0.0; 4],
            }),
        ],
    };
    initialize(&mut m, 9).unwrap();
    let mut p = parameters(&m);
    let mut r = rng(10);
    p.iter_mut().for_each(|v| *v += r.random_range(-0.1..0.1)); // non-zero biases too
    set_parameters(&mut m, &p).unwrap();
    m
}

/// N = 2^12 with `levels` 26-bit levels at scale 2^26 and one special prime: small enough
/// for seconds per test, not secure.
pub fn test_params(levels: usize) -> Arc<hegpu::ckks::Parameters> {
    use hegpu::ckks::{ParameterLiteral, Parameters, SecurityLevel};
    Parameters::new(ParameterLiteral {
        log_n: 12,
        q_bits: std::iter::once(31).chain(vec![26; levels]).collect(),
        p_bits: vec![31],
        log_scale: 26,
        security: SecurityLevel::None,
    })
    .unwrap()
}

/// What [`encrypted_run`] returns.
pub struct EncryptedRun {
    /// The decrypted outputs, per image.
    pub outputs: Vec<Vec<f32>>,
    /// The output ciphertexts' bytes (to compare devices).
    pub bytes: Vec<u8>,
    /// The outputs' level.
    pub level: usize,
    /// Ciphertexts the server key-switched.
    pub key_switches: u64,
    /// Where the batch ran.
    pub mode: hegpu::tensor::Mode,
    /// Pieces each stage ran in, on either device.
    pub chunks: Vec<usize>,
}

/// `model` planned on `images`, which are encrypted with fixed seeds, evaluated on `backend`
/// and decrypted.
pub fn encrypted_run(
    model: &hegpu::nn::Model,
    images: &[f32],
    params: &Arc<hegpu::ckks::Parameters>,
    backend: Arc<dyn hegpu::backend::Backend>,
) -> EncryptedRun {
    encrypted_run_with(model, images, params, backend, Default::default())
}

/// [`encrypted_run`] with the scheduler's `options` (a GPU memory budget, splitting).
pub fn encrypted_run_with(
    model: &hegpu::nn::Model,
    images: &[f32],
    params: &Arc<hegpu::ckks::Parameters>,
    backend: Arc<dyn hegpu::backend::Backend>,
    options: hegpu::tensor::ScheduleOptions,
) -> EncryptedRun {
    use hegpu::ckks::*;
    use hegpu::nn::{Bounds, EncryptedNetwork, encrypt_images};
    let mut kg = KeyGenerator::new(params, Seed::from_u64(21));
    let sk = kg.secret_key().unwrap();
    let keys = EvaluationKeys {
        relin: Some(kg.relin_key(&sk).unwrap()),
        ..Default::default()
    };
    let encoder = Encoder::new(params);
    let encryptor =
        Encryptor::with_secret_key(params, &sk, backend.clone(), Seed::from_u64(22)).unwrap();
    let bounds = Bounds::measure(model, images).unwrap();
    let net = EncryptedNetwork::plan(model, params, &bounds).unwrap();
    let x = encrypt_images(&net, &encoder, &encryptor, images).unwrap();
    let scheduler = hegpu::tensor::Scheduler::new(params, &keys, backend, options).unwrap();
    let (y, report) = net.forward_report(&scheduler, x).unwrap();
    assert!(report.fallback.is_none(), "{:?}", report.fallback);
    let count = images.len() / model.input_len();
    let host = scheduler.host().clone();
    let decryptor = Decryptor::new(params, &sk).unwrap();
    EncryptedRun {
        level: y.level(),
        bytes: y.to_bytes(params, &*host).unwrap(),
        outputs: y.decrypt(&decryptor, &encoder, count, &*host).unwrap(),
        key_switches: report.key_switches,
        mode: report.mode,
        chunks: (report.stages.iter())
            .map(|s| s.cpu_chunks + s.gpu_chunks)
            .collect(),
    }
}

/// Precision in bits of one latency step's ciphertext against the plan on plaintext slots: the
/// largest held value over the worst error in a held slot.
pub fn step_bits(
    encoder: &hegpu::ckks::Encoder,
    decryptor: &hegpu::ckks::Decryptor,
    ct: &hegpu::ckks::Ciphertext,
    want: &hegpu::nn::StepSlots,
) -> f64 {
    let cpu = hegpu::backend::CpuBackend::new(None).unwrap();
    let decoded = encoder
        .decode(&decryptor.decrypt(ct, &cpu).unwrap())
        .unwrap();
    let (mut worst, mut largest) = (0.0f64, 0.0f64);
    for &(t, _) in &want.held {
        worst = worst.max((decoded[t] - want.slots[t]).abs());
        largest = largest.max(want.slots[t].abs());
    }
    (largest / worst).log2()
}

/// The shipped network (models/cryptonets-5) planned as the job plans it, its keys from seed
/// 41 (relinearization only), and the first `images` test digits encrypted with seed 42 (in
/// the batch layout, whose cost does not depend on how many slots are used), as bytes.
pub struct Shipped {
    pub params: Arc<hegpu::ckks::Parameters>,
    pub sk: hegpu::ckks::SecretKey,
    pub keys: hegpu::ckks::EvaluationKeys,
    pub model: hegpu::nn::Model,
    pub net: hegpu::nn::EncryptedNetwork,
    /// The digits' pixels, `[image][784]`.
    pub pixels: Vec<f32>,
    pub input: Vec<u8>,
}

pub fn shipped(images: usize) -> Shipped {
    use hegpu::ckks::*;
    let params = Parameters::preset(Preset::CryptoNets8192).unwrap();
    let mut kg = KeyGenerator::new(&params, Seed::from_u64(41));
    let sk = kg.secret_key().unwrap();
    let keys = EvaluationKeys {
        relin: Some(kg.relin_key(&sk).unwrap()),
        ..Default::default()
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = hegpu::nn::load_model(&root.join("models/cryptonets-5.safetensors")).unwrap();
    let mnist = hegpu::data::Mnist::load(&root.join("data/mnist")).unwrap();
    let calibration = hegpu::pair::calibration(&mnist);
    let bounds = hegpu::nn::Bounds::measure(&model, &calibration).unwrap();
    let net = hegpu::nn::EncryptedNetwork::plan(&model, &params, &bounds).unwrap();
    let pixels = hegpu::nn::pixels(&mnist.test_images)[..images * 784].to_vec();
    let cpu = hegpu::backend::CpuBackend::new(None).unwrap();
    let encryptor =
        Encryptor::with_secret_key(&params, &sk, Arc::new(cpu), Seed::from_u64(42)).unwrap();
    let input =
        hegpu::nn::encrypt_images_to_bytes(&net, &Encoder::new(&params), &encryptor, &pixels)
            .unwrap();
    Shipped {
        params,
        sk,
        keys,
        model,
        net,
        pixels,
        input,
    }
}
