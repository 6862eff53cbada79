//! `hegpu._hegpu`: the Python extension module (pyo3). The client side (keys, encryption,
//! decryption) and the server side (evaluation with public material only) of the encrypted
//! network, with NumPy arrays in and out and bytes on the wire. The secret key lives in a
//! `Client` and never crosses into a Python object; errors become `HegpuError` with the
//! crate's message; long calls release the GIL.

use hegpu::backend::{Backend, CpuBackend, DeviceChoice, select_backend};
use hegpu::ckks::{
    Ciphertext, Decryptor, Encoder, Encryptor, EvaluationKeys, KeyGenerator, KeySetId,
    ParameterLiteral, Parameters as CkksParameters, Preset, SecretKey, SecurityLevel, Seed,
};
use hegpu::nn::{Bounds, EncryptedNetwork, InputRange, LatencyNetwork};
use hegpu::pair::{RequestLayout, ServedModel, SplitPacking};
use hegpu::tensor::{CipherTensor, ScheduleOptions, Scheduler};
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray2};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::sync::{Arc, Mutex};

create_exception!(
    _hegpu,
    HegpuError,
    PyException,
    "An error from hegpu: input of the wrong shape or values, bytes that are corrupted or \
     belong to another parameter or key set, a missing key, a model it cannot plan."
);

fn err(e: hegpu::Error) -> PyErr {
    HegpuError::new_err(e.to_string())
}

fn bad(why: impl Into<String>) -> PyErr {
    HegpuError::new_err(why.into())
}

/// Holds `images` (`per_image` values each) to the range a plan was calibrated for: an error
/// naming the first value outside it, or with `clamp` the values clamped and a warning saying
/// how many.
fn within_range(
    py: Python<'_>,
    range: InputRange,
    images: &mut [f32],
    per_image: usize,
    clamp: bool,
) -> PyResult<()> {
    if !clamp {
        return range.check(images, per_image).map_err(err);
    }
    let changed = range.clamp(images);
    if changed > 0 {
        warn(
            py,
            &format!(
                "clamped {changed} input values into [{}, {}], the range the plan was calibrated for",
                range.low, range.high
            ),
        )?;
    }
    Ok(())
}

/// A Python `UserWarning`.
fn warn(py: Python<'_>, message: &str) -> PyResult<()> {
    let message = std::ffi::CString::new(message).map_err(|e| bad(e.to_string()))?;
    PyErr::warn(
        py,
        &py.get_type::<pyo3::exceptions::PyUserWarning>(),
        &message,
        1,
    )
}

/// The scheduler's warnings (a GPU failure the CPU made up for, why the CPU was chosen) as
/// Python warnings.
fn scheduler_warnings(py: Python<'_>, scheduler: &Scheduler) -> PyResult<()> {
    for w in scheduler.take_warnings() {
        warn(py, &format!("hegpu: {w}"))?;
    }
    Ok(())
}

/// The rows of a 2-D float32 array, row-major, with its shape.
fn rows(images: &PyReadonlyArray2<'_, f32>) -> (Vec<f32>, usize, usize) {
    let a = images.as_array();
    let (n, m) = a.dim();
    (a.iter().copied().collect(), n, m)
}

fn array2<'py>(
    py: Python<'py>,
    rows: Vec<Vec<f32>>,
    width: usize,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let n = rows.len();
    let flat: Vec<f32> = rows.into_iter().flatten().collect();
    let a = Array2::from_shape_vec((n, width), flat).map_err(|e| bad(e.to_string()))?;
    Ok(a.into_pyarray(py))
}

/// A CKKS parameter set: a preset or a literal, checked against the 128-bit table unless
/// `secure=False`.
#[pyclass(frozen, module = "hegpu")]
struct Parameters {
    inner: Arc<CkksParameters>,
}

#[pymethods]
impl Parameters {
    #[new]
    #[pyo3(signature = (log_n, q_bits, p_bits, log_scale, secure = true))]
    fn new(
        log_n: u32,
        q_bits: Vec<u32>,
        p_bits: Vec<u32>,
        log_scale: u32,
        secure: bool,
    ) -> PyResult<Self> {
        let literal = ParameterLiteral {
            log_n,
            q_bits,
            p_bits,
            log_scale,
            security: if secure {
                SecurityLevel::Classical128
            } else {
                SecurityLevel::None
            },
        };
        Ok(Self {
            inner: CkksParameters::new(literal).map_err(err)?,
        })
    }

    /// `cryptonets8192` (N = 2^13, five levels at scale 2^24), `deep16384` (12 levels) or
    /// `deep32768` (28 levels); with `levels`, its chain cut to that many (the preset's first
    /// primes: a model that uses fewer levels then runs on fewer limbs, with smaller keys).
    #[staticmethod]
    #[pyo3(signature = (name, levels = None))]
    fn preset(name: &str, levels: Option<usize>) -> PyResult<Self> {
        let preset = Preset::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
            bad(format!("preset '{name}': one of {}", names.join(", ")))
        })?;
        let literal = match levels {
            Some(levels) => preset.literal_with_levels(levels).map_err(err)?,
            None => preset.literal(),
        };
        Ok(Self {
            inner: CkksParameters::new(literal).map_err(err)?,
        })
    }

    /// Reads a set written by `to_bytes` (validated like one built in code).
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        Ok(Self {
            inner: CkksParameters::from_bytes(data).map_err(err)?,
        })
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    /// The ring degree N.
    #[getter]
    fn degree(&self) -> usize {
        self.inner.degree()
    }

    /// Slots per ciphertext (N/2): images per batch.
    #[getter]
    fn slots(&self) -> usize {
        self.inner.slots()
    }

    /// Rescalings available.
    #[getter]
    fn levels(&self) -> usize {
        self.inner.max_level()
    }

    fn __repr__(&self) -> String {
        format!(
            "Parameters(N={}, levels={}, id={:#018x})",
            self.inner.degree(),
            self.inner.max_level(),
            self.inner.id()
        )
    }
}

/// A model file (safetensors with hegpu's metadata) and its plaintext forward pass.
#[pyclass(frozen, module = "hegpu")]
struct Model {
    inner: hegpu::nn::Model,
}

#[pymethods]
impl Model {
    #[staticmethod]
    fn load(path: std::path::PathBuf) -> PyResult<Self> {
        Ok(Self {
            inner: hegpu::nn::load_model(&path).map_err(err)?,
        })
    }

    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        Ok(Self {
            inner: hegpu::nn::model_from_bytes(data).map_err(err)?,
        })
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes =
            hegpu::nn::model_to_bytes(&self.inner, hegpu::nn::WeightType::F32).map_err(err)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Imports an ONNX file exported by PyTorch (see `hegpu import --help`).
    #[staticmethod]
    fn from_onnx(path: std::path::PathBuf) -> PyResult<Self> {
        Ok(Self {
            inner: hegpu::nn::import_onnx_file(&path).map_err(err)?.model,
        })
    }

    /// The model with each ReLU, sigmoid, tanh or SiLU replaced by a polynomial fitted on
    /// `calibration` (`(n, input_len)` float32); `approx` as on the command line, e.g.
    /// `["relu:8"]`.
    fn approximate(
        &self,
        py: Python<'_>,
        calibration: PyReadonlyArray2<'_, f32>,
        approx: Vec<String>,
    ) -> PyResult<Self> {
        let (calib, _, m) = rows(&calibration);
        self.check_width(m)?;
        let specs = approx
            .iter()
            .map(|a| a.parse::<hegpu::nn::ApproxSpec>())
            .collect::<hegpu::Result<Vec<_>>>()
            .map_err(err)?;
        let (inner, _) = py
            .detach(|| hegpu::nn::approximate(&self.inner, &calib, &specs))
            .map_err(err)?;
        Ok(Self { inner })
    }

    /// Levels the encrypted pass needs (an error while non-polynomial activations remain).
    #[getter]
    fn levels(&self) -> PyResult<usize> {
        hegpu::nn::levels_needed(&self.inner).map_err(err)
    }

    /// The smallest parameter preset (`cryptonets8192`, `deep16384`, `deep32768`) that holds
    /// the model and its values on `calibration`, for `Parameters.preset`.
    fn smallest_preset(
        &self,
        py: Python<'_>,
        calibration: PyReadonlyArray2<'_, f32>,
    ) -> PyResult<String> {
        let params = self.smallest_parameters(py, calibration)?;
        Preset::of(params.inner.literal())
            .map(|p| p.name().to_string())
            .ok_or_else(|| bad("the model's parameters are no preset's chain"))
    }

    /// The parameters the batch plan of the model runs on: the smallest preset that holds it
    /// and its values on `calibration`, its chain cut to the levels the plan uses.
    fn smallest_parameters(
        &self,
        py: Python<'_>,
        calibration: PyReadonlyArray2<'_, f32>,
    ) -> PyResult<Parameters> {
        let (calib, _, m) = rows(&calibration);
        self.check_width(m)?;
        py.detach(|| {
            let bounds = Bounds::measure(&self.inner, &calib)?;
            EncryptedNetwork::plan_smallest(&self.inner, &bounds).map(|(_, n)| Parameters {
                inner: n.params().clone(),
            })
        })
        .map_err(err)
    }

    /// Values per input.
    #[getter]
    fn input_len(&self) -> usize {
        self.inner.input_len()
    }

    /// Values per output.
    #[getter]
    fn output_len(&self) -> PyResult<usize> {
        let shapes = self.inner.shapes().map_err(err)?;
        Ok(shapes.last().map_or(0, |s| s.iter().product()))
    }

    /// The plaintext outputs of `images` (`(n, input_len)` float32): `(n, output_len)`.
    fn forward<'py>(
        &self,
        py: Python<'py>,
        images: PyReadonlyArray2<'py, f32>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (x, _, m) = rows(&images);
        self.check_width(m)?;
        let out: Vec<Vec<f32>> = py
            .detach(|| {
                x.chunks(m)
                    .map(|img| self.inner.forward(img))
                    .collect::<hegpu::Result<_>>()
            })
            .map_err(err)?;
        array2(py, out, self.output_len()?)
    }

    fn __repr__(&self) -> String {
        format!(
            "Model(input={:?}, layers={})",
            self.inner.input,
            self.inner.layers.len()
        )
    }
}

impl Model {
    fn check_width(&self, width: usize) -> PyResult<()> {
        if width != self.inner.input_len() {
            return Err(bad(format!(
                "images of {width} values; the model takes {}",
                self.inner.input_len()
            )));
        }
        Ok(())
    }
}

/// The latency packing's plan of a model (one image, or a few, per ciphertext): public, made
/// by the server from the model and calibration images, used by the client too.
#[pyclass(frozen, module = "hegpu")]
struct LatencyPlan {
    inner: LatencyNetwork,
}

#[pymethods]
impl LatencyPlan {
    #[new]
    #[pyo3(signature = (model, params, calibration, per_ciphertext = 1, request_images = None))]
    fn new(
        py: Python<'_>,
        model: &Model,
        params: &Parameters,
        calibration: PyReadonlyArray2<'_, f32>,
        per_ciphertext: usize,
        request_images: Option<usize>,
    ) -> PyResult<Self> {
        let (calib, _, m) = rows(&calibration);
        model.check_width(m)?;
        let inner = py
            .detach(|| {
                let plan =
                    LatencyNetwork::plan(&model.inner, &params.inner, &calib, per_ciphertext)?;
                match request_images {
                    Some(images) => plan.with_request_images(images),
                    None => Ok(plan),
                }
            })
            .map_err(err)?;
        Ok(Self { inner })
    }

    /// Most images one request holds (the server refuses larger requests).
    #[getter]
    fn request_images(&self) -> usize {
        self.inner.request_images()
    }

    /// `(low, high)`: the input values the plan was calibrated for.
    #[getter]
    fn input_range(&self) -> (f32, f32) {
        let r = self.inner.input_range();
        (r.low, r.high)
    }

    /// Rotation steps the Galois keys must cover.
    fn rotations(&self) -> Vec<i64> {
        self.inner.rotations()
    }

    /// Images that share a ciphertext.
    #[getter]
    fn images_per_ciphertext(&self) -> usize {
        self.inner.cost().images_per_ciphertext
    }

    /// Key switches per request.
    #[getter]
    fn key_switches(&self) -> usize {
        self.inner.cost().key_switches
    }
}

/// The client: the secret key (which stays inside), encryption and decryption.
#[pyclass(module = "hegpu")]
struct Client {
    params: Arc<CkksParameters>,
    keygen: Mutex<KeyGenerator>,
    sk: SecretKey,
    encoder: Encoder,
    encryptor: Encryptor,
    decryptor: Decryptor,
    host: Arc<dyn Backend>,
}

#[pymethods]
impl Client {
    /// New keys for `params`, from the operating system's entropy (`seed`: reproducible keys
    /// and encryptions, for tests only).
    #[new]
    #[pyo3(signature = (params, seed = None))]
    fn new(params: &Parameters, seed: Option<u64>) -> PyResult<Self> {
        let seed_of = |k: u64| seed.map_or(Seed::Os, |s| Seed::from_u64(s.wrapping_add(k)));
        let host = select_backend(DeviceChoice::Cpu).map_err(err)?;
        let mut keygen = KeyGenerator::new(&params.inner, seed_of(0));
        let sk = keygen.secret_key().map_err(err)?;
        Ok(Self {
            encoder: Encoder::new(&params.inner),
            encryptor: Encryptor::with_secret_key(&params.inner, &sk, host.clone(), seed_of(1))
                .map_err(err)?,
            decryptor: Decryptor::new(&params.inner, &sk).map_err(err)?,
            keygen: Mutex::new(keygen),
            sk,
            params: params.inner.clone(),
            host,
        })
    }

    /// The evaluation keys the server needs (relinearization, and Galois keys for
    /// `rotations`, e.g. `LatencyPlan.rotations()`), as bytes.
    #[pyo3(signature = (rotations = Vec::new()))]
    fn evaluation_keys<'py>(
        &self,
        py: Python<'py>,
        rotations: Vec<i64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = py
            .detach(|| -> hegpu::Result<Vec<u8>> {
                let mut kg = self.keygen.lock().unwrap_or_else(|p| p.into_inner());
                let keys = EvaluationKeys {
                    relin: Some(kg.relin_key(&self.sk)?),
                    galois: kg.galois_keys(&self.sk, &rotations, false)?,
                };
                keys.to_bytes(&self.params)
            })
            .map_err(err)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Encrypts `(n, values)` float32 images (n up to `params.slots`) in the batch packing:
    /// one ciphertext per value, image i in slot i.
    ///
    /// `input_range` is the server's `Server.input_range`: values outside it are an error,
    /// or with `clamp` are clamped into it with a warning (an encrypted overflow would
    /// decrypt to garbage without any error).
    #[pyo3(signature = (images, input_range, clamp = false))]
    fn encrypt_batch<'py>(
        &self,
        py: Python<'py>,
        images: PyReadonlyArray2<'py, f32>,
        input_range: (f32, f32),
        clamp: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (mut x, n, m) = rows(&images);
        if n == 0 || m == 0 {
            return Err(bad("no images to encrypt"));
        }
        let range = InputRange::new(input_range.0, input_range.1).map_err(err)?;
        within_range(py, range, &mut x, m, clamp)?;
        let bytes = py
            .detach(|| -> hegpu::Result<Vec<u8>> {
                let scale = self.params.default_scale();
                let (encoder, encryptor) = (&self.encoder, &self.encryptor);
                CipherTensor::encrypt_to_bytes(&x, &[m], encoder, encryptor, scale)
            })
            .map_err(err)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Decrypts a server's result of a batch of `images` images: `(images, outputs)` float32.
    fn decrypt_batch<'py>(
        &self,
        py: Python<'py>,
        result: &[u8],
        images: usize,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (out, width) = py
            .detach(|| -> hegpu::Result<(Vec<Vec<f32>>, usize)> {
                let ct = Ciphertext::from_bytes(result, &self.params, &*self.host)?;
                let width = ct.count();
                let t = CipherTensor::new(ct, &[width])?;
                Ok((
                    t.decrypt(&self.decryptor, &self.encoder, images, &*self.host)?,
                    width,
                ))
            })
            .map_err(err)?;
        array2(py, out, width)
    }

    /// Encrypts `(n, values)` images for the latency packing's `plan`: values outside
    /// `plan.input_range` are an error, or with `clamp` are clamped with a warning.
    #[pyo3(signature = (plan, images, clamp = false))]
    fn encrypt_latency<'py>(
        &self,
        py: Python<'py>,
        plan: &LatencyPlan,
        images: PyReadonlyArray2<'py, f32>,
        clamp: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (mut x, _, m) = rows(&images);
        within_range(py, plan.inner.input_range(), &mut x, m, clamp)?;
        let bytes = py
            .detach(|| -> hegpu::Result<Vec<u8>> {
                let ct = plan.inner.encrypt(&self.encoder, &self.encryptor, &x)?;
                ct.to_bytes(&self.params, &*self.host)
            })
            .map_err(err)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Decrypts a latency-packing result of `images` images: `(images, outputs)` float32.
    fn decrypt_latency<'py>(
        &self,
        py: Python<'py>,
        plan: &LatencyPlan,
        result: &[u8],
        images: usize,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let out = py
            .detach(|| -> hegpu::Result<Vec<Vec<f32>>> {
                let ct = Ciphertext::from_bytes(result, &self.params, &*self.host)?;
                plan.inner
                    .decrypt(&self.decryptor, &self.encoder, &ct, images, &*self.host)
            })
            .map_err(err)?;
        let width = out.first().map_or(0, Vec::len);
        array2(py, out, width)
    }

    fn __repr__(&self) -> String {
        format!("Client(key set {}, secret key held)", self.sk.key_set())
    }
}

/// The scheduler a server evaluates with under the evaluation keys `keys` (bytes), on
/// `device`: `cpu` (with `threads`, default all), `gpu` or `auto` (why `auto` took the CPU is
/// its first warning, shown on the first call); and the key set the keys belong to.
fn server_scheduler(
    params: &Arc<CkksParameters>,
    keys: &[u8],
    device: &str,
    threads: Option<usize>,
) -> hegpu::Result<(Scheduler, KeySetId)> {
    let keys = EvaluationKeys::from_bytes(keys, params)?;
    let key_set = keys.key_set()?.ok_or_else(|| {
        hegpu::Error::Config("the evaluation keys hold no key: make them with Client".into())
    })?;
    let choice: DeviceChoice = device.parse()?;
    let (backend, note): (Arc<dyn Backend>, _) = match choice {
        DeviceChoice::Cpu => (Arc::new(CpuBackend::new(threads)?), None),
        _ => hegpu::backend::choose_backend(choice, Default::default())?,
    };
    let scheduler = Scheduler::new(params, &keys, backend, ScheduleOptions::default())?;
    note.into_iter().for_each(|n| scheduler.warn(n));
    Ok((scheduler, key_set))
}

/// The server of the batch packing: the model planned on calibration images (public data)
/// and the evaluation keys; evaluates encrypted batches with public material only.
#[pyclass(frozen, module = "hegpu")]
struct Server {
    served: ServedModel,
    scheduler: Scheduler,
    key_set: KeySetId,
}

#[pymethods]
impl Server {
    #[new]
    #[pyo3(signature = (params, keys, model, calibration, device = "cpu", threads = None))]
    fn new(
        py: Python<'_>,
        params: &Parameters,
        keys: &[u8],
        model: &Model,
        calibration: PyReadonlyArray2<'_, f32>,
        device: &str,
        threads: Option<usize>,
    ) -> PyResult<Self> {
        let (calib, _, m) = rows(&calibration);
        model.check_width(m)?;
        py.detach(|| -> hegpu::Result<Self> {
            let (scheduler, key_set) = server_scheduler(&params.inner, keys, device, threads)?;
            let packing = SplitPacking::Batch;
            let served =
                ServedModel::new(&model.inner, &calib, packing, Some(params.inner.clone()))?;
            Ok(Self {
                served,
                scheduler,
                key_set,
            })
        })
        .map_err(err)
    }

    /// Evaluates one encrypted batch (bytes from `Client.encrypt_batch` under the keys it was
    /// given): the result's bytes.
    fn evaluate<'py>(&self, py: Python<'py>, batch: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let (bytes, _) = py
            .detach(|| {
                self.served
                    .evaluate(&self.scheduler, self.key_set, batch, "the batch")
            })
            .map_err(err)?;
        scheduler_warnings(py, &self.scheduler)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// The device it evaluates on.
    #[getter]
    fn device(&self) -> String {
        self.scheduler.name()
    }

    /// `(low, high)`: the input values the plan was calibrated for; clients pass it to
    /// `Client.encrypt_batch`.
    #[getter]
    fn input_range(&self) -> (f32, f32) {
        let r = self.served.input_range();
        (r.low, r.high)
    }
}

/// The server of the latency packing for one plan.
#[pyclass(frozen, module = "hegpu")]
struct LatencyServer {
    served: ServedModel,
    scheduler: Scheduler,
    key_set: KeySetId,
}

#[pymethods]
impl LatencyServer {
    #[new]
    #[pyo3(signature = (params, keys, plan, device = "cpu", threads = None))]
    fn new(
        py: Python<'_>,
        params: &Parameters,
        keys: &[u8],
        plan: &LatencyPlan,
        device: &str,
        threads: Option<usize>,
    ) -> PyResult<Self> {
        py.detach(|| -> hegpu::Result<Self> {
            let (scheduler, key_set) = server_scheduler(&params.inner, keys, device, threads)?;
            let share = plan.inner.cost().images_per_ciphertext;
            Ok(Self {
                served: ServedModel::latency(plan.inner.clone(), share),
                scheduler,
                key_set,
            })
        })
        .map_err(err)
    }

    /// Evaluates one request (bytes from `Client.encrypt_latency` under the keys it was
    /// given): the result's bytes.
    fn evaluate<'py>(&self, py: Python<'py>, request: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let (bytes, _) = py
            .detach(|| {
                self.served
                    .evaluate(&self.scheduler, self.key_set, request, "the request")
            })
            .map_err(err)?;
        scheduler_warnings(py, &self.scheduler)?;
        Ok(PyBytes::new(py, &bytes))
    }
}

/// The client side of `hegpu serve` (see `hegpu.http`): a secret key for the server's
/// parameters (and in the latency packing, the plan of the server's model), framed requests
/// and their checked answers. The secret key never leaves it.
#[pyclass(frozen, module = "hegpu")]
struct ModelClient {
    inner: hegpu::pair::ModelClient,
    keys: Vec<u8>,
    fingerprint: u32,
}

#[pymethods]
impl ModelClient {
    /// `params`: the server's `/v1/params` bytes. The latency packing needs the server's
    /// `model` (a file or shipped name), the MNIST directory `data` for its calibration and
    /// the server's `per_ciphertext`.
    #[new]
    #[pyo3(signature = (params, model = None, data = None, per_ciphertext = 1))]
    fn new(
        py: Python<'_>,
        params: &[u8],
        model: Option<std::path::PathBuf>,
        data: Option<std::path::PathBuf>,
        per_ciphertext: usize,
    ) -> PyResult<Self> {
        py.detach(|| -> hegpu::Result<Self> {
            let params = CkksParameters::from_bytes(params)?;
            let latency = match model {
                None => None,
                Some(model) => {
                    let data = data.unwrap_or_else(|| "data/mnist".into());
                    let mnist = hegpu::data::Mnist::load(&data)?;
                    let plan = hegpu::pair::latency_plan(
                        Some(&model),
                        &mnist,
                        per_ciphertext,
                        Some(&params),
                    )?;
                    Some(plan)
                }
            };
            let fingerprint = latency.as_ref().map_or(0, LatencyNetwork::fingerprint);
            let layout = RequestLayout::digits_or(latency);
            let (inner, keys) = hegpu::pair::ModelClient::new(params, layout)?;
            Ok(Self {
                inner,
                keys,
                fingerprint,
            })
        })
        .map_err(err)
    }

    /// The evaluation keys to register (`POST /v1/keys`).
    fn evaluation_keys<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.keys)
    }

    /// Most images one request holds.
    #[getter]
    fn request_images(&self) -> usize {
        self.inner.request_images()
    }

    /// The latency plan's fingerprint (0 in the batch packing): the server's `/v1/info` must
    /// name the same.
    #[getter]
    fn fingerprint(&self) -> u32 {
        self.fingerprint
    }

    /// Request `batch` of `images` (`(n, 784)` in [0, 1]) numbered from `start`: the framed
    /// bytes to `POST /v1/infer/{key_id}`.
    fn request<'py>(
        &self,
        py: Python<'py>,
        batch: usize,
        start: usize,
        images: PyReadonlyArray2<'_, f32>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (px, n, width) = rows(&images);
        let want = self.inner.layout().input_len();
        if width != want {
            return Err(bad(format!("images of {width} pixels; expected {want}")));
        }
        let bytes = py
            .detach(|| self.inner.request(batch, (start, start + n), &px))
            .map_err(err)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// The logits (`(n, 10)`) of `answer`, which must answer `request` (request `batch` of the
    /// `n` images from `start`) under this client's keys.
    fn outputs<'py>(
        &self,
        py: Python<'py>,
        answer: &[u8],
        request: &[u8],
        batch: usize,
        start: usize,
        n: usize,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let outputs = py
            .detach(|| -> hegpu::Result<Vec<Vec<f32>>> {
                let source = hegpu::pair::request_checksum(request)?;
                let range = (start, start + n);
                self.inner
                    .outputs(answer, "the server's answer", (batch, range), source)
            })
            .map_err(err)?;
        array2(py, outputs, self.inner.layout().output_len())
    }
}

/// The MNIST IDX files of `directory` (gzip or not): a dict of `train_images`, `test_images`
/// (`(n, 784)` float32 in [0, 1]) and `train_labels`, `test_labels` (uint8).
#[pyfunction]
fn load_mnist<'py>(py: Python<'py>, directory: std::path::PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let mnist = py
        .detach(|| hegpu::data::Mnist::load(&directory))
        .map_err(err)?;
    let d = PyDict::new(py);
    for (name, images) in [
        ("train_images", &mnist.train_images),
        ("test_images", &mnist.test_images),
    ] {
        let px = hegpu::nn::pixels(images);
        let n = px.len() / 784;
        let a = Array2::from_shape_vec((n, 784), px).map_err(|e| bad(e.to_string()))?;
        d.set_item(name, a.into_pyarray(py))?;
    }
    d.set_item("train_labels", PyArray1::from_vec(py, mnist.train_labels))?;
    d.set_item("test_labels", PyArray1::from_vec(py, mnist.test_labels))?;
    Ok(d)
}

#[pymodule]
fn _hegpu(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("HegpuError", m.py().get_type::<HegpuError>())?;
    m.add_class::<Parameters>()?;
    m.add_class::<Model>()?;
    m.add_class::<LatencyPlan>()?;
    m.add_class::<Client>()?;
    m.add_class::<Server>()?;
    m.add_class::<LatencyServer>()?;
    m.add_class::<ModelClient>()?;
    m.add_function(wrap_pyfunction!(load_mnist, m)?)?;
    Ok(())
}
