"""Shared by the ONNX tests: small models written with ``onnx.helper``, the presets by name,
onnxruntime as the forward oracle, the float64 autograd oracle of the ONNX model tests and a
relevance comparison scaled to the largest entry. Importing this module skips the importing
test module when onnxruntime is missing."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import lrp_core as lrp
from lrp_core.presets import NEEDS_BOUNDS

from .tolerances import assert_relevance_close

ort = pytest.importorskip("onnxruntime")

__all__ = ["PRESETS", "assert_relevance_close", "make_model", "numpy_gradient_times_input",
           "ort_forward"]


def _preset(name, low, high):
    return lrp.preset(name, low=low, high=high) if name in NEEDS_BOUNDS else lrp.preset(name)


#: every preset of the registry (lrp.PRESETS), as ``PRESETS[name](low, high)``
PRESETS = {name: functools.partial(_preset, name) for name in lrp.PRESETS}


def make_model(nodes, x_shape, inits=None, opset=17, outputs=("y",), inputs=None, domains=(),
               batch="N"):
    """A model of ``nodes`` with the input ``x`` of shape ``(batch, *x_shape)`` (or ``inputs``,
    value infos), the outputs named ``outputs`` (shapes left open), the initializers ``inits``
    (name -> array), the default opset ``opset`` and version 1 of each of ``domains``."""
    from onnx import TensorProto, helper, numpy_helper

    initializers = [numpy_helper.from_array(np.asarray(v), name)
                    for name, v in (inits or {}).items()]
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, *x_shape])]
    outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
    graph = helper.make_graph(nodes, "test", inputs, outputs, initializers)
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = max(3, helper.find_min_ir_version_for([helper.make_opsetid("", opset)]))
    return model


def ort_forward(path, x):
    """onnxruntime, one sample at a time (the graphs fix the batch size to 1)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


def numpy_gradient_times_input(model, x: np.ndarray, selection) -> np.ndarray:
    """The autograd oracle, float64, NumPy in and out: ∂ logit[selection] / ∂x ⊙ x of the torch
    callable ``model`` (torch is imported here, only when called)."""
    import torch

    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out = model(xt)
    out[torch.arange(len(x)), torch.as_tensor(selection)].sum().backward()
    return (xt.grad * xt).detach().numpy()
