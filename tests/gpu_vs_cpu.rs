//! Every WGSL entry point against its CPU twin, bit for bit, on seeded random inputs with the
//! edge words 0 and p-1, several N, primes from 20 to 31 bits, and batch sizes 1 and odd.

mod common;

use common::{gpu, mixed_ring, random_words, rng};
use hegpu::Error;
use hegpu::backend::GpuOptions;
use hegpu::backend::{Backend, CpuBackend, GpuBackend, PolyBatch};
use hegpu::math::Ring;
use rand::Rng;
use std::io::Write;
use std::sync::Arc;

/// (N, limbs, batch): N in {2^10, 2^12, 2^13, 2^14} with odd batches, and 2^16 once.
const SHAPES: [(usize, usize, usize); 5] = [
    (1 << 10, 3, 1),
    (1 << 12, 2, 3),
    (1 << 13, 5, 1),
    (1 << 14, 2, 3),
    (1 << 16, 1, 1),
];

fn cpu() -> CpuBackend {
    CpuBackend::new(None).unwrap()
}

fn both(b: &dyn Backend, ring: &Arc<Ring>, batch: usize, seed: u64) -> PolyBatch {
    b.upload(ring, batch, &random_words(ring, batch, seed))
        .unwrap()
}

#[test]
fn ntt_forward_and_inverse_match_cpu() {
    if gpu().is_none() {
        return;
    }
    // The adapter's own tiles (one pass up to its tile, two beyond), and forced small tiles, so
    // that the column pass runs at every degree from 2^11, with 1 to 6 stages; backends of this
    // test's own, so that other tests' dispatches do not add to the counts.
    let open = |max_ntt_tile| {
        GpuBackend::with_options(GpuOptions {
            max_ntt_tile,
            ..Default::default()
        })
        .unwrap()
    };
    let devices = [open(None), open(Some(1024)), open(Some(4096))];
    let cpu = cpu();
    for (i, &(n, limbs, batch)) in SHAPES.iter().enumerate() {
        let ring = mixed_ring(n, limbs);
        let words = random_words(&ring, batch, 10 + i as u64);
        let evals = random_words(&ring, batch, 50 + i as u64);
        let mut c = cpu.upload(&ring, batch, &words).unwrap();
        cpu.ntt_forward(&mut c).unwrap();
        let forward = cpu.download(&c).unwrap();
        // Inverse on fresh random evaluations (not only on the forward output).
        let mut c = cpu.upload(&ring, batch, &evals).unwrap();
        cpu.ntt_inverse(&mut c).unwrap();
        let inverse = cpu.download(&c).unwrap();
        for gpu in &devices {
            let before = gpu.counts().dispatches;
            let mut g = gpu.upload(&ring, batch, &words).unwrap();
            gpu.ntt_forward(&mut g).unwrap();
            let passes = gpu.counts().dispatches - before;
            assert_eq!(
                gpu.download(&g).unwrap(),
                forward,
                "ntt_forward n={n} limbs={limbs} batch={batch} ({passes} passes)"
            );
            assert!(passes <= 2, "{passes} passes at n={n}");
            let mut g = gpu.upload(&ring, batch, &evals).unwrap();
            gpu.ntt_inverse(&mut g).unwrap();
            assert_eq!(
                gpu.download(&g).unwrap(),
                inverse,
                "ntt_inverse n={n} limbs={limbs} batch={batch}"
            );
            gpu.ntt_forward(&mut g).unwrap();
            assert_eq!(gpu.download(&g).unwrap(), evals, "GPU round trip n={n}");
        }
    }
}

/// Global passes per transform, counted: one where a tile holds the polynomial, two up to
/// N = 2^16 (an NTT is one dispatch per pass and chunk).
#[test]
fn every_ntt_takes_at_most_two_passes() {
    let Some(_) = gpu() else { return };
    for tile in [1024, 8192] {
        let gpu = GpuBackend::with_options(GpuOptions {
            max_ntt_tile: Some(tile),
            ..Default::default()
        })
        .unwrap();
        // The tile the adapter allows may be smaller than asked.
        let tile = tile.min(gpu.report().max_workgroup_storage_bytes as usize / 4);
        for n_log in 10..=16 {
            let ring = mixed_ring(1 << n_log, 1);
            let mut x = both(&gpu, &ring, 1, 7);
            for forward in [true, false] {
                let before = gpu.counts();
                if forward {
                    gpu.ntt_forward(&mut x).unwrap();
                } else {
                    gpu.ntt_inverse(&mut x).unwrap();
                }
                let spent = gpu.counts().since(&before);
                let expected = if 1 << n_log <= tile { 1 } else { 2 };
                assert_eq!(spent.dispatches, expected, "n=2^{n_log}, tile {tile}");
                // Each pass reads and writes the polynomial once (plus the twiddles).
                let poly = 4 * ring.poly_words() as u64;
                assert_eq!(spent.bytes_written, expected * poly);
                assert!(spent.bytes_read <= expected * 5 * poly, "{spent:?}");
            }
        }
    }
}

#[test]
fn elementwise_kernels_match_cpu() {
    let Some(gpu) = gpu() else { return };
    let cpu = cpu();
    for (i, &(n, limbs, batch)) in SHAPES.iter().take(4).enumerate() {
        let ring = mixed_ring(n, limbs);
        let seed = 100 + 2 * i as u64;
        let (ca, cb) = (
            both(&cpu, &ring, batch, seed),
            both(&cpu, &ring, batch, seed + 1),
        );
        let (ga, gb) = (
            both(gpu, &ring, batch, seed),
            both(gpu, &ring, batch, seed + 1),
        );
        let pairs: [(&str, PolyBatch, PolyBatch); 4] = [
            (
                "poly_add",
                cpu.add(&ca, &cb).unwrap(),
                gpu.add(&ga, &gb).unwrap(),
            ),
            (
                "poly_sub",
                cpu.sub(&ca, &cb).unwrap(),
                gpu.sub(&ga, &gb).unwrap(),
            ),
            ("poly_neg", cpu.neg(&ca).unwrap(), gpu.neg(&ga).unwrap()),
            (
                "poly_mul",
                cpu.mul(&ca, &cb).unwrap(),
                gpu.mul(&ga, &gb).unwrap(),
            ),
        ];
        for (name, c, g) in pairs {
            assert_eq!(
                gpu.download(&g).unwrap(),
                cpu.download(&c).unwrap(),
                "{name} n={n} batch={batch}"
            );
        }
    }
}

#[test]
fn elementwise_results_equal_u64_arithmetic() {
    // The CPU twins themselves against plain u64 arithmetic.
    let cpu = cpu();
    let ring = mixed_ring(1 << 10, 4);
    let (wa, wb) = (random_words(&ring, 3, 1), random_words(&ring, 3, 2));
    let (a, b) = (
        cpu.upload(&ring, 3, &wa).unwrap(),
        cpu.upload(&ring, 3, &wb).unwrap(),
    );
    let results = [
        cpu.add(&a, &b),
        cpu.sub(&a, &b),
        cpu.neg(&a),
        cpu.mul(&a, &b),
    ]
    .map(|r| cpu.download(&r.unwrap()).unwrap());
    for i in 0..wa.len() {
        let p = u64::from(ring.modulus((i / ring.degree()) % ring.limbs()).value());
        let (x, y) = (u64::from(wa[i]), u64::from(wb[i]));
        let want = [(x + y) % p, (x + p - y) % p, (p - x) % p, x * y % p];
        for (r, w) in results.iter().zip(want) {
            assert_eq!(u64::from(r[i]), w, "word {i}");
        }
    }
}

#[test]
fn mul_acc_matches_u64_and_gpu() {
    let cpu = cpu();
    for (n, limbs, groups, terms) in [(1 << 10, 3, 1, 5), (1 << 12, 2, 3, 3), (1 << 13, 1, 2, 1)] {
        let ring = mixed_ring(n, limbs);
        let batch = groups * terms;
        let (wa, wb) = (random_words(&ring, batch, 7), random_words(&ring, batch, 8));
        let c = cpu
            .mul_acc(
                &cpu.upload(&ring, batch, &wa).unwrap(),
                &cpu.upload(&ring, batch, &wb).unwrap(),
                groups,
            )
            .unwrap();
        let cw = cpu.download(&c).unwrap();
        let pw = ring.poly_words();
        for i in (0..groups * pw).step_by(97) {
            let (g, w) = (i / pw, i % pw);
            let p = u64::from(ring.modulus(w / n).value());
            let want = (0..terms).fold(0u64, |acc, k| {
                let at = (g * terms + k) * pw + w;
                (acc + u64::from(wa[at]) * u64::from(wb[at])) % p
            });
            assert_eq!(u64::from(cw[i]), want, "word {i}");
        }
        if let Some(gpu) = gpu() {
            let g = gpu
                .mul_acc(
                    &gpu.upload(&ring, batch, &wa).unwrap(),
                    &gpu.upload(&ring, batch, &wb).unwrap(),
                    groups,
                )
                .unwrap();
            assert_eq!(
                gpu.download(&g).unwrap(),
                cw,
                "poly_mul_acc n={n} groups={groups} terms={terms}"
            );
        }
    }
}

fn random_weights(ring: &Ring, outputs: usize, inputs: usize, seed: u64) -> Vec<u32> {
    let mut r = rng(seed);
    let limbs = ring.limbs();
    (0..outputs * inputs * limbs)
        .map(|i| {
            let p = ring.modulus(i % limbs).value();
            match i % 11 {
                0 => 0,
                1 => p - 1,
                _ => r.random_range(0..p),
            }
        })
        .collect()
}

fn linear_oracle(ring: &Ring, w: &[u32], x: &[u32], inputs: usize, word: usize) -> u32 {
    let (pw, n, limbs) = (ring.poly_words(), ring.degree(), ring.limbs());
    let (j, pos) = (word / pw, word % pw);
    let l = pos / n;
    let p = u64::from(ring.modulus(l).value());
    (0..inputs).fold(0u64, |acc, k| {
        (acc + u64::from(w[(j * inputs + k) * limbs + l]) * u64::from(x[k * pw + pos])) % p
    }) as u32
}

#[test]
fn linear_matches_u64_and_gpu() {
    // 31-bit primes fold every 2 terms on the CPU, 20-bit ones almost never: both are covered,
    // with enough inputs to cross many folds.
    let cpu = cpu();
    for (n, limbs, outputs, inputs) in [
        (1 << 10, 3, 5, 7),
        (1 << 12, 2, 10, 3),
        (1 << 13, 6, 1, 1),
        (1 << 10, 4, 9, 70),
        // More outputs than a GPU tile holds (32): three tiles, the last partial.
        (1 << 10, 2, 70, 20),
    ] {
        let ring = mixed_ring(n, limbs);
        let (x, w) = (
            random_words(&ring, inputs, 21),
            random_weights(&ring, outputs, inputs, 22),
        );
        let c = cpu
            .linear(
                &cpu.upload_weights(&ring, outputs, inputs, &w).unwrap(),
                &cpu.upload(&ring, inputs, &x).unwrap(),
            )
            .unwrap();
        let cw = cpu.download(&c).unwrap();
        for i in (0..cw.len()).step_by(61).chain([cw.len() - 1]) {
            assert_eq!(cw[i], linear_oracle(&ring, &w, &x, inputs, i), "word {i}");
        }
        if let Some(gpu) = gpu() {
            let g = gpu
                .linear(
                    &gpu.upload_weights(&ring, outputs, inputs, &w).unwrap(),
                    &gpu.upload(&ring, inputs, &x).unwrap(),
                )
                .unwrap();
            assert_eq!(
                gpu.download(&g).unwrap(),
                cw,
                "linear n={n} J={outputs} K={inputs}"
            );
        }
    }
}

#[test]
fn batches_split_across_bindings_give_the_same_words() {
    // A binding limit of 3 polynomials forces every operation across chunk boundaries; the
    // kernels use the portable 16×16 products (`gpu()` uses native ones where offered).
    if gpu().is_none() {
        return;
    }
    let ring = mixed_ring(1 << 11, 2);
    let small = GpuBackend::with_options(GpuOptions {
        max_chunk_bytes: Some(3 * 4 * ring.poly_words() as u64),
        portable_products: true,
        ..Default::default()
    })
    .unwrap();
    let cpu = cpu();
    let (batch, outputs) = (8, 7);
    let (wa, wb) = (
        random_words(&ring, batch, 31),
        random_words(&ring, batch, 32),
    );
    let w = random_weights(&ring, outputs, batch, 33);
    let (ca, cb) = (
        cpu.upload(&ring, batch, &wa).unwrap(),
        cpu.upload(&ring, batch, &wb).unwrap(),
    );
    let (mut ga, gb) = (
        small.upload(&ring, batch, &wa).unwrap(),
        small.upload(&ring, batch, &wb).unwrap(),
    );
    assert_eq!(small.download(&ga).unwrap(), wa);
    let checks = || {
        [
            (
                "mul",
                cpu.download(&cpu.mul(&ca, &cb).unwrap()),
                small.download(&small.mul(&ga, &gb).unwrap()),
            ),
            (
                "mul_acc 2 groups",
                cpu.download(&cpu.mul_acc(&ca, &cb, 2).unwrap()),
                small.download(&small.mul_acc(&ga, &gb, 2).unwrap()),
            ),
            (
                "mul_acc 8 groups",
                cpu.download(&cpu.mul_acc(&ca, &cb, 8).unwrap()),
                small.download(&small.mul_acc(&ga, &gb, 8).unwrap()),
            ),
            (
                "linear",
                cpu.download(
                    &cpu.linear(&cpu.upload_weights(&ring, outputs, batch, &w).unwrap(), &ca)
                        .unwrap(),
                ),
                small.download(
                    &small
                        .linear(
                            &small.upload_weights(&ring, outputs, batch, &w).unwrap(),
                            &ga,
                        )
                        .unwrap(),
                ),
            ),
        ]
    };
    for (name, c, g) in checks() {
        assert_eq!(g.unwrap(), c.unwrap(), "{name}");
    }
    // Again on reused buffers that hold a pattern: accumulating kernels must start from zero.
    small.scribble_idle_buffers(0x5a5a_5a5a).unwrap();
    for (name, c, g) in checks() {
        assert_eq!(g.unwrap(), c.unwrap(), "{name} on reused buffers");
    }
    let mut c = ca;
    cpu.ntt_forward(&mut c).unwrap();
    small.ntt_forward(&mut ga).unwrap();
    assert_eq!(
        small.download(&ga).unwrap(),
        cpu.download(&c).unwrap(),
        "ntt across chunks"
    );
}

#[test]
fn a_batch_larger_than_the_adapter_binding_is_split() {
    // Real limit, no test knob: one batch over the adapter's storage-binding size.
    let Some(gpu) = gpu() else { return };
    let limit = gpu
        .report()
        .max_storage_binding_bytes
        .min(gpu.report().max_buffer_bytes);
    if limit > 512 << 20 {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: binding limit {limit} bytes is too large to exceed in a test"
        );
        return;
    }
    let ring = mixed_ring(1 << 13, 2);
    let poly_bytes = 4 * ring.poly_words() as u64;
    let batch = (limit / poly_bytes + 3) as usize;
    let mut r = rng(5);
    let words: Vec<u32> = (0..batch * ring.poly_words())
        .map(|i| r.random_range(0..ring.modulus((i / ring.degree()) % 2).value()))
        .collect();
    let a = gpu.upload(&ring, batch, &words).unwrap();
    let sum = gpu.add(&a, &a).unwrap();
    let got = gpu.download(&sum).unwrap();
    for i in (0..words.len()).step_by(4099).chain([words.len() - 1]) {
        let p = u64::from(ring.modulus((i / ring.degree()) % 2).value());
        assert_eq!(u64::from(got[i]), 2 * u64::from(words[i]) % p, "word {i}");
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let cpu = cpu();
    let ring = mixed_ring(1 << 10, 2);
    let other = mixed_ring(1 << 11, 2);
    let mut words = random_words(&ring, 1, 1);
    assert!(matches!(cpu.upload(&ring, 2, &words), Err(Error::Shape(_))));
    words[5] = ring.modulus(0).value();
    assert!(matches!(
        cpu.upload(&ring, 1, &words),
        Err(Error::Unreduced { index: 5, .. })
    ));
    let a = cpu.upload(&ring, 1, &random_words(&ring, 1, 1)).unwrap();
    let b = cpu.upload(&other, 1, &random_words(&other, 1, 1)).unwrap();
    assert!(matches!(cpu.add(&a, &b), Err(Error::Shape(_))));
    let a3 = cpu.upload(&ring, 3, &random_words(&ring, 3, 2)).unwrap();
    assert!(matches!(cpu.mul_acc(&a3, &a3, 2), Err(Error::Shape(_))));
    assert!(matches!(
        cpu.upload_weights(&ring, 2, 3, &[0; 5]),
        Err(Error::Shape(_))
    ));
    let w = cpu.upload_weights(&ring, 1, 2, &[0; 4]).unwrap();
    assert!(matches!(cpu.linear(&w, &a3), Err(Error::Shape(_))));
    if let Some(gpu) = gpu() {
        let g = gpu.upload(&ring, 1, &random_words(&ring, 1, 1)).unwrap();
        assert!(matches!(gpu.add(&a, &g), Err(Error::WrongDevice { .. })));
        assert!(matches!(cpu.add(&g, &a), Err(Error::WrongDevice { .. })));
        assert!(matches!(
            gpu.linear(&w, &g),
            Err(Error::WrongDevice { .. }) | Err(Error::Shape(_))
        ));
        assert!(matches!(
            gpu.upload(&ring, 1, &words),
            Err(Error::Unreduced { .. })
        ));
    }
}

#[test]
fn more_data_than_the_budget_is_an_out_of_memory_error() {
    if gpu().is_none() {
        return;
    }
    let ring = mixed_ring(1 << 10, 2);
    let budget = 3 * 4 * ring.poly_words() as u64;
    let small = GpuBackend::with_options(GpuOptions {
        memory_budget: Some(budget),
        ..Default::default()
    })
    .unwrap();
    let ok = small.upload(&ring, 3, &random_words(&ring, 3, 1)).unwrap();
    assert!(matches!(
        small.upload(&ring, 1, &random_words(&ring, 1, 2)),
        Err(Error::Gpu(hegpu::GpuError::OutOfMemory { .. }))
    ));
    drop(ok);
    assert_eq!(small.live_bytes(), 0);
    small.upload(&ring, 3, &random_words(&ring, 3, 3)).unwrap();
    let counts = small.counts();
    assert!(counts.uploads >= 2 && counts.readbacks == 0, "{counts:?}");
}

#[test]
fn a_trace_records_the_writes_dispatches_and_reads_to_replay() {
    use hegpu::backend::{DispatchTrace, GpuHooks};
    if gpu().is_none() {
        return;
    }
    let trace = Arc::new(DispatchTrace::new());
    let hooks = GpuHooks {
        trace: Some(trace.clone()),
        ..Default::default()
    };
    let traced = GpuBackend::with_hooks(GpuOptions::default(), hooks).unwrap();
    let ring = mixed_ring(1 << 10, 2);
    let (a, b) = (random_words(&ring, 3, 1), random_words(&ring, 3, 2));
    let sum = traced
        .add(
            &traced.upload(&ring, 3, &a).unwrap(),
            &traced.upload(&ring, 3, &b).unwrap(),
        )
        .unwrap();
    let words = traced.download(&sum).unwrap();
    let dir = std::env::temp_dir().join(format!("hegpu-trace-{}", std::process::id()));
    trace.write_to(&dir).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("trace.json")).unwrap()).unwrap();
    let blob = std::fs::read(dir.join("trace.bin")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let events = json["events"].as_array().unwrap();
    let ops: Vec<&str> = events.iter().map(|e| e["op"].as_str().unwrap()).collect();
    // Two uploads, the ring's tables (limb constants, twiddles) on the first dispatch, the
    // addition, the read of the sum with its words.
    assert_eq!(
        ops,
        ["write", "write", "write", "write", "dispatch", "read"]
    );
    let dispatch = &events[4];
    assert_eq!(dispatch["module"], "elementwise");
    assert_eq!(dispatch["entry"], "poly_add");
    // The parameters: the shape (log N, limbs, words, accumulate).
    let params: Vec<u64> = dispatch["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(params, [10, 2, 3 * ring.poly_words() as u64, 0]);
    let read = &events[5];
    let at = read["at"].as_u64().unwrap() as usize;
    let len = read["len"].as_u64().unwrap() as usize;
    let expected: Vec<u32> = blob[at..at + len]
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
        .collect();
    assert_eq!(expected, words);
    assert_eq!(read["buffer"], dispatch["bindings"][4]);
    assert!(
        json["modules"]["ntt"]
            .as_str()
            .unwrap()
            .contains("fn ntt_forward_local(")
    );
}

#[test]
fn every_wait_goes_through_the_callers_wait() {
    use hegpu::backend::{Blocking, GpuHooks, Pending, Wait};
    use std::sync::atomic::{AtomicUsize, Ordering};
    /// Counts the futures it finishes, and the ones that needed the device polled.
    #[derive(Default)]
    struct Counting {
        finished: AtomicUsize,
        polled: AtomicUsize,
    }
    impl Wait for Counting {
        fn finish(&self, device: Option<&wgpu::Device>, future: Pending<'_>) {
            self.finished.fetch_add(1, Ordering::Relaxed);
            if device.is_some() {
                self.polled.fetch_add(1, Ordering::Relaxed);
            }
            Blocking.finish(device, future);
        }
    }
    if gpu().is_none() {
        return;
    }
    let wait = Arc::new(Counting::default());
    let hooks = GpuHooks {
        wait: Some(wait.clone()),
        ..Default::default()
    };
    let g = GpuBackend::with_hooks(GpuOptions::default(), hooks).unwrap();
    // Opening: the adapter and the device, then the kernels' error scopes.
    let opened = wait.finished.load(Ordering::Relaxed);
    assert!(opened >= 2, "{opened}");
    assert_eq!(wait.polled.load(Ordering::Relaxed), 0);
    let ring = mixed_ring(1 << 10, 2);
    let words = random_words(&ring, 3, 5);
    let mut x = g.upload(&ring, 3, &words).unwrap();
    g.ntt_forward(&mut x).unwrap();
    g.sync().unwrap();
    assert_eq!(
        wait.polled.load(Ordering::Relaxed),
        1,
        "sync drains the queue once"
    );
    let mut c = cpu().upload(&ring, 3, &words).unwrap();
    cpu().ntt_forward(&mut c).unwrap();
    assert_eq!(g.download(&x).unwrap(), cpu().download(&c).unwrap());
    assert_eq!(
        wait.polled.load(Ordering::Relaxed),
        2,
        "one readback, one wait"
    );
    assert!(wait.finished.load(Ordering::Relaxed) > opened + 2);
}
