//! The IDX format of MNIST: a big-endian header (two zero bytes, the element type 0x08 for
//! unsigned bytes, the number of dimensions, then each dimension as a u32) followed by the
//! elements. Files may be gzip-compressed (recognised by their magic bytes, not their name).
//! Everything is checked: type, dimensions, and that the data is exactly as long as declared.

use crate::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest file accepted after decompression (the full MNIST training set is 47 MB).
const MAX_BYTES: u64 = 1 << 30;

/// Images stored row-major, one byte per pixel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Images {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    /// `count × rows × cols` pixels.
    pub pixels: Vec<u8>,
}

impl Images {
    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let size = self.rows * self.cols;
        &self.pixels[i * size..(i + 1) * size]
    }
}

fn data_error(path: &Path, why: impl Into<String>) -> Error {
    Error::Data {
        path: path.display().to_string(),
        why: why.into(),
    }
}

/// The file's bytes, decompressed when it starts with the gzip magic.
fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| data_error(path, e.to_string()))?;
    let mut raw = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut raw)
        .map_err(|e| data_error(path, e.to_string()))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .take(MAX_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| data_error(path, format!("bad gzip data: {e}")))?;
        out
    } else {
        raw
    };
    if bytes.len() as u64 > MAX_BYTES {
        return Err(data_error(path, "larger than 1 GiB"));
    }
    Ok(bytes)
}

/// Parses an IDX header of unsigned bytes with `dims` dimensions; returns them and the data.
fn parse<'a>(path: &Path, bytes: &'a [u8], dims: usize) -> Result<(Vec<usize>, &'a [u8])> {
    let head = 4 + 4 * dims;
    if bytes.len() < head {
        return Err(data_error(path, "shorter than an IDX header"));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(data_error(path, "not an IDX file (bad magic)"));
    }
    if bytes[2] != 0x08 {
        return Err(data_error(
            path,
            format!(
                "element type {:#04x}, expected 0x08 (unsigned byte)",
                bytes[2]
            ),
        ));
    }
    if usize::from(bytes[3]) != dims {
        return Err(data_error(
            path,
            format!("{} dimensions, expected {dims}", bytes[3]),
        ));
    }
    let sizes: Vec<usize> = (0..dims)
        .map(|d| {
            let at = 4 + 4 * d;
            u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let expected = sizes
        .iter()
        .try_fold(1usize, |acc, &s| acc.checked_mul(s))
        .ok_or_else(|| data_error(path, "dimensions overflow"))?;
    let data = &bytes[head..];
    if data.len() != expected {
        return Err(data_error(
            path,
            format!(
                "{} data bytes, the header {sizes:?} declares {expected}",
                data.len()
            ),
        ));
    }
    Ok((sizes, data))
}

/// Reads an IDX3 image file.
pub fn read_images(path: &Path) -> Result<Images> {
    let bytes = read_bytes(path)?;
    let (sizes, data) = parse(path, &bytes, 3)?;
    Ok(Images {
        count: sizes[0],
        rows: sizes[1],
        cols: sizes[2],
        pixels: data.to_vec(),
    })
}

/// Reads an IDX1 label file.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_bytes(path)?;
    let (_, data) = parse(path, &bytes, 1)?;
    Ok(data.to_vec())
}

/// MNIST's four files: 28×28 images and labels 0–9.
#[derive(Clone, Debug)]
pub struct Mnist {
    pub train_images: Images,
    pub train_labels: Vec<u8>,
    pub test_images: Images,
    pub test_labels: Vec<u8>,
}

impl Mnist {
    /// Loads `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-…` or `test-…`
    /// from `dir`, each with or without `.gz`.
    pub fn load(dir: &Path) -> Result<Self> {
        let find = |stems: &[&str]| -> Result<PathBuf> {
            for stem in stems {
                for name in [format!("{stem}.gz"), stem.to_string()] {
                    let p = dir.join(&name);
                    if p.is_file() {
                        return Ok(p);
                    }
                }
            }
            Err(data_error(dir, format!("no {} (or .gz) here", stems[0])))
        };
        let train_images = read_images(&find(&["train-images-idx3-ubyte"])?)?;
        let train_labels = read_labels(&find(&["train-labels-idx1-ubyte"])?)?;
        let test_images = read_images(&find(&[
            "test-images-idx3-ubyte",
            "t10k-images-idx3-ubyte",
        ])?)?;
        let test_labels = read_labels(&find(&[
            "test-labels-idx1-ubyte",
            "t10k-labels-idx1-ubyte",
        ])?)?;
        for (what, images, labels) in [
            ("training", &train_images, &train_labels),
            ("test", &test_images, &test_labels),
        ] {
            if images.count != labels.len() {
                return Err(data_error(
                    dir,
                    format!("{} {what} images but {} labels", images.count, labels.len()),
                ));
            }
            if (images.rows, images.cols) != (28, 28) {
                return Err(data_error(
                    dir,
                    format!(
                        "{what} images are {}×{}, not 28×28",
                        images.rows, images.cols
                    ),
                ));
            }
            if let Some(l) = labels.iter().find(|&&l| l > 9) {
                return Err(data_error(dir, format!("{what} label {l} is not a digit")));
            }
        }
        Ok(Self {
            train_images,
            train_labels,
            test_images,
            test_labels,
        })
    }
}
