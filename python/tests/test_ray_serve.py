"""Two `hegpu serve` replicas behind one Ray Serve endpoint: the service's clients (Python and
Rust) get the digits one server gives, keys are fetched from the cluster's store by a replica
that lacks them, and the errors are the service's own."""

import json
import pathlib
import socket
import urllib.error
import urllib.request

import pytest
import ray
from ray import serve

from conftest import ROOT
from hegpu.http import ServiceClient
from hegpu.ray_serve import service_app
from test_client_server import hegpu_binary
from test_http import Served, rust_client

DATA = ROOT / "data" / "mnist"
MODEL = ROOT / "models" / "cryptonets-5.safetensors"
SERVE_ARGS = ["--packing", "latency", "--model", str(MODEL), "--data",
              str(DATA)]


@pytest.fixture(scope="module")
def endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    binary = str(pathlib.Path(hegpu_binary()).resolve())
    app = service_app(binary, ["--device", "cpu", *SERVE_ARGS], replicas=2)
    serve.run(app, name="hegpu", route_prefix="/")
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
    ray.shutdown()


def test_two_replicas_answer_as_one_server(endpoint, mnist):
    replicas = serve.status().applications["hegpu"].deployments["HegpuServer"].replica_states
    assert replicas.get("RUNNING") == 2, replicas
    images, labels = mnist["test_images"][:6], mnist["test_labels"][:6]
    with Served(*SERVE_ARGS) as one:
        alone = ServiceClient(one.url, model="cryptonets-5", data=DATA)
        logits_alone = alone.classify(images)
    # Three clients with their own keys, each request routed by its key id.
    for _ in range(3):
        client = ServiceClient(endpoint, model="cryptonets-5", data=DATA)
        assert client.info == alone.info
        logits = client.classify(images)
        assert (logits.argmax(1) == logits_alone.argmax(1)).all()
    right = int((logits_alone.argmax(1) == labels).sum())
    assert rust_client(endpoint, 6, "--model", "cryptonets-5") == right


def test_the_endpoint_answers_the_services_errors(endpoint):
    def post(path, body):
        request = urllib.request.Request(endpoint + path, data=body, method="POST")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(request, timeout=60)
        return e.value.code, json.loads(e.value.read())["code"]

    assert post("/v1/infer/00ff", b"request") == (404, "unknown_key")
    assert post("/v1/keys", b"not keys") == (400, "bad_request")
    assert post("/v1/nothing", b"") == (404, "not_found")
    assert urllib.request.urlopen(endpoint + "/health").read() == b"ok\n"
