//! The one error type of hegpu: every fallible call says what was wrong instead of panicking.

/// Everything that can go wrong in hegpu, with the values that made it go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A ring degree that is not a power of two in the supported range.
    #[error("ring degree {n} is not supported: it must be a power of two from 2^10 to 2^16")]
    BadDegree { n: usize },
    /// A modulus that hegpu cannot use (even, too small, too large, not prime, ...).
    #[error("modulus {p} is not usable: {why}")]
    BadModulus { p: u64, why: &'static str },
    /// A prime that is fine in itself but not NTT-friendly for the ring degree.
    #[error("prime {p} is not NTT-friendly for N = {n}: it must satisfy p ≡ 1 (mod {two_n})", two_n = 2 * n)]
    NotNttFriendly { p: u32, n: usize },
    /// Not enough primes of the requested size exist.
    #[error("only {found} primes of {bits} bits with p ≡ 1 (mod {two_n}) exist, {wanted} were asked for", two_n = 2 * n)]
    NotEnoughPrimes {
        n: usize,
        bits: u32,
        wanted: usize,
        found: usize,
    },
    /// Two operands (or an operand and what the call expects) differ in shape.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// An input word is not fully reduced.
    #[error("word {word} at index {index} is not reduced: it must be below its prime {p}")]
    Unreduced { index: usize, word: u32, p: u32 },
    /// Operands live on different devices, or on a device other than the backend's.
    #[error("operand lives on {found}, but this operation runs on {expected}")]
    WrongDevice { expected: String, found: String },
    /// No GPU adapter could be found (or `HEGPU_REQUIRE_GPU=1` and none exists).
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// The GPU refused an allocation: the data does not fit the adapter.
    #[error("the GPU cannot hold {bytes} bytes: {why}")]
    GpuOutOfMemory { bytes: u64, why: String },
    /// Any other error reported by the GPU driver or by wgpu validation.
    #[error("GPU error: {0}")]
    Gpu(String),
    /// A bad value in the environment or on the command line.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Result with hegpu's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
