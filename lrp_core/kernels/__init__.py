"""The few operations the array API standard lacks, and where a faster version comes from.

The array API standard has no convolution, no transposed convolution and no pooling. This
package declares them once (:mod:`lrp_core.kernels.reference` is the readable, pure array-API
implementation that runs on any namespace, array-api-strict included) and looks up a faster
implementation for the namespace of the data in a small registry.

The registry is lazy: a provider is named by the dotted path of its module and imported the
first time an array of its namespace is seen, so importing :mod:`lrp_core` imports no framework.
A provider module exposes the same functions as :mod:`lrp_core.kernels.reference`; one that
cannot be imported (its framework is missing) falls back to the reference, silently, in this
one place.

Kernel signatures (``d`` spatial dimensions, arrays batch first)::

    conv(x, w, *, stride, padding, dilation, groups)                        -> y
    conv_transpose(y, w, *, stride, padding, dilation, groups, input_shape) -> x
    max_pool(x, *, kernel, stride, padding, dilation, ceil_mode)            -> (y, index)
    max_pool_transpose(g, index, *, kernel, stride, padding, dilation, input_shape) -> x
    avg_pool(x, *, kernel, stride, padding, ceil_mode, count_include_pad)   -> y
    avg_pool_transpose(g, *, kernel, stride, padding, ceil_mode, count_include_pad, input_shape) -> x

``stride``, ``dilation`` and ``kernel`` are tuples of ``d`` ints, ``padding`` a tuple of ``d``
``(low, high)`` pairs, ``input_shape`` the full shape of the forward input. ``conv_transpose``
is the adjoint (vector-Jacobian product with respect to the input) of ``conv``;
``max_pool``'s ``index`` holds, per output, the row-major tap index of the window's first
maximum.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType

import array_api_compat

from . import reference

__all__ = ["get_kernels", "register_kernels", "namespace_name", "provider", "reference"]

# namespace name -> dotted module path of the faster provider (imported lazily)
_PROVIDERS: dict[str, str] = {
    "numpy": "backends.numpy_kernels",
    "torch": "backends.torch_kernels",
    "cupy": "backends.cupy_kernels",
}
_LOADED: dict[str, ModuleType] = {}
_LOCK = threading.Lock()


def namespace_name(xp) -> str:
    """A short, stable name for an array namespace (``"numpy"``, ``"torch"``, ...)."""
    for name in ("numpy", "torch", "cupy", "jax", "dask"):
        if getattr(array_api_compat, f"is_{name}_namespace")(xp):
            return name
    return getattr(xp, "__name__", type(xp).__name__)


def register_kernels(name: str, provider: str | ModuleType) -> None:
    """Use ``provider`` (a module or its dotted path) for arrays of the namespace ``name``."""
    with _LOCK:
        _LOADED.pop(name, None)
        if isinstance(provider, ModuleType):
            _LOADED[name] = provider
        else:
            _PROVIDERS[name] = provider


def get_kernels(xp) -> ModuleType:
    """The kernel module for namespace ``xp``: its registered provider, else the reference."""
    name = namespace_name(xp)
    module = _LOADED.get(name)
    if module is not None:
        return module
    with _LOCK:
        module = _LOADED.get(name)
        if module is None:
            module = reference
            path = _PROVIDERS.get(name)
            if path is not None:
                try:
                    module = importlib.import_module(path)
                except ImportError:  # the framework or the backend package is not installed
                    module = reference
            _LOADED[name] = module
    return module


def provider(name: str) -> ModuleType:
    """The backend module registered for the namespace ``name`` (``"torch"``, ``"cupy"``, ...),
    imported now; an ``ImportError`` says what to install when its framework is missing."""
    path = _PROVIDERS.get(name)
    if path is None:
        raise ValueError(f"no backend is registered for {name!r}; known: {', '.join(sorted(_PROVIDERS))}")
    try:
        return importlib.import_module(path)
    except ImportError as error:
        raise ImportError(f"the {name} backend needs {error.name or name}: pip install 'lrp-core[{name}]'") from error
