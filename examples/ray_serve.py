"""Several `hegpu serve` replicas behind one Ray Serve endpoint.

Deploys hegpu.ray_serve's application: --replicas `hegpu serve` processes (on the nodes Ray
places them; the binary must be at --bin there) behind one HTTP endpoint that answers the API
of `hegpu serve`, so `hegpu client` and hegpu.http.ServiceClient call it unchanged. With
--images it classifies that many test digits through the endpoint with ServiceClient and
exits; without, it serves until Ctrl-C.

    pip install './python[serve]'
    cargo build --release -p hegpu-cli
    python examples/ray_serve.py --images 20                 # a local cluster, two replicas
    python examples/ray_serve.py --port 8000                 # serve; then, elsewhere:
    hegpu client --server http://127.0.0.1:8000 --images 100 --model cryptonets-5
"""

import argparse
import pathlib
import time

import ray
from ray import serve

import hegpu
from hegpu.http import ServiceClient
from hegpu.ray_serve import service_app

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--address", help="an existing Ray cluster (default: a local one)")
    p.add_argument("--replicas", type=int, default=2, help="hegpu serve processes [2]")
    p.add_argument("--host", default="127.0.0.1", help="the endpoint's address [127.0.0.1]")
    p.add_argument("--port", type=int, default=8000, help="the endpoint's port [8000]")
    p.add_argument("--bin", default=ROOT / "target" / "release" / "hegpu", type=pathlib.Path,
                   help="the hegpu binary on every node [target/release/hegpu]")
    p.add_argument("--packing", default="latency", choices=["batch", "latency"])
    p.add_argument("--model", default=ROOT / "models" / "cryptonets-5.safetensors",
                   type=pathlib.Path)
    p.add_argument("--data", default=ROOT / "data" / "mnist", type=pathlib.Path)
    p.add_argument("--key-memory", default="1G", help="each replica's --key-memory [1G]")
    p.add_argument("--images", type=int, default=0,
                   help="classify this many test digits through the endpoint, then exit")
    a = p.parse_args()
    if a.address:
        ray.init(address=a.address)
    else:
        ray.init(num_cpus=2 * a.replicas, include_dashboard=False)
    serve.start(http_options={"host": a.host, "port": a.port})
    serve_args = ["--device", "cpu", "--packing", a.packing, "--model", str(a.model.resolve()),
                  "--data", str(a.data.resolve()), "--key-memory", a.key_memory]
    serve.run(service_app(str(a.bin.resolve()), serve_args, replicas=a.replicas),
              name="hegpu", route_prefix="/")
    url = f"http://{a.host}:{a.port}"
    print(f"{a.replicas} hegpu serve replicas behind {url}", flush=True)
    if a.images:
        mnist = hegpu.load_mnist(a.data)
        model = a.model if a.packing == "latency" else None
        client = ServiceClient(url, model=model, data=a.data)
        t = time.perf_counter()
        logits = client.classify(mnist["test_images"][: a.images])
        right = int((logits.argmax(1) == mnist["test_labels"][: a.images]).sum())
        print(f"accuracy: {right} of {a.images} images through the endpoint in "
              f"{time.perf_counter() - t:.2f} s (keys included)")
        serve.shutdown()
        return
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()


if __name__ == "__main__":
    main()
