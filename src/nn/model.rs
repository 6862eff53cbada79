//! Networks: a layer list with shape checking and the plaintext f32 forward pass (the oracle
//! the encrypted pass is compared with).

use super::layer::{Conv2d, Dense, Flatten, Layer, Pad2d, Shape, Square, bad, limits, product};
use crate::{Error, Result};

/// A network: the input shape and the layers in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub input: Shape,
    pub layers: Vec<Layer>,
}

impl Model {
    /// The shape after every layer (first: the input), checking that the layers fit together.
    pub fn shapes(&self) -> Result<Vec<Shape>> {
        if self.layers.len() > limits::LAYERS {
            return Err(bad(format!(
                "{} layers exceed the limit of {}",
                self.layers.len(),
                limits::LAYERS
            )));
        }
        if self.input.is_empty() || self.input.contains(&0) || self.input.len() > 3 {
            return Err(bad(format!(
                "input shape {:?}: one to three sizes, none zero",
                self.input
            )));
        }
        product(
            &self.input,
            limits::ACTIVATIONS,
            "input: activations per image",
        )?;
        let mut shapes = vec![self.input.clone()];
        let mut work = 0usize;
        for (i, layer) in self.layers.iter().enumerate() {
            let next = layer
                .output_shape(shapes.last().expect("non-empty"))
                .and_then(|next| {
                    work += layer.work(&next)?;
                    Ok(next)
                })
                .map_err(|e| in_layer(i, layer, e))?;
            if work > limits::WORK {
                return Err(bad(format!(
                    "layers 0 to {i} do {work} plaintext operations per image, above the \
                     model's limit of {}",
                    limits::WORK
                )));
            }
            shapes.push(next);
        }
        Ok(shapes)
    }

    /// Plaintext operations per image across all layers (at most [`limits::WORK`]): what one
    /// image costs a plaintext pass, and in proportion what the encrypted pass costs.
    pub fn work(&self) -> Result<usize> {
        let shapes = self.shapes()?;
        self.layers
            .iter()
            .zip(&shapes[1..])
            .map(|(layer, shape)| layer.work(shape))
            .sum()
    }

    /// Number of inputs per image.
    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }

    /// The outputs (logits) of one image.
    pub fn forward(&self, image: &[f32]) -> Result<Vec<f32>> {
        let shapes = self.shapes()?;
        if image.len() != self.input_len() {
            return Err(bad(format!(
                "an image of {} values, the model takes {:?}",
                image.len(),
                self.input
            )));
        }
        let mut x = image.to_vec();
        for (layer, shapes) in self.layers.iter().zip(shapes.windows(2)) {
            x = layer.forward_checked([&shapes[0], &shapes[1]], &x);
        }
        Ok(x)
    }

    /// The index of the largest output of each image (`images`: concatenated inputs).
    pub fn predict(&self, images: &[f32]) -> Result<Vec<usize>> {
        let len = self.input_len();
        if len == 0 || !images.len().is_multiple_of(len) {
            return Err(bad("image data is not a whole number of images"));
        }
        images
            .chunks(len)
            .map(|img| Ok(argmax(&self.forward(img)?)))
            .collect()
    }
}

/// Index of the largest value (the first one on ties).
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 { (i, x) } else { best }
        })
        .0
}

/// The CryptoNets network: pad 28×28 to 29×29, conv 5×5 stride 2 with `maps` maps, x², dense
/// to `hidden`, x², dense to 10. Weights zero (set them by training or loading).
pub fn cryptonets(maps: usize, hidden: usize) -> Model {
    let conv_out = maps * 13 * 13;
    Model {
        input: vec![1, 28, 28],
        layers: vec![
            Layer::Pad2d(Pad2d {
                top: 1,
                bottom: 0,
                left: 1,
                right: 0,
            }),
            Layer::Conv2d(Conv2d {
                in_channels: 1,
                out_channels: maps,
                kernel: 5,
                stride: 2,
                padding: 0,
                weight: vec![0.0; maps * 25],
                bias: vec![0.0; maps],
            }),
            Layer::Square(Square),
            Layer::Flatten(Flatten),
            Layer::Dense(Dense::zeros(conv_out, hidden)),
            Layer::Square(Square),
            Layer::Dense(Dense::zeros(hidden, 10)),
        ],
    }
}

/// A shape error of layer `i`, naming the layer; other errors as they are.
pub(in crate::nn) fn in_layer(i: usize, layer: &Layer, e: Error) -> Error {
    match e {
        Error::Shape(why) => bad(format!("layer {i} ({}): {why}", layer.kind())),
        other => other,
    }
}
