"""Read an ONNX model into an lrp-core graph, without running it.

Modules: ``reader`` (:func:`from_onnx`, :func:`model_input_shape`), ``loading`` (the file, its
checks and initializers), ``translator`` (the node walk), ``nodes`` (node attributes),
``folding`` (constant folding), ``translations`` (merging the ``ops_*`` translations by operator
family) and ``postpass`` (folding scale-and-shifts and pads after translation).
"""

from .loading import MIN_OPSET, OnnxModelError
from .reader import from_onnx, model_input_shape
from .translations import SUPPORTED_OPS

__all__ = ["from_onnx", "model_input_shape", "OnnxModelError", "SUPPORTED_OPS", "MIN_OPSET"]
