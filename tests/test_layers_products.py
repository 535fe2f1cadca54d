"""The layers Mul, MatMul and Softmax: forward passes against torch, and their linearisations
(the pullback is the exact vector-Jacobian product) against torch's autograd; NumPy, torch and
array-api-strict agree."""

from __future__ import annotations

import numpy as np
import pytest

import lrp_core as lrp

torch = pytest.importorskip("torch")
xps = pytest.importorskip("array_api_strict")

rng = np.random.default_rng(12)

CASES = [
    (lrp.Mul(), (2, 3, 4), (2, 3, 4), torch.mul),
    (lrp.Mul(), (2, 3, 4, 4), (2, 3, 1, 1), torch.mul),  # squeeze-excitation: x * gate
    (lrp.Mul(), (2, 1, 4), (2, 3, 1), torch.mul),  # both broadcast
    (lrp.MatMul(), (2, 3, 4), (2, 4, 5), torch.matmul),
    (lrp.MatMul(), (2, 2, 3, 4), (2, 2, 4, 3), torch.matmul),  # heads
    (lrp.MatMul(), (2, 2, 3, 4), (2, 1, 4, 3), torch.matmul),  # broadcast over heads
]


@pytest.mark.parametrize("layer, shape_a, shape_b, op", CASES)
def test_forward_and_pullback_match_autograd(layer, shape_a, shape_b, op):
    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    z, pullback = layer.linearize(a, b)
    ta = torch.tensor(a, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    out = op(ta, tb)
    np.testing.assert_allclose(layer(a, b), out.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(z, out.detach().numpy(), rtol=1e-12, atol=1e-14)
    s = rng.standard_normal(tuple(out.shape))
    (out * torch.from_numpy(s)).sum().backward()
    got_a, got_b = pullback(s)
    assert got_a.shape == shape_a and got_b.shape == shape_b
    np.testing.assert_allclose(got_a, ta.grad.numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(got_b, tb.grad.numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dim", [-1, 1, 2])
def test_softmax_pullback_matches_autograd(dim):
    x = rng.standard_normal((2, 3, 4)) * 3
    layer = lrp.Softmax(dim)
    s, pullback = layer.linearize(x)
    t = torch.tensor(x, requires_grad=True)
    out = torch.softmax(t, dim)
    np.testing.assert_allclose(s, out.detach().numpy(), rtol=1e-12)
    v = rng.standard_normal(x.shape)
    (out * torch.from_numpy(v)).sum().backward()
    np.testing.assert_allclose(pullback(v)[0], t.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_matmul_needs_two_batched_matrices():
    with pytest.raises(ValueError, match="weight is a Dense"):
        lrp.MatMul()(np.ones((2, 3)), np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="do not match"):
        lrp.MatMul()(np.ones((2, 3, 4)), np.ones((2, 3, 4)))


def test_mul_needs_inputs_of_one_rank():
    with pytest.raises(ValueError, match="one rank"):
        lrp.Mul()(np.ones((2, 3, 4)), np.ones((2, 4)))


def test_products_take_two_inputs():
    with pytest.raises(TypeError, match="2 input"):
        lrp.Mul()(np.ones((2, 3)))
    assert isinstance(lrp.Mul(), lrp.ProductLayer) and isinstance(lrp.MatMul(), lrp.ProductLayer)


def test_softmax_as_an_activation_is_still_stripped():
    """Softmax is no longer a pass-through activation, but ``activation=lrp.Softmax()`` on the
    output layer is still what strip_softmax removes."""
    dense = lrp.Dense(np.eye(3), activation=lrp.Softmax())
    assert isinstance(dense.activation, lrp.Softmax)
    assert lrp.strip_softmax(lrp.Chain(dense))[0].activation is None


@pytest.mark.parametrize("layer, shape_a, shape_b, op", CASES[1:2] + CASES[4:5])
def test_numpy_torch_and_array_api_strict_agree(layer, shape_a, shape_b, op):
    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    z, pullback = layer.linearize(a, b)
    s = rng.standard_normal(z.shape)
    expected = pullback(s)
    for convert in (torch.from_numpy, xps.asarray):
        z2, pullback2 = layer.linearize(convert(a), convert(b))
        np.testing.assert_allclose(np.asarray(z2), z, rtol=1e-12)
        for got, want in zip(pullback2(convert(s)), expected):
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-14)
    softmax = lrp.Softmax(-1)
    s0, back0 = softmax.linearize(a)
    for convert in (torch.from_numpy, xps.asarray):
        s1, back1 = softmax.linearize(convert(a))
        np.testing.assert_allclose(np.asarray(s1), s0, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(back1(convert(a))[0]), back0(a)[0], rtol=1e-12,
                                   atol=1e-15)
