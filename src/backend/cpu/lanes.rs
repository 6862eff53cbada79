//! Row kernels written so LLVM vectorises them: each public function dispatches through
//! `pulp` to a copy compiled for the best SIMD level found at run time (AVX2, AVX-512), whose
//! loop uses branch-free corrections `min(r, r − p)` and Shoup products from one widening
//! multiply. Each computes exactly what [`Modulus`](crate::math::Modulus) computes word by word.

/// `r mod p` for `r < 2p`.
#[inline(always)]
pub(super) fn fold(r: u32, p: u32) -> u32 {
    r.min(r.wrapping_sub(p))
}

/// `a − b mod p` for reduced inputs.
#[inline(always)]
fn diff(a: u32, b: u32, p: u32) -> u32 {
    let d = a.wrapping_sub(b);
    d.min(d.wrapping_add(p))
}

/// `a · w mod p` by Shoup (`ws = ⌊w·2^32/p⌋`), fully reduced; `a` may be any word.
#[inline(always)]
pub(super) fn shoup(a: u32, w: u32, ws: u32, p: u32) -> u32 {
    let q = ((u64::from(a) * u64::from(ws)) >> 32) as u32;
    fold(a.wrapping_mul(w).wrapping_sub(q.wrapping_mul(p)), p)
}

/// Runs `f` compiled for the best SIMD level of this CPU (callers mark their closures
/// `#[inline(always)]` so the loop body is generated inside the dispatched function).
#[inline(always)]
fn simd(f: impl FnOnce()) {
    pulp::Arch::new().dispatch(f);
}

/// `out = a + b mod p`.
pub(super) fn add(out: &mut [u32], a: &[u32], b: &[u32], p: u32) {
    simd(
        #[inline(always)]
        || {
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = fold(x + y, p);
            }
        },
    )
}

/// `out = a − b mod p`.
pub(super) fn sub(out: &mut [u32], a: &[u32], b: &[u32], p: u32) {
    simd(
        #[inline(always)]
        || {
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = diff(x, y, p);
            }
        },
    )
}

/// `out = x · w + c mod p` (`ws` the Shoup companion of `w`, `c < p`).
pub(super) fn affine(out: &mut [u32], x: &[u32], (w, ws, c): (u32, u32, u32), p: u32) {
    simd(
        #[inline(always)]
        || {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = fold(shoup(v, w, ws, p) + c, p);
            }
        },
    )
}

/// `out = (a − b) · w mod p`.
pub(super) fn sub_scale(out: &mut [u32], a: &[u32], b: &[u32], (w, ws): (u32, u32), p: u32) {
    simd(
        #[inline(always)]
        || {
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = shoup(diff(x, y, p), w, ws, p);
            }
        },
    )
}

/// `acc = acc + y · w mod p` (`y` any words).
pub(super) fn mul_add(acc: &mut [u32], y: &[u32], (w, ws): (u32, u32), p: u32) {
    simd(
        #[inline(always)]
        || {
            for (a, &v) in acc.iter_mut().zip(y) {
                *a = fold(*a + shoup(v, w, ws, p), p);
            }
        },
    )
}

/// `out = ((x + h) mod s) · w mod s`: the first step of a centered base conversion.
pub(super) fn shift_scale(out: &mut [u32], x: &[u32], h: u32, (w, ws): (u32, u32), s: u32) {
    simd(
        #[inline(always)]
        || {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = shoup(fold(v + h, s), w, ws, s);
            }
        },
    )
}
