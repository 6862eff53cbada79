//! A model lowered to its stages: consecutive linear layers composed into one map, squares,
//! and polynomial activations as power bases and the maps that weigh them. Planning (both
//! packings) and the bounds measured on plaintext run these stages.

use super::layer::{Layer, LinearRow, Poly, Polynomial, limits};
use super::model::Model;
use crate::{Error, PlanError, Result};
use std::collections::BTreeMap;

/// Composes `second ∘ first` (both as sparse rows with constants).
fn compose(first: &[LinearRow], second: &[LinearRow]) -> Vec<LinearRow> {
    second
        .iter()
        .map(|(b2, terms2)| {
            let mut bias = f64::from(*b2);
            let mut acc: BTreeMap<usize, f64> = BTreeMap::new();
            for &(i, w) in terms2 {
                let (b1, terms1) = &first[i];
                bias += f64::from(w) * f64::from(*b1);
                for &(k, v) in terms1 {
                    *acc.entry(k).or_insert(0.0) += f64::from(w) * f64::from(v);
                }
            }
            let terms = acc
                .into_iter()
                .filter(|(_, w)| *w != 0.0)
                .map(|(k, w)| (k, w as f32))
                .collect();
            (bias as f32, terms)
        })
        .collect()
}

/// Multiply-adds [`compose`] takes: for each term of `second`, the terms of the row of
/// `first` it reads.
fn composition_cost(first: &[LinearRow], second: &[LinearRow]) -> usize {
    second
        .iter()
        .flat_map(|(_, terms)| terms)
        .map(|&(i, _)| first.get(i).map_or(0, |(_, t)| t.len()))
        .fold(0usize, usize::saturating_add)
}

/// `y_i = w · x_i + b` for each of `width` values.
fn elementwise(width: usize, w: f32, b: f32) -> Vec<LinearRow> {
    (0..width).map(|i| (b, vec![(i, w)])).collect()
}

/// One stage of the encrypted pass.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Stage {
    /// A composed linear map.
    Linear(Vec<LinearRow>),
    /// x² of every value.
    Square,
    /// u¹ … u^d of every value, value-major (value k's u^i at k·d + i − 1); the polynomial's
    /// coefficients are in the linear map after it.
    Powers(usize),
    /// `Σ_{p ≥ 1} c_p · u^p` of every value, `coefficients` being c_1 … c_d (only from
    /// [`stages_with_polynomials`]; c_0 is in the linear map after it).
    Polynomial(Vec<f32>),
}

/// The model as linear maps between activations. A quadratic activation `a·x² + b·x + c`
/// becomes `a·(x + b/2a)² + (c − b²/4a)`: the shift joins the linear map before it and the
/// affine part the one after, so it costs one square like `x²` does (with `a = 0` it is
/// linear). A polynomial of degree d ≥ 3 in `u = x / range` becomes the map `x / range`, the
/// powers u¹ … u^d, and a map that weighs them with the coefficients (joined with the next
/// linear layer). Non-polynomial activations are refused.
pub(crate) fn stages(model: &Model) -> Result<Vec<Stage>> {
    stages_of(model, false)
}

/// [`stages`], with each polynomial of degree d ≥ 3 kept whole: the map `x / range`, then
/// [`Stage::Polynomial`], then the next linear map with c_0 composed into it. For a packing
/// whose linear maps cannot weigh d inputs per value for free (the latency packing).
pub(crate) fn stages_with_polynomials(model: &Model) -> Result<Vec<Stage>> {
    stages_of(model, true)
}

/// The refusal of an activation that is not a polynomial.
fn not_polynomial(i: usize, layer: &Layer) -> Error {
    match layer.smooth() {
        Some(f) => Error::Plan(PlanError::Unsupported(format!(
            "layer {i} is {}: the encrypted pass computes polynomials only; replace it with \
             an approximation first (hegpu import --approx {}:DEGREE)",
            f.name(),
            f.name()
        ))),
        None => Error::Internal(format!(
            "layer {i} is {}, an activation the planner does not know",
            layer.kind()
        )),
    }
}

fn stages_of(model: &Model, whole_polynomials: bool) -> Result<Vec<Stage>> {
    let shapes = model.shapes()?;
    let mut plan = Planner {
        out: Vec::new(),
        pending: None,
        composed: 0,
        whole_polynomials,
    };
    for (i, (layer, shape)) in model.layers.iter().zip(&shapes).enumerate() {
        let width: usize = shape.iter().product();
        match layer {
            Layer::Square(_) => plan.quadratic(width, (1.0, 0.0, 0.0)),
            &Layer::Poly(Poly { a, b, c }) => plan.quadratic(width, (a, b, c)),
            Layer::Polynomial(Polynomial {
                range,
                coefficients,
            }) => plan.polynomial(width, *range, coefficients),
            _ if layer.is_linear() => plan.linear(i, layer, shape)?,
            _ => return Err(not_polynomial(i, layer)),
        }
    }
    let mut out = plan.out;
    if let Some(rows) = plan.pending {
        out.push(Stage::Linear(rows));
    }
    let terms = linear_terms(&out);
    if terms > limits::WORK {
        return Err(Error::Plan(PlanError::Unsupported(format!(
            "the encrypted pass's linear maps hold {terms} terms per image (adjacent linear \
             layers composed), above the model's limit of {}",
            limits::WORK
        ))));
    }
    Ok(out)
}

/// The stages so far and the linear map not yet emitted (adjacent linear layers compose).
struct Planner {
    out: Vec<Stage>,
    pending: Option<Vec<LinearRow>>,
    /// Multiply-adds of composing adjacent linear layers, bounded by limits::COMPOSITION.
    composed: usize,
    whole_polynomials: bool,
}

impl Planner {
    /// The pending map followed by `rows`.
    fn then(&mut self, rows: Vec<LinearRow>) -> Vec<LinearRow> {
        match self.pending.take() {
            Some(prev) => compose(&prev, &rows),
            None => rows,
        }
    }

    /// a·x² + b·x + c (finite: Model::shapes has checked the coefficients).
    fn quadratic(&mut self, width: usize, (a, b, c): (f32, f32, f32)) {
        if a == 0.0 {
            self.pending = Some(self.then(elementwise(width, b, c)));
            return;
        }
        let shift = b / (2.0 * a);
        // Without a shift, a square straight after the input needs no map before it.
        let before = match (self.pending.is_some(), shift) {
            (false, 0.0) => None,
            (true, 0.0) => self.pending.take(),
            _ => Some(self.then(elementwise(width, 1.0, shift))),
        };
        self.out.extend(before.map(Stage::Linear));
        self.out.push(Stage::Square);
        let constant = c - b * shift / 2.0;
        if (a, constant) != (1.0, 0.0) {
            self.pending = Some(elementwise(width, a, constant));
        }
    }

    /// A polynomial in x / range: a quadratic up to degree 2; beyond, the map to u = x / range,
    /// then the polynomial kept whole or its powers, whose weights ride on the next map.
    fn polynomial(&mut self, width: usize, range: f32, coefficients: &[f32]) {
        let degree = coefficients.iter().rposition(|&c| c != 0.0).unwrap_or(0);
        // The coefficients of x (not u) up to degree 2.
        let of_x = |i: usize| {
            coefficients.get(i).map_or(0.0, |&c| {
                (f64::from(c) / f64::from(range).powi(i as i32)) as f32
            })
        };
        if degree <= 2 {
            return self.quadratic(width, (of_x(2), of_x(1), of_x(0)));
        }
        let to_u = self.then(elementwise(width, 1.0 / range, 0.0));
        self.out.push(Stage::Linear(to_u));
        if self.whole_polynomials {
            self.out
                .push(Stage::Polynomial(coefficients[1..=degree].to_vec()));
            self.pending = Some(elementwise(width, 1.0, coefficients[0]));
            return;
        }
        self.out.push(Stage::Powers(degree));
        self.pending = Some(
            (0..width)
                .map(|k| {
                    let terms = (1..=degree)
                        .filter(|&p| coefficients[p] != 0.0)
                        .map(|p| (k * degree + p - 1, coefficients[p]))
                        .collect();
                    (coefficients[0], terms)
                })
                .collect(),
        );
    }

    /// Linear layer `i`, composed into the pending map within limits::COMPOSITION.
    fn linear(&mut self, i: usize, layer: &Layer, shape: &[usize]) -> Result<()> {
        let rows = layer.linear_terms(shape)?.expect("linear layer");
        self.composed = self.composed.saturating_add(
            self.pending
                .as_ref()
                .map_or(0, |p| composition_cost(p, &rows)),
        );
        if self.composed > limits::COMPOSITION {
            return Err(Error::Plan(PlanError::Unsupported(format!(
                "layer {i} ({}) follows a linear map with no activation between: composing the \
                 linear layers so far takes {} multiply-adds, above the limit of {}",
                layer.kind(),
                self.composed,
                limits::COMPOSITION
            ))));
        }
        self.pending = Some(self.then(rows));
        Ok(())
    }
}

/// Weighted terms and constants of the linear stages.
fn linear_terms(stages: &[Stage]) -> usize {
    stages
        .iter()
        .map(|s| match s {
            Stage::Linear(rows) => rows.iter().map(|(_, t)| t.len() + 1).sum(),
            _ => 0,
        })
        .sum()
}

/// Plaintext operations of one image through the encrypted pass's stages (what
/// [`Bounds::measure`](super::Bounds::measure) spends per calibration image): the terms of the linear maps, the
/// composed ones included, and for every square or power basis its values.
pub fn stage_work(model: &Model) -> Result<usize> {
    let stages = stages(model)?;
    let mut width = model.input_len();
    let mut work = 0;
    for stage in &stages {
        work += match stage {
            Stage::Linear(rows) => {
                width = rows.len();
                0
            }
            Stage::Square => width,
            Stage::Powers(d) => width * d,
            Stage::Polynomial(c) => width * c.len(),
        };
    }
    Ok(work + linear_terms(&stages))
}

/// Every stage applied to one image's values.
pub(crate) fn run_stages(stages: &[Stage], image: &[f32], mut each: impl FnMut(usize, &[f32])) {
    let mut x = image.to_vec();
    for (s, stage) in stages.iter().enumerate() {
        x = match stage {
            Stage::Linear(rows) => rows
                .iter()
                .map(|(b, t)| b + t.iter().map(|&(k, w)| w * x[k]).sum::<f32>())
                .collect(),
            Stage::Square => x.iter().map(|v| v * v).collect(),
            &Stage::Powers(d) => x
                .iter()
                .flat_map(|&v| (1..=d as i32).map(move |p| v.powi(p)))
                .collect(),
            Stage::Polynomial(c) => x.iter().map(|&v| polynomial(c, v)).collect(),
        };
        each(s, &x);
    }
}

/// `Σ_{p ≥ 1} c_p · v^p` (`c`: c_1 … c_d).
pub(crate) fn polynomial(c: &[f32], v: f32) -> f32 {
    c.iter().rev().fold(0.0, |acc, &cp| (acc + cp) * v)
}

/// Levels the encrypted pass of `model` uses: one per linear map and per square, ⌈log2 d⌉ per
/// polynomial of degree d ≥ 3 (its powers, the top ones left unrelinearized and unrescaled,
/// take ⌈log2 d⌉ − 1; the next linear map rescales twice; the coefficients ride on its
/// weights).
pub fn levels_needed(model: &Model) -> Result<usize> {
    Ok(stages(model)?.iter().map(stage_levels).sum())
}

/// Levels one stage takes (see [`levels_needed`]); a whole polynomial of degree d takes
/// ⌈log2 d⌉ + 1: its powers, and a sparse map that weighs them into one value.
pub(crate) fn stage_levels(stage: &Stage) -> usize {
    match stage {
        Stage::Linear(_) | Stage::Square => 1,
        Stage::Powers(d) => d.next_power_of_two().trailing_zeros() as usize,
        Stage::Polynomial(c) => c.len().next_power_of_two().trailing_zeros() as usize + 1,
    }
}
