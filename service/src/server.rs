//! The server: one planned model, evaluation keys registered by clients, requests answered
//! under them on one device shared through the scheduler.
//!
//! Endpoints (bodies are the binary formats of `hegpu::ckks` and the job's frames):
//! - `GET /v1/info`: the model's packing, images per request, parameter set, input shape,
//!   the rotations the latency plan needs and its fingerprint (JSON);
//! - `GET /v1/params`: the parameters clients must use (`Parameters::to_bytes`);
//! - `POST /v1/keys`: evaluation keys → `{"key_id": …}` (a digest of their bytes);
//! - `POST /v1/infer/{key_id}`: a framed request → its framed answer;
//! - `GET /health`, `GET /metrics` (Prometheus text).
//!
//! Bounded: a connection's request headers must arrive within a timeout (else it is closed:
//! this also ends idle keep-alive connections), each body has a size limit (413) and a read
//! timeout (408); evaluations run a few at
//! a time and at most `queue` wait (beyond that 503 with `Retry-After`); keys are held within
//! `key_memory` bytes, least recently used evicted first (an evicted id: 404 with code
//! `unknown_key`, telling the client to register again). Errors are JSON
//! `{"code": …, "message": …}`. Shutdown finishes the requests in flight.

use crate::keys::{KeyCache, Session};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hegpu::ckks::{EvaluationKeys, Preset};
use hegpu::pair::ServedModel;
use hegpu::pair::SplitPacking;
use hegpu::tensor::{Devices, Scheduler};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutError};

/// What a client needs to know of the served model (`GET /v1/info`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ModelInfo {
    /// "batch" or "latency".
    pub packing: String,
    /// Most images one request holds.
    pub request_images: usize,
    /// Latency packing: the images that may share a ciphertext the plan was made with (a
    /// client plans the same).
    pub per_ciphertext: usize,
    /// The parameter preset's name, when the parameters are one, whole or with its chain cut
    /// to `levels` (`cryptonets8192`, …).
    #[serde(default)]
    pub preset: Option<String>,
    /// The levels of the parameters' chain (the plan's, when it is cut to them).
    #[serde(default)]
    pub levels: usize,
    /// Bytes of the parameters (`GET /v1/params`).
    pub params_bytes: usize,
    /// The ring degree N.
    pub degree: usize,
    /// The shape of one input (channels, height, width; a latency plan takes its inputs flat).
    pub input_shape: Vec<usize>,
    /// The shape of one output (logits). Servers before it served digit models only.
    #[serde(default = "digit_logits")]
    pub output_shape: Vec<usize>,
    /// The (rotation, level) pairs the client's Galois keys must cover.
    pub rotations: Vec<(i64, usize)>,
    /// The latency plan's fingerprint a request carries (0 in the batch packing).
    pub fingerprint: u32,
}

/// A digit model's output shape: what servers that did not say served.
fn digit_logits() -> Vec<usize> {
    vec![10]
}

/// The server's bounds.
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    /// Bytes of evaluation keys held at once, as their words take in memory (about twice their
    /// bytes on the wire); the least recently used are evicted beyond.
    pub key_memory: u64,
    /// Largest evaluation-key body.
    pub max_key_bytes: usize,
    /// Largest request body.
    pub max_request_bytes: usize,
    /// Bytes of request bodies held at once (arriving, waiting, being answered); a request
    /// that would hold more is refused with 503 before its body is read.
    pub body_memory: u64,
    /// Evaluations run at once.
    pub workers: usize,
    /// Requests that may wait for an evaluation slot; more are refused with 503.
    pub queue: usize,
    /// Longest a request's body may take to arrive (a slow or stalled client gets 408).
    pub body_timeout: Duration,
    /// Longest a request's headers may take to arrive, from when the server starts reading
    /// them (a new connection, or one kept alive after an answer); the connection is closed
    /// beyond.
    pub header_timeout: Duration,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self {
            key_memory: 4 << 30,
            max_key_bytes: 1 << 30,
            max_request_bytes: 512 << 20,
            body_memory: 1 << 30,
            workers: 1,
            queue: 16,
            body_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(30),
        }
    }
}

/// Counters `GET /metrics` reports.
#[derive(Default)]
struct Metrics {
    requests: AtomicU64,
    answered: AtomicU64,
    failed: AtomicU64,
    refused_busy: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    evaluate_micros: AtomicU64,
    registered: AtomicU64,
    evicted: AtomicU64,
    gpu_fallbacks: AtomicU64,
}

struct Shared {
    served: ServedModel,
    params_bytes: Vec<u8>,
    info: ModelInfo,
    /// The devices, opened once; every client's scheduler shares them and what is prepared
    /// there (the model's weights and encoded diagonal maps).
    devices: Devices,
    keys: Mutex<KeyCache<Session>>,
    /// Request bodies held, in KiB (`body_memory`).
    bodies: Arc<Semaphore>,
    /// Evaluation slots (`workers`), each held by the evaluation until it ends, even when its
    /// client has gone.
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    /// Evaluations (and key registrations) running now, counted by the work itself.
    running: Arc<AtomicUsize>,
    options: ServiceOptions,
    metrics: Metrics,
}

/// An error response: status, a stable code, a message.
struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.1, "message": self.2 });
        let mut response = (self.0, axum::Json(body)).into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

fn bad_request(e: hegpu::Error) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, "bad_request", e.to_string())
}

/// What a request whose work failed answers: the server's failure (a bug, or a GPU failure the
/// CPU could not take over) is a 500, anything else is the request's fault.
fn failed(e: hegpu::Error) -> ApiError {
    match e {
        hegpu::Error::Internal(_) | hegpu::Error::Gpu(_) => {
            ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        }
        e => bad_request(e),
    }
}

/// The request bodies a server may hold, in KiB (a semaphore's permits).
fn body_kib(bytes: u64) -> usize {
    usize::try_from(bytes.div_ceil(1024))
        .unwrap_or(usize::MAX)
        .min(Semaphore::MAX_PERMITS)
}

fn busy(s: &Shared, why: &str) -> ApiError {
    s.metrics.refused_busy.fetch_add(1, Ordering::Relaxed);
    ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        format!("{why}: retry after a second"),
    )
}

/// A request's body, read whole into memory the server's `body_memory` allows it: the held
/// permit goes with the bytes. Refused before a byte is read when it has no length (411), is
/// over `limit` or the whole body memory (413), or the body memory is taken (503); a body too
/// slow to arrive is 408, one cut off 400.
async fn read_body(s: &Shared, request: Request, limit: usize) -> Result<HeldBody, ApiError> {
    let too_large = |why: String| ApiError(StatusCode::PAYLOAD_TOO_LARGE, "too_large", why);
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError(
                StatusCode::LENGTH_REQUIRED,
                "length_required",
                "a body must say its length (Content-Length)".into(),
            )
        })?;
    if length > limit as u64 {
        return Err(too_large(format!(
            "the body's {length} bytes are over this endpoint's limit of {limit}"
        )));
    }
    let kib = body_kib(length);
    if kib > body_kib(s.options.body_memory) || u32::try_from(kib).is_err() {
        return Err(too_large(format!(
            "the body's {length} bytes are over the server's body memory of {}",
            s.options.body_memory
        )));
    }
    let mut body = request.into_body();
    let Ok(share) = s.bodies.clone().try_acquire_many_owned(kib as u32) else {
        drain(&mut body).await;
        return Err(busy(s, "the server holds as many request bodies as it may"));
    };
    let mut bytes = Vec::with_capacity(length as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if e.into_inner().is::<TimeoutError>() {
                ApiError(
                    StatusCode::REQUEST_TIMEOUT,
                    "timeout",
                    "the body took longer to arrive than the server waits".into(),
                )
            } else {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("the body was cut off after {} bytes", bytes.len()),
                )
            }
        })?;
        if let Ok(data) = frame.into_data() {
            bytes.extend_from_slice(&data);
        }
    }
    Ok(HeldBody {
        bytes,
        _share: share,
    })
}

/// A request's body and its share of the body memory, given back when the body is dropped
/// (which the evaluation it goes to does, however long its client waits).
struct HeldBody {
    bytes: Vec<u8>,
    _share: OwnedSemaphorePermit,
}

impl std::ops::Deref for HeldBody {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Reads and drops what is left of a body the server refuses before reading it, so that the
/// client, still sending, gets the answer rather than a reset connection; the body timeout
/// bounds how long.
async fn drain(body: &mut Body) {
    while let Some(Ok(_)) = body.frame().await {}
}

/// The HTTP service of one model: build it with [`Service::new`], serve it with
/// [`Service::router`] on any listener.
pub struct Service {
    shared: Arc<Shared>,
}

impl Service {
    /// Serves `served` on `devices` within `options`.
    pub fn new(served: ServedModel, devices: Devices, options: ServiceOptions) -> Self {
        let params = served.params();
        let params_bytes = params.to_bytes();
        let (input_shape, output_shape) = served.layout().shapes();
        let info = ModelInfo {
            packing: match served.packing() {
                SplitPacking::Batch => "batch".into(),
                SplitPacking::Latency { .. } => "latency".into(),
            },
            request_images: served.request_images(),
            per_ciphertext: match served.packing() {
                SplitPacking::Batch => 0,
                SplitPacking::Latency { per_ciphertext } => per_ciphertext,
            },
            preset: Preset::of(params.literal()).map(|p| p.name().to_string()),
            levels: params.max_level(),
            params_bytes: params_bytes.len(),
            degree: params.degree(),
            input_shape,
            output_shape,
            rotations: served.rotations(),
            fingerprint: served.fingerprint(),
        };
        let shared = Arc::new(Shared {
            keys: Mutex::new(KeyCache::new(options.key_memory)),
            bodies: Arc::new(Semaphore::new(body_kib(options.body_memory))),
            slots: Arc::new(Semaphore::new(options.workers.max(1))),
            waiting: AtomicUsize::new(0),
            running: Arc::default(),
            metrics: Metrics::default(),
            served,
            params_bytes,
            info,
            devices,
            options,
        });
        Self { shared }
    }

    /// The routes, with their body limits and timeouts.
    pub fn router(&self) -> Router {
        let o = &self.shared.options;
        Router::new()
            .route("/v1/info", get(info))
            .route("/v1/params", get(params))
            .route("/v1/keys", post(register))
            .route("/v1/infer/{key_id}", post(infer))
            .route("/health", get(|| async { "ok\n" }))
            .route("/metrics", get(metrics))
            .layer(RequestBodyTimeoutLayer::new(o.body_timeout))
            .with_state(self.shared.clone())
    }
}

async fn info(State(s): State<Arc<Shared>>) -> axum::Json<ModelInfo> {
    axum::Json(s.info.clone())
}

async fn params(State(s): State<Arc<Shared>>) -> Vec<u8> {
    s.params_bytes.clone()
}

/// A place among the requests waiting for or holding an evaluation slot, taken before a
/// request's body is read.
struct Place<'a>(&'a Shared);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A place in the queue, or `None` when `queue` requests already wait.
fn place(s: &Shared) -> Option<Place<'_>> {
    if s.waiting.fetch_add(1, Ordering::SeqCst) >= s.options.queue + s.options.workers {
        s.waiting.fetch_sub(1, Ordering::SeqCst);
        return None;
    }
    Some(Place(s))
}

/// Runs `f` on a blocking thread once an evaluation slot is free. The slot stays taken until
/// `f` returns, even if the request is dropped meanwhile (its client hung up): at most `workers`
/// evaluations run at once.
async fn in_slot<T: Send + 'static>(
    s: &Shared,
    _place: Place<'_>,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let internal = |e: String| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e);
    // The semaphore is never closed.
    let slot = s
        .slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| internal(e.to_string()))?;
    let running = s.running.clone();
    tokio::task::spawn_blocking(move || {
        let _running = Running::start(running, slot);
        f()
    })
    .await
    .map_err(|e| internal(e.to_string()))
}

/// An evaluation under way: counted in `running` and holding its slot until it ends, by
/// returning or by panicking.
struct Running {
    count: Arc<AtomicUsize>,
    _slot: OwnedSemaphorePermit,
}

impl Running {
    fn start(count: Arc<AtomicUsize>, slot: OwnedSemaphorePermit) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self { count, _slot: slot }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A request refused before its body is read, once the body has been drained.
async fn refuse(request: Request, why: ApiError) -> ApiError {
    drain(&mut request.into_body()).await;
    why
}

const FULL_QUEUE: &str = "the server's queue is full";

async fn register(
    State(s): State<Arc<Shared>>,
    request: Request,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let Some(place) = place(&s) else {
        return Err(refuse(request, busy(&s, FULL_QUEUE)).await);
    };
    let body = read_body(&s, request, s.options.max_key_bytes).await?;
    s.metrics
        .bytes_in
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    let id = key_id(&body);
    let shared = s.clone();
    // Reading and uploading keys is work on the device like an evaluation.
    let (session, bytes) = in_slot(&s, place, move || -> hegpu::Result<(Session, u64)> {
        let params = shared.served.params();
        let keys = EvaluationKeys::from_bytes(&body, params)?;
        drop(body);
        let key_set = keys.key_set()?.ok_or_else(|| hegpu::Error::Data {
            path: "the evaluation keys".into(),
            why: "hold no keys".into(),
        })?;
        let scheduler = Scheduler::on(params, &keys, &shared.devices)?;
        Ok((Session { scheduler, key_set }, keys.memory_bytes()))
    })
    .await?
    .map_err(failed)?;
    let evicted = s
        .keys
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id.clone(), Arc::new(session), bytes)
        .map_err(|why| ApiError(StatusCode::PAYLOAD_TOO_LARGE, "too_large", why))?;
    s.metrics.registered.fetch_add(1, Ordering::Relaxed);
    s.metrics
        .evicted
        .fetch_add(evicted.len() as u64, Ordering::Relaxed);
    Ok(axum::Json(serde_json::json!({ "key_id": id })))
}

/// The id of keys registered with `bytes`: the first 16 bytes of their SHA-256, in hex. It
/// names these very keys, not the key set they claim: keys forged under another client's key
/// set get an id of their own and never answer that client's requests.
fn key_id(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn infer(
    State(s): State<Arc<Shared>>,
    Path(key_id): Path<String>,
    request: Request,
) -> Result<Vec<u8>, ApiError> {
    s.metrics.requests.fetch_add(1, Ordering::Relaxed);
    // A busy refusal is counted as such (refused_busy), not as a failure.
    let answer = answer(&s, &key_id, request).await;
    if let Err(ApiError(status, ..)) = &answer
        && *status != StatusCode::SERVICE_UNAVAILABLE
    {
        s.metrics.failed.fetch_add(1, Ordering::Relaxed);
    }
    answer
}

/// The answer to a request under `key_id`'s keys.
async fn answer(s: &Arc<Shared>, key_id: &str, request: Request) -> Result<Vec<u8>, ApiError> {
    let session = s.keys.lock().unwrap_or_else(|p| p.into_inner()).get(key_id);
    let Some(session) = session else {
        let why = format!(
            "key id {key_id} is not registered here (never, or evicted to bound the server's key \
             memory, or before a restart): register the evaluation keys again"
        );
        return Err(refuse(request, ApiError(StatusCode::NOT_FOUND, "unknown_key", why)).await);
    };
    let Some(place) = place(s) else {
        return Err(refuse(request, busy(s, FULL_QUEUE)).await);
    };
    let body = read_body(s, request, s.options.max_request_bytes).await?;
    s.metrics
        .bytes_in
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    // The frame is checked before the request waits for a slot.
    s.served
        .check_request(&body, "the request", None)
        .map_err(bad_request)?;
    let shared = s.clone();
    let (answer, warnings) = in_slot(s, place, move || {
        let answer = shared.served.answer(
            &session.scheduler,
            session.key_set,
            &body,
            "the request",
            None,
        );
        (answer, session.scheduler.take_warnings())
    })
    .await?;
    let fallbacks = warnings.iter().filter(|w| w.contains("GPU")).count() as u64;
    let m = &s.metrics;
    m.gpu_fallbacks.fetch_add(fallbacks, Ordering::Relaxed);
    let answer = answer.map_err(failed)?;
    m.answered.fetch_add(1, Ordering::Relaxed);
    m.bytes_out
        .fetch_add(answer.bytes.len() as u64, Ordering::Relaxed);
    m.evaluate_micros
        .fetch_add((answer.seconds * 1e6) as u64, Ordering::Relaxed);
    Ok(answer.bytes)
}

async fn metrics(State(s): State<Arc<Shared>>) -> String {
    let m = &s.metrics;
    let (keys, key_bytes) = s.keys.lock().unwrap_or_else(|p| p.into_inner()).usage();
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let rows = [
        ("hegpu_requests_total", "counter", load(&m.requests)),
        ("hegpu_answered_total", "counter", load(&m.answered)),
        ("hegpu_failed_total", "counter", load(&m.failed)),
        ("hegpu_refused_busy_total", "counter", load(&m.refused_busy)),
        ("hegpu_bytes_in_total", "counter", load(&m.bytes_in)),
        ("hegpu_bytes_out_total", "counter", load(&m.bytes_out)),
        (
            "hegpu_keys_registered_total",
            "counter",
            load(&m.registered),
        ),
        ("hegpu_keys_evicted_total", "counter", load(&m.evicted)),
        (
            "hegpu_gpu_fallbacks_total",
            "counter",
            load(&m.gpu_fallbacks),
        ),
        ("hegpu_keys_held", "gauge", keys as u64),
        ("hegpu_key_bytes_held", "gauge", key_bytes),
        (
            "hegpu_body_bytes_held",
            "gauge",
            (body_kib(s.options.body_memory) - s.bodies.available_permits()) as u64 * 1024,
        ),
        (
            "hegpu_queue_depth",
            "gauge",
            s.waiting.load(Ordering::SeqCst) as u64,
        ),
        (
            "hegpu_evaluations_running",
            "gauge",
            s.running.load(Ordering::SeqCst) as u64,
        ),
    ];
    let mut out = String::new();
    for (name, kind, value) in rows {
        out.push_str(&format!("# TYPE {name} {kind}\n{name} {value}\n"));
    }
    let seconds = load(&m.evaluate_micros) as f64 / 1e6;
    out.push_str(&format!(
        "# TYPE hegpu_evaluate_seconds_total counter\nhegpu_evaluate_seconds_total {seconds}\n"
    ));
    out.push_str(&format!(
        "# TYPE hegpu_device_info gauge\nhegpu_device_info{{device=\"{}\"}} 1\n",
        s.devices.name().replace('"', "'")
    ));
    out
}

/// A certificate chain and its private key, PEM files (TLS with rustls).
#[derive(Clone, Debug)]
pub struct Tls {
    pub certificate: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Serves `service` on `addr` (over TLS when given `tls`) until Ctrl-C or SIGTERM, then
/// finishes the requests in flight; `ready` is told the address once it listens (port 0
/// picks a free one).
pub fn serve_until_stopped(
    service: &Service,
    addr: &str,
    tls: Option<&Tls>,
    ready: impl FnOnce(std::net::SocketAddr),
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(service, addr, tls, ready, stopped()))
}

/// Serves `service` on `addr` until `stop` completes, then finishes the requests in flight.
///
/// HTTP/1.1 only (bodies are single large blobs; HTTP/2 would add streams whose headers no
/// timeout bounds). Every connection must finish its TLS handshake and each request's headers
/// within the service's header timeout, which also ends connections left idle.
pub async fn serve(
    service: &Service,
    addr: &str,
    tls: Option<&Tls>,
    ready: impl FnOnce(std::net::SocketAddr),
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = tls.map(tls_acceptor).transpose()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    ready(listener.local_addr()?);
    let header_timeout = service.shared.options.header_timeout;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let router = service.router();
    let connections = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                // Out of descriptors or a connection reset before it was accepted: the
                // listener stays; wait a moment rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let app = TowerToHyperService::new(router.clone());
        match &tls {
            None => {
                let connection = http.serve_connection(TokioIo::new(tcp), app);
                tokio::spawn(connections.watch(connection));
            }
            Some(acceptor) => {
                let handshake = tokio::time::timeout(header_timeout, acceptor.accept(tcp));
                let (http, watcher) = (http.clone(), connections.watcher());
                tokio::spawn(async move {
                    // A failed or stalled handshake just closes the connection.
                    if let Ok(Ok(stream)) = handshake.await {
                        let connection = http.serve_connection(TokioIo::new(stream), app);
                        let _ = watcher.watch(connection).await;
                    }
                });
            }
        }
    }
    drop(listener);
    connections.shutdown().await;
    Ok(())
}

/// The TLS side of a connection: `tls`'s certificate chain and key, HTTP/1.1 offered alone.
fn tls_acceptor(tls: &Tls) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let invalid = |what: &std::path::Path, e: &dyn std::fmt::Display| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: {e}", what.display()),
        )
    };
    let chain = CertificateDer::pem_file_iter(&tls.certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid(&tls.certificate, &e))?;
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| invalid(&tls.key, &e))?;
    // The ring provider: its key exchange is classical (no post-quantum hybrid, hence the
    // deprecation); aws-lc-rs, which has one, needs a C build toolchain (cmake) these machines
    // lack. The ciphertexts inside are lattice-based whatever protects the connection.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(&tls.certificate, &e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| invalid(&tls.certificate, &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Ctrl-C, or SIGTERM where there are signals.
async fn stopped() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return interrupt.await,
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    interrupt.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_request_blames_the_server_only_for_its_own_failures() {
        let status = |e| failed(e).0;
        let server = [
            hegpu::Error::Internal("a step unplanned".into()),
            hegpu::Error::Gpu(hegpu::GpuError::DeviceLost("lost".into())),
        ];
        for e in server {
            assert_eq!(status(e), StatusCode::INTERNAL_SERVER_ERROR);
        }
        let caller = hegpu::Error::Mismatch("another key set".into());
        assert_eq!(status(caller), StatusCode::BAD_REQUEST);
    }
}
