//! CPU twins of the RNS kernels in `shaders/rns.wgsl`: gathers, centered base conversion,
//! automorphisms, per-limb affine maps, the key-switching product and scaled differences.

use super::CpuBackend;
use crate::backend::batch::PolyBatch;
use crate::backend::ring::Ring;
use crate::backend::rns_ops::{
    ConversionTable, automorphism_source, check_galois_element, check_gather, check_key_mul_acc,
    check_limb_scalars, check_scaled_difference, conversion_tables,
};
use crate::math::Modulus;
use crate::Result;
use std::ops::Range;
use std::sync::Arc;

impl CpuBackend {
    /// Twin of `gather_polys`.
    pub(super) fn gather_rows(
        &self,
        x: &PolyBatch,
        sources: &[Option<usize>],
        limbs: Range<usize>,
    ) -> Result<PolyBatch> {
        let ring = check_gather(x, sources, &limbs)?;
        let input = self.host(x)?;
        let (n, in_pw, pw) = (ring.degree(), x.ring.poly_words(), ring.poly_words());
        let mut out = vec![0u32; sources.len() * pw];
        self.rows_mut(&mut out, pw, |o, dst| {
            if let Some(s) = sources[o] {
                let at = s * in_pw + limbs.start * n;
                dst.copy_from_slice(&input[at..at + pw]);
            }
        });
        Ok(Self::wrap(&ring, sources.len(), out))
    }

    /// Twin of `base_convert`.
    pub(super) fn base_convert_rows(
        &self,
        x: &PolyBatch,
        digits: &[Range<usize>],
        to: &Arc<Ring>,
    ) -> Result<PolyBatch> {
        let tables = conversion_tables(x, digits, to)?;
        let input = self.host(x)?;
        let (n, in_pw, pw, m_count) = (to.degree(), x.ring.poly_words(), to.poly_words(), x.batch);
        let mut out = vec![0u32; digits.len() * m_count * pw];
        self.rows_mut(&mut out, pw, |o, dst| {
            let (d, m) = (o / m_count, o % m_count);
            let src = &input[m * in_pw + digits[d].start * n..m * in_pw + digits[d].end * n];
            pulp::Arch::new().dispatch(
                #[inline(always)]
                || convert_poly(&tables[d], n, src, dst),
            );
        });
        Ok(Self::wrap(to, digits.len() * m_count, out))
    }

    /// Twin of `automorphism_ntt`.
    pub(super) fn automorphism_rows(&self, x: &PolyBatch, g: usize) -> Result<PolyBatch> {
        let n = x.ring.degree();
        check_galois_element(n, g)?;
        let log_n = n.trailing_zeros();
        let index: Vec<usize> = (0..n).map(|i| automorphism_source(log_n, g, i)).collect();
        let input = self.host(x)?;
        let mut out = vec![0u32; input.len()];
        self.rows_mut(&mut out, n, |row, dst| {
            let src = &input[row * n..(row + 1) * n];
            for (d, &i) in dst.iter_mut().zip(&index) {
                *d = src[i];
            }
        });
        Ok(Self::wrap(&x.ring, x.batch, out))
    }

    /// Twin of `scalar_affine`.
    pub(super) fn scalar_affine_rows(
        &self,
        x: &PolyBatch,
        mul: &[u32],
        add: &[u32],
    ) -> Result<PolyBatch> {
        check_limb_scalars(&x.ring, mul, "multiplier")?;
        check_limb_scalars(&x.ring, add, "addend")?;
        let ring = &x.ring;
        let input = self.host(x)?;
        let n = ring.degree();
        let mut out = vec![0u32; input.len()];
        self.rows_mut(&mut out, n, |row, dst| {
            let l = row % ring.limbs();
            let m = ring.modulus(l);
            let (w, ws, a) = (mul[l], m.shoup(mul[l]), add[l]);
            for (d, &v) in dst.iter_mut().zip(&input[row * n..(row + 1) * n]) {
                *d = m.add(m.mul_shoup(v, w, ws), a);
            }
        });
        Ok(Self::wrap(ring, x.batch, out))
    }

    /// Twin of `key_mul_acc`.
    pub(super) fn key_mul_acc_rows(
        &self,
        ext: &PolyBatch,
        key: &PolyBatch,
        digits: usize,
    ) -> Result<PolyBatch> {
        let (c_count, m_count) = check_key_mul_acc(ext, key, digits)?;
        let (xe, xk) = (self.host(ext)?, self.host(key)?);
        let ring = &ext.ring;
        let (n, limbs, pw) = (ring.degree(), ring.limbs(), ring.poly_words());
        let mut out = vec![0u32; m_count * c_count * pw];
        self.rows_mut(&mut out, n, |row, dst| {
            let (o, l) = (row / limbs, row % limbs);
            let (m, c) = (o / c_count, o % c_count);
            for d in 0..digits {
                let e = (d * m_count + m) * pw + l * n;
                let k = (c * digits + d) * pw + l * n;
                ring.plans()[l].mul_accumulate(dst, &xe[e..e + n], &xk[k..k + n]);
            }
        });
        Ok(Self::wrap(ring, m_count * c_count, out))
    }

    /// Twin of `scaled_difference`.
    pub(super) fn scaled_difference_rows(
        &self,
        a: &PolyBatch,
        b: &PolyBatch,
        offset: usize,
        scale: &[u32],
    ) -> Result<PolyBatch> {
        check_scaled_difference(a, b, offset, scale)?;
        let (xa, xb) = (self.host(a)?, self.host(b)?);
        let ring = &b.ring;
        let (n, limbs, a_pw) = (ring.degree(), ring.limbs(), a.ring.poly_words());
        let mut out = vec![0u32; xb.len()];
        self.rows_mut(&mut out, n, |row, dst| {
            let (poly, l) = (row / limbs, row % limbs);
            let m = ring.modulus(l);
            let (w, ws) = (scale[l], m.shoup(scale[l]));
            let at = poly * a_pw + (offset + l) * n;
            let src_a = &xa[at..at + n];
            let src_b = &xb[row * n..(row + 1) * n];
            for ((d, &u), &v) in dst.iter_mut().zip(src_a).zip(src_b) {
                *d = m.mul_shoup(m.sub(u, v), w, ws);
            }
        });
        Ok(Self::wrap(ring, b.batch, out))
    }
}

/// Converts one polynomial's digit (`src`: `[source limb][n]`) into every target limb (`dst`:
/// `[target limb][n]`), row by row so the loops vectorise.
#[inline(always)]
fn convert_poly(table: &ConversionTable, n: usize, src: &[u32], dst: &mut [u32]) {
    let mut y = vec![0u32; src.len()];
    for (i, m) in table.source.iter().enumerate() {
        let (w, ws, h) = (table.hat_inv[i], m.shoup(table.hat_inv[i]), table.half_source[i]);
        for (yv, &x) in y[i * n..(i + 1) * n].iter_mut().zip(&src[i * n..(i + 1) * n]) {
            *yv = m.mul_shoup(m.add(x, h), w, ws);
        }
    }
    for (j, t) in table.target.iter().enumerate() {
        let row = &mut dst[j * n..(j + 1) * n];
        row.fill(0);
        for (i, &w) in table.hat_mod_target[j].iter().enumerate() {
            accumulate_shoup(t, row, &y[i * n..(i + 1) * n], w);
        }
        let h = table.half_target[j];
        row.iter_mut().for_each(|v| *v = t.sub(*v, h));
    }
}

/// `acc += y · w mod t`, word by word (`y` may exceed `t`: Shoup products take any word).
#[inline(always)]
fn accumulate_shoup(t: &Modulus, acc: &mut [u32], y: &[u32], w: u32) {
    let ws = t.shoup(w);
    for (a, &v) in acc.iter_mut().zip(y) {
        *a = t.add(*a, t.mul_shoup(v, w, ws));
    }
}
