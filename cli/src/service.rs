//! `hegpu serve` (the HTTP service of one model) and `hegpu client` (the MNIST job against it).

use crate::{ServerArgs, SplitArgs, at_least_one, gpu_memory};
use clap::Args;
use hegpu::data::Mnist;
use hegpu::pair::ServedModel;
use hegpu::pair::SplitPacking;
use hegpu::{Error, Result};
use hegpu_service::{
    ClassifyError, ClassifyReport, Client, Service, ServiceOptions, Tls, classify,
    serve_until_stopped,
};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct ServeArgs {
    /// The model: a file, or a shipped model's name
    #[arg(long, value_name = "FILE|NAME", default_value = "cryptonets-5")]
    model: PathBuf,
    /// Where to listen (port 0: any free port, printed)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Calibration data (training images) for the plan
    #[arg(long, value_name = "DIR", default_value = "data/mnist")]
    data: PathBuf,
    #[command(flatten)]
    packing: SplitArgs,
    #[command(flatten)]
    server: ServerArgs,
    /// Evaluation keys held at once, as their words take in memory (about twice their bytes
    /// on the wire; least recently used evicted beyond, their clients told to register again)
    #[arg(long, value_name = "SIZE", default_value = "4G", value_parser = gpu_memory)]
    key_memory: u64,
    /// Largest request body
    #[arg(long, value_name = "SIZE", default_value = "512M", value_parser = gpu_memory)]
    max_request: u64,
    /// Request bodies held at once (arriving, waiting, being answered); a request beyond is
    /// answered 503 with Retry-After before its body is kept
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = gpu_memory)]
    body_memory: u64,
    /// Evaluations run at once
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = at_least_one)]
    workers: usize,
    /// Requests that may wait for an evaluation; more are answered 503 with Retry-After
    #[arg(long, value_name = "N", default_value_t = 16)]
    queue: usize,
    /// Seconds a request's body may take to arrive
    #[arg(long, value_name = "S", default_value_t = 60, value_parser = at_least_one)]
    body_timeout: usize,
    /// Seconds a request's headers may take to arrive (also how long an idle connection is
    /// kept); the connection is closed beyond
    #[arg(long, value_name = "S", default_value_t = 30, value_parser = at_least_one)]
    header_timeout: usize,
    /// Serve over TLS with this certificate chain (PEM; needs --tls-key)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

pub fn serve(a: ServeArgs) -> Result<()> {
    crate::allocator::return_large_blocks();
    let packing = a.packing.packing();
    let mnist = Mnist::load(&a.data)?;
    let served = ServedModel::plan(&a.model, &mnist, packing, None)?;
    let device = a.server.server()?;
    let (backend, note) = device.backend()?;
    crate::warn(&note.into_iter().collect::<Vec<_>>());
    let options = ServiceOptions {
        key_memory: a.key_memory,
        max_key_bytes: ServiceOptions::default().max_key_bytes,
        max_request_bytes: usize::try_from(a.max_request).unwrap_or(usize::MAX),
        body_memory: a.body_memory,
        workers: a.workers,
        queue: a.queue,
        body_timeout: Duration::from_secs(a.body_timeout as u64),
        header_timeout: Duration::from_secs(a.header_timeout as u64),
    };
    let describe = format!(
        "{} ({} packing, {} images per request) on {}",
        a.model.display(),
        match packing {
            SplitPacking::Batch => "batch",
            SplitPacking::Latency { .. } => "latency",
        },
        served.request_images(),
        backend.name()
    );
    let devices = hegpu::tensor::Devices::new(backend, device.schedule_options())?;
    let service = Service::new(served, devices, options);
    let tls = a
        .tls_cert
        .zip(a.tls_key)
        .map(|(certificate, key)| Tls { certificate, key });
    let scheme = if tls.is_some() { "https" } else { "http" };
    serve_until_stopped(&service, &a.listen, tls.as_ref(), |addr| {
        println!(
            "serving {describe} at {scheme}://{addr} (Ctrl-C stops after the requests in flight)"
        );
    })
    .map_err(|e| Error::Config(format!("cannot serve on {}: {e}", a.listen)))?;
    println!("stopped");
    Ok(())
}

#[derive(Args)]
pub struct ClientArgs {
    /// The server's address
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Test images to classify
    #[arg(long, value_name = "K", default_value_t = 1000, value_parser = at_least_one)]
    images: usize,
    /// Images per request (at most what the server takes) [default: the most]
    #[arg(long, value_name = "B", value_parser = at_least_one)]
    per_request: Option<usize>,
    #[arg(long, value_name = "DIR", default_value = "data/mnist")]
    data: PathBuf,
    /// Latency packing: the server's model, whose plan lays the images out
    #[arg(long, value_name = "FILE|NAME")]
    model: Option<PathBuf>,
    /// Seconds one call may take
    #[arg(long, value_name = "S", default_value_t = 600, value_parser = at_least_one)]
    timeout: usize,
    /// An https server: trust the certificates of this PEM file (e.g. its self-signed one)
    /// instead of Mozilla's root certificates
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
}

pub fn client(a: ClientArgs) -> Result<()> {
    let mnist = Mnist::load(&a.data)?;
    let timeout = Duration::from_secs(a.timeout as u64);
    let http = match &a.ca {
        None => Client::new(&a.server, timeout),
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| Error::Data {
                path: path.display().to_string(),
                why: e.to_string(),
            })?;
            Client::trusting(&a.server, timeout, &pem).map_err(|e| Error::Data {
                path: path.display().to_string(),
                why: e.to_string(),
            })?
        }
    };
    let report = classify(&http, &mnist, a.images, a.per_request, a.model.as_deref()).map_err(
        |e| match e {
            ClassifyError::Hegpu(e) => e,
            ClassifyError::Http(e) => Error::Data {
                path: a.server.clone(),
                why: e.to_string(),
            },
        },
    )?;
    println!(
        "keys: {:.1} MB made and registered in {:.2} s",
        report.key_bytes as f64 / 1e6,
        report.keys_seconds
    );
    println!(
        "accuracy: {} of {} images ({:.2}%)",
        report.correct,
        report.images,
        100.0 * report.correct as f64 / report.images.max(1) as f64
    );
    let q = ClassifyReport::quantile;
    println!(
        "requests: {}, each encrypt → upload → evaluate → download → decrypt: p50 {:.3} s, \
         p99 {:.3} s",
        report.latencies().len(),
        q(&report.latencies(), 0.5),
        q(&report.latencies(), 0.99)
    );
    println!(
        "  medians: encrypt {:.3} s, HTTP call (upload, evaluate, download) {:.3} s, decrypt \
         {:.3} s",
        q(&report.encrypt_seconds, 0.5),
        q(&report.call_seconds, 0.5),
        q(&report.decrypt_seconds, 0.5)
    );
    Ok(())
}
