//! Polynomial stand-ins for ReLU, sigmoid, tanh and SiLU, so that a network trained with them
//! can run encrypted.
//!
//! Each activation is replaced in turn, first to last. The replacement is fitted on the values
//! that reach it when calibration images (training data) pass through the model with the
//! earlier activations already replaced. The range is the largest |value| seen, with a margin.
//!
//! The fit is least squares in the Chebyshev basis of `u = x / range`, which stays well
//! conditioned where the power basis is not. Weights:
//! - the calibration values themselves (the polynomial is accurate where the data lies);
//! - plus a tenth as much on Chebyshev nodes over the whole range (it stays close everywhere
//!   in between).
//!
//! The result is a [`Layer::Polynomial`] in powers of `u`.

use super::layer::{Activation, Layer, Polynomial};
use super::model::{Model, in_layer};
use crate::{Error, PlanError, Result};
use std::fmt;
use std::str::FromStr;

/// The range is the largest calibration value times this.
const MARGIN: f64 = 1.05;
/// Calibration values used per fit, at most (evenly strided).
const MOST_SAMPLES: usize = 200_000;
/// Chebyshev nodes over the whole range.
const NODES: usize = 256;
/// Weight of all the nodes together, relative to all the calibration values together.
const NODE_WEIGHT: f64 = 0.1;
/// Highest degree an approximation may have: beyond it the power-basis coefficients of
/// `u = x / range` grow past what the encrypted pass keeps precise (T_16 has 2^15).
pub const MOST_DEGREE: usize = 16;

/// "Replace every `function` with a polynomial of `degree`" (`relu:4` on the command line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApproxSpec {
    pub function: Activation,
    pub degree: usize,
}

impl FromStr for ApproxSpec {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let bad = || {
            let names: Vec<&str> = Activation::ALL.iter().map(|f| f.name()).collect();
            Error::Config(format!(
                "approximation '{text}': FUNCTION:DEGREE with FUNCTION one of {} and DEGREE 2 \
                 to {MOST_DEGREE}",
                names.join(", ")
            ))
        };
        let (name, degree) = text.trim().split_once(':').ok_or_else(bad)?;
        let function = Activation::from_name(name.trim()).ok_or_else(bad)?;
        match degree.trim().parse::<usize>() {
            Ok(degree) if (2..=MOST_DEGREE).contains(&degree) => Ok(Self { function, degree }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for ApproxSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.function.name(), self.degree)
    }
}

/// What one replacement did.
#[derive(Clone, Debug, PartialEq)]
pub struct Replaced {
    /// The layer's index in the model.
    pub layer: usize,
    pub spec: ApproxSpec,
    /// The polynomial holds on [-range, range].
    pub range: f32,
    /// Largest |f(x) − p(x)| over the calibration values.
    pub max_error: f32,
}

/// `model` with every activation that `specs` names replaced by its polynomial, fitted on
/// `calibration` (images, concatenated); an error names an activation no spec covers, or a
/// function two specs name.
pub fn approximate(
    model: &Model,
    calibration: &[f32],
    specs: &[ApproxSpec],
) -> Result<(Model, Vec<Replaced>)> {
    for (i, a) in specs.iter().enumerate() {
        if let Some(b) = specs[..i].iter().find(|b| b.function == a.function) {
            return Err(Error::Config(format!(
                "{} is approximated twice ({b} and {a}): give one degree per function",
                a.function.name()
            )));
        }
    }
    let shapes = model.shapes()?;
    let len = model.input_len();
    if calibration.is_empty() || !calibration.len().is_multiple_of(len) {
        return Err(Error::Plan(PlanError::Calibration(
            "approximation needs whole calibration images".into(),
        )));
    }
    let mut out = model.clone();
    let mut replaced = Vec::new();
    // Every calibration image's values before layer `at`, advanced layer by layer.
    let mut values: Vec<Vec<f32>> = calibration.chunks(len).map(<[f32]>::to_vec).collect();
    for (at, shape) in shapes.windows(2).enumerate() {
        if let Some(function) = out.layers[at].smooth() {
            let spec = *specs
                .iter()
                .find(|s| s.function == function)
                .ok_or_else(|| {
                    Error::Config(format!(
                        "layer {at} is {}: say how to approximate it ({}:DEGREE)",
                        function.name(),
                        function.name()
                    ))
                })?;
            let seen: Vec<f32> = values.iter().flatten().copied().collect();
            let (layer, range, max_error) = fit_polynomial(function, spec.degree, &seen)?;
            // The fit keeps the limits of every layer (a coefficient within ±2^20, say).
            layer
                .output_shape(&shape[0])
                .map_err(|e| in_layer(at, &layer, e))?;
            out.layers[at] = layer;
            replaced.push(Replaced {
                layer: at,
                spec,
                range,
                max_error,
            });
        }
        let layer = &out.layers[at];
        for v in &mut values {
            *v = layer.forward_checked([&shape[0], &shape[1]], v);
        }
    }
    Ok((out, replaced))
}

/// The polynomial of `degree` closest to `f` on `samples` (see the module notes), with its
/// range and its largest error on the samples.
pub fn fit_polynomial(f: Activation, degree: usize, samples: &[f32]) -> Result<(Layer, f32, f32)> {
    let largest = samples.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if !largest.is_finite() {
        return Err(Error::Plan(PlanError::Calibration(format!(
            "the values reaching a {} are not finite",
            f.name()
        ))));
    }
    let range = (f64::from(largest) * MARGIN).max(1e-3);
    let stride = samples.len().div_ceil(MOST_SAMPLES).max(1);
    let data: Vec<f64> = samples
        .iter()
        .step_by(stride)
        .map(|&x| f64::from(x) / range)
        .collect();
    let nodes: Vec<f64> = (0..NODES)
        .map(|k| (std::f64::consts::PI * (k as f64 + 0.5) / NODES as f64).cos())
        .collect();
    let (wd, wn) = (1.0 / data.len().max(1) as f64, NODE_WEIGHT / NODES as f64);
    let target = |u: f64| f64::from(f.apply((u * range) as f32).0);
    // Normal equations AᵀWA c = AᵀW y in the Chebyshev basis.
    let n = degree + 1;
    let mut gram = vec![0.0f64; n * n];
    let mut rhs = vec![0.0f64; n];
    let points = data
        .iter()
        .map(|&u| (u, wd))
        .chain(nodes.iter().map(|&u| (u, wn)));
    for (u, w) in points {
        let t = chebyshev(u, degree);
        let y = target(u);
        for i in 0..n {
            rhs[i] += w * t[i] * y;
            for j in 0..n {
                gram[i * n + j] += w * t[i] * t[j];
            }
        }
    }
    let cheb = solve(gram, rhs, n).ok_or_else(|| {
        Error::Plan(PlanError::Calibration(format!(
            "the {} samples do not determine a polynomial of degree {degree}",
            f.name()
        )))
    })?;
    let power = chebyshev_to_power(&cheb);
    let layer = Layer::Polynomial(Polynomial {
        range: range as f32,
        coefficients: power.iter().map(|&c| c as f32).collect(),
    });
    let max_error = samples
        .iter()
        .step_by(stride)
        .map(|&x| (layer.activation(x).expect("a polynomial").0 - f.apply(x).0).abs())
        .fold(0.0f32, f32::max);
    Ok((layer, range as f32, max_error))
}

/// T_0(u) … T_d(u).
fn chebyshev(u: f64, degree: usize) -> Vec<f64> {
    let mut t = vec![1.0, u];
    for k in 2..=degree {
        t.push(2.0 * u * t[k - 1] - t[k - 2]);
    }
    t.truncate(degree + 1);
    t
}

/// Σ c_k T_k(u) in powers of u.
fn chebyshev_to_power(c: &[f64]) -> Vec<f64> {
    let n = c.len();
    // The power coefficients of T_{k-1} and T_k.
    let (mut before, mut now) = (vec![0.0; n], vec![0.0; n]);
    let mut out = vec![0.0; n];
    for (k, &ck) in c.iter().enumerate() {
        let next = match k {
            0 => {
                let mut t = vec![0.0; n];
                t[0] = 1.0;
                t
            }
            1 => {
                let mut t = vec![0.0; n];
                t[1] = 1.0;
                t
            }
            _ => (0..n)
                .map(|i| (if i > 0 { 2.0 * now[i - 1] } else { 0.0 }) - before[i])
                .collect(),
        };
        for (o, t) in out.iter_mut().zip(&next) {
            *o += ck * t;
        }
        before = std::mem::replace(&mut now, next);
    }
    out
}

/// Solves the symmetric system `a x = b` (n × n, row-major) by Gaussian elimination with
/// partial pivoting; None when it is singular.
fn solve(mut a: Vec<f64>, mut b: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    for col in 0..n {
        let pivot =
            (col..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))?;
        if a[pivot * n + col].abs() < 1e-14 {
            return None;
        }
        for k in 0..n {
            a.swap(col * n + k, pivot * n + k);
        }
        b.swap(col, pivot);
        for row in col + 1..n {
            let m = a[row * n + col] / a[col * n + col];
            for k in col..n {
                a[row * n + k] -= m * a[col * n + k];
            }
            b[row] -= m * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row * n + k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row * n + row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chebyshev_polynomials_in_powers_match_their_recurrence() {
        // T_4 = 8u⁴ − 8u² + 1, T_5 = 16u⁵ − 20u³ + 5u.
        assert_eq!(
            chebyshev_to_power(&[0.0, 0.0, 0.0, 0.0, 1.0]),
            [1.0, 0.0, -8.0, 0.0, 8.0]
        );
        assert_eq!(
            chebyshev_to_power(&[0.0, 0.0, 0.0, 0.0, 0.0, 1.0]),
            [0.0, 5.0, 0.0, -20.0, 0.0, 16.0]
        );
        for u in [-0.9, -0.3, 0.0, 0.4, 1.0] {
            let t = chebyshev(u, 5);
            assert!((t[5] - (16.0 * u.powi(5) - 20.0 * u.powi(3) + 5.0 * u)).abs() < 1e-12);
        }
    }

    #[test]
    fn a_polynomial_is_fitted_exactly() {
        // The solver recovers a system with a known answer.
        let x = solve(vec![4.0, 1.0, 1.0, 3.0], vec![1.0, 2.0], 2).unwrap();
        assert!((x[0] - 1.0 / 11.0).abs() < 1e-12 && (x[1] - 7.0 / 11.0).abs() < 1e-12);
        assert!(solve(vec![1.0, 2.0, 2.0, 4.0], vec![1.0, 2.0], 2).is_none());
    }

    #[test]
    fn relu_approximations_improve_with_degree() {
        // Values like a hidden layer's: most near zero, a few far out.
        let samples: Vec<f32> = (0..20_000)
            .map(|i| {
                let t = (i as f32 * 0.618_034).fract() * 2.0 - 1.0;
                4.0 * t * t * t
            })
            .collect();
        let errors: Vec<f32> = [2, 4, 8]
            .iter()
            .map(|&d| fit_polynomial(Activation::Relu, d, &samples).unwrap().2)
            .collect();
        assert!(errors[0] > errors[1] && errors[1] > errors[2], "{errors:?}");
        // Degree 8 on [-4.2, 4.2]: |relu − p| stays within 0.1 on every sample.
        assert!(errors[2] < 0.1, "{errors:?}");
        let (layer, range, _) = fit_polynomial(Activation::Sigmoid, 6, &samples).unwrap();
        assert!((range - 4.2).abs() < 1e-3);
        for x in [-4.0f32, -1.0, 0.0, 0.5, 3.9] {
            let got = layer.activation(x).unwrap().0;
            assert!(
                (got - Activation::Sigmoid.apply(x).0).abs() < 0.02,
                "{x}: {got}"
            );
        }
    }

    #[test]
    fn specs_parse_and_refuse_clearly() {
        let spec: ApproxSpec = "relu:4".parse().unwrap();
        assert_eq!(
            spec,
            ApproxSpec {
                function: Activation::Relu,
                degree: 4
            }
        );
        assert_eq!(spec.to_string(), "relu:4");
        for bad in ["relu", "gelu:4", "relu:1", "relu:99", "relu:x", ""] {
            let e = bad.parse::<ApproxSpec>().unwrap_err().to_string();
            assert!(e.contains("FUNCTION:DEGREE"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_function_named_twice_is_an_error() {
        let model = Model {
            input: vec![2],
            layers: vec![Layer::from(Activation::Relu)],
        };
        let specs: Vec<ApproxSpec> = ["relu:4", "relu:8"].map(|s| s.parse().unwrap()).to_vec();
        let e = approximate(&model, &[1.0, -1.0], &specs)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("relu is approximated twice (relu:4 and relu:8)"),
            "{e}"
        );
        assert!(approximate(&model, &[1.0, -1.0], &specs[1..]).is_ok());
    }

    /// A fit whose coefficients pass the model's limits is refused naming its layer, as the
    /// model's own shape check would name it.
    #[test]
    fn a_fit_beyond_the_limits_names_its_layer() {
        let mut dense = crate::nn::layer::Dense::zeros(1, 1);
        dense.weight[0] = 1.0;
        let model = Model {
            input: vec![1],
            layers: vec![Layer::Dense(dense), Layer::from(Activation::Relu)],
        };
        let calibration: Vec<f32> = (0..4000).map(|i| (i as f32 / 2000.0) - 1.0).collect();
        let mut refused = None;
        for degree in [16, 32, 48, 64] {
            let spec = ApproxSpec {
                function: Activation::Relu,
                degree,
            };
            if let Err(e) = approximate(&model, &calibration, &[spec]) {
                refused = Some(e.to_string());
                break;
            }
        }
        let e = refused.expect("a degree whose power coefficients pass ±2^20");
        assert!(e.contains("layer 1 (polynomial): coefficient"), "{e}");
    }
}
