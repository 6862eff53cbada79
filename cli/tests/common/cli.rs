//! Running the `hegpu` binary from the tests.

use std::process::Command;

pub fn hegpu(args: &[&str]) -> std::process::Output {
    hegpu_with(args, &[])
}

pub fn hegpu_with(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hegpu"))
        .args(args)
        .envs(env.iter().copied())
        // The repository's root, where the tests' relative paths (models/, data/) start.
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap()
}

/// Asserts that `hegpu args` fails with a one-line `hegpu: ` error.
pub fn assert_refused(args: &[&str]) {
    let o = hegpu(args);
    assert!(!o.status.success(), "{args:?} succeeded");
    assert!(
        String::from_utf8_lossy(&o.stderr).starts_with("hegpu: "),
        "{args:?}"
    );
}

/// Runs `hegpu args`, asserts that it succeeded and returns what it printed.
pub fn hegpu_ok(args: &[&str]) -> String {
    let o = hegpu(args);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{args:?}: {text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    text
}

/// A small CryptoNets-shaped model (1 map, 4 hidden) in a temporary file: the job's code path
/// at a fraction of the shipped model's cost (`tests/encrypted_nn.rs` runs the shipped one).
pub fn small_model_file(tag: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("hegpu-{tag}-{}.safetensors", std::process::id()));
    let mut m = hegpu::nn::cryptonets(1, 4);
    hegpu::nn::initialize(&mut m, 3).unwrap();
    hegpu::nn::save_model(&m, &path, hegpu::nn::WeightType::F32).unwrap();
    path
}

/// Asserts what `hegpu mnist` (or `mnist decrypt`) printed about `images` images against the
/// plaintext model: every decrypted logit within 4/1000 of the largest plaintext logit, and
/// argmax agreement on every image but the near ties (top two plaintext logits within twice
/// the error). The small test model is untrained, so its logits can nearly tie; CKKS noise
/// differs from run to run, so exact agreement on those would be luck.
pub fn assert_agrees_with_plaintext(text: &str, images: usize) {
    let after = |label: &str| {
        let line = text.lines().find_map(|l| l.strip_prefix(label));
        line.unwrap_or_else(|| panic!("no {label:?} in {text}"))
            .trim()
    };
    let agree: f64 = after("agrees with plaintext:")
        .trim_end_matches('%')
        .parse()
        .unwrap();
    // "5.46e-4 at most (plaintext logits up to 5.55e-1; 2 near ties)"
    let errors = after("logit error:");
    let words: Vec<&str> = errors
        .split([' ', '(', ';'])
        .filter(|w| !w.is_empty())
        .collect();
    let (error, largest, ties): (f64, f64, f64) = (
        words[0].parse().unwrap(),
        words[7].parse().unwrap(),
        words[8].parse().unwrap(),
    );
    assert!(largest > 0.0 && error < 4e-3 * largest, "{text}");
    let at_least = 100.0 * (images as f64 - ties) / images as f64;
    assert!(agree >= at_least - 0.005, "{text}");
}
