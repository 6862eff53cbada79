// High word of the 32x32 product, from one native 64-bit product (adapters with SHADER_INT64).
fn mul_hi(a: u32, b: u32) -> u32 {
    return u32((u64(a) * u64(b)) >> 32u);
}
