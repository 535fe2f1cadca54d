"""Packaging: ``backends/`` installs as ``lrp_core.backends``, never as a bare top-level
``backends`` that any folder of that name on the path would shadow (regression: lrp-core then
fell back to the slow reference kernels and asked for torch while torch was installed).

Both installs are checked from a working folder that holds a decoy ``backends/`` package: a
wheel built from this checkout and installed into a fresh target, and the editable install the
tests run in.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]



def _decoy(folder: pathlib.Path) -> pathlib.Path:
    decoy = folder / "backends"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise ImportError('the decoy backends was imported')\n")
    (decoy / "kernels").mkdir()
    (decoy / "kernels" / "__init__.py").write_text("raise ImportError('decoy')\n")
    return folder


def _probe(cwd: pathlib.Path, env_path: str | None) -> list[str]:
    code = ("import numpy as np, lrp_core\n"
            "from lrp_core.kernels import get_backend\n"
            "print(type(get_backend(np)).__module__)\n"
            "import lrp_core.backends\n"
            "print(lrp_core.backends.__file__)\n")
    env = {"PATH": "/usr/bin:/bin"}
    if env_path is not None:
        env["PYTHONPATH"] = env_path
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config["package-dir"]
    found = set()
    roots = [("lrp_core", ROOT / "lrp_core"), *((k, ROOT / v) for k, v in mapping.items())]
    for prefix, folder in roots:
        for init in folder.rglob("__init__.py"):
            parts = init.parent.relative_to(folder).parts
            found.add(".".join((prefix, *parts)))
    assert found == listed, f"not in pyproject: {found - listed}; listed, absent: {listed - found}"


@pytest.mark.slow
def test_wheel_installs_backends_under_lrp_core_and_ignores_a_decoy(tmp_path):
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT),
                            "-w", str(wheels)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("lrp_core-*.whl")
    target = tmp_path / "target"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                                "--target", str(target), str(wheel)],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    assert not (target / "backends").exists()  # no bare top-level package
    module, location = _probe(_decoy(tmp_path / "work"), str(target))
    assert module == "lrp_core.backends.kernels.numpy_backend"
    assert pathlib.Path(location).is_relative_to(target)


def test_editable_install_ignores_a_decoy(tmp_path):
    module, location = _probe(_decoy(tmp_path), None)
    assert module == "lrp_core.backends.kernels.numpy_backend"
    assert not pathlib.Path(location).is_relative_to(tmp_path)


def test_importing_lrp_core_imports_no_framework():
    # lrp_core.cli too: ``lrp explain --zarr`` reaches Dask and Zarr only when it runs
    code = ("import sys, lrp_core, lrp_core.backends, lrp_core.cli\n"
            "print(sorted(m for m in ('torch', 'onnx', 'cupy', 'dask', 'distributed', 'zarr')\n"
            "             if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
