"""The errors lrp-core raises on purpose. All subclass :class:`LRPError`."""

from __future__ import annotations

__all__ = ["LRPError", "LRPCompatibilityError", "ModelCheckError", "UnsupportedOperatorError",
           "InputShapeNeededError", "NonFiniteError"]


class LRPError(Exception):
    """Base class of every error lrp-core raises on purpose."""


class LRPCompatibilityError(LRPError, TypeError):
    """A rule was assigned to a layer it cannot be applied to (raised when the analyzer is
    built)."""


class ModelCheckError(LRPError, ValueError):
    """The model holds a layer or an activation that LRP cannot explain; the message names each."""


class UnsupportedOperatorError(LRPError, NotImplementedError):
    """An ONNX node or a traced torch call has no translation; the message names the node."""


class InputShapeNeededError(UnsupportedOperatorError):
    """A traced torch call can be translated only with the model's per-sample input shape
    (a permute, a slice, a view with computed sizes): read the model with
    ``lrp.from_torch(model, input_shape=...)``, or let ``lrp.LRP(model)`` read it at its first
    call, once per input shape. The message names the call."""


class NonFiniteError(LRPError, ValueError):
    """The input, the output relevance or a model parameter holds NaN or infinity; the message
    names which (a parameter by its layer and name)."""
