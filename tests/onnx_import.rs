//! ONNX import against an independent evaluator: the fixtures in tests/fixtures/onnx were
//! trained and exported by PyTorch, and ONNX Runtime's outputs for the first test digits were
//! recorded beside them (scripts/make-onnx-fixtures.py). The imported models must give the
//! same logits; the ReLU MLP with its ReLUs replaced by polynomials must stay within a point of
//! the original's accuracy and run encrypted to the same digits; bad files are clear errors.

mod common;

use hegpu::backend::{Backend, CpuBackend};
use hegpu::ckks::*;
use hegpu::data::Mnist;
use hegpu::nn::*;
use onnx_rs::ast::{
    DataType, Dimension, Graph, Model as OnnxModel, Node, OpType, OperatorSetId, TensorProto,
    TensorShape, TensorShapeDimension, TensorTypeProto, TypeProto, TypeValue, ValueInfo,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/onnx").join(name)
}

fn mnist() -> &'static Mnist {
    static DATA: OnceLock<Mnist> = OnceLock::new();
    DATA.get_or_init(|| Mnist::load(&root().join("data/mnist")).unwrap())
}

fn test_pixels() -> Vec<f32> {
    pixels(&mnist().test_images)
}

/// ONNX Runtime's logits for the first test digits.
fn expected(name: &str) -> Vec<Vec<f32>> {
    let text = std::fs::read_to_string(fixture(&format!("{name}.expected.json"))).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

#[test]
fn imported_models_give_onnx_runtimes_logits() {
    let px = test_pixels();
    for (name, first_kind) in [
        ("cryptonets", "pad2d"),
        ("mlp-relu", "flatten"),
        ("cnn-bn-pool", "conv2d"),
    ] {
        let imported = import_onnx_file(&fixture(&format!("{name}.onnx"))).unwrap();
        let model = &imported.model;
        assert_eq!(model.input, [1, 28, 28], "{name}");
        assert_eq!(model.layers[0].kind(), first_kind, "{name}");
        let want = expected(name);
        assert_eq!(want.len(), 64);
        for (i, w) in want.iter().enumerate() {
            let got = model.forward(&px[i * 784..(i + 1) * 784]).unwrap();
            for (g, e) in got.iter().zip(w) {
                assert!(
                    (g - e).abs() <= 1e-4 + 1e-4 * e.abs(),
                    "{name}, digit {i}: {got:?} vs ONNX Runtime {w:?}"
                );
            }
            assert_eq!(argmax(&got), argmax(w), "{name}, digit {i}");
        }
    }
}

#[test]
fn activations_and_folds_are_recognized() {
    let cryptonets = import_onnx_file(&fixture("cryptonets.onnx")).unwrap().model;
    let kinds: Vec<&str> = cryptonets.layers.iter().map(Layer::kind).collect();
    // x*x and x.pow(2) are both squares; ZeroPad2d's pads were folded from shape arithmetic.
    assert_eq!(
        kinds,
        [
            "pad2d", "conv2d", "square", "flatten", "dense", "square", "dense"
        ]
    );
    let cnn = import_onnx_file(&fixture("cnn-bn-pool.onnx")).unwrap();
    let kinds: Vec<&str> = cnn.model.layers.iter().map(Layer::kind).collect();
    assert_eq!(
        kinds,
        [
            "conv2d", "poly", "avg_pool", "conv2d", "silu", "avg_pool", "flatten", "dense", "tanh",
            "dense"
        ]
    );
    // 0.125 x² + 0.5 x + 0.25 written as Mul and Add nodes.
    assert_eq!(
        cnn.model.layers[1],
        Layer::Poly(Poly {
            a: 0.125,
            b: 0.5,
            c: 0.25
        })
    );
    // The dense layer's batch normalization was a node of its own, folded here.
    assert!(
        cnn.notes
            .iter()
            .any(|n| n.contains("folded batch normalization")),
        "{:?}",
        cnn.notes
    );
}

/// The imported ReLU MLP with degree-8 polynomials, fitted on 1,000 training images.
fn approximated_mlp() -> &'static (Model, Model) {
    static MLP: OnceLock<(Model, Model)> = OnceLock::new();
    MLP.get_or_init(|| {
        let relu = import_onnx_file(&fixture("mlp-relu.onnx")).unwrap().model;
        let calibration = &pixels(&mnist().train_images)[..784 * 1000];
        let spec: ApproxSpec = "relu:8".parse().unwrap();
        let (poly, replaced) = approximate(&relu, calibration, &[spec]).unwrap();
        assert_eq!(replaced.len(), 2);
        assert!(replaced.iter().all(|r| r.range > 1.0 && r.max_error < 1.0));
        (relu, poly)
    })
}

#[test]
fn the_relu_mlp_with_degree_8_polynomials_stays_within_a_point() {
    let (relu, poly) = approximated_mlp();
    let px = test_pixels();
    let test = Dataset {
        images: &px,
        labels: &mnist().test_labels,
        shape: vec![1, 28, 28],
    };
    let (a, b) = (
        accuracy(relu, &test).unwrap(),
        accuracy(poly, &test).unwrap(),
    );
    assert!(a > 0.93, "the ReLU model: {a}");
    assert!((a - b).abs() <= 0.01, "ReLU {a}, polynomials {b}");
    // Linear, 3 levels of powers, linear, 3, linear: N = 2^14 holds it, N = 2^13 does not.
    assert_eq!(levels_needed(poly).unwrap(), 9);
    let bounds = Bounds::measure(poly, &pixels(&mnist().train_images)[..784 * 200]).unwrap();
    let (preset, network) = EncryptedNetwork::plan_smallest(poly, &bounds).unwrap();
    assert_eq!(preset, Preset::Deep16384);
    assert_eq!(
        network.params().max_level(),
        9,
        "the chain cut to the plan's levels"
    );
}

/// N = 2^12 with eleven 26-bit levels.
fn small_params() -> Arc<Parameters> {
    common::test_params(11)
}

/// `model` encrypted on `images` on `backend`: the decrypted outputs and the output bytes.
fn encrypted(model: &Model, images: &[f32], backend: Arc<dyn Backend>) -> (Vec<Vec<f32>>, Vec<u8>) {
    let run = common::encrypted_run(model, images, &small_params(), backend);
    (run.outputs, run.bytes)
}

#[test]
fn the_approximated_mlp_predicts_the_same_digits_encrypted() {
    let (_, poly) = approximated_mlp();
    let px = test_pixels();
    let (got, _) = encrypted(
        poly,
        &px[..784 * 200],
        Arc::new(CpuBackend::new(None).unwrap()),
    );
    let mut worst = 0.0f32;
    for (i, out) in got.iter().enumerate() {
        let want = poly.forward(&px[i * 784..(i + 1) * 784]).unwrap();
        for (g, w) in out.iter().zip(&want) {
            worst = worst.max((g - w).abs());
        }
        assert_eq!(argmax(out), argmax(&want), "digit {i}: {out:?} vs {want:?}");
    }
    // Logits reach about 20; the encrypted pass keeps them to within 0.05.
    assert!(worst < 0.05, "worst logit error {worst}");
}

#[test]
fn the_approximated_mlp_gives_the_same_ciphertexts_on_the_gpu() {
    let Some(_) = common::gpu() else { return };
    // The second imported polynomial on 16 of its 64 values, and the last layer on them (a
    // software GPU takes seconds per hundred key switches; the linear kernels have GPU twins
    // of their own).
    let (_, poly) = approximated_mlp();
    let head = Model {
        input: vec![1, 28, 28],
        layers: poly.layers[..4].to_vec(),
    };
    let Layer::Dense(Dense { weight, bias, .. }) = &poly.layers[5] else {
        panic!("the MLP ends with a dense layer")
    };
    let tail = Model {
        input: vec![16],
        layers: vec![
            poly.layers[4].clone(),
            Layer::Dense(Dense {
                inputs: 16,
                outputs: 10,
                weight: weight
                    .chunks(64)
                    .flat_map(|row| row[..16].to_vec())
                    .collect(),
                bias: bias.clone(),
            }),
        ],
    };
    let px = test_pixels();
    let hidden: Vec<f32> = px[..784 * 32]
        .chunks(784)
        .flat_map(|img| head.forward(img).unwrap()[..16].to_vec())
        .collect();
    let cpu = encrypted(&tail, &hidden, Arc::new(CpuBackend::new(None).unwrap()));
    let gpu = encrypted(
        &tail,
        &hidden,
        Arc::new(hegpu::backend::GpuBackend::new().unwrap()),
    );
    assert!(cpu.1 == gpu.1, "GPU and CPU ciphertexts differ");
}

// ---- Bad files: clear errors, never a panic. ----

fn value_info<'a>(name: &'a str, dims: Vec<Dimension<'a>>) -> ValueInfo<'a> {
    ValueInfo {
        name,
        r#type: Some(TypeProto {
            value: Some(TypeValue::Tensor(TensorTypeProto {
                elem_type: DataType::Float,
                shape: Some(TensorShape {
                    dim: dims
                        .into_iter()
                        .map(|value| TensorShapeDimension {
                            value,
                            denotation: "",
                        })
                        .collect(),
                }),
            })),
            denotation: "",
        }),
        ..Default::default()
    }
}

/// A model with input `x` of `dims`, the given nodes and initializers, output `y`.
fn onnx<'a>(
    dims: Vec<Dimension<'a>>,
    nodes: Vec<Node<'a>>,
    initializer: Vec<TensorProto<'a>>,
    opset: i64,
) -> Vec<u8> {
    onnx_rs::encode(&OnnxModel {
        ir_version: 8,
        opset_import: vec![OperatorSetId {
            domain: "",
            version: opset,
        }],
        graph: Some(Graph {
            node: nodes,
            name: "g",
            initializer,
            input: vec![value_info("x", dims)],
            output: vec![value_info("y", vec![])],
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn node<'a>(op: OpType<'a>, name: &'a str, input: Vec<&'a str>, output: &'a str) -> Node<'a> {
    Node {
        input,
        output: vec![output],
        name,
        op_type: op,
        ..Default::default()
    }
}

fn refusal(bytes: &[u8]) -> String {
    import_onnx(bytes).unwrap_err().to_string()
}

fn batch_of(features: i64) -> Vec<Dimension<'static>> {
    vec![Dimension::Param("batch"), Dimension::Value(features)]
}

#[test]
fn a_hand_made_model_imports() {
    // Gemm without transB: the weight matrix is [inputs, outputs].
    let w = TensorProto::from_f32("w", vec![4, 3], (0..12).map(|v| v as f32).collect());
    let bytes = onnx(
        batch_of(4),
        vec![
            node(OpType::Gemm, "fc", vec!["x", "w"], "h"),
            node(OpType::Mul, "sq", vec!["h", "h"], "y"),
        ],
        vec![w],
        17,
    );
    let model = import_onnx(&bytes).unwrap().model;
    assert_eq!(model.input, [4]);
    assert_eq!(model.layers[1], Layer::Square(Square));
    assert_eq!(
        model.forward(&[0.0, 1.0, 0.0, 0.0]).unwrap(),
        [9.0, 16.0, 25.0]
    );
}

#[test]
fn unknown_ops_are_refused_with_the_node_and_what_is_supported() {
    let bytes = onnx(
        batch_of(4),
        vec![node(OpType::Gelu, "act/gelu", vec!["x"], "y")],
        vec![],
        17,
    );
    let e = refusal(&bytes);
    assert!(e.contains("node 'act/gelu' (Gelu)"), "{e}");
    assert!(
        e.contains("not supported") && e.contains("Conv, Gemm"),
        "{e}"
    );
    let custom = onnx(
        batch_of(4),
        vec![node(OpType::Custom("MyOp"), "mine", vec!["x"], "y")],
        vec![],
        17,
    );
    assert!(refusal(&custom).contains("(MyOp)"));
}

#[test]
fn dynamic_sizes_old_opsets_and_branches_are_refused() {
    let dynamic = onnx(
        vec![Dimension::Param("batch"), Dimension::Param("features")],
        vec![node(OpType::Relu, "r", vec!["x"], "y")],
        vec![],
        17,
    );
    let e = refusal(&dynamic);
    assert!(e.contains("dynamic size 'features'"), "{e}");
    let old = onnx(
        batch_of(4),
        vec![node(OpType::Relu, "r", vec!["x"], "y")],
        vec![],
        11,
    );
    assert!(refusal(&old).contains("opset 11"));
    // y = relu(x) + x: a skip connection.
    let skip = onnx(
        batch_of(4),
        vec![
            node(OpType::Relu, "r", vec!["x"], "h"),
            node(OpType::Add, "skip", vec!["h", "x"], "y"),
        ],
        vec![],
        17,
    );
    let e = refusal(&skip);
    assert!(
        e.contains("node 'skip' (Add)") && e.contains("skip connections"),
        "{e}"
    );
    let missing = onnx(
        batch_of(4),
        vec![node(OpType::Relu, "r", vec!["nowhere"], "y")],
        vec![],
        17,
    );
    assert!(refusal(&missing).contains("'nowhere' is made by no earlier node"));
}

#[test]
fn huge_dimensions_are_refused_before_anything_is_allocated() {
    let huge_input = onnx(
        vec![Dimension::Value(1), Dimension::Value(1 << 40)],
        vec![node(OpType::Relu, "r", vec!["x"], "y")],
        vec![],
        17,
    );
    assert!(
        refusal(&huge_input).contains("input size"),
        "{}",
        refusal(&huge_input)
    );
    // Weights that claim 2^40 elements but hold 4.
    let lying = TensorProto::from_f32("w", vec![1 << 20, 1 << 20], vec![0.0; 4]);
    let bytes = onnx(
        batch_of(4),
        vec![node(OpType::Gemm, "fc", vec!["x", "w"], "y")],
        vec![lying],
        17,
    );
    let e = refusal(&bytes);
    assert!(e.contains("more than"), "{e}");
    let short = TensorProto::from_f32("w", vec![4, 3], vec![0.0; 5]);
    let bytes = onnx(
        batch_of(4),
        vec![node(OpType::Gemm, "fc", vec!["x", "w"], "y")],
        vec![short],
        17,
    );
    assert!(refusal(&bytes).contains("holds 5 values"));
}

#[test]
fn batch_normalization_errors_name_their_cause() {
    let w = TensorProto::from_f32("w", vec![4, 2], vec![0.5; 8]);
    let stats = |var: [f32; 2]| {
        vec![
            TensorProto::from_f32("scale", vec![2], vec![1.0, 1.0]),
            TensorProto::from_f32("shift", vec![2], vec![0.0, 0.0]),
            TensorProto::from_f32("mean", vec![2], vec![0.0, 0.0]),
            TensorProto::from_f32("var", vec![2], var.to_vec()),
        ]
    };
    let model = |var, epsilon: Option<f32>, after_gemm: bool| {
        let mut bn = node(
            OpType::BatchNormalization,
            "bn",
            vec![
                if after_gemm { "h" } else { "x" },
                "scale",
                "shift",
                "mean",
                "var",
            ],
            "y",
        );
        if let Some(f) = epsilon {
            bn.attribute.push(onnx_rs::ast::Attribute {
                name: "epsilon",
                r#type: onnx_rs::ast::AttributeType::Float,
                f,
                ..Default::default()
            });
        }
        let mut nodes = vec![bn];
        if after_gemm {
            nodes.insert(0, node(OpType::Gemm, "fc", vec!["x", "w"], "h"));
        }
        let initializer = [vec![w.clone()], stats(var)].concat();
        onnx(batch_of(4), nodes, initializer, 17)
    };
    assert!(import_onnx(&model([1.0, 4.0], None, true)).is_ok());
    let e = refusal(&model([1.0, -1.0], None, true));
    assert!(
        e.contains("channel 1: variance -1") && e.contains("not a positive"),
        "{e}"
    );
    let e = refusal(&model([0.0, 1.0], Some(0.0), true));
    assert!(
        e.contains("channel 0: variance 0") && e.contains("is 0e0"),
        "{e}"
    );
    let e = refusal(&model([1.0, 1.0], None, false));
    assert!(e.contains("must follow a Conv, Gemm or MatMul"), "{e}");
}

/// A 1 KB file of `layers` dense layers on digit images whose weights ConstantOfShape makes:
/// 784 → 2048, then 2048 → 2048 (2^22 terms each) sharing one tensor.
fn shared_heavy_layers(layers: usize) -> Vec<u8> {
    let fill = |shape: &'static str, output: &'static str| {
        let mut n = node(OpType::ConstantOfShape, output, vec![shape], output);
        n.attribute.push(onnx_rs::ast::Attribute {
            name: "value",
            r#type: onnx_rs::ast::AttributeType::Tensor,
            t: Some(TensorProto::from_f32("v", vec![1], vec![1e-3])),
            ..Default::default()
        });
        n
    };
    let shapes = vec![
        TensorProto::from_i64("first", vec![2], vec![784, 2048]),
        TensorProto::from_i64("square", vec![2], vec![2048, 2048]),
    ];
    let names: Vec<String> = (0..layers).map(|i| format!("h{i}")).collect();
    let mut nodes = vec![fill("first", "w0"), fill("square", "w")];
    for i in 0..layers {
        let output = if i + 1 == layers {
            "y"
        } else {
            names[i + 1].as_str()
        };
        let (input, w) = if i == 0 {
            ("x", "w0")
        } else {
            (names[i].as_str(), "w")
        };
        nodes.push(node(OpType::MatMul, "fc", vec![input, w], output));
    }
    onnx(batch_of(784), nodes, shapes, 17)
}

#[test]
fn a_models_total_work_is_bounded_before_any_pass() {
    let started = std::time::Instant::now();
    let bytes = shared_heavy_layers(3);
    assert!(bytes.len() < 1024, "{}", bytes.len());
    let e = refusal(&bytes);
    assert!(
        e.contains("layers 0 to 2 do 9994240 plaintext operations per image")
            && e.contains("limit of 8388608"),
        "{e}"
    );
    assert!(
        started.elapsed().as_secs_f64() < 5.0,
        "{:?}",
        started.elapsed()
    );
    // Two layers are a model (the command's import then refuses to calibrate it on 1,000
    // images: cli/tests/import_budget.rs reads these bytes from the fixture pinned here).
    let bytes = shared_heavy_layers(2);
    assert_eq!(
        import_onnx(&bytes).unwrap().model.work().unwrap(),
        5_799_936
    );
    assert_eq!(bytes, std::fs::read(fixture("heavy-2.onnx")).unwrap());
}

#[test]
fn truncated_and_corrupted_files_are_errors_not_panics() {
    let bytes = std::fs::read(fixture("cnn-bn-pool.onnx")).unwrap();
    for cut in (0..bytes.len()).step_by(7) {
        if let Ok(imported) = import_onnx(&bytes[..cut]) {
            panic!("a file cut at {cut} imported: {:?}", imported.model.layers);
        }
    }
    assert!(refusal(&bytes[..bytes.len() / 2]).contains("not an ONNX model"));
    assert!(refusal(b"").contains("no graph") || refusal(b"").contains("opset"));
    // Flipped bytes: an error or a model that still passes every check, never a panic.
    let mut r = common::rng(77);
    use rand::Rng;
    for _ in 0..400 {
        let mut damaged = bytes.clone();
        for _ in 0..r.random_range(1..4) {
            let at = r.random_range(0..damaged.len());
            damaged[at] ^= 1 << r.random_range(0..8);
        }
        if let Ok(imported) = import_onnx(&damaged) {
            imported.model.shapes().unwrap();
        }
    }
    let e = import_onnx_file(Path::new("/nonexistent/model.onnx"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/model.onnx"), "{e}");
}

/// Protobuf bytes written by hand, as an attacker writes them.
mod wire {
    pub fn varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while v >= 0x80 {
            out.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
        out
    }

    /// Field `number` holding `payload` behind a tag of wire type `wire` (a reader that reads
    /// by field number reads a length and the bytes whatever the tag says).
    pub fn field(number: u64, wire: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = varint(number << 3 | wire);
        out.extend(varint(payload.len() as u64));
        out.extend(payload);
        out
    }

    /// `depth` times `path` (field numbers, outermost first) around `inner`, every tag of wire
    /// type `wire`.
    pub fn nest(path: &[u64], depth: usize, wire: u64, mut inner: Vec<u8>) -> Vec<u8> {
        for _ in 0..depth {
            for &number in path.iter().rev() {
                inner = field(number, wire, &inner);
            }
        }
        inner
    }

    /// Opset 17, so that the refusal is about the nesting, not the opset.
    pub fn opset() -> Vec<u8> {
        field(8, 2, &[0x10, 17])
    }
}

#[test]
fn hostile_nesting_is_refused_on_every_path_and_wire_type() {
    use wire::{field, nest, opset};
    let graphs_in_attributes = |wire| field(7, wire, &nest(&[1, 5, 6], 2000, wire, vec![]));
    let types_in_types = |wire| {
        let ty = nest(&[4, 1], 3000, wire, vec![]);
        field(7, wire, &field(11, wire, &field(2, wire, &ty)))
    };
    let no_input = "0 inputs besides its weights";
    let wrong_wire = "invalid wire type: Varint (expected LengthDelimited)";
    // (what, the bytes after the opset, what the refusal says)
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "graphs in node attributes",
            graphs_in_attributes(2),
            no_input,
        ),
        (
            "graphs in attributes behind varint tags",
            graphs_in_attributes(0),
            wrong_wire,
        ),
        (
            "graphs in attribute lists (field 11)",
            field(7, 2, &nest(&[1, 5, 11], 2000, 2, vec![])),
            no_input,
        ),
        (
            "graphs in a function's attributes",
            field(25, 2, &field(11, 2, &nest(&[6, 1, 5], 1500, 2, vec![]))),
            "the model has no graph",
        ),
        (
            // Field 25 is skipped as a varint; what follows is read as the model's fields.
            "graphs in a function's attributes behind varint tags",
            field(25, 0, &field(11, 0, &nest(&[6, 1, 5], 1500, 0, vec![]))),
            "the model has no graph",
        ),
        (
            "graphs in training info",
            field(20, 2, &field(1, 2, &nest(&[1, 5, 6], 1500, 2, vec![]))),
            "the model has no graph",
        ),
        ("types in types", types_in_types(2), "is not a tensor"),
        (
            "types in types behind varint tags",
            types_in_types(0),
            wrong_wire,
        ),
        (
            "types in attribute types",
            field(
                7,
                2,
                &nest(&[1, 5, 14], 1, 2, nest(&[4, 1], 3000, 0, vec![])),
            ),
            no_input,
        ),
        (
            "groups in groups",
            {
                let mut g = Vec::new();
                for _ in 0..20_000 {
                    g.extend([0x9b, 0x06]); // field 99, start group
                }
                for _ in 0..20_000 {
                    g.extend([0x9c, 0x06]); // field 99, end group
                }
                g
            },
            "recursion limit reached",
        ),
    ];
    for (what, body, says) in cases {
        let bytes = [opset(), body].concat();
        let started = std::time::Instant::now();
        let e = refusal(&bytes);
        let took = started.elapsed();
        assert!(took.as_secs_f64() < 1.0, "{what}: {took:?}");
        assert!(e.contains(says), "{what} ({} bytes): {e}", bytes.len());
    }
    // A tag of the wrong wire type on a field the importer reads is named.
    let e = refusal(&[opset(), field(7, 0, &field(1, 2, &[]))].concat());
    assert!(e.contains("wire type") && e.contains("graph"), "{e}");
}

#[test]
fn a_flat_input_mlp_takes_digit_images() {
    // An MLP exported with flattened images: input [batch, 784].
    let w = TensorProto::from_f32(
        "w",
        vec![784, 10],
        (0..7840).map(|v| (v % 7) as f32 * 0.01).collect(),
    );
    let bytes = onnx(
        batch_of(784),
        vec![node(OpType::MatMul, "fc", vec!["x", "w"], "y")],
        vec![w],
        17,
    );
    let model = import_onnx(&bytes).unwrap().model;
    assert_eq!(model.input, [784]);
    let path = std::env::temp_dir().join(format!("hegpu-flat-{}.safetensors", std::process::id()));
    save_model(&model, &path, WeightType::F32).unwrap();
    let digits = hegpu::pair::load_digit_model(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(digits.input, [1, 28, 28]);
    let image = &test_pixels()[..784];
    assert_eq!(
        digits.forward(image).unwrap(),
        model.forward(image).unwrap()
    );
}
