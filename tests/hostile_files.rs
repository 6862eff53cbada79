//! The defects found by fuzzing and bad-file trials, each reproduced: parameter files that lower
//! their security or ask for unbounded work, ciphertext scales no parameter set produces,
//! results decrypted under other keys, corrupted files, hostile model files, and gzip data that
//! outgrows its header. Each is an error that says what is wrong.

mod common;

use hegpu::Error;
use hegpu::backend::{Backend, CpuBackend};
use hegpu::ckks::*;
use hegpu::nn::{
    Dense, Layer, Model, Square, cryptonets, initialize, model_from_bytes, model_to_bytes,
};
use rand::Rng;
use std::collections::HashMap;
use std::sync::Arc;

fn small() -> Arc<Parameters> {
    Parameters::new(ParameterLiteral {
        log_n: 12,
        q_bits: vec![30, 24, 24],
        p_bits: vec![30],
        log_scale: 24,
        security: SecurityLevel::Classical128,
    })
    .unwrap()
}

/// Recomputes the CRC-32 the compact format ends with: what a forger (not an accident) does.
fn forge(bytes: &mut [u8]) {
    let at = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..at]);
    bytes[at..].copy_from_slice(&crc.to_le_bytes());
}

struct Keys {
    sk: SecretKey,
    pk: PublicKey,
    eval: EvaluationKeys,
}

fn keys(params: &Arc<Parameters>, seed: u64) -> Keys {
    let mut kg = KeyGenerator::new(params, Seed::from_u64(seed));
    let sk = kg.secret_key().unwrap();
    let pk = kg.public_key(&sk).unwrap();
    let eval = EvaluationKeys {
        relin: Some(kg.relin_key(&sk).unwrap()),
        galois: kg.galois_keys(&sk, &[1], false).unwrap(),
    };
    Keys { sk, pk, eval }
}

fn cpu() -> Arc<dyn Backend> {
    Arc::new(CpuBackend::new(Some(1)).unwrap())
}

fn encrypt(params: &Arc<Parameters>, k: &Keys, values: &[f64]) -> Ciphertext {
    let be = cpu();
    let pt = Encoder::new(params)
        .encode(values, params.max_level(), params.default_scale(), &*be)
        .unwrap();
    Encryptor::new(params, &k.pk, be, Seed::from_u64(9))
        .unwrap()
        .encrypt(&pt)
        .unwrap()
}

#[test]
fn parameters_marked_insecure_are_refused_on_reading() {
    // What one flipped byte made of a preset's params.bin: the same set (same id) marked None.
    let preset = Parameters::preset(Preset::CryptoNets8192).unwrap();
    let mut lowered = Preset::CryptoNets8192.literal();
    lowered.security = SecurityLevel::None;
    let lowered = Parameters::new(lowered).unwrap();
    assert_eq!(lowered.id(), preset.id());
    let bytes = lowered.to_bytes();
    let e = Parameters::from_bytes(&bytes).unwrap_err();
    assert!(e.to_string().contains("SecurityLevel::None"), "{e}");
    assert!(Parameters::from_bytes_insecure(&bytes).is_ok());
    // An N = 2^13 set of 310 bits (the table allows 218), marked None.
    let weak = Parameters::new(ParameterLiteral {
        log_n: 13,
        q_bits: vec![31; 9],
        p_bits: vec![31],
        log_scale: 24,
        security: SecurityLevel::None,
    })
    .unwrap();
    assert!(Parameters::from_bytes(&weak.to_bytes()).is_err());
    // A real flip, not forged: the checksum catches it whatever byte it is.
    let good = preset.to_bytes();
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        assert!(Parameters::from_bytes(&bad).is_err(), "byte {i}");
    }
}

#[test]
fn parameter_files_asking_for_thousands_of_primes_are_refused_before_any_work() {
    #[derive(serde::Serialize)]
    struct Wire {
        literal: ParameterLiteral,
        q: Vec<u32>,
        p: Vec<u32>,
    }
    let literal = ParameterLiteral {
        log_n: 15,
        q_bits: vec![31; 4000],
        p_bits: vec![31],
        log_scale: 30,
        security: SecurityLevel::None,
    };
    let e = Parameters::new(literal.clone()).unwrap_err();
    assert!(e.to_string().contains("at most 64"), "{e}");
    // The same literal as a file (version 2 header, no key set, a valid checksum).
    let mut bytes = b"HEGPU\0".to_vec();
    bytes.extend([2, 1]);
    bytes.extend(0u64.to_le_bytes());
    bytes.extend([0u8; 16]);
    let wire = Wire {
        literal,
        q: vec![0; 4000],
        p: vec![0],
    };
    bytes.extend(postcard::to_allocvec(&wire).unwrap());
    bytes.extend([0u8; 4]);
    forge(&mut bytes);
    let e = Parameters::from_bytes_insecure(&bytes).unwrap_err();
    assert!(e.to_string().contains("at most 64"), "{e}");
}

#[test]
fn ciphertext_scales_must_be_ones_the_parameters_produce() {
    let params = small();
    // The rule: 1 ≤ scale < Q_level / 2.
    for (level, scale, ok) in [
        (2, params.default_scale(), true),
        (2, 2f64.powi(48), true),
        (2, 2f64.powi(76), true),
        (2, 2f64.powi(78), false),
        (0, 2f64.powi(28), true),
        (0, 2f64.powi(29), false),
        (0, 1.0, true),
        (0, 0.5, false),
        (1, 1.4e-306, false),
        (1, f64::INFINITY, false),
        (1, f64::NAN, false),
        (1, -2f64.powi(24), false),
        (3, 2f64.powi(24), false),
    ] {
        assert_eq!(
            params.check_scale(level, scale).is_ok(),
            ok,
            "level {level} scale {scale:e}"
        );
    }
    // Every scale a real circuit makes passes the reader: fresh, squared (2^48), rescaled,
    // multiplied by an integer-scaled constant.
    let k = keys(&params, 1);
    let be = cpu();
    let ev = Evaluator::new(&params, be.clone(), &k.eval).unwrap();
    let x = encrypt(&params, &k, &[0.5; 8]);
    let sq = ev.relinearize(&ev.square(&x).unwrap()).unwrap();
    let scaled = ev.mul_const(&sq, 0.25, 256.0).unwrap();
    let down = ev.rescale(&ev.rescale(&scaled).unwrap()).unwrap();
    for ct in [&x, &sq, &scaled, &down] {
        let back = Ciphertext::from_bytes(&ct.to_bytes(&params, &*be).unwrap(), &params, &*be);
        assert_eq!(back.unwrap().scale(), ct.scale());
    }
    // A forged scale of 1.4e-306 is refused, naming the rule.
    let mut bytes = x.to_bytes(&params, &*be).unwrap();
    let at = bytes
        .windows(8)
        .position(|w| w == x.scale().to_le_bytes())
        .unwrap();
    bytes[at..at + 8].copy_from_slice(&1.4e-306f64.to_le_bytes());
    forge(&mut bytes);
    let e = Ciphertext::from_bytes(&bytes, &params, &*be).unwrap_err();
    assert!(e.to_string().contains("a scale must be at least 1"), "{e}");
}

#[test]
fn ciphertexts_are_bound_to_their_key_set() {
    let params = small();
    let (mine, theirs) = (keys(&params, 1), keys(&params, 2));
    assert_ne!(mine.sk.key_set(), theirs.sk.key_set());
    assert_eq!(mine.pk.key_set(), mine.sk.key_set());
    assert_eq!(mine.eval.key_set().unwrap(), Some(mine.sk.key_set()));
    let be = cpu();
    let a = encrypt(&params, &mine, &[0.5; 8]);
    let b = encrypt(&params, &theirs, &[0.5; 8]);
    assert_eq!(a.key_set(), mine.sk.key_set());
    // Through bytes, the key set stays.
    let back = Ciphertext::from_bytes(&b.to_bytes(&params, &*be).unwrap(), &params, &*be);
    assert_eq!(back.unwrap().key_set(), theirs.sk.key_set());
    // Decrypting with another key set's secret key: an error, not noise.
    let e = Decryptor::new(&params, &theirs.sk)
        .unwrap()
        .decrypt(&a, &*be)
        .unwrap_err();
    assert!(
        matches!(e, Error::Mismatch(_)) && e.to_string().contains("key set"),
        "{e}"
    );
    // Mixing key sets in one operation, or keys of another set.
    let ev = Evaluator::new(&params, be.clone(), &mine.eval).unwrap();
    assert!(matches!(ev.add(&a, &b), Err(Error::Mismatch(_))));
    assert!(matches!(ev.mul(&a, &b), Err(Error::Mismatch(_))));
    let theirs_sq = ev.square(&b).unwrap();
    assert!(matches!(
        ev.relinearize(&theirs_sq),
        Err(Error::Mismatch(_))
    ));
    assert!(matches!(ev.rotate(&b, 1), Err(Error::Mismatch(_))));
    // Evaluation keys of two key sets cannot be put together.
    let mixed = EvaluationKeys {
        relin: mine.eval.relin.clone(),
        galois: theirs.eval.galois.clone(),
    };
    assert!(mixed.key_set().is_err());
    assert!(Evaluator::new(&params, be.clone(), &mixed).is_err());
    assert!(mixed.to_bytes(&params).is_err());
}

/// Format version 3 draws a seeded ciphertext's masks two words per coefficient: a seeded
/// ciphertext written by version 2 would decode to other masks, so it is refused; everything
/// else of version 2 still reads.
#[test]
fn seeded_ciphertexts_of_the_previous_version_are_refused_and_the_rest_reads() {
    let params = small();
    let k = keys(&params, 1);
    let be = cpu();
    let pt = Encoder::new(&params)
        .encode(&[0.25; 8], params.max_level(), params.default_scale(), &*be)
        .unwrap();
    let seeded = Encryptor::with_secret_key(&params, &k.sk, be.clone(), Seed::from_u64(3))
        .unwrap()
        .encrypt(&pt)
        .unwrap()
        .to_bytes(&params, &*be)
        .unwrap();
    let public = encrypt(&params, &k, &[0.25; 8])
        .to_bytes(&params, &*be)
        .unwrap();
    let version = 6; // after the magic
    for (bytes, seeded) in [(seeded, true), (public, false)] {
        assert_eq!(bytes[version], 3);
        let mut old = bytes.clone();
        old[version] = 2;
        forge(&mut old);
        let read = Ciphertext::from_bytes(&old, &params, &*be);
        match (seeded, read) {
            (true, Err(e)) => assert!(e.to_string().contains("encrypt it again"), "{e}"),
            (false, Ok(c)) => assert_eq!(c.to_bytes(&params, &*be).unwrap(), bytes),
            (_, other) => panic!("seeded {seeded}: {:?}", other.map(|_| ())),
        }
        let mut future = bytes.clone();
        future[version] = 4;
        forge(&mut future);
        let e = Ciphertext::from_bytes(&future, &params, &*be).unwrap_err();
        assert!(e.to_string().contains("reads 2 to 3"), "{e}");
    }
}

#[test]
fn every_flipped_bit_of_every_serialized_kind_is_detected() {
    let params = small();
    let k = keys(&params, 3);
    let be = cpu();
    let ct = encrypt(&params, &k, &[0.25; 4])
        .to_bytes(&params, &*be)
        .unwrap();
    type Accepts<'a> = Box<dyn Fn(&[u8]) -> bool + 'a>;
    let kinds: Vec<(&str, Vec<u8>, Accepts)> = vec![
        (
            "parameters",
            params.to_bytes(),
            Box::new(|b: &[u8]| Parameters::from_bytes(b).is_ok()),
        ),
        (
            "public key",
            k.pk.to_bytes(&params).unwrap(),
            Box::new(|b: &[u8]| PublicKey::from_bytes(b, &params).is_ok()),
        ),
        (
            "evaluation keys",
            k.eval.to_bytes(&params).unwrap(),
            Box::new(|b: &[u8]| EvaluationKeys::from_bytes(b, &params).is_ok()),
        ),
        (
            "ciphertext",
            ct,
            Box::new(|b: &[u8]| Ciphertext::from_bytes(b, &params, &*cpu()).is_ok()),
        ),
        (
            "secret key",
            k.sk.export_secret_bytes(),
            Box::new(|b: &[u8]| SecretKey::import_secret_bytes(b, &params).is_ok()),
        ),
    ];
    let mut r = common::rng(11);
    for (what, good, accepts) in &kinds {
        assert!(accepts(good), "{what}");
        // Every bit of the header, and a sample of the body.
        let header_bits = 8 * 48.min(good.len());
        let sample = (0..header_bits).chain((0..300).map(|_| r.random_range(0..8 * good.len())));
        for bit in sample {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(!accepts(&bad), "{what}: bit {bit} flipped was accepted");
        }
        assert!(!accepts(&good[..good.len() - 1]), "{what} truncated");
    }
}

/// A safetensors file with this architecture JSON and tensors (name, shape, values).
fn model_file(architecture: &str, tensors: &[(&str, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
    use safetensors::{Dtype, tensor::TensorView};
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            (
                name.to_string(),
                TensorView::new(Dtype::F32, shape.clone(), b).unwrap(),
            )
        })
        .collect();
    let meta = HashMap::from([
        ("hegpu.format".to_string(), "hegpu-model-1".to_string()),
        ("hegpu.architecture".to_string(), architecture.to_string()),
    ]);
    safetensors::serialize(views, Some(meta)).unwrap()
}

fn refused(bytes: &[u8], says: &[&str]) {
    let e = model_from_bytes(bytes).unwrap_err().to_string();
    for s in says {
        assert!(e.contains(s), "{e} (expected {s})");
    }
}

#[test]
fn hostile_model_files_are_refused_naming_the_layer_and_the_number() {
    // Padding of 65536 and a pooling window of 65537: the server once aborted asking for 137 GB.
    let huge = r#"{"input":[1,28,28],"layers":[
        {"type":"pad2d","top":65536,"bottom":0,"left":65536,"right":0},
        {"type":"sum_pool","window":65537,"stride":1}]}"#;
    refused(&model_file(huge, &[]), &["layer 0 (pad2d)", "65536"]);
    // Sizes that wrap around in release builds and look normal again.
    let conv = |padding: &str| {
        format!(
            r#"{{"input":[1,28,28],"layers":[{{"type":"conv2d","in_channels":1,
            "out_channels":1,"kernel":5,"stride":2,"padding":{padding}}}]}}"#
        )
    };
    let weights = [
        ("0.weight", vec![1, 1, 5, 5], vec![0.1; 25]),
        ("0.bias", vec![1], vec![0.0]),
    ];
    refused(
        &model_file(&conv("9223372036854775782"), &weights),
        &["layer 0 (conv2d)", "padding 9223372036854775782"],
    );
    assert!(model_from_bytes(&model_file(&conv("1"), &weights)).is_ok());
    let wrap = r#"{"input":[1,28,28],"layers":[
        {"type":"pad2d","top":18446744073709551615,"bottom":2,"left":0,"right":0}]}"#;
    refused(
        &model_file(wrap, &[]),
        &["layer 0 (pad2d)", "18446744073709551615"],
    );
    // Activations that pass every size limit alone but not together.
    let wide = r#"{"input":[1,28,28],"layers":[
        {"type":"pad2d","top":4000,"bottom":0,"left":4000,"right":0}]}"#;
    refused(
        &model_file(wide, &[]),
        &["layer 0 (pad2d)", "activations per image"],
    );
    // A coefficient of 1e39 is infinity as an f32.
    let poly = r#"{"input":[4],"layers":[{"type":"poly","a":1e39,"b":0,"c":0}]}"#;
    refused(&model_file(poly, &[]), &["layer 0 (poly)", "a is inf"]);
    // Huge or tiny numbers that are finite: refused at load, naming the layer and the number,
    // not late with "scale 0e0" from the evaluator.
    let poly = r#"{"input":[4],"layers":[{"type":"square"},{"type":"poly","a":3e38,"b":0,"c":0}]}"#;
    refused(&model_file(poly, &[]), &["layer 1 (poly)", "a is 3e38"]);
    let polynomial = |range: &str, coefficients: &str| {
        format!(
            r#"{{"input":[4],"layers":[{{"type":"polynomial","range":{range},
            "coefficients":[{coefficients}]}}]}}"#
        )
    };
    refused(
        &model_file(&polynomial("1", "0, 1, 3e38, 1"), &[]),
        &["layer 0 (polynomial)", "coefficient 2 is 3e38"],
    );
    refused(
        &model_file(&polynomial("1e-45", "0, 1, 0, 1"), &[]),
        &["layer 0 (polynomial)", "range 1e-45"],
    );
    refused(
        &model_file(&polynomial("1e30", "0, 1, 0, 1"), &[]),
        &["layer 0 (polynomial)", "range 1e30"],
    );
    assert!(model_from_bytes(&model_file(&polynomial("20", "0, 0.5, 0.3, -0.01"), &[])).is_ok());
    // Unknown fields, on layers with fields and without.
    for layer in [
        r#"{"type":"square","a":2,"b":1,"c":0}"#,
        r#"{"type":"sigmoid","range":5}"#,
        r#"{"type":"flatten","size":3}"#,
        r#"{"type":"poly","a":1,"b":0,"c":0,"d":1}"#,
    ] {
        let text = format!(r#"{{"input":[4],"layers":[{layer}]}}"#);
        refused(&model_file(&text, &[]), &["unknown field"]);
    }
    // One prefix, not one per wrapping ("shape mismatch: layer 0 (pad2d): shape mismatch: …").
    let e = model_from_bytes(&model_file(huge, &[]))
        .unwrap_err()
        .to_string();
    assert_eq!(e.matches("shape mismatch").count(), 1, "{e}");
    // An input shape with no activations, or too many layers.
    refused(&model_file(r#"{"input":[0],"layers":[]}"#, &[]), &["input"]);
    let many = format!(
        r#"{{"input":[4],"layers":[{}]}}"#,
        vec![r#"{"type":"square"}"#; 300].join(",")
    );
    refused(&model_file(&many, &[]), &["300 layers"]);
    // Unknown metadata keys.
    let mut m = cryptonets(1, 4);
    initialize(&mut m, 1).unwrap();
    let good = model_to_bytes(&m, hegpu::nn::WeightType::F32).unwrap();
    let mut renamed = good.clone();
    let at = renamed
        .windows(14)
        .position(|w| w == b"hegpu.checksum")
        .unwrap();
    renamed[at + 13] = b'n';
    refused(&renamed, &["unknown metadata key 'hegpu.checksun'"]);
}

#[test]
fn models_hegpu_wrote_are_checked_and_models_in_code_keep_the_limits() {
    let mut m = cryptonets(1, 4);
    initialize(&mut m, 2).unwrap();
    let good = model_to_bytes(&m, hegpu::nn::WeightType::F16).unwrap();
    assert_eq!(
        model_from_bytes(&good).unwrap().layers.len(),
        m.layers.len()
    );
    // A flipped bit in a weight or in the architecture: the checksum says so.
    let len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    for at in [good.len() - 3, 8 + len + 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        refused(&bad, &["checksum"]);
    }
    let mut arch = good.clone();
    // In the metadata the architecture is a JSON string, its quotes escaped.
    let needle = br#"stride\":2"#;
    let at = arch
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    arch[at + needle.len() - 1] = b'3';
    refused(&arch, &["checksum"]);
    // A model built in code meets the same limits.
    let big = Model {
        input: vec![1, 5000, 5000],
        layers: vec![Layer::Square(Square)],
    };
    assert!(big.shapes().unwrap_err().to_string().contains("5000"));
    let dense = Model {
        input: vec![60000],
        layers: vec![Layer::Dense(Dense {
            inputs: 60000,
            outputs: 1000,
            weight: vec![],
            bias: vec![0.0; 1000],
        })],
    };
    assert!(dense.shapes().unwrap_err().to_string().contains("limit"));
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn labels(count: u32) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 1];
    b.extend(count.to_be_bytes());
    b.extend((0..count).map(|i| (i % 10) as u8));
    b
}

fn read_labels(bytes: &[u8]) -> Result<Vec<u8>, String> {
    hegpu::data::read_idx(bytes, 1, hegpu::data::MAX_IDX_BYTES).map(|(_, d)| d)
}

#[test]
fn gzip_data_is_bounded_by_its_header_and_nothing_may_follow() {
    assert_eq!(read_labels(&gzip(&labels(10))).unwrap().len(), 10);
    // Decompressing stops one byte past what the header announces (the stream holds 64 MiB
    // more; it was once read to the 1 GiB limit into memory that doubled as it grew).
    let mut bomb = labels(10);
    bomb.extend(vec![0u8; 64 << 20]);
    let e = read_labels(&gzip(&bomb)).unwrap_err();
    assert!(e.contains("more data than the header"), "{e}");
    // Data after the gzip stream, junk or a second stream, was silently ignored.
    let mut junk = gzip(&labels(10));
    junk.extend(b"junk");
    assert!(
        read_labels(&junk)
            .unwrap_err()
            .contains("after the gzip stream")
    );
    let mut twice = gzip(&labels(10));
    twice.extend(gzip(&labels(10)));
    assert!(
        read_labels(&twice)
            .unwrap_err()
            .contains("after the gzip stream")
    );
    // A header announcing more than the limit is refused before anything is allocated.
    let mut giant = vec![0, 0, 8, 3];
    for d in [u32::MAX, u32::MAX, 2] {
        giant.extend(d.to_be_bytes());
    }
    let e = hegpu::data::read_idx(&giant[..], 3, hegpu::data::MAX_IDX_BYTES).unwrap_err();
    assert!(e.contains("declares more than"), "{e}");
    // Plain files: short, long, exact.
    let mut long = labels(10);
    long.push(0);
    assert!(read_labels(&long).unwrap_err().contains("more data"));
    assert!(read_labels(&labels(10)[..13]).is_err());
    // Through the file reader too, with the path in the message.
    let path = std::env::temp_dir().join(format!("hegpu-labels-{}.gz", std::process::id()));
    std::fs::write(&path, &junk).unwrap();
    let e = hegpu::data::read_labels(&path).unwrap_err().to_string();
    assert!(
        e.contains("hegpu-labels-") && e.contains("after the gzip stream"),
        "{e}"
    );
    std::fs::remove_file(path).unwrap();
}
