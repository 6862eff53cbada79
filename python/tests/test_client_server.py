"""The client and server from Python: round trips against the plaintext model and the Rust
job, the latency packing, and the errors bad input must raise."""

import json
import os
import pickle
import subprocess
import warnings

import numpy as np
import pytest

import hegpu
from conftest import ROOT


def test_a_batch_round_trip_gives_the_plaintext_models_digits(mnist, model, client, server):
    images = mnist["test_images"][:64]
    result = server.evaluate(client.encrypt_batch(images, server.input_range))
    logits = client.decrypt_batch(result, 64)
    plain = model.forward(images)
    assert logits.shape == (64, 10) and logits.dtype == np.float32
    assert (logits.argmax(axis=1) == plain.argmax(axis=1)).all()
    # The batch packing keeps about 12 bits on logits up to 100 (the Rust job: 0.016).
    assert np.abs(logits - plain).max() < 0.05


def hegpu_binary():
    for path in [os.environ.get("HEGPU_BIN"), ROOT / "target/release/hegpu", ROOT / "target/debug/hegpu"]:
        if path and os.path.exists(path):
            return str(path)
    raise AssertionError("no hegpu binary: build it (cargo build) or set HEGPU_BIN")


def test_the_same_digits_as_the_rust_job(tmp_path, mnist, client, server):
    report = tmp_path / "job.json"
    subprocess.run(
        [hegpu_binary(), "mnist", "--images", "40", "--packing", "batch", "--device", "cpu",
         "--json", str(report)],
        cwd=ROOT, check=True, capture_output=True)
    rust = json.loads(report.read_text())["predictions"]
    images = mnist["test_images"][:40]
    ours = client.decrypt_batch(server.evaluate(client.encrypt_batch(images, server.input_range)), 40).argmax(axis=1)
    assert list(ours) == rust


def test_the_latency_packing_from_python(mnist, model, params, calibration):
    plan = hegpu.LatencyPlan(model, params, calibration[:64], request_images=3)
    assert plan.images_per_ciphertext == 1 and plan.key_switches > 0
    assert plan.request_images == 3 and plan.input_range == (0.0, 1.0)
    client = hegpu.Client(params, seed=2)
    server = hegpu.LatencyServer(params, client.evaluation_keys(plan.rotations()), plan)
    images = mnist["test_images"][:3]
    logits = client.decrypt_latency(plan, server.evaluate(client.encrypt_latency(plan, images)), 3)
    plain = model.forward(images)
    assert logits.shape == (3, 10)
    assert (logits.argmax(axis=1) == plain.argmax(axis=1)).all()
    assert np.abs(logits - plain).max() < 0.1


def test_out_of_range_inputs_and_oversized_requests_raise(mnist, model, params, calibration,
                                                          client, server):
    # Pixels ×100: the plan's scales assume [0, 1]; encrypted, they decrypt to garbage.
    assert server.input_range == (0.0, 1.0)
    images = mnist["test_images"][:4] * 100
    with pytest.raises(hegpu.HegpuError, match=r"outside \[0, 1\]"):
        client.encrypt_batch(images, server.input_range)
    with pytest.raises(hegpu.HegpuError, match="input range"):
        client.encrypt_batch(images, (1.0, 0.0))
    with pytest.warns(UserWarning, match="clamped"):
        clamped = client.encrypt_batch(images, server.input_range, clamp=True)
    digits = client.decrypt_batch(server.evaluate(clamped), 4).argmax(axis=1)
    assert (digits == model.forward(np.clip(images, 0, 1)).argmax(axis=1)).all()
    # The latency packing: the plan's range, and requests of the plan's size only.
    one = hegpu.LatencyPlan(model, params, calibration[:64])
    with pytest.raises(hegpu.HegpuError, match="outside"):
        client.encrypt_latency(one, images[:1])
    with pytest.raises(hegpu.HegpuError, match="at most 1"):
        client.encrypt_latency(one, mnist["test_images"][:2])
    wide = hegpu.LatencyPlan(model, params, calibration[:64], request_images=2)
    server_of_one = hegpu.LatencyServer(params, client.evaluation_keys(one.rotations()), one)
    with pytest.raises(hegpu.HegpuError, match="1 to 1 groups"):
        server_of_one.evaluate(client.encrypt_latency(wide, mnist["test_images"][:2]))
    # A batch-packing request is not a latency request, nor the other way round.
    with pytest.raises(hegpu.HegpuError, match="groups"):
        server_of_one.evaluate(client.encrypt_batch(mnist["test_images"][:2], server.input_range))
    with pytest.raises(hegpu.HegpuError, match="shape"):
        server.evaluate(client.encrypt_latency(one, mnist["test_images"][:1]))


def test_bad_shapes_and_dtypes_raise(client, server):
    with pytest.raises(TypeError):
        client.encrypt_batch(np.zeros((2, 3, 4), dtype=np.float32), (0.0, 1.0))
    with pytest.raises(TypeError):
        client.encrypt_batch(np.zeros((2, 784), dtype=np.float64), (0.0, 1.0))
    with pytest.raises(hegpu.HegpuError, match="no images"):
        client.encrypt_batch(np.zeros((0, 784), dtype=np.float32), (0.0, 1.0))
    nan = np.zeros((1, 784), dtype=np.float32)
    nan[0, 5] = np.nan
    with pytest.raises(hegpu.HegpuError):
        client.encrypt_batch(nan, (0.0, 1.0))
    # A batch of 100-value images for a model of 784.
    with pytest.raises(hegpu.HegpuError):
        server.evaluate(client.encrypt_batch(np.zeros((2, 100), dtype=np.float32), (0.0, 1.0)))
    # The helper converts what it can and names what it cannot.
    assert hegpu.images(np.zeros(784)).shape == (1, 784)
    with pytest.raises(ValueError, match="expected 784"):
        hegpu.images(np.zeros((2, 100)), width=784)
    with pytest.raises(ValueError, match="not finite"):
        hegpu.images([[np.inf, 0.0]])
    with pytest.raises(TypeError):
        hegpu.images(np.array(["a", "b"]))


def test_corrupted_bytes_and_foreign_keys_raise(params, model, calibration, client, server, mnist):
    batch = bytearray(client.encrypt_batch(mnist["test_images"][:2], server.input_range))
    batch[len(batch) // 2] ^= 0x40
    with pytest.raises(hegpu.HegpuError):
        server.evaluate(bytes(batch))
    with pytest.raises(hegpu.HegpuError):
        server.evaluate(b"not a ciphertext")
    # Keys of another parameter set.
    small = hegpu.Parameters(12, [30, 24, 24, 24, 24, 24], [31], 24, secure=False)
    other = hegpu.Client(small, seed=3)
    with pytest.raises(hegpu.HegpuError):
        hegpu.Server(params, other.evaluation_keys(), model, calibration)
    # A batch under another client's keys: the server holds only its client's keys.
    stranger = hegpu.Client(params, seed=4)
    with pytest.raises(hegpu.HegpuError, match="key set"):
        server.evaluate(stranger.encrypt_batch(mnist["test_images"][:2], server.input_range))
    # A result decrypted by a client of another key set.
    result = server.evaluate(client.encrypt_batch(mnist["test_images"][:2], server.input_range))
    with pytest.raises(hegpu.HegpuError):
        stranger.decrypt_batch(result, 2)
    with pytest.raises(hegpu.HegpuError):
        hegpu.Parameters.preset("tiny")
    with pytest.raises(hegpu.HegpuError):
        hegpu.Parameters(13, [60], [31], 24)


def test_the_secret_key_stays_inside_the_client(client):
    text = repr(client) + str(client)
    assert "secret key held" in text
    assert not any(name for name in dir(client) if "secret" in name or name == "sk")
    with pytest.raises(TypeError):
        pickle.dumps(client)


def test_a_server_that_takes_the_cpu_says_why_once(params, keys, model, calibration, client,
                                                   mnist):
    server = hegpu.Server(params, keys, model, calibration, device="auto")
    batch = client.encrypt_batch(mnist["test_images"][:4], server.input_range)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        server.evaluate(batch)
        server.evaluate(batch)
    said = [str(w.message) for w in caught]
    if "GPU" in server.device:
        assert said == []
    else:
        assert len(said) == 1 and "using the CPU" in said[0], said
