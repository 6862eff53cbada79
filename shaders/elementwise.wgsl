// Coefficient-wise operations on a chunk of polynomials laid out [poly][limb][n].
// total: words in the chunk. CPU twins: CpuBackend::{add, sub, neg, mul}.

@compute @workgroup_size(256)
fn poly_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < params.total; i += nwg.x * WG) {
        out[i] = add_mod(in_a[i], in_b[i], limb_of_word(i).p);
    }
}

@compute @workgroup_size(256)
fn poly_sub(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < params.total; i += nwg.x * WG) {
        out[i] = sub_mod(in_a[i], in_b[i], limb_of_word(i).p);
    }
}

@compute @workgroup_size(256)
fn poly_neg(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < params.total; i += nwg.x * WG) {
        out[i] = sub_mod(0u, in_a[i], limb_of_word(i).p);
    }
}

@compute @workgroup_size(256)
fn poly_mul(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < params.total; i += nwg.x * WG) {
        out[i] = mul_mod(in_a[i], in_b[i], limb_of_word(i));
    }
}
