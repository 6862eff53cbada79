//! What calibration images tell a plan: the range of the inputs, and the largest value after
//! every stage. The plan fits its scales to them, so an input outside that range can overflow
//! a modulus the ciphertext cannot see, and decrypt to garbage without any error: the client
//! checks its inputs against the range before it encrypts.

use super::model::Model;
use super::stages::{run_stages, stages};
use crate::{Error, PlanError, Result};

/// The values inputs took on the calibration images: `[low, high]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InputRange {
    pub low: f32,
    pub high: f32,
}

impl InputRange {
    /// `[low, high]`: finite, `low ≤ high`.
    pub fn new(low: f32, high: f32) -> Result<Self> {
        if low.is_finite() && high.is_finite() && low <= high {
            Ok(Self { low, high })
        } else {
            Err(Error::Config(format!(
                "input range [{low}, {high}]: two finite bounds, the low one first"
            )))
        }
    }

    /// The range of `values`, which must be finite and not empty.
    pub fn of(values: &[f32]) -> Result<Self> {
        if values.is_empty() {
            return Err(Error::Plan(PlanError::Calibration(
                "no calibration values to bound the inputs".into(),
            )));
        }
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(Error::Plan(PlanError::Calibration(format!(
                "calibration value {v} is not finite"
            ))));
        }
        let (low, high) = values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        Ok(Self { low, high })
    }

    pub fn contains(&self, v: f32) -> bool {
        (self.low..=self.high).contains(&v)
    }

    /// An error naming the first value of `images` (`[image][input]`, `per_image` each)
    /// outside the range (NaN included).
    pub fn check(&self, images: &[f32], per_image: usize) -> Result<()> {
        match images.iter().position(|&v| !self.contains(v)) {
            None => Ok(()),
            Some(at) => Err(Error::Encoding(format!(
                "input {} of image {} is {}, outside [{}, {}], the range the plan was calibrated \
                 for: its values could overflow the modulus and decrypt to garbage (clamp the \
                 inputs, or plan with calibration images that cover them)",
                at % per_image.max(1),
                at / per_image.max(1),
                images[at],
                self.low,
                self.high
            ))),
        }
    }

    /// Clamps `values` into the range (NaN becomes `low`); returns how many changed.
    pub fn clamp(&self, values: &mut [f32]) -> usize {
        let mut changed = 0;
        for v in values.iter_mut().filter(|v| !self.contains(**v)) {
            *v = if v.is_nan() {
                self.low
            } else {
                v.clamp(self.low, self.high)
            };
            changed += 1;
        }
        changed
    }
}

/// A batch-packing plan's calibration: the input range and the largest |activation| after
/// every stage.
#[derive(Clone, Debug, PartialEq)]
pub struct Bounds {
    pub input: InputRange,
    pub stages: Vec<f32>,
}

impl Bounds {
    /// Runs `images` (`[image][input]`, whole images) through `model`'s stages in plaintext.
    pub fn measure(model: &Model, images: &[f32]) -> Result<Self> {
        let stages = stages(model)?;
        let len = model.input_len();
        if images.is_empty() || !images.len().is_multiple_of(len) {
            return Err(Error::Plan(PlanError::Calibration(format!(
                "{} calibration values are not whole images of {len}",
                images.len()
            ))));
        }
        let input = InputRange::of(images)?;
        let mut bounds = vec![0.0f32; stages.len()];
        for img in images.chunks(len) {
            run_stages(&stages, img, |s, x| {
                let m = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                bounds[s] = bounds[s].max(m);
            });
        }
        Ok(Self {
            input,
            stages: bounds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_outside_the_range_are_named_and_clamped() {
        let range = InputRange::of(&[0.0, 0.25, 1.0]).unwrap();
        assert_eq!(
            range,
            InputRange {
                low: 0.0,
                high: 1.0
            }
        );
        assert!(range.check(&[0.0, 1.0, 0.5, 0.5], 2).is_ok());
        let e = range
            .check(&[0.0, 1.0, 0.5, 100.0], 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("input 1 of image 1 is 100, outside [0, 1]"),
            "{e}"
        );
        assert!(range.check(&[f32::NAN], 1).is_err());
        let mut values = [-1.0, 0.5, 3.0, f32::NAN];
        assert_eq!(range.clamp(&mut values), 3);
        assert_eq!(values, [0.0, 0.5, 1.0, 0.0]);
        assert!(InputRange::of(&[]).is_err() && InputRange::of(&[f32::INFINITY]).is_err());
        assert_eq!(InputRange::new(0.0, 1.0).unwrap(), range);
        assert!(InputRange::new(1.0, 0.0).is_err() && InputRange::new(f32::NAN, 1.0).is_err());
    }
}
