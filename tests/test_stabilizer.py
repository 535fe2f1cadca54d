"""``stabilize_denom``: ``d + eps·sign(d)`` with ``sign(0) = +1``, bit for bit the textbook
``where(d >= 0, d + eps, d - eps)`` (written in the test) on every namespace and float dtype,
signed zeros, infinities and NaN included."""

import numpy as np
import pytest

import lrp_core as lrp

SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 1e30, -1e30]


def _textbook(d, eps):
    eps = d.dtype.type(eps)
    return np.where(d >= 0, d + eps, d - eps)


def _namespaces(dtype):
    yield "numpy", lambda a: a
    torch = pytest.importorskip("torch")
    yield "torch", torch.from_numpy
    if dtype != np.float16:
        xs = pytest.importorskip("array_api_strict")
        yield "array-api-strict", xs.asarray


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("eps", [1e-9, 1e-6, 1e-2, 0.25, 3.0])
def test_stabilizer_equals_the_textbook_formula_bit_for_bit(dtype, eps):
    rng = np.random.default_rng(0)
    d = np.concatenate([rng.standard_normal(2000), SPECIAL]).astype(dtype)
    expected = _textbook(d, eps)
    for name, convert in _namespaces(dtype):
        out = np.asarray(lrp.stabilize_denom(convert(d), eps))
        assert out.dtype == dtype, name
        assert np.array_equal(out, expected, equal_nan=True), name
        # zero gets +eps, never 0 or -eps
        assert out[2000] == dtype(eps) and out[2001] == dtype(eps), name


def test_stabilizer_leaves_its_input_unchanged():
    d = np.array([-1.0, 0.0, 2.0])
    lrp.stabilize_denom(d, 0.5)
    assert d.tolist() == [-1.0, 0.0, 2.0]
