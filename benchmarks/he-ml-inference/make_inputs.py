"""Writes what the harness's input step writes, from MNIST IDX files (t10k- or test-, gzip or
not), with the
standard library only: the first COUNT test images as `test_pixels.txt` (784 pixels in [0, 1]
per line, six decimals) and their labels as `test_labels.txt`, in OUT_DIR. Past the files' test
images it starts over (the project's sample holds 1,000).

Usage: python3 make_inputs.py MNIST_DIR COUNT OUT_DIR
"""

import gzip
import pathlib
import struct
import sys


def idx(directory: pathlib.Path, stems: list) -> bytes:
    for stem in stems:
        for name in (stem + ".gz", stem):
            path = directory / name
            if path.exists():
                data = path.read_bytes()
                return gzip.decompress(data) if name.endswith(".gz") else data
    sys.exit(f"make_inputs.py: no {stems[0]} (or .gz) in {directory}")


def main() -> None:
    directory, count, out = pathlib.Path(sys.argv[1]), int(sys.argv[2]), pathlib.Path(sys.argv[3])
    images = idx(directory, ["t10k-images-idx3-ubyte", "test-images-idx3-ubyte"])
    labels = idx(directory, ["t10k-labels-idx1-ubyte", "test-labels-idx1-ubyte"])
    _, n, rows, cols = struct.unpack(">IIII", images[:16])
    if n == 0 or rows * cols != 784:
        sys.exit(f"make_inputs.py: {n} test images of {rows}x{cols}, not 28x28")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "test_pixels.txt", "w") as pixels:
        for i in range(count):
            k = i % n
            image = images[16 + 784 * k : 16 + 784 * (k + 1)]
            pixels.write(" ".join(f"{p / 255:.6f}" for p in image) + "\n")
    (out / "test_labels.txt").write_text("".join(f"{labels[8 + i % n]}\n" for i in range(count)))


if __name__ == "__main__":
    main()
