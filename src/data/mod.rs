//! Dataset readers: IDX files (MNIST's format), gzip-compressed or not.

pub mod idx;

pub use idx::{Images, Mnist, read_images, read_labels};
