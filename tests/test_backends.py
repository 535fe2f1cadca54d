"""The backend protocol and its registry: defaults are the array-API reference, a framework's
missing import falls back to them, any other error in a backend module surfaces."""

from __future__ import annotations

import numpy as np
import pytest

from lrp_core import kernels
from lrp_core.kernels import Backend, backend_named, get_backend, namespace_name, reference

xp = pytest.importorskip("array_api_strict")
NAME = namespace_name(xp)


@pytest.fixture
def registry(monkeypatch, tmp_path):
    monkeypatch.setattr(kernels, "_REGISTRY", dict(kernels._REGISTRY))
    monkeypatch.setattr(kernels, "_LOADED", {})
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _module(folder, name, body):
    (folder / f"{name}.py").write_text(body)
    return name


def test_the_base_class_is_the_reference():
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 5))
    w = np.random.default_rng(1).standard_normal((3, 2, 3, 3))
    geometry = dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
    np.testing.assert_array_equal(Backend().conv(x, w, **geometry),
                                  reference.conv(x, w, **geometry))
    assert Backend().to_numpy(x) is x


def test_a_missing_framework_falls_back_to_the_reference(registry):
    module = _module(registry, "fake_backend_missing", "import no_such_framework_xyz\n")
    kernels.register_backend(NAME, module, framework="no_such_framework_xyz")
    assert type(get_backend(xp)) is Backend
    with pytest.raises(ImportError, match="pip install"):
        backend_named(NAME)


def test_any_other_import_error_surfaces(registry):
    module = _module(registry, "fake_backend_broken",
                     "import numpy\nfrom numpy import no_such_name_xyz\n")
    kernels.register_backend(NAME, module, framework="numpy")
    with pytest.raises(ImportError, match="failed to import"):
        get_backend(xp)


def test_a_registered_backend_is_used(registry):
    module = _module(registry, "fake_backend_ok",
                     "from lrp_core.kernels import Backend\n"
                     "class Mine(Backend):\n"
                     "    name = 'mine'\n"
                     "BACKEND = Mine()\n")
    kernels.register_backend(NAME, module, framework="numpy")
    assert type(get_backend(xp)).__name__ == "Mine"
    kernels.register_backend(NAME, Backend())
    assert type(get_backend(xp)) is Backend
