"""``lrp.L2Normalize`` (``y = x / max(‖x‖₂, eps)``) and ``lrp.L2NormalizeRule`` (the norm held
constant: relevance passes through unchanged): hand-computed values, the exact Jacobian against
torch's autograd, the rule against gradient x input of a torch model whose norm is detached
(float64), NumPy, torch and array-api-strict agreeing, and the presets' choice."""

from __future__ import annotations

import numpy as np
import pytest

import lrp_core as lrp

torch = pytest.importorskip("torch")
xps = pytest.importorskip("array_api_strict")

rng = np.random.default_rng(21)


def test_hand_computed_forward_and_jacobian():
    layer = lrp.L2Normalize(-1)
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    y, pullback = layer.linearize(x)
    # ‖(3, 4)‖ = 5; the zero row is divided by eps (torch's clamp_min), so it stays 0
    np.testing.assert_allclose(y, [[0.6, 0.8], [0.0, 0.0]], rtol=0, atol=1e-15)
    # Jᵀs = (s − y⟨y, s⟩)/‖x‖ for s = (1, 0): ((1, 0) − 0.6·(0.6, 0.8))/5 = (0.128, −0.096);
    # where the norm is clamped the map is x/eps, so Jᵀs = s/eps
    (back,) = pullback(np.array([[1.0, 0.0], [1.0, 0.0]]))
    np.testing.assert_allclose(back[0], [0.128, -0.096], rtol=1e-14)
    np.testing.assert_allclose(back[1], [1e12, 0.0], rtol=1e-14)
    # the rule: the norm held constant, relevance passes through cell by cell
    relevance = np.array([[0.25, -1.5], [2.0, 3.0]])
    r_in = lrp.propagate(lrp.L2NormalizeRule(), layer, x, relevance)
    np.testing.assert_array_equal(r_in, relevance)


@pytest.mark.parametrize("shape, axis", [((2, 5), -1), ((2, 3, 4), 1), ((2, 3, 4, 5), -2),
                                         ((2, 3, 4, 5), 3)])
def test_forward_and_pullback_match_torch(shape, axis):
    x = torch.from_numpy(rng.standard_normal(shape)).requires_grad_(True)
    expected = torch.nn.functional.normalize(x, dim=axis)
    s = torch.from_numpy(rng.standard_normal(shape))
    (grad,) = torch.autograd.grad(expected, x, s)
    y, pullback = lrp.L2Normalize(axis).linearize(x.detach().numpy())
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(pullback(s.numpy())[0], grad.numpy(), rtol=1e-12, atol=1e-14)


def test_numpy_torch_and_array_api_strict_agree():
    layer = lrp.L2Normalize(2, eps=1e-6)
    x = rng.standard_normal((2, 3, 4, 5))
    x[0, :, :, 1] = 0.0  # a clamped norm
    s = rng.standard_normal(x.shape)
    y, pullback = layer.linearize(x)
    expected = pullback(s)[0]
    for convert in (torch.from_numpy, xps.asarray):
        y2, pullback2 = layer.linearize(convert(x))
        np.testing.assert_allclose(np.asarray(y2), y, rtol=1e-14, atol=1e-16)
        np.testing.assert_allclose(np.asarray(pullback2(convert(s))[0]), expected, rtol=1e-12,
                                   atol=1e-12)
        assert type(layer(convert(x))) is type(convert(x))
    # and a whole analyzer, on the three namespaces
    w1, w2 = rng.standard_normal((6, 4)), rng.standard_normal((3, 6))
    model = lrp.Chain(lrp.Dense(w1, rng.standard_normal(6)), lrp.L2Normalize(-1),
                      lrp.Dense(w2))
    rules = [lrp.EpsilonRule(), lrp.L2NormalizeRule(), lrp.EpsilonRule()]
    a = rng.standard_normal((3, 4))
    reference = lrp.LRP(model, rules)(a).val
    for convert in (torch.from_numpy, xps.asarray):
        got = lrp.LRP(model, rules)(convert(a)).val
        np.testing.assert_allclose(np.asarray(got), reference, rtol=1e-12, atol=1e-14)


class _NormalizeNet(torch.nn.Module):
    """Dense -> L2 normalise -> Dense -> ReLU -> Dense; ``detach_norm`` holds the norm constant
    (what the rule assumes)."""

    def __init__(self, w1, b1, w2, b2, w3, detach_norm):
        super().__init__()
        self.w = [torch.from_numpy(v) for v in (w1, b1, w2, b2, w3)]
        self.detach_norm = detach_norm

    def forward(self, x):
        w1, b1, w2, b2, w3 = self.w
        h = x @ w1.T + b1
        norm = h.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        h = h / (norm.detach() if self.detach_norm else norm)
        return torch.relu(h @ w2.T + b2) @ w3.T


@pytest.mark.parametrize("detach_norm", [True, False])
def test_rules_equal_gradient_times_input_in_float64(detach_norm):
    """LRP-0 from the logit is gradient x input of a piecewise-linear network: with
    ``L2NormalizeRule`` that of the network with the norm detached, with ``ZeroRule`` on the
    normalisation (the exact Jacobian) that of the network itself."""
    w1, b1 = rng.standard_normal((5, 4)), rng.standard_normal(5)
    w2, b2 = rng.standard_normal((6, 5)), rng.standard_normal(6)
    w3 = rng.standard_normal((3, 6))
    x = rng.standard_normal((4, 4))
    net = _NormalizeNet(w1, b1, w2, b2, w3, detach_norm)
    xt = torch.from_numpy(x).requires_grad_(True)
    out = net(xt)
    selection = out.argmax(1)
    (grad,) = torch.autograd.grad(out[torch.arange(4), selection].sum(), xt)
    expected = (xt * grad).detach().numpy()

    model = lrp.Chain(lrp.Dense(w1, b1), lrp.L2Normalize(-1),
                      lrp.Dense(w2, b2, activation=lrp.relu), lrp.Dense(w3))
    normalize_rule = lrp.L2NormalizeRule() if detach_norm else lrp.ZeroRule()
    analyzer = lrp.LRP(model, [lrp.ZeroRule(), normalize_rule, lrp.ZeroRule(), lrp.ZeroRule()],
                       normalize_output_relevance=False)
    expl = analyzer(x)
    np.testing.assert_allclose(expl.output, out.detach().numpy(), rtol=1e-12)
    scale = np.abs(expected).max()  # the stabiliser (1e-9) moves entries by ~1e-9 of it
    np.testing.assert_allclose(expl.val, expected, rtol=1e-7, atol=1e-7 * scale)


def test_every_preset_holds_the_norm_constant_but_zero():
    layer = lrp.L2Normalize(-1)
    model = lrp.Chain(lrp.Dense(rng.standard_normal((4, 3))), layer, lrp.Dense(np.eye(4)))
    for name in lrp.PRESETS:
        composite = lrp.preset(name, low=-1.0, high=1.0) if name == "epsilon_gamma_box" \
            else lrp.preset(name)
        rules = lrp.LRP(model, composite).rules
        expected = lrp.ZeroRule() if name == "zero" else lrp.L2NormalizeRule()
        assert rules[1] == expected, (name, rules[1])


def test_refusals():
    with pytest.raises(ValueError, match="p=2"):
        lrp.L2Normalize(-1, p=1)
    with pytest.raises(ValueError, match="eps"):
        lrp.L2Normalize(-1, eps=0.0)
    with pytest.raises(ValueError, match="non-batch axis"):
        lrp.L2Normalize(0)(np.ones((2, 3)))
    with pytest.raises(lrp.LRPCompatibilityError):
        lrp.LRP(lrp.Chain(lrp.Dense(np.eye(3))), [lrp.L2NormalizeRule()])
    assert isinstance(lrp.L2Normalize(-1), lrp.NormalizationLayer)
