//! The job split into separate processes that share a directory. The client writes the
//! parameters, the evaluation keys and encrypted batches; the server reads those (never the
//! secret key, which no server function opens) and writes encrypted results; the client reads
//! the results back.
//!
//! Files: `params.bin`, `evaluation-keys.bin`, `secret.key` (client only), `batch-NNN.ct`,
//! `result-NNN.ct`, and `batches.txt` (one `start end` line per batch of test images).

use super::ServerDevice;
use crate::backend::{Backend, DeviceChoice, select_backend};
use crate::ckks::{
    Decryptor, Encoder, Encryptor, EvaluationKeys, KeyGenerator, Parameters, Preset, SecretKey,
    Seed,
};
use crate::data::Mnist;
use crate::nn::{argmax, pixels};
use crate::tensor::CipherTensor;
use crate::{Error, Result};
use std::path::Path;
use std::sync::Arc;

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Data {
        path: path.display().to_string(),
        why: e.to_string(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| io(path, e))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| io(path, e))
}

fn batch_name(kind: &str, b: usize) -> String {
    format!("{kind}-{b:03}.ct")
}

/// Client: makes keys; writes the parameters, the evaluation keys and the secret key (readable
/// by its owner only, on Unix).
pub fn client_keys(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let params = Parameters::preset(Preset::CryptoNets8192)?;
    let mut keygen = KeyGenerator::new(&params, Seed::Os);
    let sk = keygen.secret_key()?;
    let keys = EvaluationKeys {
        relin: Some(keygen.relin_key(&sk)?),
        ..Default::default()
    };
    write(&dir.join("params.bin"), &params.to_bytes())?;
    write(&dir.join("evaluation-keys.bin"), &keys.to_bytes(&params)?)?;
    let secret = dir.join("secret.key");
    let mut bytes = sk.export_secret_bytes();
    let written = write(&secret, &bytes);
    zeroize::Zeroize::zeroize(&mut bytes);
    written?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io(&secret, e))?;
    }
    Ok(())
}

fn client_state(dir: &Path) -> Result<(Arc<Parameters>, SecretKey)> {
    let params = Parameters::from_bytes(&read(&dir.join("params.bin"))?)?;
    let mut bytes = read(&dir.join("secret.key"))?;
    let sk = SecretKey::import_secret_bytes(&bytes, &params);
    zeroize::Zeroize::zeroize(&mut bytes);
    Ok((params, sk?))
}

/// Client: encrypts the first `images` test images of `data` into batch files.
pub fn client_encrypt(dir: &Path, data: &Path, images: usize) -> Result<usize> {
    let backend: Arc<dyn Backend> = select_backend(DeviceChoice::Cpu)?;
    let (params, sk) = client_state(dir)?;
    let mnist = Mnist::load(data)?;
    let count = images.min(mnist.test_labels.len());
    if count == 0 {
        return Err(Error::Config("--images must be at least 1".into()));
    }
    let px = pixels(&mnist.test_images);
    let encoder = Encoder::new(&params);
    let encryptor = Encryptor::with_secret_key(&params, &sk, backend.clone(), Seed::Os)?;
    let slots = params.slots();
    let mut lines = String::new();
    for (b, start) in (0..count).step_by(slots).enumerate() {
        let end = (start + slots).min(count);
        let images = &px[start * 784..end * 784];
        let scale = params.default_scale();
        let ct = CipherTensor::encrypt(images, &[1, 28, 28], &encoder, &encryptor, scale)?;
        write(
            &dir.join(batch_name("batch", b)),
            &ct.to_bytes(&params, &*backend)?,
        )?;
        lines.push_str(&format!("{start} {end}\n"));
    }
    write(&dir.join("batches.txt"), lines.as_bytes())?;
    Ok(count)
}

fn batches(dir: &Path) -> Result<Vec<(usize, usize)>> {
    let path = dir.join("batches.txt");
    let text = String::from_utf8(read(&path)?).map_err(|e| io(&path, std::io::Error::other(e)))?;
    text.lines()
        .map(|l| {
            let mut it = l.split_whitespace().map(str::parse::<usize>);
            match (it.next(), it.next(), it.next()) {
                (Some(Ok(s)), Some(Ok(e)), None) if s < e => Ok((s, e)),
                _ => Err(Error::Data {
                    path: path.display().to_string(),
                    why: format!("bad line '{l}'"),
                }),
            }
        })
        .collect()
}

/// Server: evaluates every batch file with the model and the public files only; writes result
/// files. Returns the batches done and the seconds spent evaluating.
pub fn server_evaluate(
    dir: &Path,
    model: &Path,
    data: &Path,
    server: &ServerDevice,
) -> Result<(usize, f64)> {
    let params = Parameters::from_bytes(&read(&dir.join("params.bin"))?)?;
    let keys = EvaluationKeys::from_bytes(&read(&dir.join("evaluation-keys.bin"))?, &params)?;
    let model = super::load_digit_model(model)?;
    let mnist = Mnist::load(data)?;
    let network = super::plan_server(&model, &params, &mnist)?;
    let scheduler = server.scheduler(&params, &keys)?;
    let host = &**scheduler.host();
    let mut seconds = 0.0;
    let list = batches(dir)?;
    for b in 0..list.len() {
        let x = CipherTensor::from_bytes(
            &read(&dir.join(batch_name("batch", b)))?,
            network.shape().0,
            &params,
            host,
        )?;
        let t = std::time::Instant::now();
        let y = network.forward(&scheduler, x)?;
        seconds += t.elapsed().as_secs_f64();
        write(
            &dir.join(batch_name("result", b)),
            &y.to_bytes(&params, host)?,
        )?;
    }
    Ok((list.len(), seconds))
}

/// Client: decrypts the result files; returns (images, correct, agreeing with `model` when
/// given).
pub fn client_decrypt(
    dir: &Path,
    data: &Path,
    model: Option<&Path>,
) -> Result<(usize, usize, Option<usize>)> {
    let backend: Arc<dyn Backend> = select_backend(DeviceChoice::Cpu)?;
    let (params, sk) = client_state(dir)?;
    let mnist = Mnist::load(data)?;
    let encoder = Encoder::new(&params);
    let decryptor = Decryptor::new(&params, &sk)?;
    let model = model.map(super::load_digit_model).transpose()?;
    let px = pixels(&mnist.test_images);
    let (mut total, mut correct, mut agree) = (0, 0, 0);
    for (b, (start, end)) in batches(dir)?.into_iter().enumerate() {
        if end > mnist.test_labels.len() {
            return Err(Error::Config(format!(
                "batch {b} names images beyond the test set"
            )));
        }
        let y = CipherTensor::from_bytes(
            &read(&dir.join(batch_name("result", b)))?,
            &[10],
            &params,
            &*backend,
        )?;
        let outputs = y.decrypt(&decryptor, &encoder, end - start, &*backend)?;
        let plain = match &model {
            Some(m) => Some(m.predict(&px[start * 784..end * 784])?),
            None => None,
        };
        for (i, out) in outputs.iter().enumerate() {
            let guess = argmax(out);
            correct += usize::from(guess == usize::from(mnist.test_labels[start + i]));
            if let Some(p) = &plain {
                agree += usize::from(guess == p[i]);
            }
        }
        total += end - start;
    }
    Ok((total, correct, model.map(|_| agree)))
}
