//! The shipped network's result, pinned: one batch of 8 test digits through
//! models/cryptonets-5 on the CPU, from fixed seeds, gives these bytes (length and checksum).
//! A change to planning, scheduling, the stages or the arithmetic under them shows here; a
//! refactor must leave them as they are.

mod common;

use hegpu::backend::{Backend, CpuBackend};
use hegpu::ckks::*;
use hegpu::nn::argmax;
use hegpu::tensor::{CipherTensor, ScheduleOptions, Scheduler};
use std::sync::Arc;

#[test]
fn the_shipped_networks_result_bytes_are_pinned() {
    let s = common::shipped(8);
    let cpu: Arc<dyn Backend> = Arc::new(CpuBackend::new(None).unwrap());
    let x = CipherTensor::from_bytes(&s.input, s.net.shape().0, &s.params, &*cpu).unwrap();
    let scheduler =
        Scheduler::new(&s.params, &s.keys, cpu.clone(), ScheduleOptions::default()).unwrap();
    let (y, report) = s.net.forward_report(&scheduler, x).unwrap();
    assert_eq!((report.key_switches, report.ntts), (110, 16_970));
    let bytes = y.to_bytes(&s.params, &*cpu).unwrap();
    // The last four bytes are the checksum of all before them.
    let crc = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap());
    assert_eq!((bytes.len(), crc), (614_451, 4_042_537_498));
    // And the digits are the plaintext model's.
    let decryptor = Decryptor::new(&s.params, &s.sk).unwrap();
    let logits = y
        .decrypt(&decryptor, &Encoder::new(&s.params), 8, &*cpu)
        .unwrap();
    for (i, l) in logits.iter().enumerate() {
        let plain = s.model.forward(&s.pixels[i * 784..(i + 1) * 784]).unwrap();
        assert_eq!(argmax(l), argmax(&plain), "image {i}");
    }
}
