"""The Python client of `hegpu serve`: the same digits as the Rust client over HTTP in both
packings, the server's errors as ServiceError, keys registered again after a restart."""

import re
import subprocess

import numpy as np
import pytest

from conftest import ROOT
from hegpu.http import ServiceClient, ServiceError
from test_client_server import hegpu_binary


class Served:
    """`hegpu serve` on a free port, stopped on exit."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [hegpu_binary(), "serve", "--device", "cpu", "--listen", "127.0.0.1:0", *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"http://[0-9.:]+", line)
        assert m, line + self.proc.stderr.read()
        self.url = m.group(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        assert self.proc.wait(timeout=120) == 0


def rust_client(url, images, *args):
    out = subprocess.run([hegpu_binary(), "client", "--server", url, "--images", str(images),
                          *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return int(re.search(r"accuracy: (\d+) of", out).group(1))


def test_the_batch_packing_through_the_service(mnist):
    with Served() as served:
        client = ServiceClient(served.url, data=ROOT / "data" / "mnist")
        assert client.info["packing"] == "batch" and client.info["request_images"] == 4096
        logits = client.classify(mnist["test_images"][:40], per_request=20)
        assert logits.shape == (40, 10) and logits.dtype == np.float32
        right = int((logits.argmax(1) == mnist["test_labels"][:40]).sum())
        assert right == rust_client(served.url, 40)


def test_the_latency_packing_and_the_servers_errors(mnist):
    data = ROOT / "data" / "mnist"
    with Served("--packing", "latency", "--model", "cryptonets-5") as served:
        with pytest.raises(ValueError, match="server's model"):
            ServiceClient(served.url, data=data)
        with pytest.raises(ValueError, match="fingerprint"):
            ServiceClient(served.url, model="cryptonets-16", data=data)
        client = ServiceClient(served.url, model="cryptonets-5", data=data)
        logits = client.classify(mnist["test_images"][:3])
        assert int((logits.argmax(1) == mnist["test_labels"][:3]).sum()) == rust_client(
            served.url, 3, "--model", "cryptonets-5")
        with pytest.raises(ServiceError) as e:
            client._call("POST", "/v1/infer/00ff", b"garbage")
        assert e.value.status == 404 and e.value.code == "unknown_key"
        with pytest.raises(ServiceError) as e:
            client._call("POST", f"/v1/infer/{client.key_id}", b"garbage")
        assert e.value.status == 400 and "not a file of the hegpu" in e.value.message
    # A restarted server knows no keys: the client registers them again.
    with Served("--packing", "latency", "--model", "cryptonets-5") as restarted:
        client.url = restarted.url
        again = client.classify(mnist["test_images"][:3])
        assert (again.argmax(1) == logits.argmax(1)).all()
