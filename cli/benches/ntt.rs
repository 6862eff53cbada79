//! Criterion: batched negacyclic NTT on the CPU (one thread, all threads), the GPU when an
//! adapter exists, and tfhe-ntt prime32 as the peer — the same operations as `hegpu bench`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hegpu::backend::{DeviceChoice, GpuOptions};
use hegpu::math::Ring;
use hegpu::math::ntt_primes;
use hegpu_cli::bench::{Devices, sample_words};
use std::time::Duration;

fn ntt(c: &mut Criterion) {
    let mut group = c.benchmark_group("ntt_forward");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300));
    for (n, limbs, batch) in [(1 << 13, 1, 1), (1 << 13, 8, 4), (1 << 14, 8, 2)] {
        let ring = Ring::new(n, &ntt_primes(n, 30, limbs, &[]).unwrap()).unwrap();
        let data = sample_words(&ring, batch);
        group.throughput(Throughput::Elements((limbs * batch) as u64));
        let id = format!("n{n}-limbs{limbs}-batch{batch}");
        for (name, dev) in Devices::open(DeviceChoice::from_env().unwrap(), GpuOptions::default())
            .unwrap()
            .named()
        {
            let mut x = dev.upload(&ring, batch, &data).unwrap();
            group.bench_function(BenchmarkId::new(name, &id), |b| {
                b.iter(|| {
                    dev.ntt_forward(&mut x).unwrap();
                    dev.sync().unwrap();
                })
            });
        }
        let plans: Vec<_> = ring
            .primes()
            .iter()
            .map(|&p| tfhe_ntt::prime32::Plan::try_new(n, p).unwrap())
            .collect();
        let mut peer = data.clone();
        group.bench_function(BenchmarkId::new("tfhe-ntt-1-thread", &id), |b| {
            b.iter(|| {
                peer.chunks_mut(n)
                    .enumerate()
                    .for_each(|(row, r)| plans[row % limbs].fwd(r))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, ntt);
criterion_main!(benches);
