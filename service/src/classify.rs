//! The client's job over HTTP: keys for the server's parameters, the test digits encrypted into
//! requests, each sent, answered and decrypted, and scored (what `hegpu client` prints).

use crate::client::{Client, ClientError};
use hegpu::ckks::Parameters;
use hegpu::data::Mnist;
use hegpu::nn::{argmax, pixels};
use hegpu::pair::DIGIT_PIXELS;
use hegpu::pair::{ModelClient, RequestLayout, latency_plan, request_checksum};
use std::path::Path;
use std::time::Instant;

/// What a client run did.
#[derive(Clone, Debug, Default)]
pub struct ClassifyReport {
    pub images: usize,
    pub correct: usize,
    /// The digit found for each image, in order.
    pub digits: Vec<usize>,
    /// Seconds each request spent encrypting, in the HTTP call (upload, evaluation,
    /// download), and decrypting.
    pub encrypt_seconds: Vec<f64>,
    pub call_seconds: Vec<f64>,
    pub decrypt_seconds: Vec<f64>,
    /// Seconds making and registering the keys.
    pub keys_seconds: f64,
    /// Bytes of the evaluation keys.
    pub key_bytes: usize,
}

impl ClassifyReport {
    /// Seconds from encryption to decryption of each request.
    pub fn latencies(&self) -> Vec<f64> {
        let parts = self.encrypt_seconds.iter().zip(&self.call_seconds);
        parts
            .zip(&self.decrypt_seconds)
            .map(|((e, c), d)| e + c + d)
            .collect()
    }

    /// The `q`-quantile of `seconds` (one of this report's lists; 0 when empty).
    pub fn quantile(seconds: &[f64], q: f64) -> f64 {
        let mut l = seconds.to_vec();
        l.sort_by(f64::total_cmp);
        match l.len() {
            0 => 0.0,
            n => l[((n - 1) as f64 * q).round() as usize],
        }
    }
}

/// An error of the client run.
#[derive(Debug)]
pub enum ClassifyError {
    Http(ClientError),
    Hegpu(hegpu::Error),
}

impl std::fmt::Display for ClassifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Http(e) => e.fmt(f),
            Self::Hegpu(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ClassifyError {}

impl From<ClientError> for ClassifyError {
    fn from(e: ClientError) -> Self {
        Self::Http(e)
    }
}

impl From<hegpu::Error> for ClassifyError {
    fn from(e: hegpu::Error) -> Self {
        Self::Hegpu(e)
    }
}

/// Classifies the first `images` test digits of `mnist` through the server `http`, in requests
/// of at most `per_request` images (at most what the server takes). The latency packing needs
/// the server's `model`, whose plan (made for the server's parameters) lays the images out;
/// its fingerprint must be the server's.
pub fn classify(
    http: &Client,
    mnist: &Mnist,
    images: usize,
    per_request: Option<usize>,
    model: Option<&Path>,
) -> Result<ClassifyReport, ClassifyError> {
    let info = http.info()?;
    let params = Parameters::from_bytes(&http.params()?)?;
    let layout = match info.packing.as_str() {
        "latency" => {
            let plan = latency_plan(model, mnist, info.per_ciphertext, Some(&params))?;
            if plan.fingerprint() != info.fingerprint {
                return Err(hegpu::Error::Config(format!(
                    "the server's latency plan (fingerprint {:08x}) is not this client's \
                     ({:08x}): give the client the server's --model",
                    info.fingerprint,
                    plan.fingerprint()
                ))
                .into());
            }
            RequestLayout::Latency(plan)
        }
        _ => RequestLayout::Batch {
            input: info.input_shape.clone(),
            output: info.output_shape.clone(),
        },
    };
    if layout.input_len() != DIGIT_PIXELS {
        return Err(hegpu::Error::Config(format!(
            "the server's model takes inputs of shape {:?}; this client sends MNIST images of \
             {DIGIT_PIXELS} pixels",
            layout.shapes().0
        ))
        .into());
    }
    let t = Instant::now();
    let (client, keys) = ModelClient::new(params, layout)?;
    let mut key_id = http.register(&keys)?;
    let mut report = ClassifyReport {
        keys_seconds: t.elapsed().as_secs_f64(),
        key_bytes: keys.len(),
        ..Default::default()
    };
    let count = images.min(mnist.test_labels.len());
    let per = per_request
        .unwrap_or(info.request_images)
        .clamp(1, client.request_images());
    let px = pixels(&mnist.test_images);
    for (b, start) in (0..count).step_by(per).enumerate() {
        let end = (start + per).min(count);
        let t = Instant::now();
        let request = client.request(
            b,
            (start, end),
            &px[start * DIGIT_PIXELS..end * DIGIT_PIXELS],
        )?;
        let encrypted = t.elapsed().as_secs_f64();
        let answer = http.infer_registered(&mut key_id, &keys, &request)?;
        let called = t.elapsed().as_secs_f64();
        let source = request_checksum(&request)?;
        let outputs = client.outputs(&answer, "the server's answer", (b, (start, end)), source)?;
        let done = t.elapsed().as_secs_f64();
        report.encrypt_seconds.push(encrypted);
        report.call_seconds.push(called - encrypted);
        report.decrypt_seconds.push(done - called);
        for (i, out) in outputs.iter().enumerate() {
            let digit = argmax(out);
            report.correct += usize::from(digit == usize::from(mnist.test_labels[start + i]));
            report.digits.push(digit);
        }
        report.images += end - start;
    }
    Ok(report)
}
