//! Multiply polynomials in Z_Q[X]/(X^N + 1) through the NTT on the chosen device
//! (`HEGPU_DEVICE=auto|cpu|gpu`), and check the words against the CPU backend.
//!
//! cargo run --release --example poly_multiply

use hegpu::backend::{Backend, CpuBackend, DeviceChoice, select_backend};
use hegpu::math::Ring;
use hegpu::math::ntt_primes;
use std::time::Instant;

fn main() -> hegpu::Result<()> {
    let (n, limbs, batch) = (1 << 13, 3, 16);
    let ring = Ring::new(n, &ntt_primes(n, 30, limbs, &[])?)?;
    let device = select_backend(DeviceChoice::from_env()?)?;
    println!("device: {}", device.name());

    // Seeded, reduced inputs laid out [batch][limb][n].
    let mut state = 42u64;
    let mut sample = |row: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as u32) % ring.modulus(row % limbs).value()
    };
    let a: Vec<u32> = (0..batch * ring.poly_words())
        .map(|i| sample(i / n))
        .collect();
    let b: Vec<u32> = (0..batch * ring.poly_words())
        .map(|i| sample(i / n))
        .collect();

    let product = |dev: &dyn Backend| -> hegpu::Result<Vec<u32>> {
        let (mut x, mut y) = (dev.upload(&ring, batch, &a)?, dev.upload(&ring, batch, &b)?);
        dev.ntt_forward(&mut x)?;
        dev.ntt_forward(&mut y)?;
        let mut z = dev.mul(&x, &y)?;
        dev.ntt_inverse(&mut z)?;
        dev.download(&z)
    };

    let start = Instant::now();
    let got = product(device.as_ref())?;
    println!(
        "{batch} products of {limbs}-limb polynomials at N = {n} in {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    let want = product(&CpuBackend::new(None)?)?;
    println!("identical to the CPU backend: {}", got == want);
    assert_eq!(got, want);
    Ok(())
}
