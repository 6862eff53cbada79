//! The split job's files against careless hands: the secret key file, corrupted, swapped and
//! foreign batches and results, a server that goes on past a bad batch, the GPU's work counted
//! after a device loss, and `--help` everywhere.

mod common;

use common::cli::{assert_agrees_with_plaintext, hegpu, hegpu_ok, hegpu_with, small_model_file};
use std::path::{Path, PathBuf};

fn fresh_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hegpu-files-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs `hegpu args`; returns (succeeded, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    let o = hegpu(args);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Keys and `images` test images in batches of 10 in `dir`.
fn client(dir: &Path, images: &str) {
    let d = dir.to_str().unwrap();
    hegpu_ok(&["mnist", "keys", "--dir", d]);
    hegpu_ok(&[
        "mnist", "encrypt", "--dir", d, "--images", images, "--batch", "10",
    ]);
}

fn serve(dir: &Path, model: &Path) -> (bool, String, String) {
    run(&[
        "mnist",
        "serve",
        "--dir",
        dir.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--device",
        "cpu",
    ])
}

fn decrypt(dir: &Path, model: &Path) -> (bool, String, String) {
    run(&[
        "mnist",
        "decrypt",
        "--dir",
        dir.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ])
}

#[test]
fn the_secret_key_file_is_new_and_owner_only() {
    let dir = fresh_dir("secret");
    let d = dir.to_str().unwrap();
    hegpu_ok(&["mnist", "keys", "--dir", d]);
    let secret = std::fs::read(dir.join("secret.key")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("secret.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    // A second run never writes over the key (nor anything else).
    let params = std::fs::read(dir.join("params.bin")).unwrap();
    let (ok, _, err) = run(&["mnist", "keys", "--dir", d]);
    assert!(
        !ok && err.contains("secret.key") && err.contains("already exists"),
        "{err}"
    );
    assert_eq!(std::fs::read(dir.join("secret.key")).unwrap(), secret);
    assert_eq!(std::fs::read(dir.join("params.bin")).unwrap(), params);
    std::fs::remove_dir_all(&dir).unwrap();
    // A link planted where the key goes is not followed.
    #[cfg(unix)]
    {
        let planted = fresh_dir("planted");
        std::fs::create_dir_all(&planted).unwrap();
        let target = planted.join("attacker-readable");
        std::os::unix::fs::symlink(&target, planted.join("secret.key")).unwrap();
        let (ok, _, err) = run(&["mnist", "keys", "--dir", planted.to_str().unwrap()]);
        assert!(!ok, "{err}");
        assert!(!target.exists(), "the key was written through the link");
        std::fs::remove_dir_all(planted).unwrap();
    }
}

/// A link planted for each public file of the split job (in a directory others can write):
/// the step that writes the file refuses it by name and the link's target keeps its bytes;
/// with the link gone the step goes on.
#[cfg(unix)]
#[test]
fn planted_links_are_refused_never_written_through() {
    let model = small_model_file("links");
    let dir = fresh_dir("links");
    let victims = fresh_dir("victims");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&victims).unwrap();
    let d = dir.to_str().unwrap().to_string();
    let keys = ["mnist", "keys", "--dir", &d];
    let encrypt = [
        "mnist", "encrypt", "--dir", &d, "--images", "10", "--batch", "10",
    ];
    let m = model.to_str().unwrap();
    let serve = [
        "mnist", "serve", "--dir", &d, "--model", m, "--device", "cpu",
    ];
    let steps: [(&str, &[&str]); 5] = [
        ("params.bin", &keys),
        ("evaluation-keys.bin", &keys),
        ("batch-000.ct", &encrypt),
        ("batches.txt", &encrypt),
        ("result-000.ct", &serve),
    ];
    for (name, step) in steps {
        let victim = victims.join(name);
        std::fs::write(&victim, b"the victim's bytes").unwrap();
        let link = dir.join(name);
        let _ = std::fs::remove_file(&link); // made by an earlier round
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let (ok, out, err) = run(step);
        assert!(!ok, "{name}: {out}");
        assert!(
            err.contains(name) && err.contains("symbolic link"),
            "{name}: {err}"
        );
        assert_eq!(
            std::fs::read(&victim).unwrap(),
            b"the victim's bytes",
            "{name}"
        );
        // (serve removes a result it could not write itself: the link, not its target)
        let _ = std::fs::remove_file(&link);
        if name == "evaluation-keys.bin" {
            // The first round made the keys; make them again.
            std::fs::remove_file(dir.join("secret.key")).unwrap();
        }
        hegpu_ok(step);
        assert!(
            std::fs::symlink_metadata(&link).unwrap().is_file(),
            "{name}"
        );
    }
    let (ok, out, err) = decrypt(&dir, &model);
    assert!(ok, "{out}{err}");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&victims).unwrap();
    std::fs::remove_file(&model).unwrap();
}

#[test]
fn a_bad_batch_is_reported_and_the_others_are_evaluated_and_scored() {
    let model = small_model_file("goes-on");
    let dir = fresh_dir("goes-on");
    client(&dir, "20");
    // One flipped bit in the first batch.
    let path = dir.join("batch-000.ct");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x04;
    std::fs::write(&path, bytes).unwrap();
    let (ok, out, err) = serve(&dir, &model);
    assert!(!ok, "{out}");
    assert!(out.contains("evaluated 1 batch(es)"), "{out}");
    assert!(
        err.contains("batch-000.ct") && err.contains("checksum"),
        "{err}"
    );
    assert!(err.contains("1 batch failed"), "{err}");
    assert!(!dir.join("result-000.ct").exists() && dir.join("result-001.ct").exists());
    let (ok, out, err) = decrypt(&dir, &model);
    assert!(!ok);
    assert!(out.contains("of 10 images"), "{out}");
    assert_agrees_with_plaintext(&out, 10);
    assert!(err.contains("result-000.ct"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_file(model).unwrap();
}

#[test]
fn swapped_stale_and_foreign_files_are_named() {
    let model = small_model_file("mixups");
    let dir = fresh_dir("mixups");
    client(&dir, "20");
    let (ok, out, err) = serve(&dir, &model);
    assert!(ok, "{out}{err}");
    // Two results swapped: each names what it holds.
    let (r0, r1) = (dir.join("result-000.ct"), dir.join("result-001.ct"));
    let (b0, b1) = (std::fs::read(&r0).unwrap(), std::fs::read(&r1).unwrap());
    std::fs::write(&r0, &b1).unwrap();
    std::fs::write(&r1, &b0).unwrap();
    let (ok, out, err) = decrypt(&dir, &model);
    assert!(!ok && out.contains("of 0 images"), "{out}");
    assert!(
        err.contains("result-000.ct: holds the result of batch 1 (images 10..20)"),
        "{err}"
    );
    assert!(err.contains("result-001.ct"), "{err}");
    std::fs::write(&r0, &b0).unwrap();
    std::fs::write(&r1, &b1).unwrap();
    // Another client's first batch put in its place: the result the server made before is
    // stale, and the server refuses the batch against its evaluation keys.
    let other = fresh_dir("mixups-other");
    client(&other, "10");
    std::fs::copy(other.join("batch-000.ct"), dir.join("batch-000.ct")).unwrap();
    let (ok, out, err) = decrypt(&dir, &model);
    assert!(!ok && out.contains("of 10 images"), "{out}");
    assert!(err.contains("another version of batch 0"), "{err}");
    let (ok, _, err) = serve(&dir, &model);
    assert!(!ok, "{err}");
    assert!(
        err.contains("batch-000.ct: is encrypted under key set")
            && err.contains("the evaluation keys belong to key set"),
        "{err}"
    );
    // Another client's secret key: every result is refused, none is scored as noise.
    std::fs::copy(other.join("secret.key"), dir.join("secret.key")).unwrap();
    let (ok, out, err) = decrypt(&dir, &model);
    assert!(!ok && out.contains("of 0 images"), "{out}");
    assert!(
        err.contains("result-001.ct") && err.contains("key set"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(other).unwrap();
    std::fs::remove_file(model).unwrap();
}

/// The split steps in the latency packing: each step plans the model; requests of two
/// images per ciphertext decrypt to the plaintext model's outputs; a request laid out for
/// another plan, a batch server given requests and a step without the model are each refused
/// with the reason.
#[test]
fn the_latency_packing_runs_in_separate_steps() {
    let model = small_model_file("latency-steps");
    let dir = fresh_dir("latency-steps");
    let (d, m) = (dir.to_str().unwrap(), model.to_str().unwrap());
    let latency = [
        "--packing",
        "latency",
        "--per-ciphertext",
        "2",
        "--model",
        m,
    ];
    let step = |first: &[&str], rest: &[&str]| run(&[first, rest].concat());
    let (ok, _, err) = step(&["mnist", "keys", "--dir", d, "--packing", "latency"], &[]);
    assert!(
        !ok && err.contains("give every step the server's --model"),
        "{err}"
    );
    assert!(!dir.join("secret.key").exists());
    let (ok, out, err) = step(&["mnist", "keys", "--dir", d], &latency);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = step(&["mnist", "encrypt", "--dir", d, "--images", "5"], &latency);
    assert!(ok, "{out}{err}");
    // Five images, two per request: three requests.
    assert_eq!(
        std::fs::read_to_string(dir.join("batches.txt")).unwrap(),
        "0 2\n2 4\n4 5\n"
    );
    let serve = ["mnist", "serve", "--dir", d, "--device", "cpu"];
    let (ok, out, err) = step(&serve, &latency);
    assert!(ok, "{out}{err}");
    assert!(out.contains("evaluated 3 batch(es)"), "{out}");
    let (ok, out, err) = step(&["mnist", "decrypt", "--dir", d], &latency);
    assert!(ok, "{out}{err}");
    assert!(out.contains("of 5 images"), "{out}");
    assert_agrees_with_plaintext(&out, 5);
    // A server planning one image per ciphertext: another layout, refused by its fingerprint.
    let one = ["--packing", "latency", "--model", m];
    let (ok, _, err) = step(&serve, &one);
    assert!(!ok, "{err}");
    assert!(
        err.contains("batch-000.ct: was laid out for another latency plan"),
        "{err}"
    );
    // A batch-packing server: the files say what they hold.
    let (ok, _, err) = step(&serve, &["--model", m]);
    assert!(!ok, "{err}");
    assert!(
        err.contains("holds the latency request 0 (images 0..2), expected the encrypted images"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_file(model).unwrap();
}

#[test]
fn the_report_counts_the_gpu_work_done_before_a_loss() {
    // Resident on the GPU (no memory limit), lost after 3 dispatches: the batch completes on
    // the CPU and the report still shows the 3 dispatches.
    let model = small_model_file("lost-resident");
    let json =
        std::env::temp_dir().join(format!("hegpu-lost-resident-{}.json", std::process::id()));
    let args = [
        "mnist",
        "--images",
        "10",
        "--packing",
        "batch",
        "--device",
        "gpu",
        "--model",
        model.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ];
    let o = hegpu_with(&args, &[("HEGPU_SIMULATE_DEVICE_LOSS", "3")]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{out}{err}");
    assert_agrees_with_plaintext(&out, 10);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["modes"][0], "cpu");
    let stages = report["stages"].as_array().unwrap();
    let dispatches: u64 = stages
        .iter()
        .map(|s| s["dispatches"].as_u64().unwrap())
        .sum();
    assert!(dispatches >= 3, "{stages:?}");
    std::fs::remove_file(json).unwrap();
    std::fs::remove_file(model).unwrap();
}

/// The latency packing on the GPU through the scheduler, as the batch packing runs: `--profile`
/// prints the kernel table and the per-stage table, and a GPU lost in the middle of the first
/// request leaves the answers to the CPU, the same digits.
#[test]
fn latency_requests_are_profiled_and_survive_a_gpu_loss() {
    if common::gpu().is_none() {
        return;
    }
    let model = small_model_file("latency-gpu");
    let args = [
        "mnist",
        "--images",
        "3",
        "--packing",
        "latency",
        "--device",
        "gpu",
        "--model",
        model.to_str().unwrap(),
        "--profile",
    ];
    let text = hegpu_ok(&args);
    assert_agrees_with_plaintext(&text, 3);
    assert!(
        text.contains("GPU time per kernel") || text.contains("no GPU timestamps"),
        "{text}"
    );
    if text.contains("GPU time per kernel") {
        assert!(text.contains("diagonal 2→1"), "{text}");
    }
    let o = hegpu_with(&args, &[("HEGPU_SIMULATE_DEVICE_LOSS", "20")]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("GPU fallback:") && text.contains("lost"),
        "{text}"
    );
    assert_agrees_with_plaintext(&text, 3);
    std::fs::remove_file(model).unwrap();
}

#[test]
fn every_command_has_help_and_unknown_options_name_the_valid_ones() {
    for args in [
        &["--help"][..],
        &["mnist", "--help"],
        &["mnist", "keys", "--help"],
        &["mnist", "encrypt", "--help"],
        &["mnist", "serve", "--help"],
        &["mnist", "decrypt", "--help"],
        &["info", "--help"],
        &["bench", "--help"],
        &["train", "--help"],
        &["he-bench", "--help"],
        &["help", "mnist"],
    ] {
        let text = hegpu_ok(args);
        assert!(text.contains("Usage: hegpu"), "{args:?}: {text}");
    }
    let mnist = hegpu_ok(&["mnist", "--help"]);
    for step in [
        "keys", "encrypt", "serve", "decrypt", "--images", "--device",
    ] {
        assert!(mnist.contains(step), "{mnist}");
    }
    let (ok, _, err) = run(&["mnist", "serve", "--dir", "x", "--modle", "m"]);
    assert!(!ok && err.starts_with("hegpu: "), "{err}");
    assert!(
        err.contains("'hegpu mnist serve' takes: --dir, --model"),
        "{err}"
    );
    let (ok, _, err) = run(&["mnist", "--imgaes", "3"]);
    assert!(!ok && err.contains("--images"), "{err}");
}
