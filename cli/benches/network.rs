//! Criterion benches of the whole encrypted network (the shipped CryptoNets model on MNIST
//! test images, server evaluation only) on every device, at N = 2^13 and 2^14 with the
//! CryptoNets modulus chain, for a batch of 64 images and a full one: the same rows as the
//! network section of `hegpu bench`. Criterion's throughput is images per second. A software
//! GPU adapter (lavapipe) is left out: minutes a batch, and nothing to learn of GPU speed.
//! Filter by name, e.g. `cargo bench --bench network -- n8192`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hegpu::backend::{DeviceChoice, GpuOptions};
use hegpu_cli::bench::{Devices, NetworkBench, NetworkCase};
use std::time::Duration;

fn network(c: &mut Criterion) {
    let devices = Devices::open(DeviceChoice::from_env().unwrap(), GpuOptions::default()).unwrap();
    for log_n in [13, 14] {
        let case = NetworkCase::load(&NetworkBench::default(), log_n).unwrap();
        let mut group = c.benchmark_group(format!("network_n{}", 1usize << log_n));
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(100));
        for batch in [64, case.max_batch()] {
            let input = case.encrypt_batch(batch).unwrap();
            group.throughput(Throughput::Elements(batch as u64));
            for (dev, threads) in &devices.list {
                if *threads == 0 && devices.gpu_is_software {
                    continue;
                }
                let scheduler = case.scheduler(dev.clone()).unwrap();
                let name = match threads {
                    0 => "gpu".to_string(),
                    t => format!("cpu{t}"),
                };
                group.bench_function(format!("batch{batch}/{name}"), |b| {
                    b.iter(|| case.serve(&scheduler, &input).unwrap())
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, network);
criterion_main!(benches);
