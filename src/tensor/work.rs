//! Layer work in device-independent form: the circuits the scheduler runs, stage by stage, for
//! both packings.

use crate::circuits::{DiagonalWork, LinearWork, PowersWork, Then};
use std::sync::atomic::{AtomicU64, Ordering};

/// One stage of a [`LayerPlan`].
#[derive(Clone, Debug)]
pub enum Work {
    Linear(LinearWork),
    /// x² of every ciphertext (relinearized, rescaled) where no linear map precedes it.
    Square,
    /// The powers u¹ … u^d of every ciphertext (see [`PowersWork`]), for the linear map after it.
    Powers(PowersWork),
    /// A map within ciphertexts (the latency packing's layers; see [`DiagonalWork`]): groups of
    /// input ciphertexts to one each.
    Diagonal(DiagonalWork),
}

/// Stages run in order on a tensor; `id` tells prepared weights of different plans apart.
#[derive(Debug)]
pub struct LayerPlan {
    pub(crate) id: u64,
    pub stages: Vec<Work>,
}

static NEXT_PLAN: AtomicU64 = AtomicU64::new(1);

impl LayerPlan {
    /// A plan of `stages`, with intermediate outputs reordered so that outputs reading the
    /// same inputs are neighbours (see `order.rs`); the last linear map keeps its order.
    pub fn new(mut stages: Vec<Work>) -> Self {
        super::order::group_shared_inputs(&mut stages);
        Self {
            id: NEXT_PLAN.fetch_add(1, Ordering::Relaxed),
            stages,
        }
    }
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
            Work::Diagonal(d) => format!(
                "diagonal {inputs}→{}, {} rotations, {} products",
                inputs / d.inputs().max(1),
                d.map.key_switches(),
                d.map.products()
            ),
        }
    }
}
