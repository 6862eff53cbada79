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

mod layout;
mod placement;
mod scheme;

use layout::Layout;
use placement::SlotLinear;

use super::bounds::InputRange;
use super::chain::plan_on_smallest_chain;
use super::model::Model;
use super::stages::{Stage, stage_levels, stages_with_polynomials};
use crate::backend::Backend;
use crate::circuits::{
    DiagonalWork, InputForm, LinearWork, PolynomialCost, PolynomialWork, PowersWork,
    chebyshev_from_powers, chebyshev_value,
};
use crate::ckks::{Ciphertext, Decryptor, Encoder, Encryptor, Parameters, Preset};
use crate::tensor::{LayerPlan, ScheduleReport, Scheduler, Work};
use crate::{Error, PlanError, Result};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// Calibration images simulated in slots to bound every slot's values (partial sums included).
const CALIBRATION_IMAGES: usize = 64;

/// One step of the plan.
#[derive(Clone, Debug)]
enum Step {
    Linear(SlotLinear),
    Square,
    /// The power basis u¹ … u^d of every slot (u = x / range, from the linear step before), as
    /// the circuit leaves it: d ciphertexts of three polynomials per group.
    Powers(usize),
    /// `Σ_{p ≥ 1} c_p · u^p` in every slot, from the powers: a sparse map across the d
    /// ciphertexts of each group (c_0 is in the next linear step's bias). Holds c_1 … c_d.
    Weigh(Vec<f32>),
    /// The same polynomial in the Chebyshev basis straight into one ciphertext per group, by
    /// baby steps and giant steps ([`PolynomialWork`]), unless its counted cost is above the
    /// power basis and its weighing (see [`polynomial_steps`]). Holds a_0 … a_d and the cost.
    Chebyshev(Vec<f64>, PolynomialCost),
}

/// How a polynomial activation (c_1 … c_d) runs: by baby steps and giant steps in the
/// Chebyshev basis unless that takes more levels, or as many and more key switches, than the
/// power basis (⌈log2 d⌉ − 1 levels) and the map that weighs it (2); then that pair. Degree 3
/// and 5 take a level less; degree 8 ties (4 levels, 4 key switches), where the Chebyshev
/// order keeps about 2 bits more (the ReLU MLP's largest logit error 0.011 against 0.04);
/// degree 16 takes 7 key switches instead of 8.
fn polynomial_steps(c: &[f32]) -> Vec<Step> {
    let d = c.len();
    let powers = (
        PowersWork::depth(d) + InputForm::Lazy.rescales(),
        PowersWork::key_switches_per_value(d) + 1,
    );
    let a = chebyshev_from_powers(
        &std::iter::once(0.0)
            .chain(c.iter().map(|&v| f64::from(v)))
            .collect::<Vec<_>>(),
    );
    match PolynomialWork::counted(&a) {
        Ok(cost) if (cost.levels, cost.key_switches) <= powers => vec![Step::Chebyshev(a, cost)],
        _ => vec![Step::Powers(d), Step::Weigh(c.to_vec())],
    }
}

/// Levels the latency packing takes for `stages`, with each polynomial as
/// [`polynomial_steps`] runs it.
fn levels_of(stages: &[Stage]) -> usize {
    stages
        .iter()
        .map(|stage| match stage {
            Stage::Polynomial(c) => polynomial_steps(c).iter().map(Step::levels).sum(),
            other => stage_levels(other),
        })
        .sum()
}

impl Step {
    /// Levels the step uses.
    fn levels(&self) -> usize {
        match self {
            Step::Linear(_) | Step::Square => 1,
            Step::Powers(d) => PowersWork::depth(*d),
            Step::Weigh(_) => InputForm::Lazy.rescales(),
            Step::Chebyshev(_, cost) => cost.levels,
        }
    }
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
    /// The scale each step starts at.
    scales: Vec<f64>,
    /// Each linear step's diagonals are encoded at `q_level · correction` (1 but for the last,
    /// which lowers the scale so that the outputs fit q_0); a weighing step's integer weights
    /// are `c_p · correction · q_level · q_(level−1) / scale`, times each power's factor.
    corrections: Vec<f64>,
    /// The slot of each output in the result.
    outputs: Vec<usize>,
    input_len: usize,
    /// Images per ciphertext (k): the plan is for `slots / k` slots, interleaved.
    share: usize,
    /// Groups of `share` images one request holds at most (1 unless the plan is widened with
    /// [`with_request_images`](Self::with_request_images)): the server refuses larger ones.
    request_groups: usize,
    /// The inputs' range on the calibration images the scales were fitted to.
    input_range: InputRange,
    /// Per step: the linear steps planned for ciphertexts (level, scale, stride).
    diagonals: Vec<Option<DiagonalWork>>,
    /// The work units by groups per request (see [`layer_plan`](Self::layer_plan)).
    plans: Arc<Mutex<HashMap<usize, Arc<LayerPlan>>>>,
}

/// Most images one latency request may be planned for: a request's ciphertexts and the
/// server's work grow with it; larger jobs belong to the batch packing.
pub const MOST_REQUEST_IMAGES: usize = 1024;

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
            return Err(PlanError::Calibration(
                "the latency plan needs at least one calibration image to bound its values".into(),
            )
            .into());
        }
        let mut share = 1 << most_per_ciphertext.ilog2();
        loop {
            match Self::plan_shared(model, params, calibration, share) {
                Err(_) if share > 1 => share /= 2,
                planned => return planned,
            }
        }
    }

    /// Plans `model` (see [`plan`](Self::plan)) with the smallest preset (N = 2^13, 2^14,
    /// 2^15; all 128-bit secure) that holds its levels and values, its ciphertext chain cut to
    /// the fewest levels the plan fits ([`Preset::literal_with_levels`]); an error names each
    /// preset's refusal when none does.
    pub fn plan_smallest(
        model: &Model,
        calibration: &[f32],
        most_per_ciphertext: usize,
    ) -> Result<(Preset, Self)> {
        let needed = levels_of(&stages_with_polynomials(model)?);
        plan_on_smallest_chain(needed, |params| {
            Self::plan(model, params, calibration, most_per_ciphertext)
        })
        .map_err(|refusals| {
            PlanError::NoPreset {
                packing: " in the latency packing",
                refusals: refusals.join("; "),
            }
            .into()
        })
    }

    /// Whether the packing can evaluate `model`'s activations: every polynomial, of any
    /// degree (a layout may still not fit the slots; planning says so).
    pub fn supports(model: &Model) -> bool {
        stages_with_polynomials(model).is_ok()
    }

    /// The plan with exactly `share` images per ciphertext.
    fn plan_shared(
        model: &Model,
        params: &Arc<Parameters>,
        calibration: &[f32],
        share: usize,
    ) -> Result<Self> {
        let stages = stages_with_polynomials(model)?;
        let (slots, input_len) = (params.slots() / share, model.input_len());
        let needed = levels_of(&stages);
        if needed > params.max_level() {
            return Err(PlanError::TooFewLevels {
                plan: "the latency packing (one level per linear stage and per square, at most \
                       ⌈log2 d⌉ + 1 per polynomial of degree d)"
                    .into(),
                needed,
                chain: "the parameters' chain".into(),
                have: params.max_level(),
            }
            .into());
        }
        let (inputs, steps, layout, width) = lay_out(&stages, input_len, slots, share)?;
        let outputs = layout.homes(width)?;
        let fitted = calibration.len().min(CALIBRATION_IMAGES * input_len) / input_len;
        let input_range = InputRange::of(&calibration[..fitted * input_len])?;
        let mut net = Self {
            params: params.clone(),
            inputs,
            levels: vec![0; steps.len()],
            scales: vec![0.0; steps.len()],
            corrections: vec![1.0; steps.len()],
            steps,
            outputs,
            input_len,
            share,
            request_groups: 1,
            input_range,
            diagonals: Vec::new(),
            plans: Arc::default(),
        };
        net.fit_scales(calibration)?;
        let q = params.q_primes();
        net.diagonals = (net.steps.iter().enumerate())
            .map(|(i, step)| match step {
                Step::Linear(lin) => {
                    let level = net.levels[i];
                    let scale = f64::from(q[level]) * net.corrections[i];
                    Some(DiagonalWork::new(lin.map.clone(), (level, scale), share))
                }
                _ => None,
            })
            .collect();
        Ok(net)
    }

    /// Walks the levels and scales with the largest slot values of the calibration images:
    /// every value must fit its level's modulus, and the last map (linear or weighing) lowers
    /// the scale so that the outputs fit q_0 with a factor 2 to spare (as the batch packing
    /// does).
    fn fit_scales(&mut self, calibration: &[f32]) -> Result<()> {
        let images = calibration
            .chunks_exact(self.input_len)
            .take(CALIBRATION_IMAGES);
        let mut peaks = vec![1e-3f64; self.steps.len()];
        for image in images {
            self.run_plain(image, |i, _, peak| peaks[i] = peaks[i].max(peak));
        }
        let q = self.params.q_primes();
        let bits = |level: usize| -> f64 { q[..=level].iter().map(|&p| f64::from(p).log2()).sum() };
        let last_map = self
            .steps
            .iter()
            .rposition(|s| matches!(s, Step::Linear(_) | Step::Weigh(_) | Step::Chebyshev(..)))
            .expect("the first step is linear");
        let working = self.params.default_scale();
        let (mut level, mut scale) = (self.params.max_level(), working);
        for (i, step) in self.steps.iter().enumerate() {
            self.levels[i] = level;
            self.scales[i] = scale;
            let bound = 2.0 * peaks[i];
            let used = step.levels();
            let have = bits(level - used);
            let after = match step {
                // A linear step keeps its input's scale; weighing the powers, or summing the
                // Chebyshev basis, ends at the working scale.
                Step::Linear(_) | Step::Weigh(_) | Step::Chebyshev(..) => {
                    let want = if matches!(step, Step::Linear(_)) {
                        scale
                    } else {
                        working
                    };
                    let after = if i == last_map {
                        want.min(2f64.powf(have) / (4.0 * bound))
                    } else {
                        want
                    };
                    self.corrections[i] = after / want;
                    after
                }
                Step::Square => scale * scale / f64::from(q[level]),
                Step::Powers(d) => {
                    let trace = PowersWork::trace(*d, level, scale, q);
                    trace.last().expect("degree at least 2").scale
                }
            };
            if (after * bound).log2() + 1.0 > have {
                return Err(PlanError::Overflow {
                    stage: format!("latency step {i}"),
                    bound,
                    log_scale: after.log2(),
                    need_bits: (after * bound).log2() + 1.0,
                    level: level - used,
                    have_bits: have,
                }
                .into());
            }
            level -= used;
            scale = after;
        }
        Ok(())
    }

    /// One step on plaintext slot vectors (one per input, or per power), and the largest
    /// magnitude any slot takes on the way.
    fn plain_step(step: &Step, xs: &[Vec<f64>]) -> (Vec<Vec<f64>>, f64) {
        let largest = |vs: &[Vec<f64>]| vs.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
        let ys = match step {
            Step::Linear(lin) => {
                let (y, peak) = lin.map.apply_plain(xs);
                return (vec![y], peak);
            }
            Step::Square => vec![xs[0].iter().map(|v| v * v).collect()],
            &Step::Powers(d) => (1..=d as i32)
                .map(|p| xs[0].iter().map(|v| v.powi(p)).collect())
                .collect(),
            Step::Weigh(c) => {
                let mut y = vec![0.0; xs[0].len()];
                for (x, &cp) in xs.iter().zip(c) {
                    for (a, v) in y.iter_mut().zip(x) {
                        *a += f64::from(cp) * v;
                    }
                }
                vec![y]
            }
            Step::Chebyshev(a, _) => vec![xs[0].iter().map(|&u| chebyshev_value(a, u)).collect()],
        };
        let peak = largest(&ys);
        (ys, peak)
    }

    /// The plan on plaintext slot vectors for one image; `each(step, vectors, largest
    /// |slot|)` after each step. Returns the last slot vector.
    fn run_plain(&self, image: &[f32], mut each: impl FnMut(usize, &[Vec<f64>], f64)) -> Vec<f64> {
        let mut xs: Vec<Vec<f64>> = self.inputs.iter().map(|l| l.fill(image)).collect();
        for (i, step) in self.steps.iter().enumerate() {
            let (ys, peak) = Self::plain_step(step, &xs);
            each(i, &ys, peak);
            xs = ys;
        }
        xs.pop().expect("one vector")
    }

    /// The plan evaluated on plaintext slots (no encryption, no noise): the model's outputs
    /// for `image` as the encrypted evaluation lays them out and reads them. The oracle that
    /// checks the layouts.
    pub fn simulate(&self, image: &[f32]) -> Result<Vec<f64>> {
        self.check_images(image)?;
        let y = self.run_plain(image, |_, _, _| {});
        Ok(self.outputs.iter().map(|&t| y[t]).collect())
    }

    /// Rotation steps the server needs Galois keys for (generate them with
    /// [`KeyGenerator::galois_keys`](crate::ckks::KeyGenerator::galois_keys)).
    pub fn rotations(&self) -> Vec<i64> {
        let mut all = BTreeSet::new();
        for step in &self.steps {
            if let Step::Linear(lin) = step {
                all.extend(
                    lin.map
                        .rotations()
                        .into_iter()
                        .map(|r| r * self.share as i64),
                );
            }
        }
        all.into_iter().collect()
    }

    /// Each rotation step the server makes with the highest level it makes it at: Galois keys
    /// made for those levels only
    /// ([`KeyGenerator::galois_keys_up_to`](crate::ckks::KeyGenerator::galois_keys_up_to)) are
    /// smaller for the layers after the first.
    pub fn rotation_levels(&self) -> Vec<(i64, usize)> {
        let mut levels = std::collections::BTreeMap::new();
        for (step, &level) in self.steps.iter().zip(&self.levels) {
            if let Step::Linear(lin) = step {
                for r in lin.map.rotations() {
                    let at = levels.entry(r * self.share as i64).or_insert(level);
                    *at = (*at).max(level);
                }
            }
        }
        levels.into_iter().collect()
    }

    /// A checksum of what a client and a server planning separately must agree on: the
    /// parameters, the images per ciphertext, where each input value goes, the rotations and
    /// the slots the outputs are read from. A request laid out for another plan would be
    /// evaluated into wrong answers; the split job binds requests to this.
    pub fn fingerprint(&self) -> u32 {
        let mut h = crc32fast::Hasher::new();
        h.update(&self.params.id().to_le_bytes());
        for v in [self.share, self.input_len, self.inputs.len()] {
            h.update(&(v as u64).to_le_bytes());
        }
        for layout in &self.inputs {
            for at in &layout.at {
                h.update(&at.map_or(u32::MAX, |v| v).to_le_bytes());
            }
        }
        for r in self.rotations() {
            h.update(&r.to_le_bytes());
        }
        for &t in &self.outputs {
            h.update(&(t as u64).to_le_bytes());
        }
        h.finalize()
    }

    /// What one image costs.
    pub fn cost(&self) -> LatencyCost {
        let (mut key_switches, mut plaintext_products) = (0, 0);
        for step in &self.steps {
            match step {
                Step::Linear(lin) => {
                    key_switches += lin.map.key_switches();
                    plaintext_products += lin.map.products();
                }
                Step::Square => key_switches += 1,
                &Step::Powers(d) => key_switches += PowersWork::key_switches_per_value(d),
                // The weighted sum's one relinearization.
                Step::Weigh(_) => key_switches += 1,
                Step::Chebyshev(_, cost) => key_switches += cost.key_switches,
            }
        }
        LatencyCost {
            images_per_ciphertext: self.share,
            input_ciphertexts: self.inputs.len(),
            key_switches,
            plaintext_products,
            rotations: self.rotations().len(),
            levels: self.steps.iter().map(Step::levels).sum(),
        }
    }

    /// The parameters the network was planned for.
    pub fn params(&self) -> &Arc<Parameters> {
        &self.params
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

    /// The same plan for requests of up to `images` images (1 to [`MOST_REQUEST_IMAGES`]):
    /// by default a request holds one ciphertext's worth,
    /// [`images_per_ciphertext`](LatencyCost::images_per_ciphertext).
    pub fn with_request_images(mut self, images: usize) -> Result<Self> {
        if !(1..=MOST_REQUEST_IMAGES).contains(&images) {
            return Err(Error::Config(format!(
                "{images} images per request: 1 to {MOST_REQUEST_IMAGES} (larger jobs belong to \
                 the batch packing)"
            )));
        }
        self.request_groups = images.div_ceil(self.share);
        Ok(self)
    }

    /// Most images one request holds.
    pub fn request_images(&self) -> usize {
        self.request_groups * self.share
    }

    /// Values of one input (an image's pixels).
    pub fn input_len(&self) -> usize {
        self.input_len
    }

    /// Values of one output (an image's logits).
    pub fn output_len(&self) -> usize {
        self.outputs.len()
    }

    /// The range of inputs the plan was calibrated for: [`encrypt`](Self::encrypt) refuses
    /// others.
    pub fn input_range(&self) -> InputRange {
        self.input_range
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
        let count = self.check_images(images)?;
        if count > self.request_images() {
            return Err(Error::Shape(format!(
                "{count} images in one request; the plan takes at most {} \
                 (LatencyNetwork::with_request_images)",
                self.request_images()
            )));
        }
        self.input_range.check(images, self.input_len)?;
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

    /// The work units of a request of `groups` groups of images, as the scheduler runs them:
    /// the linear steps as diagonal maps, squares, power bases and the sparse maps that weigh
    /// them. Made once per group count and kept (the devices cache prepared weights by plan).
    pub fn layer_plan(&self, groups: usize) -> Result<Arc<LayerPlan>> {
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(plan) = plans.get(&groups) {
            return Ok(plan.clone());
        }
        let stages = self
            .steps
            .iter()
            .zip(&self.diagonals)
            .enumerate()
            .map(|(i, (step, diagonal))| {
                Ok(match (step, diagonal) {
                    (Step::Linear(_), Some(d)) => Work::Diagonal(d.clone()),
                    (Step::Linear(_), None) => {
                        return Err(Error::Internal(
                            "latency plan: a linear step unplanned".into(),
                        ));
                    }
                    (Step::Square, _) => Work::Square,
                    (&Step::Powers(degree), _) => Work::Powers(PowersWork {
                        inputs: groups,
                        level: self.levels[i],
                        degree,
                        scale: self.scales[i + 1],
                    }),
                    (Step::Weigh(c), _) => Work::Linear(self.weighing(i, c, groups)?),
                    (Step::Chebyshev(a, cost), _) => {
                        let work = PolynomialWork::plan(
                            groups,
                            (self.levels[i], self.scales[i]),
                            a,
                            self.params.default_scale() * self.corrections[i],
                            self.params.q_primes(),
                        )?;
                        if work.cost.levels != cost.levels {
                            return Err(Error::Internal(format!(
                                "latency plan: a polynomial counted at {} levels plans at {}",
                                cost.levels, work.cost.levels
                            )));
                        }
                        Work::Polynomial(work)
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let plan = Arc::new(LayerPlan::new(stages));
        plans.insert(groups, plan.clone());
        Ok(plan)
    }

    /// The weighing step `i` (coefficients `c`) for `groups` groups: a sparse map from the
    /// powers (value-major, d per group) to one ciphertext per group, on lazy inputs.
    fn weighing(&self, i: usize, c: &[f32], groups: usize) -> Result<LinearWork> {
        let d = c.len();
        let q = self.params.q_primes();
        let level = self.levels[i];
        let powers = PowersWork {
            inputs: groups,
            level: self.levels[i - 1],
            degree: d,
            scale: self.scales[i],
        };
        let factors = powers.factors(q, self.scales[i - 1]);
        let divided: f64 = q[level - 1..=level].iter().map(|&p| f64::from(p)).product();
        let weight_scale =
            self.params.default_scale() * self.corrections[i] * divided / self.scales[i];
        let rows: Vec<(f32, Vec<(usize, f32)>)> = (0..groups)
            .map(|k| (0.0, (0..d).map(|p| (k * d + p, c[p])).collect()))
            .collect();
        LinearWork::encode(
            &self.params,
            (level, groups * d, InputForm::Lazy),
            &rows,
            (weight_scale, &factors),
            self.scales[i],
        )
    }

    /// Server side: evaluates the network on a request from [`encrypt`](Self::encrypt) with
    /// public material only, on the devices `scheduler` places it on (the GPU, streamed within
    /// its memory budget, or the CPU, which finishes the request when the GPU fails); returns
    /// one ciphertext per group of images, on the host.
    pub fn evaluate(&self, scheduler: &Scheduler, x: Ciphertext) -> Result<Ciphertext> {
        Ok(self.evaluate_report(scheduler, x)?.0)
    }

    /// [`evaluate`](Self::evaluate), with where each step ran and what it cost.
    pub fn evaluate_report(
        &self,
        scheduler: &Scheduler,
        x: Ciphertext,
    ) -> Result<(Ciphertext, ScheduleReport)> {
        self.evaluate_steps(scheduler, x, |_, _| {})
    }

    /// [`evaluate_report`](Self::evaluate_report), handing each step's result to `each(step,
    /// result)` but a power basis (d ciphertexts per group): the per-layer precision tests
    /// decrypt them against [`simulate_steps`](Self::simulate_steps).
    pub fn evaluate_steps(
        &self,
        scheduler: &Scheduler,
        x: Ciphertext,
        mut each: impl FnMut(usize, &Ciphertext),
    ) -> Result<(Ciphertext, ScheduleReport)> {
        let parts = self.inputs.len();
        let groups = x.count() / parts;
        if x.level() != self.params.max_level()
            || !x.count().is_multiple_of(parts)
            || !(1..=self.request_groups).contains(&groups)
        {
            return Err(Error::Shape(format!(
                "a request of this plan is {parts} ciphertexts per group of {} images, 1 to {} \
                 groups, at level {}; got {} ciphertexts at level {}",
                self.share,
                self.request_groups,
                self.params.max_level(),
                x.count(),
                x.level()
            )));
        }
        self.params.check_id(x.params_id(), "the request")?;
        let plan = self.layer_plan(groups)?;
        scheduler.run_each(&plan, x, &mut |i, y| {
            if !matches!(self.steps[i], Step::Powers(_)) {
                each(i, y)
            }
        })
    }

    /// The slot vectors after each step for one image (but a power basis, which
    /// [`evaluate_steps`](Self::evaluate_steps) does not hand over either), from the plan on
    /// plaintext slots.
    pub fn simulate_steps(&self, image: &[f32]) -> Result<Vec<StepSlots>> {
        self.check_images(image)?;
        let mut out = Vec::new();
        let mut layout = &self.inputs[0];
        self.run_plain(image, |i, ys, _| {
            match &self.steps[i] {
                Step::Powers(_) => return,
                Step::Linear(lin) => layout = &lin.output,
                Step::Square | Step::Weigh(_) | Step::Chebyshev(..) => {}
            }
            let held = layout
                .at
                .iter()
                .enumerate()
                .filter_map(|(t, v)| v.map(|v| (t, v as usize)))
                .collect();
            out.push(StepSlots {
                slots: ys[0].clone(),
                held,
            });
        });
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

/// The first layouts of the input and the steps of `stages` for `share` images of
/// `input_len` values in `slots` slots each, with the last step's layout and width: each
/// linear stage laid out the cheapest way the previous layout allows.
fn lay_out(
    stages: &[Stage],
    input_len: usize,
    slots: usize,
    share: usize,
) -> Result<(Vec<Layout>, Vec<Step>, Layout, usize)> {
    let Some(Stage::Linear(first)) = stages.first() else {
        return Err(PlanError::Unsupported(
            "the latency packing needs a linear layer before the first activation".into(),
        )
        .into());
    };
    let cannot = |s: usize, rows: usize, inputs: usize| {
        Error::from(PlanError::Unsupported(format!(
            "the latency packing cannot lay out stage {s} ({rows} outputs from {inputs} \
             inputs) in {slots} slots"
        )))
    };
    let (inputs, lin) = scheme::first_stage(first, input_len, slots, share)?
        .into_iter()
        .min_by(|a, b| scheme::cost(&a.1, a.0.len()).total_cmp(&scheme::cost(&b.1, b.0.len())))
        .ok_or_else(|| cannot(0, first.len(), input_len))?;
    let mut layout = lin.output.clone();
    let mut width = first.len();
    let mut steps = vec![Step::Linear(lin)];
    for (s, stage) in stages.iter().enumerate().skip(1) {
        let rows = match stage {
            Stage::Linear(rows) => rows,
            Stage::Square => {
                steps.push(Step::Square);
                continue;
            }
            Stage::Polynomial(c) => {
                steps.extend(polynomial_steps(c));
                continue;
            }
            Stage::Powers(_) => {
                return Err(Error::Internal(
                    "latency plan: powers without their polynomial".into(),
                ));
            }
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
        .any(|s| matches!(s, Step::Linear(l) if l.map.products() == 0))
    {
        return Err(PlanError::Unsupported(
            "the latency packing cannot evaluate a layer whose weights are all zero".into(),
        )
        .into());
    }
    Ok((inputs, steps, layout, width))
}
