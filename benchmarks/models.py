"""The benchmarked models, each built the same way for every contender.

A model entry gives a torch module (random weights, eval mode; for the gradient baseline,
lrp-core's torch reader, Zennit and Captum), or an lrp-core graph/ONNX path where no torch module
exists (the ONNX zoo model), the per-sample input shape, and the Zennit canonizers that make
Zennit's presets see the same network (BatchNorm merged, residual sums as modules).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

__all__ = ["ModelSpec", "MODELS", "build"]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    input_shape: tuple  # per sample
    kind: str  # "torchvision", "lenet5", "onnx"
    zennit_canonizer: str | None = None  # "vgg", "resnet", "merge-bn" or None
    captum: bool = False  # Captum's LRP handles only module-only sequential networks
    notes: str = field(default="", compare=False)


MODELS = {
    "lenet5": ModelSpec("lenet5", (1, 28, 28), "lenet5", captum=True,
                        notes="the demo's LeNet-5 (trained weights) as a torch module"),
    "mnist-8": ModelSpec("mnist-8", (1, 28, 28), "onnx",
                         notes="ONNX model zoo MNIST (shared data); no torch module"),
    "vgg16": ModelSpec("vgg16", (3, 224, 224), "torchvision", "vgg", captum=True),
    "resnet50": ModelSpec("resnet50", (3, 224, 224), "torchvision", "resnet"),
    "efficientnet_b0": ModelSpec("efficientnet_b0", (3, 224, 224), "torchvision", "merge-bn"),
}


def build(spec: ModelSpec, dtype):
    """The model for ``spec``: a torch module, or the path of an ONNX file."""
    if spec.kind == "onnx":
        root = os.environ.get("LRP_EXTERNAL_DATA", os.path.join(os.path.dirname(__file__), "..",
                                                                "..", "shared", "data"))
        path = os.path.join(root, "onnx-model-zoo", "mnist-8.onnx")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} (set LRP_EXTERNAL_DATA to the shared data folder)")
        return path
    import torch

    torch.manual_seed(0)
    if spec.kind == "lenet5":
        return _lenet5_module(dtype)
    import torchvision

    return getattr(torchvision.models, spec.name)(weights=None).to(dtype).eval()


def _lenet5_module(dtype):
    import torch
    from torch import nn

    from lrp_core.data import load_npz

    params = load_npz("lenet5_digits.npz")
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84),
        nn.ReLU(), nn.Linear(84, 10))
    names = {0: "conv1", 3: "conv2", 7: "fc1", 9: "fc2", 11: "fc3"}
    with torch.no_grad():
        for index, name in names.items():
            model[index].weight.copy_(torch.as_tensor(params[f"{name}.weight"]))
            model[index].bias.copy_(torch.as_tensor(params[f"{name}.bias"]))
    return model.to(dtype).eval()
