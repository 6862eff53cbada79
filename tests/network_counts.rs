//! The GPU work of one batch of the shipped network (models/cryptonets-5, N = 2^13), counted
//! without running a kernel (`GpuOptions::record_only`: every dispatch is recorded with its
//! modelled traffic, nothing is submitted), on whatever adapter is present: in CI, Mesa's
//! lavapipe, whose 128 MiB storage bindings split the larger tensors into chunks (so its
//! linear layers add to outputs once per input chunk). Speed is not asserted; what the kernels
//! must do is.

mod common;

use hegpu::backend::{CpuBackend, GpuBackend, GpuOptions, TransferCounts};
use hegpu::tensor::{CipherTensor, Mode, ScheduleOptions, Scheduler};
use std::sync::Arc;

#[test]
fn a_shipped_network_batch_takes_few_dispatches_and_bounded_traffic() {
    if common::gpu().is_none() {
        return;
    }
    // The batch layout costs the same for 8 images as for 4,096.
    let common::Shipped {
        params,
        keys,
        net,
        input,
        ..
    } = common::shipped(8);
    let cpu = CpuBackend::new(None).unwrap();
    let gpu = GpuBackend::with_options(GpuOptions {
        record_only: true,
        ..Default::default()
    })
    .unwrap();
    let scheduler =
        Scheduler::new(&params, &keys, Arc::new(gpu), ScheduleOptions::default()).unwrap();
    // A warm-up batch, then the counted one.
    let mut counted = TransferCounts::default();
    for _ in 0..2 {
        let x = CipherTensor::from_bytes(&input, net.shape().0, &params, &cpu).unwrap();
        let (_, report) = net.forward_report(&scheduler, x).unwrap();
        assert_eq!(report.mode, Mode::Resident);
        counted = TransferCounts::default();
        report.stages.iter().for_each(|s| counted.add(&s.counts));
    }
    let traffic = counted.bytes_read + counted.bytes_written;
    eprintln!(
        "shipped network, one batch: {} dispatches, {} submits, {:.2} GB traffic ({counted:?})",
        counted.dispatches,
        counted.submits,
        traffic as f64 / 1e9
    );
    assert!(counted.dispatches <= 150, "{counted:?}");
    // One submission per stage.
    assert_eq!(counted.submits, net.layer_plan().stages.len() as u64);
    assert!(traffic <= 10_000_000_000, "{counted:?}");
}
