//! The encrypted forward pass in the CryptoNets layout: one ciphertext per activation, slot i
//! of every ciphertext belonging to image i. Consecutive linear layers (padding, convolution,
//! pooling, flattening, dense) are composed into one sparse map and run as one batched backend
//! call for all outputs; each x² is one batched square, relinearization and rescale.
//!
//! Planning fixes every scale in advance: a linear step multiplies by integer weights
//! `round(w · Δ_w)` with `Δ_w` chosen so that after its rescale the scale is back at the
//! target; the last step's target leaves room in q_0 for the largest output. A model that needs
//! more levels, or outputs that would not fit, fail at planning with a clear error.

use super::bounds::{Bounds, InputRange};
use super::model::{Layer, LinearRow, Model, limits};
use crate::circuits::{InputForm, LinearWork, PowersWork, Then};
use crate::ckks::{Encoder, Encryptor, Parameters, Preset};
use crate::tensor::{CipherTensor, LayerPlan, ScheduleReport, Scheduler, Work};
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
    /// The inputs' range on the calibration images.
    input_range: InputRange,
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

/// Multiply-adds [`compose`] takes: for each term of `second`, the terms of the row of
/// `first` it reads.
fn composition_cost(first: &[LinearRow], second: &[LinearRow]) -> usize {
    second
        .iter()
        .flat_map(|(_, terms)| terms)
        .map(|&(i, _)| first.get(i).map_or(0, |(_, t)| t.len()))
        .fold(0usize, usize::saturating_add)
}

/// `y_i = w · x_i + b` for each of `width` values.
fn elementwise(width: usize, w: f32, b: f32) -> Vec<LinearRow> {
    (0..width).map(|i| (b, vec![(i, w)])).collect()
}

/// One stage of the encrypted pass.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Stage {
    /// A composed linear map.
    Linear(Vec<LinearRow>),
    /// x² of every value.
    Square,
    /// u¹ … u^d of every value, value-major (value k's u^i at k·d + i − 1); the polynomial's
    /// coefficients are in the linear map after it.
    Powers(usize),
    /// `Σ_{p ≥ 1} c_p · u^p` of every value, `coefficients` being c_1 … c_d (only from
    /// [`stages_with_polynomials`]; c_0 is in the linear map after it).
    Polynomial(Vec<f32>),
}

/// The model as linear maps between activations. A quadratic activation `a·x² + b·x + c`
/// becomes `a·(x + b/2a)² + (c − b²/4a)`: the shift joins the linear map before it and the
/// affine part the one after, so it costs one square like `x²` does (with `a = 0` it is
/// linear). A polynomial of degree d ≥ 3 in `u = x / range` becomes the map `x / range`, the
/// powers u¹ … u^d, and a map that weighs them with the coefficients (joined with the next
/// linear layer). Non-polynomial activations are refused.
pub(crate) fn stages(model: &Model) -> Result<Vec<Stage>> {
    stages_of(model, false)
}

/// [`stages`], with each polynomial of degree d ≥ 3 kept whole: the map `x / range`, then
/// [`Stage::Polynomial`], then the next linear map with c_0 composed into it. For a packing
/// whose linear maps cannot weigh d inputs per value for free (the latency packing).
pub(crate) fn stages_with_polynomials(model: &Model) -> Result<Vec<Stage>> {
    stages_of(model, true)
}

fn stages_of(model: &Model, whole_polynomials: bool) -> Result<Vec<Stage>> {
    let shapes = model.shapes()?;
    let mut out: Vec<Stage> = Vec::new();
    let mut pending: Option<Vec<LinearRow>> = None;
    // Multiply-adds of composing adjacent linear layers, bounded by limits::COMPOSITION.
    let mut composed = 0usize;
    let then = |pending: Option<Vec<LinearRow>>, rows: Vec<LinearRow>| match pending {
        Some(prev) => compose(&prev, &rows),
        None => rows,
    };
    // a·x² + b·x + c (finite: Model::shapes has checked the coefficients).
    let quadratic = |out: &mut Vec<Stage>,
                     pending: &mut Option<Vec<LinearRow>>,
                     width,
                     (a, b, c): (f32, f32, f32)| {
        if a == 0.0 {
            *pending = Some(then(pending.take(), elementwise(width, b, c)));
            return;
        }
        let shift = b / (2.0 * a);
        // Without a shift, a square straight after the input needs no map before it.
        let before = match (pending.take(), shift) {
            (None, 0.0) => None,
            (Some(rows), 0.0) => Some(rows),
            (rows, _) => Some(then(rows, elementwise(width, 1.0, shift))),
        };
        out.extend(before.map(Stage::Linear));
        out.push(Stage::Square);
        let constant = c - b * shift / 2.0;
        if (a, constant) != (1.0, 0.0) {
            *pending = Some(elementwise(width, a, constant));
        }
    };
    for (i, (layer, shape)) in model.layers.iter().zip(&shapes).enumerate() {
        let width: usize = shape.iter().product();
        match layer {
            Layer::Square => quadratic(&mut out, &mut pending, width, (1.0, 0.0, 0.0)),
            &Layer::Poly { a, b, c } => quadratic(&mut out, &mut pending, width, (a, b, c)),
            Layer::Polynomial {
                range,
                coefficients,
            } => {
                let degree = coefficients.iter().rposition(|&c| c != 0.0).unwrap_or(0);
                // The coefficients of x (not u) up to degree 2.
                let of_x = |i: usize| {
                    coefficients.get(i).map_or(0.0, |&c| {
                        (f64::from(c) / f64::from(*range).powi(i as i32)) as f32
                    })
                };
                if degree <= 2 {
                    quadratic(&mut out, &mut pending, width, (of_x(2), of_x(1), of_x(0)));
                    continue;
                }
                out.push(Stage::Linear(then(
                    pending.take(),
                    elementwise(width, 1.0 / range, 0.0),
                )));
                if whole_polynomials {
                    out.push(Stage::Polynomial(coefficients[1..=degree].to_vec()));
                    pending = Some(elementwise(width, 1.0, coefficients[0]));
                    continue;
                }
                out.push(Stage::Powers(degree));
                pending = Some(
                    (0..width)
                        .map(|k| {
                            let terms = (1..=degree)
                                .filter(|&p| coefficients[p] != 0.0)
                                .map(|p| (k * degree + p - 1, coefficients[p]))
                                .collect();
                            (coefficients[0], terms)
                        })
                        .collect(),
                );
            }
            Layer::Activation(f) => {
                return Err(Error::Config(format!(
                    "layer {i} is {}: the encrypted pass computes polynomials only; replace it \
                     with an approximation first (hegpu import --approx {}:DEGREE)",
                    f.name(),
                    f.name()
                )));
            }
            _ => {
                let rows = layer.linear_terms(shape)?.expect("linear layer");
                composed = composed
                    .saturating_add(pending.as_ref().map_or(0, |p| composition_cost(p, &rows)));
                if composed > limits::COMPOSITION {
                    return Err(Error::Config(format!(
                        "layer {i} ({}) follows a linear map with no activation between: \
                         composing the linear layers so far takes {composed} multiply-adds, \
                         above the limit of {}",
                        layer.kind(),
                        limits::COMPOSITION
                    )));
                }
                pending = Some(then(pending.take(), rows));
            }
        }
    }
    if let Some(rows) = pending {
        out.push(Stage::Linear(rows));
    }
    let terms = linear_terms(&out);
    if terms > limits::WORK {
        return Err(Error::Config(format!(
            "the encrypted pass's linear maps hold {terms} terms per image (adjacent linear \
             layers composed), above the model's limit of {}",
            limits::WORK
        )));
    }
    Ok(out)
}

/// Weighted terms and constants of the linear stages.
fn linear_terms(stages: &[Stage]) -> usize {
    stages
        .iter()
        .map(|s| match s {
            Stage::Linear(rows) => rows.iter().map(|(_, t)| t.len() + 1).sum(),
            _ => 0,
        })
        .sum()
}

/// Plaintext operations of one image through the encrypted pass's stages (what
/// [`Bounds::measure`] spends per calibration image): the terms of the linear maps, the
/// composed ones included, and for every square or power basis its values.
pub fn stage_work(model: &Model) -> Result<usize> {
    let stages = stages(model)?;
    let mut width = model.input_len();
    let mut work = 0;
    for stage in &stages {
        work += match stage {
            Stage::Linear(rows) => {
                width = rows.len();
                0
            }
            Stage::Square => width,
            Stage::Powers(d) => width * d,
            Stage::Polynomial(c) => width * c.len(),
        };
    }
    Ok(work + linear_terms(&stages))
}

/// Every stage applied to one image's values.
pub(crate) fn run_stages(stages: &[Stage], image: &[f32], mut each: impl FnMut(usize, &[f32])) {
    let mut x = image.to_vec();
    for (s, stage) in stages.iter().enumerate() {
        x = match stage {
            Stage::Linear(rows) => rows
                .iter()
                .map(|(b, t)| b + t.iter().map(|&(k, w)| w * x[k]).sum::<f32>())
                .collect(),
            Stage::Square => x.iter().map(|v| v * v).collect(),
            &Stage::Powers(d) => x
                .iter()
                .flat_map(|&v| (1..=d as i32).map(move |p| v.powi(p)))
                .collect(),
            Stage::Polynomial(c) => x.iter().map(|&v| polynomial(c, v)).collect(),
        };
        each(s, &x);
    }
}

/// `Σ_{p ≥ 1} c_p · v^p` (`c`: c_1 … c_d).
pub(crate) fn polynomial(c: &[f32], v: f32) -> f32 {
    c.iter().rev().fold(0.0, |acc, &cp| (acc + cp) * v)
}

/// Levels the encrypted pass of `model` uses: one per linear map and per square, ⌈log2 d⌉ per
/// polynomial of degree d ≥ 3 (its powers, the top ones left unrelinearized and unrescaled,
/// take ⌈log2 d⌉ − 1; the next linear map rescales twice; the coefficients ride on its
/// weights).
pub fn levels_needed(model: &Model) -> Result<usize> {
    Ok(stages(model)?.iter().map(stage_levels).sum())
}

/// Levels one stage takes (see [`levels_needed`]); a whole polynomial of degree d takes
/// ⌈log2 d⌉ + 1: its powers, and a sparse map that weighs them into one value.
pub(crate) fn stage_levels(stage: &Stage) -> usize {
    match stage {
        Stage::Linear(_) | Stage::Square => 1,
        Stage::Powers(d) => d.next_power_of_two().trailing_zeros() as usize,
        Stage::Polynomial(c) => c.len().next_power_of_two().trailing_zeros() as usize + 1,
    }
}

impl EncryptedNetwork {
    /// Plans `model` with the smallest preset (N = 2^13, 2^14, 2^15; all 128-bit secure) that
    /// holds its levels and its values at `bounds` (see [`plan`](Self::plan)); an error says
    /// how many levels it needs when none does.
    pub fn plan_smallest(model: &Model, bounds: &Bounds) -> Result<(Preset, Self)> {
        let needed = levels_needed(model)?;
        let mut refusals = Vec::new();
        for preset in Preset::ALL {
            let levels = preset.literal().q_bits.len() - 1;
            if levels < needed {
                refusals.push(format!("{} has {levels} levels", preset.name()));
                continue;
            }
            let params = Parameters::preset(preset)?;
            match Self::plan(model, &params, bounds) {
                Ok(network) => return Ok((preset, network)),
                Err(e) => refusals.push(format!("{}: {e}", preset.name())),
            }
        }
        Err(Error::Config(format!(
            "no parameter preset holds the model, which needs {needed} levels ({})",
            refusals.join("; ")
        )))
    }

    /// The parameters the network was planned for.
    pub fn params(&self) -> &Arc<Parameters> {
        &self.params
    }

    /// Plans `model` for `params`. `bounds` (from [`Bounds::measure`] on sample inputs) hold
    /// the largest activations expected after each stage, doubled here for margin, and the
    /// range of the inputs, which [`encrypt_images`] holds the client to. Inputs are encrypted
    /// at the parameters' default scale.
    pub fn plan(model: &Model, params: &Arc<Parameters>, bounds: &Bounds) -> Result<Self> {
        let (input_range, bounds) = (bounds.input, &bounds.stages[..]);
        let stages = stages(model)?;
        if stages.len() != bounds.len() {
            return Err(Error::Config(format!(
                "{} activation bounds for {} stages",
                bounds.len(),
                stages.len()
            )));
        }
        let needed = levels_needed(model)?;
        if needed > params.max_level() {
            return Err(Error::Config(format!(
                "the model needs {needed} levels but the parameters have {}",
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
        // Three polynomials, not rescaled, after a lazy square or powers.
        let mut input = InputForm::Relinearized;
        // The previous stage made powers: each power's weights are multiplied by its factor.
        let mut power_factors: Vec<f64> = vec![1.0];
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
                Stage::Linear(rows) => {
                    let rescales = input.rescales();
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
                    steps.push(Work::Linear(LinearWork::encode(
                        params,
                        (level, width, input),
                        rows,
                        (weight_scale, &power_factors),
                        scale,
                    )?));
                    width = rows.len();
                    scale = after;
                    level -= rescales;
                    input = InputForm::Relinearized;
                    power_factors = vec![1.0];
                }
                &Stage::Powers(degree) => {
                    let trace = PowersWork::trace(degree, level, scale, q);
                    // Labelled with u^d's scale (a leaf's: about the square of the others').
                    let labelled = trace.last().expect("degree at least 2").scale;
                    let last = level - PowersWork::depth(degree);
                    let have = bits(&q[..=last]);
                    if (labelled * bound).log2() + 1.0 > have {
                        return Err(too_large(s, bound, labelled, have, last));
                    }
                    power_factors = trace.iter().map(|p| labelled / p.scale).collect();
                    steps.push(Work::Powers(PowersWork {
                        inputs: width,
                        level,
                        degree,
                        scale: labelled,
                    }));
                    width *= degree;
                    scale = labelled;
                    level = last;
                    input = InputForm::Lazy;
                }
                Stage::Square => {
                    let after_linear =
                        matches!(steps.last(), Some(Work::Linear(w)) if w.then == Then::Nothing);
                    if after_linear && matches!(stages.get(s + 1), Some(Stage::Linear(_))) {
                        // Lazy: the square stays as it is (scale², this level) and the next
                        // linear map relinearizes and rescales its outputs only.
                        let after = scale * scale;
                        let have = bits(&q[..=level]);
                        if (after * bound).log2() + 1.0 > have {
                            return Err(too_large(s, bound, after, have, level));
                        }
                        if let Some(Work::Linear(w)) = steps.last_mut() {
                            w.then = Then::LazySquare;
                        }
                        scale = after;
                        input = InputForm::Lazy;
                        continue;
                    }
                    let remaining = bits(&q[..level]);
                    let after = scale * scale / f64::from(q[level]);
                    if (after * bound).log2() + 1.0 > remaining {
                        return Err(too_large(s, bound, after, remaining, level - 1));
                    }
                    // A square right after a linear map runs with it, chunk by chunk.
                    match steps.last_mut() {
                        Some(Work::Linear(w)) if w.then == Then::Nothing => w.then = Then::Square,
                        _ => steps.push(Work::Square),
                    }
                    scale = after;
                    level -= 1;
                }
                Stage::Polynomial(_) => {
                    return Err(Error::Config(
                        "the batch plan weighs powers in its linear maps (use stages())".into(),
                    ));
                }
            }
        }
        Ok(Self {
            params: params.clone(),
            plan: LayerPlan::new(steps),
            input_shape: model.input.clone(),
            output_shape: model.shapes()?.pop().expect("the input shape at least"),
            input_scale: delta,
            input_range,
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

    /// The range of inputs the plan was calibrated for: [`encrypt_images`] refuses others.
    pub fn input_range(&self) -> InputRange {
        self.input_range
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
/// the scale its plan expects; an input outside the plan's [`input_range`] is an error
/// (clamp with [`InputRange::clamp`] first to go on).
///
/// [`input_range`]: EncryptedNetwork::input_range
pub fn encrypt_images(
    network: &EncryptedNetwork,
    encoder: &Encoder,
    encryptor: &Encryptor,
    images: &[f32],
) -> Result<CipherTensor> {
    let per_image = network.input_shape.iter().product();
    network.input_range.check(images, per_image)?;
    CipherTensor::encrypt(
        images,
        &network.input_shape,
        encoder,
        encryptor,
        network.input_scale,
    )
}

/// [`encrypt_images`] straight to the bytes the server reads
/// ([`CipherTensor::encrypt_to_bytes`]).
pub fn encrypt_images_to_bytes(
    network: &EncryptedNetwork,
    encoder: &Encoder,
    encryptor: &Encryptor,
    images: &[f32],
) -> Result<Vec<u8>> {
    let per_image = network.input_shape.iter().product();
    network.input_range.check(images, per_image)?;
    CipherTensor::encrypt_to_bytes(
        images,
        &network.input_shape,
        encoder,
        encryptor,
        network.input_scale,
    )
}
