//! The IDX reader on the shipped MNIST sample, plain and gzip, and on broken files.

use hegpu::data::{Mnist, read_images, read_labels};
use std::io::Read;
use std::path::{Path, PathBuf};

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hegpu-idx-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn the_shipped_sample_loads() {
    let m = Mnist::load(&sample()).unwrap();
    assert_eq!((m.train_images.count, m.test_images.count), (8000, 1000));
    assert_eq!((m.train_images.rows, m.train_images.cols), (28, 28));
    assert_eq!(m.train_labels.len(), 8000);
    // Every digit is present, and images are not blank.
    for d in 0..10u8 {
        assert!(m.test_labels.contains(&d));
    }
    let ink: u32 = m.test_images.image(0).iter().map(|&p| u32::from(p)).sum();
    assert!(ink > 10_000);
}

#[test]
fn plain_and_gzip_files_read_the_same() {
    let dir = scratch("plain");
    for name in ["test-images-idx3-ubyte", "test-labels-idx1-ubyte"] {
        let raw = gunzip(&sample().join(format!("{name}.gz")));
        std::fs::write(dir.join(name), raw).unwrap();
    }
    let plain = read_images(&dir.join("test-images-idx3-ubyte")).unwrap();
    let gz = read_images(&sample().join("test-images-idx3-ubyte.gz")).unwrap();
    assert_eq!(plain, gz);
    assert_eq!(
        read_labels(&dir.join("test-labels-idx1-ubyte")).unwrap(),
        read_labels(&sample().join("test-labels-idx1-ubyte.gz")).unwrap()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn broken_files_are_errors() {
    let dir = scratch("broken");
    let raw = gunzip(&sample().join("test-images-idx3-ubyte.gz"));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", raw[..raw.len() - 1].to_vec()),
        ("extra", [raw.clone(), vec![0]].concat()),
        ("magic", [vec![1u8], raw[1..].to_vec()].concat()),
        (
            "type",
            [raw[..2].to_vec(), vec![0x0d], raw[3..].to_vec()].concat(),
        ),
        (
            "dims",
            [raw[..3].to_vec(), vec![2], raw[4..].to_vec()].concat(),
        ),
        ("header", raw[..7].to_vec()),
        ("gzip", vec![0x1f, 0x8b, 1, 2, 3]),
        ("empty", vec![]),
    ];
    for (what, bytes) in cases {
        let p = dir.join(what);
        std::fs::write(&p, bytes).unwrap();
        assert!(read_images(&p).is_err(), "{what}");
    }
    assert!(read_labels(&dir.join("nothing-here")).is_err());
    // Images and labels that disagree in count.
    let mixed = scratch("mixed");
    for name in [
        "train-images-idx3-ubyte",
        "test-images-idx3-ubyte",
        "test-labels-idx1-ubyte",
    ] {
        std::fs::copy(
            sample().join(format!("{name}.gz")),
            mixed.join(format!("{name}.gz")),
        )
        .unwrap();
    }
    std::fs::copy(
        sample().join("test-labels-idx1-ubyte.gz"),
        mixed.join("train-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    let err = Mnist::load(&mixed).unwrap_err().to_string();
    assert!(
        err.contains("8000 training images but 1000 labels"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(mixed).unwrap();
}
