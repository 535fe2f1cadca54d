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
    """``max(x, 0)``, elementwise; the same as :func:`keep_positive`.

    ``clip`` is one pass over ``x`` (``where(x > 0, x, zeros)`` is three); NaN stays NaN.
    """
    return namespace_of(x).clip(x, min=0.0)


def keep_positive(x):
    """``x⁺ = max(x, 0)``, elementwise."""
    return relu(x)


def keep_negative(x):
    """``x⁻ = min(x, 0)``, elementwise (one pass, as :func:`relu`)."""
    return namespace_of(x).clip(x, max=0.0)


def stabilize_denom(d, eps=1e-9):
    """``d + eps * sign(d)`` with ``sign(0) = +1``: the LRP stabiliser.

    ``eps`` is a Python float and so takes the dtype of ``d``.
    """
    from .kernels import get_backend  # local: the backends import this module

    return get_backend(namespace_of(d)).stabilize(d, eps)


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

    Arrays already in ``xp`` are only moved or cast as needed. Between two namespaces other than
    NumPy (torch and CuPy on one GPU, torch and array-api-strict on the CPU) the array is
    exchanged through DLPack without a copy where the devices allow; otherwise, and to or from
    NumPy, it goes through a host NumPy array.
    """
    if x is None:
        return None
    from .kernels import namespace_name

    source, target = namespace_name(namespace_of(x)), namespace_name(xp)
    if source != target:
        x = _exchanged(x, xp, device, through_dlpack="numpy" not in (source, target))
    if device is not None and array_api_compat.device(x) != device:
        x = array_api_compat.to_device(x, device)
    if dtype is not None and x.dtype != dtype:
        x = xp.astype(x, dtype)
    return x


def _exchanged(x, xp, device, *, through_dlpack: bool):
    """``x`` as an array of ``xp``: through DLPack (zero-copy) if asked and possible, else through
    a host NumPy array (copied where it is read-only, which torch could not share)."""
    if through_dlpack:
        try:
            return xp.from_dlpack(x)
        except (BufferError, RuntimeError, TypeError, ValueError, AttributeError,
                NotImplementedError):
            pass  # another device, or a namespace without DLPack: through the host
    host = to_numpy(x)
    if not host.flags.writeable:  # a reader's read-only array: torch would share it
        host = host.copy()
    return xp.asarray(host, device=device) if device is not None else xp.asarray(host)
