//! Flattening.

use super::{Kind, Linear, LinearRow, Role, Shape, limits, product};
use crate::Result;
use serde::{Deserialize, Serialize};

/// `[c, h, w]` → `[c·h·w]` (the values keep their order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "super::NoFields")]
pub struct Flatten;

super::no_fields!(Flatten);

impl Kind for Flatten {
    fn name(&self) -> &'static str {
        "flatten"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Shape> {
        let size = product(input, limits::ACTIVATIONS, "activations per image")?;
        Ok(vec![size])
    }

    fn role(&self) -> Role<'_> {
        Role::Linear(self)
    }

    fn forward(&self, _input: &[usize], _output: &[usize], x: &[f32]) -> Vec<f32> {
        x.to_vec()
    }

    fn backward(
        &self,
        _input: &[usize],
        _output: &[usize],
        _x: &[f32],
        grad: &[f32],
        _pgrad: &mut [f32],
    ) -> Vec<f32> {
        grad.to_vec()
    }
}

impl Linear for Flatten {
    fn terms_per_output(&self) -> Result<usize> {
        Ok(1)
    }

    fn linear_terms(&self, _input: &[usize], output: &[usize]) -> Vec<LinearRow> {
        (0..output[0]).map(|i| (0.0, vec![(i, 1.0)])).collect()
    }
}
