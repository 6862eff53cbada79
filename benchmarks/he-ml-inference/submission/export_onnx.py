"""The harness's MLP as ONNX for `hegpu import`, run by server_preprocess_model from the
harness's working directory with the harness's Python (which has torch).

The harness's model (784 -> 128 -> ReLU -> 64 -> ReLU -> 10) reads pixels normalized as
(x - 0.1307) / 0.3081; that affine map is folded into the first layer here, so the client
encrypts the pixels as the harness writes them: W1' = W1 / 0.3081 and
b1' = b1 - (0.1307 / 0.3081) * sum_j W1[:, j].

Usage: python3 export_onnx.py MODEL.pth OUT.onnx
"""

import pathlib
import subprocess
import sys

import torch

MEAN, STD = 0.1307, 0.3081


def train_like_the_harness(pth: pathlib.Path, scratch: pathlib.Path) -> None:
    """The harness trains its model in its cleartext step when the file is missing (never for
    the single instance); run that step on one blank image so both sides use the same
    weights."""
    blank = scratch / "blank_pixels.txt"
    blank.write_text(" ".join(["0.000000"] * 784) + "\n")
    subprocess.run(
        [sys.executable, "harness/cleartext_impl.py", str(blank), str(scratch / "blank_predictions.txt")],
        check=True,
    )
    if not pth.exists():
        sys.exit(f"export_onnx.py: the harness's cleartext step did not write {pth}")


def main() -> None:
    pth, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    if not pth.exists():
        train_like_the_harness(pth, out.parent)
    state = torch.load(pth, map_location="cpu")
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 10),
    )
    with torch.no_grad():
        w1, b1 = state["fc1.weight"], state["fc1.bias"]
        model[0].weight.copy_(w1 / STD)
        model[0].bias.copy_(b1 - (MEAN / STD) * w1.sum(dim=1))
        for layer, name in [(model[2], "fc2"), (model[4], "fc3")]:
            layer.weight.copy_(state[f"{name}.weight"])
            layer.bias.copy_(state[f"{name}.bias"])
    model.eval()
    args = (model, torch.zeros(1, 784), str(out))
    try:
        torch.onnx.export(*args, opset_version=17, dynamo=False)
    except TypeError:  # a torch without the dynamo switch exports with TorchScript anyway
        torch.onnx.export(*args, opset_version=17)
    print(f"export_onnx.py: wrote {out} (normalization folded into the first layer)")


if __name__ == "__main__":
    main()
