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


def test_torch_and_array_api_strict_exchange_through_dlpack_without_a_copy():
    """Between two namespaces other than NumPy the exchange is DLPack's (zero-copy where the
    devices allow: torch and CuPy on one GPU; checked here on the CPU)."""
    torch = pytest.importorskip("torch")
    strict = pytest.importorskip("array_api_strict")
    from lrp_core.arrays import to_namespace

    weight = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    shared = to_namespace(weight, strict)
    assert np.array_equal(np.asarray(shared), weight.numpy())
    weight[0, 0] = 42.0  # the same memory
    assert float(shared[0, 0]) == 42.0
    import array_api_compat

    back = to_namespace(shared, array_api_compat.array_namespace(weight))
    assert torch.equal(back, weight)
