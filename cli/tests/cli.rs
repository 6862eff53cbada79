//! The command line: `hegpu train` and `hegpu import` end to end on the shipped sample, and bad
//! options.

mod common;

use common::cli::{
    assert_agrees_with_plaintext, assert_refused, hegpu, hegpu_ok, hegpu_with, small_model_file,
};

#[test]
fn train_writes_a_model_that_loads() {
    let out = std::env::temp_dir().join(format!("hegpu-cli-{}.safetensors", std::process::id()));
    let text = hegpu_ok(&[
        "train",
        "--maps",
        "1",
        "--hidden",
        "4",
        "--epochs",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        text.contains("epoch   1") && text.contains("test accuracy"),
        "{text}"
    );
    let model = hegpu::nn::load_model(&out).unwrap();
    assert_eq!(model.shapes().unwrap().last().unwrap(), &vec![10]);
    std::fs::remove_file(out).unwrap();
}

#[test]
fn train_an_architecture_and_replace_its_relus() {
    let out = std::env::temp_dir().join(format!("hegpu-arch-{}.safetensors", std::process::id()));
    let text = hegpu_ok(&[
        "train",
        "--arch",
        "avgpool:2 dense:16 relu dense:10",
        "--epochs",
        "1",
        "--approx",
        "relu:4",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        text.contains("relu replaced by a degree-4 polynomial") && text.contains("as trained"),
        "{text}"
    );
    let model = hegpu::nn::load_model(&out).unwrap();
    let kinds: Vec<&str> = model.layers.iter().map(|l| l.kind()).collect();
    assert_eq!(
        kinds,
        ["avg_pool", "flatten", "dense", "polynomial", "dense"]
    );
    std::fs::remove_file(out).unwrap();
}

/// docs/models.md's "bring your own model" import: the PyTorch MLP with degree-8 ReLU stand-ins.
#[test]
fn import_an_onnx_model_with_polynomial_relus() {
    let out = std::env::temp_dir().join(format!("hegpu-onnx-{}.safetensors", std::process::id()));
    let text = hegpu_ok(&[
        "import",
        "tests/fixtures/onnx/mlp-relu.onnx",
        "--approx",
        "relu:8",
        "-o",
        out.to_str().unwrap(),
    ]);
    for says in [
        "relu replaced by a degree-8 polynomial",
        "plaintext accuracy on 1000 test digits: 95.10% imported, 94.90% as written",
        "encrypted pass: 9 levels",
        "deep16384",
    ] {
        assert!(text.contains(says), "{says}: {text}");
    }
    // Its encrypted run is tests/onnx_import.rs's (at N = 2^12: N = 2^14 takes a minute in a
    // debug build); here, the written file is what the job loads.
    assert!(hegpu::pair::load_digit_model(&out).is_ok());
    // The split job: keys of the default preset cannot hold it, and the server says how to
    // make keys that do.
    let dir = std::env::temp_dir().join(format!("hegpu-onnx-split-{}", std::process::id()));
    let d = dir.to_str().unwrap();
    hegpu_ok(&["mnist", "keys", "--dir", d]);
    hegpu_ok(&["mnist", "encrypt", "--dir", d, "--images", "4"]);
    let o = hegpu(&[
        "mnist",
        "serve",
        "--dir",
        d,
        "--model",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("needs 9 levels")
            && err.contains("mnist keys --model")
            && err.contains("deep16384 at 9 levels"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    // Keys made for the model: deep16384's chain cut to the 9 levels the plan uses.
    hegpu_ok(&[
        "mnist",
        "keys",
        "--dir",
        d,
        "--model",
        out.to_str().unwrap(),
    ]);
    let params = std::fs::read(dir.join("params.bin")).unwrap();
    let params = hegpu::ckks::Parameters::from_bytes(&params).unwrap();
    assert_eq!(params.max_level(), 9);
    assert_eq!(
        hegpu::ckks::Preset::of(params.literal()),
        Some(hegpu::ckks::Preset::Deep16384)
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert_refused(&["mnist", "keys", "--dir", d, "--preset", "tiny"]);
    let kept = hegpu_ok(&[
        "import",
        "tests/fixtures/onnx/mlp-relu.onnx",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(kept.contains("add --approx relu:DEGREE"), "{kept}");
    let refused = hegpu(&["mnist", "--model", out.to_str().unwrap(), "--images", "4"]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("--approx relu:"), "{err}");
    std::fs::remove_file(out).unwrap();
    for (args, says) in [
        (
            &[
                "import",
                "tests/fixtures/onnx/mlp-relu.onnx",
                "--approx",
                "relu",
            ][..],
            "FUNCTION:DEGREE",
        ),
        (&["import", "no/such.onnx"], "no/such.onnx"),
        (&["import", "README.md"], "not an ONNX model"),
    ] {
        let o = hegpu(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn bad_options_are_errors() {
    for args in [
        &["train", "--maps"][..],
        &["train", "--maps", "zero"],
        &["train", "--epochs", "0"],
        &["train", "--data", "no/such/dir"],
        &["train", "--wat"],
        &["frobnicate"],
        &["mnist", "--bandwidth", "4800"],
        &["mnist", "--profile", "--bandwidth", "-1"],
        &["mnist", "--profile", "--bandwidth", "fast"],
    ] {
        assert_refused(args);
    }
}

#[test]
fn bench_refuses_bad_options_before_measuring() {
    let mut cases = vec![
        (&["bench", "--only", "fft"][..], "not a bench section"),
        (&["bench", "--batches", "64,0"], "not a batch size"),
        (&["bench", "--batches", "many"], "not a batch size"),
        (
            &["bench", "--only", "ntt", "--chart", "x.svg"],
            "keep the network",
        ),
        (&["bench", "--json"], "a value is required for '--json"),
        (&["bench", "--bandwidth", "900"], "--profile"),
        (&["bench", "--fast"], "'hegpu bench' takes: --quick, --only"),
    ];
    if !cfg!(feature = "peers") {
        cases.push((&["bench", "--only", "peers"], "--features peers"));
    }
    for (args, says) in cases {
        assert_refused(args);
        let err = String::from_utf8_lossy(&hegpu(args).stderr).into_owned();
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// Batches smaller than the slots, client and server overlapping (two in flight) or one
/// after the other: every image classified as in plaintext either way, in order.
#[test]
fn batches_overlap_and_every_image_comes_back_in_order() {
    let model = small_model_file("overlap");
    for in_flight in ["1", "2"] {
        let json = std::env::temp_dir().join(format!(
            "hegpu-overlap-{in_flight}-{}.json",
            std::process::id()
        ));
        let text = hegpu_ok(&[
            "mnist",
            "--images",
            "30",
            "--batch",
            "10",
            "--in-flight",
            in_flight,
            "--packing",
            "batch",
            "--device",
            "cpu",
            "--model",
            model.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ]);
        assert_agrees_with_plaintext(&text, 30);
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(report["batches"], 3, "{text}");
        assert_eq!(report["classified"], 30, "{text}");
        let end_to_end = report["end_to_end_images_per_second"].as_f64().unwrap();
        assert!(end_to_end > 0.0, "{end_to_end}");
        std::fs::remove_file(json).unwrap();
    }
    let e = hegpu(&[
        "mnist",
        "--batch",
        "5000",
        "--packing",
        "batch",
        "--device",
        "cpu",
    ]);
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("a batch holds 1 to 4096 images"));
    std::fs::remove_file(&model).unwrap();
}

#[test]
fn the_mnist_job_classifies_encrypted_digits() {
    let model = small_model_file("job");
    let json = std::env::temp_dir().join(format!("hegpu-job-{}.json", std::process::id()));
    let text = hegpu_ok(&[
        "mnist",
        "--images",
        "40",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--profile",
    ]);
    assert!(
        text.contains("profile:               no GPU timestamps"),
        "{text}"
    );
    assert_agrees_with_plaintext(&text, 40);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["classified"], 40);
    let predictions = report["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 40);
    assert!(
        predictions
            .iter()
            .all(|p| p.as_u64().is_some_and(|d| d < 10))
    );
    // The JSON says what the text says.
    let number = |k: &str| report[k].as_f64().unwrap();
    let (error, largest) = (number("max_logit_error"), number("max_logit"));
    assert!(largest > 0.0 && error < 4e-3 * largest, "{text}");
    let ties = number("near_ties");
    assert!(
        number("agreement_with_plaintext") >= 1.0 - ties / 40.0,
        "{text}"
    );
    // A batch travels seeded: c0 and 32 bytes per ciphertext, under 32 KB per image when full.
    let batch_bytes = report["bytes_sent_per_image"].as_f64().unwrap() * 40.0;
    assert!(
        batch_bytes > 0.0 && batch_bytes <= 32768.0 * 4096.0,
        "{batch_bytes}"
    );
    // One batch of 4096 slots holds the 40 images and costs the server the same as a full one.
    assert_eq!(report["batch_capacity"], 4096);
    let (partial, full) = (
        report["server_images_per_second"].as_f64().unwrap(),
        report["server_images_per_second_full_batches"]
            .as_f64()
            .unwrap(),
    );
    assert!(
        (full / partial - 4096.0 / 40.0).abs() < 1e-6,
        "{partial} {full}"
    );
    // End to end counts the client's time too.
    let end_to_end = report["end_to_end_images_per_second"].as_f64().unwrap();
    assert!(
        end_to_end > 0.0 && end_to_end < partial,
        "{end_to_end} {partial}"
    );
    if cfg!(target_os = "linux") {
        assert!(report["peak_memory_bytes"].as_u64().unwrap() > 1 << 20);
    }
    std::fs::remove_file(json).unwrap();
    std::fs::remove_file(model).unwrap();
}

#[test]
fn bench_measures_the_cpu_alone_when_asked() {
    let args = ["bench", "--quick", "--only", "ckks"];
    let o = hegpu_with(&args, &[("HEGPU_DEVICE", "cpu")]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("(the CPU was chosen: GPU rows left out)"),
        "{out}"
    );
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("ckks_")).collect();
    assert!(rows.len() >= 4, "{out}");
    assert!(
        rows.iter()
            .all(|l| l.contains("CPU (") && !l.contains("GPU")),
        "{out}"
    );
}

#[test]
fn the_latency_packing_answers_each_image_on_its_own() {
    let model = small_model_file("latency");
    let json = std::env::temp_dir().join(format!("hegpu-latency-{}.json", std::process::id()));
    let text = hegpu_ok(&[
        "mnist",
        "--packing",
        "latency",
        "--images",
        "6",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(text.contains("in 6 request(s) (latency packing)"), "{text}");
    assert!(text.contains("Galois keys"), "{text}");
    assert_agrees_with_plaintext(&text, 6);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["packing"], "latency");
    assert_eq!(report["classified"], 6);
    assert_eq!(report["predictions"].as_array().unwrap().len(), 6);
    let latency = &report["latency"];
    // Two seeded ciphertexts at the top level per image: under 1 MB up.
    assert_eq!(latency["input_ciphertexts_per_request"], 2);
    assert_eq!(latency["images_per_request"], 1);
    let sent = report["bytes_sent_per_image"].as_f64().unwrap();
    assert!(sent > 0.0 && sent < 1e6, "{sent}");
    assert!(latency["evaluate_seconds_median"].as_f64().unwrap() > 0.0);
    assert!(latency["key_switches_per_request"].as_u64().unwrap() > 0);
    // Auto picks the latency packing for a handful of images.
    let auto = hegpu_ok(&[
        "mnist",
        "--images",
        "2",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
    ]);
    assert!(auto.contains("latency packing"), "{auto}");
    let _ = std::fs::remove_file(json);
    let _ = std::fs::remove_file(model);
}

#[test]
fn auto_passes_over_a_software_adapter_for_the_cpu() {
    let not_required = [("HEGPU_REQUIRE_GPU", "0")];
    let info = String::from_utf8_lossy(&hegpu_with(&["info"], &not_required).stdout).into_owned();
    let adapter = info.lines().find(|l| l.starts_with("device type:"));
    let model = small_model_file("auto");
    let args = [
        "mnist",
        "--images",
        "8",
        "--device",
        "auto",
        "--model",
        model.to_str().unwrap(),
    ];
    let o = hegpu_with(&args, &not_required);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{out}{err}");
    let device = out.lines().find(|l| l.starts_with("device:")).unwrap();
    match adapter {
        Some(t) if t.trim_end().ends_with("Cpu") => {
            assert!(
                err.contains("is a software rasterizer; using the CPU"),
                "{err}"
            );
            assert!(
                device.contains("CPU (") && !device.contains("GPU"),
                "{device}"
            );
        }
        Some(_) => assert!(device.contains("GPU ("), "{device}"),
        None => assert!(err.contains("no GPU adapter"), "{err}"),
    }
    let _ = std::fs::remove_file(model);
}

#[test]
fn client_and_server_run_as_separate_processes() {
    let model = small_model_file("split");
    let dir = std::env::temp_dir().join(format!("hegpu-split-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (d, m) = (dir.to_str().unwrap(), model.to_str().unwrap());
    for args in [
        &["mnist", "keys", "--dir", d][..],
        &["mnist", "encrypt", "--dir", d, "--images", "30"],
        &[
            "mnist", "serve", "--dir", d, "--model", m, "--device", "cpu",
        ],
    ] {
        hegpu_ok(args);
    }
    // The server's files never include the secret key's contents.
    let secret = std::fs::read(dir.join("secret.key")).unwrap();
    let result = std::fs::read(dir.join("result-000.ct")).unwrap();
    assert!(
        !result
            .windows(secret.len().min(64))
            .any(|w| w == &secret[..secret.len().min(64)])
    );
    let text = hegpu_ok(&["mnist", "decrypt", "--dir", d, "--model", m]);
    assert!(text.contains("of 30 images"), "{text}");
    assert_agrees_with_plaintext(&text, 30);
    // A result decrypted with another key set of the same parameters: an error naming the
    // file, not noise with exit status 0.
    let other = std::env::temp_dir().join(format!("hegpu-split-other-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&other);
    hegpu_ok(&["mnist", "keys", "--dir", other.to_str().unwrap()]);
    std::fs::copy(dir.join("batches.txt"), other.join("batches.txt")).unwrap();
    std::fs::copy(dir.join("result-000.ct"), other.join("result-000.ct")).unwrap();
    let o = hegpu(&[
        "mnist",
        "decrypt",
        "--dir",
        other.to_str().unwrap(),
        "--model",
        m,
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("result-000.ct") && err.contains("key set"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(other).unwrap();
    std::fs::remove_file(model).unwrap();
}

#[test]
fn the_mnist_job_refuses_bad_input() {
    for args in [
        &["mnist", "--model", "no/such/model.safetensors"][..],
        &["mnist", "--data", "no/such/dir"],
        &["mnist", "--images", "0"],
        &["mnist", "--device", "tpu"],
        &["mnist", "--gpu-memory", "12Q"],
        &["mnist", "--gpu-memory", "0"],
        &["mnist", "--frobnicate"],
        &["mnist", "--packing", "diagonal"],
        &["mnist", "serve"],
        &["mnist", "decrypt", "--dir", "no/such/dir"],
    ] {
        assert_refused(args);
    }
}

#[test]
fn a_gpu_lost_mid_job_leaves_the_results_whole() {
    // Streamed within 64 MiB on the GPU, which is lost after 300 kernel dispatches: the batch
    // completes on the CPU, says so, and the JSON counts each stage's GPU traffic.
    let model = small_model_file("lost");
    let json = std::env::temp_dir().join(format!("hegpu-lost-{}.json", std::process::id()));
    let args = [
        "mnist",
        "--images",
        "20",
        "--packing",
        "batch",
        "--device",
        "gpu",
        "--gpu-memory",
        "64M",
        "--model",
        model.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ];
    let o = hegpu_with(&args, &[("HEGPU_SIMULATE_DEVICE_LOSS", "300")]);
    let (text, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{text}{err}");
    eprintln!("{text}");
    assert_agrees_with_plaintext(&text, 20);
    assert!(err.contains("warning: the GPU failed"), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["modes"][0], "gpu-streamed");
    assert_eq!(report["fallbacks"].as_array().unwrap().len(), 1);
    let stages = report["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 3, "{stages:?}");
    assert!(stages[0]["dispatches"].as_u64().unwrap() > 0);
    assert!(stages[0]["uploads"].as_u64().unwrap() > 0);
    assert!(stages[0]["readbacks"].as_u64().unwrap() > 0);
    let cpu: u64 = stages
        .iter()
        .map(|s| s["cpu_chunks"].as_u64().unwrap())
        .sum();
    assert!(cpu > 0, "{stages:?}");
    std::fs::remove_file(json).unwrap();
    std::fs::remove_file(model).unwrap();
}
