// Multiply-accumulate kernels. Each adds into `out` from out_start (zero on the first dispatch
// into an output chunk), so one output can gather terms from several input chunks.

// poly_mul_acc: out[g] += Σ_k factors_a[g*K + k] ⊙ factors_b[g*K + k] over the terms present in
// this input chunk (K = terms). shape.total: words of the output chunk. CPU twin:
// CpuBackend::mul_acc.
struct PolyMulAccParams {
    shape: Shape,
    terms: u32,      // K, products summed per output polynomial
    out_first: u32,  // the output chunk's first polynomial
    in_first: u32,   // the input chunks' first polynomial
    in_count: u32,   // polynomials in the input chunks
}

@group(0) @binding(0) var<uniform> mul_acc: PolyMulAccParams;
@group(0) @binding(3) var<storage, read> factors_a: array<u32>;
@group(0) @binding(4) var<storage, read> factors_b: array<u32>;

@compute @workgroup_size(256)
fn poly_mul_acc(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let prm = mul_acc;
    let pw = prm.shape.limbs << prm.shape.n_log;
    for (var i = gid.x; i < prm.shape.total; i += nwg.x * WG) {
        let g = prm.out_first + i / pw;
        let w = i % pw;
        let li = limb_of_word(w, prm.shape);
        let first = g * prm.terms;
        let lo = max(first, prm.in_first);
        let hi = min(first + prm.terms, prm.in_first + prm.in_count);
        var acc = out_start(i, prm.shape);
        for (var poly = lo; poly < hi; poly++) {
            let at = (poly - prm.in_first) * pw + w;
            acc = add_mod(acc, mul_mod(factors_a[at], factors_b[at], li), li.p);
        }
        out[i] = acc;
    }
}

// linear_sparse: affine layers (dense or sparse rows), one tile of outputs that read the same
// inputs per workgroup row (gid.y), one coefficient of every output of the tile per thread: each
// input word loaded feeds up to SPARSE_TILE products, summed as lazy Shoup products in two words
// and reduced once. Terms whose input lies outside this input chunk are skipped; the bias is added
// with the chunk that holds input 0. `weights` (built by gpu/linear.rs): per tile a header of 8
// words (first column, columns, first output, outputs, first weight), the columns, the outputs,
// the (w, Shoup) pairs [column][limb][output in tile] of each tile, then the bias [output][limb].
// shape.total: words per polynomial. CPU twin: CpuBackend::linear_rows (linear and linear_sparse).
struct LinearSparseParams {
    shape: Shape,
    first_tile: u32,  // the dispatch's first tile of outputs
    in_first: u32,    // the input chunk's first polynomial
    in_count: u32,    // polynomials in the input chunk
    out_first: u32,   // the output chunk's first polynomial
    bias_at: u32,     // where the bias starts in `weights`
    has_bias: u32,    // 1 when the map has a bias
}

const SPARSE_TILE: u32 = 32u;

@group(0) @binding(0) var<uniform> sparse: LinearSparseParams;
@group(0) @binding(2) var<storage, read> weights: array<u32>;
@group(0) @binding(3) var<storage, read> inputs: array<u32>;

@compute @workgroup_size(256)
fn linear_sparse(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let prm = sparse;
    let words = prm.shape.total;
    let h = (prm.first_tile + gid.y) * 8u;
    let first_col = weights[h];
    let cols = weights[h + 1u];
    let first_out = weights[h + 2u];
    let outs = weights[h + 3u];
    let first_weight = weights[h + 4u];
    for (var w = gid.x; w < words; w += nwg.x * WG) {
        let l = w >> prm.shape.n_log;
        let li = limb_info[l];
        var lo: array<u32, SPARSE_TILE>;
        var hi: array<u32, SPARSE_TILE>;
        for (var c = 0u; c < cols; c++) {
            let k = weights[first_col + c];
            if (k < prm.in_first || k - prm.in_first >= prm.in_count) {
                continue;
            }
            let x = inputs[(k - prm.in_first) * words + w];
            let at = first_weight + 2u * (c * prm.shape.limbs + l) * outs;
            for (var u = 0u; u < SPARSE_TILE; u++) {
                if (u < outs) {
                    let r = mul_shoup_lazy(x, weights[at + 2u * u], weights[at + 2u * u + 1u], li.p);
                    lo[u] += r;
                    hi[u] += select(0u, 1u, lo[u] < r);
                }
            }
        }
        for (var u = 0u; u < SPARSE_TILE; u++) {
            if (u < outs) {
                let j = weights[first_out + u];
                let i = (j - prm.out_first) * words + w;
                var v = reduce_wide(lo[u], hi[u], li);
                if (prm.has_bias == 1u && prm.in_first == 0u) {
                    v = add_mod(v, weights[prm.bias_at + j * prm.shape.limbs + l], li.p);
                }
                out[i] = add_mod(out_start(i, prm.shape), v, li.p);
            }
        }
    }
}
