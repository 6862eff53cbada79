//! The readers under test: each target has valid seed inputs, a reader that turns bytes into a
//! value or an error, and the metadata an accepted input must keep (level, scale, security,
//! architecture, key set, …): a corrupted input that is accepted with other metadata would
//! be a wrong answer waiting to happen.

use hegpu::backend::{Backend, CpuBackend};
use hegpu::ckks::{
    Ciphertext, Encoder, Encryptor, EvaluationKeys, Evaluator, KeyGenerator, ParameterLiteral,
    Parameters, Preset, PublicKey, SecretKey, SecurityLevel, Seed,
};
use hegpu::nn::{WeightType, cryptonets, initialize, model_from_bytes, model_to_bytes};
use hegpu::pair::envelope::{Frame, Kind};
use hegpu::tensor::CipherTensor;
use std::sync::Arc;

/// What a reader makes of an input: `Err` (refused) or the accepted value's metadata.
pub type Outcome = Result<String, String>;

/// A reader under test.
pub type Reader = Box<dyn Fn(&[u8]) -> Outcome>;

/// What protects a seed against accidents.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// It ends with a CRC-32 of the rest (the ckks formats), which a forger can recompute.
    Trailing,
    /// A checksum inside the format (a model file's, gzip's, a job frame's).
    Internal,
    /// Nothing: a change the reader accepts cannot be told from the real thing.
    None,
}

/// A valid input (a seed of the mutations).
#[derive(Clone)]
pub struct Input {
    pub bytes: Vec<u8>,
    pub integrity: Integrity,
}

fn seeds(integrity: Integrity, all: Vec<Vec<u8>>) -> Vec<Input> {
    all.into_iter()
        .map(|bytes| Input { bytes, integrity })
        .collect()
}

pub struct Target {
    pub name: &'static str,
    pub seeds: Vec<Input>,
    pub read: Reader,
    /// Mutations that know the format, applied to half of the mutated seeds.
    pub structure: Option<fn(&mut rand_chacha::ChaCha8Rng, &mut Vec<u8>)>,
}

/// A model file as another tool writes it: without hegpu's checksum.
fn without_checksum(model: &[u8]) -> Vec<u8> {
    let len = u64::from_le_bytes(model[..8].try_into().expect("8 bytes")) as usize;
    let mut header: serde_json::Value =
        serde_json::from_slice(&model[8..8 + len]).expect("a safetensors header");
    header["__metadata__"]
        .as_object_mut()
        .expect("metadata")
        .remove("hegpu.checksum");
    let mut text = serde_json::to_vec(&header).expect("json");
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(&model[8 + len..]);
    out
}

/// A small, deliberately insecure set (N = 2^10) so that keys and ciphertexts are a few KB and
/// each input takes microseconds; the readers' checks do not depend on the size.
fn small_params() -> Arc<Parameters> {
    Parameters::new(ParameterLiteral {
        log_n: 10,
        q_bits: vec![30, 24, 24],
        p_bits: vec![31],
        log_scale: 24,
        security: SecurityLevel::None,
    })
    .expect("a valid literal")
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    dims.iter().for_each(|d| out.extend(d.to_be_bytes()));
    out.extend(data);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("in memory");
    e.finish().expect("in memory")
}

/// The IDX reader with a 64 MiB limit (the files it reads are at most 47 MB).
fn read_idx(bytes: &[u8], dims: usize) -> Outcome {
    hegpu::data::read_idx(bytes, dims, 64 << 20)
        .map(|(sizes, data)| format!("{sizes:?} {}", data.len()))
}

/// A ciphertext's metadata.
fn describe(c: &Ciphertext) -> String {
    format!(
        "level {} scale {} size {} count {} key set {} seeded {}",
        c.level(),
        c.scale(),
        c.size(),
        c.count(),
        c.key_set(),
        c.is_seeded()
    )
}

fn text(r: hegpu::Result<String>) -> Outcome {
    r.map_err(|e| e.to_string())
}

/// Every reader, with seeds made here from a fixed seed.
pub fn all() -> Vec<Target> {
    let cpu: Arc<dyn Backend> = Arc::new(CpuBackend::new(Some(1)).expect("a CPU backend"));
    let params = small_params();
    let mut keygen = KeyGenerator::new(&params, Seed::from_u64(7));
    let sk = keygen.secret_key().expect("keys");
    let pk = keygen.public_key(&sk).expect("keys");
    let eval = EvaluationKeys {
        relin: Some(keygen.relin_key(&sk).expect("keys")),
        galois: keygen.galois_keys(&sk, &[1], true).expect("keys"),
    };
    let encoder = Encoder::new(&params);
    let encryptor =
        Encryptor::with_secret_key(&params, &sk, cpu.clone(), Seed::from_u64(8)).expect("enc");
    let values: Vec<f64> = (0..params.slots())
        .map(|i| (i % 13) as f64 / 13.0)
        .collect();
    let encrypt = |level: usize| -> Vec<u8> {
        let pt = encoder
            .encode(&values, level, params.default_scale(), &*cpu)
            .expect("encode");
        let ct = encryptor.encrypt(&pt).expect("encrypt");
        ct.to_bytes(&params, &*cpu).expect("bytes")
    };
    // Seeded (secret-key encryption), full (public key) and three-polynomial ciphertexts.
    let public = Encryptor::new(&params, &pk, cpu.clone(), Seed::from_u64(9)).expect("enc");
    let pt = encoder
        .encode(&values, 1, params.default_scale(), &*cpu)
        .expect("encode");
    let full = public.encrypt(&pt).expect("encrypt");
    let ev = Evaluator::new(&params, cpu.clone(), &eval).expect("evaluator");
    let squared = ev.square(&full).expect("square");
    let ciphertexts = vec![
        encrypt(params.max_level()),
        encrypt(0),
        full.to_bytes(&params, &*cpu).expect("bytes"),
        squared.to_bytes(&params, &*cpu).expect("bytes"),
    ];

    let mut model = cryptonets(1, 4);
    initialize(&mut model, 5).expect("init");
    let model_bytes = model_to_bytes(&model, WeightType::F16).expect("model");
    let mut poly = cryptonets(1, 4);
    initialize(&mut poly, 6).expect("init");
    poly.layers[2] = hegpu::nn::Layer::Poly(hegpu::nn::Poly {
        a: 0.5,
        b: 1.0,
        c: 0.25,
    });
    let poly_bytes = model_to_bytes(&poly, WeightType::F32).expect("model");

    let images = idx(
        &[3, 28, 28],
        &(0..3 * 784).map(|i| i as u8).collect::<Vec<_>>(),
    );
    let labels = idx(&[5], &[0, 1, 2, 3, 9]);
    let frame = Frame {
        kind: Kind::Result,
        batch: 2,
        start: 8192,
        end: 8200,
        source: 0x1234_5678,
    }
    .wrap(&ciphertexts[1]);

    let p = params.clone();
    let p2 = params.clone();
    let p3 = params.clone();
    let p4 = params.clone();
    let p5 = params.clone();
    vec![
        Target {
            name: "parameters",
            structure: None,
            seeds: seeds(
                Integrity::Trailing,
                vec![
                    Parameters::preset(Preset::CryptoNets8192)
                        .expect("preset")
                        .to_bytes(),
                    Parameters::preset(Preset::Deep16384)
                        .expect("preset")
                        .to_bytes(),
                ],
            ),
            read: Box::new(|b| {
                text(Parameters::from_bytes(b).map(|p| format!("{:?} {:x}", p.literal(), p.id())))
            }),
        },
        Target {
            name: "public-key",
            structure: None,
            seeds: seeds(
                Integrity::Trailing,
                vec![pk.to_bytes(&params).expect("bytes")],
            ),
            read: Box::new(move |b| {
                text(PublicKey::from_bytes(b, &p).map(|k| format!("{}", k.key_set())))
            }),
        },
        Target {
            name: "evaluation-keys",
            structure: None,
            seeds: seeds(
                Integrity::Trailing,
                vec![eval.to_bytes(&params).expect("bytes")],
            ),
            read: Box::new(move |b| {
                text(EvaluationKeys::from_bytes(b, &p2).and_then(|k| {
                    Ok(format!(
                        "{:?} relin {} galois {:?}",
                        k.key_set()?,
                        k.relin.is_some(),
                        k.galois.elements()
                    ))
                }))
            }),
        },
        Target {
            name: "ciphertext",
            structure: None,
            seeds: seeds(Integrity::Trailing, ciphertexts.clone()),
            read: Box::new(move |b| {
                let cpu = CpuBackend::new(Some(1)).expect("cpu");
                text(Ciphertext::from_bytes(b, &p3, &cpu).map(|c| describe(&c)))
            }),
        },
        Target {
            name: "cipher-tensor",
            structure: None,
            seeds: seeds(Integrity::Trailing, ciphertexts[..3].to_vec()),
            read: Box::new(move |b| {
                let cpu = CpuBackend::new(Some(1)).expect("cpu");
                text(
                    CipherTensor::from_bytes(b, &[1], &p5, &cpu).map(|t| describe(t.ciphertexts())),
                )
            }),
        },
        Target {
            name: "secret-key",
            structure: None,
            seeds: seeds(Integrity::Trailing, vec![sk.export_secret_bytes()]),
            read: Box::new(move |b| {
                text(SecretKey::import_secret_bytes(b, &p4).map(|k| format!("{}", k.key_set())))
            }),
        },
        Target {
            name: "model",
            structure: None,
            seeds: [
                seeds(
                    Integrity::Internal,
                    vec![model_bytes.clone(), poly_bytes.clone()],
                ),
                seeds(
                    Integrity::None,
                    vec![
                        without_checksum(&model_bytes),
                        without_checksum(&poly_bytes),
                    ],
                ),
            ]
            .concat(),
            read: Box::new(|b| text(model_from_bytes(b).map(|m| format!("{m:?}")))),
        },
        Target {
            name: "onnx",
            structure: Some(crate::mutate::protobuf),
            seeds: seeds(
                Integrity::None,
                ["cryptonets", "cnn-bn-pool"]
                    .iter()
                    .map(|name| {
                        let path = format!(
                            "{}/tests/fixtures/onnx/{name}.onnx",
                            env!("CARGO_MANIFEST_DIR")
                        );
                        std::fs::read(path).expect("the ONNX fixtures")
                    })
                    .collect(),
            ),
            read: Box::new(|b| text(hegpu::nn::import_onnx(b).map(|i| format!("{:?}", i.model)))),
        },
        Target {
            name: "idx-images",
            structure: None,
            seeds: [
                seeds(Integrity::None, vec![images.clone()]),
                seeds(Integrity::Internal, vec![gzip(&images)]),
            ]
            .concat(),
            read: Box::new(|b| read_idx(b, 3)),
        },
        Target {
            name: "idx-labels",
            structure: None,
            seeds: [
                seeds(Integrity::None, vec![labels.clone()]),
                seeds(Integrity::Internal, vec![gzip(&labels)]),
            ]
            .concat(),
            read: Box::new(|b| read_idx(b, 1)),
        },
        Target {
            name: "job-frame",
            structure: None,
            seeds: seeds(Integrity::Internal, vec![frame]),
            read: Box::new(|b| {
                Frame::unwrap(b, "f")
                    .map(|(f, _)| format!("{f:?}"))
                    .map_err(|e| e.to_string())
            }),
        },
    ]
}
