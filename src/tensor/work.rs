//! Layer work in device-independent form: the circuits the scheduler runs, stage by stage, for
//! both packings.

use crate::circuits::{DiagonalWork, LinearWork, PolynomialWork, PowersWork, Then};

/// Outputs of a linear stage computed, rescaled and squared together when the whole tensor is
/// on one device: bounds the memory of every temporary, key switching included.
pub(crate) const CHUNK: usize = 128;

/// One stage of a [`LayerPlan`](super::LayerPlan).
#[derive(Clone, Debug)]
pub enum Work {
    Linear(LinearWork),
    /// x² of every ciphertext (relinearized, rescaled) where no linear map precedes it.
    Square,
    /// The powers u¹ … u^d of every ciphertext (see [`PowersWork`]), for the linear map after it.
    Powers(PowersWork),
    /// A polynomial of every ciphertext in the Chebyshev basis, one ciphertext each (see
    /// [`PolynomialWork`]).
    Polynomial(PolynomialWork),
    /// A map within ciphertexts (the latency packing's layers; see [`DiagonalWork`]): groups of
    /// input ciphertexts to one each.
    Diagonal(DiagonalWork),
}

impl Work {
    /// A short description for reports ("linear 784→845, x²").
    pub fn describe(&self, inputs: usize) -> String {
        match self {
            Work::Linear(w) => format!(
                "linear {}→{}{}",
                w.inputs,
                w.outputs(),
                match w.then {
                    Then::Nothing => "",
                    Then::Square => ", x²",
                    Then::LazySquare => ", x² (lazy)",
                }
            ),
            Work::Square => format!("x² of {inputs}"),
            Work::Powers(p) => format!("powers 1..{} of {inputs}", p.degree),
            Work::Polynomial(p) => format!(
                "Chebyshev polynomial of degree {} of {inputs}, baby steps to T_{}",
                p.degree(),
                p.baby
            ),
            Work::Diagonal(d) => format!(
                "diagonal {inputs}→{}, {} rotations, {} products",
                inputs / d.inputs().max(1),
                d.map.key_switches(),
                d.map.products()
            ),
        }
    }
}
