"""``benchmarks.arithmetic`` counts what a pass computes: its FLOPs agree with torch's own flop
counter (outside inference mode, where that counter works) and with the formula written here,
and an epsilon pass costs the gradient's convolution FLOPs, EpsilonPlusFlat more."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import lrp_core as lrp  # noqa: E402
from benchmarks.arithmetic import count_pass  # noqa: E402


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(4, 5, 3, stride=2, padding=1, groups=1), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(5 * 4 * 4, 6)).eval()


def _gradient(model, x):
    def call():  # .backward(): torch's FlopCounterMode refuses torch.autograd.grad
        xt = x.clone().requires_grad_(True)
        model(xt)[:, 0].sum().backward()
    return call


def test_flops_agree_with_torch_and_by_hand():
    from torch.utils.flop_counter import FlopCounterMode

    model = _model()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(2, 3, 8, 8)
    with FlopCounterMode(display=False) as torchs:
        _gradient(model, x)()
    ours = count_pass(_gradient(model, x))
    # forward and input-gradient of each layer: 2 * (2*outputs*taps) each
    by_hand = 2 * (2 * 2 * 4 * 8 * 8 * 3 * 9 + 2 * 2 * 5 * 4 * 4 * 4 * 9 + 2 * 2 * 6 * 80)
    assert torchs.get_total_flops() == by_hand
    assert round(ours["gflop"] * 1e9) == by_hand
    assert ours["other_mb"] > 0


def test_epsilon_costs_the_gradients_flops_and_zplus_more():
    model = _model()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(2, 3, 8, 8)
    gradient = count_pass(_gradient(model, x))["gflop"]
    for rule, expected in ((lrp.EpsilonRule(1e-6), 1.0), (lrp.EpsilonPlusFlat(), None)):
        analyzer = lrp.LRP(model, rule)
        analyzer(x, 0)
        flops = count_pass(lambda a=analyzer: a(x, 0))["gflop"]
        if expected is not None:
            assert flops == pytest.approx(expected * gradient)
        else:  # flat on the first layer, z+ (one more product) on the second, epsilon last
            assert 1.2 * gradient < flops < 2.0 * gradient
