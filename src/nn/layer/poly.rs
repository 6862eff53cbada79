//! Quadratics.

use super::check::check_coefficient;
use super::{Elementwise, Kind, Role, Shape};
use crate::Result;
use serde::{Deserialize, Serialize};

/// a·x² + b·x + c.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Poly {
    pub a: f32,
    pub b: f32,
    pub c: f32,
}

impl Kind for Poly {
    fn name(&self) -> &'static str {
        "poly"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Shape> {
        for (what, v) in [("a", self.a), ("b", self.b), ("c", self.c)] {
            check_coefficient(what, v)?;
        }
        Ok(input.to_vec())
    }

    fn role(&self) -> Role<'_> {
        Role::Elementwise(self)
    }
}

impl Elementwise for Poly {
    fn apply(&self, x: f32) -> (f32, f32) {
        let Poly { a, b, c } = *self;
        (a * x * x + b * x + c, 2.0 * a * x + b)
    }
}
