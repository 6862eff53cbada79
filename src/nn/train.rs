//! Training polynomial-activation networks on the CPU: backpropagation through every layer
//! type, softmax cross-entropy, Adam, random ±`shift`-pixel translations of the training
//! images. Deterministic for a seed whatever the number of threads: each minibatch is cut into
//! a fixed number of shards whose gradients are summed in shard order.

use super::layer::Shape;
use super::model::{Model, argmax};
use crate::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;

/// Shards per minibatch (fixed, so results do not depend on the thread count).
const SHARDS: usize = 8;

/// Training settings.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch: usize,
    /// Adam's learning rate at the start; it decays along a cosine to 2% at the end.
    pub learning_rate: f32,
    /// Largest translation of a training image, in pixels (0: none).
    pub shift: usize,
    /// Gradients are scaled down to this global norm when larger.
    pub clip: f32,
    /// Decoupled weight decay (AdamW), relative to the learning rate.
    pub weight_decay: f32,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 60,
            batch: 64,
            learning_rate: 2e-3,
            shift: 2,
            clip: 5.0,
            weight_decay: 0.0,
            seed: 1,
        }
    }
}

/// Images as f32 in [0, 1] (`[count][len]`) and their labels.
pub struct Dataset<'a> {
    pub images: &'a [f32],
    pub labels: &'a [u8],
    /// `[channels, height, width]` of one image.
    pub shape: Shape,
}

impl Dataset<'_> {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn image(&self, i: usize) -> &[f32] {
        let n: usize = self.shape.iter().product();
        &self.images[i * n..(i + 1) * n]
    }
}

/// Fills the model's weights with small random values (uniform, Glorot-scaled).
pub fn initialize(model: &mut Model, seed: u64) -> Result<()> {
    model.shapes()?;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    for layer in model.layers.iter_mut() {
        let Some(shape) = layer.weight_shape() else {
            continue;
        };
        // Inputs per output, and outputs per input, of one weight tensor.
        let kernel: usize = shape[2..].iter().product();
        let (fan_in, fan_out) = (shape[1] * kernel, shape[0] * kernel);
        let (weight, bias) = layer.parameters_mut().expect("a layer with weights");
        let limit = (6.0 / (fan_in + fan_out) as f32).sqrt();
        weight
            .iter_mut()
            .for_each(|w| *w = rng.random_range(-limit..limit));
        bias.iter_mut().for_each(|b| *b = 0.0);
    }
    Ok(())
}

/// The trainable parameters of a model, flattened in layer order (weights then bias).
fn params_of(model: &Model) -> Vec<f32> {
    let mut p = Vec::new();
    for (weight, bias) in model.layers.iter().filter_map(|l| l.parameters()) {
        p.extend(weight);
        p.extend(bias);
    }
    p
}

fn set_params(model: &mut Model, p: &[f32]) {
    let mut at = 0;
    for (weight, bias) in model.layers.iter_mut().filter_map(|l| l.parameters_mut()) {
        for v in weight.iter_mut().chain(bias.iter_mut()) {
            *v = p[at];
            at += 1;
        }
    }
}

/// Forward through every layer keeping each layer's input; returns them and the output.
fn forward_keep(model: &Model, shapes: &[Shape], x: &[f32]) -> Result<(Vec<Vec<f32>>, Vec<f32>)> {
    if x.len() != model.input_len() {
        return Err(Error::Shape(format!(
            "an image of {} values, the model takes {:?}",
            x.len(),
            model.input
        )));
    }
    let mut inputs = Vec::with_capacity(model.layers.len());
    let mut x = x.to_vec();
    for (layer, shapes) in model.layers.iter().zip(shapes.windows(2)) {
        let y = layer.forward_checked([&shapes[0], &shapes[1]], &x);
        inputs.push(x);
        x = y;
    }
    Ok((inputs, x))
}

/// Backpropagates `grad` (d loss / d output of the last layer) and adds parameter gradients
/// into `pgrad` (laid out as [`params_of`]).
fn backward(
    model: &Model,
    shapes: &[Shape],
    inputs: &[Vec<f32>],
    mut grad: Vec<f32>,
    pgrad: &mut [f32],
) {
    // Each layer's parameters, in the order of params_of, end where the next layer's begin.
    let mut end = pgrad.len();
    for (li, layer) in model.layers.iter().enumerate().rev() {
        let own = layer.parameters().map_or(0, |(w, b)| w.len() + b.len());
        let start = end - own;
        let shapes = [shapes[li].as_slice(), shapes[li + 1].as_slice()];
        grad = layer.backward(shapes, &inputs[li], &grad, &mut pgrad[start..end]);
        end = start;
    }
    debug_assert_eq!(end, 0, "pgrad holds exactly the parameters");
}

/// The softmax cross-entropy loss of one image and its gradient with respect to every
/// trainable parameter (Conv2d and Dense weights then biases, in layer order).
pub fn loss_and_gradient(model: &Model, image: &[f32], label: usize) -> Result<(f32, Vec<f32>)> {
    let shapes = model.shapes()?;
    if image.len() != model.input_len() || label >= model.forward(image)?.len() {
        return Err(Error::Shape("image or label does not fit the model".into()));
    }
    let (inputs, logits) = forward_keep(model, &shapes, image)?;
    let (loss, grad) = softmax_loss(&logits, label);
    let mut g = vec![0.0f32; params_of(model).len()];
    backward(model, &shapes, &inputs, grad, &mut g);
    Ok((loss, g))
}

/// The trainable parameters, in the order of [`loss_and_gradient`]'s gradient.
pub fn parameters(model: &Model) -> Vec<f32> {
    params_of(model)
}

/// Replaces the trainable parameters (same order and length as [`parameters`]).
pub fn set_parameters(model: &mut Model, p: &[f32]) -> Result<()> {
    if p.len() != params_of(model).len() {
        return Err(Error::Shape(
            "parameter count differs from the model's".into(),
        ));
    }
    set_params(model, p);
    Ok(())
}

/// Softmax cross-entropy: the loss and d loss / d logits.
fn softmax_loss(logits: &[f32], label: usize) -> (f32, Vec<f32>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    let grad: Vec<f32> = exps
        .iter()
        .enumerate()
        .map(|(i, e)| e / sum - if i == label { 1.0 } else { 0.0 })
        .collect();
    (sum.ln() - (logits[label] - max), grad)
}

/// Translates a `[c][h][w]` image by (dy, dx) with zero fill.
fn shifted(image: &[f32], shape: &[usize], dy: isize, dx: isize) -> Vec<f32> {
    let (c, h, w) = (shape[0], shape[1], shape[2]);
    let mut out = vec![0.0; image.len()];
    for ch in 0..c {
        for y in 0..h {
            let sy = y as isize - dy;
            if sy < 0 || sy >= h as isize {
                continue;
            }
            for x in 0..w {
                let sx = x as isize - dx;
                if sx >= 0 && sx < w as isize {
                    out[(ch * h + y) * w + x] = image[(ch * h + sy as usize) * w + sx as usize];
                }
            }
        }
    }
    out
}

/// What one epoch reports.
#[derive(Clone, Copy, Debug)]
pub struct EpochReport {
    pub epoch: usize,
    pub loss: f32,
    pub train_accuracy: f32,
}

/// Trains `model` in place on `data`; `report` is called after every epoch.
pub fn train(
    model: &mut Model,
    data: &Dataset<'_>,
    config: &TrainConfig,
    mut report: impl FnMut(&Model, EpochReport),
) -> Result<()> {
    let shapes = model.shapes()?;
    if data.shape != model.input || data.len() == 0 || config.batch == 0 {
        return Err(Error::Shape(format!(
            "training data of shape {:?} ({} images) for a model taking {:?}",
            data.shape,
            data.len(),
            model.input
        )));
    }
    if data.images.len() != data.len() * model.input_len() {
        return Err(Error::Shape(
            "image data and labels disagree in count".into(),
        ));
    }
    let mut rng = ChaCha20Rng::seed_from_u64(config.seed);
    let mut params = params_of(model);
    let mut adam = Adam::new(params.len());
    let steps_per_epoch = data.len().div_ceil(config.batch);
    let total_steps = (config.epochs * steps_per_epoch).max(1);
    for epoch in 0..config.epochs {
        let (order, shifts) = epoch_draws(&mut rng, data, config.shift);
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        for batch in order.chunks(config.batch) {
            let (mut grad, loss, right) =
                batch_gradient(model, &shapes, data, (batch, &shifts), params.len());
            loss_sum += loss;
            correct += right;
            let scale = 1.0 / batch.len() as f32;
            grad.iter_mut().for_each(|g| *g *= scale);
            let norm = grad.iter().map(|g| g * g).sum::<f32>().sqrt();
            if norm.is_finite() && norm > config.clip {
                let s = config.clip / norm;
                grad.iter_mut().for_each(|g| *g *= s);
            }
            let progress = (adam.step + 1) as f32 / total_steps as f32;
            let lr = config.learning_rate
                * (0.02 + 0.98 * 0.5 * (1.0 + (std::f32::consts::PI * progress).cos()));
            adam.update(&mut params, &grad, lr, config.weight_decay);
            set_params(model, &params);
        }
        report(
            model,
            EpochReport {
                epoch: epoch + 1,
                loss: (loss_sum / data.len() as f64) as f32,
                train_accuracy: correct as f32 / data.len() as f32,
            },
        );
    }
    Ok(())
}

/// An epoch's random draws: the order of the images, then each image's shift (up to `shift`
/// pixels each way, for spatial inputs).
fn epoch_draws(
    rng: &mut ChaCha20Rng,
    data: &Dataset<'_>,
    shift: usize,
) -> (Vec<usize>, Vec<(isize, isize)>) {
    let spatial = data.shape.len() == 3;
    let mut order: Vec<usize> = (0..data.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let shift = shift as isize;
    let shifts = (0..data.len())
        .map(|_| {
            if spatial && shift > 0 {
                let s = shift as i32;
                let (dy, dx) = (rng.random_range(-s..=s), rng.random_range(-s..=s));
                (dy as isize, dx as isize)
            } else {
                (0, 0)
            }
        })
        .collect();
    (order, shifts)
}

/// The summed gradient (of the model's `len` parameters), loss and correct count of the images
/// `batch` (shifted by `shifts`), in shards across the CPU threads.
fn batch_gradient(
    model: &Model,
    shapes: &[Shape],
    data: &Dataset<'_>,
    (batch, shifts): (&[usize], &[(isize, isize)]),
    len: usize,
) -> (Vec<f32>, f64, usize) {
    let shard_len = batch.len().div_ceil(SHARDS);
    let parts: Vec<(Vec<f32>, f64, usize)> = batch
        .par_chunks(shard_len)
        .map(|shard| {
            let mut g = vec![0.0f32; len];
            let (mut loss, mut right) = (0.0f64, 0usize);
            for &i in shard {
                let (dy, dx) = shifts[i];
                let img = if (dy, dx) == (0, 0) {
                    data.image(i).to_vec()
                } else {
                    shifted(data.image(i), &data.shape, dy, dx)
                };
                let (inputs, logits) = forward_keep(model, shapes, &img).expect("shapes checked");
                let label = usize::from(data.labels[i]);
                let (l, grad) = softmax_loss(&logits, label);
                loss += f64::from(l);
                right += usize::from(argmax(&logits) == label);
                backward(model, shapes, &inputs, grad, &mut g);
            }
            (g, loss, right)
        })
        .collect();
    let mut grad = vec![0.0f32; len];
    let (mut loss, mut right) = (0.0f64, 0usize);
    for (g, l, r) in parts {
        grad.iter_mut().zip(&g).for_each(|(a, b)| *a += b);
        loss += l;
        right += r;
    }
    (grad, loss, right)
}

/// Adam's moments and step count.
struct Adam {
    m1: Vec<f32>,
    m2: Vec<f32>,
    step: usize,
}

impl Adam {
    const BETA1: f32 = 0.9;
    const BETA2: f32 = 0.999;
    const EPS: f32 = 1e-8;

    fn new(len: usize) -> Self {
        Self {
            m1: vec![0.0; len],
            m2: vec![0.0; len],
            step: 0,
        }
    }

    /// One step on `params` with gradient `grad` (non-finite entries taken as 0), learning
    /// rate `lr` and decoupled weight decay.
    fn update(&mut self, params: &mut [f32], grad: &[f32], lr: f32, weight_decay: f32) {
        let (beta1, beta2) = (Self::BETA1, Self::BETA2);
        self.step += 1;
        let (c1, c2) = (
            1.0 - beta1.powi(self.step as i32),
            1.0 - beta2.powi(self.step as i32),
        );
        for i in 0..params.len() {
            let g = if grad[i].is_finite() { grad[i] } else { 0.0 };
            self.m1[i] = beta1 * self.m1[i] + (1.0 - beta1) * g;
            self.m2[i] = beta2 * self.m2[i] + (1.0 - beta2) * g * g;
            params[i] -= lr
                * ((self.m1[i] / c1) / ((self.m2[i] / c2).sqrt() + Self::EPS)
                    + weight_decay * params[i]);
        }
    }
}

/// Fraction of `data` the model classifies correctly.
pub fn accuracy(model: &Model, data: &Dataset<'_>) -> Result<f32> {
    let predictions = model.predict(data.images)?;
    let right = predictions
        .iter()
        .zip(data.labels)
        .filter(|(p, l)| **p == usize::from(**l))
        .count();
    Ok(right as f32 / data.labels.len().max(1) as f32)
}
