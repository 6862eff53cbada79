//! Helpers of the command's tests: the library's shared test helpers, and running the binary.
#![allow(dead_code)]

#[path = "../../../tests/common/mod.rs"]
mod shared;

pub mod cli;
#[allow(unused_imports)] // not every test file uses them all
pub use shared::*;
