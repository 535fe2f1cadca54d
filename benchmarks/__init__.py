"""The benchmark harness of lrp-core: ``python -m benchmarks --help``.

The harness times, in one process and interleaved round by round, the gradient with respect to
the input (the baseline), lrp-core on each available backend, Zennit and Captum, and writes a
JSON record, a Markdown table and a plot under ``benchmarks/results/``. The older scripts in
this folder (``vgg16_torch_vs_zennit.py``, ``vgg16_numpy.py``) run on their own.
"""
