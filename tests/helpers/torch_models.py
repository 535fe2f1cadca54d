"""Shared helpers of the torch tests: a bit-for-bit snapshot of a module's state, a He
re-initialisation for torchvision models, the shared LeNet-5 (``lenet5.pth`` of
../shared/data), the autograd oracle and a tolerance check."""

from __future__ import annotations

import torch
from torch import nn

from .data import data_path
from .tolerances import assert_relevance_close

__all__ = ["LeNet5", "assert_relevance_close", "assert_untouched", "gradient_times_input",
           "load_lenet5", "reinitialise", "snapshot"]

_HOOK_DICTS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
               "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_backward_hooks",
               "_backward_pre_hooks", "_state_dict_hooks", "_state_dict_pre_hooks",
               "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks")


def snapshot(module: nn.Module) -> dict:
    """Everything a reader could change: each parameter and buffer (identity, storage, version
    counter, a clone of its values, requires_grad, grad), the hook dicts, training flags and the
    attribute names of every submodule."""
    state = {}
    for name, m in module.named_modules(remove_duplicate=False):
        state[("module", name)] = (id(m), m.training, tuple(sorted(vars(m))),
                                   tuple((key, tuple(getattr(m, key, {}).items()))
                                         for key in _HOOK_DICTS))
        for pname, p in list(m._parameters.items()) + list(m._buffers.items()):
            if p is None:
                state[("tensor", name, pname)] = None
                continue
            state[("tensor", name, pname)] = (id(p), p.data_ptr(), p._version, p.dtype, p.device,
                                              tuple(p.shape), p.requires_grad, p.grad is None,
                                              p.detach().clone())
    return state


def assert_untouched(module: nn.Module, before: dict) -> None:
    after = snapshot(module)
    assert after.keys() == before.keys()
    for key, old in before.items():
        new = after[key]
        if key[0] == "tensor" and old is not None:
            assert old[:-1] == new[:-1], f"{key} changed: {old[:-1]} -> {new[:-1]}"
            assert torch.equal(old[-1], new[-1]), f"{key}: values changed"
        else:
            assert old == new, f"{key} changed"


def seeded(module: nn.Module, seed: int = 0) -> nn.Module:
    """``module`` in float64 with seeded random parameters (He scale) and BatchNorm statistics."""
    g = torch.Generator().manual_seed(seed)
    module = module.double()
    with torch.no_grad():
        for name, p in list(module.named_parameters()) + list(module.named_buffers()):
            if p.dtype.is_floating_point:
                if name.endswith("running_var") or (name.endswith("weight") and p.ndim == 1):
                    p.copy_(0.5 + torch.rand(p.shape, generator=g, dtype=torch.float64))
                else:
                    fan_in = p[0].numel() if p.ndim > 1 else 10
                    p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64)
                            * (2.0 / fan_in) ** 0.5)
    return module


def reinitialise(model: nn.Module, seed: int) -> nn.Module:
    """He-initialised weights, small random biases and random BatchNorm statistics (seeded), so
    that activations neither vanish nor stay trivial (torchvision's own init gives logits of
    1e-13 on MobileNetV2, and zero biases and identity BatchNorms everywhere)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=torch.float64)
                               * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(0.05 * torch.randn(m.bias.shape, generator=g, dtype=torch.float64))
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g, dtype=torch.float64))
                m.bias.copy_(0.1 * torch.randn(c, generator=g, dtype=torch.float64))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g, dtype=torch.float64))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g, dtype=torch.float64))
    return model


def gradient_times_input(model: nn.Module, x: torch.Tensor, selection) -> torch.Tensor:
    """The autograd oracle: ∂ logit[selection] / ∂x ⊙ x (the model must be in eval mode; no
    gradient is accumulated into its parameters)."""
    xt = x.detach().clone().requires_grad_(True)
    out = model(xt)
    (grad,) = torch.autograd.grad(out[torch.arange(len(x)), torch.as_tensor(selection)].sum(), xt)
    return (grad * x).detach()


class LeNet5(nn.Module):
    """The architecture of ``lenet5-webmnist/lenet5.pth`` (see shared/data/README.md)."""

    def __init__(self):
        super().__init__()
        self.convolutions = nn.Sequential(
            nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(
            nn.Linear(400, 128), nn.ReLU(inplace=True), nn.Linear(128, 64), nn.ReLU(inplace=True),
            nn.Linear(64, 10))

    def forward(self, img):
        x = self.convolutions(img)
        x = x.reshape(x.size(0), -1)
        return self.classifier(x)


def load_lenet5() -> LeNet5:
    """The shared LeNet-5 with its trained weights (``lenet5.pth``, read with
    ``weights_only=True``), in eval mode; skips the test (fails under CI) if the file is missing."""
    path = data_path("lenet5-webmnist", "lenet5.pth")
    state = torch.load(path, weights_only=True, map_location="cpu")
    model = LeNet5()
    model.load_state_dict(state)
    return model.eval()
