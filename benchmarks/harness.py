"""``python -m benchmarks``: time LRP against the gradient and against the peers, in one run.

For each model, batch size and preset, every contender (the forward pass, the gradient with
respect to the input, lrp-core on torch and on NumPy, Zennit, Captum) is prepared outside the
timing, called once to warm up, then timed for ``--rounds`` rounds, taking turns in a rotated
order in each round (these machines are shared and noisy: interleaving puts a slow phase on all
contenders alike). The medians and the spread go into ``benchmarks/results/<tag>.json`` and
``<tag>.md``, as ratios to the gradient's median time of the same round set; ``--memory`` adds
each contender's peak extra memory and its growth over repeated calls, measured in a fresh
subprocess each (``benchmarks/memory.py``); ``<tag>.png`` plots time per image against batch
size (when matplotlib is installed).

Examples::

    python -m benchmarks --quick                 # LeNet-5 and MNIST only: the CI guard
    python -m benchmarks --models vgg16 resnet50 --batches 1 16 --rounds 5 --memory
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys

from benchmarks.contenders import CONTENDERS, PRESETS, Unsupported, prepare
from benchmarks.models import MODELS, build
from benchmarks.report import write_markdown, write_plot
from benchmarks.timing import interleaved, summary

__all__ = ["main", "run"]

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _versions() -> dict:
    import importlib.metadata as metadata

    versions = {"python": platform.python_version()}
    for package in ("lrp-core", "numpy", "torch", "torchvision", "zennit", "captum",
                    "onnxruntime"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def _synchronizer(device: str):
    """What waits for the device's queued work: nothing on the CPU; torch's and CuPy's
    synchronisation on CUDA."""
    if device == "cpu":
        return lambda: None
    import torch

    def sync():
        torch.cuda.synchronize()
        cupy = sys.modules.get("cupy")
        if cupy is not None:
            cupy.cuda.Device().synchronize()

    return sync


def run(models, batches, presets, contenders, *, rounds: int, threads: int, dtype: str,
        memory: bool, device: str = "cpu", log=print) -> dict:
    """Time everything; the record (machine, versions, settings and one entry per case)."""
    import torch

    torch.set_num_threads(threads)
    torch_dtype = getattr(torch, dtype)
    sync = _synchronizer(device)
    cases = []
    for model_name in models:
        spec = MODELS[model_name]
        model = build(spec, torch_dtype)
        if not isinstance(model, str):
            model = model.to(device)
            for p in model.parameters():
                p.requires_grad_(False)  # the gradient is with respect to the input only
        for batch in batches:
            x = torch.rand((batch, *spec.input_shape), dtype=torch_dtype,
                           generator=torch.Generator().manual_seed(1)).to(device)
            for preset in presets:
                prepared, skipped = [], {}
                for name in contenders:
                    if name in ("forward", "gradient") and preset != presets[0]:
                        continue  # the baselines do not depend on the preset: timed once
                    try:
                        prepared.append(prepare(name, spec, model, x, preset))
                    except Unsupported as reason:
                        skipped[name] = str(reason)
                    except Exception as error:  # a contender failing is recorded, not fatal
                        skipped[name] = f"failed: {type(error).__name__}: {error}"
                for contender in list(prepared):  # the warm-up call
                    try:
                        contender.call()
                        sync()
                    except Exception as error:
                        skipped[contender.name] = f"failed: {type(error).__name__}: {error}"
                        prepared.remove(contender)
                        contender.close()
                try:
                    times = (interleaved(prepared, rounds, warmup=0, sync=sync) if prepared
                             else {})
                finally:
                    for contender in prepared:
                        contender.close()
                for name, samples in times.items():
                    case = {"model": model_name, "batch": batch, "preset": preset,
                            "contender": name, "times": samples, **summary(samples)}
                    if memory and device == "cpu":
                        case["memory"] = _memory(model_name, preset, batch, name, threads,
                                                 dtype)
                    cases.append(case)
                    log(f"{model_name:>16} b{batch:<3} {preset:<16} {name:<16} "
                        f"{case['median']:.4f} s (spread {case['spread']:.0%})")
                for name, reason in skipped.items():
                    cases.append({"model": model_name, "batch": batch, "preset": preset,
                                  "contender": name, "skipped": reason})
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": {"platform": platform.platform(), "processor": platform.processor(),
                        "cpu_count": os.cpu_count(), "torch_threads": threads,
                        "device": _device_name(device)},
            "versions": _versions(),
            "settings": {"rounds": rounds, "dtype": dtype, "device": device,
                         "models": list(models),
                         "batches": list(batches), "presets": list(presets),
                         "contenders": list(contenders), "memory": memory},
            "cases": cases}


def _device_name(device: str) -> str:
    if device == "cpu":
        return "cpu"
    import torch

    return f"{device}: {torch.cuda.get_device_name(torch.device(device))}"


def _memory(model, preset, batch, contender, threads, dtype):
    from benchmarks.memory import measure_in_subprocess

    calls = 12 if model in ("lenet5", "mnist-8") else 3
    return measure_in_subprocess(model, preset, batch, contender, calls=calls, threads=threads,
                                 dtype=dtype)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["lenet5", "vgg16", "resnet50"],
                        choices=sorted(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS),
                        choices=list(CONTENDERS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--memory", action="store_true",
                        help="also measure peak memory (one subprocess per contender and case; "
                             "CPU only)")
    parser.add_argument("--device", default="cpu",
                        help="torch device of the models and inputs: cpu (default) or cuda[:i]; "
                             "the lrp-core/cupy contender needs cuda")
    parser.add_argument("--quick", action="store_true",
                        help="LeNet-5 and the ONNX MNIST model, batches 1 and 16, 3 rounds: the "
                             "regression guard CI prints (never fails on)")
    parser.add_argument("--tag", default=None, help="file name of the results (default: a "
                                                    "name from the date)")
    parser.add_argument("--out", default=RESULTS, help="folder of the results")
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.batches, args.rounds = ["lenet5", "mnist-8"], [1, 16], 3
    if args.device == "cpu" and "lrp-core/cupy" in args.contenders:
        args.contenders.remove("lrp-core/cupy")
    record = run(args.models, args.batches, args.presets, args.contenders, rounds=args.rounds,
                 threads=args.threads, dtype=args.dtype, memory=args.memory, device=args.device)
    tag = args.tag or ("quick" if args.quick else
                       datetime.datetime.now().strftime("run-%Y%m%d-%H%M"))
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, tag)
    with open(base + ".json", "w") as f:
        json.dump(record, f, indent=1)
    table = write_markdown(record, base + ".md")
    plotted = write_plot(record, base + ".png")
    print(table)
    print(f"written: {base}.json, {base}.md" + (f", {base}.png" if plotted else
                                                 " (no plot: matplotlib is not installed)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
