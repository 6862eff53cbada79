"""Several `hegpu serve` processes behind one Ray Serve endpoint, with the service's own API.

    from ray import serve
    from hegpu.ray_serve import service_app
    serve.run(service_app("hegpu", ["--packing", "latency", "--model", "cryptonets-5"],
                          replicas=2))
    # then, from anywhere: ServiceClient("http://HOST:8000", model="cryptonets-5")
    #                  or: hegpu client --server http://HOST:8000 --model cryptonets-5

Each replica of `HegpuServer` runs one `hegpu serve` on its own loopback port (its device, its
bounds: pass them in `serve_args`) and forwards requests to it. The `Endpoint` deployment
answers the HTTP API of `hegpu serve` (`/v1/info`, `/v1/params`, `/v1/keys`,
`/v1/infer/{key_id}`, `/health`), so its clients work unchanged.

Keys: a registration is checked by one replica's server, then kept once for the cluster in the
`KeyStore` actor (bounded in bytes, least recently used dropped; named and detached, so that it
outlives the driver) under the same id `hegpu serve` gives (the first 16 bytes of their
SHA-256, in hex). An inference carries its key id as Ray Serve's multiplexed model id: Ray
sends it to a replica that already holds those keys when one does, and a replica that does not
fetches them from the store and registers them with its server first (`@serve.multiplexed`). Keys the store dropped are answered 404 `unknown_key`,
and the clients register again, as with one server. The cluster holds evaluation keys and
ciphertexts only; secret keys stay with the clients.
"""

import asyncio
import collections
import json
import re
import subprocess
import urllib.error
import urllib.request

import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["Endpoint", "HegpuServer", "KeyStore", "service_app"]

# One replica holds at most this many key sets registered with its server (its own
# --key-memory bounds them too).
KEYS_PER_REPLICA = 16
# The key store's actor name and namespace.
STORE = "hegpu-keys"


def _error(status, code, message):
    body = json.dumps({"code": code, "message": message}).encode()
    headers = {"retry-after": "1"} if status == 503 else {}
    return status, "application/json", body, headers


@ray.remote(num_cpus=0)
class KeyStore:
    """Evaluation keys registered through the endpoint, by key id, within `capacity` bytes;
    the least recently used are dropped beyond."""

    def __init__(self, capacity):
        self._capacity = capacity
        self._keys = collections.OrderedDict()
        self._bytes = 0

    def put(self, key_id, keys):
        if key_id in self._keys:
            self._keys.move_to_end(key_id)
            return
        self._keys[key_id] = keys
        self._bytes += len(keys)
        while self._bytes > self._capacity and len(self._keys) > 1:
            _, dropped = self._keys.popitem(last=False)
            self._bytes -= len(dropped)

    def get(self, key_id):
        keys = self._keys.get(key_id)
        if keys is not None:
            self._keys.move_to_end(key_id)
        return keys


class _Forward:
    """Plain HTTP to this replica's `hegpu serve` (blocking: run in a thread)."""

    def __init__(self, url, timeout):
        self.url, self.timeout = url, timeout

    def __call__(self, method, path, body=None):
        request = urllib.request.Request(self.url + path, data=body, method=method)
        if body is not None:
            request.add_header("content-type", "application/octet-stream")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as r:
                return r.status, r.headers.get("content-type", ""), r.read(), {}
        except urllib.error.HTTPError as e:
            headers = {"retry-after": e.headers["retry-after"]} if e.headers.get(
                "retry-after") else {}
            return e.code, e.headers.get("content-type", ""), e.read(), headers


@serve.deployment
class HegpuServer:
    """One `hegpu serve` process (`binary serve --listen 127.0.0.1:0 *serve_args`) and the
    forwarding to it."""

    def __init__(self, binary, serve_args, key_store_bytes, timeout=600):
        self._proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", *serve_args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self._proc.stdout.readline()
        m = re.search(r"https?://[0-9.]+:\d+", line)
        if not m:
            raise RuntimeError(f"hegpu serve did not start: {line}{self._proc.stderr.read()}")
        self._forward = _Forward(m.group(0), timeout)
        # One store for every replica, whichever starts first makes it; detached, so that it
        # outlives the driver that deployed the application.
        self._store = KeyStore.options(name=STORE, namespace=STORE, lifetime="detached",
                                       get_if_exists=True).remote(key_store_bytes)

    def __del__(self):
        if getattr(self, "_proc", None) and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(timeout=120)

    async def _call(self, method, path, body=None):
        return await asyncio.to_thread(self._forward, method, path, body)

    async def get(self, path):
        """A GET forwarded as it is (info, params, health)."""
        return await self._call("GET", path)

    async def register(self, keys):
        """Keys checked by this replica's server, then kept in the store."""
        answer = await self._call("POST", "/v1/keys", keys)
        if answer[0] == 200:
            await self._store.put.remote(json.loads(answer[2])["key_id"], keys)
        return answer

    @serve.multiplexed(max_num_models_per_replica=KEYS_PER_REPLICA)
    async def _keys(self, ident):
        """The key id, once this replica's server holds those keys (from the store: the
        server that checked them at registration gets them again, under the same id)."""
        keys = await self._store.get.remote(ident)
        if keys is None:
            raise LookupError(ident)
        status, _, body, _ = await self._call("POST", "/v1/keys", keys)
        if status != 200:
            raise RuntimeError(f"registering stored keys {ident}: {status} {body[:200]!r}")
        return ident

    async def infer(self, request):
        """An inference under the request's multiplexed id (its key id)."""
        ident = serve.get_multiplexed_model_id()
        try:
            await self._keys(ident)
        except LookupError:
            return _error(404, "unknown_key",
                          f"key id {ident} is not registered here (never, or dropped to bound "
                          "the cluster's key memory): register the evaluation keys again")
        answer = await self._call("POST", f"/v1/infer/{ident}", request)
        if answer[0] == 404:
            # This server evicted the keys to keep within its own key memory: register them
            # again from the store and retry once.
            keys = await self._store.get.remote(ident)
            if keys is not None and (await self._call("POST", "/v1/keys", keys))[0] == 200:
                answer = await self._call("POST", f"/v1/infer/{ident}", request)
        return answer


@serve.deployment
class Endpoint:
    """The HTTP API of `hegpu serve`, answered by the `HegpuServer` replicas behind it."""

    def __init__(self, servers):
        self._servers = servers

    async def __call__(self, request: Request) -> Response:
        path, method = request.url.path, request.method
        if method == "GET" and path in ("/v1/info", "/v1/params", "/health"):
            answer = await self._servers.get.remote(path)
        elif method == "POST" and path == "/v1/keys":
            answer = await self._servers.register.remote(await request.body())
        elif method == "POST" and path.startswith("/v1/infer/"):
            ident = path.removeprefix("/v1/infer/")
            if not re.fullmatch(r"[0-9a-f]{1,64}", ident):
                answer = _error(404, "unknown_key", f"{ident!r} is not a key id")
            else:
                handle = self._servers.options(multiplexed_model_id=ident)
                answer = await handle.infer.remote(await request.body())
        else:
            answer = _error(404, "not_found", f"{method} {path}: no such endpoint")
        status, content_type, body, headers = answer
        return Response(body, status_code=status, media_type=content_type or None,
                        headers=headers)


def service_app(binary, serve_args=(), replicas=2, key_store_bytes=4 << 30):
    """The Ray Serve application: `replicas` `hegpu serve` processes (each run as `binary serve
    *serve_args`) behind one endpoint, keys kept for the cluster within `key_store_bytes`."""
    servers = HegpuServer.options(num_replicas=replicas).bind(binary, list(serve_args),
                                                              key_store_bytes)
    return Endpoint.bind(servers)
