"""hegpu.ray on a local Ray cluster of two workers: the same bytes as one process, a killed
worker's batch retried, a failing batch reported while the others are kept, and the client
pipelined around the cluster."""

import concurrent.futures
import os
import signal
import time

import pytest
import ray

import hegpu
import hegpu.ray as hray


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def batches(mnist, client, server):
    images = mnist["test_images"][:48]
    return [client.encrypt_batch(images[i:i + 16], server.input_range) for i in range(0, 48, 16)]


@pytest.fixture(scope="module")
def expected(server, batches):
    return [server.evaluate(b) for b in batches]


def test_two_workers_give_the_bytes_of_one_process(cluster, params, keys, model, calibration,
                                                    batches, expected, client, mnist):
    servers = hray.start_servers(params, keys, model, calibration, workers=2, threads=1)
    pids = {ray.get(s.describe.remote())[0] for s in servers}
    assert len(pids) == 2 and os.getpid() not in pids
    job = hray.run_job(batches, servers)
    assert not job.failures
    assert job.results == expected
    plain = model.forward(mnist["test_images"][:48]).argmax(axis=1)
    for i, result in enumerate(job.results):
        digits = client.decrypt_batch(result, 16).argmax(axis=1)
        assert (digits == plain[16 * i:16 * (i + 1)]).all()
    servers.shutdown()


def test_a_killed_worker_is_retried_and_the_results_are_whole(cluster, params, keys, model,
                                                              calibration, batches, expected):
    servers = hray.start_servers(params, keys, model, calibration, workers=1, threads=1,
                                 max_retries=2)
    pid, _ = ray.get(servers[0].describe.remote())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(hray.run_job, batches, servers)
        time.sleep(1.0)  # the first batch is under way (each takes seconds on one thread)
        os.kill(pid, signal.SIGKILL)
        job = running.result(timeout=600)
    assert not job.failures, job.failures
    assert job.results == expected
    new_pid, _ = ray.get(servers[0].describe.remote())
    assert new_pid != pid, "Ray restarted the actor in a new process"
    servers.shutdown()


def test_a_failing_batch_is_reported_and_the_others_kept(cluster, params, keys, model,
                                                         calibration, batches, expected):
    servers = hray.start_servers(params, keys, model, calibration, workers=2, threads=1)
    broken = bytearray(batches[1])
    broken[100] ^= 0xFF
    job = hray.run_job([batches[0], bytes(broken), batches[2]], servers)
    assert job.results[0] == expected[0] and job.results[2] == expected[2]
    [failure] = job.failures
    assert failure.index == 1 and failure.reason
    servers.shutdown()


def test_latency_requests_on_the_cluster(cluster, params, model, calibration, mnist):
    plan = hegpu.LatencyPlan(model, params, calibration[:64])
    client = hegpu.Client(params, seed=5)
    keys = client.evaluation_keys(plan.rotations())
    images = mnist["test_images"][:4]
    requests = [client.encrypt_latency(plan, images[i:i + 1]) for i in range(4)]
    local = hegpu.LatencyServer(params, keys, plan)
    servers = hray.start_servers(params, keys, model, calibration[:64], workers=2, threads=1,
                                 packing="latency")
    job = hray.run_job(requests, servers)
    assert job.results == [local.evaluate(r) for r in requests]
    digits = [client.decrypt_latency(plan, r, 1)[0].argmax() for r in job.results]
    assert digits == list(model.forward(images).argmax(axis=1))
    servers.shutdown()
    with pytest.raises(ValueError):
        hray.start_servers(params, keys, model, calibration, packing="diagonal")


def test_the_pipelined_client_gives_the_plaintext_models_digits(cluster, params, keys, model,
                                                                 calibration, client, server,
                                                                 mnist):
    servers = hray.start_servers(params, keys, model, calibration, workers=2, threads=1)
    images = mnist["test_images"][:40]
    job = hray.run_pipelined(client, images, servers, server.input_range, batch=16, in_flight=2)
    assert not job.failures
    assert [len(o) for o in job.outputs] == [16, 16, 8]
    digits = [d for o in job.outputs for d in o.argmax(axis=1)]
    assert digits == list(model.forward(images).argmax(axis=1))
    assert job.most_in_flight == 2 and job.images_per_second > 0
    one_by_one = hray.run_pipelined(client, images, servers, server.input_range, batch=16,
                                    in_flight=1)
    assert one_by_one.most_in_flight == 1
    assert [list(o.argmax(axis=1)) for o in one_by_one.outputs] == \
        [list(o.argmax(axis=1)) for o in job.outputs]
    with pytest.raises(ValueError):
        hray.run_pipelined(client, images, servers, server.input_range, in_flight=0)
    servers.shutdown()
