//! Layers against direct loops, backpropagation (polynomials, tanh and SiLU included) against
//! finite differences, deterministic training whatever the thread count, and model files
//! (round trips and broken files).

mod common;

use hegpu::nn::*;
use rand::Rng;

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut r = common::rng(seed);
    (0..n).map(|_| r.random_range(-1.0..1.0)).collect()
}

/// A small model with every layer type.
fn every_layer() -> Model {
    let mut m = Model {
        input: vec![2, 9, 9],
        layers: vec![
            Layer::Pad2d(Pad2d {
                top: 1,
                bottom: 0,
                left: 0,
                right: 1,
            }),
            Layer::Conv2d(Conv2d {
                in_channels: 2,
                out_channels: 3,
                kernel: 3,
                stride: 2,
                padding: 1,
                weight: vec![0.0; 3 * 2 * 9],
                bias: vec![0.0; 3],
            }),
            Layer::Poly(Poly {
                a: 0.5,
                b: 1.0,
                c: -0.25,
            }),
            Layer::AvgPool(AvgPool {
                window: 2,
                stride: 1,
            }),
            Layer::SumPool(SumPool {
                window: 2,
                stride: 2,
            }),
            Layer::Flatten(Flatten),
            Layer::Dense(Dense {
                inputs: 12,
                outputs: 5,
                weight: vec![0.0; 60],
                bias: vec![0.0; 5],
            }),
            Layer::Square(Square),
            Layer::Polynomial(Polynomial {
                range: 2.0,
                coefficients: vec![0.1, 0.8, 0.0, -0.2],
            }),
            Layer::from(Activation::Tanh),
            Layer::from(Activation::Silu),
            Layer::Dense(Dense {
                inputs: 5,
                outputs: 4,
                weight: vec![0.0; 20],
                bias: vec![0.0; 4],
            }),
        ],
    };
    let p = random(parameters(&m).len(), 1);
    set_parameters(&mut m, &p).unwrap();
    m
}

#[test]
fn convolution_equals_a_direct_loop() {
    let m = every_layer();
    let x = random(2 * 9 * 9, 2);
    let shapes = m.shapes().unwrap();
    assert_eq!(shapes[1], vec![2, 10, 10]);
    assert_eq!(shapes[2], vec![3, 5, 5]);
    let padded = m.layers[0].forward(&shapes[0], &x).unwrap();
    let got = m.layers[1].forward(&shapes[1], &padded).unwrap();
    let Layer::Conv2d(Conv2d { weight, bias, .. }) = &m.layers[1] else {
        unreachable!()
    };
    for f in 0..3 {
        for oy in 0..5 {
            for ox in 0..5 {
                let mut want = f64::from(bias[f]);
                for c in 0..2 {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (y, xx) = (oy * 2 + ky, ox * 2 + kx);
                            if y < 1 || xx < 1 || y > 10 || xx > 10 {
                                continue; // the conv's own padding of 1
                            }
                            let v = padded[(c * 10 + y - 1) * 10 + xx - 1];
                            want += f64::from(weight[((f * 2 + c) * 3 + ky) * 3 + kx] * v);
                        }
                    }
                }
                let g = got[(f * 5 + oy) * 5 + ox];
                assert!(
                    (f64::from(g) - want).abs() < 1e-5,
                    "map {f} at ({oy}, {ox})"
                );
            }
        }
    }
}

#[test]
fn backpropagation_matches_finite_differences() {
    let m = every_layer();
    let x = random(2 * 9 * 9, 3);
    let (_, grad) = loss_and_gradient(&m, &x, 2).unwrap();
    let p = parameters(&m);
    let mut probe = m.clone();
    for i in (0..p.len()).step_by(7) {
        let h = 1e-3f32;
        let loss_at = |v: f32, probe: &mut Model| {
            let mut q = p.clone();
            q[i] = v;
            set_parameters(probe, &q).unwrap();
            loss_and_gradient(probe, &x, 2).unwrap().0
        };
        let numeric = (loss_at(p[i] + h, &mut probe) - loss_at(p[i] - h, &mut probe)) / (2.0 * h);
        let tolerance = 2e-3 * (1.0 + numeric.abs());
        assert!(
            (numeric - grad[i]).abs() < tolerance,
            "parameter {i}: {numeric} vs {}",
            grad[i]
        );
    }
}

#[test]
fn training_is_deterministic_across_thread_counts() {
    let images = random(64 * 28 * 28, 4)
        .iter()
        .map(|v| v.abs())
        .collect::<Vec<f32>>();
    let labels: Vec<u8> = (0..64).map(|i| (i % 10) as u8).collect();
    let data = Dataset {
        images: &images,
        labels: &labels,
        shape: vec![1, 28, 28],
    };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut m = cryptonets(2, 8);
            initialize(&mut m, 5).unwrap();
            let cfg = TrainConfig {
                epochs: 1,
                batch: 16,
                ..Default::default()
            };
            train(&mut m, &data, &cfg, |_, _| {}).unwrap();
            parameters(&m)
        })
    };
    let one = run(1);
    assert_eq!(one, run(2));
    let mut fresh = cryptonets(2, 8);
    initialize(&mut fresh, 5).unwrap();
    assert_ne!(one, parameters(&fresh), "training changed nothing");
}

#[test]
fn model_files_round_trip_and_refuse_broken_data() {
    let m = every_layer();
    let exact = model_from_bytes(&model_to_bytes(&m, WeightType::F32).unwrap()).unwrap();
    assert_eq!(exact, m);
    let half = model_from_bytes(&model_to_bytes(&m, WeightType::F16).unwrap()).unwrap();
    for (a, b) in parameters(&half).iter().zip(parameters(&m)) {
        assert!((a - b).abs() <= 1e-3 * b.abs().max(1.0), "{a} vs {b}");
    }
    let bytes = model_to_bytes(&m, WeightType::F32).unwrap();
    assert!(
        model_from_bytes(&bytes[..bytes.len() - 4]).is_err(),
        "truncated"
    );
    assert!(model_from_bytes(&bytes[..20]).is_err(), "header only");
    assert!(model_from_bytes(b"not a model").is_err());
    // The metadata claims another shape for the last layer than its tensors have: the checksum
    // says so, and without a checksum (as another tool writes files) the shape check does.
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + header_len].to_vec()).unwrap();
    let from = r#"{\"type\":\"dense\",\"inputs\":5,\"outputs\":4}"#;
    let to = r#"{\"type\":\"dense\",\"inputs\":4,\"outputs\":5}"#;
    assert!(header.contains(from), "{header}");
    let with_header = |header: &str| {
        let mut text = header.as_bytes().to_vec();
        while !text.len().is_multiple_of(8) {
            text.push(b' ');
        }
        [
            &(text.len() as u64).to_le_bytes()[..],
            &text,
            &bytes[8 + header_len..],
        ]
        .concat()
    };
    let err = model_from_bytes(&with_header(&header.replace(from, to)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("checksum"), "{err}");
    let mut unchecked: serde_json::Value = serde_json::from_str(&header).unwrap();
    unchecked["__metadata__"]
        .as_object_mut()
        .unwrap()
        .remove("hegpu.checksum");
    let unchecked = serde_json::to_string(&unchecked).unwrap();
    assert!(model_from_bytes(&with_header(&unchecked)).is_ok());
    let err = model_from_bytes(&with_header(&unchecked.replace(from, to)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("shape"), "{err}");
    // A NaN weight.
    let mut nan = m.clone();
    if let Some(Layer::Dense(Dense { bias, .. })) = nan.layers.last_mut() {
        bias[0] = f32::NAN;
    }
    assert!(model_from_bytes(&model_to_bytes(&nan, WeightType::F32).unwrap()).is_err());
    // Files on disk: missing, and a good one.
    let path = std::env::temp_dir().join(format!("hegpu-model-{}.safetensors", std::process::id()));
    save_model(&m, &path, WeightType::F16).unwrap();
    assert_eq!(load_model(&path).unwrap().layers.len(), m.layers.len());
    std::fs::remove_file(&path).unwrap();
    assert!(load_model(&path).is_err());
}

#[test]
fn bad_shapes_are_errors() {
    let m = cryptonets(5, 100);
    assert!(m.forward(&[0.0; 10]).is_err());
    assert!(m.predict(&[0.0; 785]).is_err());
    let mut broken = m.clone();
    broken.layers.remove(3); // no Flatten before the dense layer
    assert!(broken.shapes().is_err());
}

/// A shipped CryptoNets model's accuracy on the sample's 1,000 test digits, checking its shape.
fn shipped_accuracy(maps: usize) -> f32 {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = load_model(&root.join(format!("models/cryptonets-{maps}.safetensors"))).unwrap();
    assert_eq!(model, {
        let mut shape_only = cryptonets(maps, 100);
        set_parameters(&mut shape_only, &parameters(&model)).unwrap();
        shape_only
    });
    let mnist = hegpu::data::Mnist::load(&root.join("data/mnist")).unwrap();
    let images = pixels(&mnist.test_images);
    let data = Dataset {
        images: &images,
        labels: &mnist.test_labels,
        shape: vec![1, 28, 28],
    };
    let acc = accuracy(&model, &data).unwrap();
    eprintln!(
        "shipped {maps}-map model (f16 weights): {:.2}% on the 1000 test digits",
        100.0 * acc
    );
    acc
}

#[test]
fn the_shipped_model_reaches_98_percent_on_the_sample() {
    let acc = shipped_accuracy(5);
    assert!(acc >= 0.98, "5 maps: {:.2}%", 100.0 * acc);
}

#[test]
fn the_wider_shipped_model_reaches_98_8_percent_on_the_sample() {
    let acc = shipped_accuracy(16);
    assert!(acc >= 0.988, "16 maps: {:.2}%", 100.0 * acc);
}

/// Planning refusals are typed: a chain too short names the levels needed and had, values
/// too large name the stage, and calibration data that bounds nothing is a calibration error.
#[test]
fn plan_refusals_are_typed() {
    use hegpu::{Error, PlanError};
    let model = common::small_network();
    let images = random(8 * model.input_len(), 9)
        .iter()
        .map(|v| v.abs())
        .collect::<Vec<f32>>();
    let bounds = Bounds::measure(&model, &images).unwrap();
    match EncryptedNetwork::plan(&model, &common::test_params(1), &bounds) {
        Err(Error::Plan(PlanError::TooFewLevels { needed, have, .. })) => {
            assert_eq!(have, 1);
            assert!(needed > have, "{needed}");
        }
        other => panic!("{:?}", other.err()),
    }
    let e = Bounds::measure(&model, &images[..5]).unwrap_err();
    assert!(matches!(e, Error::Plan(PlanError::Calibration(_))), "{e:?}");
    let mut huge = images.clone();
    huge.iter_mut().for_each(|v| *v *= 1e12);
    let bounds = Bounds::measure(&model, &huge).unwrap();
    let levels = levels_needed(&model).unwrap();
    match EncryptedNetwork::plan(&model, &common::test_params(levels), &bounds) {
        Err(Error::Plan(PlanError::Overflow {
            need_bits,
            have_bits,
            ..
        })) => {
            assert!(need_bits > have_bits, "{need_bits} {have_bits}");
        }
        other => panic!("{:?}", other.err()),
    }
}

/// The file format does not move: each shipped model re-encodes to its own bytes, and a model
/// holding every layer kind encodes to the header pinned here (the checksum in it covers the
/// architecture text and every tensor's bytes).
#[test]
fn model_files_keep_their_bytes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for maps in [5, 16] {
        let path = root.join(format!("models/cryptonets-{maps}.safetensors"));
        let model = load_model(&path).unwrap();
        let bytes = model_to_bytes(&model, WeightType::F16).unwrap();
        assert!(bytes == std::fs::read(&path).unwrap(), "{maps} maps");
    }
    let bytes = model_to_bytes(&every_layer(), WeightType::F32).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + header_len].to_vec()).unwrap();
    let pinned = concat!(
        r#"{"__metadata__":{"hegpu.architecture":"{\"input\":[2,9,9],\"layers\":[{\"type\":"#,
        r#"\"pad2d\",\"top\":1,\"bottom\":0,\"left\":0,\"right\":1},{\"type\":\"conv2d\",\""#,
        r#"in_channels\":2,\"out_channels\":3,\"kernel\":3,\"stride\":2,\"padding\":1},{\"t"#,
        r#"ype\":\"poly\",\"a\":0.5,\"b\":1.0,\"c\":-0.25},{\"type\":\"avg_pool\",\"window\"#,
        r#"":2,\"stride\":1},{\"type\":\"sum_pool\",\"window\":2,\"stride\":2},{\"type\":\""#,
        r#"flatten\"},{\"type\":\"dense\",\"inputs\":12,\"outputs\":5},{\"type\":\"square\""#,
        r#"},{\"type\":\"polynomial\",\"range\":2.0,\"coefficients\":[0.1,0.8,0.0,-0.2]},{\"#,
        r#""type\":\"tanh\"},{\"type\":\"silu\"},{\"type\":\"dense\",\"inputs\":5,\"outputs"#,
        r#"\":4}]}","hegpu.checksum":"9a2497a5","hegpu.format":"hegpu-model-1"},"1.bias":{""#,
        r#"dtype":"F32","shape":[3],"data_offsets":[0,12]},"1.weight":{"dtype":"F32","shape"#,
        r#"":[3,2,3,3],"data_offsets":[12,228]},"11.bias":{"dtype":"F32","shape":[4],"data_"#,
        r#"offsets":[228,244]},"11.weight":{"dtype":"F32","shape":[4,5],"data_offsets":[244"#,
        r#",324]},"6.bias":{"dtype":"F32","shape":[5],"data_offsets":[324,344]},"6.weight":"#,
        r#"{"dtype":"F32","shape":[5,12],"data_offsets":[344,584]}}"#,
    );
    assert_eq!(header.trim_end(), pinned);
}
