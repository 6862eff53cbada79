//! CKKS operations for `hegpu bench`: encrypt, multiply + relinearize, rescale and rotate on
//! one ciphertext at the top level of each preset, on every device.

use super::{Devices, Record, rate};
use hegpu::Result;
use hegpu::ckks::{
    Ciphertext, Encoder, Encryptor, EvaluationKeys, Evaluator, KeyGenerator, Parameters, Preset,
    PublicKey, Seed,
};
use std::sync::Arc;
use std::time::Duration;

/// A named operation to time.
type Op<'a> = (&'static str, Box<dyn Fn() -> Result<()> + 'a>);

/// Sizes of one fresh ciphertext of a preset: (compact format bytes, device bytes).
pub fn ciphertext_bytes(preset: Preset) -> Result<(usize, usize)> {
    let params = Parameters::preset(preset)?;
    let backend: Arc<dyn hegpu::backend::Backend> =
        Arc::new(hegpu::backend::CpuBackend::new(Some(1))?);
    let ct = fresh(&params, &backend)?;
    Ok((ct.to_bytes(&params, &*backend)?.len(), ct.data_bytes()))
}

fn fresh(
    params: &Arc<Parameters>,
    backend: &Arc<dyn hegpu::backend::Backend>,
) -> Result<Ciphertext> {
    let mut kg = KeyGenerator::new(params, Seed::from_u64(1));
    let sk = kg.secret_key()?;
    let pk = kg.public_key(&sk)?;
    let x: Vec<f64> = (0..params.slots()).map(|i| (i as f64).sin()).collect();
    let pt =
        Encoder::new(params).encode(&x, params.max_level(), params.default_scale(), &**backend)?;
    Encryptor::new(params, &pk, backend.clone(), Seed::from_u64(2))?.encrypt(&pt)
}

/// `preset`'s parameters, a public key and evaluation keys (relinearization, and the Galois
/// keys of `rotations`) drawn from fixed seeds.
pub(super) fn preset_keys(
    preset: Preset,
    rotations: &[i64],
) -> Result<(Arc<Parameters>, PublicKey, EvaluationKeys)> {
    let params = Parameters::preset(preset)?;
    let mut kg = KeyGenerator::new(&params, Seed::from_u64(1));
    let sk = kg.secret_key()?;
    let pk = kg.public_key(&sk)?;
    let keys = EvaluationKeys {
        relin: Some(kg.relin_key(&sk)?),
        galois: kg.galois_keys(&sk, rotations, false)?,
    };
    Ok((params, pk, keys))
}

/// Measures the CKKS operations of `preset` on every device.
pub fn run_ckks(
    preset: Preset,
    devices: &Devices,
    min_time: Duration,
    push: &mut dyn FnMut(Record),
) -> Result<()> {
    let (params, pk, keys) = preset_keys(preset, &[1])?;
    let x: Vec<f64> = (0..params.slots()).map(|i| (i as f64).cos()).collect();
    let (n, top) = (params.degree(), params.max_level());
    for (dev, threads) in &devices.list {
        let encoder = Encoder::new(&params);
        let pt = encoder.encode(&x, top, params.default_scale(), &**dev)?;
        let enc = Encryptor::new(&params, &pk, dev.clone(), Seed::from_u64(2))?;
        let ev = Evaluator::new(&params, dev.clone(), &keys)?;
        let a = enc.encrypt(&pt)?;
        let product = ev.mul_relin(&a, &a)?;
        let ops: [Op<'_>; 4] = [
            ("ckks_encrypt", Box::new(|| enc.encrypt(&pt).map(drop))),
            (
                "ckks_mul_relin",
                Box::new(|| ev.mul_relin(&a, &a).map(drop)),
            ),
            ("ckks_rescale", Box::new(|| ev.rescale(&product).map(drop))),
            ("ckks_rotate", Box::new(|| ev.rotate(&a, 1).map(drop))),
        ];
        for (op, f) in ops {
            let per_second = rate(min_time, || {
                f()?;
                dev.sync()
            })?;
            push(Record {
                op,
                n,
                limbs: top + 1,
                batch: 1,
                backend: dev.name(),
                threads: *threads,
                per_second,
                unit: "ciphertexts",
                detail: String::new(),
            });
        }
    }
    Ok(())
}
