"""The same relevance on NumPy and array-api-strict (float64, 1e-12)."""

import numpy as np
import pytest

import lrp_core as lrp
from lrp_core.cli import random_lenet5

xp = pytest.importorskip("array_api_strict")

@pytest.mark.parametrize("name", lrp.PRESETS)
def test_numpy_and_array_api_strict_agree(name):
    model = random_lenet5(seed=5)
    x = np.random.default_rng(0).random((2, 1, 28, 28))
    analyzer = lrp.LRP(model, lrp.preset(name, low=0.0, high=1.0) if name == "epsilon_gamma_box"
                       else lrp.preset(name))
    expected = analyzer(x)
    strict = analyzer(xp.asarray(x))
    assert type(strict.val) is type(xp.asarray(x))
    np.testing.assert_allclose(np.asarray(strict.val), expected.val, rtol=1e-12, atol=1e-15)
    assert strict.output_selection == expected.output_selection


def test_weights_of_another_namespace():
    model = random_lenet5(seed=5)
    strict_model = model.convert(xp.asarray)
    x = np.random.default_rng(0).random((1, 1, 28, 28))
    np.testing.assert_allclose(lrp.LRP(strict_model)(x).val, lrp.LRP(model)(x).val, rtol=1e-12)
