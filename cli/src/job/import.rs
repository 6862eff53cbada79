//! `hegpu import`: an ONNX model to a hegpu model file, its non-polynomial activations
//! replaced by polynomials fitted on calibration images. It reports:
//! - the plaintext accuracy before and after the replacement on the MNIST test digits (for
//!   digit models), before anything is encrypted;
//! - the levels the encrypted pass needs and the smallest preset that holds them.

use hegpu::data::Mnist;
use hegpu::nn::{
    Activation, ApproxSpec, AvgPool, Conv2d, Dataset, Dense, EncryptedNetwork, Layer, Model, Poly,
    Polynomial, Replaced, WeightType, accuracy, approximate, import_onnx_file, levels_needed,
    pixels, save_model,
};
use hegpu::pair::DIGIT_PIXELS;
use hegpu::{Error, Result};
use std::path::PathBuf;

/// What to import and how.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    pub onnx: PathBuf,
    pub out: PathBuf,
    /// How to replace each non-polynomial activation.
    pub approx: Vec<ApproxSpec>,
    /// The MNIST directory: training images calibrate, test digits measure accuracy.
    pub data: PathBuf,
    /// Training images that calibrate the ranges and the plan.
    pub calibration: usize,
    pub weights: WeightType,
}

/// What the import found and did.
#[derive(Clone, Debug, Default)]
pub struct ImportReport {
    /// Each layer's kind and output shape, in order.
    pub layers: Vec<String>,
    /// Changes on the way (folded batch normalizations, a dropped softmax).
    pub notes: Vec<String>,
    pub replaced: Vec<Replaced>,
    /// Test digits the accuracies were measured on (0: the model does not classify digits).
    pub test_images: usize,
    /// The imported model's plaintext accuracy.
    pub accuracy_imported: Option<f32>,
    /// The model written, in plaintext (after the replacements).
    pub accuracy_written: Option<f32>,
    /// Activations still without a polynomial (the model runs in plaintext only), each once.
    pub unreplaced: Vec<Activation>,
    /// Levels the encrypted pass needs, when it can run.
    pub levels: Option<usize>,
    /// The smallest preset that holds the model, or why none does.
    pub preset: Option<std::result::Result<String, String>>,
}

/// Plaintext operations the import may spend on passes over images: a quarter on fitting
/// the polynomials ([`Model::work`] per calibration image), a quarter on bounding the plan's
/// stages (their linear maps' terms per calibration image), half on the accuracy report (two
/// passes per test digit). About 20 s on one core of a 2-core machine (measured 2026-12-06:
/// 1.1·10^8 operations per second); the shipped-size models need a tenth of it.
pub const IMPORT_WORK: u64 = 1 << 31;

/// An error when `calibration` images at `work` operations each do not fit a quarter of
/// [`IMPORT_WORK`], naming the total, the limit and how many images fit.
fn calibration_within_budget(what: &str, work: u64, calibration: usize) -> Result<()> {
    let quarter = IMPORT_WORK / 4;
    let total = work.saturating_mul(calibration as u64);
    if total > quarter {
        return Err(Error::Config(format!(
            "{what} on {calibration} calibration images costs {total} plaintext operations \
             ({work} per image), above the import's budget of {quarter}; calibrate on at most \
             {} images (--calibration)",
            quarter / work.max(1)
        )));
    }
    Ok(())
}

/// Imports, approximates, checks and writes the model.
pub fn run_import(opts: &ImportOptions) -> Result<ImportReport> {
    let imported = import_onnx_file(&opts.onnx)?;
    let mnist = Mnist::load(&opts.data)?;
    let model = imported.model;
    let digits = model.input_len() == DIGIT_PIXELS && model.shapes()?.last() == Some(&vec![10]);
    if model.input_len() != DIGIT_PIXELS {
        return Err(Error::Config(format!(
            "the model takes {:?}; calibration uses MNIST images (784 values)",
            model.input
        )));
    }
    let work = model.work()? as u64;
    let calibrating = opts.calibration.clamp(1, mnist.train_labels.len());
    calibration_within_budget("fitting the polynomials", work, calibrating)?;
    let tests = (if digits { mnist.test_labels.len() } else { 0 })
        .min((IMPORT_WORK / 2 / (2 * work).max(1)) as usize);
    let calibration = pixels(&mnist.train_images)[..DIGIT_PIXELS * calibrating].to_vec();
    let test_px = pixels(&mnist.test_images);
    let test = Dataset {
        images: &test_px[..DIGIT_PIXELS * tests],
        labels: &mnist.test_labels[..tests],
        shape: model.input.clone(),
    };
    let mut report = ImportReport {
        notes: imported.notes,
        test_images: tests,
        ..Default::default()
    };
    if digits && tests < mnist.test_labels.len() {
        report.notes.push(format!(
            "accuracy measured on the first {tests} of {} test digits (the import's budget of \
             plaintext operations)",
            mnist.test_labels.len()
        ));
    }
    if tests > 0 {
        report.accuracy_imported = Some(accuracy(&model, &test)?);
    }
    let has_functions = model.layers.iter().any(|l| l.smooth().is_some());
    let written: Model = if has_functions && !opts.approx.is_empty() {
        let (approximated, replaced) = approximate(&model, &calibration, &opts.approx)?;
        report.replaced = replaced;
        approximated
    } else {
        model
    };
    for layer in &written.layers {
        if let Some(f) = layer.smooth()
            && !report.unreplaced.contains(&f)
        {
            report.unreplaced.push(f);
        }
    }
    if tests > 0 {
        report.accuracy_written = Some(accuracy(&written, &test)?);
    }
    if report.unreplaced.is_empty() {
        report.levels = Some(levels_needed(&written)?);
        let stage_work = hegpu::nn::stage_work(&written)? as u64;
        calibration_within_budget("bounding the plan's stages", stage_work, calibrating)?;
        let bounds = hegpu::nn::Bounds::measure(&written, &calibration)?;
        report.preset = Some(
            EncryptedNetwork::plan_smallest(&written, &bounds)
                .map(|(p, n)| format!("{} cut to {} levels", p.name(), n.params().max_level()))
                .map_err(|e| e.to_string()),
        );
    }
    let shapes = written.shapes()?;
    report.layers = written
        .layers
        .iter()
        .zip(&shapes[1..])
        .map(|(l, s)| format!("{} → {s:?}", describe(l)))
        .collect();
    if let Some(dir) = opts.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?;
    }
    save_model(&written, &opts.out, opts.weights)?;
    Ok(report)
}

/// A layer in a few words.
fn describe(layer: &Layer) -> String {
    match layer {
        Layer::Conv2d(Conv2d {
            out_channels,
            kernel,
            stride,
            padding,
            ..
        }) => format!("conv {kernel}×{kernel}×{out_channels} stride {stride} pad {padding}"),
        Layer::Dense(Dense {
            inputs, outputs, ..
        }) => format!("dense {inputs}→{outputs}"),
        Layer::Poly(Poly { a, b, c }) => format!("{a}·x² + {b}·x + {c}"),
        Layer::Polynomial(Polynomial {
            range,
            coefficients,
        }) => format!(
            "polynomial of degree {} on [-{range}, {range}]",
            coefficients.len().saturating_sub(1)
        ),
        Layer::AvgPool(AvgPool { window, stride }) => {
            format!("avg pool {window}×{window} stride {stride}")
        }
        other => other.kind().replace('_', " "),
    }
}
