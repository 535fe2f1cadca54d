"""Helpers shared by the test modules, imported as ``from helpers.<module> import ...``.

pytest puts ``tests/`` on ``sys.path`` (the folder of the rootdir's ``conftest.py``, which has no
``__init__.py``: the default "prepend" import mode), so this package imports without installing.

* :mod:`helpers.data`: where the third-party test data live (``LRP_EXTERNAL_DATA``), MNIST digits;
* :mod:`helpers.oracle`: independent NumPy oracles of the layers and rules (no lrp_core imports);
* :mod:`helpers.tolerances`: relevance comparisons scaled to the largest entry;
* :mod:`helpers.onnx_models`: small ONNX graphs built with ``onnx.helper``, onnxruntime as the
  forward oracle, the presets by name (importing it skips the module without onnx/onnxruntime);
* :mod:`helpers.torch_models`: the torch tests' module snapshots, re-initialisation, the shared
  LeNet-5 and the autograd oracle (needs torch);
* :mod:`helpers.cli`: the ``lrp`` command line in a subprocess;
* :mod:`helpers.kernel_cases`: keyword arguments of the kernel calls from a test case.

Nothing is imported here, so that importing one module never needs another's frameworks.
"""
