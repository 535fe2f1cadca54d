"""BatchNorm, LayerNorm and L2 normalisation.

BatchNorm at inference is an affine map per channel (axis 1):
``y = scale ⊙ x + shift`` with ``scale = γ / sqrt(var + eps)`` and ``shift = β − mean ⊙ scale``;
:func:`lrp_core.canonize` fuses it into a preceding Dense or Conv, epsilon included.
"""

from __future__ import annotations

from ..arrays import namespace_of
from .base import LinearizableLayer
from .linear import WeightedLayer

__all__ = ["NormalizationLayer", "BatchNorm", "LayerNorm", "L2Normalize", "Affine"]


class NormalizationLayer(LinearizableLayer):
    """Group of normalisation layers (BatchNorm, LayerNorm), usable as a composite key."""


class BatchNorm(NormalizationLayer):
    """Batch normalisation at inference over axis 1 (torch's argument names).

    ``weight`` (γ) and ``bias`` (β) may be ``None`` (``affine=False``).
    """

    _arrays = ("weight", "bias", "running_mean", "running_var")

    def __init__(self, weight, bias, running_mean, running_var, eps: float = 1e-5):
        self.weight = weight
        self.bias = bias
        self.running_mean = running_mean
        self.running_var = running_var
        self.eps = float(eps)

    def scale_and_shift(self):
        """``(scale, shift)`` of the equivalent affine map, as 1-d arrays over channels."""
        xp = namespace_of(self.running_var)
        scale = 1.0 / xp.sqrt(self.running_var + self.eps)
        if self.weight is not None:
            scale = self.weight * scale
        shift = -self.running_mean * scale
        if self.bias is not None:
            shift = shift + self.bias
        return scale, shift

    def linearize(self, x):
        xp = namespace_of(x)
        scale, shift = self.scale_and_shift()
        shape = (1, -1) + (1,) * (len(x.shape) - 2)
        scale, shift = xp.reshape(scale, shape), xp.reshape(shift, shape)
        return x * scale + shift, lambda s: (s * scale,)

    def describe(self):
        return f"BatchNorm({self.running_mean.shape[0]})"


class LayerNorm(NormalizationLayer):
    """Layer normalisation over the last ``len(normalized_shape)`` axes (torch semantics):
    ``y = (x − μ) / sqrt(σ² + eps) ⊙ γ + β``.

    Its linearisation is the exact Jacobian (what the generic rule, e.g. ``ZeroRule``, uses);
    :class:`~lrp_core.LayerNormRule` implements the LN-rule of Ali et al. (2022) instead.
    """

    _arrays = ("weight", "bias")

    def __init__(self, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.weight = weight
        self.bias = bias
        self.eps = float(eps)

    def axes(self, x) -> tuple[int, ...]:
        ndim, k = len(x.shape), len(self.normalized_shape)
        if tuple(x.shape[ndim - k:]) != self.normalized_shape:
            raise ValueError(f"LayerNorm{self.normalized_shape} got input of shape "
                             f"{tuple(x.shape)}")
        return tuple(range(ndim - k, ndim))

    def normalize(self, x):
        """``(x̂, σ)`` with ``x̂ = (x − μ)/σ`` and ``σ = sqrt(var + eps)`` over the normalised
        axes."""
        xp = namespace_of(x)
        axes = self.axes(x)
        centered = x - xp.mean(x, axis=axes, keepdims=True)
        sigma = xp.sqrt(xp.mean(centered * centered, axis=axes, keepdims=True) + self.eps)
        return centered / sigma, sigma

    def affine(self, x_hat):
        y = x_hat if self.weight is None else x_hat * self.weight
        return y if self.bias is None else y + self.bias

    def linearize(self, x):
        xp = namespace_of(x)
        axes = self.axes(x)
        x_hat, sigma = self.normalize(x)

        def pullback(s):
            g = s if self.weight is None else s * self.weight
            mean_g = xp.mean(g, axis=axes, keepdims=True)
            mean_gx = xp.mean(g * x_hat, axis=axes, keepdims=True)
            return ((g - mean_g - x_hat * mean_gx) / sigma,)

        return self.affine(x_hat), pullback

    def describe(self):
        return f"LayerNorm({', '.join(map(str, self.normalized_shape))})"


class L2Normalize(NormalizationLayer):
    """L2 normalisation along ``axis`` (``torch.nn.functional.normalize`` with ``p=2``):
    ``y = x / max(‖x‖₂, eps)``, the norm taken over ``axis`` of each sample (never the batch
    axis 0). Swin V2's cosine attention normalises its queries and keys this way.

    Its linearisation is the exact Jacobian (what the generic rule, e.g. ``ZeroRule``, uses:
    ``Jᵀs = (s − y ⟨y, s⟩) / ‖x‖`` where the norm exceeds ``eps``, ``s / eps`` where it is
    clamped); :class:`~lrp_core.L2NormalizeRule` holds the norm constant instead (AttnLRP).
    ``p`` is accepted for torch's signature and must be 2.
    """

    def __init__(self, axis: int = -1, eps: float = 1e-12, *, p: float = 2.0):
        if p != 2:
            raise ValueError(f"L2Normalize normalises by the Euclidean norm (p=2); got p={p!r}: "
                             "other p-norms have no lrp-core layer")
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"L2Normalize(axis) takes an int, got {axis!r}")
        if not eps > 0:
            raise ValueError(f"L2Normalize(eps) must be > 0, got {eps!r}")
        self.axis = int(axis)
        self.eps = float(eps)

    def _axis(self, x) -> int:
        ndim = len(x.shape)
        if not -ndim <= self.axis < ndim or self.axis % ndim == 0:
            raise ValueError(f"{self.describe()} does not fit an input of shape "
                             f"{tuple(x.shape)}: axis must name a non-batch axis")
        return self.axis % ndim

    def norm(self, x):
        """``(‖x‖₂ over the axis, kept, clamped below at eps; whether it was clamped)``."""
        xp = namespace_of(x)
        length = xp.sqrt(xp.sum(x * x, axis=self._axis(x), keepdims=True))
        return xp.clip(length, min=self.eps), length <= self.eps

    def linearize(self, x):
        xp = namespace_of(x)
        axis = self._axis(x)
        norm, clamped = self.norm(x)
        y = x / norm

        def pullback(s):
            along = xp.sum(y * s, axis=axis, keepdims=True)
            return (xp.where(clamped, s, s - y * along) / norm,)

        return y, pullback

    def describe(self):
        return f"L2Normalize(axis={self.axis})"


class Affine(WeightedLayer, NormalizationLayer):
    """``y = x ⊙ scale + shift`` with constant ``scale`` and ``shift`` (``None``: 1 and 0).

    ``axis=None``: ``scale`` and ``shift`` broadcast against one sample (arrays of at most the
    per-sample rank, right-aligned as in NumPy; they never change the shape of ``x``).
    ``axis=1``: they are vectors along the channel axis (how :func:`lrp_core.canonize` writes a
    BatchNorm it cannot fuse, with its effective ``γ/σ`` and ``β − μγ/σ``).

    A standalone constant scale-and-shift: an input normalisation, an ONNX ``Mul``/``Add``/
    ``Sub``/``Div`` by a constant that could not be folded into a preceding Dense or Conv, or an
    unfused BatchNorm. Its ``weight`` (the scale) and ``bias`` (the shift) are its effective
    linear map, so it belongs to the weighted group and the parameter rules apply to it; like
    BatchNorm, which it generalises, it is also a :class:`NormalizationLayer` (the presets give
    it ``PassRule``).
    """

    def __init__(self, scale=None, shift=None, *, axis: int | None = None):
        if scale is None and shift is None:
            raise ValueError("Affine needs a scale, a shift or both")
        if axis not in (None, 1):
            raise ValueError(f"Affine's axis is None (broadcast per sample) or 1 (channels), "
                             f"got {axis!r}")
        if scale is None:  # a shift alone: the scale is ones, so rules see the map's weight
            scale = namespace_of(shift).ones_like(shift)
        super().__init__(scale, shift, None)
        self.axis = axis

    @property
    def scale(self):
        """The scale (the layer's ``weight``)."""
        return self.weight

    @property
    def shift(self):
        """The shift (the layer's ``bias``; ``None`` for none)."""
        return self.bias

    def _aligned(self, p, x):
        if self.axis is None:
            return p
        return namespace_of(p).reshape(p, (-1,) + (1,) * (len(x.shape) - 2))

    def linear(self, x, weight):
        z = x * self._aligned(weight, x)
        if tuple(z.shape) != tuple(x.shape):
            raise ValueError(f"{self.describe()} would change the shape {tuple(x.shape)} "
                             f"to {tuple(z.shape)}")
        return z

    def linear_transpose(self, s, weight, input_shape):
        return s * self._aligned(weight, s)

    def add_bias(self, z, bias):
        z2 = z + self._aligned(bias, z)
        if tuple(z2.shape) != tuple(z.shape):
            raise ValueError(f"{self.describe()} would change the shape {tuple(z.shape)} "
                             f"to {tuple(z2.shape)}")
        return z2

    def output_nonnegative(self, inputs_nonnegative):
        return False

    def describe(self):
        parts = [f"scale{tuple(self.weight.shape)}"]
        if self.bias is not None:
            parts.append(f"shift{tuple(self.bias.shape)}")
        if self.axis is not None:
            parts.append(f"axis={self.axis}")
        return f"Affine({', '.join(parts)})"
