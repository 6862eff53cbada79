// hegpu prelude: prepended to every kernel file. Bindings shared by every entry point and
// modular arithmetic on u32 words; `mul_hi` comes from mul_hi_u64.wgsl where the adapter has
// 64-bit integers (SHADER_INT64), else from mul_hi_u32.wgsl (WGSL in browsers has none).
// The same algorithms are in src/math/modulus.rs (mul_wide, mul_shoup, mul_montgomery),
// where they are checked against u64 arithmetic.

// Per-dispatch parameters, at a dynamic offset in one buffer; each kernel documents what
// `total` and `arg0..arg11` mean for it, and `arg12` is out_start's flag.
struct Params {
    n_log: u32,   // log2 of the ring degree N
    limbs: u32,   // RNS limbs per polynomial
    total: u32,   // work items in this dispatch (grid-stride loops cover them all)
    arg0: u32,
    arg1: u32,
    arg2: u32,
    arg3: u32,
    arg4: u32,
    arg5: u32,
    arg6: u32,
    arg7: u32,
    arg8: u32,
    arg9: u32,
    arg10: u32,
    arg11: u32,
    arg12: u32,
}

// Constants of one limb's prime (see Modulus and NttPlan on the CPU).
struct LimbInfo {
    p: u32,
    p_inv_neg: u32,      // -p^{-1} mod 2^32
    r_mod_p: u32,        // 2^32 mod p
    r_mod_p_shoup: u32,  // floor(r_mod_p * 2^32 / p)
    n_inv: u32,          // N^{-1} mod p
    n_inv_shoup: u32,
    tw_offset: u32,      // start of this limb's twiddles in `table`: fwd, fwd', inv, inv' (N words each)
    one_shoup: u32,      // floor(2^32 / p): mul_shoup(a, 1, one_shoup) reduces any u32 a
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> limb_info: array<LimbInfo>;
@group(0) @binding(2) var<storage, read> table: array<u32>;   // twiddles or weights
@group(0) @binding(3) var<storage, read> in_a: array<u32>;
@group(0) @binding(4) var<storage, read> in_b: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<u32>;

const WG: u32 = 256u;

// Where an accumulating kernel starts output word i: from what `out` holds when arg12 is 1, from
// zero on the first dispatch into an output chunk (arg12 = 0), so the host never clears it.
fn out_start(i: u32) -> u32 {
    if (params.arg12 == 1u) {
        return out[i];
    }
    return 0u;
}

fn add_mod(a: u32, b: u32, p: u32) -> u32 {
    let s = a + b;
    return select(s, s - p, s >= p);
}

fn sub_mod(a: u32, b: u32, p: u32) -> u32 {
    return select(a - b, a + p - b, a < b);
}

// a * w mod p in [0, 2p), with ws = floor(w * 2^32 / p) (Shoup).
fn mul_shoup_lazy(a: u32, w: u32, ws: u32, p: u32) -> u32 {
    return a * w - mul_hi(a, ws) * p;
}

fn mul_shoup(a: u32, w: u32, ws: u32, p: u32) -> u32 {
    let r = mul_shoup_lazy(a, w, ws, p);
    return select(r, r - p, r >= p);
}

// a * b mod p for two variables: Montgomery reduction of the 64-bit product, then a Shoup
// multiplication by 2^32 mod p to leave the Montgomery domain.
fn mul_mod(a: u32, b: u32, li: LimbInfo) -> u32 {
    let lo = a * b;
    let hi = mul_hi(a, b);
    let m = lo * li.p_inv_neg;
    let t0 = hi + mul_hi(m, li.p) + select(0u, 1u, lo != 0u);
    let t = select(t0, t0 - li.p, t0 >= li.p);
    return mul_shoup(t, li.r_mod_p, li.r_mod_p_shoup, li.p);
}

// (hi * 2^32 + lo) mod p, for a sum of lazy products kept in two words.
fn reduce_wide(lo: u32, hi: u32, li: LimbInfo) -> u32 {
    let high = mul_shoup(hi, li.r_mod_p, li.r_mod_p_shoup, li.p);
    return add_mod(high, mul_shoup(lo, 1u, li.one_shoup, li.p), li.p);
}

// The centered fast base conversion, read from in_b (the conversion table): per digit a header
// [offset, first source limb, source limbs, 0], then at each offset the digit's per source limb
// [s, (S/s)^-1, Shoup, ⌊S/2⌋ mod s], ⌊S/2⌋ mod t per target limb, and [target][source] pairs
// (S/s mod t, Shoup). The input is in_a; the target limbs are this dispatch's ring.
// The first word of digit d of input polynomial m (in_limbs limbs a polynomial) in in_a.
fn digit_source(d: u32, m: u32, in_limbs: u32) -> u32 {
    return (m * in_limbs + in_b[4u * d + 1u]) << params.n_log;
}

// Coefficient k of target limb j of digit d, whose first source word is src:
// Σ_i [(x_i + ⌊S/2⌋)(S/s_i)^-1 mod s_i] (S/s_i) − ⌊S/2⌋ mod t_j.
fn convert_word(d: u32, src: u32, k: u32, j: u32) -> u32 {
    let base = in_b[4u * d];
    let s_count = in_b[4u * d + 2u];
    let halves = base + 4u * s_count;
    let matrix = halves + params.limbs;
    let t = limb_info[j].p;
    var acc = 0u;
    for (var i = 0u; i < s_count; i++) {
        let at = base + 4u * i;
        let s = in_b[at];
        let x = add_mod(in_a[src + (i << params.n_log) + k], in_b[at + 3u], s);
        let y = mul_shoup(x, in_b[at + 1u], in_b[at + 2u], s);
        let w = matrix + 2u * (j * s_count + i);
        acc = add_mod(acc, mul_shoup(y, in_b[w], in_b[w + 1u], t), t);
    }
    return sub_mod(acc, in_b[halves + j], t);
}

fn limb_of_word(i: u32) -> LimbInfo {
    return limb_info[(i >> params.n_log) % params.limbs];
}
