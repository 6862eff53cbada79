// Sampling on the device, word for word as the host samples: the uniform masks of seeded
// encryption (ChaCha20 keyed by the seed, one stream per polynomial, word k of a polynomial
// from draws 2k and 2k + 1) and polynomials of small signed coefficients. CPU twins:
// CpuBackend::{seeded_masks, small_polys} (src/backend/cpu/sampling.rs).

// seeded_masks: shape.total = blocks of this chunk (a ChaCha20 block of 16 draws makes 8 words;
// limbs·N/8 blocks per polynomial); `chacha_key` the seed's eight little-endian words; the stream
// of the chunk's polynomial k is (stream_hi << 32 | stream_lo) + first_poly + k.
struct SeededMasksParams {
    shape: Shape,
    stream_lo: u32,   // the batch's first stream, low word
    stream_hi: u32,   // and high word
    first_poly: u32,  // the chunk's first polynomial in the batch
}

@group(0) @binding(0) var<uniform> masks: SeededMasksParams;
@group(0) @binding(2) var<storage, read> chacha_key: array<u32>;

// small_polys: shape.total words of this chunk; `coefficients` the chunk's coefficients as
// signed bytes, four per word, little-endian, polynomial after polynomial.
struct SmallPolysParams {
    shape: Shape,
}

@group(0) @binding(0) var<uniform> small: SmallPolysParams;
@group(0) @binding(2) var<storage, read> coefficients: array<u32>;

fn rotl(x: u32, r: u32) -> u32 {
    return (x << r) | (x >> (32u - r));
}

fn quarter_round(x: ptr<function, array<u32, 16>>, a: u32, b: u32, c: u32, d: u32) {
    (*x)[a] += (*x)[b]; (*x)[d] = rotl((*x)[d] ^ (*x)[a], 16u);
    (*x)[c] += (*x)[d]; (*x)[b] = rotl((*x)[b] ^ (*x)[c], 12u);
    (*x)[a] += (*x)[b]; (*x)[d] = rotl((*x)[d] ^ (*x)[a], 8u);
    (*x)[c] += (*x)[d]; (*x)[b] = rotl((*x)[b] ^ (*x)[c], 7u);
}

fn double_round(x: ptr<function, array<u32, 16>>) {
    quarter_round(x, 0u, 4u, 8u, 12u);
    quarter_round(x, 1u, 5u, 9u, 13u);
    quarter_round(x, 2u, 6u, 10u, 14u);
    quarter_round(x, 3u, 7u, 11u, 15u);
    quarter_round(x, 0u, 5u, 10u, 15u);
    quarter_round(x, 1u, 6u, 11u, 12u);
    quarter_round(x, 2u, 7u, 8u, 13u);
    quarter_round(x, 3u, 4u, 9u, 14u);
}

// Canon's method as `below` in src/backend/cpu/sampling.rs: ⌊(x·2^32 + y)·p / 2^64⌋.
fn below(x: u32, y: u32, p: u32) -> u32 {
    let low = x * p;
    let carried = low + mul_hi(y, p);
    return mul_hi(x, p) + select(0u, 1u, carried < low);
}

@compute @workgroup_size(256)
fn seeded_masks(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let prm = masks;
    let per_poly = (prm.shape.limbs << prm.shape.n_log) / 8u;
    for (var t = gid.x; t < prm.shape.total; t += nwg.x * WG) {
        let poly = t / per_poly;
        let counter = t % per_poly;
        let offset = prm.first_poly + poly;
        let stream_lo = prm.stream_lo + offset;
        let stream_hi = prm.stream_hi + select(0u, 1u, stream_lo < offset);
        let s = array<u32, 16>(
            0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u,
            chacha_key[0], chacha_key[1], chacha_key[2], chacha_key[3],
            chacha_key[4], chacha_key[5], chacha_key[6], chacha_key[7],
            counter, 0u, stream_lo, stream_hi);
        // The ten double rounds written out: Mesa's llvmpipe ends a shader's loops after 65,535
        // iterations shared by all of them (LP_MAX_TGSI_LOOP_ITERATIONS), so loops stay short.
        var x = s;
        double_round(&x); double_round(&x); double_round(&x); double_round(&x);
        double_round(&x); double_round(&x); double_round(&x); double_round(&x);
        double_round(&x); double_round(&x);
        // Words 8·counter … 8·counter + 7 of the polynomial, all in one limb (N ≥ 8).
        let first = 8u * counter;
        let p = limb_info[first >> prm.shape.n_log].p;
        let base = poly * (prm.shape.limbs << prm.shape.n_log) + first;
        for (var i = 0u; i < 8u; i++) {
            out[base + i] = below(x[2u * i] + s[2u * i], x[2u * i + 1u] + s[2u * i + 1u], p);
        }
    }
}

@compute @workgroup_size(256)
fn small_polys(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let shape = small.shape;
    let n = 1u << shape.n_log;
    for (var i = gid.x; i < shape.total; i += nwg.x * WG) {
        let c = (i / (shape.limbs * n)) * n + (i & (n - 1u));
        let byte = (coefficients[c / 4u] >> (8u * (c % 4u))) & 0xffu;
        let p = limb_of_word(i, shape).p;
        // A negative byte b stands for b − 256: p − (256 − b).
        out[i] = select(byte, p - (256u - byte), byte >= 128u);
    }
}
