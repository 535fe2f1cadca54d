"""Read a ``torch.nn.Module`` into an lrp-core graph (torch.fx; the module is never modified)."""

from .reader import UntraceableModelError, from_torch

__all__ = ["from_torch", "UntraceableModelError"]
