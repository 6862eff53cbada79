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

// linear_sparse: affine layers (dense or sparse rows), one tile of outputs that read the same
// inputs per workgroup row (gid.y), one coefficient of every output of the tile per thread: each
// input word loaded feeds up to SPARSE_TILE products, summed as lazy Shoup products in two words
// and reduced once. Terms whose input lies outside this input chunk are skipped; the bias is added
// with the chunk that holds input 0. Table (built by gpu/linear.rs): per tile a header of 8 words
// (first column, columns, first output, outputs, first weight), the columns, the outputs, the
// (w, Shoup) pairs [column][limb][output in tile] of each tile, then the bias [output][limb].
// total: words per polynomial; arg0: the dispatch's first tile; arg1, arg2: first input and count
// of the input chunk; arg3: first output of the output chunk; arg4: where the bias starts;
// arg5: 1 when there is a bias. CPU twin: CpuBackend::linear_rows (linear and linear_sparse).
const SPARSE_TILE: u32 = 32u;

@compute @workgroup_size(256)
fn linear_sparse(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let h = (params.arg0 + gid.y) * 8u;
    let first_col = table[h];
    let cols = table[h + 1u];
    let first_out = table[h + 2u];
    let outs = table[h + 3u];
    let first_weight = table[h + 4u];
    for (var w = gid.x; w < params.total; w += nwg.x * WG) {
        let l = w >> params.n_log;
        let li = limb_info[l];
        var lo: array<u32, SPARSE_TILE>;
        var hi: array<u32, SPARSE_TILE>;
        for (var c = 0u; c < cols; c++) {
            let k = table[first_col + c];
            if (k < params.arg1 || k - params.arg1 >= params.arg2) {
                continue;
            }
            let x = in_a[(k - params.arg1) * params.total + w];
            let at = first_weight + 2u * (c * params.limbs + l) * outs;
            for (var u = 0u; u < SPARSE_TILE; u++) {
                if (u < outs) {
                    let r = mul_shoup_lazy(x, table[at + 2u * u], table[at + 2u * u + 1u], li.p);
                    lo[u] += r;
                    hi[u] += select(0u, 1u, lo[u] < r);
                }
            }
        }
        for (var u = 0u; u < SPARSE_TILE; u++) {
            if (u < outs) {
                let j = table[first_out + u];
                let i = (j - params.arg3) * params.total + w;
                var v = reduce_wide(lo[u], hi[u], li);
                if (params.arg5 == 1u && params.arg1 == 0u) {
                    v = add_mod(v, table[params.arg4 + j * params.limbs + l], li.p);
                }
                out[i] = add_mod(out_start(i), v, li.p);
            }
        }
    }
}
