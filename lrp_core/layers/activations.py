"""Elementwise activations (and Softmax). Standing on their own they pass relevance through
(Softmax, not elementwise, is linearised instead: see :class:`Softmax`).

Dense, Conv and ConvTranspose carry an ``activation`` (as Flux's layers do); ``canonize`` fuses
an activation layer that directly follows one of them into it. ``as_activation`` accepts an
activation layer, ``lrp.relu`` (the helper function) or ``None`` for the identity.
"""

from __future__ import annotations

import math

from ..arrays import namespace_of, relu
from .base import LinearizableLayer, PassThroughLayer

__all__ = [
    "ActivationLayer",
    "ReLU",
    "LeakyReLU",
    "ReLU6",
    "GELU",
    "SiLU",
    "ELU",
    "Tanh",
    "Sigmoid",
    "Hardsigmoid",
    "Hardswish",
    "Mish",
    "Softmax",
    "Activation",
    "as_activation",
]


class ActivationLayer(PassThroughLayer):
    """Base class of elementwise activations: relevance passes through unchanged."""

    nonnegative = False  # whether the output is >= 0 for every input

    def output_nonnegative(self, inputs_nonnegative):
        return self.nonnegative or (self.preserves_nonnegative and all(inputs_nonnegative))

    preserves_nonnegative = True  # x >= 0 implies f(x) >= 0


class ReLU(ActivationLayer):
    """``max(x, 0)``."""

    nonnegative = True

    def forward(self, x):
        return relu(x)


class LeakyReLU(ActivationLayer):
    """``x`` for ``x > 0``, else ``negative_slope * x``."""

    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        xp = namespace_of(x)
        return xp.where(x > 0, x, x * self.negative_slope)

    def describe(self):
        return f"LeakyReLU({self.negative_slope:g})"


class ReLU6(ActivationLayer):
    """``min(max(x, 0), 6)``."""

    nonnegative = True

    def forward(self, x):
        xp = namespace_of(x)
        return xp.clip(x, 0.0, 6.0)


class GELU(ActivationLayer):
    """``x * Φ(x)``; ``approximate="tanh"`` uses the tanh approximation, as torch does."""

    preserves_nonnegative = True

    def __init__(self, approximate: str = "none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        xp = namespace_of(x)
        if self.approximate == "tanh":
            inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)
            return 0.5 * x * (1.0 + xp.tanh(inner))
        from ..kernels import get_backend

        erf = get_backend(xp).erf
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


class SiLU(ActivationLayer):
    """``x * sigmoid(x)`` (the backend's ``silu`` kernel: one pass on torch)."""

    def forward(self, x):
        from ..kernels import get_backend

        return get_backend(namespace_of(x)).silu(x)


class ELU(ActivationLayer):
    """``x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = float(alpha)

    def forward(self, x):
        xp = namespace_of(x)
        return xp.where(x > 0, x, self.alpha * xp.expm1(xp.where(x > 0, xp.zeros_like(x), x)))

    def describe(self):
        return f"ELU({self.alpha:g})"


class Tanh(ActivationLayer):
    """``tanh(x)``."""

    def forward(self, x):
        return namespace_of(x).tanh(x)


class Sigmoid(ActivationLayer):
    """``1 / (1 + exp(-x))``."""

    nonnegative = True

    def forward(self, x):
        from ..kernels import get_backend

        return get_backend(namespace_of(x)).sigmoid(x)


class Hardsigmoid(ActivationLayer):
    """``clip(x / 6 + 1/2, 0, 1)`` (torch's ``nn.Hardsigmoid``; ONNX HardSigmoid with
    ``alpha = 1/6``, ``beta = 1/2`` by default)."""

    nonnegative = True

    def __init__(self, alpha: float = 1.0 / 6.0, beta: float = 0.5):
        self.alpha = float(alpha)
        self.beta = float(beta)

    def forward(self, x):
        return namespace_of(x).clip(x * self.alpha + self.beta, 0.0, 1.0)

    def describe(self):
        default = (self.alpha, self.beta) == (1.0 / 6.0, 0.5)
        return "Hardsigmoid()" if default else f"Hardsigmoid({self.alpha:g}, {self.beta:g})"


class Hardswish(ActivationLayer):
    """``x * clip(x / 6 + 1/2, 0, 1)`` (torch's ``nn.Hardswish``, ONNX HardSwish)."""

    preserves_nonnegative = True

    def forward(self, x):
        return x * namespace_of(x).clip(x / 6.0 + 0.5, 0.0, 1.0)


class Mish(ActivationLayer):
    """``x * tanh(softplus(x))`` with ``softplus(x) = log(1 + exp(x))``."""

    preserves_nonnegative = True

    def forward(self, x):
        xp = namespace_of(x)
        # softplus, stable for large |x|: max(x, 0) + log1p(exp(-|x|))
        softplus = xp.maximum(x, xp.zeros_like(x)) + xp.log1p(xp.exp(-xp.abs(x)))
        return x * xp.tanh(softplus)


class Softmax(LinearizableLayer):
    """Softmax over ``dim``: ``s_i = exp(x_i) / Σ_j exp(x_j)``; a score of ``-inf`` (a masked
    position) has output 0 and relevance 0 (``reads_masked_inputs``).

    Not elementwise, so not a pass-through activation: its linearisation is the exact Jacobian,
    ``(∂s/∂x)ᵀ v = s ⊙ (v − Σ_dim s ⊙ v)``, and the rules decide (:class:`~lrp_core.SoftmaxRule`
    is AttnLRP's; under the generic rule, e.g. ``ZeroRule``, ``R_x = x ⊙ (∂s/∂x)ᵀ (R / stab(s))``,
    the same up to the stabiliser). On the model's output it is stripped instead
    (:func:`lrp_core.strip_softmax`): LRP explains the logits.
    """

    reads_masked_inputs = True

    def __init__(self, dim: int = -1):
        self.dim = int(dim)

    def forward(self, x):
        xp = namespace_of(x)
        shifted = x - xp.max(x, axis=self.dim, keepdims=True)
        e = xp.exp(shifted)
        return e / xp.sum(e, axis=self.dim, keepdims=True)

    def preactivation(self, x):
        return self.forward(x)

    def linearize(self, x):
        s = self.forward(x)
        xp = namespace_of(x)
        return s, lambda v: (s * (v - xp.sum(s * v, axis=self.dim, keepdims=True)),)

    def output_nonnegative(self, inputs_nonnegative):
        return True

    def describe(self):
        return f"Softmax(dim={self.dim})"


class Activation(ActivationLayer):
    """Any elementwise function ``fn`` written with array-API calls, under a ``name``."""

    preserves_nonnegative = False

    def __init__(self, fn, name: str | None = None):
        if not callable(fn):
            raise TypeError(f"an activation must be callable, got {fn!r}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "activation")

    def forward(self, x):
        return self.fn(x)

    def describe(self):
        return f"Activation({self.name})"


_KNOWN_FUNCTIONS = {relu: ReLU}


def as_activation(activation):
    """Normalise an ``activation=`` argument to an activation layer (``None``: identity)."""
    if activation is None or isinstance(activation, (ActivationLayer, Softmax)):
        return activation
    if isinstance(activation, type) and issubclass(activation, (ActivationLayer, Softmax)):
        return activation()
    known = _KNOWN_FUNCTIONS.get(activation)
    if known is not None:
        return known()
    if callable(activation):
        return Activation(activation)
    raise TypeError(f"activation must be an activation layer or a function, got {activation!r}")
