//! The one error type of hegpu: every fallible call says what was wrong instead of panicking.

/// Everything that can go wrong in hegpu, with the values that made it go wrong, in three
/// kinds with enums of their own (parameters, the GPU, planning a model), the kinds of bad
/// input, and [`Internal`](Error::Internal) for a check of hegpu's own that failed (a bug).
/// Non-exhaustive, as each kind's enum: new kinds of failure may be added without
/// breaking a `match`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Parameters hegpu cannot use: a ring degree, a modulus, a chain, a security level.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// The GPU failed or is absent.
    #[error(transparent)]
    Gpu(#[from] GpuError),
    /// A model cannot be planned on the parameters it was given.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Two operands (or an operand and what the call expects) differ in shape.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// An input word is not fully reduced.
    #[error("word {word} at index {index} is not reduced: it must be below its prime {p}")]
    Unreduced { index: usize, word: u32, p: u32 },
    /// Operands live on different devices, or on a device other than the backend's.
    #[error("operand lives on {found}, but this operation runs on {expected}")]
    WrongDevice { expected: String, found: String },
    /// Operands from different parameter sets, or at levels or scales that do not fit together.
    #[error("operands do not fit together: {0}")]
    Mismatch(String),
    /// Values that cannot be encoded (not finite, too many, or too large for the scale and level).
    #[error("cannot encode: {0}")]
    Encoding(String),
    /// An operation needs an evaluation key that was not provided.
    #[error("missing key: {0}")]
    MissingKey(String),
    /// Bytes that are not a valid serialization of what was asked for.
    #[error("invalid serialized data: {0}")]
    Deserialize(String),
    /// A data file that cannot be read or is not what it claims to be.
    #[error("{path}: {why}")]
    Data { path: String, why: String },
    /// A bad option or specification from the caller (an architecture, an approximation, a
    /// count out of range).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A check of hegpu's own consistency failed: a bug in hegpu, not in what the caller gave.
    #[error("internal error (a bug in hegpu; please report it): {0}")]
    Internal(String),
}

/// Parameters hegpu cannot use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
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
    /// Parameters weaker than the requested security level.
    #[error(
        "insecure parameters: log2(QP) = {log_qp} bits exceeds the {max} bits allowed at N = {n} for 128-bit security (ternary secret); ask for SecurityLevel::None only in tests"
    )]
    Insecure { n: usize, log_qp: u32, max: u32 },
    /// A chain, scale or preset hegpu cannot build or use (too few or too many primes, prime
    /// sizes outside 20 to 31 bits, special primes smaller than a key-switching digit, a
    /// scale outside 2^1 to 2^60, more levels than a preset has).
    #[error("parameters hegpu cannot use: {0}")]
    Unsupported(String),
}

/// The GPU failed or is absent. All but [`NoAdapter`](GpuError::NoAdapter) are failures the
/// same work survives on the CPU ([`Error::is_gpu_failure`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    /// No GPU adapter could be found (or one is required and none exists).
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// The GPU refused an allocation: the data does not fit the adapter.
    #[error("the GPU cannot hold {bytes} bytes: {why}")]
    OutOfMemory { bytes: u64, why: String },
    /// The GPU device was lost (driver reset, removal, or a simulated loss): nothing more can
    /// run on it; work in flight must be redone elsewhere.
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),
    /// Any other error reported by the GPU driver or by wgpu validation.
    #[error("GPU error: {0}")]
    Driver(String),
}

/// A model that cannot be planned on the parameters it was given.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// A chain shorter than the plan: `plan` needs `needed` levels, `chain` (the parameters,
    /// a preset) has `have`.
    #[error("{plan} needs {needed} levels but {chain} has {have}")]
    TooFewLevels {
        plan: String,
        needed: usize,
        chain: String,
        have: usize,
    },
    /// No parameter preset holds the model; `refusals` says why each did not.
    #[error("no parameter preset holds the model{packing} ({refusals})")]
    NoPreset {
        packing: &'static str,
        refusals: String,
    },
    /// A stage's values would not fit its modulus at the planned scale and level.
    #[error(
        "{stage}: values up to {bound:.3e} at scale 2^{log_scale:.1} need {need_bits:.1} bits, level {level} has {have_bits:.1}"
    )]
    Overflow {
        stage: String,
        bound: f64,
        log_scale: f64,
        need_bits: f64,
        level: usize,
        have_bits: f64,
    },
    /// The model holds what the packing cannot compute or lay out.
    #[error("{0}")]
    Unsupported(String),
    /// Calibration inputs that cannot bound the values the plan must hold.
    #[error("calibration: {0}")]
    Calibration(String),
}

impl Error {
    /// Whether the error is the GPU failing (lost, out of memory, or a driver error) rather than
    /// bad input: the same work can then be done on the CPU.
    pub fn is_gpu_failure(&self) -> bool {
        matches!(
            self,
            Error::Gpu(
                GpuError::DeviceLost(_) | GpuError::OutOfMemory { .. } | GpuError::Driver(_)
            )
        )
    }
}

/// Result with hegpu's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
