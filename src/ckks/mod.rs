//! RNS-CKKS written only against [`Backend`](crate::backend::Backend) operations: the same
//! code runs on any GPU or on the CPU and produces the same ciphertext words.
//!
//! Secret-key work (key generation, decryption, secret-key encryption) runs on the host; the
//! [`Evaluator`] is built from [`EvaluationKeys`] only and cannot reach a secret key.

mod ciphertext;
mod encoding;
mod encryptor;
mod evaluator;
mod key_switch;
mod keys;
mod params;
mod sampling;
mod serial;

pub use ciphertext::{CipherMeta, Ciphertext, Plaintext};
pub use encoding::{Encoder, Precision, precision};
pub use encryptor::{Decryptor, Encryptor};
pub use evaluator::Evaluator;
pub(crate) use key_switch::key_switch_chunk;
pub use keys::{
    EvaluationKeys, GaloisKeys, KeyGenerator, KeySetId, PublicKey, RelinKey, SecretKey,
    SwitchingKey,
};
pub use params::{ParameterLiteral, Parameters, Preset, SecurityLevel, max_log_qp_128};
pub use sampling::Seed;
