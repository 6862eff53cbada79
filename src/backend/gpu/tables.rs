//! Per-ring constants on the GPU: one `LimbInfo` per limb and the twiddle tables, uploaded once
//! per device and ring and then shared by every batch of that ring.

use crate::math::Ring;

/// Words in one `LimbInfo` (see `shaders/prelude.wgsl`).
const LIMB_INFO_WORDS: usize = 8;

/// `LimbInfo` records and twiddles (`[limb][fwd, fwd', inv, inv'][n]`) as host words.
pub(crate) fn ring_tables(ring: &Ring) -> (Vec<u32>, Vec<u32>) {
    let n = ring.degree();
    let mut info = Vec::with_capacity(ring.limbs() * LIMB_INFO_WORDS);
    let mut twiddles = Vec::with_capacity(ring.limbs() * 4 * n);
    for plan in ring.plans() {
        let m = plan.modulus();
        let (r, r_shoup) = m.r_mod_p();
        let (n_inv, n_inv_shoup) = plan.n_inv();
        let offset = twiddles.len() as u32;
        info.extend([
            m.value(),
            m.p_inv_neg(),
            r,
            r_shoup,
            n_inv,
            n_inv_shoup,
            offset,
            m.shoup(1),
        ]);
        let (fwd, fwd_shoup) = plan.forward_twiddles();
        let (inv, inv_shoup) = plan.inverse_twiddles();
        for table in [fwd, fwd_shoup, inv, inv_shoup] {
            twiddles.extend_from_slice(table);
        }
    }
    (info, twiddles)
}

/// The ring's tables resident on one device.
pub(crate) struct GpuRingTables {
    pub limb_info: wgpu::Buffer,
    pub twiddles: wgpu::Buffer,
}
