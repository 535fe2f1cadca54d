"""lrp-core's adapters to frameworks, installed as :mod:`lrp_core.backends`.

* :mod:`lrp_core.backends.kernels`: one :class:`~lrp_core.kernels.Backend` subclass per array
  framework (NumPy, torch, CuPy), overriding the reference kernels with native ones.
* :mod:`lrp_core.backends.readers`: model readers by framework (``torch``, ``onnx``), each
  turning a model into an :class:`lrp_core.Graph`.

They import :mod:`lrp_core`; the core finds them through its registries (by dotted name, on
first use), never by import, so importing :mod:`lrp_core` imports no framework.
"""
