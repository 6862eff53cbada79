//! The MNIST digit models the job and the service serve: their input size, the shipped models,
//! and the public calibration images their plans are made with.

use super::plan_latency;
use crate::ckks::{Parameters, Preset};
use crate::data::Mnist;
use crate::nn::{
    Bounds, EncryptedNetwork, Flatten, LatencyNetwork, Layer, Model, load_model, pixels,
};
use crate::{Error, Result};
use std::path::Path;
use std::sync::Arc;

/// Pixels of one MNIST image: the job's digit models take 1×28×28 images.
pub const DIGIT_PIXELS: usize = 28 * 28;

/// The models shipped in `models/`, by name.
pub const SHIPPED_MODELS: [&str; 2] = ["cryptonets-5", "cryptonets-16"];

/// A model file that maps 1×28×28 images to 10 digits: a path, or the name of a shipped model
/// ([`SHIPPED_MODELS`], read from `models/NAME.safetensors`). A model of 784 flat inputs (an
/// MLP exported with flattened images) takes 1×28×28 images through a flatten first.
pub fn load_digit_model(path: &std::path::Path) -> Result<Model> {
    let shipped = path
        .to_str()
        .filter(|name| SHIPPED_MODELS.contains(name))
        .map(|name| std::path::PathBuf::from(format!("models/{name}.safetensors")));
    let path = shipped.as_deref().unwrap_or(path);
    let mut model = load_model(path)?;
    if model.input == [DIGIT_PIXELS] {
        model.input = vec![1, 28, 28];
        model.layers.insert(0, Layer::Flatten(Flatten));
    }
    if model.input != [1, 28, 28] || model.shapes()?.last() != Some(&vec![10]) {
        return Err(Error::Config(format!(
            "{} maps {:?} to {:?}, not 1×28×28 images to 10 digits",
            path.display(),
            model.input,
            model.shapes()?.last()
        )));
    }
    Ok(model)
}

/// The latency plan of `model` (a file or a shipped model's name) on `mnist`'s calibration
/// images, for `params` or, without them, with the smallest preset that holds it.
pub fn latency_plan(
    model: Option<&Path>,
    mnist: &Mnist,
    per_ciphertext: usize,
    params: Option<&Arc<Parameters>>,
) -> Result<LatencyNetwork> {
    let model = model.ok_or_else(|| {
        Error::Config(
            "the latency packing lays images out by the model's plan: give every step the \
             server's --model"
                .into(),
        )
    })?;
    let model = load_digit_model(model)?;
    plan_latency(&model, &calibration(mnist), per_ciphertext, params)
}

/// The public calibration data the job's plans are made with: up to 1,000 training images.
pub fn calibration(mnist: &Mnist) -> Vec<f32> {
    let images = 1000.min(mnist.train_labels.len());
    pixels(&mnist.train_images)[..DIGIT_PIXELS * images].to_vec()
}

/// The batch plan of `model` with `mnist`'s calibration images on `preset`'s chain (without
/// one, the smallest preset's that holds the model), cut to the fewest levels it fits.
pub fn plan_batch(
    model: &Model,
    mnist: &Mnist,
    preset: Option<Preset>,
) -> Result<EncryptedNetwork> {
    let bounds = Bounds::measure(model, &calibration(mnist))?;
    match preset {
        Some(preset) => EncryptedNetwork::plan_cut(model, preset, &bounds),
        None => Ok(EncryptedNetwork::plan_smallest(model, &bounds)?.1),
    }
}
