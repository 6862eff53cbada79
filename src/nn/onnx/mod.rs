//! ONNX import: a chain of layers exported by PyTorch (`torch.onnx.export`, opset 13 or later)
//! becomes a [`Model`]. The file is decoded by `prost` with the part of ONNX's schema
//! the importer reads (`proto.rs`). The node list is then walked
//! in order and each node turned into layers.
//!
//! Linear layers:
//! - Conv, Gemm, MatMul followed by Add, AveragePool, GlobalAveragePool, Flatten and
//!   flattening Reshape, Pad;
//! - BatchNormalization and per-channel Add/Sub/Mul/Div are folded into the Conv or Gemm before
//!   them.
//!
//! Activations:
//! - elementwise Add, Sub, Mul, Div and Pow with scalar constants, or between expressions of
//!   one tensor, build polynomials: `x·x` and `Pow(x, 2)` are a square, `a·x² + b·x + c` a
//!   quadratic, anything else a [`Layer::Polynomial`];
//! - Relu, Sigmoid, Tanh and `x · Sigmoid(x)` (SiLU) become [`Layer::Relu`] and its kin, which
//!   [`approx`](super::approx) replaces for the encrypted pass.
//!
//! Shape arithmetic on constants (Shape, Gather, Unsqueeze, Concat, ConstantOfShape, Reshape,
//! Slice, Transpose, Cast) is folded: PyTorch writes a ZeroPad2d's pads that way. A final
//! Softmax or LogSoftmax is dropped, since it does not change the argmax.
//!
//! Anything else is refused with the node's name, its op type and what is supported: branches
//! and skip connections, dynamic sizes (other than the batch), grouped or dilated
//! convolutions, weights in external files.

mod graph;
mod proto;

use super::layer::{self, Activation, AvgPool, Conv2d, Dense, Flatten, Layer, Pad2d, Poly, Square};
use super::model::Model;
use graph::{Constant, Polynomial, float, int, ints, size, string};
use proto::{DimensionValue, NodeProto};
use std::collections::HashMap;
use std::path::Path;

/// The ops the importer reads, for error messages.
pub const SUPPORTED: &str = "Conv, Gemm, MatMul, Add, Sub, Mul, Div, Pow, Neg, AveragePool, \
GlobalAveragePool, Flatten, Reshape, Pad, BatchNormalization, Relu, Sigmoid, Tanh, \
x·Sigmoid(x) (SiLU), Identity, Dropout, Constant, and a final Softmax or LogSoftmax (with shape \
arithmetic on constants: Shape, Gather, Unsqueeze, Concat, ConstantOfShape, Reshape, Slice, \
Transpose, Cast)";

/// The lowest opset read (the semantics of Pad, Reshape and BatchNormalization are those of
/// opset 13 and later).
pub const LOWEST_OPSET: i64 = 13;

/// An import failure's reason, before the node it belongs to is added.
#[derive(Debug)]
pub(crate) struct Failure(String);

impl Failure {
    pub(crate) fn new(why: impl Into<String>) -> Self {
        Self(why.into())
    }
}

pub(crate) type Result<T> = std::result::Result<T, Failure>;

/// What an import made: the model, and notes on what changed on the way (folded batch
/// normalizations, a dropped softmax).
#[derive(Clone, Debug)]
pub struct Imported {
    pub model: Model,
    pub notes: Vec<String>,
}

/// Imports an ONNX file; errors name the file.
pub fn import_onnx_file(path: &Path) -> crate::Result<Imported> {
    let bytes = std::fs::read(path).map_err(|e| crate::Error::Data {
        path: path.display().to_string(),
        why: e.to_string(),
    })?;
    import_onnx(&bytes).map_err(|e| match e {
        crate::Error::Data { why, .. } => crate::Error::Data {
            path: path.display().to_string(),
            why,
        },
        other => other,
    })
}

/// Imports ONNX bytes.
pub fn import_onnx(bytes: &[u8]) -> crate::Result<Imported> {
    import(bytes).map_err(|Failure(why)| crate::Error::Data {
        path: "model.onnx".into(),
        why,
    })
}

/// A graph value as the walk knows it.
#[derive(Clone, Debug)]
enum Value {
    Constant(Constant),
    /// The activation tensor: a polynomial of the model's output so far.
    Tensor(Polynomial),
    /// `sigmoid` of an activation tensor, kept until its use shows whether it is half of
    /// `x · sigmoid(x)`.
    Sigmoid(Polynomial),
}

struct Builder {
    model: Model,
    /// The shape of the model's output so far.
    shape: Vec<usize>,
    notes: Vec<String>,
}

fn import(bytes: &[u8]) -> Result<Imported> {
    let file = proto::decode(bytes).map_err(|e| Failure::new(format!("not an ONNX model: {e}")))?;
    let opset = file
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| Failure::new("the model names no ONNX opset"))?;
    if opset < LOWEST_OPSET {
        return Err(Failure::new(format!(
            "opset {opset}; hegpu reads opset {LOWEST_OPSET} and later (torch.onnx.export(..., \
             opset_version=17))"
        )));
    }
    let graph = file
        .graph
        .as_ref()
        .ok_or_else(|| Failure::new("the model has no graph"))?;
    let mut values: HashMap<&str, Value> = HashMap::new();
    for t in &graph.initializer {
        values.insert(&t.name, Value::Constant(Constant::read(t)?));
    }
    if !graph.sparse_initializer.is_empty() {
        return Err(Failure::new("sparse initializers are not supported"));
    }
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !values.contains_key(i.name.as_str()))
        .collect();
    let [input] = inputs.as_slice() else {
        return Err(Failure::new(format!(
            "the graph has {} inputs besides its weights; hegpu imports models of one input",
            inputs.len()
        )));
    };
    let shape = input_shape(input)?;
    let mut b = Builder {
        model: Model {
            input: shape.clone(),
            layers: Vec::new(),
        },
        shape,
        notes: Vec::new(),
    };
    values.insert(&input.name, Value::Tensor(Polynomial::identity(0)));
    let [output] = graph.output.as_slice() else {
        return Err(Failure::new(format!(
            "the graph has {} outputs; hegpu imports models of one output",
            graph.output.len()
        )));
    };
    let count = graph.node.len();
    for (i, node) in graph.node.iter().enumerate() {
        let last = i + 1 == count && node.output.first() == Some(&output.name);
        let made = b.node(node, &values, last).map_err(|Failure(why)| {
            Failure::new(format!(
                "node '{}' ({}): {why}",
                node.name.escape_debug(),
                node.op_type.as_str().escape_debug()
            ))
        })?;
        if let Some(v) = made {
            let name = node
                .output
                .first()
                .ok_or_else(|| Failure::new(format!("node '{}' has no output", node.name)))?;
            values.insert(name, v);
        }
    }
    let result = values
        .get(output.name.as_str())
        .cloned()
        .ok_or_else(|| Failure::new(format!("no node makes the output '{}'", output.name)))?;
    let p = b.tensor(result)?;
    b.materialize(&p)?;
    b.model
        .shapes()
        .map_err(|e| Failure::new(format!("the imported model: {e}")))?;
    Ok(Imported {
        model: b.model,
        notes: b.notes,
    })
}

/// The input's shape without its batch dimension: fixed sizes, one to three of them.
fn input_shape(input: &proto::ValueInfoProto) -> Result<Vec<usize>> {
    let tensor = match input.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()) {
        Some(t) => t,
        None => {
            return Err(Failure::new(format!(
                "input '{}' is not a tensor",
                input.name
            )));
        }
    };
    if tensor.elem_type != proto::data_type::FLOAT {
        return Err(Failure::new(format!(
            "input '{}' is {}; hegpu takes float inputs",
            input.name,
            proto::data_type::name(tensor.elem_type)
        )));
    }
    let dims = tensor.shape.as_ref().map(|s| &s.dim[..]).unwrap_or(&[]);
    if !(2..=4).contains(&dims.len()) {
        return Err(Failure::new(format!(
            "input '{}' has {} dimensions; hegpu takes [batch, features] or [batch, channels, \
             height, width]",
            input.name,
            dims.len()
        )));
    }
    dims[1..]
        .iter()
        .map(|d| match &d.value {
            Some(DimensionValue::DimValue(v)) if *v > 0 => size(*v, "input size"),
            Some(DimensionValue::DimValue(v)) => Err(Failure::new(format!("input size {v}"))),
            None => Err(Failure::new(format!(
                "input '{}' has a dimension without a size",
                input.name
            ))),
            Some(DimensionValue::DimParam(name)) => Err(Failure::new(format!(
                "input '{}' has the dynamic size '{name}' past the batch dimension; export \
                 with fixed image sizes",
                input.name
            ))),
        })
        .collect()
}

impl Builder {
    /// The value of a node's input `i` ("" or missing: None).
    fn input<'v>(
        node: &NodeProto,
        values: &'v HashMap<&str, Value>,
        i: usize,
    ) -> Result<Option<&'v Value>> {
        match node.input.get(i) {
            None => Ok(None),
            Some(name) if name.is_empty() => Ok(None),
            Some(name) => values
                .get(name.as_str())
                .map(Some)
                .ok_or_else(|| Failure::new(format!("input '{name}' is made by no earlier node"))),
        }
    }

    fn required<'v>(
        node: &NodeProto,
        values: &'v HashMap<&str, Value>,
        i: usize,
    ) -> Result<&'v Value> {
        Self::input(node, values, i)?.ok_or_else(|| Failure::new(format!("input {i} is missing")))
    }

    fn constant<'v>(
        node: &NodeProto,
        values: &'v HashMap<&str, Value>,
        i: usize,
    ) -> Result<&'v Constant> {
        match Self::required(node, values, i)? {
            Value::Constant(c) => Ok(c),
            _ => Err(Failure::new(format!(
                "input {i} must be a constant (weights), not computed from the image"
            ))),
        }
    }

    /// A tensor value (a pending sigmoid becomes a Sigmoid layer).
    fn tensor(&mut self, v: Value) -> Result<Polynomial> {
        match v {
            Value::Tensor(p) => Ok(p),
            Value::Sigmoid(p) => {
                self.materialize(&p)?;
                self.push(Layer::from(Activation::Sigmoid))?;
                Ok(self.current())
            }
            Value::Constant(_) => Err(Failure::new(
                "a constant where the image's values are expected",
            )),
        }
    }

    fn current(&self) -> Polynomial {
        Polynomial::identity(self.model.layers.len())
    }

    fn push(&mut self, layer: Layer) -> Result<()> {
        self.shape = layer
            .output_shape(&self.shape)
            .map_err(|e| Failure::new(e.to_string()))?;
        self.model.layers.push(layer);
        Ok(())
    }

    /// Adds the layer that computes `p` from the model's output, so that the output is `p`.
    fn materialize(&mut self, p: &Polynomial) -> Result<()> {
        if p.base != self.model.layers.len() {
            return Err(Failure::new(
                "a value is used after later layers: hegpu imports chains of layers, not \
                 branches or skip connections",
            ));
        }
        if p.is_identity() {
            return Ok(());
        }
        let c = &p.coefficients;
        let at = |i: usize| c.get(i).copied().unwrap_or(0.0) as f32;
        let layer = match p.degree() {
            2 if (at(0), at(1), at(2)) == (0.0, 0.0, 1.0) => Layer::Square(Square),
            2 => Layer::Poly(Poly {
                a: at(2),
                b: at(1),
                c: at(0),
            }),
            _ => Layer::Polynomial(layer::Polynomial {
                range: 1.0,
                coefficients: c.iter().map(|&v| v as f32).collect(),
            }),
        };
        self.push(layer)
    }

    /// The model's output as it is now, for a linear layer to read.
    fn linear_input(&mut self, v: &Value) -> Result<()> {
        let p = self.tensor(v.clone())?;
        self.materialize(&p)
    }

    fn node(
        &mut self,
        node: &NodeProto,
        values: &HashMap<&str, Value>,
        last: bool,
    ) -> Result<Option<Value>> {
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(Failure::new(format!(
                "the op domain '{}' is not supported; hegpu imports {SUPPORTED}",
                node.domain
            )));
        }
        if let Some(folded) = self.folded(node, values)? {
            return Ok(Some(folded));
        }
        if let Some(layer) = self.layer(node, values)? {
            return Ok(Some(layer));
        }
        let x = |i| Self::required(node, values, i);
        Ok(Some(match node.op_type.as_str() {
            "Identity" | "Dropout" | "Cast" => x(0)?.clone(),
            "Add" | "Sub" | "Mul" | "Div" => self.arithmetic(&node.op_type, x(0)?, x(1)?)?,
            "Neg" => match x(0)? {
                Value::Constant(c) => Value::Constant(Constant {
                    dims: c.dims.clone(),
                    values: c.values.iter().map(|v| -v).collect(),
                }),
                v => Value::Tensor(self.tensor(v.clone())?.affine(-1.0, 0.0)?),
            },
            "Pow" => {
                let e = Self::constant(node, values, 1)?
                    .as_scalar()
                    .ok_or_else(|| Failure::new("the exponent must be a scalar"))?;
                Value::Tensor(self.tensor(x(0)?.clone())?.pow(e)?)
            }
            "Sigmoid" => {
                let p = self.tensor(x(0)?.clone())?;
                Value::Sigmoid(p)
            }
            "Softmax" | "LogSoftmax" if last => {
                self.notes.push(format!(
                    "dropped the final {} (it does not change the argmax)",
                    node.op_type
                ));
                x(0)?.clone()
            }
            _ => {
                return Err(Failure::new(format!(
                    "this op is not supported; hegpu imports {SUPPORTED}"
                )));
            }
        }))
    }

    /// The ops that become a layer of the model (linear maps, pooling, shapes, activations
    /// applied as layers), the tensor after them; `None` for the others.
    fn layer(&mut self, node: &NodeProto, values: &HashMap<&str, Value>) -> Result<Option<Value>> {
        let x = |i| Self::required(node, values, i);
        Ok(Some(match node.op_type.as_str() {
            "Relu" | "Tanh" => {
                self.linear_input(x(0)?)?;
                let f = if node.op_type == "Relu" {
                    Activation::Relu
                } else {
                    Activation::Tanh
                };
                self.push(Layer::from(f))?;
                Value::Tensor(self.current())
            }
            "Conv" => {
                self.linear_input(x(0)?)?;
                let weight = Self::constant(node, values, 1)?;
                let bias = Self::input(node, values, 2)?;
                self.conv(node, weight, bias)?;
                Value::Tensor(self.current())
            }
            "Gemm" | "MatMul" => {
                self.linear_input(x(0)?)?;
                let weight = Self::constant(node, values, 1)?;
                let bias = Self::input(node, values, 2)?;
                self.dense(node, weight, bias)?;
                Value::Tensor(self.current())
            }
            "BatchNormalization" => {
                self.linear_input(x(0)?)?;
                let [scale, shift, mean, var] =
                    [1, 2, 3, 4].map(|i| Self::constant(node, values, i));
                self.batch_norm(node, scale?, shift?, mean?, var?)?;
                Value::Tensor(self.current())
            }
            "AveragePool" => {
                self.linear_input(x(0)?)?;
                self.average_pool(node)?;
                Value::Tensor(self.current())
            }
            "GlobalAveragePool" => {
                self.linear_input(x(0)?)?;
                match self.shape[..] {
                    [_, h, w] if h == w => self.push(Layer::AvgPool(AvgPool {
                        window: h,
                        stride: 1,
                    }))?,
                    _ => {
                        return Err(Failure::new(format!(
                            "global average pooling of a {:?} tensor: square images only",
                            self.shape
                        )));
                    }
                }
                Value::Tensor(self.current())
            }
            "Flatten" => {
                self.linear_input(x(0)?)?;
                if int(node, "axis", 1)? != 1 {
                    return Err(Failure::new("Flatten keeps the batch: axis 1 only"));
                }
                self.flatten()?;
                Value::Tensor(self.current())
            }
            "Reshape" => match x(0)? {
                Value::Constant(c) => {
                    Value::Constant(c.reshaped(&Self::constant(node, values, 1)?.values)?)
                }
                v => {
                    self.linear_input(v)?;
                    let to = Self::constant(node, values, 1)?;
                    self.reshape(to)?;
                    Value::Tensor(self.current())
                }
            },
            "Pad" => {
                self.linear_input(x(0)?)?;
                self.pad(node, values)?;
                Value::Tensor(self.current())
            }
            _ => return Ok(None),
        }))
    }

    /// The ops on constants only (shapes, indices, constants), folded into a constant; `None`
    /// for the others.
    fn folded(&self, node: &NodeProto, values: &HashMap<&str, Value>) -> Result<Option<Value>> {
        let x = |i| Self::required(node, values, i);
        Ok(Some(match node.op_type.as_str() {
            "Constant" => Value::Constant(constant_node(node)?),
            "Shape" => match x(0)? {
                Value::Constant(c) => Value::Constant(Constant {
                    dims: vec![c.dims.len()],
                    values: c.dims.iter().map(|&d| d as f64).collect(),
                }),
                _ => Value::Constant(Constant {
                    dims: vec![self.shape.len() + 1],
                    values: std::iter::once(1.0)
                        .chain(self.shape.iter().map(|&d| d as f64))
                        .collect(),
                }),
            },
            "Gather" => {
                let (data, index) = (
                    Self::constant(node, values, 0)?,
                    Self::constant(node, values, 1)?,
                );
                if int(node, "axis", 0)? != 0 {
                    return Err(Failure::new("Gather folds 1-d constants on axis 0 only"));
                }
                Value::Constant(data.gathered(index)?)
            }
            "ConstantOfShape" => {
                let shape = Self::constant(node, values, 0)?;
                let fill = match graph::attribute(node, "value").and_then(|a| a.t.as_ref()) {
                    Some(t) => Constant::read(t)?.as_scalar().unwrap_or(0.0),
                    None => 0.0,
                };
                let dims = shape
                    .values
                    .iter()
                    .map(|&d| size(d as i64, "ConstantOfShape size"))
                    .collect::<Result<Vec<usize>>>()?;
                let count = dims
                    .iter()
                    .try_fold(1usize, |a, &d| a.checked_mul(d))
                    .filter(|&c| c <= graph::MOST_ELEMENTS)
                    .ok_or_else(|| Failure::new("a constant too large to fold"))?;
                Value::Constant(Constant {
                    dims,
                    values: vec![fill; count],
                })
            }
            "Transpose" => {
                Value::Constant(Self::constant(node, values, 0)?.transposed(&ints(node, "perm")?)?)
            }
            "Slice" => {
                let data = Self::constant(node, values, 0)?;
                let list = |i| -> Result<Vec<f64>> {
                    Ok(Self::input(node, values, i)?
                        .map(|v| match v {
                            Value::Constant(c) => Ok(c.values.clone()),
                            _ => Err(Failure::new("slice bounds must be constants")),
                        })
                        .transpose()?
                        .unwrap_or_default())
                };
                Value::Constant(data.sliced(&list(1)?, &list(2)?, &list(3)?, &list(4)?)?)
            }
            "Unsqueeze" => {
                let c = Self::constant(node, values, 0)?;
                Value::Constant(Constant {
                    dims: vec![c.len()],
                    values: c.values.clone(),
                })
            }
            "Concat" => {
                let mut out = Vec::new();
                for i in 0..node.input.len() {
                    out.extend(&Self::constant(node, values, i)?.values);
                }
                if out.len() > graph::MOST_ELEMENTS {
                    return Err(Failure::new("a concatenation too large to fold"));
                }
                Value::Constant(Constant {
                    dims: vec![out.len()],
                    values: out,
                })
            }
            _ => return Ok(None),
        }))
    }

    /// Add, Sub, Mul and Div: folded when both are constants; a polynomial when one side is
    /// a scalar or both are the tensor; folded into the layer before when the constant holds
    /// one value per channel (a bias or scale after Conv, Gemm or MatMul).
    fn arithmetic(&mut self, op: &str, a: &Value, b: &Value) -> Result<Value> {
        let apply = |x: f64, y: f64| match op {
            "Add" => x + y,
            "Sub" => x - y,
            "Mul" => x * y,
            _ => x / y,
        };
        match (a, b) {
            (Value::Constant(x), Value::Constant(y)) => {
                let (long, short) = if x.len() >= y.len() { (x, y) } else { (y, x) };
                if short.len() != 1 && short.len() != long.len() {
                    return Err(Failure::new("constants of different sizes"));
                }
                let values = (0..long.len())
                    .map(|i| {
                        let (u, v) = (x.values[i % x.len()], y.values[i % y.len()]);
                        apply(u, v)
                    })
                    .collect();
                Ok(Value::Constant(Constant {
                    dims: long.dims.clone(),
                    values,
                }))
            }
            (Value::Constant(c), t) | (t, Value::Constant(c)) => {
                let constant_first = matches!(a, Value::Constant(_));
                // SiLU's x and sigmoid(x) are never constants: a pending sigmoid is a layer here.
                let p = self.tensor(t.clone())?;
                if let Some(k) = c.as_scalar() {
                    return Ok(Value::Tensor(match (op, constant_first) {
                        ("Add", _) => p.affine(1.0, k)?,
                        ("Sub", false) => p.affine(1.0, -k)?,
                        ("Sub", true) => p.affine(-1.0, k)?,
                        ("Mul", _) => p.affine(k, 0.0)?,
                        ("Div", false) => p.affine(1.0 / k, 0.0)?,
                        _ => return Err(Failure::new("dividing by the image's values")),
                    }));
                }
                if constant_first && matches!(op, "Sub" | "Div") {
                    return Err(Failure::new(
                        "a per-channel constant minus or over the image's values",
                    ));
                }
                self.materialize(&p)?;
                self.fold_per_channel(op, c)?;
                Ok(Value::Tensor(self.current()))
            }
            (Value::Sigmoid(s), Value::Tensor(t)) | (Value::Tensor(t), Value::Sigmoid(s))
                if op == "Mul" && s == t =>
            {
                self.materialize(t)?;
                self.push(Layer::from(Activation::Silu))?;
                Ok(Value::Tensor(self.current()))
            }
            _ => {
                let (p, q) = (self.tensor(a.clone())?, self.tensor(b.clone())?);
                if p.base != q.base {
                    return Err(Failure::new(
                        "combines values from different layers: hegpu imports chains of \
                         layers, not skip connections",
                    ));
                }
                Ok(Value::Tensor(match op {
                    "Add" => p.add(&q)?,
                    "Sub" => p.add(&q.affine(-1.0, 0.0)?)?,
                    "Mul" => p.mul(&q)?,
                    _ => return Err(Failure::new("dividing by the image's values")),
                }))
            }
        }
    }

    /// `y op c` with one constant per output channel (or feature), folded into the Conv or
    /// Dense layer that made `y`.
    fn fold_per_channel(&mut self, op: &str, c: &Constant) -> Result<()> {
        let channels = self.shape[0];
        let Some((weight, bias)) = self
            .model
            .layers
            .last_mut()
            .filter(|l| matches!(l, Layer::Conv2d(_) | Layer::Dense(_)))
            .and_then(Layer::parameters_mut)
        else {
            return Err(Failure::new(
                "a per-channel constant must follow a Conv, Gemm or MatMul",
            ));
        };
        let per_channel = c.len() == channels && c.dims.iter().filter(|&&d| d > 1).count() <= 1;
        if !per_channel {
            return Err(Failure::new(format!(
                "a constant of dimensions {:?} on a tensor of {channels} channels: scalars or one \
                 value per channel only",
                c.dims
            )));
        }
        let per = weight.len() / channels;
        for (ch, &k) in c.values.iter().enumerate() {
            let (scale, shift) = match op {
                "Add" => (1.0, k),
                "Sub" => (1.0, -k),
                "Mul" => (k, 0.0),
                _ => (1.0 / k, 0.0),
            };
            for w in &mut weight[ch * per..(ch + 1) * per] {
                *w = (f64::from(*w) * scale) as f32;
            }
            bias[ch] = (f64::from(bias[ch]) * scale + shift) as f32;
        }
        check_finite(weight, bias)
    }

    fn conv(&mut self, node: &NodeProto, w: &Constant, bias: Option<&Value>) -> Result<()> {
        let [out_channels, in_channels, kh, kw] = w.dims[..] else {
            return Err(Failure::new(format!(
                "weights of dimensions {:?}: 2-d convolutions only",
                w.dims
            )));
        };
        if kh != kw {
            return Err(Failure::new(format!(
                "a {kh}×{kw} kernel: square kernels only"
            )));
        }
        if int(node, "group", 1)? != 1 {
            return Err(Failure::new("grouped convolutions are not supported"));
        }
        if ints(node, "dilations")?.iter().any(|&d| d != 1) {
            return Err(Failure::new("dilated convolutions are not supported"));
        }
        let stride = window_stride(node)?;
        let pad = |p: i64| size(p, "padding");
        let pads = match ints(node, "pads")?[..] {
            [] => [0; 4],
            [t, l, b, r] => [pad(t)?, pad(l)?, pad(b)?, pad(r)?],
            ref p => return Err(Failure::new(format!("pads {p:?}"))),
        };
        let [top, left, bottom, right] = pads;
        let padding = if top == bottom && left == right && top == left {
            top
        } else {
            self.push(Layer::Pad2d(Pad2d {
                top,
                bottom,
                left,
                right,
            }))?;
            0
        };
        let bias = match bias {
            None => vec![0.0; out_channels],
            Some(Value::Constant(b)) if b.len() == out_channels => b.to_f32("the bias")?,
            Some(_) => return Err(Failure::new("the bias must hold one constant per output")),
        };
        self.push(Layer::Conv2d(Conv2d {
            in_channels,
            out_channels,
            kernel: kh,
            stride,
            padding,
            weight: w.to_f32("the weights")?,
            bias,
        }))
    }

    /// Gemm (`alpha · x · Bᵀ + beta · C` with transB, or `x · B`) and MatMul (no bias).
    fn dense(&mut self, node: &NodeProto, w: &Constant, bias: Option<&Value>) -> Result<()> {
        let gemm = node.op_type == "Gemm";
        let [rows, cols] = w.dims[..] else {
            return Err(Failure::new(format!(
                "weights of dimensions {:?}: a matrix only",
                w.dims
            )));
        };
        if gemm && int(node, "transA", 0)? != 0 {
            return Err(Failure::new("transA is not supported"));
        }
        let trans = gemm && int(node, "transB", 0)? != 0;
        let (alpha, beta) = if gemm {
            (
                f64::from(float(node, "alpha", 1.0)?),
                f64::from(float(node, "beta", 1.0)?),
            )
        } else {
            (1.0, 1.0)
        };
        let (inputs, outputs) = if trans { (cols, rows) } else { (rows, cols) };
        if self.shape != [inputs] {
            return Err(Failure::new(format!(
                "a {inputs}-input layer on a tensor of shape {:?} (flatten it first)",
                self.shape
            )));
        }
        let weight: Vec<f64> = (0..outputs)
            .flat_map(|o| (0..inputs).map(move |i| (o, i)))
            .map(|(o, i)| {
                alpha
                    * if trans {
                        w.values[o * inputs + i]
                    } else {
                        w.values[i * outputs + o]
                    }
            })
            .collect();
        let bias = match bias {
            None => vec![0.0; outputs],
            Some(Value::Constant(c)) if c.len() == outputs || c.len() == 1 => {
                (0..outputs).map(|o| beta * c.values[o % c.len()]).collect()
            }
            Some(_) => return Err(Failure::new("the bias must hold one constant per output")),
        };
        let f32s = |v: Vec<f64>, what| {
            Constant {
                dims: vec![],
                values: v,
            }
            .to_f32(what)
        };
        self.push(Layer::Dense(Dense {
            inputs,
            outputs,
            weight: f32s(weight, "the weights")?,
            bias: f32s(bias, "the bias")?,
        }))
    }

    /// `γ (y − μ) / √(σ² + ε) + β` folded into the Conv or Dense layer that made `y`.
    fn batch_norm(
        &mut self,
        node: &NodeProto,
        scale: &Constant,
        shift: &Constant,
        mean: &Constant,
        var: &Constant,
    ) -> Result<()> {
        if int(node, "training_mode", 0)? != 0 {
            return Err(Failure::new(
                "export the model in eval mode (training_mode is set)",
            ));
        }
        if !matches!(
            self.model.layers.last(),
            Some(Layer::Conv2d(_) | Layer::Dense(_))
        ) {
            return Err(Failure::new(
                "batch normalization must follow a Conv, Gemm or MatMul",
            ));
        }
        let epsilon = float(node, "epsilon", 1e-5)?;
        let eps = f64::from(epsilon);
        let channels = self.shape[0];
        if [scale, shift, mean, var]
            .iter()
            .any(|c| c.len() != channels)
        {
            return Err(Failure::new(format!(
                "parameters that do not hold one value for each of {channels} channels"
            )));
        }
        let gain = (0..channels)
            .map(|c| {
                let spread = var.values[c] + eps;
                if !(spread > 0.0 && spread.is_finite()) {
                    return Err(Failure::new(format!(
                        "channel {c}: variance {} plus epsilon {epsilon:e} is {spread:e}, not a \
                         positive number (the running statistics are damaged)",
                        var.values[c]
                    )));
                }
                Ok(scale.values[c] / spread.sqrt())
            })
            .collect::<Result<Vec<f64>>>()?;
        let offset: Vec<f64> = (0..channels)
            .map(|c| shift.values[c] - mean.values[c] * gain[c])
            .collect();
        self.fold_per_channel(
            "Mul",
            &Constant {
                dims: vec![channels],
                values: gain,
            },
        )?;
        self.fold_per_channel(
            "Add",
            &Constant {
                dims: vec![channels],
                values: offset,
            },
        )?;
        self.notes.push(format!(
            "folded batch normalization '{}' into layer {}",
            node.name,
            self.model.layers.len() - 1
        ));
        Ok(())
    }

    fn average_pool(&mut self, node: &NodeProto) -> Result<()> {
        let window = match ints(node, "kernel_shape")?[..] {
            [a, b] if a == b => size(a, "window")?,
            ref k => {
                return Err(Failure::new(format!(
                    "kernel_shape {k:?}: square windows only"
                )));
            }
        };
        let stride = window_stride(node)?;
        if ints(node, "pads")?.iter().any(|&p| p != 0) || int(node, "ceil_mode", 0)? != 0 {
            return Err(Failure::new("padded or ceil-mode pooling is not supported"));
        }
        self.push(Layer::AvgPool(AvgPool { window, stride }))
    }

    fn flatten(&mut self) -> Result<()> {
        if self.shape.len() > 1 {
            self.push(Layer::Flatten(Flatten))?;
        }
        Ok(())
    }

    /// A Reshape to `[batch, -1]` or `[batch, features]` (a flatten), or to the same shape.
    fn reshape(&mut self, to: &Constant) -> Result<()> {
        let total: usize = self.shape.iter().product();
        let rest: Vec<f64> = to.values.iter().skip(1).copied().collect();
        if rest == [-1.0] || rest == [total as f64] {
            return self.flatten();
        }
        if rest
            .iter()
            .map(|&v| v as usize)
            .eq(self.shape.iter().copied())
        {
            return Ok(());
        }
        Err(Failure::new(format!(
            "a reshape of {:?} to {:?}: only flattening reshapes are supported",
            self.shape, to.values
        )))
    }

    /// Constant zero padding of height and width.
    fn pad(&mut self, node: &NodeProto, values: &HashMap<&str, Value>) -> Result<()> {
        if string(node, "mode", "constant")? != "constant" {
            return Err(Failure::new("only constant (zero) padding is supported"));
        }
        if let Some(v) = Self::input(node, values, 2)? {
            let zero = matches!(v, Value::Constant(c) if c.values.iter().all(|&x| x == 0.0));
            if !zero {
                return Err(Failure::new("padding with a value other than 0"));
            }
        }
        if Self::input(node, values, 3)?.is_some() {
            return Err(Failure::new("Pad with axes is not supported"));
        }
        let pads = Self::constant(node, values, 1)?;
        let p = |v: f64| {
            size(v as i64, "padding").and_then(|s| {
                if v.fract() == 0.0 {
                    Ok(s)
                } else {
                    Err(Failure::new("a fractional padding"))
                }
            })
        };
        match pads.values[..] {
            [0.0, 0.0, top, left, 0.0, 0.0, bottom, right] if self.shape.len() == 3 => {
                self.push(Layer::Pad2d(Pad2d {
                    top: p(top)?,
                    bottom: p(bottom)?,
                    left: p(left)?,
                    right: p(right)?,
                }))
            }
            _ => Err(Failure::new(format!(
                "pads {:?}: height and width of a [batch, channels, height, width] tensor only",
                pads.values
            ))),
        }
    }
}

/// The stride of a Conv or AveragePool (equal in both directions), checking that `auto_pad`
/// leaves the pads explicit.
fn window_stride(node: &NodeProto) -> Result<usize> {
    let auto_pad = string(node, "auto_pad", "NOTSET")?;
    if !matches!(auto_pad.as_str(), "NOTSET" | "VALID") {
        return Err(Failure::new(format!(
            "auto_pad {auto_pad}: explicit pads only"
        )));
    }
    match ints(node, "strides")?[..] {
        [] => Ok(1),
        [a, b] if a == b => size(a, "stride"),
        ref s => Err(Failure::new(format!("strides {s:?}: equal strides only"))),
    }
}

/// A `Constant` node's value.
fn constant_node(node: &NodeProto) -> Result<Constant> {
    let a = node
        .attribute
        .first()
        .ok_or_else(|| Failure::new("a Constant without a value"))?;
    match a.name.as_str() {
        "value" => Constant::read(a.t.as_ref().ok_or_else(|| Failure::new("no tensor"))?),
        "value_float" => Ok(Constant::scalar(f64::from(a.f))),
        "value_int" => Ok(Constant::scalar(a.i as f64)),
        "value_floats" => Ok(Constant {
            dims: vec![a.floats.len()],
            values: a.floats.iter().map(|&v| f64::from(v)).collect(),
        }),
        "value_ints" => Ok(Constant {
            dims: vec![a.ints.len()],
            values: a.ints.iter().map(|&v| v as f64).collect(),
        }),
        other => Err(Failure::new(format!("a Constant given as {other}"))),
    }
}

fn check_finite(weight: &[f32], bias: &[f32]) -> Result<()> {
    match weight.iter().chain(bias).find(|v| !v.is_finite()) {
        Some(v) => Err(Failure::new(format!("folding made a weight of {v}"))),
        None => Ok(()),
    }
}
