#!/usr/bin/env python3
"""Makes the ONNX fixtures of tests/onnx_import.rs (run once by hand; the files are committed,
so the tests need no Python).

Trains three small PyTorch networks on the MNIST sample (data/mnist), exports each with
torch.onnx.export at opset 17 with a dynamic batch dimension, and records what ONNX Runtime
(the independent evaluator) outputs for the first test digits:

- cryptonets.onnx: zero padding, a 5x5 stride-2 convolution, x*x, a dense layer, x.pow(2), a
  dense layer (the CryptoNets shape);
- mlp-relu.onnx: 784 -> 128 -> ReLU -> 64 -> ReLU -> 10 (the HomomorphicEncryption.org MNIST
  benchmark's network), trained to convergence: the ReLU model docs/models.md imports;
- cnn-bn-pool.onnx: convolutions with batch normalization (which the exporter folds into
  them), a quadratic activation written as arithmetic, average pooling, SiLU, global average
  pooling, a dense layer with batch normalization (left as a node), tanh.

Each model's expected outputs go to NAME.expected.json: {"images": K, "logits": [[...]]} for
test digits 0..K-1 with pixels / 255.

Needs: pip install torch onnx onnxruntime onnxscript numpy
Usage: python3 scripts/make-onnx-fixtures.py [--out tests/fixtures/onnx] [--data data/mnist]
"""

import argparse
import gzip
import json
import pathlib
import struct

import numpy as np
import onnxruntime
import torch
from torch import nn

EXPECTED_IMAGES = 64


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, count = struct.unpack(">II", data[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        return np.frombuffer(data, np.uint8, offset=16).reshape(count, 1, rows, cols)
    return np.frombuffer(data, np.uint8, offset=8)


class Square(nn.Module):
    def forward(self, x):
        return x * x


class Power2(nn.Module):
    def forward(self, x):
        return x.pow(2)


class Quadratic(nn.Module):
    """0.125 x^2 + 0.5 x + 0.25, as exporters write it: Mul and Add nodes."""

    def forward(self, x):
        return 0.125 * x * x + 0.5 * x + 0.25


def cryptonets():
    return nn.Sequential(
        nn.ZeroPad2d((1, 0, 1, 0)),
        nn.Conv2d(1, 5, 5, stride=2),
        Square(),
        nn.Flatten(),
        nn.Linear(845, 100),
        Power2(),
        nn.Linear(100, 10),
    )


def mlp_relu():
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 128),
        nn.ReLU(),
        nn.Linear(128, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def cnn_bn_pool():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        Quadratic(),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 8, 3, stride=2),
        nn.BatchNorm2d(8),
        nn.SiLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 16),
        nn.BatchNorm1d(16),
        nn.Tanh(),
        nn.Linear(16, 10),
    )


def train(model, images, labels, epochs, lr, seed):
    torch.manual_seed(seed)
    x = torch.tensor(images, dtype=torch.float32) / 255.0
    y = torch.tensor(labels, dtype=torch.long)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        for start in range(0, len(x), 64):
            batch = order[start : start + 64]
            opt.zero_grad()
            loss = loss_fn(model(x[batch]), y[batch])
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    return model


def accuracy(model, images, labels):
    with torch.no_grad():
        logits = model(torch.tensor(images, dtype=torch.float32) / 255.0)
    return float((logits.argmax(1).numpy() == labels).mean())


def export(model, path):
    dummy = torch.zeros(1, 1, 28, 28)
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tests/fixtures/onnx")
    parser.add_argument("--data", default="data/mnist")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = pathlib.Path(args.data)
    train_x = idx(data / "train-images-idx3-ubyte.gz")
    train_y = idx(data / "train-labels-idx1-ubyte.gz")
    test_x = idx(data / "test-images-idx3-ubyte.gz")
    test_y = idx(data / "test-labels-idx1-ubyte.gz")
    torch.set_num_threads(2)
    for name, make, epochs in [
        ("cryptonets", cryptonets, 10),
        ("mlp-relu", mlp_relu, 30),
        ("cnn-bn-pool", cnn_bn_pool, 15),
    ]:
        model = train(make(), train_x, train_y, epochs, 2e-3, seed=1)
        path = out / f"{name}.onnx"
        export(model, path)
        session = onnxruntime.InferenceSession(str(path))
        first = test_x[:EXPECTED_IMAGES].astype(np.float32) / 255.0
        logits = session.run(None, {"image": first})[0]
        (out / f"{name}.expected.json").write_text(
            json.dumps({"images": EXPECTED_IMAGES, "logits": logits.tolist()}) + "\n"
        )
        every = session.run(None, {"image": test_x.astype(np.float32) / 255.0})[0]
        onnx_accuracy = float((every.argmax(1) == test_y).mean())
        print(
            f"{name}: PyTorch {100 * accuracy(model, test_x, test_y):.2f}%, ONNX Runtime "
            f"{100 * onnx_accuracy:.2f}% on {len(test_y)} test digits; wrote {path}"
        )


if __name__ == "__main__":
    main()
