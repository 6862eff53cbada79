// Coefficient-wise operations on a chunk of polynomials laid out [poly][limb][n]: out = lhs ∘ rhs
// (poly_neg reads lhs only). shape.total: words in the chunk. CPU twins:
// CpuBackend::{add, sub, neg, mul}.

struct ElementwiseParams {
    shape: Shape,
}

@group(0) @binding(0) var<uniform> elementwise: ElementwiseParams;
@group(0) @binding(3) var<storage, read> lhs: array<u32>;
@group(0) @binding(4) var<storage, read> rhs: array<u32>;

@compute @workgroup_size(256)
fn poly_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let shape = elementwise.shape;
    for (var i = gid.x; i < shape.total; i += nwg.x * WG) {
        out[i] = add_mod(lhs[i], rhs[i], limb_of_word(i, shape).p);
    }
}

@compute @workgroup_size(256)
fn poly_sub(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let shape = elementwise.shape;
    for (var i = gid.x; i < shape.total; i += nwg.x * WG) {
        out[i] = sub_mod(lhs[i], rhs[i], limb_of_word(i, shape).p);
    }
}

@compute @workgroup_size(256)
fn poly_neg(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let shape = elementwise.shape;
    for (var i = gid.x; i < shape.total; i += nwg.x * WG) {
        out[i] = sub_mod(0u, lhs[i], limb_of_word(i, shape).p);
    }
}

@compute @workgroup_size(256)
fn poly_mul(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let shape = elementwise.shape;
    for (var i = gid.x; i < shape.total; i += nwg.x * WG) {
        out[i] = mul_mod(lhs[i], rhs[i], limb_of_word(i, shape));
    }
}
