//! The IDX format of MNIST: a big-endian header (two zero bytes, the element type 0x08 for
//! unsigned bytes, the number of dimensions, then each dimension as a u32) followed by the
//! elements. Files may be gzip-compressed (recognised by their magic bytes, not their name).
//! Everything is checked: type, dimensions, and that the data is exactly as long as declared.

use crate::{Error, Result};
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

/// Largest data accepted, decompressed (the full MNIST training set is 47 MB).
pub const MAX_IDX_BYTES: usize = 1 << 30;

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

/// Reads an IDX file of unsigned bytes with `dims` dimensions from `source` (gzip-compressed
/// or not, told by its first two bytes); returns the sizes and the data. Memory is bounded by
/// the data the header announces (at most `max_bytes`): nothing is decompressed past it, and
/// data after it, or after the gzip stream, is refused.
pub fn read_idx(
    mut source: impl BufRead,
    dims: usize,
    max_bytes: usize,
) -> std::result::Result<(Vec<usize>, Vec<u8>), String> {
    let gzip = source
        .fill_buf()
        .map_err(|e| e.to_string())?
        .starts_with(&[0x1f, 0x8b]);
    if !gzip {
        return read_plain(&mut source, dims, max_bytes);
    }
    let mut decoder = flate2::bufread::GzDecoder::new(source);
    let read = read_plain(&mut decoder, dims, max_bytes).map_err(|e| format!("{e} (gzip)"))?;
    let mut rest = decoder.into_inner();
    let after = rest.fill_buf().map_err(|e| e.to_string())?.len();
    if after > 0 {
        return Err("data after the gzip stream".into());
    }
    Ok(read)
}

fn read_plain(
    source: &mut impl Read,
    dims: usize,
    max_bytes: usize,
) -> std::result::Result<(Vec<usize>, Vec<u8>), String> {
    let mut head = vec![0u8; 4 + 4 * dims];
    source
        .read_exact(&mut head)
        .map_err(|e| format!("shorter than an IDX header ({e})"))?;
    if head[0] != 0 || head[1] != 0 {
        return Err("not an IDX file (bad magic)".into());
    }
    if head[2] != 0x08 {
        return Err(format!(
            "element type {:#04x}, expected 0x08 (unsigned byte)",
            head[2]
        ));
    }
    if usize::from(head[3]) != dims {
        return Err(format!("{} dimensions, expected {dims}", head[3]));
    }
    let sizes: Vec<usize> = head[4..]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes(c.try_into().expect("4 bytes")) as usize)
        .collect();
    let expected = sizes
        .iter()
        .try_fold(1usize, |acc, &s| acc.checked_mul(s))
        .filter(|&e| e <= max_bytes)
        .ok_or_else(|| format!("the header {sizes:?} declares more than {max_bytes} bytes"))?;
    let mut data = Vec::new();
    data.try_reserve_exact(expected)
        .map_err(|e| format!("cannot hold {expected} bytes: {e}"))?;
    source
        .take(expected as u64)
        .read_to_end(&mut data)
        .map_err(|e| e.to_string())?;
    if data.len() != expected {
        return Err(format!(
            "{} data bytes, the header {sizes:?} declares {expected}",
            data.len()
        ));
    }
    let mut probe = [0u8; 1];
    if source.read(&mut probe).map_err(|e| e.to_string())? > 0 {
        return Err(format!(
            "more data than the header {sizes:?} declares ({expected} bytes)"
        ));
    }
    Ok((sizes, data))
}

fn read_file(path: &Path, dims: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let file = std::fs::File::open(path).map_err(|e| data_error(path, e.to_string()))?;
    read_idx(std::io::BufReader::new(file), dims, MAX_IDX_BYTES).map_err(|e| data_error(path, e))
}

/// Reads an IDX3 image file.
pub fn read_images(path: &Path) -> Result<Images> {
    let (sizes, pixels) = read_file(path, 3)?;
    Ok(Images {
        count: sizes[0],
        rows: sizes[1],
        cols: sizes[2],
        pixels,
    })
}

/// Reads an IDX1 label file.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    Ok(read_file(path, 1)?.1)
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
