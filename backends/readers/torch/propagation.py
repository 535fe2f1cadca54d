"""Shape propagation: the per-sample shape of every tensor of the traced graph, for one
per-sample input shape.

:func:`propagate_shapes` runs the fx graph of the :class:`~.tracing.Wrapper` on *fake* tensors
(``torch._subclasses.FakeTensorMode``: tensors with a shape, a dtype and a device but no data):
every call computes only its output's shape, so nothing is computed, allocated at full size or
written. The parameters are converted to fake tensors on the fly; the user's module is neither
modified nor run: each leaf module's ``forward`` runs on fake tensors, on a shallow copy of the
module whose ``training`` flag is off (a BatchNorm in training mode would otherwise count its
batches in ``num_batches_tracked``, a real 0-d tensor even here), with hooks skipped.

The batch axis stays symbolic: propagation runs on a batch of :data:`PROPAGATION_BATCH` samples,
and the reader takes each tensor's shape without its leading axis. Sizes the model reads with
``x.size(0)`` / ``x.shape[0]`` are the batch in the reader's own values (:class:`~.values.Dim`),
never this number; every other size becomes a concrete int.
"""

from __future__ import annotations

import copy

import torch
import torch.fx as fx
import torch.nn as nn

from lrp_core.errors import LRPError

from .tracing import Wrapper

__all__ = ["PROPAGATION_BATCH", "per_sample_shape", "propagate_shapes", "inference_view"]

PROPAGATION_BATCH = 2  # not 1, so that a size-1 batch axis is never squeezed or broadcast


def per_sample_shape(input_shape) -> tuple[int, ...]:
    """``input_shape`` (a per-sample shape, or an example tensor, batch first) as a tuple."""
    if isinstance(input_shape, torch.Tensor):
        if input_shape.dim() < 1:
            raise ValueError("input_shape: an example tensor needs a batch axis, got a scalar")
        return tuple(int(s) for s in input_shape.shape[1:])
    try:
        shape = tuple(int(s) for s in input_shape)
    except TypeError:
        raise TypeError(f"input_shape is a per-sample shape (a tuple of ints, without the batch "
                        f"axis) or an example tensor (batch first), got {input_shape!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"input_shape {shape} has a negative size")
    return shape


def _example_dtype_device(module: torch.nn.Module, example) -> tuple:
    if isinstance(example, torch.Tensor):
        return example.dtype, example.device
    for p in list(module.parameters()) + list(module.buffers()):
        if p.is_floating_point():
            return p.dtype, p.device
    return torch.get_default_dtype(), torch.device("cpu")


def inference_view(module: nn.Module) -> nn.Module:
    """A shallow copy of ``module`` (and of its submodules) with ``training=False``: it shares
    the parameters and buffers but not the flags, so that running it updates no statistics
    (BatchNorm's ``num_batches_tracked`` is a real 0-d tensor even under fake tensors). The
    user's module and its flags are untouched."""
    view = copy.copy(module)
    view.__dict__["training"] = False
    view.__dict__["_modules"] = {name: None if child is None else inference_view(child)
                                 for name, child in module._modules.items()}
    return view


class _Propagation:
    """fx's fake-tensor propagation, calling each leaf module's ``forward`` (hooks skipped,
    as in the trace) on an inference view of the module."""

    def __new__(cls, runnable, mode):
        from torch.fx.passes.fake_tensor_prop import FakeTensorProp

        class Propagation(FakeTensorProp):
            def call_module(self, target, args, kwargs):
                module = self.fetch_attr(target)
                if isinstance(module, (nn.TransformerEncoderLayer, nn.TransformerEncoder)) \
                        and args and isinstance(args[0], torch.Tensor):
                    # the output has the input's shape; forward would read the mask's values
                    # (torch detects a causal mask), which fake tensors do not have
                    return torch.empty_like(args[0])
                return inference_view(module).forward(*args, **kwargs)

        return Propagation(runnable, mode)


def propagate_shapes(graph: fx.Graph, wrapper: Wrapper, input_shape,
                     full_shapes: dict | None = None) -> dict:
    """``{fx node: per-sample shape}`` for every node whose value is a tensor (``None`` for a
    node whose value is something else: a size, a tuple, a constant). ``full_shapes``, if
    given, receives ``{fx node: full shape}`` of every tensor (the batch axis wherever it is:
    a ``(length, batch, embedding)`` tensor, :mod:`.layout`).

    ``input_shape``: the per-sample input shape or an example tensor. Raises an
    :class:`lrp_core.LRPError` naming the shape when the model cannot run on it.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    shape = per_sample_shape(input_shape)
    dtype, device = _example_dtype_device(wrapper.model, input_shape)
    runnable = fx.GraphModule(wrapper, graph)  # holds references to the user's submodules only
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    example = torch.empty((PROPAGATION_BATCH, *shape), dtype=dtype, device=device)
    try:
        _Propagation(runnable, mode).propagate(example)
    except Exception as error:  # the model cannot run on this shape (or fake tensors fail)
        raise LRPError(f"{type(wrapper.model).__name__} cannot run on inputs of per-sample shape "
                       f"{shape} (batch first: ({PROPAGATION_BATCH}, {', '.join(map(str, shape))}"
                       f")): {type(error).__name__}: {error}") from error
    shapes = {}
    for node in graph.nodes:
        value = node.meta.pop("val", None)
        node.meta.pop("tensor_meta", None)
        if full_shapes is not None and isinstance(value, torch.Tensor):
            full_shapes[node] = tuple(int(s) for s in value.shape)
        if isinstance(value, torch.Tensor) and value.dim() >= 1 \
                and value.shape[0] == PROPAGATION_BATCH:
            shapes[node] = tuple(int(s) for s in value.shape[1:])
        else:
            shapes[node] = None
    return shapes
