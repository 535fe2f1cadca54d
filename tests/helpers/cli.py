"""The ``lrp`` command line through its real entry point: ``python -m lrp_core`` in a
subprocess, with this checkout first on ``PYTHONPATH``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # tests/helpers/cli.py -> the repository


def repo_env() -> dict:
    """The environment with this checkout first on ``PYTHONPATH``."""
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def run_cli(*args, cwd=None, extra_python_flags=()) -> subprocess.CompletedProcess:
    """``python [extra_python_flags] -m lrp_core ARGS`` (each argument through ``str``), run in
    ``cwd`` (default: the repository); stdout and stderr captured as text."""
    command = [sys.executable, *extra_python_flags, "-m", "lrp_core", *map(str, args)]
    return subprocess.run(command, cwd=cwd or REPO, env=repo_env(), capture_output=True, text=True,
                          timeout=300, check=False)


def mnist8_model():
    """The ONNX zoo MNIST model's path for ``lrp explain`` tests (skipped without onnx)."""
    import importlib.util

    import pytest

    from .data import data_path

    path = data_path("onnx-model-zoo", "mnist-8.onnx")
    if importlib.util.find_spec("onnx") is None:
        pytest.skip("lrp explain on an ONNX file needs the onnx package (lrp-core[onnx])")
    return path
