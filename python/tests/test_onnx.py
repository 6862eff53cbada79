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
    test, labels = mnist["test_images"], mnist["test_labels"]
    before, after = accuracy(relu, test, labels), accuracy(poly, test, labels)
    assert before > 0.93 and abs(before - after) <= 0.01, (before, after)
    # The same logits as ONNX Runtime recorded when the fixture was made.
    import json

    expected = json.loads((FIXTURES / "mlp-relu.expected.json").read_text())["logits"]
    got = relu.forward(test[: len(expected)])
    np.testing.assert_allclose(got, np.array(expected, dtype=np.float32), rtol=1e-4, atol=1e-4)


def test_bad_onnx_and_specs_raise(tmp_path, calibration):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07not a model")
    with pytest.raises(hegpu.HegpuError):
        hegpu.Model.from_onnx(bad)
    relu = hegpu.Model.from_onnx(FIXTURES / "mlp-relu.onnx")
    with pytest.raises(hegpu.HegpuError, match="FUNCTION:DEGREE"):
        relu.approximate(calibration, ["relu"])
