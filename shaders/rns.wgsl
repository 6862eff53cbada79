// RNS kernels for CKKS: gathers, centered base conversion, automorphisms, per-limb affine maps,
// the key-switching product and scaled differences. Kernels that read another batch than they
// write run once per (output chunk, input chunk) pair and touch only the outputs whose inputs
// lie in that input chunk. CPU twins: src/backend/cpu/rns.rs (same names, `_rows`).

// gather_polys: output polynomial o = limbs [first_limb, first_limb + limbs) of source polynomial
// sources[o] (NO_SOURCE: none, the output is zero). shape.total: words of the output chunk.
struct GatherPolysParams {
    shape: Shape,
    out_first: u32,   // the output chunk's first polynomial
    first_limb: u32,  // the first limb taken from each source
    in_limbs: u32,    // limbs of a source polynomial
    in_first: u32,    // the input chunk's first polynomial
    in_count: u32,    // polynomials in the input chunk
}

const NO_SOURCE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> gather: GatherPolysParams;
@group(0) @binding(2) var<storage, read> sources: array<u32>;
@group(0) @binding(3) var<storage, read> polys: array<u32>;

@compute @workgroup_size(256)
fn gather_polys(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let prm = gather;
    let pw = prm.shape.limbs << prm.shape.n_log;
    let in_pw = prm.in_limbs << prm.shape.n_log;
    for (var i = gid.x; i < prm.shape.total; i += nwg.x * WG) {
        let src = sources[prm.out_first + i / pw];
        // NO_SOURCE is never within an input chunk.
        if (src < prm.in_first || src - prm.in_first >= prm.in_count) {
            if (prm.shape.accumulate == 0u) {
                out[i] = 0u; // the first dispatch into this chunk writes every word
            }
            continue;
        }
        out[i] = polys[(src - prm.in_first) * in_pw + (prm.first_limb << prm.shape.n_log) + i % pw];
    }
}

// base_convert: the centered fast base conversion of every digit (conversion.wgsl), one output
// polynomial per workgroup row (gid.y): output polynomial o = d * M + m is digit d of input
// polynomial m in every limb of the target ring (M = digit_polys). shape.total: N. CPU twin:
// CpuBackend::base_convert_rows.
struct BaseConvertParams {
    shape: Shape,
    first: u32,        // the dispatch's first output polynomial
    out_first: u32,    // the output chunk's first polynomial
    digit_polys: u32,  // M, output polynomials per digit
    in_first: u32,     // the input chunk's first polynomial
    in_count: u32,     // polynomials in the input chunk
    in_limbs: u32,     // limbs of an input polynomial
}

@group(0) @binding(0) var<uniform> convert: BaseConvertParams;

@compute @workgroup_size(256)
fn base_convert(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let prm = convert;
    let o = prm.first + gid.y;
    let d = o / prm.digit_polys;
    let m = o - d * prm.digit_polys;
    if (m < prm.in_first || m - prm.in_first >= prm.in_count) {
        return;
    }
    let src = digit_source(d, m - prm.in_first, prm.in_limbs, prm.shape);
    let dst0 = (o - prm.out_first) * (prm.shape.limbs << prm.shape.n_log);
    for (var k = gid.x; k < prm.shape.total; k += nwg.x * WG) {
        for (var j = 0u; j < prm.shape.limbs; j++) {
            out[dst0 + (j << prm.shape.n_log) + k] = convert_word(d, src, k, j, prm.shape);
        }
    }
}

// automorphism_ntt: X -> X^g on NTT-domain polynomials. Position i holds the evaluation at
// psi^(2 brv(i) + 1), so it takes the input at brv(((2 brv(i) + 1) g mod 2N - 1) / 2).
// shape.total: words in the chunk.
struct AutomorphismParams {
    shape: Shape,
    galois: u32,  // g
}

@group(0) @binding(0) var<uniform> automorphism: AutomorphismParams;
@group(0) @binding(3) var<storage, read> input: array<u32>;

@compute @workgroup_size(256)
fn automorphism_ntt(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let prm = automorphism;
    let n = 1u << prm.shape.n_log;
    let shift = 32u - prm.shape.n_log;
    let mask = 2u * n - 1u;
    for (var i = gid.x; i < prm.shape.total; i += nwg.x * WG) {
        let k = i % n;
        let e = ((2u * (reverseBits(k) >> shift) + 1u) * prm.galois) & mask;
        let src = reverseBits((e - 1u) / 2u) >> shift;
        out[i] = input[i - k + src];
    }
}

// scalar_affine: input * m + a per limb; `affine`: per limb [m, Shoup(m), a, 0].
// shape.total: words.
struct ScalarAffineParams {
    shape: Shape,
}

@group(0) @binding(0) var<uniform> scalar: ScalarAffineParams;
@group(0) @binding(2) var<storage, read> affine: array<u32>;

@compute @workgroup_size(256)
fn scalar_affine(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let shape = scalar.shape;
    for (var i = gid.x; i < shape.total; i += nwg.x * WG) {
        let l = (i >> shape.n_log) % shape.limbs;
        let p = limb_info[l].p;
        let at = 4u * l;
        out[i] = add_mod(mul_shoup(input[i], affine[at], affine[at + 1u], p), affine[at + 2u], p);
    }
}

// ct_tensor: out triple m += (a0 b0, a0 b1 + a1 b0, a1 b1) of pair m, over the factors present
// in this pair of input chunks `tensor_a`, `tensor_b` (from out_start). shape.total: words of
// the output chunk.
struct CtTensorParams {
    shape: Shape,
    out_first: u32,  // the output chunk's first polynomial
    a_first: u32,    // first polynomial and count of the a chunk
    a_count: u32,
    b_first: u32,    // the same of the b chunk
    b_count: u32,
}

@group(0) @binding(0) var<uniform> tensor: CtTensorParams;
@group(0) @binding(3) var<storage, read> tensor_a: array<u32>;
@group(0) @binding(4) var<storage, read> tensor_b: array<u32>;

fn tensor_term(acc: u32, ia: u32, ib: u32, w: u32, pw: u32, li: LimbInfo, prm: CtTensorParams) -> u32 {
    if (ia < prm.a_first || ia - prm.a_first >= prm.a_count || ib < prm.b_first || ib - prm.b_first >= prm.b_count) {
        return acc;
    }
    let x = tensor_a[(ia - prm.a_first) * pw + w];
    let y = tensor_b[(ib - prm.b_first) * pw + w];
    return add_mod(acc, mul_mod(x, y, li), li.p);
}

@compute @workgroup_size(256)
fn ct_tensor(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let prm = tensor;
    let pw = prm.shape.limbs << prm.shape.n_log;
    for (var i = gid.x; i < prm.shape.total; i += nwg.x * WG) {
        let o = prm.out_first + i / pw;
        let w = i % pw;
        let li = limb_of_word(w, prm.shape);
        let first = 2u * (o / 3u);
        let c = o % 3u;
        var acc = out_start(i, prm.shape);
        if (c == 0u) {
            acc = tensor_term(acc, first, first, w, pw, li, prm);
        } else if (c == 1u) {
            acc = tensor_term(acc, first, first + 1u, w, pw, li, prm);
            acc = tensor_term(acc, first + 1u, first, w, pw, li, prm);
        } else {
            acc = tensor_term(acc, first + 1u, first + 1u, w, pw, li, prm);
        }
        out[i] = acc;
    }
}

// key_mul_acc: out[m*C + c] += Σ_d ext[d*M + m] ⊙ key[c*D + d] over the terms whose ext and key
// polynomials lie in this pair of chunks (from out_start). shape.total: words of the output chunk.
struct KeyMulAccParams {
    shape: Shape,
    out_first: u32,    // the output chunk's first polynomial
    outputs: u32,      // C, output polynomials per input
    digits: u32,       // D
    digit_polys: u32,  // M, extended polynomials per digit
    ext_first: u32,    // first polynomial and count of the ext chunk
    ext_count: u32,
    key_first: u32,    // the same of the key chunk
    key_count: u32,
}

@group(0) @binding(0) var<uniform> key_switch: KeyMulAccParams;
@group(0) @binding(3) var<storage, read> ext: array<u32>;
@group(0) @binding(4) var<storage, read> key: array<u32>;

@compute @workgroup_size(256)
fn key_mul_acc(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let prm = key_switch;
    let pw = prm.shape.limbs << prm.shape.n_log;
    for (var i = gid.x; i < prm.shape.total; i += nwg.x * WG) {
        let o = prm.out_first + i / pw;
        let w = i % pw;
        let li = limb_of_word(w, prm.shape);
        let m = o / prm.outputs;
        let c = o % prm.outputs;
        var acc = out_start(i, prm.shape);
        for (var d = 0u; d < prm.digits; d++) {
            let e = d * prm.digit_polys + m;
            let k = c * prm.digits + d;
            if (e < prm.ext_first || e - prm.ext_first >= prm.ext_count || k < prm.key_first || k - prm.key_first >= prm.key_count) {
                continue;
            }
            let x = ext[(e - prm.ext_first) * pw + w];
            acc = add_mod(acc, mul_mod(x, key[(k - prm.key_first) * pw + w], li), li.p);
        }
        out[i] = acc;
    }
}

// scaled_difference: out = (a - b) * scale per limb, where b's limbs are a's limbs from
// a_first_limb. `minuend`: a chunk; `subtrahend`: b's chunk matching the output chunk; `scales`:
// per limb [scale, Shoup]. shape.total: words of the output chunk.
struct ScaledDifferenceParams {
    shape: Shape,
    out_first: u32,     // the output chunk's first polynomial
    a_first: u32,       // first polynomial and count of the a chunk
    a_count: u32,
    a_limbs: u32,       // limbs of an a polynomial
    a_first_limb: u32,  // the limb of a this ring's first limb is
}

@group(0) @binding(0) var<uniform> difference: ScaledDifferenceParams;
@group(0) @binding(2) var<storage, read> scales: array<u32>;
@group(0) @binding(3) var<storage, read> minuend: array<u32>;
@group(0) @binding(4) var<storage, read> subtrahend: array<u32>;

@compute @workgroup_size(256)
fn scaled_difference(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let prm = difference;
    let pw = prm.shape.limbs << prm.shape.n_log;
    let a_pw = prm.a_limbs << prm.shape.n_log;
    for (var i = gid.x; i < prm.shape.total; i += nwg.x * WG) {
        let o = prm.out_first + i / pw;
        if (o < prm.a_first || o - prm.a_first >= prm.a_count) {
            continue;
        }
        let w = i % pw;
        let l = w >> prm.shape.n_log;
        let p = limb_info[l].p;
        let x = minuend[(o - prm.a_first) * a_pw + (prm.a_first_limb << prm.shape.n_log) + w];
        out[i] = mul_shoup(sub_mod(x, subtrahend[i], p), scales[2u * l], scales[2u * l + 1u], p);
    }
}
