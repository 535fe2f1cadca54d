"""The layer protocol: what the forward and the backward pass need from a layer.

A layer is an immutable value object holding its parameters as arrays of any namespace. Two
kinds exist, and every concrete layer is one of them:

* :class:`LinearizableLayer`: the generic LRP rule applies. ``linearize(*inputs)`` returns the
  pre-activation ``z`` (the layer without its activation) and a ``pullback`` that maps a
  cotangent ``s`` shaped like ``z`` to the vector-Jacobian products with respect to each input.
  Dense, Conv, pooling, BatchNorm, LayerNorm, Add, AddConstant, Softmax and the products Mul and
  MatMul are of this kind.
* :class:`PassThroughLayer`: relevance is routed without arithmetic (activations standing on
  their own, Flatten, Reshape, Permute, Slice, Stack, Dropout, Identity, Concat,
  ConcatConstant): ``route(relevance, input_shapes)``.

Calling a layer on arrays runs its forward pass; calling it on the symbolic tensors of
:func:`lrp_core.Input` adds a node to a graph instead (see :mod:`lrp_core.graph`).
"""

from __future__ import annotations

import copy

__all__ = ["Layer", "LinearizableLayer", "PassThroughLayer", "Symbol"]


class Symbol:
    """A symbolic tensor: the value with index ``index`` in a graph under construction."""

    __slots__ = ("builder", "index")

    def __init__(self, builder, index: int):
        self.builder = builder
        self.index = index

    def __repr__(self) -> str:
        return f"Symbol({self.index})"


class Layer:
    """Base class of every layer.

    Subclasses name their array-valued fields in ``_arrays`` (so that they can be converted to
    another namespace, device and dtype) and set ``n_inputs`` (``None``: any number >= 1).
    """

    _arrays: tuple[str, ...] = ()
    _masks: tuple[str, ...] = ()  # arrays of ``_arrays`` that may hold -inf (a mask)
    n_inputs: int | None = 1

    # -- construction -----------------------------------------------------------------------
    def replace(self, **changes) -> Layer:
        """A copy with some attributes replaced; the original is untouched."""
        new = copy.copy(self)
        for name, value in changes.items():
            if not hasattr(self, name):
                raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
            object.__setattr__(new, name, value)
        return new

    def convert(self, fn) -> Layer:
        """A copy with ``fn`` applied to every array field (``None`` fields stay ``None``)."""
        changes = {name: fn(getattr(self, name)) for name in self._arrays}
        activation = getattr(self, "activation", None)
        if activation is not None:
            changes["activation"] = activation.convert(fn)
        return self.replace(**changes) if changes else self

    # -- computation -------------------------------------------------------------------------
    def forward(self, *inputs):
        raise NotImplementedError

    def output_nonnegative(self, inputs_nonnegative: tuple[bool, ...]) -> bool:
        """Whether the output is known to be >= 0 given which inputs are (for sign-split rules)."""
        return False

    def __call__(self, *args):
        if args and all(isinstance(a, Symbol) for a in args):
            return args[0].builder.call(self, args)
        if any(isinstance(a, Symbol) for a in args):
            raise TypeError("call a layer either on arrays or on symbolic tensors, not a mix")
        self._check_arity(len(args))
        return self.forward(*args)

    def _check_arity(self, n: int) -> None:
        if self.n_inputs is None:
            if n < 1:
                raise TypeError(f"{type(self).__name__} needs at least one input")
        elif n != self.n_inputs:
            raise TypeError(f"{type(self).__name__} takes {self.n_inputs} input(s), got {n}")

    def mismatch(self, shape: tuple) -> str | None:
        """Where the layer's parameters fix its input shape and ``shape`` does not fit: the
        shape it takes, in words such as ``"(N, 3, H, W)"`` (for error messages); else ``None``."""
        return None

    # -- display -----------------------------------------------------------------------------
    def describe(self) -> str:
        """A short one-line description (used in printed graphs and error messages)."""
        return type(self).__name__ + "()"

    def __repr__(self) -> str:
        return self.describe()


class LinearizableLayer(Layer):
    """A layer the generic rule applies to: ``linearize`` gives ``z`` and its pullback.

    ``reads_masked_inputs``: the layer's input may hold ``-inf`` at masked positions (the scores
    of an attention mask, before a softmax); the generic rule gives such an entry relevance 0
    (its output there is 0), where ``x ⊙ c`` would give ``-inf · 0 = NaN``."""

    activation: Layer | None = None
    reads_masked_inputs: bool = False

    def linearize(self, *inputs):
        """``(z, pullback)``: the pre-activation and ``s -> tuple of input cotangents``."""
        raise NotImplementedError

    def preactivation(self, *inputs):
        """The output without the activation; override when cheaper than ``linearize``."""
        return self.linearize(*inputs)[0]

    def forward(self, *inputs):
        z = self.preactivation(*inputs)
        return z if self.activation is None else self.activation.forward(z)

    def output_nonnegative(self, inputs_nonnegative):
        return self.activation is not None and self.activation.output_nonnegative((False,))


class PassThroughLayer(Layer):
    """A layer whose relevance is routed unchanged: reshaped, copied or sliced."""

    def route(self, relevance, input_shapes):
        """The relevance of each input (a tuple), given the relevance of the output."""
        xp_reshape = _reshape_like(relevance)
        return (xp_reshape(relevance, input_shapes[0]),)


def _reshape_like(x):
    from ..arrays import namespace_of

    return namespace_of(x).reshape
