//! Limits every model keeps, checked by [`Model::shapes`](crate::nn::Model::shapes) for models
//! read from files and built in code alike, so that a small file cannot ask for unbounded memory
//! or time.

/// Activations of one image after any layer. In the batch layout each is a ciphertext
/// (393 KB at N = 2^13 with six primes): 2^16 of them are 26 GB, the most a large server
/// holds; the shipped network's largest layer has 845.
pub const ACTIVATIONS: usize = 1 << 16;
/// Any one size: channels, height, width, padding, kernel, stride, pooling window.
pub const DIMENSION: usize = 1 << 12;
/// Weighted terms of one linear layer (each is a scalar multiply-add over a whole batch of
/// ciphertexts; the shipped network's largest layer has 84,500).
pub const TERMS: usize = 1 << 22;
/// Layers of a model.
pub const LAYERS: usize = 256;
/// Plaintext operations per image across all layers ([`Model::work`](crate::nn::Model::work):
/// weighted terms and elementwise steps). One layer may hold [`TERMS`], two such layers
/// together, not 256: the budget bounds what a file can ask of the server and of the
/// import's calibration passes. The shipped network does about 170,000.
pub const WORK: usize = 1 << 23;
/// Multiply-adds of composing adjacent linear layers into one map each (the encrypted pass
/// applies one map between activations), over the whole model: dense 2048 → 2048 after
/// 784 → 2048 takes 2^31.6, minutes of planning; the shipped network's (a padding into a
/// convolution) take at most 845 · 25.
pub const COMPOSITION: usize = 1 << 25;
/// Degree of a polynomial activation (each doubling costs the encrypted pass a level).
pub const DEGREE: usize = 64;
/// Largest magnitude of a polynomial's coefficient (`Poly`'s a, b, c and a `Polynomial`'s
/// coefficients). The encrypted pass folds coefficients into the weights of the maps
/// around them, encoded at scales up to 2^60 in f32 and u128 arithmetic: 2^20 keeps every
/// such product finite and every scale representable, far above what a model needs
/// (decryption holds values below 2^5 to 2^35, by preset).
pub const COEFFICIENT: f32 = (1u32 << 20) as f32;
/// A `Polynomial`'s range lies within [1/RANGE, RANGE]: the encrypted pass multiplies by
/// 1/range before the powers, and by range^-i for the coefficients of x up to x².
pub const RANGE: f32 = (1u32 << 20) as f32;
