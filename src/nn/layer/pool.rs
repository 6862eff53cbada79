//! Pooling: sums and means over windows.

use super::check::{check_sizes, product, spatial, window_out};
use super::{Kind, Linear, LinearRow, Role, Shape, limits};
use crate::Result;
use serde::{Deserialize, Serialize};

/// The sum over `window`×`window` windows every `stride` values (no padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SumPool {
    pub window: usize,
    pub stride: usize,
}

/// The mean over `window`×`window` windows every `stride` values (no padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvgPool {
    pub window: usize,
    pub stride: usize,
}

/// The output shape of pooling windows over `input`.
fn pooled(input: &[usize], window: usize, stride: usize) -> Result<Shape> {
    let (c, h, w) = spatial(input, "pooling")?;
    check_sizes(&[("window", window), ("stride", stride)])?;
    Ok(vec![
        c,
        window_out(h, window, stride, "pooling")?,
        window_out(w, window, stride, "pooling")?,
    ])
}

/// The terms of one window.
fn window_terms(window: usize) -> Result<usize> {
    product(&[window, window], limits::TERMS, "terms")
}

/// The rows of pooling windows over `input` giving `output`, each value weighted by `share`.
fn rows(
    input: &[usize],
    output: &[usize],
    [window, stride]: [usize; 2],
    share: f32,
) -> Vec<LinearRow> {
    let (h, w) = (input[1], input[2]);
    let (c, oh, ow) = (output[0], output[1], output[2]);
    (0..c * oh * ow)
        .map(|o| {
            let (ch, oy, ox) = (o / (oh * ow), (o / ow) % oh, o % ow);
            let terms = (0..window * window).map(|k| {
                let (y, x) = (oy * stride + k / window, ox * stride + k % window);
                ((ch * h + y) * w + x, share)
            });
            (0.0, terms.collect())
        })
        .collect()
}

impl Kind for SumPool {
    fn name(&self) -> &'static str {
        "sum_pool"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Shape> {
        pooled(input, self.window, self.stride)
    }

    fn role(&self) -> Role<'_> {
        Role::Linear(self)
    }
}

impl Linear for SumPool {
    fn terms_per_output(&self) -> Result<usize> {
        window_terms(self.window)
    }

    fn linear_terms(&self, input: &[usize], output: &[usize]) -> Vec<LinearRow> {
        rows(input, output, [self.window, self.stride], 1.0)
    }
}

impl Kind for AvgPool {
    fn name(&self) -> &'static str {
        "avg_pool"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Shape> {
        pooled(input, self.window, self.stride)
    }

    fn role(&self) -> Role<'_> {
        Role::Linear(self)
    }
}

impl Linear for AvgPool {
    fn terms_per_output(&self) -> Result<usize> {
        window_terms(self.window)
    }

    fn linear_terms(&self, input: &[usize], output: &[usize]) -> Vec<LinearRow> {
        let share = 1.0 / (self.window * self.window) as f32;
        rows(input, output, [self.window, self.stride], share)
    }
}
