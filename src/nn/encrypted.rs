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
use super::chain::{plan_on_cut_chain, plan_on_smallest_chain};
use super::layer::LinearRow;
use super::model::Model;
use super::stages::{Stage, levels_needed, stages};
use crate::circuits::{InputForm, LinearWork, PowersWork, Then};
use crate::ckks::{Encoder, Encryptor, Parameters, Preset};
use crate::tensor::{CipherTensor, LayerPlan, ScheduleReport, Scheduler, Work};
use crate::{Error, PlanError, Result};
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

impl EncryptedNetwork {
    /// Plans `model` with the smallest preset (N = 2^13, 2^14, 2^15; all 128-bit secure) that
    /// holds its levels and its values at `bounds` (see [`plan`](Self::plan)), its ciphertext
    /// chain cut to the fewest levels the plan fits ([`Preset::literal_with_levels`]: the
    /// levels the network does not use would cost every stage, key and ciphertext limbs); an
    /// error says how many levels it needs when no preset holds it.
    pub fn plan_smallest(model: &Model, bounds: &Bounds) -> Result<(Preset, Self)> {
        let needed = levels_needed(model)?;
        plan_on_smallest_chain(needed, |params| Self::plan(model, params, bounds)).map_err(
            |refusals| {
                PlanError::NoPreset {
                    packing: "",
                    refusals: format!("it needs {needed} levels; {}", refusals.join("; ")),
                }
                .into()
            },
        )
    }

    /// Plans `model` on `preset`'s chain cut to the fewest levels the plan fits (see
    /// [`plan_smallest`](Self::plan_smallest)).
    pub fn plan_cut(model: &Model, preset: Preset, bounds: &Bounds) -> Result<Self> {
        let needed = levels_needed(model)?;
        plan_on_cut_chain(preset, needed, &mut |params| {
            Self::plan(model, params, bounds)
        })
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
            return Err(PlanError::Calibration(format!(
                "{} activation bounds for {} stages",
                bounds.len(),
                stages.len()
            ))
            .into());
        }
        let needed = levels_needed(model)?;
        if needed > params.max_level() {
            return Err(PlanError::TooFewLevels {
                plan: "the model".into(),
                needed,
                chain: "the parameters' chain".into(),
                have: params.max_level(),
            }
            .into());
        }
        let mut plan = Planning {
            params,
            q: params.q_primes(),
            level: params.max_level(),
            scale: params.default_scale(),
            width: model.input_len(),
            steps: Vec::with_capacity(needed),
            input: InputForm::Relinearized,
            power_factors: vec![1.0],
        };
        for (s, stage) in stages.iter().enumerate() {
            let bound = 2.0 * f64::from(bounds[s].max(1e-3));
            match stage {
                Stage::Linear(rows) => plan.linear(s, rows, bound, s + 1 == stages.len())?,
                &Stage::Powers(degree) => plan.powers(s, degree, bound)?,
                Stage::Square => {
                    let next_is_linear = matches!(stages.get(s + 1), Some(Stage::Linear(_)));
                    plan.square(s, bound, next_is_linear)?;
                }
                Stage::Polynomial(_) => {
                    return Err(Error::Internal(
                        "the batch plan weighs powers in its linear maps (use stages())".into(),
                    ));
                }
            }
        }
        Ok(Self {
            params: params.clone(),
            plan: LayerPlan::new(plan.steps),
            input_shape: model.input.clone(),
            output_shape: model.shapes()?.pop().expect("the input shape at least"),
            input_scale: params.default_scale(),
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

/// A batch plan under way: where the values stand after the stages planned so far.
struct Planning<'a> {
    params: &'a Arc<Parameters>,
    q: &'a [u32],
    level: usize,
    scale: f64,
    width: usize,
    steps: Vec<Work>,
    /// Three polynomials, not rescaled, after a lazy square or powers.
    input: InputForm,
    /// The previous stage made powers: each power's weights are multiplied by its factor.
    power_factors: Vec<f64>,
}

/// Bits of the modulus of `primes`.
fn bits(primes: &[u32]) -> f64 {
    primes.iter().map(|&p| f64::from(p).log2()).sum()
}

fn too_large(s: usize, bound: f64, scale: f64, have: f64, level: usize) -> Error {
    PlanError::Overflow {
        stage: format!("stage {s}"),
        bound,
        log_scale: scale.log2(),
        need_bits: (scale * bound).log2() + 1.0,
        level,
        have_bits: have,
    }
    .into()
}

impl Planning<'_> {
    /// Stage `s`, a linear map with outputs up to `bound` (`last`: the network's output).
    fn linear(&mut self, s: usize, rows: &[LinearRow], bound: f64, last: bool) -> Result<()> {
        let (q, level) = (self.q, self.level);
        let rescales = self.input.rescales();
        let divided = &q[level + 1 - rescales..=level];
        // Bits of the modulus left after this stage's rescales.
        let remaining = bits(&q[..level + 1 - rescales]);
        // The scale after the rescales: the default, except that the last step leaves the
        // largest output a factor 2 inside the remaining modulus' half.
        let delta = self.params.default_scale();
        let after = if last {
            delta.min(2f64.powf(remaining) / (4.0 * bound))
        } else {
            delta
        };
        if (after * bound).log2() + 1.0 > remaining {
            return Err(too_large(s, bound, after, remaining, level - rescales));
        }
        let q_here: f64 = divided.iter().map(|&p| f64::from(p)).product();
        let weight_scale = after * q_here / self.scale;
        self.steps.push(Work::Linear(LinearWork::encode(
            self.params,
            (level, self.width, self.input),
            rows,
            (weight_scale, &self.power_factors),
            self.scale,
        )?));
        self.width = rows.len();
        self.scale = after;
        self.level -= rescales;
        self.input = InputForm::Relinearized;
        self.power_factors = vec![1.0];
        Ok(())
    }

    /// Stage `s`: the powers 1 to `degree` of each value, up to `bound`.
    fn powers(&mut self, s: usize, degree: usize, bound: f64) -> Result<()> {
        let trace = PowersWork::trace(degree, self.level, self.scale, self.q);
        // Labelled with u^d's scale (a leaf's: about the square of the others').
        let labelled = trace.last().expect("degree at least 2").scale;
        let last = self.level - PowersWork::depth(degree);
        let have = bits(&self.q[..=last]);
        if (labelled * bound).log2() + 1.0 > have {
            return Err(too_large(s, bound, labelled, have, last));
        }
        self.power_factors = trace.iter().map(|p| labelled / p.scale).collect();
        self.steps.push(Work::Powers(PowersWork {
            inputs: self.width,
            level: self.level,
            degree,
            scale: labelled,
        }));
        self.width *= degree;
        self.scale = labelled;
        self.level = last;
        self.input = InputForm::Lazy;
        Ok(())
    }

    /// Stage `s`: a square of values up to `bound`, lazy when a linear map follows the linear
    /// map before it.
    fn square(&mut self, s: usize, bound: f64, next_is_linear: bool) -> Result<()> {
        let (q, level, scale) = (self.q, self.level, self.scale);
        let after_linear =
            matches!(self.steps.last(), Some(Work::Linear(w)) if w.then == Then::Nothing);
        if after_linear && next_is_linear {
            // Lazy: the square stays as it is (scale², this level) and the next linear map
            // relinearizes and rescales its outputs only.
            let after = scale * scale;
            let have = bits(&q[..=level]);
            if (after * bound).log2() + 1.0 > have {
                return Err(too_large(s, bound, after, have, level));
            }
            if let Some(Work::Linear(w)) = self.steps.last_mut() {
                w.then = Then::LazySquare;
            }
            self.scale = after;
            self.input = InputForm::Lazy;
            return Ok(());
        }
        let remaining = bits(&q[..level]);
        let after = scale * scale / f64::from(q[level]);
        if (after * bound).log2() + 1.0 > remaining {
            return Err(too_large(s, bound, after, remaining, level - 1));
        }
        // A square right after a linear map runs with it, chunk by chunk.
        match self.steps.last_mut() {
            Some(Work::Linear(w)) if w.then == Then::Nothing => w.then = Then::Square,
            _ => self.steps.push(Work::Square),
        }
        self.scale = after;
        self.level -= 1;
        Ok(())
    }
}
