//! Criterion: RNS arithmetic on polynomial batches — the linear-layer multiply-accumulate
//! (throughput in modular multiply-adds), pointwise products and grouped multiply-accumulate.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hegpu::backend::{DeviceChoice, GpuOptions};
use hegpu::math::Ring;
use hegpu::math::ntt_primes;
use hegpu_cli::bench::{Devices, sample_words};
use std::time::Duration;

fn rns(c: &mut Criterion) {
    let (n, limbs) = (1 << 13, 6);
    let ring = Ring::new(n, &ntt_primes(n, 30, limbs, &[]).unwrap()).unwrap();
    let mut group = c.benchmark_group("rns");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300));
    let (outputs, inputs) = (16, 64);
    let x = sample_words(&ring, inputs);
    let w: Vec<u32> = (0..outputs * inputs * limbs)
        .map(|i| (i as u32 * 7919) % ring.modulus(i % limbs).value())
        .collect();
    for (name, dev) in Devices::open(DeviceChoice::from_env().unwrap(), GpuOptions::default())
        .unwrap()
        .named()
    {
        let xb = dev.upload(&ring, inputs, &x).unwrap();
        let wb = dev.upload_weights(&ring, outputs, inputs, &w).unwrap();
        group.throughput(Throughput::Elements((outputs * inputs * limbs * n) as u64));
        group.bench_function(BenchmarkId::new("linear_mac", &name), |b| {
            b.iter(|| {
                dev.linear(&wb, &xb).unwrap();
                dev.sync().unwrap();
            })
        });
        group.throughput(Throughput::Elements((inputs * limbs * n) as u64));
        group.bench_function(BenchmarkId::new("poly_mul", &name), |b| {
            b.iter(|| {
                dev.mul(&xb, &xb).unwrap();
                dev.sync().unwrap();
            })
        });
        group.bench_function(BenchmarkId::new("poly_mul_acc_4_groups", &name), |b| {
            b.iter(|| {
                dev.mul_acc(&xb, &xb, 4).unwrap();
                dev.sync().unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, rns);
criterion_main!(benches);
