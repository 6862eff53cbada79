#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod backend;
pub mod bench;
pub mod circuits;
pub mod ckks;
pub mod data;
mod error;
pub mod files;
pub mod job;
pub mod math;
pub mod nn;
pub mod tensor;

pub use error::{Error, Result};
