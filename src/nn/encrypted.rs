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
use crate::math::Modulus;
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
pub(crate) fn stages(model: &Model) -> Result<Vec<Option<Vec<LinearRow>>>> {
    let shapes = model.shapes()?;
    let mut out: Vec<Option<Vec<LinearRow>>> = Vec::new();
    let mut pending: Option<Vec<LinearRow>> = None;
    let then = |pending: Option<Vec<LinearRow>>, rows: Vec<LinearRow>| match pending {
        Some(prev) => compose(&prev, &rows),
        None => rows,
    };
    for (layer, shape) in model.layers.iter().zip(&shapes) {
        let width: usize = shape.iter().product();
        match *layer {
            Layer::Square => {
                if let Some(rows) = pending.take() {
                    out.push(Some(rows));
                }
                out.push(None);
            }
            // Model::shapes (above) has checked that the coefficients are finite.
            Layer::Poly { a, b, c } => {
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
        let bits = |primes: &[u32]| -> f64 { primes.iter().map(|&p| f64::from(p).log2()).sum() };
        let mut level = params.max_level();
        let mut scale = delta;
        let mut width = model.input_len();
        let mut steps: Vec<Work> = Vec::with_capacity(needed);
        // The previous stage left a lazy square: three polynomials, not rescaled.
        let mut lazy_input = false;
        let too_large = |s: usize, bound: f64, scale: f64, have: f64, level: usize| {
            Error::Config(format!(
                "stage {s}: values up to {bound:.3e} at scale 2^{:.1} need {:.1} bits, level {level} has {have:.1}",
                scale.log2(),
                (scale * bound).log2() + 1.0,
            ))
        };
        for (s, stage) in stages.iter().enumerate() {
            let bound = 2.0 * f64::from(bounds[s].max(1e-3));
            match stage {
                Some(rows) => {
                    let rescales = if lazy_input { 2 } else { 1 };
                    let divided = &q[level + 1 - rescales..=level];
                    // Bits of the modulus left after this stage's rescales.
                    let remaining = bits(&q[..level + 1 - rescales]);
                    // The scale after the rescales: the default, except that the last step
                    // leaves the largest output a factor 2 inside the remaining modulus' half.
                    let after = if s + 1 == stages.len() {
                        delta.min(2f64.powf(remaining) / (4.0 * bound))
                    } else {
                        delta
                    };
                    if (after * bound).log2() + 1.0 > remaining {
                        return Err(too_large(s, bound, after, remaining, level - rescales));
                    }
                    let q_here: f64 = divided.iter().map(|&p| f64::from(p)).product();
                    let weight_scale = after * q_here / scale;
                    let shape = (width, if lazy_input { 3 } else { 2 }, rescales);
                    steps.push(Work::Linear(Self::linear_work(
                        params,
                        level,
                        rows,
                        shape,
                        weight_scale,
                        scale,
                    )?));
                    width = rows.len();
                    scale = after;
                    level -= rescales;
                    lazy_input = false;
                }
                None => {
                    let after_linear = matches!(steps.last(), Some(Work::Linear(w)) if !w.square);
                    if after_linear && matches!(stages.get(s + 1), Some(Some(_))) {
                        // Lazy: the square stays as it is (scale², this level) and the next
                        // linear map relinearizes and rescales its outputs only.
                        let after = scale * scale;
                        let have = bits(&q[..=level]);
                        if (after * bound).log2() + 1.0 > have {
                            return Err(too_large(s, bound, after, have, level));
                        }
                        if let Some(Work::Linear(w)) = steps.last_mut() {
                            (w.square, w.lazy) = (true, true);
                        }
                        scale = after;
                        lazy_input = true;
                        continue;
                    }
                    let remaining = bits(&q[..level]);
                    let after = scale * scale / f64::from(q[level]);
                    if (after * bound).log2() + 1.0 > remaining {
                        return Err(too_large(s, bound, after, remaining, level - 1));
                    }
                    // A square right after a linear map runs with it, chunk by chunk.
                    match steps.last_mut() {
                        Some(Work::Linear(w)) if !w.square => w.square = true,
                        _ => steps.push(Work::Square),
                    }
                    scale = after;
                    level -= 1;
                }
            }
        }
        Ok(Self {
            params: params.clone(),
            plan: LayerPlan::new(steps),
            input_shape: model.input.clone(),
            output_shape: model.shapes()?.pop().expect("the input shape at least"),
            input_scale: delta,
        })
    }

    /// A linear stage's rows as residues over the level's primes taken `input_size` times (each
    /// ciphertext is one polynomial of that ring); the bias is the constant plaintext
    /// `round(b · Δ_w · s_in)` in the first part. `shape` is (inputs, input_size, rescales).
    fn linear_work(
        params: &Arc<Parameters>,
        level: usize,
        rows: &[LinearRow],
        (inputs, input_size, rescales): (usize, usize, usize),
        weight_scale: f64,
        scale_in: f64,
    ) -> Result<LinearWork> {
        let ring = params.ring_q(level)?;
        // The residues of round(v) (which can pass 2^64: a lazy square's bias is at about
        // 2^72), repeated for the input's polynomials after the first when `all`, else zeros.
        let residues = |v: f64, all: bool| -> Result<Vec<u32>> {
            let first: Vec<u32> = (0..ring.limbs())
                .map(|l| integer_residue(v.round(), &ring.modulus(l)))
                .collect::<Option<_>>()
                .ok_or_else(|| Error::Config(format!("weight {v:e} is not a finite number")))?;
            let rest = if all {
                first.clone()
            } else {
                vec![0; first.len()]
            };
            let mut out = first;
            for _ in 1..input_size {
                out.extend(&rest);
            }
            Ok(out)
        };
        let mut w = SparseRows {
            offsets: vec![0],
            ..Default::default()
        };
        for (bias, terms) in rows {
            for &(k, v) in terms {
                w.columns.push(k);
                w.words.extend(residues(f64::from(v) * weight_scale, true)?);
            }
            w.offsets.push(w.columns.len());
            w.bias
                .extend(residues(f64::from(*bias) * weight_scale * scale_in, false)?);
        }
        Ok(LinearWork {
            rows: w,
            inputs,
            level,
            input_size,
            weight_scale,
            rescales,
            square: false,
            lazy: false,
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

/// `v mod p` for an integer-valued `v` of any magnitude (None when not finite): an f64 is
/// exactly `± m · 2^e` with an integer `m < 2^53`.
fn integer_residue(v: f64, p: &Modulus) -> Option<u32> {
    if !v.is_finite() {
        return None;
    }
    let (m, e, sign) = num_traits::Float::integer_decode(v);
    // A negative exponent only shifts out zero bits: `v` is an integer.
    let r = if e < 0 {
        p.reduce_u64(m.checked_shr(e.unsigned_abs().into()).unwrap_or(0))
    } else {
        p.mul(p.reduce_u64(m), p.pow(2, e as u64))
    };
    Some(if sign < 0 { p.neg(r) } else { r })
}

#[cfg(test)]
mod tests {
    use super::integer_residue;
    use crate::math::Modulus;

    #[test]
    fn residues_of_large_integers_match_exact_arithmetic() {
        let p = 1_073_479_681u32; // a 30-bit prime
        let modulus = Modulus::new(p).unwrap();
        for &v in &[
            0.0,
            1.0,
            -1.0,
            12345.0,
            -(2f64.powi(52)) - 3.0,
            2f64.powi(72) * 1.5,
            -3.0 * 2f64.powi(70),
        ] {
            let exact = {
                // v is m · 2^e exactly: u128 arithmetic as the oracle.
                let (m, e) = if v.abs() < 2f64.powi(64) {
                    (v.abs() as u128, 0)
                } else {
                    ((v.abs() / 2f64.powi(60)) as u128, 60)
                };
                let r = ((m % u128::from(p)) * ((1u128 << e) % u128::from(p))) % u128::from(p);
                if v < 0.0 && r != 0 {
                    u128::from(p) - r
                } else {
                    r
                }
            };
            assert_eq!(integer_residue(v, &modulus), Some(exact as u32), "{v}");
        }
        assert_eq!(integer_residue(f64::NAN, &modulus), None);
        assert_eq!(integer_residue(f64::INFINITY, &modulus), None);
    }
}
