//! 2-d convolutions.

use super::check::{check_parameters, check_sizes, grow, product, spatial, window_out};
use super::{Kind, Linear, LinearRow, Role, Shape, bad, limits};
use crate::Result;
use serde::{Deserialize, Serialize};

/// A 2-d convolution (cross-correlation) with square kernels and symmetric zero padding:
/// `[in_channels, h, w]` → `[out_channels, (h + 2·padding − kernel) / stride + 1, …]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conv2d {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    /// `[out_channels][in_channels][kernel][kernel]`, row-major (in a model file, the tensor
    /// `{i}.weight` of layer `i`).
    #[serde(skip)]
    pub weight: Vec<f32>,
    /// One per output channel (the tensor `{i}.bias`).
    #[serde(skip)]
    pub bias: Vec<f32>,
}

impl Conv2d {
    /// `[out_channels, in_channels, kernel, kernel]`.
    fn weight_dims(&self) -> [usize; 4] {
        let k = self.kernel;
        [self.out_channels, self.in_channels, k, k]
    }

    /// Calls `tap(output index, input index, weight index)` for every product of the
    /// convolution of `input` giving `output`, in output order and, within an output, in
    /// weight order (padding skipped).
    fn for_each_tap(
        &self,
        input: &[usize],
        output: &[usize],
        mut tap: impl FnMut(usize, usize, usize),
    ) {
        let (h, w) = (input[1], input[2]);
        let (oc, oh, ow, k) = (output[0], output[1], output[2], self.kernel);
        let (stride, padding) = (self.stride, self.padding);
        for o in 0..oc * oh * ow {
            let (f, oy, ox) = (o / (oh * ow), (o / ow) % oh, o % ow);
            for ci in 0..self.in_channels {
                for ky in 0..k {
                    let Some(y) = (oy * stride + ky).checked_sub(padding).filter(|&y| y < h) else {
                        continue;
                    };
                    for kx in 0..k {
                        let Some(x) = (ox * stride + kx).checked_sub(padding).filter(|&x| x < w)
                        else {
                            continue;
                        };
                        let wi = ((f * self.in_channels + ci) * k + ky) * k + kx;
                        tap(o, (ci * h + y) * w + x, wi);
                    }
                }
            }
        }
    }
}

impl Kind for Conv2d {
    fn name(&self) -> &'static str {
        "conv2d"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Shape> {
        let (c, h, w) = spatial(input, "Conv2d")?;
        check_sizes(&[
            ("output channels", self.out_channels),
            ("kernel", self.kernel),
            ("stride", self.stride),
            ("padding", self.padding),
        ])?;
        if c != self.in_channels {
            return Err(bad(format!(
                "Conv2d expects {} channels, got {c}",
                self.in_channels
            )));
        }
        let out = self.out_channels;
        check_parameters(
            "Conv2d",
            (&self.weight, &self.bias),
            &self.weight_dims(),
            out,
        )?;
        let out = |size, what| {
            let padded = grow(size, self.padding, self.padding, what)?;
            window_out(padded, self.kernel, self.stride, "Conv2d")
        };
        Ok(vec![self.out_channels, out(h, "height")?, out(w, "width")?])
    }

    fn role(&self) -> Role<'_> {
        Role::Linear(self)
    }

    fn backward(
        &self,
        input: &[usize],
        output: &[usize],
        x: &[f32],
        grad: &[f32],
        pgrad: &mut [f32],
    ) -> Vec<f32> {
        let plane = output[1] * output[2];
        let (pweight, pbias) = pgrad.split_at_mut(self.weight.len());
        for (o, &g) in grad.iter().enumerate() {
            pbias[o / plane] += g;
        }
        let mut gx = vec![0.0f32; x.len()];
        self.for_each_tap(input, output, |o, i, wi| {
            gx[i] += self.weight[wi] * grad[o];
            pweight[wi] += x[i] * grad[o];
        });
        gx
    }

    fn weight_shape(&self) -> Option<Vec<usize>> {
        Some(self.weight_dims().to_vec())
    }

    fn parameters(&self) -> Option<(&[f32], &[f32])> {
        Some((&self.weight, &self.bias))
    }

    fn parameters_mut(&mut self) -> Option<(&mut Vec<f32>, &mut Vec<f32>)> {
        Some((&mut self.weight, &mut self.bias))
    }
}

impl Linear for Conv2d {
    fn terms_per_output(&self) -> Result<usize> {
        let k = self.kernel;
        product(&[self.in_channels, k, k], limits::TERMS, "terms")
    }

    fn linear_terms(&self, input: &[usize], output: &[usize]) -> Vec<LinearRow> {
        let mut rows: Vec<LinearRow> = (0..output.iter().product())
            .map(|o| (self.bias[o / (output[1] * output[2])], Vec::new()))
            .collect();
        self.for_each_tap(input, output, |o, i, wi| {
            rows[o].1.push((i, self.weight[wi]))
        });
        rows
    }
}
