"""The backends' ``sigmoid`` and ``silu`` kernels against the array-API reference formula
(``1 / (1 + exp(-x))``, ``x / (1 + exp(-x))``, written here) in float64, extremes included, and
the ``Sigmoid``/``SiLU`` layers using them on every namespace."""

import math

import numpy as np
import pytest

import lrp_core as lrp
from lrp_core.kernels import get_backend

X = np.concatenate([np.linspace(-40.0, 40.0, 801), [0.0, -0.0, 700.0, -700.0, 1e-300]])


def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v)) if v > -700 else 0.0


def _expected(kind):
    sig = np.array([_sigmoid(v) for v in X])
    return sig if kind == "sigmoid" else X * sig


def _namespaces():
    yield "numpy", lambda a: a
    torch = pytest.importorskip("torch")
    yield "torch", torch.from_numpy
    xs = pytest.importorskip("array_api_strict")
    yield "array-api-strict", xs.asarray


@pytest.mark.parametrize("kind", ["sigmoid", "silu"])
def test_kernel_matches_the_formula(kind):
    expected = _expected(kind)
    for name, convert in _namespaces():
        x = convert(X)
        out = np.asarray(getattr(get_backend(lrp.arrays.namespace_of(x)), kind)(x))
        np.testing.assert_allclose(out, expected, rtol=1e-14, atol=1e-300, err_msg=name)


@pytest.mark.parametrize("layer, kind", [(lrp.Sigmoid(), "sigmoid"), (lrp.SiLU(), "silu")])
def test_layers_agree_across_namespaces(layer, kind):
    expected = _expected(kind)
    for name, convert in _namespaces():
        out = np.asarray(layer.forward(convert(X)))
        np.testing.assert_allclose(out, expected, rtol=1e-14, atol=1e-300, err_msg=name)


def test_torch_kernels_are_torchs_own():
    torch = pytest.importorskip("torch")
    x = torch.linspace(-9, 9, 101, dtype=torch.float32)
    backend = get_backend(lrp.arrays.namespace_of(x))
    assert torch.equal(backend.sigmoid(x), torch.sigmoid(x))
    assert torch.equal(backend.silu(x), torch.nn.functional.silu(x))
