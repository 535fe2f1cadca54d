"""The seed example of the architecture (section 5): a hand-built LeNet-5 explained with
``[ZPlusRule(), EpsilonRule(), MyGammaRule(), EpsilonRule(), ZeroRule() x 4]``.

The model is written with separate ``lrp.ReLU()`` layers (as read from PyTorch); canonize
fuses them into the preceding Conv/Dense, so the 8 rules fit. The expected relevance is
re-derived by an independent NumPy implementation (``helpers.oracle.OracleChain``).
"""

from __future__ import annotations

import math
import os
import re
import sys

import numpy as np
import pytest

import lrp_core as lrp
from lrp_core.demo import example_rules  # the custom-rule example's 8 rules

sys.path.insert(0, os.path.dirname(__file__))
from helpers import oracle as O  # noqa: E402


class MyGammaRule(lrp.LRPRule):
    def modify_parameters(self, param):
        return param + 0.25 * lrp.relu(param)


@pytest.fixture(scope="module")
def lenet():
    rng = np.random.default_rng(2024)

    def w(*shape):
        return rng.normal(scale=math.sqrt(2.0 / math.prod(shape[1:])), size=shape)

    def b(n):
        return 0.05 * rng.normal(size=n)

    params = dict(w1=w(6, 1, 5, 5), b1=b(6), w2=w(16, 6, 5, 5), b2=b(16),
                  w3=w(120, 256), b3=b(120), w4=w(84, 120), b4=b(84), w5=w(10, 84), b5=b(10))
    x = rng.normal(size=(4, 1, 28, 28))
    return params, x


def separate_relus(p):
    return lrp.Chain(
        lrp.Conv(p["w1"], p["b1"]), lrp.ReLU(), lrp.MaxPool(2),
        lrp.Conv(p["w2"], p["b2"]), lrp.ReLU(), lrp.MaxPool(2),
        lrp.Flatten(),
        lrp.Dense(p["w3"], p["b3"]), lrp.ReLU(),
        lrp.Dense(p["w4"], p["b4"]), lrp.ReLU(),
        lrp.Dense(p["w5"], p["b5"]))


def fused_relus(p):
    return lrp.Chain(
        lrp.Conv(p["w1"], p["b1"], activation=lrp.relu), lrp.MaxPool(2),
        lrp.Conv(p["w2"], p["b2"], activation=lrp.relu), lrp.MaxPool(2),
        lrp.Flatten(),
        lrp.Dense(p["w3"], p["b3"], activation=lrp.relu),
        lrp.Dense(p["w4"], p["b4"], activation=lrp.relu),
        lrp.Dense(p["w5"], p["b5"]))


def oracle_lenet(p):
    s1, shape = O.conv_step(p["w1"], p["b1"], (1, 28, 28), relu=True)
    s2, shape = O.conv_step(p["w2"], p["b2"], (6, 12, 12), relu=True)
    return O.OracleChain((1, 28, 28), [
        s1, ("maxpool", 2, None, 0), s2, ("maxpool", 2, None, 0), ("flatten",),
        O.dense_step(p["w3"], p["b3"], True), O.dense_step(p["w4"], p["b4"], True),
        O.dense_step(p["w5"], p["b5"], False)])


def test_seed_example_equals_gamma_rule_and_oracle(lenet):
    params, x = lenet
    before = {k: v.copy() for k, v in params.items()}
    x_before = x.copy()
    model = separate_relus(params)
    assert len(model) == 12
    analyzer = lrp.LRP(model, example_rules(MyGammaRule()))
    assert len(analyzer.model) == 8
    expl = analyzer(x)
    reference = lrp.LRP(model, example_rules(lrp.GammaRule()))(x)
    assert np.array_equal(np.asarray(expl.val), np.asarray(reference.val))
    assert expl.val.shape == x.shape and expl.val.dtype == np.float64

    # independent oracle: same network, each rule from its equation
    chain = oracle_lenet(params)
    logits = chain.forward(x)
    np.testing.assert_allclose(np.asarray(expl.output), logits, rtol=1e-11, atol=1e-12)
    assert list(expl.output_selection) == list(logits.argmax(1))
    onehot = np.eye(10)[logits.argmax(1)]
    oracle_rules = [lrp.ZPlusRule(), lrp.EpsilonRule(), lrp.GammaRule(), lrp.EpsilonRule(), None,
                    lrp.ZeroRule(), lrp.ZeroRule(), lrp.ZeroRule()]
    expected = chain.lrp(x, oracle_rules, onehot)
    np.testing.assert_allclose(np.asarray(expl.val), expected, rtol=1e-9,
                               atol=1e-12 * np.abs(expected).max())
    # the hooks are pure: neither the user's weights nor the input were touched
    for k, v in params.items():
        np.testing.assert_array_equal(v, before[k])
    np.testing.assert_array_equal(x, x_before)
    assert len(model) == 12   # canonize returned a new graph


def test_seed_example_fused_and_unfused_agree(lenet):
    params, x = lenet
    a = lrp.LRP(separate_relus(params), example_rules(MyGammaRule()))(x).val
    b = lrp.LRP(fused_relus(params), example_rules(MyGammaRule()))(x).val
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # without canonize, one rule per layer including the ReLUs (which pass relevance on)
    unfused_rules = [lrp.ZPlusRule(), lrp.ZeroRule(), lrp.EpsilonRule(), MyGammaRule(),
                     lrp.ZeroRule(), lrp.EpsilonRule(), lrp.ZeroRule(), lrp.ZeroRule(),
                     lrp.ZeroRule(), lrp.ZeroRule(), lrp.ZeroRule(), lrp.ZeroRule()]
    c = lrp.LRP(separate_relus(params), unfused_rules, canonize=False)(x).val
    np.testing.assert_allclose(np.asarray(c), np.asarray(a), rtol=1e-12, atol=1e-15)


def test_seed_example_prints_numbered_layers(lenet):
    params, _ = lenet
    analyzer = lrp.LRP(separate_relus(params), example_rules(MyGammaRule()))
    text = str(analyzer)
    kinds = ["Conv", "MaxPool", "Conv", "MaxPool", "Flatten", "Dense", "Dense", "Dense"]
    rules = ["ZPlusRule", "EpsilonRule", "MyGammaRule", "EpsilonRule", "ZeroRule", "ZeroRule",
             "ZeroRule", "ZeroRule"]
    for i, (kind, rule) in enumerate(zip(kinds, rules)):
        assert re.search(rf"(?m)^\s*{i}\s+{kind}\(.*{rule}", text), (i, text)


@pytest.mark.parametrize("n_rules", [7, 9, 12])
def test_wrong_number_of_rules_lists_numbered_layers(lenet, n_rules):
    params, _ = lenet
    rules = (example_rules(lrp.GammaRule()) + [lrp.ZeroRule()] * 4)[:n_rules]
    with pytest.raises((ValueError, lrp.LRPError)) as info:
        lrp.LRP(separate_relus(params), rules)
    message = str(info.value)
    assert str(n_rules) in message and "8" in message
    kinds = ["Conv", "MaxPool", "Conv", "MaxPool", "Flatten", "Dense", "Dense", "Dense"]
    for i, kind in enumerate(kinds):
        assert re.search(rf"(?m)^\s*{i}\s+{kind}\(", message), (i, message)
