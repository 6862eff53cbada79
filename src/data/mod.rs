//! Dataset readers: IDX files (MNIST's format), gzip-compressed or not.

pub(crate) mod idx;

pub use idx::{Images, MAX_IDX_BYTES, Mnist, read_idx, read_images, read_labels};
