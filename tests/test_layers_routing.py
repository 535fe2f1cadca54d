"""Routing layers (Permute, Slice, Stack, ConcatConstant) and the activations Hardswish,
Hardsigmoid, Mish.

A routing layer's relevance map is the transposed index map: the relevance of an input cell is
the sum of the relevance of the output cells it became. The oracle is torch's autograd of the
same torch operation: ``∂⟨R, f(x)⟩/∂x`` is exactly that transposed map. Relevance is conserved
exactly (Slice: the relevance of the cells taken). NumPy, torch and array-api-strict agree.
"""

from __future__ import annotations

import numpy as np
import pytest

import lrp_core as lrp

torch = pytest.importorskip("torch")
xps = pytest.importorskip("array_api_strict")

rng = np.random.default_rng(11)


def _route(layer, *inputs):
    """The layer's forward output and the relevance of each input for a random output
    relevance ``R``."""
    y = layer(*inputs)
    relevance = rng.standard_normal(tuple(y.shape))
    routed = layer.route(relevance, [tuple(a.shape) for a in inputs])
    return y, relevance, routed


def _autograd_route(fn, inputs, relevance):
    """``∂⟨R, fn(x...)⟩/∂x`` for each input: the transposed index map of ``fn``."""
    tensors = [torch.tensor(a, requires_grad=True) for a in inputs]
    out = fn(*tensors)
    (out * torch.from_numpy(relevance)).sum().backward()
    return [t.grad.numpy() for t in tensors]


# -- Permute -------------------------------------------------------------------------------------

@pytest.mark.parametrize("axes", [(0, 2, 3, 1), (0, 3, 1, 2), (0, 1, 3, 2), (0, 2, 1, 3)])
def test_permute_matches_torch_and_routes_back(axes):
    x = rng.standard_normal((2, 3, 4, 5))
    layer = lrp.Permute(axes)
    y, relevance, (routed,) = _route(layer, x)
    np.testing.assert_array_equal(y, torch.from_numpy(x).permute(*axes).numpy())
    (oracle,) = _autograd_route(lambda t: t.permute(*axes), [x], relevance)
    np.testing.assert_array_equal(routed, oracle)
    assert routed.sum() == pytest.approx(relevance.sum(), rel=1e-12)


def test_permute_rejects_bad_axes():
    with pytest.raises(ValueError, match="permutation"):
        lrp.Permute((0, 1, 1))
    with pytest.raises(ValueError, match="batch axis first"):
        lrp.Permute((1, 0, 2))
    with pytest.raises(ValueError, match="rank 3"):
        lrp.Permute((0, 2, 1))(np.zeros((2, 3, 4, 5)))


def test_identity_permute_is_removed_by_canonize():
    model = lrp.Chain(lrp.Permute((0, 1, 2)), lrp.Flatten(), lrp.Dense(np.eye(6)))
    assert [type(layer).__name__ for layer in lrp.canonize(model)] == ["Flatten", "Dense"]


# -- Slice ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("axis, start, stop, step", [
    (1, 1, None, 1), (2, 0, 2, 1), (-1, None, None, 2), (3, 1, 4, 2), (1, -2, None, 1),
    (2, 3, 100, 1), (3, -100, 2, 3), (2, 1, 2, 1), (1, 2, 1, 1)])
def test_slice_matches_python_slicing_and_routes_back(axis, start, stop, step):
    x = rng.standard_normal((2, 3, 4, 5))
    layer = lrp.Slice(axis, start, stop, step)
    index = [slice(None)] * 4
    index[axis] = slice(start, stop, step)
    expected = x[tuple(index)]
    y = layer(x)
    np.testing.assert_array_equal(y, expected)
    relevance = rng.standard_normal(expected.shape)
    (routed,) = layer.route(relevance, [x.shape])
    (oracle,) = _autograd_route(lambda t: t[tuple(index)], [x], relevance)
    np.testing.assert_array_equal(routed, oracle)
    assert routed.sum() == pytest.approx(relevance.sum(), rel=1e-12, abs=1e-12)


def test_slice_rejects_the_batch_axis_and_bad_steps():
    with pytest.raises(ValueError, match="batch axis"):
        lrp.Slice(0, 1, 2)
    with pytest.raises(ValueError, match="step >= 1"):
        lrp.Slice(1, None, None, 0)
    with pytest.raises(ValueError, match="non-batch axis"):
        lrp.Slice(-3, 0, 1)(np.zeros((2, 3)))


def test_split_as_slices_reading_one_value_conserves_relevance():
    """``torch.split(x, 2, dim=1)`` as two Slices of one value: fan-out relevance adds, so the
    input gets back the relevance of both pieces."""
    b = lrp.GraphBuilder()
    first = b.add(lrp.Slice(1, 0, 2), [0])
    second = b.add(lrp.Slice(1, 2, 5), [0])
    joined = b.add(lrp.Concat(1), [second, first])
    out = b.add(lrp.Dense(rng.standard_normal((3, 5))), [joined])
    model = b.build(out)
    x = rng.standard_normal((2, 5))
    explanation = lrp.LRP(model, lrp.EpsilonRule(1e-12),
                          normalize_output_relevance=False)(x, [0, 2])
    # one Dense on a permutation of the input: LRP-epsilon (tiny epsilon) is gradient x input
    w = model.nodes[-1].layer.weight
    order = [2, 3, 4, 0, 1]
    expected = np.zeros_like(x)
    for i, t in enumerate([0, 2]):
        expected[i, order] = x[i, order] * w[t]
    np.testing.assert_allclose(explanation.val, expected, rtol=1e-10, atol=1e-12)


# -- Stack ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [1, 2, -1])
def test_stack_matches_torch_and_routes_back(axis):
    inputs = [rng.standard_normal((2, 3, 4)) for _ in range(3)]
    layer = lrp.Stack(axis)
    y, relevance, routed = _route(layer, *inputs)
    np.testing.assert_array_equal(y, torch.stack([torch.from_numpy(a) for a in inputs],
                                                 axis).numpy())
    oracle = _autograd_route(lambda *ts: torch.stack(ts, axis), inputs, relevance)
    for got, want in zip(routed, oracle):
        np.testing.assert_array_equal(got, want)
    assert sum(r.sum() for r in routed) == pytest.approx(relevance.sum(), rel=1e-12)


def test_stack_rejects_the_batch_axis_and_mixed_shapes():
    with pytest.raises(ValueError, match="batch axis"):
        lrp.Stack(0)(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="one shape"):
        lrp.Stack(1)(np.zeros((2, 3)), np.zeros((2, 4)))


# -- constants -------------------------------------------------------------------------------------

def test_concat_constant_is_a_class_token_and_drops_its_share():
    cls = rng.standard_normal((1, 4))
    x = rng.standard_normal((2, 3, 4))
    layer = lrp.ConcatConstant(cls, axis=1)
    y, relevance, (routed,) = _route(layer, x)
    token = torch.from_numpy(cls)[None].expand(2, -1, -1)
    np.testing.assert_array_equal(y, torch.cat([token, torch.from_numpy(x)], 1).numpy())
    np.testing.assert_array_equal(routed, relevance[:, 1:])  # the token's row is not passed on


def test_add_constant_takes_a_bias_share():
    """``x + c`` under LRP-0: ``R_x = x ⊙ R / (x + c)``, hand-computed."""
    c = np.array([1.0, -2.0])
    x = np.array([[3.0, 1.0]])
    relevance = np.array([[0.8, 0.5]])
    got = lrp.propagate(lrp.ZeroRule(), lrp.AddConstant(c), x, relevance)
    # y = [4, -1]: R_x = [3 * 0.8 / 4, 1 * 0.5 / -1] = [0.6, -0.5]
    np.testing.assert_allclose(got, [[0.6, -0.5]], rtol=1e-8)
    with pytest.raises(ValueError, match="more axes than one sample"):
        lrp.AddConstant(np.zeros((3, 2)))(x)
    with pytest.raises(ValueError, match="change the shape"):
        lrp.AddConstant(np.zeros((3, 2)))(np.zeros((2, 1, 2)))


# -- activations ---------------------------------------------------------------------------------

@pytest.mark.parametrize("layer, function", [
    (lrp.Hardswish(), "hardswish"), (lrp.Hardsigmoid(), "hardsigmoid"), (lrp.Mish(), "mish")])
def test_activations_match_torch_and_pass_relevance_through(layer, function):
    x = np.concatenate([np.linspace(-8.0, 8.0, 41), [-3.0, 3.0, 50.0, -50.0]])[None]
    expected = getattr(torch.nn.functional, function)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12, atol=1e-15)
    relevance = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(layer.route(relevance, [x.shape])[0], relevance)


def test_hardsigmoid_fused_into_a_conv_stays_a_gate():
    conv = lrp.Conv(rng.standard_normal((2, 2, 1, 1)), np.zeros(2))
    fused = lrp.canonize(lrp.Chain(conv, lrp.Hardsigmoid()))
    assert len(fused) == 1 and isinstance(fused[0].activation, lrp.Hardsigmoid)


# -- backends ------------------------------------------------------------------------------------

LAYERS = [
    (lrp.Permute((0, 3, 1, 2)), 1), (lrp.Slice(2, 1, None), 1), (lrp.Slice(3, 0, None, 2), 1),
    (lrp.Stack(2), 2), (lrp.ConcatConstant(rng.standard_normal((3, 4, 5)), axis=1), 1),
    (lrp.Hardswish(), 1), (lrp.Hardsigmoid(), 1), (lrp.Mish(), 1),
]


@pytest.mark.parametrize("layer, n_inputs", LAYERS, ids=lambda v: getattr(v, "describe",
                                                                           lambda: str(v))())
def test_numpy_torch_and_array_api_strict_agree(layer, n_inputs):
    inputs = [rng.standard_normal((2, 3, 4, 5)) for _ in range(n_inputs)]
    y, relevance, routed = _route(layer, *inputs)
    for convert in (torch.from_numpy, xps.asarray):
        converted = layer.convert(convert)
        got_y = converted(*[convert(a) for a in inputs])
        got = converted.route(convert(relevance), [a.shape for a in inputs])
        np.testing.assert_allclose(np.asarray(got_y), y, rtol=1e-12, atol=1e-15)
        for g, want in zip(got, routed):
            assert type(g) is type(convert(relevance))
            np.testing.assert_array_equal(np.asarray(g), want)


def test_channel_shuffle_through_the_analyzer():
    """Channel shuffle (Reshape, Permute, Reshape) then a 1x1 conv: LRP-epsilon with a tiny
    epsilon is gradient x input (torch autograd of the same torch ops)."""
    groups, c = 2, 4
    w = rng.standard_normal((3, c, 1, 1))
    model = lrp.Chain(lrp.Reshape((groups, c // groups, 3, 3)), lrp.Permute((0, 2, 1, 3, 4)),
                      lrp.Reshape((c, 3, 3)), lrp.Conv(w, None), lrp.GlobalAvgPool(),
                      lrp.Flatten())
    x = rng.standard_normal((2, c, 3, 3))
    got = lrp.LRP(model, lrp.EpsilonRule(1e-13), normalize_output_relevance=False)(x, [1, 2]).val

    t = torch.tensor(x, requires_grad=True)
    h = t.view(2, groups, c // groups, 3, 3).transpose(1, 2).reshape(2, c, 3, 3)
    out = torch.nn.functional.conv2d(h, torch.from_numpy(w)).mean((2, 3))
    out[[0, 1], [1, 2]].sum().backward()
    np.testing.assert_allclose(got, (t.grad * t).detach().numpy(), rtol=1e-9, atol=1e-12)


def test_add_constant_agrees_across_backends():
    c = rng.standard_normal((3, 4))
    x = rng.standard_normal((2, 3, 4))
    relevance = rng.standard_normal(x.shape)
    layer = lrp.AddConstant(c)
    expected = lrp.propagate(lrp.EpsilonRule(1e-3), layer, x, relevance)
    np.testing.assert_allclose(expected, x * relevance / (x + c + 1e-3 * np.sign(x + c)),
                               rtol=1e-12)
    for convert in (torch.from_numpy, xps.asarray):
        got = lrp.propagate(lrp.EpsilonRule(1e-3), layer, convert(x), convert(relevance))
        assert type(got) is type(convert(x))
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12)
