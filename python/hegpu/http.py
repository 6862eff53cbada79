"""A client of `hegpu serve` (the HTTP service of one encrypted model), standard library only.

    from hegpu.http import ServiceClient
    server = ServiceClient("http://127.0.0.1:8080")           # the batch packing
    server = ServiceClient(url, model="cryptonets-5")         # the latency packing: its plan
    logits = server.classify(images)                          # (n, 784) in [0, 1] -> (n, 10)

The secret key stays in this process: the server receives the evaluation keys and encrypted
images, and answers with encrypted logits bound to each request. A busy server (503) is
retried after its Retry-After; keys the server evicted or lost in a restart are registered
again. Errors from the server raise `ServiceError` with its status, code and message.
"""

import json
import ssl
import time
import urllib.error
import urllib.request

import numpy as _np

from . import images as _images
from ._hegpu import ModelClient as _Keys

__all__ = ["ServiceClient", "ServiceError"]


class ServiceError(Exception):
    """The server answered with an error (`status`, `code` such as `unknown_key`, `message`)."""

    def __init__(self, status, code, message):
        super().__init__(f"the server answered {status} ({code}): {message}")
        self.status, self.code, self.message = status, code, message


class ServiceClient:
    """Keys for the server at `url`, registered once; `classify` sends encrypted images.

    `model` (a file or shipped name) and `data` (the MNIST directory, for the plan's
    calibration) are needed in the latency packing, whose plan lays the images out; `cafile`
    names the certificates to trust for an https server (default: the system's).
    """

    def __init__(self, url, model=None, data="data/mnist", timeout=600, cafile=None,
                 busy_retries=30):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.busy_retries = busy_retries
        self._ssl = ssl.create_default_context(cafile=cafile) if cafile else None
        self.info = json.loads(self._call("GET", "/v1/info"))
        params = self._call("GET", "/v1/params")
        latency = self.info["packing"] == "latency"
        if latency and model is None:
            raise ValueError("the latency packing lays images out by the server's model: "
                             "give the client the server's model")
        self._keys = _Keys(params, model if latency else None, data,
                           max(1, self.info["per_ciphertext"]))
        if self._keys.fingerprint != self.info["fingerprint"]:
            raise ValueError(
                f"the server's latency plan (fingerprint {self.info['fingerprint']:08x}) is not "
                f"this client's ({self._keys.fingerprint:08x}): give the client the server's model")
        self.key_id = self._register()

    def _register(self):
        return json.loads(self._call("POST", "/v1/keys", bytes(self._keys.evaluation_keys())))[
            "key_id"]

    def _call(self, method, path, body=None):
        for attempt in range(self.busy_retries + 1):
            request = urllib.request.Request(self.url + path, data=body, method=method,
                                             headers={"content-type": "application/octet-stream"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout,
                                            context=self._ssl) as response:
                    return response.read()
            except urllib.error.HTTPError as e:
                text = e.read()
                if e.code == 503 and attempt < self.busy_retries:
                    time.sleep(min(10, int(e.headers.get("retry-after", "1"))))
                    continue
                try:
                    v = json.loads(text)
                except ValueError:
                    v = {"code": "http", "message": text.decode(errors="replace").strip()}
                raise ServiceError(e.code, v.get("code"), v.get("message")) from None
        raise AssertionError("unreachable")

    def classify(self, images, per_request=None):
        """The logits `(n, 10)` of `images` (`(n, 784)` in [0, 1]), in requests of at most
        `per_request` images (default and most: what the server takes)."""
        a = _images(images, 784)
        per = min(per_request or self._keys.request_images, self._keys.request_images)
        out = []
        for batch, start in enumerate(range(0, len(a), per)):
            chunk = a[start:start + per]
            request = bytes(self._keys.request(batch, start, chunk))
            try:
                answer = self._call("POST", f"/v1/infer/{self.key_id}", request)
            except ServiceError as e:
                if e.code != "unknown_key":
                    raise
                self.key_id = self._register()
                answer = self._call("POST", f"/v1/infer/{self.key_id}", request)
            out.append(self._keys.outputs(answer, request, batch, start, len(chunk)))
        return _np.concatenate(out) if out else _np.zeros((0, 10), _np.float32)
