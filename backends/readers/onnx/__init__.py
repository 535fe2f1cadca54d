"""Read an ONNX model into an lrp-core graph, without running it."""

from .reader import MIN_OPSET, SUPPORTED_OPS, OnnxModelError, from_onnx, model_input_shape

__all__ = ["from_onnx", "model_input_shape", "OnnxModelError", "SUPPORTED_OPS", "MIN_OPSET"]
