//! Model files: safetensors with weights in f16 or f32 and the architecture in the metadata.
//!
//! Tensor names are `{i}.weight` and `{i}.bias` for layer `i` (Conv2d `[out, in, k, k]`, Dense
//! `[out, in]`): the keys of a PyTorch `nn.Sequential` state dict with the same layers, so a
//! model trained there loads once the metadata entry `hegpu.architecture` is added (see the
//! docs/models.md). The metadata entry `hegpu.format` is `hegpu-model-1`.
//!
//! Files written here also carry `hegpu.checksum`: a CRC-32 of the architecture and every
//! tensor, checked when present, so a flipped bit in a file hegpu wrote is an error. Files made
//! by other tools may leave it out. Metadata keys other than these and safetensors' `format`
//! are refused, so a damaged key name cannot make a checked file pass as an unchecked one.

use super::layer::Layer;
use super::model::Model;
use crate::{Error, Result};
use half::f16;
use safetensors::{Dtype, SafeTensors, tensor::TensorInfo};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

const FORMAT: &str = "hegpu-model-1";
const KEY_FORMAT: &str = "hegpu.format";
const KEY_ARCHITECTURE: &str = "hegpu.architecture";
const KEY_CHECKSUM: &str = "hegpu.checksum";
/// Metadata keys a model file may have (`format` is what PyTorch tools write).
const KNOWN_KEYS: [&str; 4] = [KEY_FORMAT, KEY_ARCHITECTURE, KEY_CHECKSUM, "format"];

/// One tensor as stored: name, type, shape and little-endian bytes.
type Stored<'a> = (&'a str, Dtype, &'a [usize], &'a [u8]);

/// CRC-32 of the architecture text and every tensor (name, type, shape, bytes) in name order.
fn checksum<'a>(architecture: &str, tensors: impl IntoIterator<Item = Stored<'a>>) -> String {
    let mut tensors: Vec<_> = tensors.into_iter().collect();
    tensors.sort_by_key(|(name, ..)| *name);
    let mut crc = crc32fast::Hasher::new();
    crc.update(architecture.as_bytes());
    for (name, dtype, shape, data) in tensors {
        crc.update(name.as_bytes());
        crc.update(format!("{dtype:?}{shape:?}").as_bytes());
        crc.update(data);
    }
    format!("{:08x}", crc.finalize())
}

/// A safetensors header with the metadata first and sorted. safetensors' own writer emits
/// the metadata in hash-map order, so one model gave different bytes from run to run; this
/// writes its layout (metadata, then the tensors by name with their data in that order, the
/// header padded with spaces to 8 bytes) in a fixed order.
#[derive(Serialize)]
struct Header<'a> {
    #[serde(rename = "__metadata__")]
    metadata: BTreeMap<&'static str, &'a str>,
    #[serde(flatten)]
    tensors: BTreeMap<&'a str, TensorInfo>,
}

/// The safetensors bytes of `tensors` (one weight type, so safetensors' order is name order)
/// with `metadata`.
fn encode(metadata: BTreeMap<&'static str, &str>, tensors: &[Stored<'_>]) -> Vec<u8> {
    let mut sorted: Vec<_> = tensors.iter().collect();
    sorted.sort_by_key(|(name, ..)| *name);
    let mut offset = 0;
    let mut header = Header {
        metadata,
        tensors: BTreeMap::new(),
    };
    for &&(name, dtype, shape, data) in &sorted {
        let data_offsets = (offset, offset + data.len());
        offset += data.len();
        let info = TensorInfo {
            dtype,
            shape: shape.to_vec(),
            data_offsets,
        };
        header.tensors.insert(name, info);
    }
    let mut text = serde_json::to_vec(&header).expect("plain data serializes");
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut bytes = Vec::with_capacity(8 + text.len() + offset);
    bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&text);
    for (.., data) in sorted {
        bytes.extend_from_slice(data);
    }
    bytes
}

/// How weights are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightType {
    F16,
    F32,
}

/// The metadata entry `hegpu.architecture` (JSON): the input shape and the layers without
/// their weights and biases, which are the file's tensors.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Architecture<'a> {
    input: Cow<'a, [usize]>,
    layers: Cow<'a, [Layer]>,
}

fn bad(path: &Path, why: impl Into<String>) -> Error {
    Error::Data {
        path: path.display().to_string(),
        why: why.into(),
    }
}

/// Encodes a model as safetensors bytes.
pub fn model_to_bytes(model: &Model, dtype: WeightType) -> Result<Vec<u8>> {
    model.shapes()?;
    let arch = Architecture {
        input: Cow::Borrowed(&model.input),
        layers: Cow::Borrowed(&model.layers),
    };
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, layer) in model.layers.iter().enumerate() {
        let (Some(wshape), Some((weight, bias))) = (layer.weight_shape(), layer.parameters())
        else {
            continue;
        };
        for (name, shape, values) in [("weight", wshape, weight), ("bias", vec![bias.len()], bias)]
        {
            let (dt, bytes) = match dtype {
                WeightType::F32 => (
                    Dtype::F32,
                    values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                ),
                WeightType::F16 => (
                    Dtype::F16,
                    values
                        .iter()
                        .flat_map(|&v| f16::from_f32(v).to_le_bytes())
                        .collect(),
                ),
            };
            tensors.push((format!("{i}.{name}"), dt, shape, bytes));
        }
    }
    let stored: Vec<Stored<'_>> = tensors
        .iter()
        .map(|(name, dt, shape, bytes)| (name.as_str(), *dt, shape.as_slice(), bytes.as_slice()))
        .collect();
    let architecture = serde_json::to_string(&arch).expect("plain data serializes");
    let crc = checksum(&architecture, stored.iter().copied());
    let metadata = BTreeMap::from([
        (KEY_FORMAT, FORMAT),
        (KEY_ARCHITECTURE, architecture.as_str()),
        (KEY_CHECKSUM, crc.as_str()),
    ]);
    Ok(encode(metadata, &stored))
}

/// Writes a model file.
pub fn save_model(model: &Model, path: &Path, dtype: WeightType) -> Result<()> {
    let bytes = model_to_bytes(model, dtype)?;
    crate::files::write_file(path, &bytes)
}

/// Reads a model file, checking the architecture, every tensor's type and shape, that no
/// tensor is missing or extra, and that every weight is finite.
pub fn load_model(path: &Path) -> Result<Model> {
    let bytes = std::fs::read(path).map_err(|e| bad(path, e.to_string()))?;
    model_from_bytes(&bytes).map_err(|e| match e {
        Error::Data { why, .. } => bad(path, why),
        other => bad(path, other.to_string()),
    })
}

/// Decodes safetensors bytes written by [`model_to_bytes`] (or by another tool, with the same
/// names and metadata).
pub fn model_from_bytes(bytes: &[u8]) -> Result<Model> {
    let here = Path::new("model");
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(here, format!("not safetensors: {e}")))?;
    let file =
        SafeTensors::deserialize(bytes).map_err(|e| bad(here, format!("not safetensors: {e}")))?;
    let info = meta
        .metadata()
        .as_ref()
        .ok_or_else(|| bad(here, "no metadata (hegpu.architecture is required)"))?;
    let architecture = checked_architecture(info, &file)?;
    let arch: Architecture = serde_json::from_str(architecture)
        .map_err(|e| bad(here, format!("hegpu.architecture: {e}")))?;
    let mut tensors = Tensors { file, used: 0 };
    let mut layers = arch.layers.into_owned();
    for (i, layer) in layers.iter_mut().enumerate() {
        tensors.fill(i, layer)?;
    }
    if tensors.used != tensors.file.len() {
        return Err(bad(
            here,
            format!(
                "{} tensors that no layer uses",
                tensors.file.len() - tensors.used
            ),
        ));
    }
    let model = Model {
        input: arch.input.into_owned(),
        layers,
    };
    model.shapes().map_err(|e| bad(here, e.to_string()))?;
    Ok(model)
}

/// The architecture text of a model file whose metadata keys, format and checksum (when
/// present) are those hegpu writes.
fn checked_architecture<'a>(
    info: &'a HashMap<String, String>,
    file: &SafeTensors<'_>,
) -> Result<&'a str> {
    let here = Path::new("model");
    if let Some(k) = info.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
        return Err(bad(
            here,
            format!(
                "unknown metadata key '{}'; a model file has {}",
                k.escape_debug(),
                KNOWN_KEYS.join(", ")
            ),
        ));
    }
    if let Some(f) = info.get(KEY_FORMAT).filter(|f| f.as_str() != FORMAT) {
        return Err(bad(
            here,
            format!("format {}, this build reads {FORMAT}", f.escape_debug()),
        ));
    }
    let architecture = info
        .get(KEY_ARCHITECTURE)
        .ok_or_else(|| bad(here, "no hegpu.architecture metadata"))?;
    if let Some(stored) = info.get(KEY_CHECKSUM) {
        let tensors = file.tensors();
        let views = tensors
            .iter()
            .map(|(n, v)| (n.as_str(), v.dtype(), v.shape(), v.data()));
        let found = checksum(architecture, views);
        if *stored != found {
            return Err(bad(
                here,
                format!(
                    "the checksum does not match (stored {}, computed {found}): the file is corrupted",
                    stored.escape_debug()
                ),
            ));
        }
    }
    Ok(architecture)
}

/// A model file's tensors, counting those the layers read.
struct Tensors<'a> {
    file: SafeTensors<'a>,
    used: usize,
}

impl Tensors<'_> {
    /// Tensor `name` of `shape`, in f16 or f32, every value finite.
    fn read(&mut self, name: String, shape: Vec<usize>) -> Result<Vec<f32>> {
        let here = Path::new("model");
        let t = self
            .file
            .tensor(&name)
            .map_err(|_| bad(here, format!("tensor {name} is missing")))?;
        if t.shape() != shape.as_slice() {
            return Err(bad(
                here,
                format!(
                    "tensor {name} has shape {:?}, expected {shape:?}",
                    t.shape()
                ),
            ));
        }
        let values: Vec<f32> = match t.dtype() {
            Dtype::F32 => t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
                .collect(),
            Dtype::F16 => t
                .data()
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes(c.try_into().expect("2")).to_f32())
                .collect(),
            other => {
                return Err(bad(
                    here,
                    format!("tensor {name} is {other:?}, expected F16 or F32"),
                ));
            }
        };
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(bad(here, format!("tensor {name} holds {v}")));
        }
        self.used += 1;
        Ok(values)
    }

    /// Reads the weights and bias of layer `i`, if its kind has them.
    fn fill(&mut self, i: usize, layer: &mut Layer) -> Result<()> {
        let Some(shape) = layer.weight_shape() else {
            return Ok(());
        };
        let bias_shape = vec![shape[0]];
        if let Some((weight, bias)) = layer.parameter_vecs_mut() {
            *weight = self.read(format!("{i}.weight"), shape)?;
            *bias = self.read(format!("{i}.bias"), bias_shape)?;
        }
        Ok(())
    }
}
