// RNS kernels for CKKS: gathers, centered base conversion, automorphisms, per-limb affine maps,
// the key-switching product and scaled differences. Kernels that read another batch than they
// write run once per (output chunk, input chunk) pair and touch only the outputs whose inputs
// lie in that input chunk. CPU twins: src/backend/cpu/rns.rs (same names, `_rows`).

// gather_polys: output polynomial o = limbs [arg1, arg1 + limbs) of input polynomial table[o]
// (0xffffffff: none, the output is zero). total: words of the output chunk; arg0: first
// polynomial of the output chunk; arg2: limbs of an input polynomial; arg3: first polynomial of
// the input chunk; arg4: polynomials in the input chunk.
@compute @workgroup_size(256)
fn gather_polys(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let pw = params.limbs << params.n_log;
    let in_pw = params.arg2 << params.n_log;
    for (var i = gid.x; i < params.total; i += nwg.x * WG) {
        let src = table[params.arg0 + i / pw];
        if (src < params.arg3 || src - params.arg3 >= params.arg4) {
            if (params.arg12 == 0u) {
                out[i] = 0u; // the first dispatch into this chunk writes every word
            }
            continue;
        }
        out[i] = in_a[(src - params.arg3) * in_pw + (params.arg1 << params.n_log) + i % pw];
    }
}

// base_convert: the centered fast base conversion of every digit (see convert_word in the
// prelude), one output polynomial per workgroup row (gid.y): output polynomial o = d * M + m is
// digit d of input polynomial m in every limb of the target ring. in_b: the conversion table.
// total: N; arg0: the dispatch's first output polynomial; arg1: first polynomial of the output
// chunk; arg2: M (polynomials per digit); arg3, arg4: first polynomial and count of the input
// chunk; arg5: limbs of an input polynomial. CPU twin: CpuBackend::base_convert_rows.
@compute @workgroup_size(256)
fn base_convert(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = params.arg0 + gid.y;
    let d = o / params.arg2;
    let m = o - d * params.arg2;
    if (m < params.arg3 || m - params.arg3 >= params.arg4) {
        return;
    }
    let src = digit_source(d, m - params.arg3, params.arg5);
    let dst0 = (o - params.arg1) * (params.limbs << params.n_log);
    for (var k = gid.x; k < params.total; k += nwg.x * WG) {
        for (var j = 0u; j < params.limbs; j++) {
            out[dst0 + (j << params.n_log) + k] = convert_word(d, src, k, j);
        }
    }
}

// automorphism_ntt: X -> X^g on NTT-domain polynomials. Position i holds the evaluation at
// psi^(2 brv(i) + 1), so it takes the input at brv(((2 brv(i) + 1) g mod 2N - 1) / 2).
// total: words in the chunk; arg0: g.
@compute @workgroup_size(256)
fn automorphism_ntt(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = 1u << params.n_log;
    let shift = 32u - params.n_log;
    let mask = 2u * n - 1u;
    for (var i = gid.x; i < params.total; i += nwg.x * WG) {
        let k = i % n;
        let e = ((2u * (reverseBits(k) >> shift) + 1u) * params.arg0) & mask;
        let src = reverseBits((e - 1u) / 2u) >> shift;
        out[i] = in_a[i - k + src];
    }
}

// scalar_affine: x * m + a per limb; table: per limb [m, Shoup(m), a, 0]. total: words.
@compute @workgroup_size(256)
fn scalar_affine(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < params.total; i += nwg.x * WG) {
        let l = (i >> params.n_log) % params.limbs;
        let p = limb_info[l].p;
        let at = 4u * l;
        out[i] = add_mod(mul_shoup(in_a[i], table[at], table[at + 1u], p), table[at + 2u], p);
    }
}

// ct_tensor: out triple m += (a0 b0, a0 b1 + a1 b0, a1 b1) of pair m, over the factors present
// in this pair of input chunks (from out_start). in_a, in_b: chunks of a and b.
// total: words of the output chunk; arg0: its first polynomial; arg1, arg2: first polynomial
// and count of the a chunk; arg3, arg4: the same of the b chunk.
fn tensor_term(acc: u32, ia: u32, ib: u32, w: u32, pw: u32, li: LimbInfo) -> u32 {
    if (ia < params.arg1 || ia - params.arg1 >= params.arg2 || ib < params.arg3 || ib - params.arg3 >= params.arg4) {
        return acc;
    }
    let x = in_a[(ia - params.arg1) * pw + w];
    let y = in_b[(ib - params.arg3) * pw + w];
    return add_mod(acc, mul_mod(x, y, li), li.p);
}

@compute @workgroup_size(256)
fn ct_tensor(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let pw = params.limbs << params.n_log;
    for (var i = gid.x; i < params.total; i += nwg.x * WG) {
        let o = params.arg0 + i / pw;
        let w = i % pw;
        let li = limb_of_word(w);
        let first = 2u * (o / 3u);
        let c = o % 3u;
        var acc = out_start(i);
        if (c == 0u) {
            acc = tensor_term(acc, first, first, w, pw, li);
        } else if (c == 1u) {
            acc = tensor_term(acc, first, first + 1u, w, pw, li);
            acc = tensor_term(acc, first + 1u, first, w, pw, li);
        } else {
            acc = tensor_term(acc, first + 1u, first + 1u, w, pw, li);
        }
        out[i] = acc;
    }
}

// key_mul_acc: out[m*C + c] += Σ_d ext[d*M + m] ⊙ key[c*D + d] over the terms whose ext and key
// polynomials lie in this pair of chunks (from out_start). in_a: ext chunk; in_b: key
// chunk. total: words of the output chunk; arg0: its first polynomial; arg1: C; arg2: D; arg3: M;
// arg4, arg5: first polynomial and count of the ext chunk; arg6, arg7: the same of the key chunk.
@compute @workgroup_size(256)
fn key_mul_acc(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let pw = params.limbs << params.n_log;
    for (var i = gid.x; i < params.total; i += nwg.x * WG) {
        let o = params.arg0 + i / pw;
        let w = i % pw;
        let li = limb_of_word(w);
        let m = o / params.arg1;
        let c = o % params.arg1;
        var acc = out_start(i);
        for (var d = 0u; d < params.arg2; d++) {
            let e = d * params.arg3 + m;
            let k = c * params.arg2 + d;
            if (e < params.arg4 || e - params.arg4 >= params.arg5 || k < params.arg6 || k - params.arg6 >= params.arg7) {
                continue;
            }
            let x = in_a[(e - params.arg4) * pw + w];
            acc = add_mod(acc, mul_mod(x, in_b[(k - params.arg6) * pw + w], li), li.p);
        }
        out[i] = acc;
    }
}

// scaled_difference: out = (a - b) * scale per limb, where b's limbs are a's limbs from arg4.
// in_a: a chunk; in_b: b's chunk matching the output chunk; table: per limb [scale, Shoup].
// total: words of the output chunk; arg0: its first polynomial; arg1, arg2: first polynomial
// and count of the a chunk; arg3: limbs of an a polynomial.
@compute @workgroup_size(256)
fn scaled_difference(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let pw = params.limbs << params.n_log;
    let a_pw = params.arg3 << params.n_log;
    for (var i = gid.x; i < params.total; i += nwg.x * WG) {
        let o = params.arg0 + i / pw;
        if (o < params.arg1 || o - params.arg1 >= params.arg2) {
            continue;
        }
        let w = i % pw;
        let l = w >> params.n_log;
        let p = limb_info[l].p;
        let x = in_a[(o - params.arg1) * a_pw + (params.arg4 << params.n_log) + w];
        out[i] = mul_shoup(sub_mod(x, in_b[i], p), table[2u * l], table[2u * l + 1u], p);
    }
}
