// Batched negacyclic NTT, in place on `out` ([row][n], row = polynomial * limbs + limb), in at
// most two passes over global memory. Forward: Cooley–Tukey, standard order in, bit-reversed
// out. Inverse: Gentleman–Sande, bit-reversed in, standard order out, times N^{-1}. Twiddles as
// in NttPlan: at a stage whose butterflies span t, group g uses twiddle number n/(2t) + g. CPU
// twins: CpuBackend::ntt_forward and ntt_inverse (tfhe-ntt), and NttPlan::forward_reference /
// inverse_reference (these loops).
//
// A workgroup holds a tile of T words in workgroup memory (T: the largest power of two the
// adapter's workgroup storage holds, up to 2^13; set when the kernels are compiled). The stages
// whose butterflies span less than T work on T consecutive words (`*_local`): one pass when
// N <= T. The k = log2(N/T) stages with longer spans work on columns: words j, j + T, j + 2T, …
// of a row are one column of 2^k words, and a tile holds T / 2^k neighbouring columns
// (`*_columns`), so loads and stores stay coalesced. Forward runs columns then local; inverse
// local then columns, and its last pass multiplies by N^{-1}.

const NTT_TILE_WORDS: u32 = 2048u;
var<workgroup> tile: array<u32, NTT_TILE_WORDS>;

// The passes' parameters. shape.total: tiles in the chunk.
struct NttParams {
    shape: Shape,
    size_log: u32,            // log2 of the words per column (column passes) or per tile (local)
    width_log: u32,           // column passes: log2 of the columns per tile
    scale_n_inv: u32,         // inverse local pass: 1 when no column pass follows (it scales by N^-1)
    mode: u32,                // NTT_PLAIN, NTT_SCALED_DIFFERENCE or NTT_CONVERSION
    out_first: u32,           // the chunk's first polynomial
    operand_first: u32,       // the first polynomial of the `operand` chunk
    operand_limbs: u32,       // limbs of an `operand` polynomial
    operand_first_limb: u32,  // scaled difference: the limb of `a` this ring's first limb is
    digit_polys: u32,         // conversion: output polynomials per digit
}

// What a pass folds in (NttParams::mode): nothing; (last forward pass) a scaled difference,
// `operand` being `a` and `operand_table` the scales; (first forward pass) a base conversion of
// `operand` with the table `operand_table` (conversion.wgsl).
const NTT_PLAIN: u32 = 0u;
const NTT_SCALED_DIFFERENCE: u32 = 1u;
const NTT_CONVERSION: u32 = 2u;

@group(0) @binding(0) var<uniform> ntt: NttParams;
@group(0) @binding(2) var<storage, read> twiddles: array<u32>;

fn twiddle(li: LimbInfo, which: u32, index: u32) -> u32 {
    // which: 0 forward, 1 forward Shoup, 2 inverse, 3 inverse Shoup
    return twiddles[li.tw_offset + (which << ntt.shape.n_log) + index];
}

// Where a column tile starts and how it is laid out: 2^k words per column (k = size_log),
// 2^width_log columns per tile.
struct ColumnTile {
    base: u32,       // first word of the tile's first column in the chunk
    col_log: u32,    // log2 of the distance between a column's words (T)
    width_log: u32,  // log2 of the columns in the tile
    size: u32,       // words in the tile
}

fn column_tile(tl: u32) -> ColumnTile {
    let k = ntt.size_log;
    let width_log = ntt.width_log;
    let col_log = ntt.shape.n_log - k;
    let per_row_log = col_log - width_log;
    let row = tl >> per_row_log;
    let j0 = (tl & ((1u << per_row_log) - 1u)) << width_log;
    return ColumnTile((row << ntt.shape.n_log) + j0, col_log, width_log, 1u << (k + width_log));
}

// Word e of a column tile (e = m * width + column) in the chunk.
fn column_word(ct: ColumnTile, e: u32) -> u32 {
    let m = e >> ct.width_log;
    return ct.base + (m << ct.col_log) + (e & ((1u << ct.width_log) - 1u));
}

// Butterfly b of a column tile at a stage spanning 2^h words of a column: its first word in the
// tile and its twiddle number, 2^(k-1-h) + (m >> (h + 1)) for the column position m.
fn column_butterfly(b: u32, h: u32, width_log: u32) -> vec2<u32> {
    let k = ntt.size_log;
    let q = b >> width_log;
    let m = ((q >> h) << (h + 1u)) | (q & ((1u << h) - 1u));
    let i0 = (m << width_log) | (b & ((1u << width_log) - 1u));
    return vec2<u32>(i0, (1u << (k - 1u - h)) + (m >> (h + 1u)));
}

// Loads a column tile into workgroup memory (converted, see `converted`).
fn load_columns(ct: ColumnTile, lid: u32) {
    let row = ct.base >> ntt.shape.n_log;
    let first = ct.base - (row << ntt.shape.n_log);
    if (ntt.mode == NTT_CONVERSION) {
        let src = conversion_of(row);
        for (var e = lid; e < ct.size; e += WG) {
            tile[e] = convert_word(src.x, src.y, column_word(ct, e) - ct.base + first, src.z, ntt.shape);
        }
    } else {
        for (var e = lid; e < ct.size; e += WG) {
            tile[e] = out[column_word(ct, e)];
        }
    }
    workgroupBarrier();
}

// A forward transform's first pass may compute its input instead of loading it (NTT_CONVERSION):
// row r of this chunk is target limb r % limbs of output polynomial o = out_first + r / limbs,
// which is digit d = o / digit_polys of polynomial m = o % digit_polys of `operand`,
// base-converted (conversion.wgsl). Returns (d, first source word, target limb). CPU twin of
// that: base_convert, then ntt_forward.
fn conversion_of(row: u32) -> vec3<u32> {
    let o = ntt.out_first + row / ntt.shape.limbs;
    let d = o / ntt.digit_polys;
    let m = o - d * ntt.digit_polys;
    let src = digit_source(d, m - ntt.operand_first, ntt.operand_limbs, ntt.shape);
    return vec3<u32>(d, src, row % ntt.shape.limbs);
}

// One stage of a column tile spanning 2^h words of a column: forward (Cooley–Tukey) or inverse
// (Gentleman–Sande) butterflies.
fn column_stage(ct: ColumnTile, lid: u32, h: u32, li: LimbInfo, forward: bool) {
    let span = 1u << (h + ct.width_log);
    for (var b = lid; b < ct.size / 2u; b += WG) {
        let bf = column_butterfly(b, h, ct.width_log);
        var r: vec2<u32>;
        if (forward) {
            r = ct_pair(tile[bf.x], tile[bf.x + span], bf.y, li);
        } else {
            r = gs_pair(tile[bf.x], tile[bf.x + span], bf.y, li);
        }
        tile[bf.x] = r.x;
        tile[bf.x + span] = r.y;
    }
    workgroupBarrier();
}

// The first k forward stages (spans N/2 … N/2^k), on column tiles.
@compute @workgroup_size(256)
fn ntt_forward_columns(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let k = ntt.size_log;
    for (var tl = wid.x; tl < ntt.shape.total; tl += nwg.x) {
        let ct = column_tile(tl);
        let li = limb_info[(ct.base >> ntt.shape.n_log) % ntt.shape.limbs];
        load_columns(ct, lid);
        for (var h = k; h > 0u; h--) {
            column_stage(ct, lid, h - 1u, li, true);
        }
        for (var e = lid; e < ct.size; e += WG) {
            out[column_word(ct, e)] = tile[e];
        }
        workgroupBarrier();
    }
}

// The last k inverse stages (spans N/2^k … N/2) on column tiles, times N^{-1}.
@compute @workgroup_size(256)
fn ntt_inverse_columns(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let k = ntt.size_log;
    for (var tl = wid.x; tl < ntt.shape.total; tl += nwg.x) {
        let ct = column_tile(tl);
        let li = limb_info[(ct.base >> ntt.shape.n_log) % ntt.shape.limbs];
        load_columns(ct, lid);
        for (var h = 0u; h < k; h++) {
            column_stage(ct, lid, h, li, false);
        }
        for (var e = lid; e < ct.size; e += WG) {
            out[column_word(ct, e)] = mul_shoup(tile[e], li.n_inv, li.n_inv_shoup, li.p);
        }
        workgroupBarrier();
    }
}

// Butterflies on a tile of consecutive words at position `pos` of its polynomial: a forward or
// inverse radix-2 stage spanning 2^lt words, or a radix-4 step (the stages spanning 2^(l0+1)
// and 2^l0 words, forward in that order, inverse in the other), each thread holding 4 words in
// registers: half the barriers and half the workgroup-memory traffic of two radix-2 stages.
// Twiddle of a stage spanning 2^lt at tile word i: n/2^(lt+1) + (pos + i) / 2^(lt+1).
fn tile_twiddle(lt: u32, pos: u32, i: u32) -> u32 {
    return (1u << (ntt.shape.n_log - 1u - lt)) + ((pos + i) >> (lt + 1u));
}

fn forward_radix2(lid: u32, size: u32, lt: u32, pos: u32, li: LimbInfo) {
    let t = 1u << lt;
    for (var b = lid; b < size / 2u; b += WG) {
        let i0 = ((b >> lt) << (lt + 1u)) | (b & (t - 1u));
        let r = ct_pair(tile[i0], tile[i0 + t], tile_twiddle(lt, pos, i0), li);
        tile[i0] = r.x;
        tile[i0 + t] = r.y;
    }
}

fn inverse_radix2(lid: u32, size: u32, lt: u32, pos: u32, li: LimbInfo) {
    let t = 1u << lt;
    for (var b = lid; b < size / 2u; b += WG) {
        let i0 = ((b >> lt) << (lt + 1u)) | (b & (t - 1u));
        let r = gs_pair(tile[i0], tile[i0 + t], tile_twiddle(lt, pos, i0), li);
        tile[i0] = r.x;
        tile[i0 + t] = r.y;
    }
}

// Loads `size` consecutive words from `base` into workgroup memory (converted in NTT_CONVERSION
// mode, see conversion_of).
fn load_words(base: u32, size: u32, lid: u32) {
    if (ntt.mode == NTT_CONVERSION) {
        let row = base >> ntt.shape.n_log;
        let src = conversion_of(row);
        let first = base - (row << ntt.shape.n_log);
        for (var e = lid; e < size; e += WG) {
            tile[e] = convert_word(src.x, src.y, first + e, src.z, ntt.shape);
        }
    } else {
        for (var e = lid; e < size; e += WG) {
            tile[e] = out[base + e];
        }
    }
    workgroupBarrier();
}

// Forward butterfly u + w v, u − w v with twiddle number tw.
fn ct_pair(u: u32, v: u32, tw: u32, li: LimbInfo) -> vec2<u32> {
    let x = mul_shoup(v, twiddle(li, 0u, tw), twiddle(li, 1u, tw), li.p);
    return vec2<u32>(add_mod(u, x, li.p), sub_mod(u, x, li.p));
}

// Inverse butterfly u + v, (u − v) w with twiddle number tw.
fn gs_pair(u: u32, v: u32, tw: u32, li: LimbInfo) -> vec2<u32> {
    let d = mul_shoup(sub_mod(u, v, li.p), twiddle(li, 2u, tw), twiddle(li, 3u, tw), li.p);
    return vec2<u32>(add_mod(u, v, li.p), d);
}

fn forward_radix4(lid: u32, size: u32, l0: u32, pos: u32, li: LimbInfo) {
    let t = 1u << l0;
    for (var q = lid; q < size / 4u; q += WG) {
        let a = ((q >> l0) << (l0 + 2u)) | (q & (t - 1u));
        let wide = tile_twiddle(l0 + 1u, pos, a);
        let narrow = tile_twiddle(l0, pos, a);
        let p02 = ct_pair(tile[a], tile[a + 2u * t], wide, li);
        let p13 = ct_pair(tile[a + t], tile[a + 3u * t], wide, li);
        let p01 = ct_pair(p02.x, p13.x, narrow, li);
        let p23 = ct_pair(p02.y, p13.y, narrow + 1u, li);
        tile[a] = p01.x;
        tile[a + t] = p01.y;
        tile[a + 2u * t] = p23.x;
        tile[a + 3u * t] = p23.y;
    }
}

fn inverse_radix4(lid: u32, size: u32, l0: u32, pos: u32, li: LimbInfo) {
    let t = 1u << l0;
    for (var q = lid; q < size / 4u; q += WG) {
        let a = ((q >> l0) << (l0 + 2u)) | (q & (t - 1u));
        let narrow = tile_twiddle(l0, pos, a);
        let wide = tile_twiddle(l0 + 1u, pos, a);
        let p01 = gs_pair(tile[a], tile[a + t], narrow, li);
        let p23 = gs_pair(tile[a + 2u * t], tile[a + 3u * t], narrow + 1u, li);
        let p02 = gs_pair(p01.x, p23.x, wide, li);
        let p13 = gs_pair(p01.y, p23.y, wide, li);
        tile[a] = p02.x;
        tile[a + t] = p13.x;
        tile[a + 2u * t] = p02.y;
        tile[a + 3u * t] = p13.y;
    }
}

// The last log2(T) forward stages, one tile of T = 2^size_log words per workgroup iteration: one
// radix-2 stage when their number is odd, then radix-4 steps. In NTT_SCALED_DIFFERENCE mode the
// pass ends a scaled difference (rescaling, the mod-down): it stores (a − y) · scale[limb] for
// the transformed word y, where a is `operand` (the chunk of `a` from polynomial operand_first,
// operand_limbs limbs a polynomial, this ring's limbs from limb operand_first_limb) and the scales
// are `operand_table`'s (word, Shoup) pairs. CPU twin of that: ntt_forward, then
// scaled_difference.
@compute @workgroup_size(256)
fn ntt_forward_local(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let log_tile = ntt.size_log;
    let size = 1u << log_tile;
    let per_row_log = ntt.shape.n_log - log_tile;
    for (var tl = wid.x; tl < ntt.shape.total; tl += nwg.x) {
        let li = limb_info[(tl >> per_row_log) % ntt.shape.limbs];
        let base = tl << log_tile;                                 // first word of the tile in the chunk
        let pos = (tl & ((1u << per_row_log) - 1u)) << log_tile;  // its position in the polynomial
        load_words(base, size, lid);
        var left = log_tile;  // stages to go; the next spans 2^(left - 1)
        if ((left & 1u) == 1u) {
            forward_radix2(lid, size, left - 1u, pos, li);
            workgroupBarrier();
            left -= 1u;
        }
        for (; left >= 2u; left -= 2u) {
            forward_radix4(lid, size, left - 2u, pos, li);
            workgroupBarrier();
        }
        if (ntt.mode == NTT_SCALED_DIFFERENCE) {
            let row = tl >> per_row_log;
            let limb = row % ntt.shape.limbs;
            let poly = ntt.out_first + row / ntt.shape.limbs - ntt.operand_first;
            let at = ((poly * ntt.operand_limbs + ntt.operand_first_limb + limb) << ntt.shape.n_log) + pos;
            let w = operand_table[2u * limb];
            let ws = operand_table[2u * limb + 1u];
            for (var e = lid; e < size; e += WG) {
                out[base + e] = mul_shoup(sub_mod(operand[at + e], tile[e], li.p), w, ws, li.p);
            }
        } else {
            for (var e = lid; e < size; e += WG) {
                out[base + e] = tile[e];
            }
        }
        workgroupBarrier();
    }
}

// The first log2(T) inverse stages in workgroup memory (radix-4 steps, then one radix-2 stage
// when their number is odd); when no column pass follows (scale_n_inv = 1) this pass also
// multiplies by N^{-1}.
@compute @workgroup_size(256)
fn ntt_inverse_local(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let log_tile = ntt.size_log;
    let size = 1u << log_tile;
    let per_row_log = ntt.shape.n_log - log_tile;
    for (var tl = wid.x; tl < ntt.shape.total; tl += nwg.x) {
        let li = limb_info[(tl >> per_row_log) % ntt.shape.limbs];
        let base = tl << log_tile;
        let pos = (tl & ((1u << per_row_log) - 1u)) << log_tile;
        load_words(base, size, lid);
        var lt = 0u;  // the next stage spans 2^lt
        for (; lt + 2u <= log_tile; lt += 2u) {
            inverse_radix4(lid, size, lt, pos, li);
            workgroupBarrier();
        }
        if (lt < log_tile) {
            inverse_radix2(lid, size, lt, pos, li);
            workgroupBarrier();
        }
        for (var e = lid; e < size; e += WG) {
            var x = tile[e];
            if (ntt.scale_n_inv == 1u) {
                x = mul_shoup(x, li.n_inv, li.n_inv_shoup, li.p);
            }
            out[base + e] = x;
        }
        workgroupBarrier();
    }
}
