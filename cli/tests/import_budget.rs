//! `hegpu import`'s budget: a model of two dense layers on digit images (784 → 2048 → 2048,
//! from a 265-byte ONNX file whose weights ConstantOfShape makes; tests/onnx_import.rs pins the
//! fixture to the builder) is refused before any pass, with errors that say what fits.

use hegpu::nn::WeightType;
use hegpu_cli::job::{ImportOptions, run_import};
use std::path::Path;

#[test]
fn an_import_beyond_its_budget_is_refused_before_any_pass() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let dir = std::env::temp_dir().join(format!("hegpu-heavy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let options = |calibration| ImportOptions {
        onnx: root.join("tests/fixtures/onnx/heavy-2.onnx"),
        out: dir.join("heavy.safetensors"),
        approx: vec![],
        data: root.join("data/mnist"),
        calibration,
        weights: WeightType::F32,
    };
    let started = std::time::Instant::now();
    // Calibrating on 1,000 images exceeds the import's budget; the error says how many fit,
    // and nothing is evaluated first.
    let e = run_import(&options(1000)).unwrap_err().to_string();
    assert!(
        e.contains("fitting the polynomials on 1000 calibration images costs 5799936000")
            && e.contains("calibrate on at most 92 images"),
        "{e}"
    );
    // Within that budget, composing the two layers (no activation between) into the one map
    // the encrypted pass applies would take 2^31.6 multiply-adds: refused before planning
    // (it took 125 s).
    let e = run_import(&options(92)).unwrap_err().to_string();
    assert!(
        e.contains("layer 1 (dense) follows a linear map")
            && e.contains("3288334336 multiply-adds, above the limit of 33554432"),
        "{e}"
    );
    assert!(
        started.elapsed().as_secs_f64() < 5.0,
        "{:?}",
        started.elapsed()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
