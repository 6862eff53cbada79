// The centered fast base conversion, shared by base_convert (rns.wgsl) and the NTT pass that
// folds it in (ntt.wgsl). Both bind the polynomials to convert as `operand` and the conversion
// table as `operand_table`.
@group(0) @binding(3) var<storage, read> operand: array<u32>;
@group(0) @binding(4) var<storage, read> operand_table: array<u32>;

// The conversion table: per digit a header
// [offset, first source limb, source limbs, 0], then at each offset the digit's per source limb
// [s, (S/s)^-1, Shoup, ⌊S/2⌋ mod s], ⌊S/2⌋ mod t per target limb, and [target][source] pairs
// (S/s mod t, Shoup). The target limbs are this dispatch's ring.

// The first word of digit d of input polynomial m (in_limbs limbs a polynomial) in `operand`.
fn digit_source(d: u32, m: u32, in_limbs: u32, shape: Shape) -> u32 {
    return (m * in_limbs + operand_table[4u * d + 1u]) << shape.n_log;
}

// Coefficient k of target limb j of digit d, whose first source word is src:
// Σ_i [(x_i + ⌊S/2⌋)(S/s_i)^-1 mod s_i] (S/s_i) − ⌊S/2⌋ mod t_j.
fn convert_word(d: u32, src: u32, k: u32, j: u32, shape: Shape) -> u32 {
    let base = operand_table[4u * d];
    let s_count = operand_table[4u * d + 2u];
    let halves = base + 4u * s_count;
    let matrix = halves + shape.limbs;
    let t = limb_info[j].p;
    var acc = 0u;
    for (var i = 0u; i < s_count; i++) {
        let at = base + 4u * i;
        let s = operand_table[at];
        let x = add_mod(operand[src + (i << shape.n_log) + k], operand_table[at + 3u], s);
        let y = mul_shoup(x, operand_table[at + 1u], operand_table[at + 2u], s);
        let w = matrix + 2u * (j * s_count + i);
        acc = add_mod(acc, mul_shoup(y, operand_table[w], operand_table[w + 1u], t), t);
    }
    return sub_mod(acc, operand_table[halves + j], t);
}

