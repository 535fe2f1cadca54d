"""Namespace-agnostic array helpers: the few functions rules and layers share.

Everything here works on any array-API namespace (NumPy, CuPy, PyTorch, array-api-strict, JAX),
found from the arrays themselves with :func:`array_api_compat.array_namespace`. Scalars are
Python floats, so they take the array's dtype and never promote it (a float32 weight stays
float32).
"""

from __future__ import annotations

import array_api_compat
import numpy as np

__all__ = [
    "namespace_of",
    "relu",
    "keep_positive",
    "keep_negative",
    "stabilize_denom",
    "to_namespace",
    "to_numpy",
    "is_floating",
]


def namespace_of(*arrays):
    """The array-API (compat) namespace of ``arrays``."""
    return array_api_compat.array_namespace(*arrays)


def relu(x):
    """``max(x, 0)``, elementwise; the same as :func:`keep_positive`."""
    xp = namespace_of(x)
    return xp.where(x > 0, x, xp.zeros_like(x))


def keep_positive(x):
    """``x⁺ = max(x, 0)``, elementwise."""
    return relu(x)


def keep_negative(x):
    """``x⁻ = min(x, 0)``, elementwise."""
    xp = namespace_of(x)
    return xp.where(x < 0, x, xp.zeros_like(x))


def stabilize_denom(d, eps=1e-9):
    """``d + eps * sign(d)`` with ``sign(0) = +1``: the LRP stabiliser.

    ``eps`` is a Python float and so takes the dtype of ``d``.
    """
    xp = namespace_of(d)
    return xp.where(d >= 0, d + eps, d - eps)


def is_floating(x) -> bool:
    """Whether ``x`` has a real floating-point dtype."""
    xp = namespace_of(x)
    return xp.isdtype(x.dtype, "real floating")


def to_numpy(x) -> np.ndarray:
    """A host NumPy copy (or view) of an array from any namespace or device."""
    if isinstance(x, np.ndarray):
        return x
    from .kernels import get_backend  # local: the backends import this module

    return get_backend(namespace_of(x)).to_numpy(x)


def to_namespace(x, xp, device=None, dtype=None):
    """``x`` as an array of namespace ``xp`` on ``device`` with ``dtype`` (converted once).

    Arrays already in ``xp`` are only moved or cast as needed; arrays of another namespace go
    through a host NumPy array.
    """
    if x is None:
        return None
    from .kernels import namespace_name

    same = namespace_name(namespace_of(x)) == namespace_name(xp)
    if not same:
        host = to_numpy(x)
        if not host.flags.writeable:  # a reader's read-only array: torch would share it
            host = host.copy()
        x = xp.asarray(host, device=device) if device is not None else xp.asarray(host)
    elif device is not None and array_api_compat.device(x) != device:
        x = array_api_compat.to_device(x, device)
    if dtype is not None and x.dtype != dtype:
        x = xp.astype(x, dtype)
    return x
