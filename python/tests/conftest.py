"""Shared fixtures: the repository's MNIST sample and shipped model, parameters, a client
and a server made once per test session (seeded keys: reproducible, for tests only)."""

import pathlib

import pytest

import hegpu

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def mnist():
    return hegpu.load_mnist(ROOT / "data" / "mnist")


@pytest.fixture(scope="session")
def model():
    return hegpu.Model.load(ROOT / "models" / "cryptonets-5.safetensors")


@pytest.fixture(scope="session")
def params():
    return hegpu.Parameters.preset("cryptonets8192")


@pytest.fixture(scope="session")
def calibration(mnist):
    return mnist["train_images"][:1000]


@pytest.fixture(scope="session")
def client(params):
    return hegpu.Client(params, seed=1)


@pytest.fixture(scope="session")
def keys(client):
    return client.evaluation_keys()


@pytest.fixture(scope="session")
def server(params, keys, model, calibration):
    return hegpu.Server(params, keys, model, calibration, device="cpu")
