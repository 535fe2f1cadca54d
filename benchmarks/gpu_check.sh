#!/usr/bin/env bash
# The GPU check of lrp-core, prepared for one run on a machine with one NVIDIA GPU, torch, CuPy,
# onnx, pytest and hypothesis, and no network (the device machine): the `gpu` tests, then the
# GPU benchmarks (torch CUDA and CuPy against the gradient, batch 1 and 64, VGG-16 and
# ResNet-50, float32). Writes device.txt, gpu-tests.txt (+ .xml), bench.txt and gpu.{json,md}
# into the folder given as its argument. Within 8 minutes on an H200; see docs/gpu.md.
#
#   bash benchmarks/gpu_check.sh OUTDIR
#
# Installs nothing the machine lacks beyond the pure-Python wheels carried in .whl/
# (array-api-compat, cmap: docs/gpu.md says how to fetch them), into /tmp/site. The repository
# is imported as the installed package lays it out (lrp_core.backends, lrp_conformance) through
# links in /tmp/lrp-src, so nothing is built. LRP_EXTERNAL_DATA may point to a carried copy of
# the shared data (the ONNX zoo MNIST test skips without it).
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_check.sh OUTDIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
repo=$PWD
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}

if compgen -G ".whl/*.whl" > /dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || { echo "installing the carried wheels failed"; exit 1; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
src=/tmp/lrp-src
rm -rf "$src" && mkdir -p "$src/lrp_core"
for entry in "$repo"/lrp_core/*; do ln -s "$entry" "$src/lrp_core/"; done
ln -s "$repo/backends" "$src/lrp_core/backends"
ln -s "$repo/conformance" "$src/lrp_conformance"
export PYTHONPATH=$src:$repo${PYTHONPATH:+:$PYTHONPATH}

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
    "$python" - <<'PY'
import platform, numpy, torch
print("python", platform.python_version(), "numpy", numpy.__version__, "torch", torch.__version__,
      "cuda", torch.version.cuda, "device",
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (no CUDA)")
try:
    import cupy
    print("cupy", cupy.__version__, "cuda runtime", cupy.cuda.runtime.runtimeGetVersion())
except Exception as error:  # noqa: BLE001
    print("cupy unavailable:", error)
import lrp_core, array_api_compat
print("lrp_core from", lrp_core.__file__, "array-api-compat", array_api_compat.__version__)
PY
} > "$out/device.txt" 2>&1
cat "$out/device.txt"

timeout 300 "$python" -m pytest -q -rs -p no:cacheprovider -m gpu \
    tests/test_gpu.py tests/test_torch_gpu.py tests/test_cupy_kernels.py \
    tests/test_conformance_implementations.py --junitxml="$out/gpu-tests.xml" 2>&1 \
    | tee "$out/gpu-tests.txt"
tests_status=${PIPESTATUS[0]}

timeout 240 "$python" -m benchmarks --device cuda --models vgg16 resnet50 --batches 1 64 \
    --presets Epsilon EpsilonPlusFlat --contenders gradient lrp-core/torch lrp-core/cupy \
    --rounds 5 --threads 8 --out "$out" --tag gpu 2>&1 | tee "$out/bench.txt"
bench_status=${PIPESTATUS[0]}

echo "gpu tests exit status $tests_status, benchmarks exit status $bench_status" \
    | tee -a "$out/device.txt"
exit $(( tests_status != 0 || bench_status != 0 ))
