//! The command line: `hegpu train` end to end on the shipped sample, and bad options.

use std::process::Command;

fn hegpu(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hegpu"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn train_writes_a_model_that_loads() {
    let out = std::env::temp_dir().join(format!("hegpu-cli-{}.safetensors", std::process::id()));
    let o = hegpu(&[
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
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        text.contains("epoch   1") && text.contains("test accuracy"),
        "{text}"
    );
    let model = hegpu::nn::load_model(&out).unwrap();
    assert_eq!(model.shapes().unwrap().last().unwrap(), &vec![10]);
    std::fs::remove_file(out).unwrap();
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
    ] {
        let o = hegpu(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(
            String::from_utf8_lossy(&o.stderr).starts_with("hegpu: "),
            "{args:?}"
        );
    }
}

#[test]
fn the_mnist_job_classifies_encrypted_digits() {
    let json = std::env::temp_dir().join(format!("hegpu-job-{}.json", std::process::id()));
    let o = hegpu(&[
        "mnist",
        "--images",
        "40",
        "--device",
        "cpu",
        "--json",
        json.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("agrees with plaintext: 100.00%"), "{text}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["classified"], 40);
    assert!(report["accuracy"].as_f64().unwrap() >= 0.9, "{report}");
    assert!(report["bytes_sent_per_image"].as_f64().unwrap() > 0.0);
    std::fs::remove_file(json).unwrap();
}

#[test]
fn the_mnist_job_refuses_bad_input() {
    for args in [
        &["mnist", "--model", "no/such/model.safetensors"][..],
        &["mnist", "--data", "no/such/dir"],
        &["mnist", "--images", "0"],
        &["mnist", "--device", "tpu"],
        &["mnist", "--frobnicate"],
    ] {
        let o = hegpu(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(
            String::from_utf8_lossy(&o.stderr).starts_with("hegpu: "),
            "{args:?}"
        );
    }
}
