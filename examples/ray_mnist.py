"""The encrypted MNIST batch job on a Ray cluster.

The client (this process) makes the keys and encrypts the test digits in batches; Ray actors
evaluate the shipped model on them with public material only; the client decrypts and
prints accuracy, agreement with the plaintext model and images/s.

    pip install './python[ray]'
    python examples/ray_mnist.py                         # a local cluster on this machine
    python examples/ray_mnist.py --address ray://head:10001 --workers 8 --device gpu
"""

import argparse
import pathlib
import time

import numpy as np
import ray

import hegpu
import hegpu.ray as hray

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--address", help="an existing Ray cluster (default: a local one)")
    p.add_argument("--workers", type=int, default=2, help="server actors [2]")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per actor [1]")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu", "auto"])
    p.add_argument("--images", type=int, default=1000, help="test digits [1000]")
    p.add_argument("--batch", type=int, default=500, help="images per batch (up to 4096) [500]")
    p.add_argument("--packing", default="batch", choices=["batch", "latency"],
                   help="batch (CryptoNets) or latency (a request of --per-ciphertext images)")
    p.add_argument("--per-ciphertext", type=int, default=1,
                   help="latency packing: images per request [1]")
    p.add_argument("--data", default=ROOT / "data" / "mnist", type=pathlib.Path)
    p.add_argument("--model", default=ROOT / "models" / "cryptonets-5.safetensors",
                   type=pathlib.Path)
    a = p.parse_args()
    if a.address:
        ray.init(address=a.address)
    else:
        ray.init(num_cpus=a.workers * a.threads, include_dashboard=False)

    mnist = hegpu.load_mnist(a.data)
    model = hegpu.Model.load(a.model)
    params = hegpu.Parameters.preset("cryptonets8192")
    images = mnist["test_images"][: a.images]
    labels = mnist["test_labels"][: len(images)]

    calibration = mnist["train_images"][:1000]
    client = hegpu.Client(params)                      # the secret key stays here
    t = time.perf_counter()
    if a.packing == "latency":
        plan = hegpu.LatencyPlan(model, params, calibration, a.per_ciphertext)
        a.batch = plan.images_per_ciphertext
        keys = client.evaluation_keys(plan.rotations())
        encrypt_one = lambda x: client.encrypt_latency(plan, x)
        decrypt_one = lambda r, n: client.decrypt_latency(plan, r, n)
    else:
        keys = client.evaluation_keys()
        # The range the servers' plan is calibrated for (Server.input_range computes the same).
        input_range = (float(calibration.min()), float(calibration.max()))
        encrypt_one = lambda x: client.encrypt_batch(x, input_range)
        decrypt_one = client.decrypt_batch
    batches = [encrypt_one(images[i:i + a.batch]) for i in range(0, len(images), a.batch)]
    encrypt = time.perf_counter() - t

    servers = hray.start_servers(params, keys, model, calibration, workers=a.workers,
                                 device=a.device, threads=a.threads,
                                 num_gpus=1 if a.device == "gpu" else 0, packing=a.packing,
                                 per_ciphertext=a.per_ciphertext)
    ray.get([s.describe.remote() for s in servers])  # started: the job's time is the work's
    job = hray.run_job(batches, servers)

    logits, kept = [], []
    for i, r in enumerate(job.results):
        if isinstance(r, hray.BatchFailure):
            print(f"batch {i} failed: {r.reason}")
            continue
        n = len(images[i * a.batch:(i + 1) * a.batch])
        logits.append(decrypt_one(r, n))
        kept.append(np.arange(i * a.batch, i * a.batch + n))
    logits, kept = np.concatenate(logits), np.concatenate(kept)
    plain = model.forward(images[kept])
    print(f"workers:    {a.workers} x {a.threads} thread(s) on {a.device}")
    print(f"images:     {len(kept)} in {len(batches)} batches, {len(job.failures)} failed")
    print(f"accuracy:   {100 * (logits.argmax(1) == labels[kept]).mean():.2f}%")
    print(f"agreement:  {100 * (logits.argmax(1) == plain.argmax(1)).mean():.2f}% with the plaintext model")
    print(f"time (s):   encrypt {encrypt:.2f}, cluster {job.seconds:.2f}")
    print(f"images/s:   {len(kept) / job.seconds:.0f} (the cluster's wall time)"
          + (f", {len(batches) * params.slots / job.seconds:.0f} with full batches of "
             f"{params.slots}" if a.packing == "batch" else ""))


if __name__ == "__main__":
    main()
