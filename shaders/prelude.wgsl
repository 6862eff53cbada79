// hegpu prelude: prepended to every kernel file. Bindings shared by every entry point and
// modular arithmetic on u32 words; `mul_hi` comes from mul_hi_u64.wgsl where the adapter has
// 64-bit integers (SHADER_INT64), else from mul_hi_u32.wgsl (WGSL in browsers has none).
// The same algorithms are in src/math/modulus.rs (mul_wide, mul_shoup, mul_montgomery),
// where they are checked against u64 arithmetic.

// The ring's shape and the dispatch's extent: the first member of every kernel's parameter
// struct (each kernel's own, at binding 0, named in its file; mirrored by src/backend/gpu/params.rs).
struct Shape {
    n_log: u32,       // log2 of the ring degree N
    limbs: u32,       // RNS limbs per polynomial
    total: u32,       // work items in this dispatch (grid-stride loops cover them all)
    accumulate: u32,  // 1: an accumulating kernel adds to what `out` holds (see out_start)
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

// Bindings: 0 the kernel's parameters, 2–4 its inputs (each file names them per kernel; an entry
// point binds one name per slot), and these two, the same for every kernel.
@group(0) @binding(1) var<storage, read> limb_info: array<LimbInfo>;
@group(0) @binding(5) var<storage, read_write> out: array<u32>;

const WG: u32 = 256u;

// Where an accumulating kernel starts output word i: from what `out` holds when the shape says
// so, from zero on the first dispatch into an output chunk, so the host never clears it.
fn out_start(i: u32, shape: Shape) -> u32 {
    if (shape.accumulate == 1u) {
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

// The limb constants of word i of a chunk laid out [poly][limb][n].
fn limb_of_word(i: u32, shape: Shape) -> LimbInfo {
    return limb_info[(i >> shape.n_log) % shape.limbs];
}
