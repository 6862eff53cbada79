//! The latency packing (LoLa-style): one image in the slots of its own ciphertexts, so one
//! image costs a few dozen key switches instead of a whole batch.
//!
//! The client lays an image out for the first linear stage (LoLa's convolution representation:
//! the k-th pixel of every convolution window in block k, so the convolution is a few
//! plaintext products; or the image repeated, for a dense first layer). The server evaluates
//! each linear stage as plaintext diagonals times rotations of its input (hoisted baby steps,
//! giant steps on sums, a fold of partial sums), each square as one ciphertext product, and
//! the client reads the outputs from the slots the plan names. Several images go through as a
//! batch of ciphertexts, one image each. See `scheme.rs` for the layouts.
//!
//! Every stage is planned on the model's own composed linear maps (the same as the batch
//! packing's), so a model the batch packing runs also runs here unless a layout does not fit
//! the slots; then planning fails with the stage and the reason.

mod diagonal;
mod layout;
mod scheme;

pub use diagonal::SlotLinear;
pub use layout::Layout;

use super::encrypted::stages;
use super::model::Model;
use crate::backend::Backend;
use crate::ckks::{Ciphertext, Decryptor, Encoder, Encryptor, Evaluator, Parameters, Plaintext};
use crate::{Error, Result};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Calibration images simulated in slots to bound every slot's values (partial sums included).
const CALIBRATION_IMAGES: usize = 64;

/// One step of the plan.
#[derive(Clone, Debug)]
enum Step {
    Linear(SlotLinear),
    Square,
}

/// A model planned for the latency packing with one parameter set.
#[derive(Clone, Debug)]
pub struct LatencyNetwork {
    params: Arc<Parameters>,
    /// The client's ciphertexts for one image.
    inputs: Vec<Layout>,
    steps: Vec<Step>,
    /// The level each step starts at.
    levels: Vec<usize>,
    /// Each linear step's diagonals are encoded at `q_level · correction` (1 but for the last,
    /// which lowers the scale so that the outputs fit q_0).
    corrections: Vec<f64>,
    /// The slot of each output in the result.
    outputs: Vec<usize>,
    input_len: usize,
}

/// Counts that say what one evaluation costs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyCost {
    /// Ciphertexts the client sends per image.
    pub input_ciphertexts: usize,
    /// Key switches per image: rotations and relinearizations.
    pub key_switches: usize,
    /// Plaintext–ciphertext products per image.
    pub plaintext_products: usize,
    /// Rotation steps the Galois keys must cover.
    pub rotations: usize,
    /// Levels the plan uses.
    pub levels: usize,
}

impl LatencyNetwork {
    /// Plans `model` for `params`. `calibration` holds sample inputs (public data, e.g.
    /// training images) that bound the values every slot takes, for the scales.
    pub fn plan(model: &Model, params: &Arc<Parameters>, calibration: &[f32]) -> Result<Self> {
        let stages = stages(model)?;
        let (slots, input_len) = (params.slots(), model.input_len());
        if stages.len() > params.max_level() {
            return Err(Error::Config(format!(
                "the latency packing needs {} levels (one per linear stage and per square) but \
                 the parameters have {}",
                stages.len(),
                params.max_level()
            )));
        }
        let Some(Some(first)) = stages.first() else {
            return Err(Error::Config(
                "the latency packing needs a linear layer before the first activation".into(),
            ));
        };
        let cannot = |s: usize, rows: usize, inputs: usize| {
            Error::Config(format!(
                "the latency packing cannot lay out stage {s} ({rows} outputs from {inputs} \
                 inputs) in {slots} slots"
            ))
        };
        let (inputs, lin) = scheme::first_stage(first, input_len, slots)?
            .into_iter()
            .min_by(|a, b| scheme::cost(&a.1, a.0.len()).total_cmp(&scheme::cost(&b.1, b.0.len())))
            .ok_or_else(|| cannot(0, first.len(), input_len))?;
        let mut layout = lin.output.clone();
        let mut width = first.len();
        let mut steps = vec![Step::Linear(lin)];
        for (s, stage) in stages.iter().enumerate().skip(1) {
            let Some(rows) = stage else {
                steps.push(Step::Square);
                continue;
            };
            let lin = scheme::next_stage(rows, &layout, width)?
                .into_iter()
                .min_by(|a, b| scheme::cost(a, 0).total_cmp(&scheme::cost(b, 0)))
                .ok_or_else(|| cannot(s, rows.len(), width))?;
            layout = lin.output.clone();
            width = rows.len();
            steps.push(Step::Linear(lin));
        }
        let outputs = layout.homes(width)?;
        let mut net = Self {
            params: params.clone(),
            inputs,
            levels: vec![0; steps.len()],
            corrections: vec![1.0; steps.len()],
            steps,
            outputs,
            input_len,
        };
        net.fit_scales(calibration)?;
        Ok(net)
    }

    /// Walks the levels and scales with the largest slot values of the calibration images:
    /// every value must fit its level's modulus, and the last linear step lowers the scale so
    /// that the outputs fit q_0 with a factor 2 to spare (as the batch packing does).
    fn fit_scales(&mut self, calibration: &[f32]) -> Result<()> {
        let images = calibration
            .chunks_exact(self.input_len)
            .take(CALIBRATION_IMAGES);
        let mut peaks = vec![1e-3f64; self.steps.len()];
        for image in images {
            self.run_plain(image, |i, peak| peaks[i] = peaks[i].max(peak));
        }
        let q = self.params.q_primes();
        let bits = |level: usize| -> f64 { q[..=level].iter().map(|&p| f64::from(p).log2()).sum() };
        let last_linear = self
            .steps
            .iter()
            .rposition(|s| matches!(s, Step::Linear(_)))
            .expect("the first step is linear");
        let (mut level, mut scale) = (self.params.max_level(), self.params.default_scale());
        for (i, step) in self.steps.iter().enumerate() {
            self.levels[i] = level;
            let bound = 2.0 * peaks[i];
            let have = bits(level - 1);
            let after = match step {
                Step::Linear(_) if i == last_linear => {
                    let after = scale.min(2f64.powf(have) / (4.0 * bound));
                    self.corrections[i] = after / scale;
                    after
                }
                Step::Linear(_) => scale,
                Step::Square => scale * scale / f64::from(q[level]),
            };
            if (after * bound).log2() + 1.0 > have {
                return Err(Error::Config(format!(
                    "latency step {i}: values up to {bound:.3e} at scale 2^{:.1} need {:.1} bits, \
                     level {} has {have:.1}",
                    after.log2(),
                    (after * bound).log2() + 1.0,
                    level - 1
                )));
            }
            level -= 1;
            scale = after;
        }
        Ok(())
    }

    /// The plan on plaintext slot vectors for one image; `peak(step, largest |slot|)` after
    /// each step. Returns the last slot vector.
    fn run_plain(&self, image: &[f32], mut peak: impl FnMut(usize, f64)) -> Vec<f64> {
        let mut xs: Vec<Vec<f64>> = self.inputs.iter().map(|l| l.fill(image)).collect();
        for (i, step) in self.steps.iter().enumerate() {
            let y = match step {
                Step::Linear(lin) => {
                    let (y, p) = lin.apply_plain(&xs);
                    peak(i, p);
                    y
                }
                Step::Square => {
                    let y: Vec<f64> = xs[0].iter().map(|v| v * v).collect();
                    peak(i, y.iter().fold(0.0, |m, v| m.max(v.abs())));
                    y
                }
            };
            xs = vec![y];
        }
        xs.pop().expect("one vector")
    }

    /// The plan evaluated on plaintext slots (no encryption, no noise): the model's outputs
    /// for `image` as the encrypted evaluation lays them out and reads them. The oracle that
    /// checks the layouts.
    pub fn simulate(&self, image: &[f32]) -> Result<Vec<f64>> {
        self.check_images(image)?;
        let y = self.run_plain(image, |_, _| {});
        Ok(self.outputs.iter().map(|&t| y[t]).collect())
    }

    /// Rotation steps the server needs Galois keys for (generate them with
    /// [`KeyGenerator::galois_keys`](crate::ckks::KeyGenerator::galois_keys)).
    pub fn rotations(&self) -> Vec<i64> {
        let mut all = BTreeSet::new();
        for step in &self.steps {
            if let Step::Linear(lin) = step {
                all.extend(lin.rotations());
            }
        }
        all.into_iter().collect()
    }

    /// What one image costs.
    pub fn cost(&self) -> LatencyCost {
        let (mut key_switches, mut plaintext_products) = (0, 0);
        for step in &self.steps {
            match step {
                Step::Linear(lin) => {
                    key_switches += lin.key_switches();
                    plaintext_products += lin.products();
                }
                Step::Square => key_switches += 1,
            }
        }
        LatencyCost {
            input_ciphertexts: self.inputs.len(),
            key_switches,
            plaintext_products,
            rotations: self.rotations().len(),
            levels: self.steps.len(),
        }
    }

    /// The scale inputs are encrypted at.
    pub fn input_scale(&self) -> f64 {
        self.params.default_scale()
    }

    fn check_images(&self, images: &[f32]) -> Result<usize> {
        if images.is_empty() || !images.len().is_multiple_of(self.input_len) {
            return Err(Error::Shape(format!(
                "{} values are not whole images of {}",
                images.len(),
                self.input_len
            )));
        }
        if let Some(v) = images.iter().find(|v| !v.is_finite()) {
            return Err(Error::Encoding(format!("input value {v} is not finite")));
        }
        Ok(images.len() / self.input_len)
    }

    /// Client side: encrypts `images` (`[image][input]`) into one batch of ciphertexts: the
    /// plan's input ciphertexts for every image, input-major.
    pub fn encrypt(
        &self,
        encoder: &Encoder,
        encryptor: &Encryptor,
        images: &[f32],
    ) -> Result<Ciphertext> {
        self.check_images(images)?;
        let vectors: Vec<Vec<f64>> = self
            .inputs
            .iter()
            .flat_map(|layout| {
                images
                    .chunks_exact(self.input_len)
                    .map(move |image| layout.fill(image))
            })
            .collect();
        let backend = encryptor.backend();
        let pt = encoder.encode_many(
            &vectors,
            self.params.max_level(),
            self.input_scale(),
            &**backend,
        )?;
        encryptor.encrypt(&pt)
    }

    /// Server side: encodes the diagonals on `evaluator`'s device, once per model.
    pub fn prepare(&self, evaluator: &Evaluator) -> Result<PreparedDiagonals> {
        self.params
            .check_id(evaluator.params().id(), "the evaluator's parameters")?;
        let encoder = Encoder::new(&self.params);
        let backend = evaluator.backend();
        let q = self.params.q_primes();
        let mut steps = Vec::with_capacity(self.steps.len());
        for (i, step) in self.steps.iter().enumerate() {
            let Step::Linear(lin) = step else {
                steps.push(Vec::new());
                continue;
            };
            let level = self.levels[i];
            let scale = f64::from(q[level]) * self.corrections[i];
            let giants = lin
                .giants
                .iter()
                .map(|g| {
                    g.terms
                        .iter()
                        .map(|t| encoder.encode(&t.diagonal, level, scale, &**backend))
                        .collect::<Result<Vec<_>>>()
                })
                .collect::<Result<Vec<_>>>()?;
            steps.push(giants);
        }
        Ok(PreparedDiagonals { encoder, steps })
    }

    /// Server side: evaluates the network on a batch from [`encrypt`](Self::encrypt) with
    /// public material only; returns one ciphertext per image.
    pub fn evaluate(
        &self,
        evaluator: &Evaluator,
        prepared: &PreparedDiagonals,
        x: &Ciphertext,
    ) -> Result<Ciphertext> {
        let mut last = None;
        self.evaluate_steps(evaluator, prepared, x, |_, y| last = Some(y))?;
        Ok(last.expect("a plan has steps"))
    }

    /// [`evaluate`](Self::evaluate), handing each step's result to `each(step, result)`: the
    /// per-layer precision tests decrypt them against [`simulate_steps`](Self::simulate_steps).
    pub fn evaluate_steps(
        &self,
        evaluator: &Evaluator,
        prepared: &PreparedDiagonals,
        x: &Ciphertext,
        mut each: impl FnMut(usize, Ciphertext),
    ) -> Result<()> {
        let parts = self.inputs.len();
        if x.level() != self.params.max_level() || !x.count().is_multiple_of(parts) {
            return Err(Error::Shape(format!(
                "the network takes {parts} ciphertexts per image at level {}, got {} at level {}",
                self.params.max_level(),
                x.count(),
                x.level()
            )));
        }
        if prepared.steps.len() != self.steps.len() {
            return Err(Error::Mismatch(
                "diagonals prepared for another plan".into(),
            ));
        }
        let images = x.count() / parts;
        let mut xs: Vec<Ciphertext> = (0..parts)
            .map(|c| evaluator.select(x, &(c * images..(c + 1) * images).collect::<Vec<_>>()))
            .collect::<Result<_>>()?;
        for (i, (step, pts)) in self.steps.iter().zip(&prepared.steps).enumerate() {
            let y = match step {
                Step::Linear(lin) => linear(
                    evaluator,
                    &prepared.encoder,
                    lin,
                    pts,
                    std::mem::take(&mut xs),
                )?,
                Step::Square => {
                    let sq = evaluator.relinearize(&evaluator.square(&xs[0])?)?;
                    evaluator.rescale(&sq)?
                }
            };
            if i + 1 == self.steps.len() {
                each(i, y);
                break;
            }
            // The next step reads it; the callback gets a copy.
            each(i, evaluator.drop_level(&y, y.level())?);
            xs = vec![y];
        }
        Ok(())
    }

    /// The slot vectors after each step for one image, from the plan on plaintext slots.
    pub fn simulate_steps(&self, image: &[f32]) -> Result<Vec<StepSlots>> {
        self.check_images(image)?;
        let mut out = Vec::new();
        let mut xs: Vec<Vec<f64>> = self.inputs.iter().map(|l| l.fill(image)).collect();
        let mut layout = &self.inputs[0];
        for step in &self.steps {
            let y = match step {
                Step::Linear(lin) => {
                    layout = &lin.output;
                    lin.apply_plain(&xs).0
                }
                Step::Square => xs[0].iter().map(|v| v * v).collect(),
            };
            let held = layout
                .at
                .iter()
                .enumerate()
                .filter_map(|(t, v)| v.map(|v| (t, v as usize)))
                .collect();
            out.push(StepSlots {
                slots: y.clone(),
                held,
            });
            xs = vec![y];
        }
        Ok(out)
    }

    /// Client side: the outputs of every image of `y` (from [`evaluate`](Self::evaluate)).
    pub fn decrypt(
        &self,
        decryptor: &Decryptor,
        encoder: &Encoder,
        y: &Ciphertext,
        backend: &dyn Backend,
    ) -> Result<Vec<Vec<f32>>> {
        decryptor
            .decrypt_all(y, backend)?
            .iter()
            .map(|pt| {
                let slots = encoder.decode(pt)?;
                Ok(self.outputs.iter().map(|&t| slots[t] as f32).collect())
            })
            .collect()
    }
}

/// One step's slots from [`LatencyNetwork::simulate_steps`].
#[derive(Clone, Debug)]
pub struct StepSlots {
    /// Every slot's value.
    pub slots: Vec<f64>,
    /// The slots that hold values: `(slot, value index)`.
    pub held: Vec<(usize, usize)>,
}

/// A plan's diagonals encoded on one device (see [`LatencyNetwork::prepare`]).
pub struct PreparedDiagonals {
    encoder: Encoder,
    /// Per step, per giant step, per term.
    steps: Vec<Vec<Vec<Plaintext>>>,
}

/// One linear step on ciphertexts (see [`diagonal`]).
fn linear(
    ev: &Evaluator,
    encoder: &Encoder,
    lin: &SlotLinear,
    pts: &[Vec<Plaintext>],
    mut xs: Vec<Ciphertext>,
) -> Result<Ciphertext> {
    for &r in &lin.replicate {
        let moved = ev.rotate(&xs[0], r)?;
        ev.add_assign(&mut xs[0], &moved)?;
    }
    let rotated: Vec<Vec<Ciphertext>> = xs
        .iter()
        .zip(&lin.baby)
        .map(|(x, steps)| ev.rotate_hoisted(x, steps))
        .collect::<Result<_>>()?;
    drop(xs);
    // Giant rotations and the fold act on products at scale s·q_level, before the rescale,
    // which divides their key-switching noise by q_level.
    let mut y: Option<Ciphertext> = None;
    for (giant, pts) in lin.giants.iter().zip(pts) {
        let mut acc: Option<Ciphertext> = None;
        for (term, pt) in giant.terms.iter().zip(pts) {
            let p = ev.mul_plain(&rotated[term.input][term.baby], pt)?;
            match acc.as_mut() {
                Some(a) => ev.add_assign(a, &p)?,
                None => acc = Some(p),
            }
        }
        let acc = acc.expect("a giant step has products");
        let moved = if giant.step == 0 {
            acc
        } else {
            ev.rotate(&acc, giant.step)?
        };
        match y.as_mut() {
            Some(y) => ev.add_assign(y, &moved)?,
            None => y = Some(moved),
        }
    }
    let mut y = y.ok_or_else(|| {
        Error::Config(
            "the latency packing cannot evaluate a layer whose weights are all zero".into(),
        )
    })?;
    for &f in &lin.fold {
        let moved = ev.rotate(&y, f)?;
        ev.add_assign(&mut y, &moved)?;
    }
    let mut y = ev.rescale(&y)?;
    if lin.bias.iter().any(|&b| b != 0.0) {
        let bias = encoder.encode(&lin.bias, y.level(), y.scale(), &**ev.backend())?;
        ev.add_plain_assign(&mut y, &bias)?;
    }
    Ok(y)
}
