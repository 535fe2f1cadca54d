"""The few operations the array API standard lacks, and the backend that supplies them.

The array API standard has no convolution, no transposed convolution and no pooling. This
package declares them once, in the :class:`Backend` protocol, whose defaults are the readable,
pure array-API implementations of :mod:`lrp_core.kernels.reference` (they run on any namespace,
array-api-strict included). One small subclass per framework overrides what its framework does
natively (einops' ``_backends.py`` is the model); :func:`get_backend` picks it by the namespace
of the data. Call sites ask the backend (``get_backend(xp).conv(...)``), never ``getattr``.

Which operation is native where (everything else is the array-API reference):

============================  ==================  =========================  ==================
operation                     NumPy               torch (CPU, CUDA)          CuPy
============================  ==================  =========================  ==================
conv, conv_transpose          im2col + matmul     ``F.conv*d``,              NumPy's (strided,
                              (``strided``)       ``F.conv_transpose*d``     cuBLAS)
max_pool, max_pool_transpose  sliding windows     ``F.max_pool*d``,          NumPy's (strided)
                                                  ``scatter_add``
avg_pool, avg_pool_transpose  sliding windows     ``F.avg_pool*d``,          NumPy's (strided)
                                                  depthwise transpose
erf                           reference           ``torch.special.erf``      ``cupyx`` erf
sigmoid, silu                 reference           ``torch.sigmoid``,         reference
                                                  ``F.silu``
stabilize                     reference           ``copysign``, in place     reference
compute_context               none                ``torch.inference_mode``   none
to_numpy / from_numpy         identity            ``.cpu().numpy()`` /       ``cupy.asnumpy`` /
                                                  ``torch.from_numpy``       ``cupy.asarray``
============================  ==================  =========================  ==================

The registry is lazy: a backend is named by the dotted path of its module (which defines
``BACKEND``, an instance) and imported the first time an array of its namespace is seen, so
importing :mod:`lrp_core` imports no framework. Only the framework's own missing import falls
back to the reference; any other error in a backend module surfaces.

Kernel signatures (``d`` spatial dimensions, arrays batch first)::

    conv(x, w, *, stride, padding, dilation, groups)                        -> y
    conv_transpose(y, w, *, stride, padding, dilation, groups, input_shape) -> x
    max_pool(x, *, kernel, stride, padding, dilation, ceil_mode)            -> (y, index)
    max_pool_transpose(g, index, *, kernel, stride, padding, dilation, input_shape) -> x
    avg_pool(x, *, kernel, stride, padding, ceil_mode, count_include_pad)   -> y
    avg_pool_transpose(g, *, kernel, stride, padding, ceil_mode, count_include_pad,
                       input_shape) -> x

``stride``, ``dilation`` and ``kernel`` are tuples of ``d`` ints, ``padding`` a tuple of ``d``
``(low, high)`` pairs, ``input_shape`` the full shape of the forward input. ``conv_transpose``
is the adjoint (vector-Jacobian product with respect to the input) of ``conv``;
``max_pool``'s ``index`` holds, per output, the row-major tap index of the window's first
maximum.
"""

from __future__ import annotations

import contextlib
import importlib
import threading

import array_api_compat
import numpy as np

from . import reference, special

__all__ = ["Backend", "get_backend", "register_backend", "backend_named", "namespace_name",
           "reference"]


class Backend:
    """The backend protocol; its defaults are the pure array-API reference.

    A subclass overrides what its framework does natively and sets :attr:`name` (the namespace
    name it serves) and :attr:`framework` (the import name whose absence makes the registry fall
    back to this base class).
    """

    name = "array-api"
    framework: str | None = None

    # -- kernels --------------------------------------------------------------------------------
    def conv(self, x, w, *, stride, padding, dilation, groups, bias=None):
        """Cross-correlation of ``x`` with ``w``, plus ``bias`` per output channel if given (a
        backend may fuse the addition into the convolution: one pass less)."""
        y = reference.conv(x, w, stride=stride, padding=padding, dilation=dilation,
                           groups=groups)
        if bias is None:
            return y
        xp = array_api_compat.array_namespace(y)
        return y + xp.reshape(bias, (-1,) + (1,) * (len(y.shape) - 2))

    def conv_transpose(self, y, w, *, stride, padding, dilation, groups, input_shape):
        return reference.conv_transpose(y, w, stride=stride, padding=padding, dilation=dilation,
                                        groups=groups, input_shape=input_shape)

    def max_pool(self, x, *, kernel, stride, padding, dilation, ceil_mode):
        return reference.max_pool(x, kernel=kernel, stride=stride, padding=padding,
                                  dilation=dilation, ceil_mode=ceil_mode)

    def max_pool_transpose(self, g, index, *, kernel, stride, padding, dilation, input_shape):
        return reference.max_pool_transpose(g, index, kernel=kernel, stride=stride, padding=padding,
                                            dilation=dilation, input_shape=input_shape)

    def max_pool_linearized(self, x, *, kernel, stride, padding, dilation, ceil_mode):
        """``(y, pullback)``: max pooling and the map that routes a cotangent of ``y`` back to
        the input cell each window selected (:meth:`max_pool`, then :meth:`max_pool_transpose`
        with its tap indices). A backend may keep its own index format in between."""
        y, index = self.max_pool(x, kernel=kernel, stride=stride, padding=padding,
                                 dilation=dilation, ceil_mode=ceil_mode)
        shape = tuple(x.shape)

        def pullback(g):
            return self.max_pool_transpose(g, index, kernel=kernel, stride=stride,
                                           padding=padding, dilation=dilation, input_shape=shape)

        return y, pullback

    def avg_pool(self, x, *, kernel, stride, padding, ceil_mode, count_include_pad):
        return reference.avg_pool(x, kernel=kernel, stride=stride, padding=padding,
                                  ceil_mode=ceil_mode, count_include_pad=count_include_pad)

    def avg_pool_transpose(self, g, *, kernel, stride, padding, ceil_mode, count_include_pad,
                           input_shape):
        return reference.avg_pool_transpose(g, kernel=kernel, stride=stride, padding=padding,
                                            ceil_mode=ceil_mode,
                                            count_include_pad=count_include_pad,
                                            input_shape=input_shape)

    # -- special functions and the environment of a pass ----------------------------------------
    def erf(self, x):
        """The error function, elementwise."""
        return special.erf(x)

    def stabilize(self, d, eps):
        """``d + eps·sign(d)`` with ``sign(±0) = +1``, a fresh array, bit for bit
        ``where(d >= 0, d + eps, d - eps)`` (:func:`lrp_core.stabilize_denom`).

        Every step is exact: the sign as 0/1 in ``d``'s dtype, ``2·s − 1`` (±1), times ``eps``
        (a 0-d array of ``d``'s dtype), plus ``d``, in place on one temporary. ``where`` with
        broadcast 0-d operands takes 5-10x an addition on NumPy and torch CPU."""
        xp = array_api_compat.array_namespace(d)
        sign = xp.astype(d >= 0, d.dtype)
        sign *= 2.0
        sign -= 1.0
        sign *= xp.asarray(eps, dtype=d.dtype, device=array_api_compat.device(d))
        sign += d
        return sign

    def sigmoid(self, x):
        """``1 / (1 + exp(-x))``, elementwise (the array API has no sigmoid: four passes here;
        a backend with a native one overrides it)."""
        xp = array_api_compat.array_namespace(x)
        return 1.0 / (1.0 + xp.exp(-x))

    def silu(self, x):
        """``x · sigmoid(x) = x / (1 + exp(-x))``, elementwise."""
        xp = array_api_compat.array_namespace(x)
        return x / (1.0 + xp.exp(-x))

    def compute_context(self):
        """The context the analyzer's passes run in (torch: ``inference_mode``)."""
        return contextlib.nullcontext()

    # -- host conversions -----------------------------------------------------------------------
    def to_numpy(self, x) -> np.ndarray:
        """A host NumPy copy (or view) of ``x``."""
        if isinstance(x, np.ndarray):
            return x
        try:
            return np.from_dlpack(x)
        except (TypeError, RuntimeError, BufferError, AttributeError):
            return np.asarray(x)

    def from_numpy(self, x: np.ndarray):
        """``x`` as an array of this backend, on its default device (the CLI's ``--backend``)."""
        return x

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


_REFERENCE = Backend()

# namespace name -> (dotted module path defining BACKEND, the framework's import name)
_REGISTRY: dict[str, tuple[str, str]] = {
    "numpy": ("lrp_core.backends.kernels.numpy_backend", "numpy"),
    "torch": ("lrp_core.backends.kernels.torch_backend", "torch"),
    "cupy": ("lrp_core.backends.kernels.cupy_backend", "cupy"),
}
_LOADED: dict[str, Backend] = {}
_LOCK = threading.Lock()


def namespace_name(xp) -> str:
    """A short, stable name for an array namespace (``"numpy"``, ``"torch"``, ...)."""
    for name in ("numpy", "torch", "cupy", "jax", "dask"):
        if getattr(array_api_compat, f"is_{name}_namespace")(xp):
            return name
    return getattr(xp, "__name__", type(xp).__name__)


def register_backend(name: str, backend: Backend | str, framework: str | None = None) -> None:
    """Use ``backend`` (an instance, or the dotted path of a module defining ``BACKEND``) for
    arrays of the namespace ``name``."""
    with _LOCK:
        _LOADED.pop(name, None)
        if isinstance(backend, Backend):
            _LOADED[name] = backend
        else:
            _REGISTRY[name] = (backend, framework or name)


def _missing_framework(error: ImportError, framework: str) -> bool:
    """Whether ``error`` says that ``framework`` itself is not installed (and not that something
    inside an installed framework or backend module failed)."""
    missing = error.name or ""
    return isinstance(error, ModuleNotFoundError) and (
        missing == framework or missing.startswith(framework + "."))


def _load(name: str) -> Backend:
    path, framework = _REGISTRY[name]
    try:
        module = importlib.import_module(path)
    except ImportError as error:
        if _missing_framework(error, framework):
            raise
        raise ImportError(f"the {name} backend module {path} failed to import: {error}") from error
    return module.BACKEND


def get_backend(xp) -> Backend:
    """The backend for namespace ``xp``: its registered one, else the array-API reference
    (also when the registered one's framework is not installed)."""
    name = namespace_name(xp)
    backend = _LOADED.get(name)
    if backend is not None:
        return backend
    with _LOCK:
        backend = _LOADED.get(name)
        if backend is None:
            backend = _REFERENCE
            if name in _REGISTRY:
                try:
                    backend = _load(name)
                except ImportError as error:
                    if not _missing_framework(error, _REGISTRY[name][1]):
                        raise
            _LOADED[name] = backend
    return backend


def backend_named(name: str) -> Backend:
    """The backend registered for ``name`` (``"torch"``, ``"cupy"``, ...), imported now; an
    ``ImportError`` says what to install when its framework is missing."""
    if name not in _REGISTRY:
        raise ValueError(f"no backend is registered for {name!r}; "
                         f"known: {', '.join(sorted(_REGISTRY))}")
    try:
        return _load(name)
    except ImportError as error:
        if _missing_framework(error, _REGISTRY[name][1]):
            raise ImportError(f"the {name} backend needs {error.name}: "
                              f"pip install 'lrp-core[{name}]'") from error
        raise
