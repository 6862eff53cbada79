//! Criterion benches of the CKKS operations on the CryptoNets preset (N = 2^13, six ciphertext
//! primes and one special prime), on every device: encrypt, multiply + relinearize, rescale,
//! rotate — the same operations as `hegpu bench`.

use criterion::{Criterion, criterion_group, criterion_main};
use hegpu::backend::{DeviceChoice, GpuOptions};
use hegpu::ckks::*;
use hegpu_cli::bench::Devices;

fn ckks(c: &mut Criterion) {
    let params = Parameters::preset(Preset::CryptoNets8192).unwrap();
    let mut kg = KeyGenerator::new(&params, Seed::from_u64(1));
    let sk = kg.secret_key().unwrap();
    let pk = kg.public_key(&sk).unwrap();
    let keys = EvaluationKeys {
        relin: Some(kg.relin_key(&sk).unwrap()),
        galois: kg.galois_keys(&sk, &[1], false).unwrap(),
    };
    let x: Vec<f64> = (0..params.slots()).map(|i| (i as f64).cos()).collect();
    let mut group = c.benchmark_group("ckks_n8192");
    group.sample_size(20);
    for (name, dev) in Devices::open(DeviceChoice::from_env().unwrap(), GpuOptions::default())
        .unwrap()
        .named()
    {
        let pt = Encoder::new(&params)
            .encode(&x, params.max_level(), params.default_scale(), &*dev)
            .unwrap();
        let enc = Encryptor::new(&params, &pk, dev.clone(), Seed::from_u64(2)).unwrap();
        let ev = Evaluator::new(&params, dev.clone(), &keys).unwrap();
        let a = enc.encrypt(&pt).unwrap();
        let product = ev.mul_relin(&a, &a).unwrap();
        let sync = || dev.sync().unwrap();
        group.bench_function(format!("encrypt/{name}"), |b| {
            b.iter(|| {
                enc.encrypt(&pt).unwrap();
                sync()
            })
        });
        group.bench_function(format!("mul_relin/{name}"), |b| {
            b.iter(|| {
                ev.mul_relin(&a, &a).unwrap();
                sync()
            })
        });
        group.bench_function(format!("rescale/{name}"), |b| {
            b.iter(|| {
                ev.rescale(&product).unwrap();
                sync()
            })
        });
        group.bench_function(format!("rotate/{name}"), |b| {
            b.iter(|| {
                ev.rotate(&a, 1).unwrap();
                sync()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, ckks);
criterion_main!(benches);
