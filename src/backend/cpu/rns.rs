//! CPU twins of the RNS kernels in `shaders/rns.wgsl`: gathers, centered base conversion,
//! automorphisms, per-limb affine maps, the key-switching product and scaled differences.

use super::{CpuBackend, lanes};
use crate::Result;
use crate::backend::batch::PolyBatch;
use crate::backend::rns_ops::{
    ConversionTable, TENSOR_TERMS, check_concat, check_gather, check_key_mul_acc,
    check_limb_scalars, check_scaled_difference, check_tensor, conversion_tables,
};
use crate::math::{Ring, automorphism_source, check_galois_element};
use std::ops::Range;
use std::sync::Arc;

impl CpuBackend {
    /// Concatenation (a copy; no kernel).
    pub(super) fn concat_rows(&self, parts: &[&PolyBatch]) -> Result<PolyBatch> {
        let (ring, total) = check_concat(parts)?;
        let pw = ring.poly_words();
        let mut out = self.buffers.take(total * pw, false);
        // Polynomial o of the output is polynomial o − start of the part that holds it; the
        // copy runs on every thread (a fresh large output is page faults more than copying).
        let mut starts = Vec::with_capacity(parts.len());
        let mut hosts = Vec::with_capacity(parts.len());
        let mut at = 0;
        for p in parts {
            starts.push(at);
            hosts.push(self.host(p)?);
            at += p.batch();
        }
        self.rows_mut(&mut out, pw, |o, dst| {
            let k = starts.partition_point(|&s| s <= o) - 1;
            let from = (o - starts[k]) * pw;
            dst.copy_from_slice(&hosts[k][from..from + pw]);
        });
        Ok(self.wrap(&ring, total, out))
    }

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
        let mut out = self.buffers.take(sources.len() * pw, false);
        self.rows_mut(&mut out, pw, |o, dst| match sources[o] {
            Some(s) => {
                let at = s * in_pw + limbs.start * n;
                dst.copy_from_slice(&input[at..at + pw]);
            }
            None => dst.fill(0),
        });
        Ok(self.wrap(&ring, sources.len(), out))
    }

    /// Twin of `base_convert`.
    pub(super) fn base_convert_rows(
        &self,
        x: &PolyBatch,
        digits: &[Range<usize>],
        to: &Arc<Ring>,
    ) -> Result<PolyBatch> {
        let tables = conversion_tables(x, digits, to, &self.conversions)?;
        let input = self.host(x)?;
        let (n, in_pw, pw, m_count) = (to.degree(), x.ring.poly_words(), to.poly_words(), x.batch);
        let mut out = self.buffers.take(digits.len() * m_count * pw, false);
        self.rows_mut(&mut out, pw, |o, dst| {
            let (d, m) = (o / m_count, o % m_count);
            let src = &input[m * in_pw + digits[d].start * n..m * in_pw + digits[d].end * n];
            convert_poly(&tables[d], n, src, dst);
        });
        Ok(self.wrap(to, digits.len() * m_count, out))
    }

    /// Twin of `automorphism_ntt`.
    pub(super) fn automorphism_rows(&self, x: &PolyBatch, g: usize) -> Result<PolyBatch> {
        let n = x.ring.degree();
        check_galois_element(n, g)?;
        let log_n = n.trailing_zeros();
        let index: Vec<usize> = (0..n).map(|i| automorphism_source(log_n, g, i)).collect();
        let input = self.host(x)?;
        let mut out = self.buffers.take(input.len(), false);
        self.rows_mut(&mut out, n, |row, dst| {
            let src = &input[row * n..(row + 1) * n];
            for (d, &i) in dst.iter_mut().zip(&index) {
                *d = src[i];
            }
        });
        Ok(self.wrap(&x.ring, x.batch, out))
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
        let mut out = self.buffers.take(input.len(), false);
        self.rows_mut(&mut out, n, |row, dst| {
            let l = row % ring.limbs();
            let m = ring.modulus(l);
            let (w, ws, a) = (mul[l], m.shoup(mul[l]), add[l]);
            let src = &input[row * n..(row + 1) * n];
            lanes::affine(dst, src, (w, ws, a), m.value());
        });
        Ok(self.wrap(ring, x.batch, out))
    }

    /// Twin of `ct_tensor`.
    pub(super) fn tensor_rows(&self, a: &PolyBatch, b: &PolyBatch) -> Result<PolyBatch> {
        let pairs = check_tensor(a, b)?;
        let (xa, xb) = (self.host(a)?, self.host(b)?);
        let ring = &a.ring;
        let (n, limbs, pw) = (ring.degree(), ring.limbs(), ring.poly_words());
        let mut out = self.buffers.take(3 * pairs * pw, true);
        self.rows_mut(&mut out, n, |row, dst| {
            let (o, l) = (row / limbs, row % limbs);
            let (m, c) = (o / 3, o % 3);
            for &(i, j) in TENSOR_TERMS[c] {
                let (ia, ib) = ((2 * m + i) * pw + l * n, (2 * m + j) * pw + l * n);
                ring.plans()[l].mul_accumulate(dst, &xa[ia..ia + n], &xb[ib..ib + n]);
            }
        });
        Ok(self.wrap(ring, 3 * pairs, out))
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
        let mut out = self.buffers.take(m_count * c_count * pw, true);
        self.rows_mut(&mut out, n, |row, dst| {
            let (o, l) = (row / limbs, row % limbs);
            let (m, c) = (o / c_count, o % c_count);
            for d in 0..digits {
                let e = (d * m_count + m) * pw + l * n;
                let k = (c * digits + d) * pw + l * n;
                ring.plans()[l].mul_accumulate(dst, &xe[e..e + n], &xk[k..k + n]);
            }
        });
        Ok(self.wrap(ring, m_count * c_count, out))
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
        let mut out = self.buffers.take(xb.len(), false);
        self.rows_mut(&mut out, n, |row, dst| {
            let (poly, l) = (row / limbs, row % limbs);
            let m = ring.modulus(l);
            let (w, ws) = (scale[l], m.shoup(scale[l]));
            let at = poly * a_pw + (offset + l) * n;
            let src_a = &xa[at..at + n];
            let src_b = &xb[row * n..(row + 1) * n];
            lanes::sub_scale(dst, src_a, src_b, (w, ws), m.value());
        });
        Ok(self.wrap(ring, b.batch, out))
    }
}

/// Converts one polynomial's digit (`src`: `[source limb][n]`) into every target limb (`dst`:
/// `[target limb][n]`), row by row so the loops vectorise.
fn convert_poly(table: &ConversionTable, n: usize, src: &[u32], dst: &mut [u32]) {
    let mut y = vec![0u32; src.len()];
    for (i, m) in table.source().iter().enumerate() {
        let w = table.hat_inv(i);
        let (row, x) = (&mut y[i * n..(i + 1) * n], &src[i * n..(i + 1) * n]);
        lanes::shift_scale(row, x, table.half_source[i], (w, m.shoup(w)), m.value());
    }
    for (j, t) in table.base.to().iter().enumerate() {
        let row = &mut dst[j * n..(j + 1) * n];
        let (weights, p) = (&table.base.q_hat_mod_p()[j], t.value());
        // First term and the centering shift in one pass, then the other terms.
        let h = p - table.half_target[j];
        lanes::affine(row, &y[..n], (weights[0], t.shoup(weights[0]), h % p), p);
        for (i, &w) in weights.iter().enumerate().skip(1) {
            lanes::mul_add(row, &y[i * n..(i + 1) * n], (w, t.shoup(w)), p);
        }
    }
}
