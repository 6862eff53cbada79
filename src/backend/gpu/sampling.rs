//! The sampling kernels (`shaders/sampling.wgsl`): uniform masks drawn on the device from a
//! seed, and small polynomials from their bytes.

use super::dispatch::Binds;
use super::kernels::{Kernel, WORKGROUP};
use super::params::{SeededMasksParams, Shape, SmallPolysParams};
use super::{GpuBackend, Ring};
use crate::Result;
use crate::backend::batch::PolyBatch;
use crate::backend::{check_small, check_streams};
use std::ops::Range;
use std::sync::Arc;
use zeroize::Zeroize;

impl GpuBackend {
    /// Twin of `CpuBackend::seeded_masks`: one invocation per ChaCha20 block, whose 16 draws
    /// make 8 words.
    pub(super) fn seeded_masks_gpu(
        &self,
        ring: &Arc<Ring>,
        seed: &[u8; 32],
        streams: Range<u64>,
    ) -> Result<PolyBatch> {
        let count = check_streams(&streams)?;
        let key: Vec<u32> = seed
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes(w.try_into().expect("4 bytes")))
            .collect();
        // The seed is public (it travels with the ciphertexts): cached like any small table.
        let key = self.op_table(&key)?;
        let tables = self.tables(ring)?;
        let out = self.alloc_batch(ring, count)?;
        let go = self.gpu(&out)?;
        let (lo, hi) = (streams.start as u32, (streams.start >> 32) as u32);
        self.run(0, |enc| {
            for (c, chunk) in go.chunks.iter().enumerate() {
                let (first, _) = go.range(c);
                let binds = Binds {
                    table: &key.buffer,
                    a: &self.placeholder,
                    b: &self.placeholder,
                    out: &chunk.data.buffer,
                };
                let blocks = chunk.polys * ring.poly_words() / 8;
                let p = SeededMasksParams {
                    shape: Shape::of(ring, blocks),
                    stream_lo: lo,
                    stream_hi: hi,
                    first_poly: first as u32,
                };
                let groups = blocks.div_ceil(WORKGROUP as usize) as u64;
                self.dispatch(enc, &tables, Kernel::SeededMasks, p, groups, binds);
            }
        })?;
        Ok(out)
    }

    /// Twin of `CpuBackend::small_polys`: each chunk's coefficients go up as bytes (four per
    /// word) and are widened to every limb's words on the device.
    pub(super) fn small_polys_gpu(&self, ring: &Arc<Ring>, coeffs: &[i8]) -> Result<PolyBatch> {
        let count = check_small(ring, coeffs)?;
        let n = ring.degree();
        let tables = self.tables(ring)?;
        let out = self.alloc_batch(ring, count)?;
        let go = self.gpu(&out)?;
        for (c, chunk) in go.chunks.iter().enumerate() {
            let (s, e) = go.range(c);
            // N is a power of two of at least 2^10: whole words of bytes.
            let mut bytes: Vec<u32> = coeffs[s * n..e * n]
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8]))
                .collect();
            let table = self.upload_table(&bytes, "a chunk's small coefficients");
            // The coefficients may be secret (noise, a key): not left in host memory.
            bytes.zeroize();
            let table = table?;
            let words = chunk.polys * ring.poly_words();
            self.run(0, |enc| {
                let binds = Binds {
                    table: &table.buffer,
                    a: &self.placeholder,
                    b: &self.placeholder,
                    out: &chunk.data.buffer,
                };
                let p = SmallPolysParams {
                    shape: Shape::of(ring, words),
                };
                let groups = words.div_ceil(WORKGROUP as usize) as u64;
                self.dispatch(enc, &tables, Kernel::SmallPolys, p, groups, binds);
            })?;
        }
        Ok(out)
    }
}
