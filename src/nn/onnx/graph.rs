//! What the importer knows about an ONNX graph's values while it walks the nodes: constants
//! (initializers, `Constant` nodes and folded shape arithmetic), and the activation tensor as an
//! elementwise polynomial of the model built so far.

use super::proto::{AttributeProto, NodeProto, TensorProto, attribute_type, data_type};
use super::{Failure, Result};
use crate::nn::layer::limits;

/// Most elements of any one constant tensor.
pub const MOST_ELEMENTS: usize = limits::TERMS;

/// A constant tensor as f64 (floats and integers alike), with its dimensions.
#[derive(Clone, Debug, PartialEq)]
pub struct Constant {
    pub dims: Vec<usize>,
    pub values: Vec<f64>,
}

impl Constant {
    pub fn scalar(v: f64) -> Self {
        Self {
            dims: vec![],
            values: vec![v],
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// The single value of a tensor of one element.
    pub fn as_scalar(&self) -> Option<f64> {
        (self.values.len() == 1).then(|| self.values[0])
    }

    fn strides(dims: &[usize]) -> Vec<usize> {
        let mut strides = vec![1; dims.len()];
        for i in (0..dims.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * dims[i + 1];
        }
        strides
    }

    /// The same values with dimensions `shape` (ONNX Reshape: 0 keeps a size, one −1 takes
    /// the rest).
    pub fn reshaped(&self, shape: &[f64]) -> Result<Self> {
        let mut dims = Vec::with_capacity(shape.len());
        let mut free = None;
        for (i, &d) in shape.iter().enumerate() {
            match d {
                -1.0 if free.is_none() => {
                    free = Some(i);
                    dims.push(1);
                }
                0.0 => dims.push(
                    *self
                        .dims
                        .get(i)
                        .ok_or_else(|| Failure::new("a bad reshape"))?,
                ),
                d if d >= 1.0 && d.fract() == 0.0 && d <= MOST_ELEMENTS as f64 => {
                    dims.push(d as usize)
                }
                _ => return Err(Failure::new(format!("a reshape to {shape:?}"))),
            }
        }
        let known: usize = dims.iter().product();
        if let Some(i) = free {
            if known == 0 || !self.len().is_multiple_of(known) {
                return Err(Failure::new(format!("a reshape to {shape:?}")));
            }
            dims[i] = self.len() / known;
        }
        if dims.iter().product::<usize>() != self.len() {
            return Err(Failure::new(format!(
                "a reshape of {} values to {shape:?}",
                self.len()
            )));
        }
        Ok(Self {
            dims,
            values: self.values.clone(),
        })
    }

    /// ONNX Gather on axis 0 of a 1-d constant: the values at `index` (negative: from the
    /// end), shaped as `index`.
    pub fn gathered(&self, index: &Constant) -> Result<Self> {
        if self.dims.len() != 1 {
            return Err(Failure::new("Gather folds 1-d constants on axis 0 only"));
        }
        let picked = index
            .values
            .iter()
            .map(|&i| {
                let at = if i < 0.0 { i + self.len() as f64 } else { i };
                self.values
                    .get(at as usize)
                    .copied()
                    .filter(|_| at >= 0.0)
                    .ok_or_else(|| Failure::new(format!("index {i} out of range")))
            })
            .collect::<Result<Vec<f64>>>()?;
        Ok(Constant {
            dims: index.dims.clone(),
            values: picked,
        })
    }

    /// ONNX Transpose with permutation `perm` (empty: reversed).
    pub fn transposed(&self, perm: &[i64]) -> Result<Self> {
        let n = self.dims.len();
        let perm: Vec<usize> = if perm.is_empty() {
            (0..n).rev().collect()
        } else {
            perm.iter().map(|&p| p as usize).collect()
        };
        let mut sorted = perm.clone();
        sorted.sort_unstable();
        if sorted != (0..n).collect::<Vec<_>>() {
            return Err(Failure::new(format!("a transpose by {perm:?}")));
        }
        let dims: Vec<usize> = perm.iter().map(|&p| self.dims[p]).collect();
        let (from, to) = (Self::strides(&self.dims), Self::strides(&dims));
        let values = (0..self.len())
            .map(|j| {
                let source: usize = (0..n).map(|k| (j / to[k]) % dims[k] * from[perm[k]]).sum();
                self.values[source]
            })
            .collect();
        Ok(Self { dims, values })
    }

    /// ONNX Slice with `starts`, `ends`, `axes` (empty: all) and `steps` (empty: 1).
    pub fn sliced(
        &self,
        starts: &[f64],
        ends: &[f64],
        axes: &[f64],
        steps: &[f64],
    ) -> Result<Self> {
        let n = self.dims.len() as i64;
        let mut ranges: Vec<(i64, i64, i64)> =
            self.dims.iter().map(|&d| (0, d as i64, 1)).collect();
        for (i, (&start, &end)) in starts.iter().zip(ends).enumerate() {
            let axis = axes.get(i).map_or(i as i64, |&a| a as i64);
            let axis = if axis < 0 { axis + n } else { axis };
            let step = steps.get(i).map_or(1, |&s| s as i64);
            if !(0..n).contains(&axis) || step == 0 {
                return Err(Failure::new("a slice of a bad axis or step"));
            }
            let size = self.dims[axis as usize] as i64;
            let clamp = |v: f64, low: i64, high: i64| {
                let v = if v < 0.0 { v + size as f64 } else { v };
                (v.max(low as f64).min(high as f64)) as i64
            };
            ranges[axis as usize] = if step > 0 {
                (clamp(start, 0, size), clamp(end, 0, size), step)
            } else {
                (clamp(start, -1, size - 1), clamp(end, -1, size - 1), step)
            };
        }
        let picks: Vec<Vec<usize>> = ranges
            .iter()
            .map(|&(a, b, s)| {
                let mut v = Vec::new();
                let mut i = a;
                while (s > 0 && i < b) || (s < 0 && i > b) {
                    v.push(i as usize);
                    i += s;
                }
                v
            })
            .collect();
        let dims: Vec<usize> = picks.iter().map(Vec::len).collect();
        let (from, to) = (Self::strides(&self.dims), Self::strides(&dims));
        let count: usize = dims.iter().product();
        let values = (0..count)
            .map(|j| {
                let source: usize = (0..dims.len())
                    .map(|k| picks[k][(j / to[k]) % dims[k]] * from[k])
                    .sum();
                self.values[source]
            })
            .collect();
        Ok(Self { dims, values })
    }

    /// The values as f32, checking they are finite.
    pub fn to_f32(&self, what: &str) -> Result<Vec<f32>> {
        self.values
            .iter()
            .map(|&v| {
                let f = v as f32;
                f.is_finite()
                    .then_some(f)
                    .ok_or_else(|| Failure::new(format!("{what} holds {v}, not a finite f32")))
            })
            .collect()
    }

    /// Reads an ONNX tensor: float, double or integer types, stored in the file (as raw
    /// little-endian bytes or as typed lists).
    pub fn read(t: &TensorProto) -> Result<Self> {
        if t.data_location == super::proto::EXTERNAL {
            return Err(Failure::new(format!(
                "tensor '{}' is stored in an external file; export with the weights inside the model",
                t.name
            )));
        }
        let dims = t
            .dims
            .iter()
            .map(|&d| {
                usize::try_from(d)
                    .map_err(|_| Failure::new(format!("tensor '{}' has dimension {d}", t.name)))
            })
            .collect::<Result<Vec<usize>>>()?;
        let count = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&c| c <= MOST_ELEMENTS)
            .ok_or_else(|| {
                Failure::new(format!(
                    "tensor '{}' of dimensions {dims:?} has more than {MOST_ELEMENTS} elements",
                    t.name
                ))
            })?;
        /// The raw bytes as little-endian words of `N` bytes, each made a value by `f`.
        fn raw<const N: usize>(t: &TensorProto, f: impl Fn([u8; N]) -> f64) -> Result<Vec<f64>> {
            if !t.raw_data.len().is_multiple_of(N) {
                return Err(Failure::new(format!(
                    "tensor '{}' has {} raw bytes, not whole {N}-byte words: the file is damaged",
                    t.name,
                    t.raw_data.len()
                )));
            }
            Ok(t.raw_data
                .chunks_exact(N)
                .map(|w| f(w.try_into().expect("N bytes")))
                .collect())
        }
        let raw_data = !t.raw_data.is_empty();
        let values: Vec<f64> = match t.data_type {
            data_type::FLOAT if raw_data => raw(t, |w| f64::from(f32::from_le_bytes(w)))?,
            data_type::FLOAT => t.float_data.iter().map(|&x| f64::from(x)).collect(),
            data_type::DOUBLE if raw_data => raw(t, f64::from_le_bytes)?,
            data_type::DOUBLE => t.double_data.clone(),
            data_type::INT64 if raw_data => raw(t, |w| i64::from_le_bytes(w) as f64)?,
            data_type::INT64 => t.int64_data.iter().map(|&x| x as f64).collect(),
            data_type::INT32 if raw_data => raw(t, |w| f64::from(i32::from_le_bytes(w)))?,
            data_type::INT32 => t.int32_data.iter().map(|&x| f64::from(x)).collect(),
            other => {
                return Err(Failure::new(format!(
                    "tensor '{}' is {}; the importer reads float, double, int32 and int64",
                    t.name,
                    data_type::name(other)
                )));
            }
        };
        if values.len() != count {
            return Err(Failure::new(format!(
                "tensor '{}' holds {} values for dimensions {dims:?} ({count}): the file is damaged",
                t.name,
                values.len()
            )));
        }
        Ok(Self { dims, values })
    }
}

/// The activation tensor as `Σ c_i · x^i` of the model's output so far (`x`: the output of
/// layer `base − 1`, or the input when `base` is 0), elementwise.
#[derive(Clone, Debug, PartialEq)]
pub struct Polynomial {
    /// Layers the model had when `x` was its output.
    pub base: usize,
    pub coefficients: Vec<f64>,
}

impl Polynomial {
    /// `x` itself.
    pub fn identity(base: usize) -> Self {
        Self {
            base,
            coefficients: vec![0.0, 1.0],
        }
    }

    pub fn is_identity(&self) -> bool {
        self.coefficients == [0.0, 1.0]
    }

    pub fn degree(&self) -> usize {
        self.coefficients
            .iter()
            .rposition(|&c| c != 0.0)
            .unwrap_or(0)
    }

    fn checked(mut self) -> Result<Self> {
        self.coefficients.truncate(self.degree() + 1);
        if self.degree() > limits::DEGREE {
            return Err(Failure::new(format!(
                "a polynomial activation of degree {}; at most {}",
                self.degree(),
                limits::DEGREE
            )));
        }
        if let Some(c) = self.coefficients.iter().find(|c| !c.is_finite()) {
            return Err(Failure::new(format!("a polynomial coefficient is {c}")));
        }
        Ok(self)
    }

    pub fn add(&self, other: &Self) -> Result<Self> {
        let n = self.coefficients.len().max(other.coefficients.len());
        let at = |p: &Self, i: usize| p.coefficients.get(i).copied().unwrap_or(0.0);
        Self {
            base: self.base,
            coefficients: (0..n).map(|i| at(self, i) + at(other, i)).collect(),
        }
        .checked()
    }

    pub fn mul(&self, other: &Self) -> Result<Self> {
        let degree = self.degree() + other.degree();
        if degree > limits::DEGREE {
            return Err(Failure::new(format!(
                "a polynomial activation of degree {degree}; at most {}",
                limits::DEGREE
            )));
        }
        let mut c = vec![0.0; degree + 1];
        for (i, a) in self.coefficients.iter().enumerate() {
            for (j, b) in other.coefficients.iter().enumerate() {
                if i + j <= degree {
                    c[i + j] += a * b;
                }
            }
        }
        Self {
            base: self.base,
            coefficients: c,
        }
        .checked()
    }

    pub fn affine(&self, scale: f64, shift: f64) -> Result<Self> {
        let mut c: Vec<f64> = self.coefficients.iter().map(|v| v * scale).collect();
        c[0] += shift;
        Self {
            base: self.base,
            coefficients: c,
        }
        .checked()
    }

    /// `self^e` for a whole `e` ≥ 0.
    pub fn pow(&self, e: f64) -> Result<Self> {
        if e.fract() != 0.0 || !(0.0..=limits::DEGREE as f64).contains(&e) {
            return Err(Failure::new(format!(
                "Pow with exponent {e}: whole exponents 0 to {} only",
                limits::DEGREE
            )));
        }
        let mut out = Self {
            base: self.base,
            coefficients: vec![1.0],
        };
        for _ in 0..e as usize {
            out = out.mul(self)?;
        }
        Ok(out)
    }
}

/// A node's attribute by name.
pub fn attribute<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// An integer attribute, or `default`.
pub fn int(node: &NodeProto, name: &str, default: i64) -> Result<i64> {
    match attribute(node, name) {
        None => Ok(default),
        Some(a) if a.r#type == attribute_type::INT => Ok(a.i),
        Some(a) => Err(Failure::new(format!(
            "attribute {name} is {}, not an integer",
            attribute_type::name(a.r#type)
        ))),
    }
}

/// A float attribute, or `default`.
pub fn float(node: &NodeProto, name: &str, default: f32) -> Result<f32> {
    match attribute(node, name) {
        None => Ok(default),
        Some(a) if a.r#type == attribute_type::FLOAT => Ok(a.f),
        Some(a) => Err(Failure::new(format!(
            "attribute {name} is {}, not a float",
            attribute_type::name(a.r#type)
        ))),
    }
}

/// An integer list attribute (empty when absent).
pub fn ints(node: &NodeProto, name: &str) -> Result<Vec<i64>> {
    match attribute(node, name) {
        None => Ok(vec![]),
        Some(a) if a.r#type == attribute_type::INTS => Ok(a.ints.clone()),
        Some(a) => Err(Failure::new(format!(
            "attribute {name} is {}, not a list of integers",
            attribute_type::name(a.r#type)
        ))),
    }
}

/// A string attribute, or `default`.
pub fn string(node: &NodeProto, name: &str, default: &str) -> Result<String> {
    match attribute(node, name) {
        None => Ok(default.to_string()),
        Some(a) if a.r#type == attribute_type::STRING => {
            Ok(String::from_utf8_lossy(&a.s).into_owned())
        }
        Some(a) => Err(Failure::new(format!(
            "attribute {name} is {}, not a string",
            attribute_type::name(a.r#type)
        ))),
    }
}

/// A size from an ONNX integer: positive and at most [`limits::DIMENSION`].
pub fn size(v: i64, what: &str) -> Result<usize> {
    usize::try_from(v)
        .ok()
        .filter(|&s| s <= limits::DIMENSION)
        .ok_or_else(|| Failure::new(format!("{what} {v}: sizes are 0 to {}", limits::DIMENSION)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_reshape_transpose_and_slice_like_onnx() {
        // PyTorch's ZeroPad2d((1, 0, 1, 0)) export: pads [1, 0, 1, 0] padded to 8, reshaped
        // to [-1, 2], reversed along axis 0, transposed and flattened: ONNX's begin/end order.
        let c = Constant {
            dims: vec![8],
            values: vec![1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        };
        let r = c.reshaped(&[-1.0, 2.0]).unwrap();
        assert_eq!(r.dims, [4, 2]);
        let s = r.sliced(&[-1.0], &[-9.2e18], &[0.0], &[-1.0]).unwrap();
        assert_eq!(s.values, [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
        let t = s.transposed(&[1, 0]).unwrap();
        assert_eq!(t.dims, [2, 4]);
        assert_eq!(t.values, [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        assert!(c.reshaped(&[3.0, -1.0]).is_err());
        assert!(r.transposed(&[0, 0]).is_err());
    }

    #[test]
    fn polynomial_algebra_matches_expansion() {
        let x = Polynomial::identity(0);
        // (0.5x + 1)² · 2 − 3 = 0.5x² + 2x − 1
        let p = x
            .affine(0.5, 1.0)
            .unwrap()
            .pow(2.0)
            .unwrap()
            .affine(2.0, -3.0)
            .unwrap();
        assert_eq!(p.coefficients, [-1.0, 2.0, 0.5]);
        assert_eq!(
            x.mul(&x).unwrap().add(&x).unwrap().coefficients,
            [0.0, 1.0, 1.0]
        );
        assert!(x.pow(2.5).is_err() && x.pow(-1.0).is_err());
        assert!(x.pow(65.0).is_err());
        assert_eq!(x.affine(0.0, 2.0).unwrap().degree(), 0);
    }
}
