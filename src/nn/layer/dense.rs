//! Fully connected layers.

use super::check::check_parameters;
use super::{Kind, Linear, LinearRow, Role, Shape, bad};
use crate::Result;
use serde::{Deserialize, Serialize};

/// A fully connected layer: `[inputs]` → `[outputs]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dense {
    pub inputs: usize,
    pub outputs: usize,
    /// `[outputs][inputs]`, row-major (in a model file, the tensor `{i}.weight` of layer `i`).
    #[serde(skip)]
    pub weight: Vec<f32>,
    /// One per output (the tensor `{i}.bias`).
    #[serde(skip)]
    pub bias: Vec<f32>,
}

impl Dense {
    /// A layer from `inputs` to `outputs` with weights and biases zero. Panics when
    /// `inputs × outputs` overflows (a layer that large fails [`limits::TERMS`](super::limits::TERMS)
    /// anyway).
    pub fn zeros(inputs: usize, outputs: usize) -> Dense {
        Dense {
            inputs,
            outputs,
            weight: vec![
                0.0;
                inputs
                    .checked_mul(outputs)
                    .expect("a weight count that fits")
            ],
            bias: vec![0.0; outputs],
        }
    }

    /// Output `j`'s weights.
    fn row(&self, j: usize) -> &[f32] {
        &self.weight[j * self.inputs..(j + 1) * self.inputs]
    }
}

impl Kind for Dense {
    fn name(&self) -> &'static str {
        "dense"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Shape> {
        if input != [self.inputs] {
            return Err(bad(format!(
                "Dense expects [{}], got {input:?}",
                self.inputs
            )));
        }
        let (inputs, outputs) = (self.inputs, self.outputs);
        check_parameters(
            "Dense",
            (&self.weight, &self.bias),
            &[inputs, outputs],
            outputs,
        )?;
        Ok(vec![self.outputs])
    }

    fn role(&self) -> Role<'_> {
        Role::Linear(self)
    }

    fn forward(&self, _input: &[usize], _output: &[usize], x: &[f32]) -> Vec<f32> {
        (0..self.outputs)
            .map(|j| self.bias[j] + self.row(j).iter().zip(x).map(|(w, v)| w * v).sum::<f32>())
            .collect()
    }

    fn backward(
        &self,
        _input: &[usize],
        _output: &[usize],
        x: &[f32],
        grad: &[f32],
        pgrad: &mut [f32],
    ) -> Vec<f32> {
        let k = self.inputs;
        let (pweight, pbias) = pgrad.split_at_mut(self.weight.len());
        let mut gx = vec![0.0f32; k];
        for (j, &g) in grad.iter().enumerate() {
            if g == 0.0 {
                continue;
            }
            let prow = &mut pweight[j * k..(j + 1) * k];
            for ((gxi, (&w, pw)), &xi) in gx.iter_mut().zip(self.row(j).iter().zip(prow)).zip(x) {
                *gxi += w * g;
                *pw += xi * g;
            }
            pbias[j] += g;
        }
        gx
    }

    fn weight_shape(&self) -> Option<Vec<usize>> {
        Some(vec![self.outputs, self.inputs])
    }

    fn parameters(&self) -> Option<(&[f32], &[f32])> {
        Some((&self.weight, &self.bias))
    }

    fn parameters_mut(&mut self) -> Option<(&mut Vec<f32>, &mut Vec<f32>)> {
        Some((&mut self.weight, &mut self.bias))
    }
}

impl Linear for Dense {
    fn terms_per_output(&self) -> Result<usize> {
        Ok(self.inputs)
    }

    fn linear_terms(&self, _input: &[usize], _output: &[usize]) -> Vec<LinearRow> {
        let rows = (0..self.outputs).map(|j| {
            (
                self.bias[j],
                self.row(j).iter().copied().enumerate().collect(),
            )
        });
        rows.collect()
    }
}
