// Batched negacyclic NTT, in place on `out` ([row][n], row = polynomial * limbs + limb).
// Forward: Cooley–Tukey, standard order in, bit-reversed out. Inverse: Gentleman–Sande,
// bit-reversed in, standard order out, times N^{-1}. Twiddles as in NttPlan: at a stage whose
// butterflies span t, group g uses twiddle number n/(2t) + g. CPU twins: CpuBackend::ntt_forward
// and ntt_inverse (tfhe-ntt), and NttPlan::forward_reference / inverse_reference (this loop).
//
// Stages whose span is at least a tile run one dispatch each over global memory (`*_stage`);
// the remaining stages of a tile run in workgroup memory in one dispatch (`*_local`).

var<workgroup> tile: array<u32, 2048>;

fn twiddle(li: LimbInfo, which: u32, index: u32) -> u32 {
    // which: 0 forward, 1 forward Shoup, 2 inverse, 3 inverse Shoup
    return table[li.tw_offset + (which << params.n_log) + index];
}

// Where global butterfly number `b` of a stage with span 2^log_t reads and writes.
struct Butterfly {
    i0: u32,        // first word (the second is i0 + 2^log_t)
    twiddle: u32,   // index into this limb's twiddle table
    limb: u32,
}

fn butterfly(b: u32, log_t: u32) -> Butterfly {
    let half_log = params.n_log - 1u;
    let row = b >> half_log;
    let k = b & ((1u << half_log) - 1u);
    let g = k >> log_t;
    let i0 = (row << params.n_log) + (g << (log_t + 1u)) + (k & ((1u << log_t) - 1u));
    return Butterfly(i0, (1u << (half_log - log_t)) + g, row % params.limbs);
}

// One global radix-2 stage. total: butterflies in the chunk (rows * N/2); arg0: log2(span).
@compute @workgroup_size(256)
fn ntt_forward_stage(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var b = gid.x; b < params.total; b += nwg.x * WG) {
        let bf = butterfly(b, params.arg0);
        let li = limb_info[bf.limb];
        let i1 = bf.i0 + (1u << params.arg0);
        let u = out[bf.i0];
        let v = mul_shoup(out[i1], twiddle(li, 0u, bf.twiddle), twiddle(li, 1u, bf.twiddle), li.p);
        out[bf.i0] = add_mod(u, v, li.p);
        out[i1] = sub_mod(u, v, li.p);
    }
}

// One global inverse stage; arg1 = 1 on the last stage, which also multiplies by N^{-1}.
@compute @workgroup_size(256)
fn ntt_inverse_stage(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var b = gid.x; b < params.total; b += nwg.x * WG) {
        let bf = butterfly(b, params.arg0);
        let li = limb_info[bf.limb];
        let i1 = bf.i0 + (1u << params.arg0);
        let u = out[bf.i0];
        let v = out[i1];
        var x0 = add_mod(u, v, li.p);
        var x1 = mul_shoup(sub_mod(u, v, li.p), twiddle(li, 2u, bf.twiddle), twiddle(li, 3u, bf.twiddle), li.p);
        if (params.arg1 == 1u) {
            x0 = mul_shoup(x0, li.n_inv, li.n_inv_shoup, li.p);
            x1 = mul_shoup(x1, li.n_inv, li.n_inv_shoup, li.p);
        }
        out[bf.i0] = x0;
        out[i1] = x1;
    }
}

// The last log2(T) forward stages, one tile of T = 2^arg0 words per workgroup iteration.
// total: tiles in the chunk.
@compute @workgroup_size(256)
fn ntt_forward_local(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let log_tile = params.arg0;
    let size = 1u << log_tile;
    let tiles_per_row = 1u << (params.n_log - log_tile);
    for (var tl = wid.x; tl < params.total; tl += nwg.x) {
        let row = tl / tiles_per_row;
        let li = limb_info[row % params.limbs];
        let base = tl << log_tile;                       // first word of the tile in the chunk
        let pos = (tl % tiles_per_row) << log_tile;      // its position in the polynomial
        for (var e = lid; e < size; e += WG) {
            tile[e] = out[base + e];
        }
        workgroupBarrier();
        for (var log_t = log_tile; log_t > 0u; log_t--) {
            let lt = log_t - 1u;
            let t = 1u << lt;
            let groups = 1u << (params.n_log - 1u - lt);
            for (var b = lid; b < size / 2u; b += WG) {
                let g = b >> lt;
                let i0 = (g << (lt + 1u)) + (b & (t - 1u));
                let tw = groups + (pos >> (lt + 1u)) + g;
                let u = tile[i0];
                let v = mul_shoup(tile[i0 + t], twiddle(li, 0u, tw), twiddle(li, 1u, tw), li.p);
                tile[i0] = add_mod(u, v, li.p);
                tile[i0 + t] = sub_mod(u, v, li.p);
            }
            workgroupBarrier();
        }
        for (var e = lid; e < size; e += WG) {
            out[base + e] = tile[e];
        }
        workgroupBarrier();
    }
}

// The first log2(T) inverse stages in workgroup memory; arg1 = 1 when no global stage follows,
// so this pass also multiplies by N^{-1}.
@compute @workgroup_size(256)
fn ntt_inverse_local(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let log_tile = params.arg0;
    let size = 1u << log_tile;
    let tiles_per_row = 1u << (params.n_log - log_tile);
    for (var tl = wid.x; tl < params.total; tl += nwg.x) {
        let row = tl / tiles_per_row;
        let li = limb_info[row % params.limbs];
        let base = tl << log_tile;
        let pos = (tl % tiles_per_row) << log_tile;
        for (var e = lid; e < size; e += WG) {
            tile[e] = out[base + e];
        }
        workgroupBarrier();
        for (var lt = 0u; lt < log_tile; lt++) {
            let t = 1u << lt;
            let groups = 1u << (params.n_log - 1u - lt);
            for (var b = lid; b < size / 2u; b += WG) {
                let g = b >> lt;
                let i0 = (g << (lt + 1u)) + (b & (t - 1u));
                let tw = groups + (pos >> (lt + 1u)) + g;
                let u = tile[i0];
                let v = tile[i0 + t];
                tile[i0] = add_mod(u, v, li.p);
                tile[i0 + t] = mul_shoup(sub_mod(u, v, li.p), twiddle(li, 2u, tw), twiddle(li, 3u, tw), li.p);
            }
            workgroupBarrier();
        }
        for (var e = lid; e < size; e += WG) {
            var x = tile[e];
            if (params.arg1 == 1u) {
                x = mul_shoup(x, li.n_inv, li.n_inv_shoup, li.p);
            }
            out[base + e] = x;
        }
        workgroupBarrier();
    }
}
