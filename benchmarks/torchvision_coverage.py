"""Which torchvision classifiers lrp-core reads and explains: every architecture of
``torchvision.models.list_models(module=torchvision.models)``, random weights (torchvision's own
initialisation, ``weights=None``), eval mode, one float32 sample, CPU.

For each model, in a forked process with a time limit: read it the way a user would
(``lrp.from_torch(model)``; where that needs the input shape, ``lrp.from_torch(model,
input_shape=x)``), compare the graph's output with the model's, explain the argmax logit with
``lrp.EpsilonPlusFlat()`` (relevance finite and shaped like the input) and time reading and
explaining. Convolutional networks get a small input (64 x 64, Inception-v3 96 x 96) where the
architecture allows it; the transformers (ViT, MaxViT) need 224 x 224. Usage::

    python benchmarks/torchvision_coverage.py [--timeout 240] [--only vit_b_16 ...]
        [--skip vit_h_14 ...] [--json results.json] [--size N]

Prints a Markdown table (the one in docs/models.md) and writes one JSON record per model.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import time
import traceback
import warnings


def input_size(name: str) -> int:
    """The input side used for ``name``: small where the architecture allows it."""
    if name.startswith(("vit_", "maxvit")):
        return 224  # ViT checks the image size; MaxViT's windows need 224
    if name == "inception_v3":
        return 96  # at least 75
    return 64


def run_one(name: str, size: int, queue) -> None:
    """Read, check and explain one model; put a result dict on ``queue``."""
    import torch
    import torchvision

    import lrp_core as lrp

    warnings.simplefilter("ignore")
    record = {"model": name, "size": size, "read": False, "explained": False,
              "needs_shapes": None, "read_s": None, "explain_s": None, "forward_rel_diff": None,
              "error": None, "stage": "build"}
    try:
        torch.manual_seed(0)
        model = torchvision.models.get_model(name, weights=None).eval()
        x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
        record["stage"] = "read"
        start = time.perf_counter()
        try:
            graph = lrp.from_torch(model)
            record["needs_shapes"] = False
        except lrp.InputShapeNeededError:
            graph = lrp.from_torch(model, input_shape=x)
            record["needs_shapes"] = True
        record["read_s"] = time.perf_counter() - start
        record["read"] = True
        record["stage"] = "forward"
        with torch.no_grad():
            expected = model(x)
            got = graph(x)
        scale = float(expected.abs().max()) or 1.0
        record["forward_rel_diff"] = float((got - expected).abs().max()) / scale
        record["stage"] = "explain"
        start = time.perf_counter()
        analyzer = lrp.LRP(graph, lrp.EpsilonPlusFlat())
        expl = analyzer(x)
        record["explain_s"] = time.perf_counter() - start
        val = expl.val
        if tuple(val.shape) != tuple(x.shape) or not bool(torch.isfinite(val).all()):
            raise AssertionError(f"relevance of shape {tuple(val.shape)}, finite: "
                                 f"{bool(torch.isfinite(val).all())}")
        record["relevance_sum"] = float(val.sum())
        record["explained"] = True
        record["stage"] = "done"
    except Exception as error:  # recorded, not raised: the table lists the reason
        record["error"] = f"{type(error).__name__}: {error}"
        record["traceback"] = traceback.format_exc(limit=-3)
    queue.put(record)


def run_with_timeout(name: str, size: int, timeout: float) -> dict:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=run_one, args=(name, size, queue))
    start = time.perf_counter()
    process.start()
    record = None
    try:
        record = queue.get(timeout=timeout)
    except Exception:
        pass
    process.join(5)
    if process.is_alive():
        process.kill()
        process.join()
    if record is None:
        record = {"model": name, "size": size, "read": False, "explained": False,
                  "error": f"no result within {timeout:.0f} s (timed out or crashed, exit code "
                           f"{process.exitcode})"}
    record["wall_s"] = time.perf_counter() - start
    return record


def short_reason(record: dict) -> str:
    error = record.get("error") or ""
    first = error.splitlines()[0] if error else ""
    return first[:300].replace("|", "\\|")


def table(records: list) -> str:
    lines = ["| model | input | read | explained | needs shapes | read s | explain s | "
             "forward rel. diff | reason |", "|---|---|---|---|---|---:|---:|---:|---|"]
    for r in records:
        def fmt(v, spec):
            return format(v, spec) if isinstance(v, (int, float)) else ""
        lines.append(
            f"| {r['model']} | {r['size']} | {'yes' if r['read'] else 'no'} | "
            f"{'yes' if r['explained'] else 'no'} | "
            f"{'' if r.get('needs_shapes') is None else ('yes' if r['needs_shapes'] else 'no')} | "
            f"{fmt(r.get('read_s'), '.1f')} | {fmt(r.get('explain_s'), '.1f')} | "
            f"{fmt(r.get('forward_rel_diff'), '.0e')} | {short_reason(r)} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per model")
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--skip", nargs="*", default=[])
    parser.add_argument("--size", type=int, default=None, help="one input side for all")
    parser.add_argument("--json", default=None, help="write the records here (JSON lines)")
    parser.add_argument("--table-from", nargs="*", default=None,
                        help="only print the table of these JSON-lines files (a later record "
                             "of a model replaces an earlier one)")
    args = parser.parse_args()
    if args.table_from:
        merged = {}
        for path in args.table_from:
            with open(path) as lines:
                for line in lines:
                    record = json.loads(line)
                    merged[record["model"]] = record
        records = sorted(merged.values(), key=lambda r: r["model"])
        print(f"read {sum(r['read'] for r in records)} of {len(records)}, explained "
              f"{sum(r['explained'] for r in records)} of {len(records)}\n")
        print(table(records))
        return

    import torch
    import torchvision

    names = args.only or torchvision.models.list_models(module=torchvision.models)
    records = []
    out = open(args.json, "w") if args.json else None
    for name in names:
        if name in args.skip:
            record = {"model": name, "size": args.size or input_size(name), "read": False,
                      "explained": False, "error": "skipped (too large for the time limit)"}
        else:
            record = run_with_timeout(name, args.size or input_size(name), args.timeout)
        records.append(record)
        print(f"{name}: read={record['read']} explained={record['explained']} "
              f"wall={record.get('wall_s', 0):.1f}s {short_reason(record)}", flush=True)
        if out:
            out.write(json.dumps(record) + "\n")
            out.flush()
    read = sum(r["read"] for r in records)
    explained = sum(r["explained"] for r in records)
    print(f"\nread {read} of {len(records)}, explained {explained} of {len(records)} "
          f"(torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} threads)\n")
    print(table(records))


if __name__ == "__main__":
    main()
