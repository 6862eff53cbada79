//! The MNIST recipe behind `hegpu train`: pixels scaled to [0, 1], the CryptoNets network or
//! one from an architecture description, Adam with ±2-pixel shifts, and the test accuracy
//! after every epoch.

use super::model::{Model, cryptonets};
use super::train::{Dataset, EpochReport, TrainConfig, accuracy, initialize, train};
use crate::Result;
use crate::data::{Images, Mnist};

/// Pixels as f32 in [0, 1].
pub fn pixels(images: &Images) -> Vec<f32> {
    images
        .pixels
        .iter()
        .map(|&p| f32::from(p) / 255.0)
        .collect()
}

/// What `hegpu train` builds.
#[derive(Clone, Debug)]
pub struct MnistRecipe {
    /// Feature maps of the convolution (CryptoNets: 5).
    pub maps: usize,
    /// Width of the hidden dense layer (CryptoNets: 100).
    pub hidden: usize,
    /// Another network instead of CryptoNets (`maps` and `hidden` then do nothing): an
    /// architecture description ([`parse_architecture`](super::arch::parse_architecture)).
    pub arch: Option<String>,
    pub train: TrainConfig,
}

impl Default for MnistRecipe {
    fn default() -> Self {
        Self {
            maps: 5,
            hidden: 100,
            arch: None,
            train: TrainConfig::default(),
        }
    }
}

/// Trains the recipe's network on the training images; `report` sees every epoch with the
/// test accuracy. Returns the model and its final test accuracy.
pub fn train_mnist(
    data: &Mnist,
    recipe: &MnistRecipe,
    mut report: impl FnMut(EpochReport, f32),
) -> Result<(Model, f32)> {
    let (train_px, test_px) = (pixels(&data.train_images), pixels(&data.test_images));
    let train_set = Dataset {
        images: &train_px,
        labels: &data.train_labels,
        shape: vec![1, 28, 28],
    };
    let test_set = Dataset {
        images: &test_px,
        labels: &data.test_labels,
        shape: vec![1, 28, 28],
    };
    let mut model = match &recipe.arch {
        Some(text) => super::arch::parse_architecture(text, &[1, 28, 28])?,
        None => cryptonets(recipe.maps, recipe.hidden),
    };
    if model.shapes()?.last() != Some(&vec![10]) {
        return Err(crate::Error::Config(
            "an MNIST network must end with 10 outputs (dense:10)".into(),
        ));
    }
    initialize(&mut model, recipe.train.seed)?;
    train(&mut model, &train_set, &recipe.train, |m, r| {
        report(r, accuracy(m, &test_set).unwrap_or(f32::NAN))
    })?;
    let acc = accuracy(&model, &test_set)?;
    Ok((model, acc))
}
