"""The encrypted batch job on a Ray cluster.

The server side runs as Ray actors (`EncryptedServer`): each loads the model and the
evaluation keys once and evaluates encrypted batches (bytes) on its device, a GPU
(`num_gpus=1`) or CPU threads. `run_job` spreads a client's batches over the actors and
returns the results in order; `run_pipelined` runs the client around them, encrypting the
next batch while the actors evaluate and decrypting each result as it comes. The client side
(keys, encryption, decryption) stays in the caller's process: the cluster sees the
parameters, the evaluation keys, the model, the calibration images (public data) and
ciphertexts only.

Faults: an actor whose process dies (a killed worker, a lost node) is restarted by Ray and
its batches are retried (`max_retries`); a batch that fails for another reason (corrupted
bytes, keys of another set) is reported as a `BatchFailure` with the reason, and the other
batches' results are kept.
"""

import collections
import dataclasses
import os
import time

import ray

from ._hegpu import LatencyPlan, LatencyServer, Model, Parameters, Server

__all__ = ["BatchFailure", "EncryptedServer", "JobResult", "PipelineResult", "ServerPool",
           "run_job", "run_pipelined", "start_servers"]


@ray.remote
class EncryptedServer:
    """One server: the model planned once, the evaluation keys on its device. `packing` is
    `batch` (requests from `Client.encrypt_batch`) or `latency` (from
    `Client.encrypt_latency` with the plan of the same model, calibration images and
    `per_ciphertext`: planning is deterministic, so both sides make the same plan)."""

    def __init__(self, params, keys, model, calibration, device="cpu", threads=None,
                 packing="batch", per_ciphertext=1):
        params = Parameters.from_bytes(params)
        model = Model.from_bytes(model)
        if packing == "batch":
            self._server = Server(params, keys, model, calibration, device=device,
                                  threads=threads)
        elif packing == "latency":
            plan = LatencyPlan(model, params, calibration, per_ciphertext)
            self._server = LatencyServer(params, keys, plan, device=device, threads=threads)
        else:
            raise ValueError(f"packing {packing!r}: batch or latency")
        self._device = device

    def evaluate(self, batch):
        """The result's bytes for one encrypted batch, and the seconds it took."""
        t = time.perf_counter()
        out = self._server.evaluate(batch)
        return out, time.perf_counter() - t

    def describe(self):
        """(process id, device): which process serves, for tests and logs."""
        return os.getpid(), self._device


@dataclasses.dataclass
class BatchFailure:
    """A batch that failed for a reason other than a lost worker."""

    index: int
    reason: str


@dataclasses.dataclass
class JobResult:
    """Results in the order of the batches: bytes, or a BatchFailure."""

    results: list
    seconds: float
    server_seconds: list

    @property
    def failures(self):
        return [r for r in self.results if isinstance(r, BatchFailure)]


@dataclasses.dataclass
class PipelineResult:
    """What `run_pipelined` gives: per batch, the decrypted outputs (images × outputs,
    float32) or a BatchFailure; the wall time from the first encryption to the last
    decryption; the client's and each batch's server seconds; the most batches that were
    between encryption and decryption at once."""

    outputs: list
    images: int
    seconds: float
    encrypt_seconds: float
    decrypt_seconds: float
    server_seconds: list
    most_in_flight: int

    @property
    def failures(self):
        return [r for r in self.outputs if isinstance(r, BatchFailure)]

    @property
    def images_per_second(self):
        """End to end: images over the wall time, client and server overlapped."""
        return self.images / self.seconds


class ServerPool:
    """The actors of `start_servers`, and their constructor's arguments in the object store.

    The arguments stay referenced as long as the pool lives: an actor that Ray restarts after
    its process died runs its constructor again and reads them from there (arguments passed by
    value would be gone by then). Index or iterate it like a list of actor handles.
    """

    def __init__(self, actors, arguments):
        self.actors = actors
        self._arguments = arguments

    def __len__(self):
        return len(self.actors)

    def __getitem__(self, i):
        return self.actors[i]

    def __iter__(self):
        return iter(self.actors)

    def shutdown(self):
        """Stops the actors."""
        for a in self.actors:
            ray.kill(a)


def start_servers(params, keys, model, calibration, *, workers=2, device="cpu", threads=1,
                  num_gpus=0, max_retries=3, packing="batch", per_ciphertext=1):
    """A ServerPool of `workers` actors serving `model` (a hegpu.Model) with `keys` (bytes),
    in the batch or the latency packing (see EncryptedServer).

    Each takes `threads` CPU threads (`num_cpus`), or `num_gpus` GPUs with `device="gpu"`.
    An actor that dies is restarted up to `max_retries` times and its unfinished batches are
    retried as often.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if packing not in ("batch", "latency"):
        raise ValueError(f"packing {packing!r}: batch or latency")
    options = dict(max_restarts=max_retries, max_task_retries=max_retries,
                   num_cpus=threads if device == "cpu" else 1, num_gpus=num_gpus)
    params_bytes = params.to_bytes() if isinstance(params, Parameters) else bytes(params)
    model_bytes = model.to_bytes() if isinstance(model, Model) else bytes(model)
    arguments = [ray.put(params_bytes), ray.put(bytes(keys)), ray.put(model_bytes),
                 ray.put(calibration)]
    cpu_threads = threads if device == "cpu" else None
    actors = [
        EncryptedServer.options(**options).remote(*arguments, device, cpu_threads, packing,
                                                  per_ciphertext)
        for _ in range(workers)
    ]
    return ServerPool(actors, arguments)


def run_job(batches, servers):
    """Evaluates `batches` (bytes each) on `servers` (a ServerPool), in order.

    Batches go to the servers in turn; the call returns when every batch has a result or a
    failure. Lost workers are retried by Ray; any other failure becomes a BatchFailure.
    """
    if not servers:
        raise ValueError("no servers")
    t = time.perf_counter()
    # The batches go into the object store once, held here until every result is in: a task
    # retried after its worker died reads its batch again from there.
    held = [ray.put(b) for b in batches]
    pending = [servers[i % len(servers)].evaluate.remote(b) for i, b in enumerate(held)]
    results, server_seconds = [], []
    for i, ref in enumerate(pending):
        try:
            out, seconds = ray.get(ref)
            results.append(out)
            server_seconds.append(seconds)
        except ray.exceptions.RayError as e:
            results.append(BatchFailure(i, _reason(e)))
    del held
    return JobResult(results, time.perf_counter() - t, server_seconds)


def run_pipelined(client, images, servers, input_range, *, batch=4096, in_flight=2):
    """Encrypts `images` (N × inputs, float32) in batches of `batch` with `client`, evaluates
    them on `servers` and decrypts the results, with the client and the cluster working at
    once: batch k + 1 is encrypted while the actors evaluate batch k, and each result is
    decrypted as it comes, with at most `in_flight` batches between encryption and
    decryption (2: the client works while a server evaluates; 1: one after the other).
    `input_range` is the server's (`Server.input_range`). Encryption and decryption release
    the GIL; the evaluation runs in the actors' processes.
    """
    if not servers:
        raise ValueError("no servers")
    if batch < 1 or in_flight < 1:
        raise ValueError("batch and in_flight must be at least 1")
    count = len(images)
    if count == 0:
        raise ValueError("no images")
    t = time.perf_counter()
    starts = range(0, count, batch)
    outputs = [None] * len(starts)
    server_seconds = [0.0] * len(starts)
    encrypt_seconds = decrypt_seconds = 0.0
    # Batches sent and not yet decrypted, oldest first: (index, images, result ref, the batch
    # in the object store, held until its result is in so a retried task can read it).
    pending = collections.deque()
    most = 0

    def finish_oldest():
        nonlocal decrypt_seconds
        i, n, ref, _held = pending.popleft()
        try:
            out, seconds = ray.get(ref)
        except ray.exceptions.RayError as e:
            outputs[i] = BatchFailure(i, _reason(e))
            return
        server_seconds[i] = seconds
        d = time.perf_counter()
        outputs[i] = client.decrypt_batch(out, n)
        decrypt_seconds += time.perf_counter() - d
    for i, start in enumerate(starts):
        while len(pending) >= in_flight:
            finish_oldest()
        e = time.perf_counter()
        chunk = images[start:start + batch]
        held = ray.put(client.encrypt_batch(chunk, input_range))
        encrypt_seconds += time.perf_counter() - e
        ref = servers[i % len(servers)].evaluate.remote(held)
        pending.append((i, len(chunk), ref, held))
        most = max(most, len(pending))
    while pending:
        finish_oldest()
    return PipelineResult(outputs, count, time.perf_counter() - t, encrypt_seconds,
                          decrypt_seconds, server_seconds, most)


def _reason(error):
    """The first line of the hegpu error inside a Ray error, or the error itself."""
    cause = getattr(error, "cause", None)
    return str(cause) if cause is not None else str(error).strip().splitlines()[-1]
