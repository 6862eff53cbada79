//! Polynomial-activation networks: the layers, shape checking, and the plaintext f32 forward
//! pass (the oracle the encrypted pass is compared with).

use crate::{Error, Result};

/// The shape of one image's activations: `[channels, height, width]` or `[features]`.
pub type Shape = Vec<usize>;

/// One output of a linear layer: its constant and its `(input index, weight)` terms.
pub type LinearRow = (f32, Vec<(usize, f32)>);

/// One layer. Weights are row-major: `Conv2d` `[out][in][k][k]`, `Dense` `[out][in]`.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    /// Zero padding of each side of every channel.
    Pad2d {
        top: usize,
        bottom: usize,
        left: usize,
        right: usize,
    },
    /// A 2-d convolution (cross-correlation) with square kernels and symmetric zero padding.
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
    },
    /// A fully connected layer.
    Dense {
        inputs: usize,
        outputs: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
    },
    /// x².
    Square,
    /// a·x² + b·x + c.
    Poly { a: f32, b: f32, c: f32 },
    /// `Σ_i coefficients[i] · (x / range)^i`: a polynomial of any degree in the input scaled by
    /// the range it was made for (an approximation of ReLU on [-range, range], see
    /// [`approximate`](super::approximate); `range` 1 for a plain polynomial). The encrypted pass keeps
    /// `x / range` within [-1, 1] so that no power grows past the modulus.
    Polynomial { range: f32, coefficients: Vec<f32> },
    /// A non-polynomial activation: the plaintext model (imported, or trained) has it; the
    /// encrypted pass needs it replaced by a [`Layer::Polynomial`] first.
    Activation(Activation),
    /// Sum over windows (no padding).
    SumPool { window: usize, stride: usize },
    /// Mean over windows (no padding).
    AvgPool { window: usize, stride: usize },
    /// `[c, h, w]` → `[c·h·w]`.
    Flatten,
}

/// A network: the input shape and the layers in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub input: Shape,
    pub layers: Vec<Layer>,
}

fn bad(why: impl Into<String>) -> Error {
    Error::Shape(why.into())
}

/// Limits every model keeps, checked by [`Model::shapes`] for models read from files and built
/// in code alike, so that a small file cannot ask for unbounded memory or time.
pub mod limits {
    /// Activations of one image after any layer. In the batch layout each is a ciphertext
    /// (393 KB at N = 2^13 with six primes): 2^16 of them are 26 GB, the most a large server
    /// holds; the shipped network's largest layer has 845.
    pub const ACTIVATIONS: usize = 1 << 16;
    /// Any one size: channels, height, width, padding, kernel, stride, pooling window.
    pub const DIMENSION: usize = 1 << 12;
    /// Weighted terms of one linear layer (each is a scalar multiply-add over a whole batch of
    /// ciphertexts; the shipped network's largest layer has 84,500).
    pub const TERMS: usize = 1 << 22;
    /// Layers of a model.
    pub const LAYERS: usize = 256;
    /// Plaintext operations per image across all layers ([`Model::work`](super::Model::work):
    /// weighted terms and elementwise steps). One layer may hold [`TERMS`], two such layers
    /// together, not 256: the budget bounds what a file can ask of the server and of the
    /// import's calibration passes. The shipped network does about 170,000.
    pub const WORK: usize = 1 << 23;
    /// Multiply-adds of composing adjacent linear layers into one map each (the encrypted pass
    /// applies one map between activations), over the whole model: dense 2048 → 2048 after
    /// 784 → 2048 takes 2^31.6, minutes of planning; the shipped network's (a padding into a
    /// convolution) take at most 845 · 25.
    pub const COMPOSITION: usize = 1 << 25;
    /// Degree of a polynomial activation (each doubling costs the encrypted pass a level).
    pub const DEGREE: usize = 64;
    /// Largest magnitude of a polynomial's coefficient (`Poly`'s a, b, c and a `Polynomial`'s
    /// coefficients). The encrypted pass folds coefficients into the weights of the maps
    /// around them, encoded at scales up to 2^60 in f32 and u128 arithmetic: 2^20 keeps every
    /// such product finite and every scale representable, far above what a model needs
    /// (decryption holds values below 2^5 to 2^35, by preset).
    pub const COEFFICIENT: f32 = (1u32 << 20) as f32;
    /// A `Polynomial`'s range lies within [1/RANGE, RANGE]: the encrypted pass multiplies by
    /// 1/range before the powers, and by range^-i for the coefficients of x up to x².
    pub const RANGE: f32 = (1u32 << 20) as f32;
}

/// `v` is finite and within ±[`limits::COEFFICIENT`].
fn check_coefficient(what: &str, v: f32) -> Result<()> {
    if v.is_finite() && v.abs() <= limits::COEFFICIENT {
        Ok(())
    } else {
        Err(bad(format!(
            "{what} is {v:e}; coefficients lie within ±{:e} (a larger one overflows the \
             encrypted pass's scales)",
            limits::COEFFICIENT
        )))
    }
}

/// The non-polynomial activations a model can hold (imported from ONNX, or trained): the
/// plaintext pass computes them; the encrypted pass needs a polynomial in their place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    Relu,
    Sigmoid,
    Tanh,
    /// x · sigmoid(x) (also called swish).
    Silu,
}

impl Activation {
    pub const ALL: [Activation; 4] = [
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Silu,
    ];

    /// The name in model files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Silu => "silu",
        }
    }

    /// The activation by name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// f(x) and f'(x).
    pub fn apply(self, x: f32) -> (f32, f32) {
        let x = f64::from(x);
        let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
        let (value, slope) = match self {
            Activation::Relu => (x.max(0.0), if x > 0.0 { 1.0 } else { 0.0 }),
            Activation::Sigmoid => {
                let s = sigmoid(x);
                (s, s * (1.0 - s))
            }
            Activation::Tanh => {
                let t = x.tanh();
                (t, 1.0 - t * t)
            }
            Activation::Silu => {
                let s = sigmoid(x);
                (x * s, s + x * s * (1.0 - s))
            }
        };
        (value as f32, slope as f32)
    }
}

/// `a · b · …` or an error naming `what` when it overflows or passes `limit`.
fn product(factors: &[usize], limit: usize, what: &str) -> Result<usize> {
    let total = factors
        .iter()
        .try_fold(1usize, |acc, &f| acc.checked_mul(f))
        .filter(|&t| t <= limit)
        .ok_or_else(|| {
            bad(format!(
                "{what}: {} exceeds the limit of {limit}",
                factors
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(" × ")
            ))
        })?;
    Ok(total)
}

/// An error unless every size in `sizes` (named) is at most [`limits::DIMENSION`].
fn check_sizes(sizes: &[(&str, usize)]) -> Result<()> {
    match sizes.iter().find(|(_, v)| *v > limits::DIMENSION) {
        Some((name, v)) => Err(bad(format!(
            "{name} {v} exceeds the limit of {}",
            limits::DIMENSION
        ))),
        None => Ok(()),
    }
}

fn spatial(shape: &[usize], what: &str) -> Result<(usize, usize, usize)> {
    match shape {
        [c, h, w] => {
            check_sizes(&[("channels", *c), ("height", *h), ("width", *w)])?;
            Ok((*c, *h, *w))
        }
        _ => Err(bad(format!(
            "{what} needs a [channels, height, width] input, got {shape:?}"
        ))),
    }
}

fn window_out(size: usize, window: usize, stride: usize, what: &str) -> Result<usize> {
    if window == 0 || stride == 0 || window > size {
        return Err(bad(format!(
            "{what}: window {window} stride {stride} on size {size}"
        )));
    }
    Ok((size - window) / stride + 1)
}

impl Layer {
    /// The layer's name in model files.
    pub fn kind(&self) -> &'static str {
        match self {
            Layer::Pad2d { .. } => "pad2d",
            Layer::Conv2d { .. } => "conv2d",
            Layer::Dense { .. } => "dense",
            Layer::Square => "square",
            Layer::Poly { .. } => "poly",
            Layer::Polynomial { .. } => "polynomial",
            Layer::Activation(f) => f.name(),
            Layer::SumPool { .. } => "sum_pool",
            Layer::AvgPool { .. } => "avg_pool",
            Layer::Flatten => "flatten",
        }
    }

    /// Weighted terms of the layer's linear map for `input` (an upper bound; 0 for the
    /// activations), within [`limits::TERMS`].
    fn terms(&self, output: &[usize]) -> Result<usize> {
        let outputs: usize = output.iter().product();
        let per_output = match self {
            Layer::Conv2d {
                in_channels,
                kernel,
                ..
            } => product(&[*in_channels, *kernel, *kernel], limits::TERMS, "terms")?,
            Layer::Dense { inputs, .. } => *inputs,
            Layer::SumPool { window, .. } | Layer::AvgPool { window, .. } => {
                product(&[*window, *window], limits::TERMS, "terms")?
            }
            Layer::Pad2d { .. } | Layer::Flatten => 1,
            Layer::Square
            | Layer::Poly { .. }
            | Layer::Polynomial { .. }
            | Layer::Activation(_) => 0,
        };
        product(&[outputs, per_output], limits::TERMS, "weighted terms")
    }

    /// Plaintext operations for one image: the weighted terms of a linear layer, one step per
    /// output of padding and flattening, one per coefficient and output of a polynomial, and
    /// a few per output of a square or an activation.
    fn work(&self, output: &[usize]) -> Result<usize> {
        let outputs: usize = output.iter().product();
        let per_output = match self {
            Layer::Polynomial { coefficients, .. } => coefficients.len(),
            Layer::Square | Layer::Poly { .. } | Layer::Activation(_) => 3,
            _ => return self.terms(output),
        };
        product(&[outputs, per_output], limits::TERMS, "elementwise steps")
    }

    /// The output shape for `input`, checking the layer's own sizes with checked arithmetic
    /// and the [`limits`].
    pub fn output_shape(&self, input: &[usize]) -> Result<Shape> {
        let out = self.output_shape_unbounded(input)?;
        if product(&out, limits::ACTIVATIONS, "activations per image")? == 0 {
            return Err(bad(format!("output shape {out:?} holds no activations")));
        }
        self.terms(&out)?;
        Ok(out)
    }

    fn output_shape_unbounded(&self, input: &[usize]) -> Result<Shape> {
        match self {
            Layer::Pad2d {
                top,
                bottom,
                left,
                right,
            } => {
                let (c, h, w) = spatial(input, "Pad2d")?;
                check_sizes(&[
                    ("top padding", *top),
                    ("bottom padding", *bottom),
                    ("left padding", *left),
                    ("right padding", *right),
                ])?;
                Ok(vec![
                    c,
                    grow(h, *top, *bottom, "padded height")?,
                    grow(w, *left, *right, "padded width")?,
                ])
            }
            Layer::Conv2d {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
                weight,
                bias,
            } => conv2d_shape(
                input,
                [*in_channels, *out_channels, *kernel, *stride, *padding],
                (weight, bias),
            ),
            Layer::Dense {
                inputs,
                outputs,
                weight,
                bias,
            } => {
                if input != [*inputs] {
                    return Err(bad(format!("Dense expects [{inputs}], got {input:?}")));
                }
                let weights = product(&[*inputs, *outputs], limits::TERMS, "Dense weights")?;
                if weight.len() != weights || bias.len() != *outputs {
                    return Err(bad("Dense weight or bias has the wrong length"));
                }
                Ok(vec![*outputs])
            }
            Layer::Square => Ok(input.to_vec()),
            Layer::Poly { a, b, c } => {
                for (what, &v) in [("a", a), ("b", b), ("c", c)] {
                    check_coefficient(what, v)?;
                }
                Ok(input.to_vec())
            }
            Layer::Polynomial {
                range,
                coefficients,
            } => {
                check_polynomial(*range, coefficients)?;
                Ok(input.to_vec())
            }
            Layer::Activation(_) => Ok(input.to_vec()),
            Layer::SumPool { window, stride } | Layer::AvgPool { window, stride } => {
                let (c, h, w) = spatial(input, "pooling")?;
                check_sizes(&[("window", *window), ("stride", *stride)])?;
                Ok(vec![
                    c,
                    window_out(h, *window, *stride, "pooling")?,
                    window_out(w, *window, *stride, "pooling")?,
                ])
            }
            Layer::Flatten => Ok(vec![product(
                input,
                limits::ACTIVATIONS,
                "activations per image",
            )?]),
        }
    }

    /// The weight tensor's shape (`[out, in, k, k]` for Conv2d, `[out, in]` for Dense), for the
    /// layers with parameters.
    pub fn weight_shape(&self) -> Option<Vec<usize>> {
        match self {
            Layer::Conv2d {
                in_channels,
                out_channels,
                kernel,
                ..
            } => Some(vec![*out_channels, *in_channels, *kernel, *kernel]),
            Layer::Dense {
                inputs, outputs, ..
            } => Some(vec![*outputs, *inputs]),
            _ => None,
        }
    }

    /// The weights and bias of a layer with parameters.
    pub fn parameters(&self) -> Option<(&[f32], &[f32])> {
        match self {
            Layer::Conv2d { weight, bias, .. } | Layer::Dense { weight, bias, .. } => {
                Some((weight, bias))
            }
            _ => None,
        }
    }

    /// The weights and bias of a layer with parameters, to change them.
    pub fn parameters_mut(&mut self) -> Option<(&mut [f32], &mut [f32])> {
        match self {
            Layer::Conv2d { weight, bias, .. } | Layer::Dense { weight, bias, .. } => {
                Some((weight, bias))
            }
            _ => None,
        }
    }

    /// Whether the layer is linear in its input (a weighted sum plus a constant).
    pub fn is_linear(&self) -> bool {
        !self.is_activation()
    }

    /// Whether the layer applies a function to each value on its own (the activations).
    pub fn is_activation(&self) -> bool {
        matches!(
            self,
            Layer::Square | Layer::Poly { .. } | Layer::Polynomial { .. } | Layer::Activation(_)
        )
    }

    /// The activation of one value, and its derivative (for training), for the activations.
    pub fn activation(&self, x: f32) -> Option<(f32, f32)> {
        match self {
            Layer::Square => Some((x * x, 2.0 * x)),
            Layer::Poly { a, b, c } => Some((a * x * x + b * x + c, 2.0 * a * x + b)),
            Layer::Polynomial {
                range,
                coefficients,
            } => {
                // Horner in f64 on u = x / range: value and derivative together.
                let u = f64::from(x) / f64::from(*range);
                let (mut value, mut slope) = (0.0f64, 0.0f64);
                for &c in coefficients.iter().rev() {
                    slope = slope * u + value;
                    value = value * u + f64::from(c);
                }
                Some((value as f32, (slope / f64::from(*range)) as f32))
            }
            Layer::Activation(f) => Some(f.apply(x)),
            _ => None,
        }
    }

    /// The linear layers as explicit sparse rows: for each output, its bias and the
    /// `(input index, weight)` terms. Used by the encrypted pass and by training.
    pub fn linear_terms(&self, input: &[usize]) -> Result<Option<Vec<LinearRow>>> {
        let out = self.output_shape(input)?;
        let rows = match self {
            Layer::Pad2d { top, left, .. } => {
                let (c, h, w) = spatial(input, "Pad2d")?;
                let (oh, ow) = (out[1], out[2]);
                (0..c * oh * ow)
                    .map(|o| {
                        let (ch, y, x) = (o / (oh * ow), (o / ow) % oh, o % ow);
                        let inside = y >= *top && y < top + h && x >= *left && x < left + w;
                        let terms = if inside {
                            vec![((ch * h + y - top) * w + x - left, 1.0)]
                        } else {
                            vec![]
                        };
                        (0.0, terms)
                    })
                    .collect()
            }
            Layer::Conv2d {
                in_channels,
                kernel,
                stride,
                padding,
                weight,
                bias,
                ..
            } => {
                let (_, h, w) = spatial(input, "Conv2d")?;
                let (oc, oh, ow) = (out[0], out[1], out[2]);
                let k = *kernel;
                (0..oc * oh * ow)
                    .map(|o| {
                        let (f, oy, ox) = (o / (oh * ow), (o / ow) % oh, o % ow);
                        let mut terms = Vec::new();
                        for ci in 0..*in_channels {
                            for ky in 0..k {
                                for kx in 0..k {
                                    let y = (oy * stride + ky) as isize - *padding as isize;
                                    let x = (ox * stride + kx) as isize - *padding as isize;
                                    if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
                                        continue;
                                    }
                                    let wi = ((f * in_channels + ci) * k + ky) * k + kx;
                                    terms
                                        .push(((ci * h + y as usize) * w + x as usize, weight[wi]));
                                }
                            }
                        }
                        (bias[f], terms)
                    })
                    .collect()
            }
            Layer::Dense {
                inputs,
                outputs,
                weight,
                bias,
            } => (0..*outputs)
                .map(|j| {
                    let row = &weight[j * inputs..(j + 1) * inputs];
                    (bias[j], row.iter().copied().enumerate().collect())
                })
                .collect(),
            Layer::SumPool { window, stride } | Layer::AvgPool { window, stride } => {
                let (_, h, w) = spatial(input, "pooling")?;
                let (c, oh, ow) = (out[0], out[1], out[2]);
                let share = if matches!(self, Layer::AvgPool { .. }) {
                    1.0 / (window * window) as f32
                } else {
                    1.0
                };
                (0..c * oh * ow)
                    .map(|o| {
                        let (ch, oy, ox) = (o / (oh * ow), (o / ow) % oh, o % ow);
                        let mut terms = Vec::new();
                        for ky in 0..*window {
                            for kx in 0..*window {
                                let (y, x) = (oy * stride + ky, ox * stride + kx);
                                terms.push(((ch * h + y) * w + x, share));
                            }
                        }
                        (0.0, terms)
                    })
                    .collect()
            }
            Layer::Flatten => (0..out[0]).map(|i| (0.0, vec![(i, 1.0)])).collect(),
            Layer::Square
            | Layer::Poly { .. }
            | Layer::Polynomial { .. }
            | Layer::Activation(_) => return Ok(None),
        };
        Ok(Some(rows))
    }

    /// Applies the layer to one image's activations.
    pub fn forward(&self, input: &[usize], x: &[f32]) -> Result<Vec<f32>> {
        match self {
            _ if self.is_activation() => Ok(x
                .iter()
                .map(|&v| self.activation(v).expect("an activation").0)
                .collect()),
            Layer::Flatten => Ok(x.to_vec()),
            Layer::Dense {
                inputs,
                outputs,
                weight,
                bias,
            } => {
                self.output_shape(input)?;
                Ok((0..*outputs)
                    .map(|j| {
                        let row = &weight[j * inputs..(j + 1) * inputs];
                        bias[j] + row.iter().zip(x).map(|(w, v)| w * v).sum::<f32>()
                    })
                    .collect())
            }
            _ => {
                let rows = self.linear_terms(input)?.expect("linear");
                Ok(rows
                    .iter()
                    .map(|(b, terms)| b + terms.iter().map(|&(i, w)| w * x[i]).sum::<f32>())
                    .collect())
            }
        }
    }
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
                .map_err(|e| match e {
                    Error::Shape(why) => bad(format!("layer {i} ({}): {why}", layer.kind())),
                    other => other,
                })?;
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
        for (layer, shape) in self.layers.iter().zip(&shapes) {
            x = layer.forward(shape, &x)?;
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
            Layer::Pad2d {
                top: 1,
                bottom: 0,
                left: 1,
                right: 0,
            },
            Layer::Conv2d {
                in_channels: 1,
                out_channels: maps,
                kernel: 5,
                stride: 2,
                padding: 0,
                weight: vec![0.0; maps * 25],
                bias: vec![0.0; maps],
            },
            Layer::Square,
            Layer::Flatten,
            Layer::Dense {
                inputs: conv_out,
                outputs: hidden,
                weight: vec![0.0; conv_out * hidden],
                bias: vec![0.0; hidden],
            },
            Layer::Square,
            Layer::Dense {
                inputs: hidden,
                outputs: 10,
                weight: vec![0.0; hidden * 10],
                bias: vec![0.0; 10],
            },
        ],
    }
}

/// `size + a + b`, or an error naming `what` on overflow.
fn grow(size: usize, a: usize, b: usize, what: &str) -> Result<usize> {
    size.checked_add(a)
        .and_then(|s| s.checked_add(b))
        .ok_or_else(|| bad(format!("{what} overflows")))
}

/// A Conv2d's output shape for `input`, its sizes and weights checked.
fn conv2d_shape(
    input: &[usize],
    [in_channels, out_channels, kernel, stride, padding]: [usize; 5],
    (weight, bias): (&[f32], &[f32]),
) -> Result<Shape> {
    let (c, h, w) = spatial(input, "Conv2d")?;
    check_sizes(&[
        ("output channels", out_channels),
        ("kernel", kernel),
        ("stride", stride),
        ("padding", padding),
    ])?;
    if c != in_channels {
        return Err(bad(format!(
            "Conv2d expects {in_channels} channels, got {c}"
        )));
    }
    let weights = product(
        &[out_channels, in_channels, kernel, kernel],
        limits::TERMS,
        "Conv2d weights",
    )?;
    if weight.len() != weights || bias.len() != out_channels {
        return Err(bad("Conv2d weight or bias has the wrong length"));
    }
    let out = |size, what| {
        window_out(
            grow(size, padding, padding, what)?,
            kernel,
            stride,
            "Conv2d",
        )
    };
    Ok(vec![out_channels, out(h, "height")?, out(w, "width")?])
}

/// A Polynomial layer's range and coefficients within the limits hegpu evaluates.
fn check_polynomial(range: f32, coefficients: &[f32]) -> Result<()> {
    if !(1.0 / limits::RANGE..=limits::RANGE).contains(&range) {
        return Err(bad(format!(
            "range {range:e}: a Polynomial's range lies within [{:e}, {:e}]",
            1.0 / limits::RANGE,
            limits::RANGE
        )));
    }
    if coefficients.is_empty() || coefficients.len() > limits::DEGREE + 1 {
        return Err(bad(format!(
            "a Polynomial of {} coefficients: 1 to {} (degree at most {})",
            coefficients.len(),
            limits::DEGREE + 1,
            limits::DEGREE
        )));
    }
    for (i, &v) in coefficients.iter().enumerate() {
        check_coefficient(&format!("coefficient {i}"), v)?;
    }
    Ok(())
}
