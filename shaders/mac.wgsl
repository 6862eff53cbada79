// Multiply-accumulate kernels. Each adds into `out` from out_start (zero on the first dispatch
// into an output chunk), so one output can gather terms from several input chunks.

// poly_mul_acc: out[g] += Σ_k a[g*K + k] ⊙ b[g*K + k] over the terms present in this input chunk.
// total: words of the output chunk; arg0: K (terms per group); arg1: first group of the output
// chunk; arg2: first polynomial of the input chunk; arg3: polynomials in the input chunk.
// CPU twin: CpuBackend::mul_acc.
@compute @workgroup_size(256)
fn poly_mul_acc(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let pw = params.limbs << params.n_log;
    let terms = params.arg0;
    for (var i = gid.x; i < params.total; i += nwg.x * WG) {
        let g = params.arg1 + i / pw;
        let w = i % pw;
        let li = limb_of_word(w);
        let first = g * terms;
        let lo = max(first, params.arg2);
        let hi = min(first + terms, params.arg2 + params.arg3);
        var acc = out_start(i);
        for (var poly = lo; poly < hi; poly++) {
            let at = (poly - params.arg2) * pw + w;
            acc = add_mod(acc, mul_mod(in_a[at], in_b[at], li), li.p);
        }
        out[i] = acc;
    }
}

// linear_layer: out[j] += Σ_k w[j][k] · x[k] for the inputs in this chunk, every limb with its own
// scalar word; weights in `table` as [j][k][limb] pairs (w, Shoup companion). One thread owns
// one coefficient of up to four outputs, so each input word it loads feeds four products.
// total: threads = ceil(outputs in chunk / 4) * words per polynomial; arg0: K (all inputs);
// arg1: first output of the output chunk; arg2: outputs in the output chunk; arg3: first input
// of the input chunk; arg4: inputs in the input chunk. CPU twin: CpuBackend::linear.
const TILE_OUT: u32 = 4u;

@compute @workgroup_size(256)
fn linear_layer(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let pw = params.limbs << params.n_log;
    for (var t = gid.x; t < params.total; t += nwg.x * WG) {
        let j_local = (t / pw) * TILE_OUT;
        let w = t % pw;
        let l = w >> params.n_log;
        let p = limb_info[l].p;
        let count = min(TILE_OUT, params.arg2 - j_local);
        var acc: array<u32, 4>;
        for (var u = 0u; u < count; u++) {
            acc[u] = out_start((j_local + u) * pw + w);
        }
        for (var k = 0u; k < params.arg4; k++) {
            let x = in_a[k * pw + w];
            let kk = params.arg3 + k;
            for (var u = 0u; u < count; u++) {
                let at = (((params.arg1 + j_local + u) * params.arg0 + kk) * params.limbs + l) * 2u;
                acc[u] = add_mod(acc[u], mul_shoup(x, table[at], table[at + 1u], p), p);
            }
        }
        for (var u = 0u; u < count; u++) {
            out[(j_local + u) * pw + w] = acc[u];
        }
    }
}

// linear_sparse: out[j] += Σ_e w_e · x[column_e] over row j's entries whose input lies in this
// chunk, plus bias[j] (with the chunk holding input 0, so it is added once). table: offsets
// (J+1 words), then columns (arg4 words), then (w, Shoup) pairs [entry][limb], then, when arg5
// is 1, the bias [output][limb]. total: words of the output chunk; arg0: its first output; arg1,
// arg2: first input and count of the input chunk; arg3: J; arg4: entries; arg5: 1 when there
// is a bias. CPU twin: CpuBackend::linear_sparse.
@compute @workgroup_size(256)
fn linear_sparse(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let pw = params.limbs << params.n_log;
    let columns = params.arg3 + 1u;
    let pairs = columns + params.arg4;
    for (var i = gid.x; i < params.total; i += nwg.x * WG) {
        let j = params.arg0 + i / pw;
        let w = i % pw;
        let l = w >> params.n_log;
        let p = limb_info[l].p;
        var acc = out_start(i);
        if (params.arg5 == 1u && params.arg1 == 0u) {
            acc = add_mod(acc, table[pairs + 2u * params.arg4 * params.limbs + j * params.limbs + l], p);
        }
        for (var e = table[j]; e < table[j + 1u]; e++) {
            let k = table[columns + e];
            if (k < params.arg1 || k - params.arg1 >= params.arg2) {
                continue;
            }
            let at = pairs + 2u * (e * params.limbs + l);
            acc = add_mod(acc, mul_shoup(in_a[(k - params.arg1) * pw + w], table[at], table[at + 1u], p), p);
        }
        out[i] = acc;
    }
}
