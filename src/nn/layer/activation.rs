//! The activations that are not polynomials (ReLU, sigmoid, tanh, SiLU): the plaintext model
//! computes them; the encrypted pass needs a polynomial in their place.

use super::{Elementwise, Kind, Role, Shape};
use crate::Result;
use serde::{Deserialize, Serialize};

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

/// One layer kind per function, named as the function.
macro_rules! function_kinds {
    ($($kind:ident = $function:ident, $doc:literal;)*) => {$(
        #[doc = $doc]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(from = "super::NoFields")]
        pub struct $kind;

        super::no_fields!($kind);

        impl Kind for $kind {
            fn name(&self) -> &'static str {
                Activation::$function.name()
            }

            fn output_shape(&self, input: &[usize]) -> Result<Shape> {
                Ok(input.to_vec())
            }

            fn role(&self) -> Role<'_> {
                Role::Elementwise(self)
            }
        }

        impl Elementwise for $kind {
            fn apply(&self, x: f32) -> (f32, f32) {
                Activation::$function.apply(x)
            }

            fn smooth(&self) -> Option<Activation> {
                Some(Activation::$function)
            }
        }
    )*};
}

function_kinds! {
    Relu = Relu, "max(x, 0).";
    Sigmoid = Sigmoid, "1 / (1 + e^-x).";
    Tanh = Tanh, "tanh x.";
    Silu = Silu, "x · sigmoid(x).";
}
