"""The values a translation of the torch reader reads and returns, and how a translation fails.

A value of the translation environment is a :class:`Tensor` (a symbol of the lrp graph and its
rank, ``None`` when the reader does not know it), a :class:`Size` or :class:`Dim` (``x.size()``,
``x.size(i)``), a :class:`Failed` (a node that could not be translated) or a plain Python value
(a constant; a parameter or buffer, detached). A function or method translation is called with
the call's translated arguments and returns an :class:`Op` (a layer applied to tensors) or a
plain value (a size, an int).

A translation says why it cannot translate a call with :func:`fail` (which raises
:class:`Unsupported`); consuming a :class:`Failed` value raises :class:`Propagated`. The walk
(:mod:`.walk`) turns both into an :class:`lrp_core.UnsupportedOperatorError` naming the fx node
and the user's line.

**The rank rule**: a translation whose meaning depends on the input's rank reads it with
:func:`known_rank` (which refuses when the rank is unknown); it never assumes one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

import torch
import torch.nn as nn

from lrp_core.errors import UnsupportedOperatorError

__all__ = ["Tensor", "Size", "Dim", "Failed", "Unsupported", "ShapeNeeded", "Propagated", "fail",
           "Op", "as_tensor", "describe", "ints", "known_rank", "known_shape", "param",
           "normalize_axis", "leaves"]


def leaves(value):
    """The values inside call arguments: through lists, tuples, dicts and slice bounds."""
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from leaves(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    elif isinstance(value, slice):
        yield from leaves((value.start, value.stop, value.step))
    else:
        yield value


@dataclass(eq=False)
class Tensor:
    """A tensor of the lrp graph: its symbol, its rank (``None`` when unknown) and, when the
    model is read for an input shape, its per-sample shape (the batch axis left out)."""

    symbol: object
    rank: int | None = None
    shape: tuple | None = None


@dataclass(eq=False)
class Size:
    """``x.size()`` / ``x.shape``."""

    of: Tensor


@dataclass(eq=False)
class Dim:
    """``x.size(i)`` / ``x.shape[i]``: a size known only at run time (``i == 0``: the batch)."""

    of: Tensor
    index: int

    @property
    def is_batch(self) -> bool:
        return self.index == 0


@dataclass(eq=False)
class Failed:
    """A node that could not be translated; raised only when something live consumes it."""

    error: UnsupportedOperatorError


class Unsupported(Exception):
    """Raised by a translation; turned into an UnsupportedOperatorError naming the node."""


class ShapeNeeded(Unsupported):
    """Raised by a translation that needs the per-sample shapes (the model was read without an
    input shape); the walk turns it into an :class:`lrp_core.InputShapeNeededError`."""


class Propagated(Exception):
    """A node consumed an untranslatable value: it fails with that value's error."""

    def __init__(self, error: UnsupportedOperatorError):
        super().__init__(str(error))
        self.error = error


def fail(reason: str) -> NoReturn:
    """Refuse the call being translated, saying why."""
    raise Unsupported(reason)


@dataclass
class Op:
    """A translation's result: ``layer`` (``None``: the identity) applied to ``inputs``, with
    the output's rank (``None`` when unknown) and whether it writes into its first input.

    An input may itself be an :class:`Op` (a translation into several layers, such as a slice
    followed by a reshape); ``name`` then tells the inner layers apart (``node.name`` +
    ``"." + name``), and ``shape`` is the output's per-sample shape where the translation
    knows it."""

    layer: object
    inputs: tuple
    rank: int | None = None
    inplace: bool = False
    name: str | None = None
    shape: tuple | None = None


def as_tensor(value, what: str = "input") -> Tensor:
    """``value`` as a :class:`Tensor` computed from the model input, or a failure."""
    if isinstance(value, Failed):
        raise Propagated(value.error)
    if not isinstance(value, Tensor):
        fail(f"its {what} must be a tensor computed from the model input, got {describe(value)}")
    return value


def describe(value) -> str:
    """A short description of a value, for messages."""
    if isinstance(value, torch.Tensor):
        return f"a constant tensor of shape {tuple(value.shape)}"
    if isinstance(value, (Size, Dim)):
        return "a tensor size"
    return repr(value)


def ints(value, name: str) -> tuple[int, ...] | int:
    """A constant int or tuple of ints, or a failure naming the argument."""
    if isinstance(value, (list, tuple)):
        if not all(isinstance(v, int) for v in value):
            fail(f"{name} must be constant ints, got {describe(value)}")
        return tuple(value)
    if not isinstance(value, int):
        fail(f"{name} must be a constant int, got {describe(value)}")
    return value


def known_rank(x: Tensor, what: str) -> int:
    """The rank of ``x``; refuses ``what`` (a call whose meaning depends on it) when unknown."""
    if x.rank is None:
        raise ShapeNeeded(f"{what} depends on the input's rank, which is not known here (the "
                          "reader learns it from a layer that fixes it, such as a convolution, "
                          "a pooling or a flatten, or from the input shape)")
    return x.rank


def known_shape(x: Tensor, what: str) -> tuple:
    """The per-sample shape of ``x``; refuses ``what`` when the model is read without shapes."""
    if x.shape is None:
        raise ShapeNeeded(f"{what} needs the per-sample shape of its input, which is known only "
                          "when the model is read for an input shape")
    return x.shape


def normalize_axis(axis, rank: int, what: str) -> int:
    """``axis`` (possibly negative) of a rank-``rank`` tensor, in ``0..rank-1``."""
    axis = ints(axis, what)
    if not -rank <= axis < rank:
        fail(f"{what}={axis} is out of range for a rank-{rank} tensor")
    return axis % rank


def param(value):
    """A parameter or buffer as the tensor the graph keeps: detached, never copied."""
    if value is None:
        return None
    if isinstance(value, (nn.parameter.UninitializedParameter,
                          nn.parameter.UninitializedBuffer)):
        fail("the module has uninitialized (lazy) parameters: run one forward pass first")
    if not isinstance(value, torch.Tensor):
        fail(f"expected a tensor parameter, got {type(value).__name__}")
    return value.detach()
