"""The encrypted MNIST batch job on a Ray cluster.

The client (this process) makes the keys and encrypts the test digits in batches; Ray actors
evaluate the shipped model on them with public material only; the client decrypts and
prints accuracy, agreement with the plaintext model and images/s. In the batch packing the
client encrypts the next batch while the actors evaluate and decrypts each result as it
comes (hegpu.ray.run_pipelined, --in-flight batches at once).

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
    p.add_argument("--in-flight", type=int, default=2,
                   help="batches between encryption and decryption at once (1: the client "
                        "and the cluster one after the other) [2]")
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
    if a.packing == "latency":
        plan = hegpu.LatencyPlan(model, params, calibration, a.per_ciphertext)
        keys = client.evaluation_keys(plan.rotations())
    else:
        keys = client.evaluation_keys()
    servers = hray.start_servers(params, keys, model, calibration, workers=a.workers,
                                 device=a.device, threads=a.threads,
                                 num_gpus=1 if a.device == "gpu" else 0, packing=a.packing,
                                 per_ciphertext=a.per_ciphertext)
    ray.get([s.describe.remote() for s in servers])  # started: the job's time is the work's
    print(f"workers:    {a.workers} x {a.threads} thread(s) on {a.device}")
    if a.packing == "latency":
        logits, kept = run_latency(client, plan, images, servers)
    else:
        # The range the servers' plan is calibrated for (Server.input_range computes the same).
        input_range = (float(calibration.min()), float(calibration.max()))
        job = hray.run_pipelined(client, images, servers, input_range, batch=a.batch,
                                 in_flight=a.in_flight)
        logits, kept = [], []
        for i, out in enumerate(job.outputs):
            if isinstance(out, hray.BatchFailure):
                print(f"batch {i} failed: {out.reason}")
                continue
            logits.append(out)
            kept.append(np.arange(i * a.batch, i * a.batch + len(out)))
        logits, kept = np.concatenate(logits), np.concatenate(kept)
        batches = len(job.outputs)
        print(f"images:     {len(kept)} in {batches} batches, {len(job.failures)} failed")
        print(f"time (s):   encrypt {job.encrypt_seconds:.2f}, servers "
              f"{sum(job.server_seconds):.2f} (summed over actors), decrypt "
              f"{job.decrypt_seconds:.2f}; {job.seconds:.2f} end to end, at most "
              f"{job.most_in_flight} batch(es) in flight")
        print(f"images/s:   {len(kept) / job.seconds:.0f} end to end (client and cluster "
              f"overlapped), {batches * params.slots / job.seconds:.0f} with full batches of "
              f"{params.slots}")
    plain = model.forward(images[kept])
    print(f"accuracy:   {100 * (logits.argmax(1) == labels[kept]).mean():.2f}%")
    print(f"agreement:  {100 * (logits.argmax(1) == plain.argmax(1)).mean():.2f}% with the plaintext model")


def run_latency(client, plan, images, servers):
    """One request per plan.images_per_ciphertext images, encrypted first, then evaluated
    on the cluster: the decrypted logits and the indices of the images answered."""
    step = plan.images_per_ciphertext
    t = time.perf_counter()
    requests = [client.encrypt_latency(plan, images[i:i + step])
                for i in range(0, len(images), step)]
    encrypt = time.perf_counter() - t
    job = hray.run_job(requests, servers)
    logits, kept = [], []
    for i, r in enumerate(job.results):
        if isinstance(r, hray.BatchFailure):
            print(f"request {i} failed: {r.reason}")
            continue
        n = len(images[i * step:(i + 1) * step])
        logits.append(client.decrypt_latency(plan, r, n))
        kept.append(np.arange(i * step, i * step + n))
    print(f"images:     {sum(len(k) for k in kept)} in {len(requests)} requests, "
          f"{len(job.failures)} failed")
    print(f"time (s):   encrypt {encrypt:.2f}, cluster {job.seconds:.2f}")
    print(f"images/s:   {sum(len(k) for k in kept) / job.seconds:.0f} (the cluster's wall time)")
    return np.concatenate(logits), np.concatenate(kept)

if __name__ == "__main__":
    main()
