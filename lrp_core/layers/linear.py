"""Dense, Conv and ConvTranspose: the layers with a weight, a bias and an activation.

Argument names and weight layouts mirror ``torch.nn``: Dense ``(out_features, in_features)``;
Conv ``(out, in/groups, *kernel)``; ConvTranspose ``(in, out/groups, *kernel)``. The spatial rank
(1, 2 or 3) comes from the weight's rank. ``padding`` is an int, a tuple of ints (symmetric), a
tuple of ``(low, high)`` pairs (asymmetric), ``"valid"`` or (Conv, stride 1) ``"same"``.
"""

from __future__ import annotations

from ..arrays import namespace_of
from ..kernels import get_backend
from ..kernels.shapes import normalize_padding, normalize_tuple
from .activations import as_activation
from .base import LinearizableLayer

__all__ = ["WeightedLayer", "ConvLayer", "Dense", "Conv", "ConvTranspose"]


class WeightedLayer(LinearizableLayer):
    """A layer ``z = linear(x; weight) + bias`` followed by ``activation``: the weighted group
    (Dense, Conv, ConvTranspose, Affine), whose ``weight`` and ``bias`` are its effective linear
    map. The parameter rules apply to this group and refuse other layers.

    Subclasses implement ``linear(x, weight)``, its transpose ``linear_transpose(s, weight,
    input_shape)`` and ``add_bias(z, bias)``; rules swap weight and bias via ``replace``.
    """

    _arrays = ("weight", "bias")

    def __init__(self, weight, bias=None, activation=None):
        self.weight = weight
        self.bias = bias
        self.activation = as_activation(activation)

    def linear(self, x, weight):
        raise NotImplementedError

    def linear_transpose(self, s, weight, input_shape):
        raise NotImplementedError

    def add_bias(self, z, bias):
        raise NotImplementedError

    def preactivation(self, x):
        z = self.linear(x, self.weight)
        return z if self.bias is None else self.add_bias(z, self.bias)

    def linearize(self, x):
        z = self.preactivation(x)
        weight, shape = self.weight, tuple(x.shape)
        return z, lambda s: (self.linear_transpose(s, weight, shape),)

    def _activation_suffix(self) -> str:
        return "" if self.activation is None else f", {self.activation.describe()}"


class Dense(WeightedLayer):
    """Fully connected layer: ``z = x Wᵀ + b`` over the last axis, weight ``(out, in)``."""

    def __init__(self, weight, bias=None, *, activation=None):
        if len(weight.shape) != 2:
            raise ValueError(f"Dense weight must be (out_features, in_features), "
                             f"got {tuple(weight.shape)}")
        if bias is not None and tuple(bias.shape) != (weight.shape[0],):
            raise ValueError(f"Dense bias must have shape ({weight.shape[0]},), "
                             f"got {tuple(bias.shape)}")
        super().__init__(weight, bias, activation)

    def linear(self, x, weight):
        xp = namespace_of(x, weight)
        return xp.matmul(x, xp.matrix_transpose(weight))

    def linear_transpose(self, s, weight, input_shape):
        return namespace_of(s, weight).matmul(s, weight)

    def add_bias(self, z, bias):
        return z + bias

    def mismatch(self, shape):
        n_in = int(self.weight.shape[1])
        return None if len(shape) >= 2 and shape[-1] == n_in else f"(N, ..., {n_in})"

    def describe(self):
        out_f, in_f = self.weight.shape
        return f"Dense({in_f} => {out_f}{self._activation_suffix()})"


class ConvLayer(WeightedLayer):
    """Group of convolution-like layers (Conv, ConvTranspose), usable as a composite key."""

    def __init__(self, weight, bias, activation, stride, padding, dilation, groups):
        if len(weight.shape) not in (3, 4, 5):
            raise ValueError(f"{type(self).__name__} weight must have rank 3, 4 or 5 "
                             f"(1-, 2- or 3-d), got shape {tuple(weight.shape)}")
        super().__init__(weight, bias, activation)
        d = len(weight.shape) - 2
        self.stride = normalize_tuple(stride, d, "stride")
        self.dilation = normalize_tuple(dilation, d, "dilation")
        self.padding = padding if isinstance(padding, str) else normalize_padding(padding, d)
        self.groups = int(groups)
        if self.groups < 1:
            raise ValueError(f"groups must be >= 1, got {groups}")

    @property
    def spatial_dims(self) -> int:
        return len(self.weight.shape) - 2

    @property
    def kernel_size(self) -> tuple[int, ...]:
        return tuple(int(k) for k in self.weight.shape[2:])

    @property
    def in_channels(self) -> int:
        raise NotImplementedError

    def mismatch(self, shape):
        if len(shape) == self.spatial_dims + 2 and shape[1] == self.in_channels:
            return None
        spatial = {1: "L", 2: "H, W", 3: "D, H, W"}[self.spatial_dims]
        return f"(N, {self.in_channels}, {spatial})"

    def _bias_shape(self):
        return (-1,) + (1,) * self.spatial_dims

    def add_bias(self, z, bias):
        return z + namespace_of(bias).reshape(bias, self._bias_shape())

    def _check_input(self, x):
        if len(x.shape) != self.spatial_dims + 2:
            raise ValueError(f"{self.describe()} expects input of rank {self.spatial_dims + 2} "
                             f"(batch, channels, {self.spatial_dims} spatial), "
                             f"got shape {tuple(x.shape)}")

    def _options(self) -> str:
        parts = []
        if any(s != 1 for s in self.stride):
            parts.append(f"stride={self.stride}")
        if self.padding == "valid" or (not isinstance(self.padding, str)
                                       and not any(p != (0, 0) for p in self.padding)):
            pass
        else:
            parts.append(f"padding={self.padding}")
        if any(d != 1 for d in self.dilation):
            parts.append(f"dilation={self.dilation}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        return "".join(", " + p for p in parts)


class Conv(ConvLayer):
    """Convolution (cross-correlation, as in torch), weight ``(out, in/groups, *kernel)``.

    ``z[n, o] = Σ_{c, k} W[o, c, k] · x_pad[n, g(o)·C/groups + c, stride·p + dilation·k] + b[o]``.
    """

    def __init__(self, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
                 activation=None):
        if isinstance(padding, str) and padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid', 'same', an int or a tuple, got {padding!r}")
        super().__init__(weight, bias, activation, stride, padding, dilation, groups)
        if padding == "same" and any(s != 1 for s in self.stride):
            raise ValueError("padding='same' needs stride 1 (as in torch)")

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[1]) * self.groups

    def resolved_padding(self):
        """The padding as ``(low, high)`` pairs (``"same"`` puts the odd extra at the high end)."""
        if self.padding == "valid":
            return ((0, 0),) * self.spatial_dims
        if self.padding == "same":
            totals = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
            return tuple((t // 2, t - t // 2) for t in totals)
        return self.padding

    def linear(self, x, weight):
        self._check_input(x)
        return get_backend(namespace_of(x)).conv(
            x, weight, stride=self.stride, padding=self.resolved_padding(),
            dilation=self.dilation, groups=self.groups)

    def preactivation(self, x):
        """``conv(x) + b``, the bias added by the backend's convolution (fused where it can)."""
        self._check_input(x)
        return get_backend(namespace_of(x)).conv(
            x, self.weight, stride=self.stride, padding=self.resolved_padding(),
            dilation=self.dilation, groups=self.groups, bias=self.bias)

    def linear_transpose(self, s, weight, input_shape):
        return get_backend(namespace_of(s)).conv_transpose(
            s, weight, stride=self.stride, padding=self.resolved_padding(),
            dilation=self.dilation, groups=self.groups, input_shape=input_shape)

    def describe(self):
        out_c, in_c = self.weight.shape[0], self.weight.shape[1] * self.groups
        k = "x".join(str(v) for v in self.kernel_size)
        return f"Conv({k}, {in_c} => {out_c}{self._options()}{self._activation_suffix()})"


class ConvTranspose(ConvLayer):
    """Transposed convolution, weight ``(in, out/groups, *kernel)``: the adjoint of the Conv
    with the same weight, plus ``output_padding`` extra cells at the high end of each axis."""

    def __init__(self, weight, bias=None, *, stride=1, padding=0, output_padding=0, dilation=1,
                 groups=1, activation=None):
        if isinstance(padding, str):
            raise ValueError("ConvTranspose takes numeric padding only")
        super().__init__(weight, bias, activation, stride, padding, dilation, groups)
        self.output_padding = normalize_tuple(output_padding, self.spatial_dims, "output_padding")

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[0])

    def output_shape(self, input_shape):
        spatial = []
        for length, k, s, (lo, hi), d, op in zip(input_shape[2:], self.kernel_size, self.stride,
                                                 self.padding, self.dilation, self.output_padding):
            spatial.append((length - 1) * s - lo - hi + d * (k - 1) + op + 1)
        out_channels = self.weight.shape[1] * self.groups
        return (input_shape[0], out_channels, *spatial)

    def linear(self, x, weight):
        self._check_input(x)
        return get_backend(namespace_of(x)).conv_transpose(
            x, weight, stride=self.stride, padding=self.padding, dilation=self.dilation,
            groups=self.groups, input_shape=self.output_shape(tuple(x.shape)))

    def linear_transpose(self, s, weight, input_shape):
        return get_backend(namespace_of(s)).conv(
            s, weight, stride=self.stride, padding=self.padding, dilation=self.dilation,
            groups=self.groups)

    def describe(self):
        in_c, out_c = self.weight.shape[0], self.weight.shape[1] * self.groups
        k = "x".join(str(v) for v in self.kernel_size)
        return f"ConvTranspose({k}, {in_c} => {out_c}{self._options()}{self._activation_suffix()})"


