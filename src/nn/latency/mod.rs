//! The latency packing (LoLa-style): one image in the slots of its own ciphertexts, so one
//! image costs a few dozen key switches instead of a whole batch.
//!
//! The client lays an image out for the first linear stage (LoLa's convolution representation:
//! the k-th pixel of every convolution window in block k, so the convolution is a few
//! plaintext products; or the image repeated, for a dense first layer). The server evaluates
//! each linear stage as plaintext diagonals times rotations of its input (hoisted baby steps,
//! giant steps on sums, a fold of partial sums), each square as one ciphertext product, and
//! the client reads the outputs from the slots the plan names. See `scheme.rs` for the layouts.
//!
//! Several images share a ciphertext where the slots allow: with k images per ciphertext the
//! plan is made for N/(2k) slots and interleaved, image b in slots `k·p + b`, so every rotation
//! step is k times longer and every diagonal repeats each value k times. Rotations, products
//! and key switches are per ciphertext, so k images cost about what one does.
//!
//! Every stage is planned on the model's own composed linear maps (the same as the batch
//! packing's), so a model the batch packing runs also runs here unless a layout does not fit
//! the slots; then planning fails with the stage and the reason.

mod diagonal;
mod layout;
mod scheme;

use diagonal::SlotLinear;
use layout::Layout;

use super::encrypted::{Stage, stages};
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
    /// Images per ciphertext (k): the plan is for `slots / k` slots, interleaved.
    share: usize,
}

/// Counts that say what one evaluation costs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyCost {
    /// Images one ciphertext holds.
    pub images_per_ciphertext: usize,
    /// Ciphertexts the client sends per request (of that many images).
    pub input_ciphertexts: usize,
    /// Key switches per request: rotations and relinearizations.
    pub key_switches: usize,
    /// Plaintext–ciphertext products per request.
    pub plaintext_products: usize,
    /// Rotation steps the Galois keys must cover.
    pub rotations: usize,
    /// Levels the plan uses.
    pub levels: usize,
}

impl LatencyNetwork {
    /// Plans `model` for `params` with up to `most_per_ciphertext` images sharing a
    /// ciphertext: the largest power of two up to it whose layouts fit the slots (1: an image
    /// per ciphertext, the shortest latency for one image). `calibration` holds sample inputs
    /// (public data, e.g. training images) that bound the values every slot takes, for the
    /// scales.
    pub fn plan(
        model: &Model,
        params: &Arc<Parameters>,
        calibration: &[f32],
        most_per_ciphertext: usize,
    ) -> Result<Self> {
        if most_per_ciphertext == 0 || most_per_ciphertext > params.slots() {
            return Err(Error::Config(format!(
                "{most_per_ciphertext} images per ciphertext: 1 to {} at these parameters",
                params.slots()
            )));
        }
        if calibration.len() < model.input_len() {
            return Err(Error::Config(
                "the latency plan needs at least one calibration image to bound its values".into(),
            ));
        }
        let mut share = 1 << most_per_ciphertext.ilog2();
        loop {
            match Self::plan_shared(model, params, calibration, share) {
                Err(_) if share > 1 => share /= 2,
                planned => return planned,
            }
        }
    }

    /// Whether the packing can evaluate `model`: polynomial activations of degree 2 at most.
    pub fn supports(model: &Model) -> bool {
        stages(model).is_ok_and(|s| !s.iter().any(|s| matches!(s, Stage::Powers(_))))
    }

    /// The plan with exactly `share` images per ciphertext.
    fn plan_shared(
        model: &Model,
        params: &Arc<Parameters>,
        calibration: &[f32],
        share: usize,
    ) -> Result<Self> {
        let stages = stages(model)?;
        let (slots, input_len) = (params.slots() / share, model.input_len());
        if stages.len() > params.max_level() {
            return Err(Error::Config(format!(
                "the latency packing needs {} levels (one per linear stage and per square) but \
                 the parameters have {}",
                stages.len(),
                params.max_level()
            )));
        }
        if let Some(Stage::Powers(d)) = stages.iter().find(|s| matches!(s, Stage::Powers(_))) {
            return Err(Error::Config(format!(
                "the latency packing evaluates quadratic activations only, not a polynomial of \
                 degree {d} (use --packing batch)"
            )));
        }
        let Some(Stage::Linear(first)) = stages.first() else {
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
        let (inputs, lin) = scheme::first_stage(first, input_len, slots, share)?
            .into_iter()
            .min_by(|a, b| scheme::cost(&a.1, a.0.len()).total_cmp(&scheme::cost(&b.1, b.0.len())))
            .ok_or_else(|| cannot(0, first.len(), input_len))?;
        let mut layout = lin.output.clone();
        let mut width = first.len();
        let mut steps = vec![Step::Linear(lin)];
        for (s, stage) in stages.iter().enumerate().skip(1) {
            let Stage::Linear(rows) = stage else {
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
        if steps
            .iter()
            .any(|s| matches!(s, Step::Linear(l) if l.products() == 0))
        {
            return Err(Error::Config(
                "the latency packing cannot evaluate a layer whose weights are all zero".into(),
            ));
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
            share,
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
                all.extend(lin.rotations().into_iter().map(|r| r * self.share as i64));
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
            images_per_ciphertext: self.share,
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

    /// Client side: encrypts `images` (`[image][input]`) into one batch of ciphertexts: for
    /// each of the plan's input layouts, one ciphertext per group of
    /// [`images_per_ciphertext`](LatencyCost::images_per_ciphertext) images (the last group
    /// padded with zeros).
    pub fn encrypt(
        &self,
        encoder: &Encoder,
        encryptor: &Encryptor,
        images: &[f32],
    ) -> Result<Ciphertext> {
        self.check_images(images)?;
        let groups: Vec<Vec<&[f32]>> = images
            .chunks_exact(self.input_len)
            .collect::<Vec<_>>()
            .chunks(self.share)
            .map(<[_]>::to_vec)
            .collect();
        let vectors: Vec<Vec<f64>> = self
            .inputs
            .iter()
            .flat_map(|layout| {
                groups.iter().map(move |group| {
                    let filled: Vec<Vec<f64>> = group.iter().map(|img| layout.fill(img)).collect();
                    self.interleave(|p, b| filled.get(b).map_or(0.0, |v| v[p]))
                })
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

    /// A full slot vector from the plan's slots: slot `k·p + b` holds `value(p, b)`.
    fn interleave(&self, value: impl Fn(usize, usize) -> f64) -> Vec<f64> {
        let k = self.share;
        (0..self.params.slots())
            .map(|t| value(t / k, t % k))
            .collect()
    }

    /// A plan vector for every image of a ciphertext: each value repeated k times.
    fn repeat(&self, v: &[f64]) -> Vec<f64> {
        self.interleave(|p, _| v[p])
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
                        .map(|t| {
                            encoder.encode(&self.repeat(&t.diagonal), level, scale, &**backend)
                        })
                        .collect::<Result<Vec<_>>>()
                })
                .collect::<Result<Vec<_>>>()?;
            steps.push(giants);
        }
        let bias = self
            .steps
            .iter()
            .map(|s| match s {
                Step::Linear(lin) => self.repeat(&lin.bias),
                Step::Square => Vec::new(),
            })
            .collect();
        Ok(PreparedDiagonals {
            encoder,
            steps,
            bias,
            share: self.share as i64,
        })
    }

    /// Server side: evaluates the network on a batch from [`encrypt`](Self::encrypt) with
    /// public material only; returns one ciphertext per group of images.
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
                "the network takes {parts} ciphertexts per group of images at level {}, got {} at level {}",
                self.params.max_level(),
                x.count(),
                x.level()
            )));
        }
        if prepared.steps.len() != self.steps.len() || prepared.share != self.share as i64 {
            return Err(Error::Mismatch(
                "diagonals prepared for another plan".into(),
            ));
        }
        let groups = x.count() / parts;
        let mut xs: Vec<Ciphertext> = (0..parts)
            .map(|c| evaluator.select(x, &(c * groups..(c + 1) * groups).collect::<Vec<_>>()))
            .collect::<Result<_>>()?;
        for (i, (step, pts)) in self.steps.iter().zip(&prepared.steps).enumerate() {
            let y = match step {
                Step::Linear(lin) => {
                    let xs = std::mem::take(&mut xs);
                    linear(evaluator, prepared, lin, (pts, &prepared.bias[i]), xs)?
                }
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

    /// Client side: the outputs of the first `images` images of `y` (from
    /// [`evaluate`](Self::evaluate)).
    pub fn decrypt(
        &self,
        decryptor: &Decryptor,
        encoder: &Encoder,
        y: &Ciphertext,
        images: usize,
        backend: &dyn Backend,
    ) -> Result<Vec<Vec<f32>>> {
        if images > y.count() * self.share {
            return Err(Error::Shape(format!(
                "{images} images asked of {} ciphertexts of {} images",
                y.count(),
                self.share
            )));
        }
        let mut out = Vec::with_capacity(images);
        for pt in decryptor.decrypt_all(y, backend)? {
            let slots = encoder.decode(&pt)?;
            for b in 0..self.share {
                let k = self.share;
                out.push(
                    self.outputs
                        .iter()
                        .map(|&t| slots[k * t + b] as f32)
                        .collect(),
                );
            }
        }
        out.truncate(images);
        Ok(out)
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
    /// Per step, the bias in every slot (interleaved).
    bias: Vec<Vec<f64>>,
    /// Images per ciphertext: rotation steps are this many times the plan's.
    share: i64,
}

/// One linear step on ciphertexts (see [`diagonal`]); rotation steps are `prepared.share`
/// times the plan's.
fn linear(
    ev: &Evaluator,
    prepared: &PreparedDiagonals,
    lin: &SlotLinear,
    (pts, bias): (&[Vec<Plaintext>], &[f64]),
    mut xs: Vec<Ciphertext>,
) -> Result<Ciphertext> {
    let k = prepared.share;
    for &r in &lin.replicate {
        let moved = ev.rotate(&xs[0], r * k)?;
        ev.add_assign(&mut xs[0], &moved)?;
    }
    let rotated: Vec<Vec<Ciphertext>> = xs
        .iter()
        .zip(&lin.baby)
        .map(|(x, steps)| ev.rotate_hoisted(x, &steps.iter().map(|r| r * k).collect::<Vec<_>>()))
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
            ev.rotate(&acc, giant.step * k)?
        };
        match y.as_mut() {
            Some(y) => ev.add_assign(y, &moved)?,
            None => y = Some(moved),
        }
    }
    let mut y = y.expect("planning refuses layers without products");
    for &f in &lin.fold {
        let moved = ev.rotate(&y, f * k)?;
        ev.add_assign(&mut y, &moved)?;
    }
    let mut y = ev.rescale(&y)?;
    if bias.iter().any(|&b| b != 0.0) {
        let pt = prepared
            .encoder
            .encode(bias, y.level(), y.scale(), &**ev.backend())?;
        ev.add_plain_assign(&mut y, &pt)?;
    }
    Ok(y)
}
