//! Batched primitive operations on polynomial batches, one contract for two devices.
//!
//! [`CpuBackend`] (rayon) and [`GpuBackend`] (wgpu + WGSL) implement [`Backend`]
//! and return the same words for the same inputs, bit for bit. A kernel and its CPU twin carry
//! the same name (`ntt_forward`, `poly_mul_acc`, `linear_sparse`, ...).

pub(crate) mod batch;
pub(crate) mod cpu;
pub(crate) mod device;
mod device_data;
#[cfg(feature = "gpu")]
pub(crate) mod gpu;
mod pool;
pub(crate) mod rns_ops;
pub(crate) mod sparse;
pub(crate) mod telemetry;

pub use batch::{PolyBatch, Weights};
pub use cpu::CpuBackend;
pub use device::{
    DeviceChoice, GpuOptions, OpenedGpu, choose_backend, gpu_required, open_gpu, parse_bytes,
    select_backend,
};
#[cfg(feature = "gpu")]
pub use gpu::{AdapterReport, Blocking, DispatchTrace, GpuBackend, GpuHooks, Pending, Wait};
pub use rns_ops::MAX_CONVERT_SOURCE_LIMBS;
pub use sparse::{SparseRows, SparseWeights};
pub use telemetry::{GpuStats, KernelProfile, TransferCounts};

use crate::math::Ring;
use crate::{Error, Result};
use std::ops::Range;
use std::sync::Arc;

/// The batched operations both devices implement. Inputs and outputs are fully reduced; every
/// operation checks shapes, rings and devices and returns an [`Error`] rather than
/// panicking or computing a wrong answer.
pub trait Backend: Send + Sync {
    /// A one-line description of the device (for reports).
    fn name(&self) -> String;

    /// Waits until every operation submitted so far has finished (a no-op on the CPU).
    fn sync(&self) -> Result<()>;

    /// Memory held and transfers made, for a GPU; `None` for the host (the CPU backend).
    fn gpu_stats(&self) -> Option<GpuStats> {
        None
    }

    /// GPU time, dispatches and bytes per kernel, for a GPU opened to profile
    /// ([`GpuOptions::profile`]); `None` otherwise.
    fn kernel_profile(&self) -> Option<Vec<KernelProfile>> {
        None
    }

    /// Single-limb NTTs (forward and inverse) run so far: a batch of `b` polynomials over `l`
    /// limbs counts `b · l`.
    fn ntt_count(&self) -> u64;

    /// Copies `batch` polynomials (`[batch][limb][n]`, words below their primes) to the device.
    fn upload(&self, ring: &Arc<Ring>, batch: usize, words: &[u32]) -> Result<PolyBatch>;

    /// [`upload`](Self::upload) of words the caller hands over: a host backend keeps the
    /// vector (checked the same way) instead of copying it.
    fn upload_vec(&self, ring: &Arc<Ring>, batch: usize, words: Vec<u32>) -> Result<PolyBatch> {
        self.upload(ring, batch, &words)
    }

    /// A host buffer of `words` words for the caller to fill entirely and hand to
    /// [`upload_vec`](Self::upload_vec): the CPU backend's comes from its pool of recycled
    /// buffers, and its batch then keeps it without a copy (stale contents are never read).
    fn host_buffer(&self, words: usize) -> Vec<u32> {
        vec![0; words]
    }

    /// Copies a batch back to the host.
    fn download(&self, x: &PolyBatch) -> Result<Vec<u32>>;

    /// A batch of zero polynomials on the device.
    fn zeros(&self, ring: &Arc<Ring>, batch: usize) -> Result<PolyBatch>;

    /// Forward negacyclic NTT of every limb of every polynomial, in place
    /// (standard order in, bit-reversed out).
    fn ntt_forward(&self, x: &mut PolyBatch) -> Result<()>;

    /// Inverse negacyclic NTT, in place (bit-reversed in, standard order out, scaled by 1/N).
    fn ntt_inverse(&self, x: &mut PolyBatch) -> Result<()>;

    /// `a + b`, coefficient-wise.
    fn add(&self, a: &PolyBatch, b: &PolyBatch) -> Result<PolyBatch>;

    /// `a - b`, coefficient-wise.
    fn sub(&self, a: &PolyBatch, b: &PolyBatch) -> Result<PolyBatch>;

    /// `-a`, coefficient-wise.
    fn neg(&self, a: &PolyBatch) -> Result<PolyBatch>;

    /// `a ⊙ b`, word-wise product (the ring product when both are in the NTT domain).
    fn mul(&self, a: &PolyBatch, b: &PolyBatch) -> Result<PolyBatch>;

    /// Multiply-accumulate in groups: `a` and `b` hold `groups × terms` polynomials; output `g`
    /// is `Σ_k a[g·terms + k] ⊙ b[g·terms + k]`.
    fn mul_acc(&self, a: &PolyBatch, b: &PolyBatch, groups: usize) -> Result<PolyBatch>;

    /// Prepares a linear layer's weights on the device: `words[j][k][l]`, reduced mod limb `l`.
    fn upload_weights(
        &self,
        ring: &Arc<Ring>,
        outputs: usize,
        inputs: usize,
        words: &[u32],
    ) -> Result<Weights>;

    /// The linear layer: output `j` is `Σ_k w[j][k] · x[k]`, every limb multiplied by its own
    /// scalar word, all outputs in one call.
    fn linear(&self, w: &Weights, x: &PolyBatch) -> Result<PolyBatch>;

    /// Prepares a sparse linear layer of `inputs` inputs on the device.
    fn upload_sparse(
        &self,
        ring: &Arc<Ring>,
        inputs: usize,
        rows: &SparseRows,
    ) -> Result<SparseWeights>;

    /// The sparse linear layer: output `j` is `Σ_e w_e · x[column_e]` over row `j`'s entries,
    /// every limb multiplied by its own word, all outputs in one call.
    fn linear_sparse(&self, w: &SparseWeights, x: &PolyBatch) -> Result<PolyBatch>;

    /// `acc + linear_sparse(w, x)`: a map's products over one block of its inputs added to
    /// the sums of the blocks before (the CPU adds them as it reduces, into `acc`'s memory).
    fn linear_sparse_add(
        &self,
        w: &SparseWeights,
        x: &PolyBatch,
        acc: PolyBatch,
    ) -> Result<PolyBatch> {
        let part = self.linear_sparse(w, x)?;
        self.add(&acc, &part)
    }

    /// The polynomials of every part, in order, as one batch (all parts in one ring).
    fn concat(&self, parts: &[&PolyBatch]) -> Result<PolyBatch>;

    /// Copies polynomials and limbs into a new batch over `x.ring().sub_ring(limbs)`: output
    /// polynomial `o` is limbs `limbs` of input polynomial `sources[o]`, or zero for `None`.
    fn gather(
        &self,
        x: &PolyBatch,
        sources: &[Option<usize>],
        limbs: Range<usize>,
    ) -> Result<PolyBatch>;

    /// Centered fast base conversion of coefficient-domain polynomials: for every digit (a
    /// range of at most 16 of `x`'s limbs) and every input polynomial, the value those limbs
    /// represent (centered, plus a small multiple of their product) in every limb of `to`.
    /// Output is digit-major: polynomial `d · x.batch() + m`.
    fn base_convert(
        &self,
        x: &PolyBatch,
        digits: &[Range<usize>],
        to: &Arc<Ring>,
    ) -> Result<PolyBatch>;

    /// The automorphism `X → X^g` (odd `g < 2N`) of NTT-domain polynomials: a permutation of
    /// the evaluation points.
    fn automorphism(&self, x: &PolyBatch, g: usize) -> Result<PolyBatch>;

    /// `x · mul[l] + add[l]`, limb `l` of every polynomial with its own two words.
    fn scalar_affine(&self, x: &PolyBatch, mul: &[u32], add: &[u32]) -> Result<PolyBatch>;

    /// Uniform polynomials of `ring`, one per stream of `streams`: polynomial k from ChaCha20
    /// keyed by `seed`, stream `streams.start + k`, its words limb after limb, each drawn as
    /// `rand` draws a number below the limb's prime. The masks of seeded encryption, the same
    /// words on every device (a device draws them where they are used; only the key travels).
    fn seeded_masks(
        &self,
        ring: &Arc<Ring>,
        seed: &[u8; 32],
        streams: Range<u64>,
    ) -> Result<PolyBatch>;

    /// Polynomials of small signed coefficients (`coeffs`, N per polynomial) as words of
    /// `ring`, coefficient domain: a device receives the bytes, not the words of every limb.
    fn small_polys(&self, ring: &Arc<Ring>, coeffs: &[i8]) -> Result<PolyBatch>;

    /// The tensor product of ciphertexts: `a` and `b` hold pairs `(x0, x1)` (same ring, same
    /// count); output triple `m` is `(a0 b0, a0 b1 + a1 b0, a1 b1)` of pair `m`, word-wise.
    fn tensor(&self, a: &PolyBatch, b: &PolyBatch) -> Result<PolyBatch>;

    /// The key-switching inner product: `ext` holds `digits × M` polynomials (digit-major),
    /// `key` holds `C × digits`; output polynomial `m · C + c` is
    /// `Σ_d ext[d · M + m] ⊙ key[c · digits + d]`.
    fn key_mul_acc(&self, ext: &PolyBatch, key: &PolyBatch, digits: usize) -> Result<PolyBatch>;

    /// `(a − b) · scale[l]` over `b`'s ring, whose primes are limbs `offset..` of `a`'s ring
    /// (rescaling and the mod-down of key switching).
    fn scaled_difference(
        &self,
        a: &PolyBatch,
        b: &PolyBatch,
        offset: usize,
        scale: &[u32],
    ) -> Result<PolyBatch>;

    /// `base_convert(x, digits, to)`, then [`ntt_forward`](Self::ntt_forward): the mod-up of key
    /// switching. The GPU computes the conversion in the transform's first pass, so the
    /// converted digits never make a round trip through memory; this default runs the two
    /// operations (the CPU twin).
    fn base_convert_ntt(
        &self,
        x: &PolyBatch,
        digits: &[Range<usize>],
        to: &Arc<Ring>,
    ) -> Result<PolyBatch> {
        let mut y = self.base_convert(x, digits, to)?;
        self.ntt_forward(&mut y)?;
        Ok(y)
    }

    /// `scaled_difference(a, b′, offset, scale)` where `b′` is `b` after [`ntt_forward`](Self::ntt_forward):
    /// the end of rescaling and of the mod-down, in `b`'s memory. The GPU folds the difference
    /// into the transform's last pass, so `b′` never makes a round trip through memory; this
    /// default runs the two operations (the CPU twin).
    fn ntt_forward_scaled_difference(
        &self,
        a: &PolyBatch,
        mut b: PolyBatch,
        offset: usize,
        scale: &[u32],
    ) -> Result<PolyBatch> {
        self.ntt_forward(&mut b)?;
        self.scaled_difference(a, &b, offset, scale)
    }
}

/// The number of polynomials [`Backend::seeded_masks`] makes for `streams`: an error when
/// there are none.
pub(crate) fn check_streams(streams: &Range<u64>) -> Result<usize> {
    let count = streams.end.saturating_sub(streams.start);
    if count == 0 || count > u64::from(u32::MAX) {
        return Err(Error::Shape(format!(
            "masks for streams {streams:?}: at least one, at most 2^32"
        )));
    }
    Ok(count as usize)
}

/// The number of polynomials `coeffs` holds for [`Backend::small_polys`]: an error unless it
/// is a whole, non-zero number of polynomials of `ring`.
pub(crate) fn check_small(ring: &Ring, coeffs: &[i8]) -> Result<usize> {
    let n = ring.degree();
    if coeffs.is_empty() || !coeffs.len().is_multiple_of(n) {
        return Err(Error::Shape(format!(
            "{} small coefficients are not whole polynomials of degree {n}",
            coeffs.len()
        )));
    }
    Ok(coeffs.len() / n)
}

/// Checks that `a` and `b` can be multiplied-and-accumulated in `groups` groups; returns terms.
pub(crate) fn mul_acc_terms(a: &PolyBatch, b: &PolyBatch, groups: usize) -> Result<usize> {
    a.check_same_shape(b)?;
    if groups == 0 || !a.batch.is_multiple_of(groups) || a.batch == 0 {
        return Err(crate::Error::Shape(format!(
            "{} polynomials cannot form {groups} equal groups",
            a.batch
        )));
    }
    Ok(a.batch / groups)
}

/// Checks that a linear layer's weights fit its input; returns the ring.
pub(crate) fn check_linear(w: &Weights, x: &PolyBatch) -> Result<()> {
    check_layer_input(&w.ring, w.inputs, x)
}

/// Checks that a layer prepared for `ring` with `inputs` inputs (dense or sparse) fits `x`.
pub(crate) fn check_layer_input(ring: &Ring, inputs: usize, x: &PolyBatch) -> Result<()> {
    if !ring.same_as(&x.ring) {
        return Err(crate::Error::Shape(
            "weights and input are prepared for different rings".into(),
        ));
    }
    if inputs != x.batch {
        return Err(crate::Error::Shape(format!(
            "layer has {inputs} inputs but {} polynomials were given",
            x.batch
        )));
    }
    Ok(())
}
