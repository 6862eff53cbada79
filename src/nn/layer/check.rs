//! Checks every layer kind shares: sizes within the [`limits`](super::limits), products
//! without overflow, coefficients that the encrypted pass can scale.

use super::limits;
use crate::{Error, Result};

/// A shape error.
pub(in crate::nn) fn bad(why: impl Into<String>) -> Error {
    Error::Shape(why.into())
}

/// `a · b · …` or an error naming `what` when it overflows or passes `limit`.
pub(in crate::nn) fn product(factors: &[usize], limit: usize, what: &str) -> Result<usize> {
    factors
        .iter()
        .try_fold(1usize, |acc, &f| acc.checked_mul(f))
        .filter(|&t| t <= limit)
        .ok_or_else(|| {
            let factors: Vec<String> = factors.iter().map(usize::to_string).collect();
            bad(format!(
                "{what}: {} exceeds the limit of {limit}",
                factors.join(" × ")
            ))
        })
}

/// An error unless every size in `sizes` (named) is at most [`limits::DIMENSION`].
pub(super) fn check_sizes(sizes: &[(&str, usize)]) -> Result<()> {
    match sizes.iter().find(|(_, v)| *v > limits::DIMENSION) {
        Some((name, v)) => Err(bad(format!(
            "{name} {v} exceeds the limit of {}",
            limits::DIMENSION
        ))),
        None => Ok(()),
    }
}

/// `[channels, height, width]`, each within the limits, or an error naming the layer `what`.
pub(super) fn spatial(shape: &[usize], what: &str) -> Result<(usize, usize, usize)> {
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

/// How many windows of `window` at `stride` fit in `size`.
pub(super) fn window_out(size: usize, window: usize, stride: usize, what: &str) -> Result<usize> {
    if window == 0 || stride == 0 || window > size {
        return Err(bad(format!(
            "{what}: window {window} stride {stride} on size {size}"
        )));
    }
    Ok((size - window) / stride + 1)
}

/// `size + a + b`, or an error naming `what` on overflow.
pub(super) fn grow(size: usize, a: usize, b: usize, what: &str) -> Result<usize> {
    size.checked_add(a)
        .and_then(|s| s.checked_add(b))
        .ok_or_else(|| bad(format!("{what} overflows")))
}

/// `v` is finite and within ±[`limits::COEFFICIENT`].
pub(super) fn check_coefficient(what: impl std::fmt::Display, v: f32) -> Result<()> {
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

/// Weight and bias lengths that a layer's sizes ask for (`weights`: the factors of the weight
/// count; one bias per output), or an error naming the layer.
pub(super) fn check_parameters(
    what: &str,
    (weight, bias): (&[f32], &[f32]),
    weights: &[usize],
    outputs: usize,
) -> Result<()> {
    let weights = product(weights, limits::TERMS, &format!("{what} weights"))?;
    if weight.len() != weights || bias.len() != outputs {
        return Err(bad(format!("{what} weight or bias has the wrong length")));
    }
    Ok(())
}
