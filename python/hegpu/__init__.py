"""hegpu from Python: homomorphic encryption (RNS-CKKS) and encrypted inference.

The client side (`Client`: keys, encryption, decryption) keeps the secret key inside; the
server side (`Server`, `LatencyServer`) sees only the parameters, the evaluation keys and
ciphertexts, all as bytes. Images go in and logits come out as NumPy float32 arrays.

    import hegpu
    params = hegpu.Parameters.preset("cryptonets8192")
    client = hegpu.Client(params)
    server = hegpu.Server(params, client.evaluation_keys(), model, calibration)
    request = client.encrypt_batch(images, server.input_range)  # refuses values outside it
    logits = client.decrypt_batch(server.evaluate(request), len(images))

`hegpu.ray` runs the server side on a Ray cluster; `hegpu.http` is a client of `hegpu serve`.
"""

import numpy as _np

from ._hegpu import (
    Client,
    HegpuError,
    LatencyPlan,
    LatencyServer,
    Model,
    ModelClient,
    Parameters,
    Server,
    load_mnist,
)

__all__ = [
    "Client",
    "HegpuError",
    "LatencyPlan",
    "LatencyServer",
    "Model",
    "ModelClient",
    "Parameters",
    "Server",
    "images",
    "load_mnist",
]


def images(array, width=None):
    """`array` as the `(n, width)` C-contiguous float32 array the classes take.

    Accepts any real numeric array-like of one image (1-D) or several (2-D); raises
    ValueError for other shapes, for a width other than `width`, and for values that are not
    finite, and TypeError for non-numeric data.
    """
    a = _np.asarray(array)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"images must be real numbers, not {a.dtype}")
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(f"images must be (n, values), not of shape {a.shape}")
    if width is not None and a.shape[1] != width:
        raise ValueError(f"images of {a.shape[1]} values; expected {width}")
    a = _np.ascontiguousarray(a, dtype=_np.float32)
    if not _np.isfinite(a).all():
        raise ValueError("images hold values that are not finite")
    return a
