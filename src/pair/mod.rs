//! One client and one server for a planned network, in memory, in either packing: the
//! in-process job, the split job's files, the bench, the HTTP service (`hegpu serve`, `hegpu
//! client`) and Python's servers all use it, and the files and the service carry what it makes.
//! The input and output sizes come from the model ([`RequestLayout`]); the MNIST job's helpers
//! ([`ServedModel::plan`], [`latency_plan`]) add the digit models and calibration images.
//!
//! The server side, [`ServedModel`], holds the model's plan for the parameters every client
//! must use; [`ServedModel::answer`] answers a framed request (see [`envelope`]) under a
//! client's evaluation keys with a framed answer bound to that request (its batch, its images
//! and its ciphertext's checksum). The client side, [`ModelClient`], holds the secret key,
//! which never leaves it: it makes the evaluation keys, encrypts framed requests and reads the
//! answers, checking that each is the answer to its request under its own keys.

mod digits;
pub mod envelope;

use crate::backend::{Backend, CpuBackend};
use crate::ckks::{
    Ciphertext, Decryptor, Encoder, Encryptor, EvaluationKeys, KeyGenerator, KeySetId, Parameters,
    Preset, SecretKey, Seed,
};
use crate::data::Mnist;
use crate::nn::{Bounds, EncryptedNetwork, InputRange, LatencyNetwork, Model};
use crate::tensor::{CipherTensor, ScheduleReport, Scheduler};
use crate::{Error, PlanError, Result};
pub use digits::{
    DIGIT_PIXELS, SHIPPED_MODELS, calibration, latency_plan, load_digit_model, plan_batch,
};
use envelope::{Frame, Kind, ciphertext_checksum};
use std::path::Path;
use std::sync::Arc;

/// How the split job packs images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitPacking {
    /// CryptoNets: an image per slot, batches of up to N/2 images.
    Batch,
    /// An image per ciphertext, up to `per_ciphertext` sharing one; a batch file is a request
    /// of that many images. Every step is given the same model, which it plans.
    Latency { per_ciphertext: usize },
}

/// `e` as an error about `name` (a file, a request), unless it already names one.
pub fn named(name: &str, e: Error) -> Error {
    match e {
        Error::Data { .. } => e,
        other => Error::Data {
            path: name.to_string(),
            why: other.to_string(),
        },
    }
}

/// The latency plan of `model` on `calibration` (inputs, one after another) for `params` or,
/// without them, with the smallest preset that holds it.
pub(crate) fn plan_latency(
    model: &Model,
    calibration: &[f32],
    per_ciphertext: usize,
    params: Option<&Arc<Parameters>>,
) -> Result<LatencyNetwork> {
    match params {
        Some(params) => LatencyNetwork::plan(model, params, calibration, per_ciphertext),
        None => Ok(LatencyNetwork::plan_smallest(model, calibration, per_ciphertext)?.1),
    }
}

/// A plan of either packing.
enum Plan {
    Batch(EncryptedNetwork),
    Latency(LatencyNetwork),
}

/// What a client lays its requests out by and reads its answers with: the served plan's shapes
/// in the batch packing, the plan itself in the latency packing (the server gives it with
/// [`ServedModel::layout`]; a remote client plans the same from the model).
#[derive(Clone, Debug)]
pub enum RequestLayout {
    /// An image per slot: a request holds a ciphertext per value of `input`, an answer one
    /// per value of `output`.
    Batch {
        input: Vec<usize>,
        output: Vec<usize>,
    },
    /// An image (or a few) per ciphertext, laid out by the server's plan.
    Latency(LatencyNetwork),
}

impl RequestLayout {
    /// The batch layout of `network`'s plan.
    pub fn batch(network: &EncryptedNetwork) -> Self {
        let (input, output) = network.shape();
        RequestLayout::Batch {
            input: input.to_vec(),
            output: output.to_vec(),
        }
    }

    /// The batch layout of the job's digit models: 1×28×28 images to 10 logits.
    pub fn digits() -> Self {
        RequestLayout::Batch {
            input: vec![1, 28, 28],
            output: vec![10],
        }
    }

    /// A digit model's layout: the server's latency plan when there is one, else
    /// [`digits`](Self::digits) (the batch packing).
    pub fn digits_or(latency: Option<LatencyNetwork>) -> Self {
        latency.map_or_else(Self::digits, Self::Latency)
    }

    /// The shapes of one input and one output (a latency plan takes its inputs flat).
    pub fn shapes(&self) -> (Vec<usize>, Vec<usize>) {
        match self {
            RequestLayout::Batch { input, output } => (input.clone(), output.clone()),
            RequestLayout::Latency(plan) => (vec![plan.input_len()], vec![plan.output_len()]),
        }
    }

    /// Values of one image (or input).
    pub fn input_len(&self) -> usize {
        match self {
            RequestLayout::Batch { input, .. } => input.iter().product(),
            RequestLayout::Latency(plan) => plan.input_len(),
        }
    }

    /// Values of one answer (logits per image).
    pub fn output_len(&self) -> usize {
        match self {
            RequestLayout::Batch { output, .. } => output.iter().product(),
            RequestLayout::Latency(plan) => plan.output_len(),
        }
    }
}

/// The server's side: a model planned for the parameters its clients use.
pub struct ServedModel {
    plan: Plan,
    params: Arc<Parameters>,
    packing: SplitPacking,
}

/// A server's answer to one request.
pub struct Answer {
    /// The framed answer (see [`envelope`]).
    pub bytes: Vec<u8>,
    /// Seconds the evaluation took, from reading the request's ciphertexts to the result.
    pub seconds: f64,
    /// Where each stage ran and what it cost.
    pub report: ScheduleReport,
}

impl ServedModel {
    /// Plans `model` with `calibration` (sample inputs, one after another: public data that
    /// bounds the values every stage takes) in `packing`: for `params` (the clients') or,
    /// without them, on the smallest preset that holds the model, its chain cut to the levels
    /// the plan uses.
    pub fn new(
        model: &Model,
        calibration: &[f32],
        packing: SplitPacking,
        params: Option<Arc<Parameters>>,
    ) -> Result<Self> {
        match packing {
            SplitPacking::Batch => {
                let bounds = Bounds::measure(model, calibration)?;
                let network = match params {
                    Some(params) => EncryptedNetwork::plan(model, &params, &bounds)?,
                    None => EncryptedNetwork::plan_smallest(model, &bounds)?.1,
                };
                Ok(Self::batch(network))
            }
            SplitPacking::Latency { per_ciphertext } => {
                let plan = plan_latency(model, calibration, per_ciphertext, params.as_ref())?;
                Ok(Self::latency(plan, per_ciphertext))
            }
        }
    }

    /// The MNIST job's server: [`new`](Self::new) for `model` (a file or a shipped model's
    /// name, see [`load_digit_model`]) with `mnist`'s calibration images. When
    /// `params` cannot hold the model in the batch packing, the error names the parameters
    /// that would.
    pub fn plan(
        model: &Path,
        mnist: &Mnist,
        packing: SplitPacking,
        params: Option<Arc<Parameters>>,
    ) -> Result<Self> {
        let model = load_digit_model(model)?;
        let given = params.is_some();
        let batch = packing == SplitPacking::Batch && given;
        Self::new(&model, &calibration(mnist), packing, params).map_err(|e| match e {
            Error::Plan(PlanError::TooFewLevels { .. } | PlanError::Overflow { .. }) if batch => {
                match plan_batch(&model, mnist, None) {
                    Ok(fits) => Error::Config(format!(
                        "{e}; make the keys with `hegpu mnist keys --model` (the model's plan \
                         takes {} at {} levels)",
                        Preset::of(fits.params().literal()).map_or("a larger preset", |p| p.name()),
                        fits.params().max_level()
                    )),
                    Err(_) => e,
                }
            }
            e => e,
        })
    }

    /// Serves a batch-packing plan.
    pub fn batch(network: EncryptedNetwork) -> Self {
        Self {
            params: network.params().clone(),
            plan: Plan::Batch(network),
            packing: SplitPacking::Batch,
        }
    }

    /// Serves a latency plan made with up to `per_ciphertext` images sharing a ciphertext.
    pub fn latency(plan: LatencyNetwork, per_ciphertext: usize) -> Self {
        Self {
            params: plan.params().clone(),
            plan: Plan::Latency(plan),
            packing: SplitPacking::Latency { per_ciphertext },
        }
    }

    /// The parameters every client must use.
    pub fn params(&self) -> &Arc<Parameters> {
        &self.params
    }

    /// The packing it was planned for.
    pub fn packing(&self) -> SplitPacking {
        self.packing
    }

    /// The input values the plan was calibrated for (clients encrypt only these).
    pub fn input_range(&self) -> InputRange {
        match &self.plan {
            Plan::Batch(network) => network.input_range(),
            Plan::Latency(plan) => plan.input_range(),
        }
    }

    /// What its clients lay requests out by.
    pub fn layout(&self) -> RequestLayout {
        match &self.plan {
            Plan::Batch(network) => RequestLayout::batch(network),
            Plan::Latency(plan) => RequestLayout::Latency(plan.clone()),
        }
    }

    /// Most images in one request: N/2 in the batch packing, the plan's in the latency packing.
    pub fn request_images(&self) -> usize {
        match &self.plan {
            Plan::Batch(_) => self.params.slots(),
            Plan::Latency(plan) => plan.request_images(),
        }
    }

    /// The Galois keys a client's evaluation keys must hold: (rotation, level) pairs.
    pub fn rotations(&self) -> Vec<(i64, usize)> {
        match &self.plan {
            Plan::Batch(_) => Vec::new(),
            Plan::Latency(plan) => plan.rotation_levels(),
        }
    }

    /// The latency plan's fingerprint a request must carry (0 in the batch packing).
    pub fn fingerprint(&self) -> u32 {
        match &self.plan {
            Plan::Batch(_) => 0,
            Plan::Latency(plan) => plan.fingerprint(),
        }
    }

    /// The batch packing's plan, if this is one (for the memory check).
    pub fn batch_plan(&self) -> Option<&EncryptedNetwork> {
        match &self.plan {
            Plan::Batch(network) => Some(network),
            Plan::Latency(_) => None,
        }
    }

    /// The frame a request of batch `b` and images `range` must have.
    fn request_frame(&self, b: usize, range: (usize, usize)) -> Frame {
        let kind = match self.plan {
            Plan::Batch(_) => Kind::Batch,
            Plan::Latency(_) => Kind::Request,
        };
        frame_of(kind, b, range, self.fingerprint())
    }

    /// Checks the frame of `request` (named `name` in errors): a request of this packing and
    /// plan, of 1 to [`request_images`](Self::request_images) images, and when `expected`
    /// is given, of that batch and those images. Returns the frame and the ciphertext bytes.
    pub fn check_request<'a>(
        &self,
        request: &'a [u8],
        name: &str,
        expected: Option<(usize, (usize, usize))>,
    ) -> Result<(Frame, &'a [u8])> {
        let (frame, ct) = Frame::unwrap(request, name)?;
        let bad = |why: String| Error::Data {
            path: name.to_string(),
            why,
        };
        let range = (frame.start as usize, frame.end as usize);
        let (b, range) = expected.unwrap_or((frame.batch as usize, range));
        let wanted = self.request_frame(b, range);
        frame.expect(
            &Frame {
                source: 0,
                ..wanted
            },
            name,
        )?;
        if frame.source != wanted.source {
            return Err(bad(format!(
                "was laid out for another latency plan (fingerprint {:08x}; the server's is \
                 {:08x}): give the client and the server the same --model and --per-ciphertext",
                frame.source, wanted.source
            )));
        }
        let images = frame.end.saturating_sub(frame.start) as usize;
        if images == 0 || images > self.request_images() {
            return Err(bad(format!(
                "holds images {}..{}: a request holds 1 to {} images",
                frame.start,
                frame.end,
                self.request_images()
            )));
        }
        Ok((frame, ct))
    }

    /// The framed answer to `request` (named `name` in errors; see
    /// [`check_request`](Self::check_request) for `expected`), evaluated by `scheduler`, which
    /// holds evaluation keys of `key_set`: a request under another key set is an error.
    pub fn answer(
        &self,
        scheduler: &Scheduler,
        key_set: KeySetId,
        request: &[u8],
        name: &str,
        expected: Option<(usize, (usize, usize))>,
    ) -> Result<Answer> {
        let (frame, ct) = self.check_request(request, name, expected)?;
        let t = std::time::Instant::now();
        let (y, report) = self.evaluate(scheduler, key_set, ct, name)?;
        let seconds = t.elapsed().as_secs_f64();
        let answered = Frame {
            kind: frame.kind.answered_by(),
            source: ciphertext_checksum(ct),
            ..frame
        };
        Ok(Answer {
            bytes: answered.wrap(&y),
            seconds,
            report,
        })
    }

    /// The bytes of the result of ciphertexts `ct` (a request's, unframed; named `name` in
    /// errors), evaluated by `scheduler`, which holds evaluation keys of `key_set`:
    /// ciphertexts under another key set are an error.
    pub fn evaluate(
        &self,
        scheduler: &Scheduler,
        key_set: KeySetId,
        ct: &[u8],
        name: &str,
    ) -> Result<(Vec<u8>, ScheduleReport)> {
        let params = &self.params;
        let host = &**scheduler.host();
        let about = |e| named(name, e);
        let whose = "the evaluation keys belong";
        let (y, report) = match &self.plan {
            Plan::Batch(network) => {
                let x =
                    CipherTensor::from_bytes(ct, network.shape().0, params, host).map_err(about)?;
                check_key_set(name, x.ciphertexts(), key_set, whose)?;
                let (y, report) = network.forward_report(scheduler, x)?;
                (y.into_ciphertexts(), report)
            }
            Plan::Latency(plan) => {
                let x = Ciphertext::from_bytes(ct, params, host).map_err(about)?;
                check_key_set(name, &x, key_set, whose)?;
                plan.evaluate_report(scheduler, x)?
            }
        };
        Ok((y.to_bytes(params, host)?, report))
    }
}

/// The frame of a request or answer of batch `b` and images `start..end`.
pub fn frame_of(kind: Kind, b: usize, (start, end): (usize, usize), source: u32) -> Frame {
    Frame {
        kind,
        batch: b as u32,
        start: start as u32,
        end: end as u32,
        source,
    }
}

/// An error naming `name` unless ciphertexts `x` are under key set `expected`, the key set of
/// `whose` ("the evaluation keys belong", "secret.key belongs").
fn check_key_set(name: &str, x: &Ciphertext, expected: KeySetId, whose: &str) -> Result<()> {
    let found = x.key_set();
    if found != expected {
        return Err(Error::Data {
            path: name.to_string(),
            why: format!("is encrypted under key set {found}, but {whose} to key set {expected}"),
        });
    }
    Ok(())
}

/// The client's side: a secret key for a server's parameters and the layout of the server's
/// plan, on the CPU.
pub struct ModelClient {
    params: Arc<Parameters>,
    sk: SecretKey,
    layout: RequestLayout,
    backend: Arc<dyn Backend>,
    encoder: Encoder,
    encryptor: Encryptor,
    decryptor: Decryptor,
}

impl ModelClient {
    /// A client with a new secret key for `params`, and the bytes of its evaluation keys for
    /// the server (a relinearization key, and Galois keys for a latency plan's rotations).
    pub fn new(params: Arc<Parameters>, layout: RequestLayout) -> Result<(Self, Vec<u8>)> {
        let mut keygen = KeyGenerator::new(&params, Seed::Os);
        let sk = keygen.secret_key()?;
        let rotations = match &layout {
            RequestLayout::Latency(plan) => plan.rotation_levels(),
            RequestLayout::Batch { .. } => Vec::new(),
        };
        let keys = EvaluationKeys {
            relin: Some(keygen.relin_key(&sk)?),
            galois: keygen.galois_keys_up_to(&sk, &rotations)?,
        };
        let bytes = keys.to_bytes(&params)?;
        Ok((Self::with_secret_key(params, sk, layout)?, bytes))
    }

    /// A client with secret key `sk` for `params`.
    pub fn with_secret_key(
        params: Arc<Parameters>,
        sk: SecretKey,
        layout: RequestLayout,
    ) -> Result<Self> {
        let backend: Arc<dyn Backend> = Arc::new(CpuBackend::new(None)?);
        let encryptor = Encryptor::with_secret_key(&params, &sk, backend.clone(), Seed::Os)?;
        Ok(Self {
            encoder: Encoder::new(&params),
            decryptor: Decryptor::new(&params, &sk)?,
            encryptor,
            backend,
            layout,
            sk,
            params,
        })
    }

    /// The key set of this client's keys.
    pub fn key_set(&self) -> KeySetId {
        self.sk.key_set()
    }

    /// Most images in one request.
    pub fn request_images(&self) -> usize {
        match &self.layout {
            RequestLayout::Latency(plan) => plan.request_images(),
            RequestLayout::Batch { .. } => self.params.slots(),
        }
    }

    /// What it lays requests out by.
    pub fn layout(&self) -> &RequestLayout {
        &self.layout
    }

    /// Request `b`, images `start..end` of a data set: `images` holds their values
    /// ([`RequestLayout::input_len`] each).
    pub fn request(
        &self,
        b: usize,
        (start, end): (usize, usize),
        images: &[f32],
    ) -> Result<Vec<u8>> {
        let count = end.saturating_sub(start);
        let width = self.layout.input_len();
        if count == 0 || count > self.request_images() || images.len() != count * width {
            return Err(Error::Config(format!(
                "a request holds 1 to {} images of {width} values; got {} values for images \
                 {start}..{end}",
                self.request_images(),
                images.len()
            )));
        }
        let (kind, source, bytes) = match &self.layout {
            RequestLayout::Latency(plan) => {
                let ct = plan.encrypt(&self.encoder, &self.encryptor, images)?;
                let bytes = ct.to_bytes(&self.params, &*self.backend)?;
                (Kind::Request, plan.fingerprint(), bytes)
            }
            RequestLayout::Batch { input, .. } => {
                let scale = self.params.default_scale();
                let bytes = CipherTensor::encrypt_to_bytes(
                    images,
                    input,
                    &self.encoder,
                    &self.encryptor,
                    scale,
                )?;
                (Kind::Batch, 0, bytes)
            }
        };
        Ok(frame_of(kind, b, (start, end), source).wrap(&bytes))
    }

    /// The outputs ([`RequestLayout::output_len`] per image) of `answer` (named `name` in errors), which must be
    /// the answer to request `b` of images `range` whose bytes ended with checksum `source`
    /// (0: not checked), under this client's keys.
    pub fn outputs(
        &self,
        answer: &[u8],
        name: &str,
        (b, range): (usize, (usize, usize)),
        source: u32,
    ) -> Result<Vec<Vec<f32>>> {
        let (frame, ct) = Frame::unwrap(answer, name)?;
        let kind = match self.layout {
            RequestLayout::Latency(_) => Kind::Answer,
            RequestLayout::Batch { .. } => Kind::Result,
        };
        frame.expect(&frame_of(kind, b, range, source), name)?;
        let about = |e| named(name, e);
        let whose = "the client's secret key belongs";
        let images = range.1 - range.0;
        let host = &*self.backend;
        match &self.layout {
            RequestLayout::Latency(plan) => {
                let y = Ciphertext::from_bytes(ct, &self.params, host).map_err(about)?;
                check_key_set(name, &y, self.key_set(), whose)?;
                plan.decrypt(&self.decryptor, &self.encoder, &y, images, host)
            }
            RequestLayout::Batch { output, .. } => {
                let y = CipherTensor::from_bytes(ct, output, &self.params, host).map_err(about)?;
                check_key_set(name, y.ciphertexts(), self.key_set(), whose)?;
                y.decrypt(&self.decryptor, &self.encoder, images, host)
            }
        }
    }
}

/// The checksum a request's answer must name as its source (see [`ModelClient::outputs`]).
pub fn request_checksum(request: &[u8]) -> Result<u32> {
    let (_, ct) = Frame::unwrap(request, "the request")?;
    Ok(ciphertext_checksum(ct))
}
