"""The conformance suite's networks: what they print is what they are, and the equivalent
networks the properties compare with compute the same function (torch is the oracle)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hypothesis import given, settings

from lrp_conformance import cases, networks
from lrp_conformance.strategies import linear_layer_cases


def _forward(network, x):
    with torch.no_grad():
        return network.build()(torch.from_numpy(x)).numpy()


@settings(max_examples=40, deadline=None)
@given(cases())
def test_printed_code_is_the_network(case):
    namespace: dict = {}
    exec(compile(case.to_code(), "<case>", "exec"), namespace)  # noqa: S102
    with torch.no_grad():
        printed = namespace["model"](namespace["x"]).numpy()
    np.testing.assert_array_equal(printed, _forward(case.network, case.x))
    assert namespace["targets"] == list(case.targets)
    assert printed.shape == (len(case.x), case.network.n_outputs)
    assert np.all((case.x >= -1) & (case.x <= 1))


@settings(max_examples=40, deadline=None)
@given(cases(networks(batchnorm_after_linear=True, max_blocks=3)))
def test_equivalent_networks_compute_the_same_function(case):
    network, x = case.network, case.x
    y = _forward(network, x)
    folded = network.fold_batchnorms()
    assert not folded.foldable_batchnorms()
    np.testing.assert_allclose(_forward(folded, x), y, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_forward(network.split_head(), x), y, rtol=1e-14, atol=1e-15)
    for t in range(network.n_outputs):
        np.testing.assert_allclose(_forward(network.only_output(t), x)[:, 0], y[:, t],
                                   rtol=1e-14, atol=1e-15)


@settings(max_examples=30, deadline=None)
@given(cases(networks(biases="zero", relu_after_linear=True)))
def test_bias_free_networks_have_no_bias(case):
    for _, module in case.network.modules:
        for name in ("bias", "running_mean"):
            if name in module.params:
                assert not np.any(module.params[name])
    model = case.network.build()
    assert not model.training


@settings(max_examples=30, deadline=None)
@given(linear_layer_cases())
def test_linear_layer_cases_are_one_layer(case):
    kinds = [m.kind for _, m in case.network.modules]
    assert len([k for k in kinds if k != "Flatten"]) == 1
