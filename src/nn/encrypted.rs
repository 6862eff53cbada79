//! The encrypted forward pass in the CryptoNets layout: one ciphertext per activation, slot i
//! of every ciphertext belonging to image i. Consecutive linear layers (padding, convolution,
//! pooling, flattening, dense) are composed into one sparse map and run as one batched backend
//! call for all outputs; each x² is one batched square, relinearization and rescale.
//!
//! Planning fixes every scale in advance: a linear step multiplies by integer weights
//! `round(w · Δ_w)` with `Δ_w` chosen so that after its rescale the scale is back at the
//! target; the last step's target leaves room in q_0 for the largest output. A model that needs
//! more levels, or outputs that would not fit, fail at planning with a clear error.

use super::model::{Layer, LinearRow, Model};
use crate::backend::SparseRows;
use crate::ckks::{Encoder, Encryptor, Parameters};
use crate::tensor::{CipherTensor, LayerPlan, LinearWork, ScheduleReport, Scheduler, Work};
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A model prepared for encrypted evaluation with one parameter set: its stages as layer
/// work that a [`Scheduler`] places on devices.
pub struct EncryptedNetwork {
    params: Arc<Parameters>,
    plan: LayerPlan,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
    input_scale: f64,
}

/// Composes `second ∘ first` (both as sparse rows with constants).
fn compose(first: &[LinearRow], second: &[LinearRow]) -> Vec<LinearRow> {
    second
        .iter()
        .map(|(b2, terms2)| {
            let mut bias = f64::from(*b2);
            let mut acc: BTreeMap<usize, f64> = BTreeMap::new();
            for &(i, w) in terms2 {
                let (b1, terms1) = &first[i];
                bias += f64::from(w) * f64::from(*b1);
                for &(k, v) in terms1 {
                    *acc.entry(k).or_insert(0.0) += f64::from(w) * f64::from(v);
                }
            }
            let terms = acc
                .into_iter()
                .filter(|(_, w)| *w != 0.0)
                .map(|(k, w)| (k, w as f32))
                .collect();
            (bias as f32, terms)
        })
        .collect()
}

/// `y_i = w · x_i + b` for each of `width` values.
fn elementwise(width: usize, w: f32, b: f32) -> Vec<LinearRow> {
    (0..width).map(|i| (b, vec![(i, w)])).collect()
}

/// The model as alternating linear maps and squares. A polynomial activation
/// `a·x² + b·x + c` becomes `a·(x + b/2a)² + (c − b²/4a)`: the shift joins the linear map
/// before it and the affine part the one after, so it costs one square like `x²` does (with
/// `a = 0` it is linear).
fn stages(model: &Model) -> Result<Vec<Option<Vec<LinearRow>>>> {
    let shapes = model.shapes()?;
    let mut out: Vec<Option<Vec<LinearRow>>> = Vec::new();
    let mut pending: Option<Vec<LinearRow>> = None;
    let then = |pending: Option<Vec<LinearRow>>, rows: Vec<LinearRow>| match pending {
        Some(prev) => compose(&prev, &rows),
        None => rows,
    };
    for (i, (layer, shape)) in model.layers.iter().zip(&shapes).enumerate() {
        let width: usize = shape.iter().product();
        match *layer {
            Layer::Square => {
                if let Some(rows) = pending.take() {
                    out.push(Some(rows));
                }
                out.push(None);
            }
            Layer::Poly { a, b, c } => {
                if ![a, b, c].iter().all(|v| v.is_finite()) {
                    return Err(Error::Config(format!(
                        "layer {i}: activation coefficients {a}, {b}, {c} are not finite"
                    )));
                }
                if a == 0.0 {
                    pending = Some(then(pending.take(), elementwise(width, b, c)));
                    continue;
                }
                let shift = b / (2.0 * a);
                out.push(Some(then(pending.take(), elementwise(width, 1.0, shift))));
                out.push(None);
                pending = Some(elementwise(width, a, c - b * shift / 2.0));
            }
            _ => {
                let rows = layer.linear_terms(shape)?.expect("linear layer");
                pending = Some(then(pending.take(), rows));
            }
        }
    }
    if let Some(rows) = pending {
        out.push(Some(rows));
    }
    Ok(out)
}

/// Largest |activation| after every stage over `images` (plaintext), for planning.
pub fn stage_bounds(model: &Model, images: &[f32]) -> Result<Vec<f32>> {
    let stages = stages(model)?;
    let len = model.input_len();
    let mut bounds = vec![0.0f32; stages.len()];
    for img in images.chunks(len) {
        let mut x = img.to_vec();
        for (s, stage) in stages.iter().enumerate() {
            x = match stage {
                Some(rows) => rows
                    .iter()
                    .map(|(b, t)| b + t.iter().map(|&(k, w)| w * x[k]).sum::<f32>())
                    .collect(),
                None => x.iter().map(|v| v * v).collect(),
            };
            let m = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            bounds[s] = bounds[s].max(m);
        }
    }
    Ok(bounds)
}

impl EncryptedNetwork {
    /// Plans `model` for `params`. `bounds` (from [`stage_bounds`] on sample inputs) are the
    /// largest activations expected after each stage; they are doubled for margin. Inputs are
    /// encrypted at the parameters' default scale.
    pub fn plan(model: &Model, params: &Arc<Parameters>, bounds: &[f32]) -> Result<Self> {
        let stages = stages(model)?;
        if stages.len() != bounds.len() {
            return Err(Error::Config(format!(
                "{} activation bounds for {} stages",
                bounds.len(),
                stages.len()
            )));
        }
        let needed = stages.len();
        if needed > params.max_level() {
            return Err(Error::Config(format!(
                "the model needs {needed} rescalings but the parameters have {} levels",
                params.max_level()
            )));
        }
        let delta = params.default_scale();
        let q = params.q_primes();
        let mut level = params.max_level();
        let mut scale = delta;
        let mut width = model.input_len();
        let mut steps: Vec<Work> = Vec::with_capacity(needed);
        for (s, stage) in stages.iter().enumerate() {
            let bound = 2.0 * f64::from(bounds[s].max(1e-3));
            let q_here = f64::from(q[level]);
            // Bits of the modulus left after this stage's rescale.
            let remaining: f64 = q[..level].iter().map(|&p| f64::from(p).log2()).sum();
            // The scale after the rescale: the default, except that the last step leaves the
            // largest output a factor 2 inside the remaining modulus' half.
            let after = match stage {
                Some(_) if s + 1 == stages.len() => delta.min(2f64.powf(remaining) / (4.0 * bound)),
                Some(_) => delta,
                None => scale * scale / q_here,
            };
            if (after * bound).log2() + 1.0 > remaining {
                return Err(Error::Config(format!(
                    "stage {s}: values up to {bound:.3e} at scale 2^{:.1} need {:.1} bits, level {} has {remaining:.1}",
                    after.log2(),
                    (after * bound).log2() + 1.0,
                    level - 1
                )));
            }
            match stage {
                Some(rows) => {
                    let weight_scale = after * q_here / scale;
                    steps.push(Work::Linear(Self::linear_work(
                        params,
                        level,
                        rows,
                        width,
                        weight_scale,
                        scale,
                    )?));
                    width = rows.len();
                }
                // A square right after a linear map runs with it, chunk by chunk.
                None => match steps.last_mut() {
                    Some(Work::Linear(w)) if !w.square => w.square = true,
                    _ => steps.push(Work::Square),
                },
            }
            scale = after;
            level -= 1;
        }
        Ok(Self {
            params: params.clone(),
            plan: LayerPlan::new(steps),
            input_shape: model.input.clone(),
            output_shape: model.shapes()?.pop().expect("the input shape at least"),
            input_scale: delta,
        })
    }

    /// A linear stage's rows as residues over the level's primes taken twice (each ciphertext
    /// is one polynomial of that ring); the bias is the constant plaintext
    /// `round(b · Δ_w · s_in)` in the first half.
    fn linear_work(
        params: &Arc<Parameters>,
        level: usize,
        rows: &[LinearRow],
        inputs: usize,
        weight_scale: f64,
        scale_in: f64,
    ) -> Result<LinearWork> {
        let primes = params.ring_q(level)?.primes();
        let int_of = |v: f64| -> Result<i64> {
            if !v.is_finite() || v.abs() >= 2f64.powi(62) {
                return Err(Error::Config(format!(
                    "weight {v:e} does not fit an integer"
                )));
            }
            Ok(v.round() as i64)
        };
        let residues = |k: i64| {
            primes
                .iter()
                .map(move |&p| k.rem_euclid(i64::from(p)) as u32)
        };
        let mut w = SparseRows {
            offsets: vec![0],
            ..Default::default()
        };
        for (bias, terms) in rows {
            for &(k, v) in terms {
                let word = int_of(f64::from(v) * weight_scale)?;
                w.columns.push(k);
                w.words.extend(residues(word).chain(residues(word)));
            }
            w.offsets.push(w.columns.len());
            let constant = int_of(f64::from(*bias) * weight_scale * scale_in)?;
            w.bias.extend(residues(constant).chain(residues(0)));
        }
        Ok(LinearWork {
            rows: w,
            inputs,
            level,
            weight_scale,
            square: false,
        })
    }

    /// The shapes of an input and of an output tensor.
    pub fn shape(&self) -> (&[usize], &[usize]) {
        (&self.input_shape, &self.output_shape)
    }

    /// The scale inputs must be encrypted at.
    pub fn input_scale(&self) -> f64 {
        self.input_scale
    }

    /// The stages as layer work.
    pub fn layer_plan(&self) -> &LayerPlan {
        &self.plan
    }

    /// Evaluates the network on a tensor of the input shape at the top level, returning a
    /// tensor of the output shape on the host. Only public material is involved; `scheduler`
    /// places the work. The input is consumed.
    pub fn forward(&self, scheduler: &Scheduler, x: CipherTensor) -> Result<CipherTensor> {
        Ok(self.forward_report(scheduler, x)?.0)
    }

    /// [`forward`](Self::forward), with where each stage ran and what it moved.
    pub fn forward_report(
        &self,
        scheduler: &Scheduler,
        x: CipherTensor,
    ) -> Result<(CipherTensor, ScheduleReport)> {
        if x.shape() != self.input_shape.as_slice() || x.level() != self.params.max_level() {
            return Err(Error::Shape(format!(
                "the network takes a tensor of shape {:?} at level {}, got {:?} at level {}",
                self.input_shape,
                self.params.max_level(),
                x.shape(),
                x.level()
            )));
        }
        let x = x.into_ciphertexts();
        self.params.check_id(x.params_id(), "input ciphertext")?;
        let (y, report) = scheduler.run(&self.plan, x)?;
        Ok((CipherTensor::new(y, &self.output_shape)?, report))
    }
}

/// Client side: encrypts up to N/2 images (`[image][input]`) for `network`, in the shape and at
/// the scale its plan expects.
pub fn encrypt_images(
    network: &EncryptedNetwork,
    encoder: &Encoder,
    encryptor: &Encryptor,
    images: &[f32],
) -> Result<CipherTensor> {
    CipherTensor::encrypt(
        images,
        &network.input_shape,
        encoder,
        encryptor,
        network.input_scale,
    )
}
