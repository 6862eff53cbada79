//! Every kernel's parameters, by name: one `#[repr(C)]` struct per kernel (or family of kernels
//! that read the same fields), mirrored field for field by a WGSL struct of the same name in
//! `shaders/`. Each starts with the ring's [`Shape`]. A dispatch writes one into the uniform
//! buffer's slot; `tests` below checks the two layouts and the named constants against the WGSL
//! (parsed by naga), so a mismatch fails before any dispatch.

use super::kernels::Kernel;
use crate::math::Ring;
use bytemuck::{Pod, Zeroable};

/// The ring's shape and the dispatch's extent, the first member of every kernel's parameters
/// (`Shape` in shaders/prelude.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct Shape {
    /// log2 of the ring degree N.
    pub n_log: u32,
    /// RNS limbs per polynomial.
    pub limbs: u32,
    /// Work items in this dispatch (grid-stride loops cover them all).
    pub total: u32,
    /// 1 when an accumulating kernel adds to what its output holds; 0 on the first dispatch
    /// into an output chunk, which starts from zero (so the host never clears it).
    pub accumulate: u32,
}

impl Shape {
    /// The shape of `ring` for a dispatch over `total` work items.
    pub fn of(ring: &Ring, total: usize) -> Self {
        Self {
            n_log: ring.degree().trailing_zeros(),
            limbs: ring.limbs() as u32,
            total: total as u32,
            accumulate: 0,
        }
    }
}

/// A kernel's parameter struct.
pub(crate) trait KernelParams: Pod {
    /// The struct's name, in Rust and in WGSL.
    const NAME: &'static str;
    /// The kernels that read it.
    const KERNELS: &'static [Kernel];
    /// Each field's name and byte offset.
    #[cfg(test)]
    const FIELDS: &'static [(&'static str, usize)];
    fn shape(&self) -> &Shape;
}

impl Shape {
    /// This shape for an accumulating kernel: it adds to its output when `onto` is true, else
    /// it starts from zero.
    pub fn accumulating(self, onto: bool) -> Self {
        Self {
            accumulate: u32::from(onto),
            ..self
        }
    }
}

/// Defines a parameter struct: its shape, then named `u32` fields.
macro_rules! kernel_params {
    ($(#[$doc:meta])* $name:ident for [$($kernel:ident),+] {
        $($(#[$fdoc:meta])* $field:ident,)*
    }) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
        pub(crate) struct $name {
            pub shape: Shape,
            $($(#[$fdoc])* pub $field: u32,)*
        }

        impl KernelParams for $name {
            const NAME: &'static str = stringify!($name);
            const KERNELS: &'static [Kernel] = &[$(Kernel::$kernel),+];
            #[cfg(test)]
            const FIELDS: &'static [(&'static str, usize)] = &[
                ("shape", 0),
                $((stringify!($field), std::mem::offset_of!($name, $field)),)*
            ];
            fn shape(&self) -> &Shape {
                &self.shape
            }
        }
    };
}

kernel_params! {
    /// `poly_add`, `poly_sub`, `poly_neg`, `poly_mul`: `total` words of a chunk.
    ElementwiseParams for [PolyAdd, PolySub, PolyNeg, PolyMul] {}
}

kernel_params! {
    /// `poly_mul_acc`: `total` words of the output chunk.
    PolyMulAccParams for [PolyMulAcc] {
        /// Products summed per output polynomial.
        terms,
        /// The output chunk's first polynomial.
        out_first,
        /// The input chunk's first polynomial.
        in_first,
        /// Polynomials in the input chunk.
        in_count,
    }
}

kernel_params! {
    /// `linear_sparse`: `total` words per polynomial.
    LinearSparseParams for [LinearSparse] {
        /// The dispatch's first tile of outputs.
        first_tile,
        /// The input chunk's first polynomial.
        in_first,
        /// Polynomials in the input chunk.
        in_count,
        /// The output chunk's first polynomial.
        out_first,
        /// Where the bias starts in the weights.
        bias_at,
        /// 1 when the map has a bias.
        has_bias,
    }
}

kernel_params! {
    /// The NTT passes: `total` tiles in the chunk.
    NttParams for [NttForwardColumns, NttInverseColumns, NttForwardLocal, NttInverseLocal] {
        /// log2 of the words per column (column passes) or per tile (local passes).
        size_log,
        /// Column passes: log2 of the columns per tile.
        width_log,
        /// The inverse local pass: 1 when no column pass follows, so it multiplies by N^{-1}.
        scale_n_inv,
        /// What the pass folds in: [`NTT_PLAIN`], [`NTT_SCALED_DIFFERENCE`] (last forward
        /// pass) or [`NTT_CONVERSION`] (first forward pass).
        mode,
        /// The chunk's first polynomial.
        out_first,
        /// The first polynomial of the `operand` chunk.
        operand_first,
        /// Limbs of an `operand` polynomial.
        operand_limbs,
        /// A scaled difference: the limb of `a` this ring's first limb is.
        operand_first_limb,
        /// A conversion: output polynomials per digit.
        digit_polys,
    }
}

/// `NttParams::mode`: the pass loads and stores its own words.
pub(crate) const NTT_PLAIN: u32 = 0;
/// `NttParams::mode`: the last forward pass stores (a − y)·scale for its transformed words y.
pub(crate) const NTT_SCALED_DIFFERENCE: u32 = 1;
/// `NttParams::mode`: the first forward pass loads the base conversion of `operand`.
pub(crate) const NTT_CONVERSION: u32 = 2;

kernel_params! {
    /// `gather_polys`: `total` words of the output chunk.
    GatherPolysParams for [GatherPolys] {
        /// The output chunk's first polynomial.
        out_first,
        /// The first limb taken from each source polynomial.
        first_limb,
        /// Limbs of a source polynomial.
        in_limbs,
        /// The input chunk's first polynomial.
        in_first,
        /// Polynomials in the input chunk.
        in_count,
    }
}

/// A `gather_polys` source index meaning "no source: the output polynomial is zero".
pub(crate) const NO_SOURCE: u32 = u32::MAX;

kernel_params! {
    /// `base_convert`: `total` = N.
    BaseConvertParams for [BaseConvert] {
        /// The dispatch's first output polynomial.
        first,
        /// The output chunk's first polynomial.
        out_first,
        /// Output polynomials per digit.
        digit_polys,
        /// The input chunk's first polynomial.
        in_first,
        /// Polynomials in the input chunk.
        in_count,
        /// Limbs of an input polynomial.
        in_limbs,
    }
}

kernel_params! {
    /// `automorphism_ntt`: `total` words of the chunk.
    AutomorphismParams for [AutomorphismNtt] {
        /// The Galois element g of X → X^g.
        galois,
    }
}

kernel_params! {
    /// `scalar_affine`: `total` words of the chunk.
    ScalarAffineParams for [ScalarAffine] {}
}

kernel_params! {
    /// `ct_tensor`: `total` words of the output chunk.
    CtTensorParams for [CtTensor] {
        /// The output chunk's first polynomial.
        out_first,
        /// First polynomial and count of the `a` chunk.
        a_first,
        a_count,
        /// First polynomial and count of the `b` chunk.
        b_first,
        b_count,
    }
}

kernel_params! {
    /// `key_mul_acc`: `total` words of the output chunk.
    KeyMulAccParams for [KeyMulAcc] {
        /// The output chunk's first polynomial.
        out_first,
        /// Output polynomials per input (C).
        outputs,
        /// Digits (D).
        digits,
        /// Extended polynomials per digit (M).
        digit_polys,
        /// First polynomial and count of the `ext` chunk.
        ext_first,
        ext_count,
        /// First polynomial and count of the `key` chunk.
        key_first,
        key_count,
    }
}

kernel_params! {
    /// `scaled_difference`: `total` words of the output chunk.
    ScaledDifferenceParams for [ScaledDifference] {
        /// The output chunk's first polynomial.
        out_first,
        /// First polynomial and count of the `a` chunk.
        a_first,
        a_count,
        /// Limbs of an `a` polynomial.
        a_limbs,
        /// The limb of `a` this ring's first limb is.
        a_first_limb,
    }
}

kernel_params! {
    /// `seeded_masks`: `total` ChaCha20 blocks of the chunk.
    SeededMasksParams for [SeededMasks] {
        /// The batch's first stream, low and high words.
        stream_lo,
        stream_hi,
        /// The chunk's first polynomial in the batch.
        first_poly,
    }
}

kernel_params! {
    /// `small_polys`: `total` words of the chunk.
    SmallPolysParams for [SmallPolys] {}
}

/// Constants both sides name: (WGSL name, value).
#[cfg(test)]
pub(crate) const SHARED_CONSTANTS: [(&str, u32); 4] = [
    ("NTT_PLAIN", NTT_PLAIN),
    ("NTT_SCALED_DIFFERENCE", NTT_SCALED_DIFFERENCE),
    ("NTT_CONVERSION", NTT_CONVERSION),
    ("NO_SOURCE", NO_SOURCE),
];

#[cfg(test)]
mod tests {
    use super::super::kernels::{FAMILIES, PARAM_BYTES, source};
    use super::*;

    /// A parameter struct's Rust side.
    struct Layout {
        name: &'static str,
        fields: &'static [(&'static str, usize)],
        size: usize,
        kernels: &'static [Kernel],
    }

    /// A WGSL struct's members (name, offset, size).
    type Members = Vec<(String, usize, usize)>;

    fn layout<P: KernelParams>() -> Layout {
        Layout {
            name: P::NAME,
            fields: P::FIELDS,
            size: std::mem::size_of::<P>(),
            kernels: P::KERNELS,
        }
    }

    /// Every parameter struct.
    fn all() -> Vec<Layout> {
        vec![
            layout::<ElementwiseParams>(),
            layout::<PolyMulAccParams>(),
            layout::<LinearSparseParams>(),
            layout::<NttParams>(),
            layout::<GatherPolysParams>(),
            layout::<BaseConvertParams>(),
            layout::<AutomorphismParams>(),
            layout::<ScalarAffineParams>(),
            layout::<CtTensorParams>(),
            layout::<KeyMulAccParams>(),
            layout::<ScaledDifferenceParams>(),
            layout::<SeededMasksParams>(),
            layout::<SmallPolysParams>(),
        ]
    }

    /// Every shader file as compiled (16×16 products), parsed and validated by naga.
    fn modules() -> Vec<(naga::Module, naga::valid::ModuleInfo)> {
        FAMILIES
            .iter()
            .map(|(family, _, _)| {
                let wgsl = source(family, false, 2048);
                let module = naga::front::wgsl::parse_str(&wgsl)
                    .unwrap_or_else(|e| panic!("{family}.wgsl: {}", e.emit_to_string(&wgsl)));
                let info = naga::valid::Validator::new(
                    naga::valid::ValidationFlags::all(),
                    naga::valid::Capabilities::all(),
                )
                .validate(&module)
                .unwrap_or_else(|e| panic!("{family}.wgsl: {e:?}"));
                (module, info)
            })
            .collect()
    }

    /// The members of the WGSL struct `name` in `module`: (name, offset, size), and its size.
    fn wgsl_struct(module: &naga::Module, name: &str) -> Option<(Members, usize)> {
        let gctx = module.to_ctx();
        module.types.iter().find_map(|(_, ty)| match &ty.inner {
            naga::TypeInner::Struct { members, span } if ty.name.as_deref() == Some(name) => {
                let fields = members
                    .iter()
                    .map(|m| {
                        let size = module.types[m.ty].inner.size(gctx) as usize;
                        (m.name.clone().unwrap_or_default(), m.offset as usize, size)
                    })
                    .collect();
                Some((fields, *span as usize))
            }
            _ => None,
        })
    }

    #[test]
    fn every_parameter_struct_has_the_layout_of_its_wgsl_twin() {
        let modules = modules();
        let shape = [
            ("n_log", std::mem::offset_of!(Shape, n_log)),
            ("limbs", std::mem::offset_of!(Shape, limbs)),
            ("total", std::mem::offset_of!(Shape, total)),
            ("accumulate", std::mem::offset_of!(Shape, accumulate)),
        ];
        // (name, Rust members, Rust size) of every parameter struct and of Shape.
        let mut rows: Vec<(&str, Members, usize)> = all()
            .into_iter()
            .map(|l| {
                let members = l
                    .fields
                    .iter()
                    .map(|&(f, at)| (f.to_string(), at, if f == "shape" { 16 } else { 4 }))
                    .collect();
                (l.name, members, l.size)
            })
            .collect();
        rows.push((
            "Shape",
            shape
                .iter()
                .map(|&(f, at)| (f.to_string(), at, 4))
                .collect(),
            std::mem::size_of::<Shape>(),
        ));
        for (name, rust, size) in rows {
            let found: Vec<_> = modules
                .iter()
                .filter_map(|(m, _)| wgsl_struct(m, name))
                .collect();
            assert!(!found.is_empty(), "no WGSL struct {name}");
            for (wgsl, span) in found {
                assert_eq!(rust, wgsl, "{name}: (field, offset, size) in Rust and WGSL");
                assert_eq!(size, span, "{name}'s size");
                assert!(span <= PARAM_BYTES, "{name} outgrows a uniform slot");
            }
        }
    }

    #[test]
    fn every_entry_point_reads_the_parameters_of_its_kernel_and_binds_one_name_per_slot() {
        let structs = all();
        let mut seen = 0;
        for ((module, info), (family, _, kernels)) in modules().iter().zip(FAMILIES) {
            for (i, ep) in module.entry_points.iter().enumerate() {
                let kernel = kernels
                    .iter()
                    .find(|k| k.entry() == ep.name)
                    .unwrap_or_else(|| panic!("{family}.wgsl: {} is no Kernel", ep.name));
                let used = info.get_entry_point(i);
                let mut slots = std::collections::HashMap::new();
                for (handle, var) in module.global_variables.iter() {
                    let Some(binding) = &var.binding else {
                        continue;
                    };
                    if used[handle].is_empty() {
                        continue;
                    }
                    let name = var.name.clone().unwrap_or_default();
                    if let Some(other) = slots.insert(binding.binding, name.clone()) {
                        panic!("{}: {name} and {other} share a binding", ep.name);
                    }
                    if binding.binding == 0 {
                        let ty = module.types[var.ty].name.clone().unwrap_or_default();
                        let rust = structs
                            .iter()
                            .find(|s| s.kernels.contains(kernel))
                            .unwrap_or_else(|| panic!("no parameter struct reads {kernel:?}"));
                        assert_eq!(rust.name, ty, "{}'s parameters", ep.name);
                    }
                }
                assert!(slots.contains_key(&0), "{} reads no parameters", ep.name);
                seen += 1;
            }
        }
        let kernels: usize = FAMILIES.iter().map(|f| f.2.len()).sum();
        assert_eq!(seen, kernels);
    }

    #[test]
    fn named_constants_have_the_same_values_on_both_sides() {
        let modules = modules();
        for (name, value) in SHARED_CONSTANTS {
            let found: Vec<u32> = modules
                .iter()
                .flat_map(|(m, _)| {
                    m.constants.iter().filter_map(|(_, c)| {
                        if c.name.as_deref() != Some(name) {
                            return None;
                        }
                        match m.global_expressions[c.init] {
                            naga::Expression::Literal(naga::Literal::U32(v)) => Some(v),
                            ref e => panic!("{name} = {e:?}"),
                        }
                    })
                })
                .collect();
            assert!(!found.is_empty(), "no WGSL constant {name}");
            assert!(
                found.iter().all(|&v| v == value),
                "{name}: {found:?} against {value}"
            );
        }
    }
}
