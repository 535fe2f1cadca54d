"""Model readers by framework: :mod:`.torch` (torch.fx) and :mod:`.onnx` (the onnx package)."""
