//! Ciphertext tensors in the CryptoNets batch layout: an n-d array of activations, one
//! ciphertext per activation, slot i of every ciphertext holding image i, so one tensor carries
//! a batch of up to N/2 images. All ciphertexts share one level and scale and live together in
//! one device batch (the [`Ciphertext`] they are stored in).
//!
//! ```
//! use hegpu::backend::{Backend, CpuBackend};
//! use hegpu::ckks::*;
//! use hegpu::tensor::CipherTensor;
//! use std::sync::Arc;
//!
//! # fn main() -> hegpu::Result<()> {
//! let params = Parameters::preset(Preset::CryptoNets8192)?;
//! let backend: Arc<dyn Backend> = Arc::new(CpuBackend::new(None)?);
//! let sk = KeyGenerator::new(&params, Seed::Os).secret_key()?;
//! let encoder = Encoder::new(&params);
//! let encryptor = Encryptor::with_secret_key(&params, &sk, backend.clone(), Seed::Os)?;
//! // Three images of 2×2 values: `[image][activation]`.
//! let images = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 0.0, 0.5];
//! let x = CipherTensor::encrypt(&images, &[2, 2], &encoder, &encryptor, params.default_scale())?;
//! assert_eq!((x.shape(), x.len()), (&[2, 2][..], 4));
//! let back = x.decrypt(&Decryptor::new(&params, &sk)?, &encoder, 3, &*backend)?;
//! assert!((back[1][2] - 0.7).abs() < 1e-3);
//! # Ok(())
//! # }
//! ```

use crate::backend::Backend;
use crate::ckks::{Ciphertext, Decryptor, Encoder, Encryptor, Parameters};
use crate::{Error, Result};

/// An n-d array of ciphertexts at one level and scale, image i in slot i of each.
pub struct CipherTensor {
    ct: Ciphertext,
    shape: Vec<usize>,
}

impl std::fmt::Debug for CipherTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CipherTensor {{ shape: {:?}, level: {}, scale: 2^{:.2}, on: {} }}",
            self.shape,
            self.level(),
            self.scale().log2(),
            self.location()
        )
    }
}

impl CipherTensor {
    /// Views `ct` (two-polynomial ciphertexts, one per activation) as a tensor of `shape`.
    pub fn new(ct: Ciphertext, shape: &[usize]) -> Result<Self> {
        let len: usize = shape.iter().product();
        if shape.is_empty() || len != ct.count() {
            return Err(Error::Shape(format!(
                "a tensor of shape {shape:?} needs {len} ciphertexts, got {}",
                ct.count()
            )));
        }
        if ct.size() != 2 {
            return Err(Error::Shape(format!(
                "tensor entries are two-polynomial ciphertexts, not {}",
                ct.size()
            )));
        }
        Ok(Self {
            ct,
            shape: shape.to_vec(),
        })
    }

    /// Encrypts `images` (`[image][activation]`, each `shape`'s product long) at `scale` and
    /// the top level: activation j of image i goes to slot i of ciphertext j.
    pub fn encrypt(
        images: &[f32],
        shape: &[usize],
        encoder: &Encoder,
        encryptor: &Encryptor,
        scale: f64,
    ) -> Result<Self> {
        let params = encryptor.params();
        let columns = Self::columns(images, shape, params)?;
        let backend = encryptor.backend();
        let pt = encoder.encode_many(&columns, params.max_level(), scale, &**backend)?;
        Self::new(encryptor.encrypt(&pt)?, shape)
    }

    /// [`encrypt`](Self::encrypt), then [`to_bytes`](Self::to_bytes), the same bytes, made a
    /// ciphertext at a time ([`Encryptor::encrypt_to_bytes`]): what a client sends, without
    /// holding the batch's plaintexts and ciphertexts whole.
    pub fn encrypt_to_bytes(
        images: &[f32],
        shape: &[usize],
        encoder: &Encoder,
        encryptor: &Encryptor,
        scale: f64,
    ) -> Result<Vec<u8>> {
        let params = encryptor.params();
        let columns = Self::columns(images, shape, params)?;
        encryptor.encrypt_to_bytes(encoder, &columns, params.max_level(), scale)
    }

    /// The slot vectors of `images` of `shape`: vector j holds activation j of every image.
    fn columns(images: &[f32], shape: &[usize], params: &Parameters) -> Result<Vec<Vec<f64>>> {
        let len: usize = shape.iter().product();
        if len == 0 || images.is_empty() || !images.len().is_multiple_of(len) {
            return Err(Error::Shape(format!(
                "{} values are not whole images of shape {shape:?}",
                images.len()
            )));
        }
        let count = images.len() / len;
        if count > params.slots() {
            return Err(Error::Shape(format!(
                "{count} images do not fit one batch of {} slots",
                params.slots()
            )));
        }
        Ok((0..len)
            .map(|j| (0..count).map(|i| f64::from(images[i * len + j])).collect())
            .collect())
    }

    /// Decrypts the first `images` slots into `[image][activation]`.
    pub fn decrypt(
        &self,
        decryptor: &Decryptor,
        encoder: &Encoder,
        images: usize,
        backend: &dyn Backend,
    ) -> Result<Vec<Vec<f32>>> {
        if images > encoder.slots() {
            return Err(Error::Shape(format!(
                "{images} images asked of a batch of {} slots",
                encoder.slots()
            )));
        }
        let columns: Vec<Vec<f64>> = decryptor
            .decrypt_all(&self.ct, backend)?
            .iter()
            .map(|p| encoder.decode(p))
            .collect::<Result<_>>()?;
        Ok((0..images)
            .map(|i| columns.iter().map(|c| c[i] as f32).collect())
            .collect())
    }

    /// The ciphertexts in the compact format ([`Ciphertext::to_bytes`]); the shape is not
    /// stored, the receiver states the one it expects.
    pub fn to_bytes(&self, params: &Parameters, backend: &dyn Backend) -> Result<Vec<u8>> {
        self.ct.to_bytes(params, backend)
    }

    /// Reads ciphertexts written by [`to_bytes`](Self::to_bytes) as a tensor of `shape`: an
    /// error when their number does not match it.
    pub fn from_bytes(
        bytes: &[u8],
        shape: &[usize],
        params: &Parameters,
        backend: &dyn Backend,
    ) -> Result<Self> {
        Self::new(Ciphertext::from_bytes(bytes, params, backend)?, shape)
    }

    /// The same ciphertexts under another shape with as many entries.
    pub fn reshape(self, shape: &[usize]) -> Result<Self> {
        Self::new(self.ct, shape)
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of ciphertexts (activations per image).
    pub fn len(&self) -> usize {
        self.ct.count()
    }

    /// Always false: a tensor has at least one entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn level(&self) -> usize {
        self.ct.level()
    }

    pub fn scale(&self) -> f64 {
        self.ct.scale()
    }

    /// Where the ciphertexts live ("the CPU", or the GPU adapter's name).
    pub fn location(&self) -> String {
        self.ct.location()
    }

    /// The ciphertexts, in row-major order of the shape.
    pub fn ciphertexts(&self) -> &Ciphertext {
        &self.ct
    }

    pub fn into_ciphertexts(self) -> Ciphertext {
        self.ct
    }
}
