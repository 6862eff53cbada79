"""ONNX import from Python: the PyTorch ReLU MLP fixture, its ReLUs replaced by polynomials,
and the preset that holds it."""

import numpy as np
import pytest

import hegpu
from conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "onnx"


def accuracy(model, images, labels):
    return float((model.forward(images).argmax(axis=1) == labels).mean())


def test_import_approximate_and_choose_parameters(mnist, calibration):
    relu = hegpu.Model.from_onnx(FIXTURES / "mlp-relu.onnx")
    with pytest.raises(hegpu.HegpuError, match="relu"):
        relu.levels
    poly = relu.approximate(calibration, ["relu:8"])
    assert poly.levels == 9
    assert poly.smallest_preset(calibration) == "deep16384"
    # The plan's parameters: deep16384's chain cut to the 9 levels it uses.
    cut = poly.smallest_parameters(calibration)
    assert (cut.degree, cut.levels) == (16384, 9)
    assert cut.to_bytes() == hegpu.Parameters.preset("deep16384", levels=9).to_bytes()
    with pytest.raises(hegpu.HegpuError, match="13 levels"):
        hegpu.Parameters.preset("deep16384", levels=13)
    test, labels = mnist["test_images"], mnist["test_labels"]
    before, after = accuracy(relu, test, labels), accuracy(poly, test, labels)
    assert before > 0.93 and abs(before - after) <= 0.01, (before, after)
    # The same logits as ONNX Runtime recorded when the fixture was made.
    import json

    expected = json.loads((FIXTURES / "mlp-relu.expected.json").read_text())["logits"]
    got = relu.forward(test[: len(expected)])
    np.testing.assert_allclose(got, np.array(expected, dtype=np.float32), rtol=1e-4, atol=1e-4)


def nested_graphs(depth, wire):
    """A model whose graph's node's attribute holds a graph, `depth` times, every tag of wire
    type `wire`, written byte by byte as an attacker would."""

    def varint(v):
        out = bytearray()
        while v >= 0x80:
            out.append(v & 0x7F | 0x80)
            v >>= 7
        out.append(v)
        return bytes(out)

    def field(number, payload):
        return varint(number << 3 | wire) + varint(len(payload)) + payload

    inner = b""
    for _ in range(depth):
        inner = field(1, field(5, field(6, inner)))
    return field(7, inner)


def test_bad_onnx_and_specs_raise(tmp_path, calibration):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07not a model")
    with pytest.raises(hegpu.HegpuError):
        hegpu.Model.from_onnx(bad)
    # Graphs nested 2,000 deep in node attributes behind varint tags: an error, not a dead
    # interpreter (the reader before prost recursed once per level, past the stack).
    bad.write_bytes(nested_graphs(2000, wire=0))
    with pytest.raises(hegpu.HegpuError, match="wire type"):
        hegpu.Model.from_onnx(bad)
    # The same behind tags of the right type: the nested graphs are skipped, never decoded.
    bad.write_bytes(nested_graphs(2000, wire=2))
    with pytest.raises(hegpu.HegpuError, match="no ONNX opset"):
        hegpu.Model.from_onnx(bad)
    relu = hegpu.Model.from_onnx(FIXTURES / "mlp-relu.onnx")
    with pytest.raises(hegpu.HegpuError, match="FUNCTION:DEGREE"):
        relu.approximate(calibration, ["relu"])
    with pytest.raises(hegpu.HegpuError, match="approximated twice"):
        relu.approximate(calibration, ["relu:4", "relu:8"])
