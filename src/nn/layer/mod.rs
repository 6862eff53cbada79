//! The layers of a network, one file per kind. A kind's file holds its fields (what a model
//! file stores of it), its sizes and their checks, its plaintext forward pass, its backward
//! pass for training and, for the linear kinds, its map as explicit rows. [`Layer`] names the
//! kinds; the checks every kind shares are in `check.rs`, the model-wide ones in [`limits`].

mod activation;
mod check;
mod conv2d;
mod dense;
mod flatten;
pub mod limits;
mod pad2d;
mod poly;
mod polynomial;
mod pool;
mod square;

pub use activation::{Activation, Relu, Sigmoid, Silu, Tanh};
pub(in crate::nn) use check::{bad, product};
pub use conv2d::Conv2d;
pub use dense::Dense;
pub use flatten::Flatten;
pub use pad2d::Pad2d;
pub use poly::Poly;
pub use polynomial::Polynomial;
pub use pool::{AvgPool, SumPool};
pub use square::Square;

use crate::Result;
use serde::{Deserialize, Serialize};

/// The shape of one image's activations: `[channels, height, width]` or `[features]`.
pub type Shape = Vec<usize>;

/// One output of a linear layer: its constant and its `(input index, weight)` terms.
pub type LinearRow = (f32, Vec<(usize, f32)>);

/// One layer of a network. In a model file's architecture each is its kind's fields tagged
/// with the kind's name (`{"type":"dense","inputs":845,"outputs":100}`); weights and biases
/// are the file's tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Layer {
    Pad2d(Pad2d),
    Conv2d(Conv2d),
    Dense(Dense),
    Square(Square),
    Poly(Poly),
    Polynomial(Polynomial),
    Relu(Relu),
    Sigmoid(Sigmoid),
    Tanh(Tanh),
    Silu(Silu),
    SumPool(SumPool),
    AvgPool(AvgPool),
    Flatten(Flatten),
}

/// What a kind without fields reads from a model file: nothing. serde refuses unknown fields
/// only in structs with braces, and `{"type": "square", "a": 2}` must not load as x².
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NoFields {}

/// Reads the kinds without fields through [`NoFields`].
macro_rules! no_fields {
    ($($kind:ident),*) => {$(
        impl From<super::NoFields> for $kind {
            fn from(_: super::NoFields) -> $kind {
                $kind
            }
        }
    )*};
}
use no_fields;

/// What a kind does to its input: a linear map (a weighted sum plus a constant per output),
/// or a function of each value on its own (an activation). A kind is one or the other, and
/// each role's trait has what that role must say.
enum Role<'a> {
    Linear(&'a dyn Linear),
    Elementwise(&'a dyn Elementwise),
}

/// A linear kind's map.
trait Linear {
    /// Weighted terms per output (an upper bound).
    fn terms_per_output(&self) -> Result<usize>;

    /// The map as rows, for `input` and the `output` it gives.
    fn linear_terms(&self, input: &[usize], output: &[usize]) -> Vec<LinearRow>;
}

/// An activation's function.
trait Elementwise {
    /// f(x) and f'(x).
    fn apply(&self, x: f32) -> (f32, f32);

    /// Plaintext steps per output.
    fn steps_per_output(&self) -> usize {
        3
    }

    /// The function, for the activations that are not polynomials (the encrypted pass needs
    /// them replaced by one).
    fn smooth(&self) -> Option<Activation> {
        None
    }
}

/// What each kind knows of itself; [`Layer`] checks the model-wide limits around it. The
/// output shape is checked before any other method is called with it.
trait Kind {
    /// The kind's name in model files (the `type` tag).
    fn name(&self) -> &'static str;

    /// The output shape for `input`, checking the kind's own sizes and weights.
    fn output_shape(&self, input: &[usize]) -> Result<Shape>;

    /// A linear map or an activation.
    fn role(&self) -> Role<'_>;

    /// The layer applied to one image's values `x`.
    fn forward(&self, input: &[usize], output: &[usize], x: &[f32]) -> Vec<f32> {
        match self.role() {
            Role::Linear(map) => map
                .linear_terms(input, output)
                .iter()
                .map(|(b, terms)| b + terms.iter().map(|&(i, w)| w * x[i]).sum::<f32>())
                .collect(),
            Role::Elementwise(f) => x.iter().map(|&v| f.apply(v).0).collect(),
        }
    }

    /// The gradient with respect to the layer's input `x`, given `grad` with respect to its
    /// output; adds the gradient of its parameters (weights, then bias) into `pgrad`.
    fn backward(
        &self,
        input: &[usize],
        output: &[usize],
        x: &[f32],
        grad: &[f32],
        _pgrad: &mut [f32],
    ) -> Vec<f32> {
        match self.role() {
            Role::Linear(map) => {
                let mut gx = vec![0.0f32; x.len()];
                for ((_, terms), &g) in map.linear_terms(input, output).iter().zip(grad) {
                    for &(i, w) in terms {
                        gx[i] += w * g;
                    }
                }
                gx
            }
            Role::Elementwise(f) => x.iter().zip(grad).map(|(&v, g)| f.apply(v).1 * g).collect(),
        }
    }

    /// The weight tensor's shape, for the kinds with parameters.
    fn weight_shape(&self) -> Option<Vec<usize>> {
        None
    }

    /// The weights and bias, for the kinds with parameters.
    fn parameters(&self) -> Option<(&[f32], &[f32])> {
        None
    }

    /// The weights and bias, to change or replace them.
    fn parameters_mut(&mut self) -> Option<(&mut Vec<f32>, &mut Vec<f32>)> {
        None
    }
}

/// `$body` with `$kind` bound to the kind inside `$layer`.
macro_rules! each_kind {
    ($layer:expr, $kind:ident => $body:expr) => {
        match $layer {
            Layer::Pad2d($kind) => $body,
            Layer::Conv2d($kind) => $body,
            Layer::Dense($kind) => $body,
            Layer::Square($kind) => $body,
            Layer::Poly($kind) => $body,
            Layer::Polynomial($kind) => $body,
            Layer::Relu($kind) => $body,
            Layer::Sigmoid($kind) => $body,
            Layer::Tanh($kind) => $body,
            Layer::Silu($kind) => $body,
            Layer::SumPool($kind) => $body,
            Layer::AvgPool($kind) => $body,
            Layer::Flatten($kind) => $body,
        }
    };
}

impl Layer {
    fn of(&self) -> &dyn Kind {
        each_kind!(self, kind => kind)
    }

    fn of_mut(&mut self) -> &mut dyn Kind {
        each_kind!(self, kind => kind)
    }

    /// The layer's name in model files.
    pub fn kind(&self) -> &'static str {
        self.of().name()
    }

    /// Weighted terms of the layer's linear map for `output` (an upper bound; 0 for the
    /// activations), within [`limits::TERMS`].
    fn terms(&self, output: &[usize]) -> Result<usize> {
        let per_output = match self.of().role() {
            Role::Linear(map) => map.terms_per_output()?,
            Role::Elementwise(_) => 0,
        };
        let outputs: usize = output.iter().product();
        product(&[outputs, per_output], limits::TERMS, "weighted terms")
    }

    /// Plaintext operations for one image: the weighted terms of a linear layer, one step per
    /// output of padding and flattening, one per coefficient and output of a polynomial, and
    /// a few per output of a square or an activation.
    pub(in crate::nn) fn work(&self, output: &[usize]) -> Result<usize> {
        match self.of().role() {
            Role::Linear(_) => self.terms(output),
            Role::Elementwise(f) => {
                let outputs: usize = output.iter().product();
                let steps = f.steps_per_output();
                product(&[outputs, steps], limits::TERMS, "elementwise steps")
            }
        }
    }

    /// The output shape for `input`, checking the layer's own sizes with checked arithmetic
    /// and the [`limits`].
    pub fn output_shape(&self, input: &[usize]) -> Result<Shape> {
        let out = self.of().output_shape(input)?;
        if product(&out, limits::ACTIVATIONS, "activations per image")? == 0 {
            return Err(bad(format!("output shape {out:?} holds no activations")));
        }
        self.terms(&out)?;
        Ok(out)
    }

    /// The weight tensor's shape (`[out, in, k, k]` for Conv2d, `[out, in]` for Dense), for the
    /// layers with parameters.
    pub fn weight_shape(&self) -> Option<Vec<usize>> {
        self.of().weight_shape()
    }

    /// The weights and bias of a layer with parameters.
    pub fn parameters(&self) -> Option<(&[f32], &[f32])> {
        self.of().parameters()
    }

    /// The weights and bias of a layer with parameters, to change them.
    pub fn parameters_mut(&mut self) -> Option<(&mut [f32], &mut [f32])> {
        let (weight, bias) = self.of_mut().parameters_mut()?;
        Some((weight, bias))
    }

    /// The weights and bias as vectors, to replace them (a model file's loader).
    pub(in crate::nn) fn parameter_vecs_mut(&mut self) -> Option<(&mut Vec<f32>, &mut Vec<f32>)> {
        self.of_mut().parameters_mut()
    }

    /// Whether the layer is linear in its input (a weighted sum plus a constant).
    pub fn is_linear(&self) -> bool {
        matches!(self.of().role(), Role::Linear(_))
    }

    /// Whether the layer applies a function to each value on its own (the activations).
    pub fn is_activation(&self) -> bool {
        !self.is_linear()
    }

    /// The activation of one value, and its derivative (for training), for the activations.
    pub fn activation(&self, x: f32) -> Option<(f32, f32)> {
        match self.of().role() {
            Role::Elementwise(f) => Some(f.apply(x)),
            Role::Linear(_) => None,
        }
    }

    /// The function of an activation that is not a polynomial (the encrypted pass needs it
    /// replaced by one first, see [`approximate`](crate::nn::approximate)).
    pub fn smooth(&self) -> Option<Activation> {
        match self.of().role() {
            Role::Elementwise(f) => f.smooth(),
            Role::Linear(_) => None,
        }
    }

    /// The linear layers as explicit sparse rows: for each output, its bias and the
    /// `(input index, weight)` terms. Used by the encrypted pass and by training.
    pub fn linear_terms(&self, input: &[usize]) -> Result<Option<Vec<LinearRow>>> {
        let out = self.output_shape(input)?;
        Ok(match self.of().role() {
            Role::Linear(map) => Some(map.linear_terms(input, &out)),
            Role::Elementwise(_) => None,
        })
    }

    /// Applies the layer to one image's activations `x` of shape `input`.
    pub fn forward(&self, input: &[usize], x: &[f32]) -> Result<Vec<f32>> {
        let out = self.output_shape(input)?;
        if x.len() != input.iter().product::<usize>() {
            return Err(bad(format!(
                "{} values for a layer input of shape {input:?}",
                x.len()
            )));
        }
        Ok(self.of().forward(input, &out, x))
    }

    /// [`forward`](Self::forward) for shapes the caller checked (with
    /// [`Model::shapes`](crate::nn::Model::shapes)) and values of the input's length.
    pub(in crate::nn) fn forward_checked(
        &self,
        [input, output]: [&[usize]; 2],
        x: &[f32],
    ) -> Vec<f32> {
        self.of().forward(input, output, x)
    }

    /// The gradient with respect to the input `x` (of shape `input`, giving `output`) from
    /// `grad` with respect to the output; adds the parameters' gradient (weights, then bias)
    /// into `pgrad`.
    pub(in crate::nn) fn backward(
        &self,
        [input, output]: [&[usize]; 2],
        x: &[f32],
        grad: &[f32],
        pgrad: &mut [f32],
    ) -> Vec<f32> {
        self.of().backward(input, output, x, grad, pgrad)
    }
}

impl From<Activation> for Layer {
    fn from(f: Activation) -> Layer {
        match f {
            Activation::Relu => Layer::Relu(Relu),
            Activation::Sigmoid => Layer::Sigmoid(Sigmoid),
            Activation::Tanh => Layer::Tanh(Tanh),
            Activation::Silu => Layer::Silu(Silu),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One layer of every kind, with the input shape it takes.
    fn every_kind() -> Vec<(Layer, Shape)> {
        let spatial = vec![2, 4, 4];
        let values = vec![4];
        let conv = Conv2d {
            in_channels: 2,
            out_channels: 1,
            kernel: 3,
            stride: 1,
            padding: 1,
            weight: vec![0.5; 18],
            bias: vec![0.25],
        };
        vec![
            (
                Layer::Pad2d(Pad2d {
                    top: 1,
                    bottom: 0,
                    left: 0,
                    right: 2,
                }),
                spatial.clone(),
            ),
            (Layer::Conv2d(conv), spatial.clone()),
            (Layer::Dense(Dense::zeros(4, 3)), values.clone()),
            (Layer::Square(Square), values.clone()),
            (
                Layer::Poly(Poly {
                    a: 1.0,
                    b: 2.0,
                    c: 3.0,
                }),
                values.clone(),
            ),
            (
                Layer::Polynomial(Polynomial {
                    range: 2.0,
                    coefficients: vec![1.0, 0.5],
                }),
                values.clone(),
            ),
            (Layer::Relu(Relu), values.clone()),
            (Layer::Sigmoid(Sigmoid), values.clone()),
            (Layer::Tanh(Tanh), values.clone()),
            (Layer::Silu(Silu), values.clone()),
            (
                Layer::SumPool(SumPool {
                    window: 2,
                    stride: 2,
                }),
                spatial.clone(),
            ),
            (
                Layer::AvgPool(AvgPool {
                    window: 3,
                    stride: 1,
                }),
                spatial.clone(),
            ),
            (Layer::Flatten(Flatten), spatial),
        ]
    }

    /// The position of a layer's kind in [`every_kind`]: a new kind fails to compile here
    /// until the list has it.
    fn position(layer: &Layer) -> usize {
        match layer {
            Layer::Pad2d(_) => 0,
            Layer::Conv2d(_) => 1,
            Layer::Dense(_) => 2,
            Layer::Square(_) => 3,
            Layer::Poly(_) => 4,
            Layer::Polynomial(_) => 5,
            Layer::Relu(_) => 6,
            Layer::Sigmoid(_) => 7,
            Layer::Tanh(_) => 8,
            Layer::Silu(_) => 9,
            Layer::SumPool(_) => 10,
            Layer::AvgPool(_) => 11,
            Layer::Flatten(_) => 12,
        }
    }

    #[test]
    fn each_kind_is_written_under_its_name_and_reads_back_without_its_weights() {
        let kinds = every_kind();
        let positions: Vec<usize> = kinds.iter().map(|(l, _)| position(l)).collect();
        assert_eq!(positions, (0..13).collect::<Vec<_>>());
        for (layer, input) in kinds {
            let json = serde_json::to_value(&layer).unwrap();
            assert_eq!(json["type"], layer.kind(), "{json}");
            let mut back: Layer = serde_json::from_value(json.clone()).unwrap();
            if let (Some((w, b)), Some((to_w, to_b))) =
                (layer.parameters(), back.parameter_vecs_mut())
            {
                assert!(to_w.is_empty() && to_b.is_empty(), "{json}");
                (*to_w, *to_b) = (w.to_vec(), b.to_vec());
            }
            assert_eq!(back, layer);
            // An unknown field is refused, on kinds with fields and without.
            let mut extra = json.clone();
            extra["size"] = 3.into();
            let e = serde_json::from_value::<Layer>(extra).unwrap_err();
            assert!(
                e.to_string().contains("unknown field `size`"),
                "{json}: {e}"
            );
            // Values of another length than the input shape are an error, not a panic.
            let len: usize = input.iter().product();
            assert!(layer.forward(&input, &vec![0.5; len]).is_ok(), "{json}");
            assert!(
                layer.forward(&input, &vec![0.5; len - 1]).is_err(),
                "{json}"
            );
        }
    }
}
