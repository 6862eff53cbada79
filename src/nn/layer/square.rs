//! x².

use super::{Elementwise, Kind, Role, Shape};
use crate::Result;
use serde::{Deserialize, Serialize};

/// x², CryptoNets' activation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "super::NoFields")]
pub struct Square;

super::no_fields!(Square);

impl Kind for Square {
    fn name(&self) -> &'static str {
        "square"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Shape> {
        Ok(input.to_vec())
    }

    fn role(&self) -> Role<'_> {
        Role::Elementwise(self)
    }
}

impl Elementwise for Square {
    fn apply(&self, x: f32) -> (f32, f32) {
        (x * x, 2.0 * x)
    }
}
