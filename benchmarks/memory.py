"""Peak memory of one contender, measured in a subprocess of its own.

``python -m benchmarks.memory MODEL PRESET BATCH CONTENDER [--calls N]`` prepares the
contender, makes one warm-up call (which builds lrp-core's cached modified layers; that memory
stays and is counted in ``rss_after_warmup``), resets the kernel's peak-RSS mark
(``/proc/self/clear_refs``, Linux), makes the calls and prints one JSON line:
``extra_peak_mib`` (the peak resident memory during the calls above the resident memory before
them) and ``growth_mib`` (resident memory after the last call minus after the tenth), which
shows a leak across repeated calls.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys

__all__ = ["measure_in_subprocess"]


def _status(field: str) -> float:
    """A ``VmRSS``/``VmHWM`` line of ``/proc/self/status`` in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise OSError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("preset")
    parser.add_argument("batch", type=int)
    parser.add_argument("contender")
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args(argv)

    import torch

    from benchmarks.contenders import Unsupported, prepare
    from benchmarks.models import MODELS, build

    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    spec = MODELS[args.model]
    model = build(spec, dtype)
    if not isinstance(model, str):
        for p in model.parameters():
            p.requires_grad_(False)
    x = torch.rand((args.batch, *spec.input_shape), dtype=dtype,
                   generator=torch.Generator().manual_seed(1))
    try:
        contender = prepare(args.contender, spec, model, x, args.preset)
    except Unsupported as reason:
        print(json.dumps({"unsupported": str(reason)}))
        return 0
    contender.call()
    gc.collect()
    before = _status("VmRSS")
    _reset_peak()
    after_tenth = None
    for i in range(args.calls):
        contender.call()
        if i == 9:
            after_tenth = _status("VmRSS")
    peak = _status("VmHWM")
    gc.collect()
    last = _status("VmRSS")
    contender.close()
    print(json.dumps({"rss_after_warmup_mib": before, "extra_peak_mib": peak - before,
                      "growth_mib": None if after_tenth is None else last - after_tenth}))
    return 0


def measure_in_subprocess(model, preset, batch, contender, *, calls=5, threads=2,
                          dtype="float32", timeout=1800) -> dict:
    """Run :func:`main` in a fresh interpreter; its JSON result (or ``{"error": ...}``)."""
    import os
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    command = [sys.executable, "-m", "benchmarks.memory", model, preset, str(batch), contender,
               "--calls", str(calls), "--threads", str(threads), "--dtype", dtype]
    try:
        done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(lines[-1])


if __name__ == "__main__":
    raise SystemExit(main())
