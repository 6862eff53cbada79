//! x².

use super::{Kind, Shape};
use crate::Result;
use serde::{Deserialize, Serialize};

/// x², CryptoNets' activation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "super::NoFields")]
pub struct Square;

impl From<super::NoFields> for Square {
    fn from(_: super::NoFields) -> Square {
        Square
    }
}

impl Kind for Square {
    fn name(&self) -> &'static str {
        "square"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Shape> {
        Ok(input.to_vec())
    }

    fn is_activation(&self) -> bool {
        true
    }

    fn steps_per_output(&self) -> usize {
        3
    }

    fn activation(&self, x: f32) -> Option<(f32, f32)> {
        Some((x * x, 2.0 * x))
    }
}
