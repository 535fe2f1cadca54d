"""CuPy: the registered provider against NumPy (runs only where CuPy and a GPU are present)."""

import numpy as np
import pytest

import lrp_core as lrp
from lrp_core.models import random_lenet5

cupy = pytest.importorskip("cupy")
pytestmark = pytest.mark.gpu


def test_cupy_relevance_equals_numpy():
    model = random_lenet5(seed=3)
    x = np.random.default_rng(0).random((2, 1, 28, 28))
    analyzer = lrp.LRP(model, lrp.EpsilonPlusFlat())
    on_gpu = analyzer(cupy.asarray(x))
    assert isinstance(on_gpu.val, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(on_gpu.val), analyzer(x).val, rtol=1e-10, atol=1e-14)
