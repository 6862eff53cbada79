//! The WGSL kernels: sources assembled from `shaders/` (prelude first), one bind group layout,
//! and every compute pipeline compiled once when the device is opened.

use std::collections::HashMap;

/// Bytes of one dispatch's parameter slot: every parameter struct of params.rs fits (checked
/// in its tests).
pub(crate) const PARAM_BYTES: usize = 64;

const PRELUDE: &str = include_str!("../../../shaders/prelude.wgsl");
/// `mul_hi` from 16×16 partial products (any adapter) or one 64-bit product (SHADER_INT64).
const MUL_HI_U32: &str = include_str!("../../../shaders/mul_hi_u32.wgsl");
const MUL_HI_U64: &str = include_str!("../../../shaders/mul_hi_u64.wgsl");
/// The base conversion, which rns.wgsl and ntt.wgsl both use.
const CONVERSION: &str = include_str!("../../../shaders/conversion.wgsl");

/// Every compute kernel: its WGSL entry point is its name in snake case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kernel {
    PolyAdd,
    PolySub,
    PolyNeg,
    PolyMul,
    PolyMulAcc,
    LinearSparse,
    NttForwardColumns,
    NttInverseColumns,
    NttForwardLocal,
    NttInverseLocal,
    GatherPolys,
    BaseConvert,
    AutomorphismNtt,
    ScalarAffine,
    CtTensor,
    KeyMulAcc,
    ScaledDifference,
    SeededMasks,
    SmallPolys,
}

impl Kernel {
    /// The WGSL entry point.
    pub fn entry(self) -> &'static str {
        match self {
            Kernel::PolyAdd => "poly_add",
            Kernel::PolySub => "poly_sub",
            Kernel::PolyNeg => "poly_neg",
            Kernel::PolyMul => "poly_mul",
            Kernel::PolyMulAcc => "poly_mul_acc",
            Kernel::LinearSparse => "linear_sparse",
            Kernel::NttForwardColumns => "ntt_forward_columns",
            Kernel::NttInverseColumns => "ntt_inverse_columns",
            Kernel::NttForwardLocal => "ntt_forward_local",
            Kernel::NttInverseLocal => "ntt_inverse_local",
            Kernel::GatherPolys => "gather_polys",
            Kernel::BaseConvert => "base_convert",
            Kernel::AutomorphismNtt => "automorphism_ntt",
            Kernel::ScalarAffine => "scalar_affine",
            Kernel::CtTensor => "ct_tensor",
            Kernel::KeyMulAcc => "key_mul_acc",
            Kernel::ScaledDifference => "scaled_difference",
            Kernel::SeededMasks => "seeded_masks",
            Kernel::SmallPolys => "small_polys",
        }
    }

    /// The shader file that holds it.
    pub fn family(self) -> &'static str {
        FAMILIES
            .iter()
            .find(|f| f.2.contains(&self))
            .map(|f| f.0)
            .expect("every kernel is in FAMILIES")
    }

    /// Whether the kernel reads the words it writes in its output binding (the in-place NTT
    /// passes; the accumulating kernels do when their shape's `accumulate` says so).
    pub fn in_place(self) -> bool {
        matches!(
            self,
            Kernel::NttForwardColumns
                | Kernel::NttInverseColumns
                | Kernel::NttForwardLocal
                | Kernel::NttInverseLocal
        )
    }
}

/// The shader files and the kernels each holds; the prelude, `mul_hi` and (for rns and ntt) the
/// conversion come before each.
pub(crate) const FAMILIES: [(&str, &str, &[Kernel]); 5] = [
    (
        "elementwise",
        include_str!("../../../shaders/elementwise.wgsl"),
        &[
            Kernel::PolyAdd,
            Kernel::PolySub,
            Kernel::PolyNeg,
            Kernel::PolyMul,
        ],
    ),
    (
        "mac",
        include_str!("../../../shaders/mac.wgsl"),
        &[Kernel::PolyMulAcc, Kernel::LinearSparse],
    ),
    (
        "ntt",
        include_str!("../../../shaders/ntt.wgsl"),
        &[
            Kernel::NttForwardColumns,
            Kernel::NttInverseColumns,
            Kernel::NttForwardLocal,
            Kernel::NttInverseLocal,
        ],
    ),
    (
        "rns",
        include_str!("../../../shaders/rns.wgsl"),
        &[
            Kernel::GatherPolys,
            Kernel::BaseConvert,
            Kernel::AutomorphismNtt,
            Kernel::ScalarAffine,
            Kernel::CtTensor,
            Kernel::KeyMulAcc,
            Kernel::ScaledDifference,
        ],
    ),
    (
        "sampling",
        include_str!("../../../shaders/sampling.wgsl"),
        &[Kernel::SeededMasks, Kernel::SmallPolys],
    ),
];

/// Threads per workgroup in every kernel (`WG` in the prelude).
pub(crate) const WORKGROUP: u32 = 256;
/// Most words per workgroup tile of the NTT kernels (`tile` in ntt.wgsl): 32 KiB, one pass up
/// to N = 2^13 where the adapter's workgroup storage holds them.
const MAX_NTT_TILE: usize = 1 << 13;
/// Fewest words per NTT tile: every adapter's workgroup storage (16 KiB at least) holds them,
/// and two passes cover N up to their square.
const MIN_NTT_TILE: usize = 1 << 10;
/// The tile size's declaration in ntt.wgsl, replaced when the kernels are compiled.
const NTT_TILE_DECLARATION: &str = "const NTT_TILE_WORDS: u32 = 2048u;";

/// Words per NTT tile: the largest power of two within `limit` (if given), the adapter's
/// workgroup storage of `storage_bytes` and [`MAX_NTT_TILE`].
pub(crate) fn ntt_tile(storage_bytes: u32, limit: Option<usize>) -> usize {
    let fits = (storage_bytes as usize / 4).min(limit.unwrap_or(usize::MAX));
    let tile = if fits.is_power_of_two() {
        fits
    } else {
        fits.next_power_of_two() / 2
    };
    tile.clamp(MIN_NTT_TILE, MAX_NTT_TILE)
}

/// Every pipeline, by entry-point name.
pub(crate) struct Kernels {
    pub layout: wgpu::BindGroupLayout,
    pipelines: HashMap<Kernel, wgpu::ComputePipeline>,
}

impl Kernels {
    /// Compiles every kernel; with `native_products`, `mul_hi` uses 64-bit integers (the
    /// device must have been opened with SHADER_INT64); the NTT kernels with tiles of
    /// `ntt_tile` words (from [`ntt_tile`]).
    pub fn compile(device: &wgpu::Device, native_products: bool, ntt_tile: usize) -> Self {
        let storage = |binding, read_only| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("hegpu kernels"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: true,
                        min_binding_size: wgpu::BufferSize::new(PARAM_BYTES as u64),
                    },
                    count: None,
                },
                storage(1, true),
                storage(2, true),
                storage(3, true),
                storage(4, true),
                storage(5, false),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("hegpu kernels"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let mut pipelines = HashMap::new();
        for (family, _, entries) in FAMILIES {
            let source = source(family, native_products, ntt_tile);
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(family),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            for &kernel in entries {
                let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(kernel.entry()),
                    layout: Some(&pipeline_layout),
                    module: &module,
                    entry_point: Some(kernel.entry()),
                    compilation_options: Default::default(),
                    cache: None,
                });
                pipelines.insert(kernel, pipeline);
            }
        }
        Self { layout, pipelines }
    }

    pub fn get(&self, kernel: Kernel) -> &wgpu::ComputePipeline {
        &self.pipelines[&kernel]
    }
}

/// The WGSL module of the shader file `family`, as compiled: `mul_hi` with 64-bit integers or
/// 16×16 partial products, NTT tiles of `ntt_tile` words.
pub(crate) fn source(family: &str, native_products: bool, ntt_tile: usize) -> String {
    let (_, body, _) = FAMILIES
        .iter()
        .find(|f| f.0 == family)
        .expect("a shader file of FAMILIES");
    let mul_hi = if native_products {
        MUL_HI_U64
    } else {
        MUL_HI_U32
    };
    let conversion = if matches!(family, "rns" | "ntt") {
        CONVERSION
    } else {
        ""
    };
    let body = body.replace(
        NTT_TILE_DECLARATION,
        &format!("const NTT_TILE_WORDS: u32 = {ntt_tile}u;"),
    );
    format!("{PRELUDE}\n{mul_hi}\n{conversion}\n{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_is_an_entry_point_of_its_file_and_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for (family, body, kernels) in FAMILIES {
            for k in kernels {
                let entry = format!("fn {}(", k.entry());
                assert!(body.contains(&entry), "{k:?} is not in {family}.wgsl");
                assert!(seen.insert(*k), "{k:?} listed twice");
            }
        }
        // Every `@compute` function of the files is a Kernel.
        let computes: usize = FAMILIES
            .iter()
            .map(|(_, body, _)| body.matches("@compute").count())
            .sum();
        assert_eq!(seen.len(), computes);
        let ntt = FAMILIES.iter().find(|f| f.0 == "ntt").unwrap().1;
        assert_eq!(ntt.matches(NTT_TILE_DECLARATION).count(), 1);
    }

    #[test]
    fn ntt_tiles_are_powers_of_two_within_the_storage() {
        assert_eq!(ntt_tile(16 << 10, None), 4096);
        assert_eq!(ntt_tile(32 << 10, None), 8192);
        assert_eq!(ntt_tile(48 << 10, None), 8192);
        assert_eq!(ntt_tile(48 << 10, Some(3000)), 2048);
        assert_eq!(ntt_tile(32 << 10, Some(1)), MIN_NTT_TILE);
    }
}
