//! Polynomials of any degree.

use super::check::check_coefficient;
use super::{Elementwise, Kind, Role, Shape, bad, limits};
use crate::Result;
use serde::{Deserialize, Serialize};

/// `Σ_i coefficients[i] · (x / range)^i`: a polynomial of any degree in the input scaled by
/// the range it was made for (an approximation of ReLU on [-range, range], see
/// [`approximate`](crate::nn::approximate); `range` 1 for a plain polynomial). The encrypted
/// pass keeps `x / range` within [-1, 1] so that no power grows past the modulus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Polynomial {
    pub range: f32,
    pub coefficients: Vec<f32>,
}

impl Kind for Polynomial {
    fn name(&self) -> &'static str {
        "polynomial"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Shape> {
        let range = self.range;
        if !(1.0 / limits::RANGE..=limits::RANGE).contains(&range) {
            return Err(bad(format!(
                "range {range:e}: a Polynomial's range lies within [{:e}, {:e}]",
                1.0 / limits::RANGE,
                limits::RANGE
            )));
        }
        let count = self.coefficients.len();
        if count == 0 || count > limits::DEGREE + 1 {
            return Err(bad(format!(
                "a Polynomial of {count} coefficients: 1 to {} (degree at most {})",
                limits::DEGREE + 1,
                limits::DEGREE
            )));
        }
        for (i, &v) in self.coefficients.iter().enumerate() {
            check_coefficient(format_args!("coefficient {i}"), v)?;
        }
        Ok(input.to_vec())
    }

    fn role(&self) -> Role<'_> {
        Role::Elementwise(self)
    }
}

impl Elementwise for Polynomial {
    fn steps_per_output(&self) -> usize {
        self.coefficients.len()
    }

    fn apply(&self, x: f32) -> (f32, f32) {
        // Horner in f64 on u = x / range: value and derivative together.
        let u = f64::from(x) / f64::from(self.range);
        let (mut value, mut slope) = (0.0f64, 0.0f64);
        for &c in self.coefficients.iter().rev() {
            slope = slope * u + value;
            value = value * u + f64::from(c);
        }
        (value as f32, (slope / f64::from(self.range)) as f32)
    }
}
