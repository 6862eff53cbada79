//! The job split into separate processes that share a directory. The client writes the
//! parameters, the evaluation keys and encrypted batches; the server reads those (never the
//! secret key, which no server function opens) and writes encrypted results; the client reads
//! the results back.
//!
//! Files: `params.bin`, `evaluation-keys.bin`, `secret.key` (client only, created new with
//! owner-only permissions), `batch-NNN.ct`, `result-NNN.ct` (each framed with its batch index,
//! its images and, for a result, the checksum of its batch: see [`hegpu::pair::envelope`]), and
//! `batches.txt` (one `start end` line per batch of test images). A bad batch or result is
//! reported by name and the others go on.
//!
//! Both packings use these files ([`SplitPacking`]). In the latency packing a batch file is one
//! request (the images that share a ciphertext), the evaluation keys hold the Galois keys of
//! the plan's rotations, and every step plans the model: the plan is public (the client lays
//! its images out by it and reads the outputs from the slots it names), and a request carries
//! the plan's fingerprint, which the server checks against its own.

use super::ServerDevice;
use hegpu::ckks::{EvaluationKeys, KeyGenerator, KeySetId, Parameters, Preset, SecretKey, Seed};
use hegpu::data::Mnist;
use hegpu::files::{create_secret_file, refuse_link, write_file};
use hegpu::nn::{argmax, pixels};
use hegpu::pair::DIGIT_PIXELS;
pub(super) use hegpu::pair::frame_of;
use hegpu::pair::{
    ModelClient, RequestLayout, ServedModel, SplitPacking, latency_plan, plan_batch,
};
use hegpu::{Error, Result};
use std::path::Path;
use std::sync::Arc;

pub(super) fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Data {
        path: path.display().to_string(),
        why: e.to_string(),
    }
}

pub(super) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| io(path, e))
}

/// `e` as an error about the file at `path` (unless it already names a file).
pub(super) fn about(path: &Path, e: Error) -> Error {
    hegpu::pair::named(&path.display().to_string(), e)
}

fn batch_name(kind: &str, b: usize) -> String {
    format!("{kind}-{b:03}.ct")
}

/// Client: makes keys for the server's plan of `model` (the batch packing: on `preset`'s chain
/// or, without one, the smallest preset's that holds the model, cut to the levels the plan
/// uses; the latency packing: for `preset` or the smallest preset its plan fits, with Galois
/// keys for the plan's rotations at the levels it makes them), or without a model for
/// `preset` (default `CryptoNets8192`, which holds the shipped models); writes the
/// secret key first (a new file, owner-only from its creation: an existing `secret.key` is an
/// error and nothing is written), then the parameters and the evaluation keys.
pub fn client_keys(
    dir: &Path,
    preset: Option<Preset>,
    packing: SplitPacking,
    (model, data): (Option<&Path>, &Path),
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    // Refused before the secret key is written, so that a planted link leaves nothing behind.
    for name in ["params.bin", "evaluation-keys.bin"] {
        refuse_link(&dir.join(name))?;
    }
    let (params, rotations) = match (packing, model) {
        (SplitPacking::Batch, None) => (
            Parameters::preset(preset.unwrap_or(Preset::CryptoNets8192))?,
            Vec::new(),
        ),
        (SplitPacking::Batch, Some(model)) => {
            let model = hegpu::pair::load_digit_model(model)?;
            let network = plan_batch(&model, &Mnist::load(data)?, preset)?;
            (network.params().clone(), Vec::new())
        }
        (SplitPacking::Latency { per_ciphertext }, model) => {
            let chosen = preset.map(Parameters::preset).transpose()?;
            let mnist = Mnist::load(data)?;
            let plan = latency_plan(model, &mnist, per_ciphertext, chosen.as_ref())?;
            (plan.params().clone(), plan.rotation_levels())
        }
    };
    make_keys(&params, &rotations, (dir, dir))?;
    Ok(())
}

/// Client: a secret key, the relinearization key and Galois keys for `rotations` (each up to
/// its level) for `params`; writes `secret.key` into `secret` first (a new, owner-only file),
/// then `params.bin` and `evaluation-keys.bin` into `public`. Returns the evaluation keys'
/// size in bytes.
pub(super) fn make_keys(
    params: &Arc<Parameters>,
    rotations: &[(i64, usize)],
    (secret, public): (&Path, &Path),
) -> Result<usize> {
    let mut keygen = KeyGenerator::new(params, Seed::Os);
    let sk = keygen.secret_key()?;
    let keys = EvaluationKeys {
        relin: Some(keygen.relin_key(&sk)?),
        galois: keygen.galois_keys_up_to(&sk, rotations)?,
    };
    let mut bytes = sk.export_secret_bytes();
    let written = create_secret_file(&secret.join("secret.key"), &bytes);
    zeroize::Zeroize::zeroize(&mut bytes);
    written?;
    let key_bytes = keys.to_bytes(params)?;
    write_file(&public.join("params.bin"), &params.to_bytes())?;
    write_file(&public.join("evaluation-keys.bin"), &key_bytes)?;
    Ok(key_bytes.len())
}

fn client_state(dir: &Path) -> Result<(Arc<Parameters>, SecretKey)> {
    read_client_state(&dir.join("params.bin"), &dir.join("secret.key"))
}

/// The client's parameters and secret key from the files [`make_keys`] wrote.
pub(super) fn read_client_state(
    params: &Path,
    secret: &Path,
) -> Result<(Arc<Parameters>, SecretKey)> {
    let path = params;
    let params = Parameters::from_bytes(&read(path)?).map_err(|e| about(path, e))?;
    let mut bytes = read(secret)?;
    let sk = SecretKey::import_secret_bytes(&bytes, &params);
    zeroize::Zeroize::zeroize(&mut bytes);
    Ok((params, sk.map_err(|e| about(secret, e))?))
}

/// The server's parameters and evaluation keys from the public files in `dir` ([`make_keys`]
/// wrote them), and the key set they belong to (an error when the file holds no keys).
pub(super) fn read_server_state(dir: &Path) -> Result<(Arc<Parameters>, EvaluationKeys, KeySetId)> {
    let path = dir.join("params.bin");
    let params = Parameters::from_bytes(&read(&path)?).map_err(|e| about(&path, e))?;
    let path = dir.join("evaluation-keys.bin");
    let keys = EvaluationKeys::from_bytes(&read(&path)?, &params).map_err(|e| about(&path, e))?;
    let key_set = keys.key_set()?.ok_or_else(|| Error::Data {
        path: path.display().to_string(),
        why: "holds no keys".into(),
    })?;
    Ok((params, keys, key_set))
}

/// Client: encrypts the first `images` test images of `data` into batch files of `batch`
/// images (default and most: N/2), or in the latency packing into requests of the plan's
/// images per ciphertext.
pub fn client_encrypt(
    dir: &Path,
    (data, model): (&Path, Option<&Path>),
    images: usize,
    batch: Option<usize>,
    packing: SplitPacking,
) -> Result<usize> {
    let (params, sk) = client_state(dir)?;
    let mnist = Mnist::load(data)?;
    let count = images.min(mnist.test_labels.len());
    if count == 0 {
        return Err(Error::Config("--images must be at least 1".into()));
    }
    let px = pixels(&mnist.test_images);
    let slots = params.slots();
    let latency = match packing {
        SplitPacking::Batch => None,
        SplitPacking::Latency { .. } if batch.is_some() => {
            return Err(Error::Config(
                "--batch is for the batch packing; a latency request holds the images that \
                 share a ciphertext (--per-ciphertext)"
                    .into(),
            ));
        }
        SplitPacking::Latency { per_ciphertext } => {
            Some(latency_plan(model, &mnist, per_ciphertext, Some(&params))?)
        }
    };
    let per_batch = match &latency {
        Some(plan) => plan.request_images(),
        None => batch.unwrap_or(slots),
    };
    if per_batch == 0 || per_batch > slots {
        return Err(Error::Config(format!(
            "a batch holds 1 to {slots} images, not {per_batch}"
        )));
    }
    let layout = RequestLayout::digits_or(latency);
    let client = ModelClient::with_secret_key(params, sk, layout)?;
    let mut lines = String::new();
    for (b, start) in (0..count).step_by(per_batch).enumerate() {
        let end = (start + per_batch).min(count);
        let request = client.request(
            b,
            (start, end),
            &px[start * DIGIT_PIXELS..end * DIGIT_PIXELS],
        )?;
        write_file(&dir.join(batch_name("batch", b)), &request)?;
        lines.push_str(&format!("{start} {end}\n"));
    }
    write_file(&dir.join("batches.txt"), lines.as_bytes())?;
    Ok(count)
}

/// Most batches a job directory may list (4,096 images each: far beyond any test set).
const MAX_BATCHES: usize = 100_000;

fn batches(dir: &Path) -> Result<Vec<(usize, usize)>> {
    let path = dir.join("batches.txt");
    let bad = |why: String| Error::Data {
        path: path.display().to_string(),
        why,
    };
    let text = String::from_utf8(read(&path)?).map_err(|e| bad(e.to_string()))?;
    let list: Vec<(usize, usize)> = text
        .lines()
        .map(|l| {
            let mut it = l.split_whitespace().map(str::parse::<u32>);
            match (it.next(), it.next(), it.next()) {
                (Some(Ok(s)), Some(Ok(e)), None) if s < e => Ok((s as usize, e as usize)),
                _ => Err(bad(format!("bad line '{l}'"))),
            }
        })
        .collect::<Result<_>>()?;
    if list.is_empty() || list.len() > MAX_BATCHES {
        return Err(bad(format!(
            "{} batches listed; 1 to {MAX_BATCHES} expected",
            list.len()
        )));
    }
    Ok(list)
}

/// What the server did: batches evaluated, seconds spent evaluating, and the batches that
/// failed, each with its file and reason.
#[derive(Clone, Debug, Default)]
pub struct ServeReport {
    pub evaluated: usize,
    pub seconds: f64,
    pub failed: Vec<String>,
    /// What the user should be told (see
    /// [`Scheduler::take_warnings`](hegpu::tensor::Scheduler::take_warnings)).
    pub warnings: Vec<String>,
}

/// Server: evaluates every batch file with the model and the public files only; writes result
/// files. A bad batch is reported and the others are evaluated; its stale result file, if any,
/// is removed.
pub fn server_evaluate(
    dir: &Path,
    (model, data): (&Path, &Path),
    server: &ServerDevice,
    packing: SplitPacking,
) -> Result<ServeReport> {
    let (params, keys, key_set) = read_server_state(dir)?;
    let mnist = Mnist::load(data)?;
    let served = ServedModel::plan(model, &mnist, packing, Some(params))?;
    let scheduler = server.scheduler(served.params(), &keys)?;
    if let Some(network) = served.batch_plan() {
        super::check_memory(network, &scheduler, served.params())?;
    }
    let mut report = ServeReport::default();
    for (b, range) in batches(dir)?.into_iter().enumerate() {
        let (input, output) = (
            dir.join(batch_name("batch", b)),
            dir.join(batch_name("result", b)),
        );
        let evaluated = (|| -> Result<f64> {
            let bytes = read(&input)?;
            let name = input.display().to_string();
            let answer = served.answer(&scheduler, key_set, &bytes, &name, Some((b, range)))?;
            write_file(&output, &answer.bytes)?;
            Ok(answer.seconds)
        })();
        match evaluated {
            Ok(seconds) => {
                report.evaluated += 1;
                report.seconds += seconds;
            }
            Err(e) => {
                let _ = std::fs::remove_file(&output);
                report.failed.push(about(&input, e).to_string());
            }
        }
    }
    report.warnings = scheduler.take_warnings();
    Ok(report)
}

/// What the client decrypted: images, how many were right, how their logits compare with the
/// plaintext model's (when given), and the results that failed, each with its file and reason.
#[derive(Clone, Debug, Default)]
pub struct DecryptReport {
    pub images: usize,
    pub correct: usize,
    pub agreement: Option<super::Agreement>,
    pub failed: Vec<String>,
}

/// The checksum the batch file of batch `b` ends with, or 0 when the client no longer has it.
fn batch_checksum(dir: &Path, b: usize) -> u32 {
    use std::io::{Read, Seek, SeekFrom};
    let read_tail = || -> std::io::Result<[u8; 4]> {
        let mut f = std::fs::File::open(dir.join(batch_name("batch", b)))?;
        f.seek(SeekFrom::End(-4))?;
        let mut tail = [0u8; 4];
        f.read_exact(&mut tail)?;
        Ok(tail)
    };
    read_tail().map_or(0, u32::from_le_bytes)
}

/// Client: decrypts the result files and scores them (and compares them with `model`, when
/// given; the latency packing needs it to read the outputs). A bad result is reported and the
/// others are scored.
pub fn client_decrypt(
    dir: &Path,
    (data, model): (&Path, Option<&Path>),
    packing: SplitPacking,
) -> Result<DecryptReport> {
    let (params, sk) = client_state(dir)?;
    let mnist = Mnist::load(data)?;
    let latency = match packing {
        SplitPacking::Batch => None,
        SplitPacking::Latency { per_ciphertext } => {
            Some(latency_plan(model, &mnist, per_ciphertext, Some(&params))?)
        }
    };
    let layout = RequestLayout::digits_or(latency);
    let client = ModelClient::with_secret_key(params, sk, layout)?;
    let model = model.map(hegpu::pair::load_digit_model).transpose()?;
    let px = pixels(&mnist.test_images);
    let mut report = DecryptReport {
        agreement: model.as_ref().map(|_| super::Agreement::default()),
        ..Default::default()
    };
    for (b, (start, end)) in batches(dir)?.into_iter().enumerate() {
        let path = dir.join(batch_name("result", b));
        let outputs = (|| -> Result<Vec<Vec<f32>>> {
            if end > mnist.test_labels.len() {
                return Err(Error::Config(format!(
                    "batch {b} names images beyond the test set"
                )));
            }
            let bytes = read(&path)?;
            let name = path.display().to_string();
            // The checksum of the batch file this result must answer (0: not checked).
            let source = batch_checksum(dir, b);
            client.outputs(&bytes, &name, (b, (start, end)), source)
        })();
        let outputs = match outputs {
            Ok(o) => o,
            Err(e) => {
                report.failed.push(about(&path, e).to_string());
                continue;
            }
        };
        for (i, out) in outputs.iter().enumerate() {
            let guess = argmax(out);
            report.correct += usize::from(guess == usize::from(mnist.test_labels[start + i]));
            if let (Some(m), Some(agreement)) = (&model, report.agreement.as_mut()) {
                let image = start + i;
                agreement.add(
                    out,
                    &m.forward(&px[image * DIGIT_PIXELS..(image + 1) * DIGIT_PIXELS])?,
                );
            }
        }
        report.images += end - start;
    }
    Ok(report)
}
