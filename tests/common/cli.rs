//! Running the `hegpu` binary from the tests.

use std::process::Command;

pub fn hegpu(args: &[&str]) -> std::process::Output {
    hegpu_with(args, &[])
}

pub fn hegpu_with(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hegpu"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
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
