//! The WGSL kernels: sources assembled from `shaders/` (prelude first), one bind group layout,
//! and every compute pipeline compiled once when the device is opened.

use super::dispatch::PARAM_WORDS;
use std::collections::HashMap;

const PRELUDE: &str = include_str!("../../../shaders/prelude.wgsl");
/// `mul_hi` from 16×16 partial products (any adapter) or one 64-bit product (SHADER_INT64).
const MUL_HI_U32: &str = include_str!("../../../shaders/mul_hi_u32.wgsl");
const MUL_HI_U64: &str = include_str!("../../../shaders/mul_hi_u64.wgsl");
const FAMILIES: [(&str, &str, &[&str]); 4] = [
    (
        "elementwise",
        include_str!("../../../shaders/elementwise.wgsl"),
        &["poly_add", "poly_sub", "poly_neg", "poly_mul"],
    ),
    (
        "mac",
        include_str!("../../../shaders/mac.wgsl"),
        &["poly_mul_acc", "linear_layer", "linear_sparse"],
    ),
    (
        "ntt",
        include_str!("../../../shaders/ntt.wgsl"),
        &[
            "ntt_forward_stage",
            "ntt_inverse_stage",
            "ntt_forward_local",
            "ntt_inverse_local",
        ],
    ),
    (
        "rns",
        include_str!("../../../shaders/rns.wgsl"),
        &[
            "gather_polys",
            "base_convert",
            "automorphism_ntt",
            "scalar_affine",
            "ct_tensor",
            "key_mul_acc",
            "scaled_difference",
        ],
    ),
];

/// Threads per workgroup in every kernel (`WG` in the prelude).
pub(crate) const WORKGROUP: u32 = 256;
/// Words per workgroup tile in the local NTT kernels (`tile` in ntt.wgsl).
pub(crate) const NTT_TILE: usize = 2048;

/// Every pipeline, by entry-point name.
pub(crate) struct Kernels {
    pub layout: wgpu::BindGroupLayout,
    pipelines: HashMap<&'static str, wgpu::ComputePipeline>,
}

impl Kernels {
    /// Compiles every kernel; with `native_products`, `mul_hi` uses 64-bit integers (the
    /// device must have been opened with SHADER_INT64).
    pub fn compile(device: &wgpu::Device, native_products: bool) -> Self {
        let mul_hi = if native_products {
            MUL_HI_U64
        } else {
            MUL_HI_U32
        };
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
                        min_binding_size: wgpu::BufferSize::new(4 * PARAM_WORDS as u64),
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
        for (family, body, entries) in FAMILIES {
            let source = format!("{PRELUDE}\n{mul_hi}\n{body}");
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(family),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            for &entry in entries {
                let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: Some(&pipeline_layout),
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                });
                pipelines.insert(entry, pipeline);
            }
        }
        Self { layout, pipelines }
    }

    pub fn get(&self, entry: &str) -> &wgpu::ComputePipeline {
        &self.pipelines[entry]
    }
}
