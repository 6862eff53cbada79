//! HE algorithms above the scheme and below the networks, as planned objects that carry
//! their cost:
//!
//! - [`LinearWork`] (`sparse.rs`): sparse plaintext maps across ciphertexts with integer
//!   weights, on relinearized or lazy (three-polynomial) inputs, and what follows them
//!   ([`Then`]): the batch packing's layers and the weighting of a polynomial's powers;
//! - [`DiagonalMap`] (`diagonal.rs`): maps within a ciphertext, plaintext diagonals times
//!   hoisted baby-step and giant-step rotations, and a fold: the latency packing's layers,
//!   planned for ciphertexts as a [`DiagonalWork`];
//! - [`PowersWork`] (`powers.rs`): the power basis of a polynomial activation, with lazy
//!   relinearization of the powers no product reads, for a map that weighs the powers;
//! - [`PolynomialWork`] (`polynomial.rs`): a polynomial in the Chebyshev basis into one
//!   ciphertext per value, by baby steps and giant steps in the order its counted cost picks.
//!
//! Each runs on an [`Evaluator`](crate::ckks::Evaluator), so on either device; the scheduler
//! (`tensor`) runs all of them, for both packings, in chunks streamed within a memory budget.

mod diagonal;
mod polynomial;
mod powers;
mod sparse;

pub use diagonal::{
    DiagonalMap, DiagonalWork, EncodedMap, Giant, Steps, Term, add_slots, rotate_slots,
};
pub use polynomial::{
    PolynomialCost, PolynomialWork, chebyshev_from_powers, chebyshev_value, polynomial,
};
pub use powers::{Power, PowersWork, powers};
pub use sparse::{InputForm, LinearWork, Then};
pub(crate) use sparse::{finish_linear, linear_output, ranges, square_relin_rescale};
