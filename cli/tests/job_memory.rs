//! The whole encrypted MNIST job in one process, client and server, stays under 1 GiB of
//! peak resident memory: the shipped network, two batches of 500 digits (each as large as a
//! full one: 784 ciphertexts) with the client encrypting the second while the server
//! evaluates the first. Alone in its test binary, so the process's peak (`VmHWM`) is the
//! job's; Linux only.

use hegpu::backend::DeviceChoice;
use hegpu_cli::job::{JobOptions, Packing, ServerDevice, run_mnist};
use std::path::Path;

#[test]
fn the_pipelined_job_peaks_under_one_gibibyte() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let options = JobOptions {
        images: 1000,
        data: root.join("data/mnist"),
        model: root.join("models/cryptonets-5.safetensors"),
        server: ServerDevice {
            device: DeviceChoice::Cpu,
            ..Default::default()
        },
        packing: Packing::Batch,
        batch: Some(500),
        in_flight: 2,
        ..Default::default()
    };
    let report = run_mnist(&options, |_, _, _| {}).unwrap();
    assert_eq!((report.batches, report.classified), (2, 1000));
    let peak = report.peak_memory_bytes.expect("Linux reports its peak");
    eprintln!("peak memory: {} MiB", peak >> 20);
    assert!(peak <= 1 << 30, "{} MiB", peak >> 20);
}
