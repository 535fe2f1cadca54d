"""The fuzz of ``tests/test_fuzz.py`` run longer: mutated ONNX models (bytes and protobuf fields),
each read (and, if small, explained) by ``lrp.from_onnx``; prints a table of the outcomes.

    LRP_EXTERNAL_DATA=../shared/data .venv/bin/python scripts/fuzz_onnx.py --minutes 10 --seed 0

Examples run in batches, each batch in a subprocess (``--batch`` examples) with a wall-clock
limit of ``--example-timeout`` seconds per example: a batch that exceeds it is a hang. A crash is
an outcome outside the expected error classes, or a subprocess that dies; an outside read is an
``open`` of the sentinel file next to the model's folder. See docs/robustness.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"


def worker(seed: int, first: int, count: int) -> None:
    """Run examples ``first .. first+count-1`` of the run ``seed``; one JSON line per example."""
    sys.path.insert(0, str(TESTS))
    import warnings

    warnings.simplefilter("ignore")
    from test_fuzz import REAL_MODELS, OutsideRead, onnx_example, seed_models

    from helpers.data import data_root

    seeds = seed_models([data_root().joinpath(*parts) for parts in REAL_MODELS])
    for index in range(first, first + count):
        rng = random.Random(f"{seed}-{index}")
        print(json.dumps({"index": index, "start": True}), flush=True)
        with tempfile.TemporaryDirectory() as root:
            try:
                outcome = onnx_example(seeds, rng, Path(root))
                record = {"outcome": outcome}
            except OutsideRead as error:
                record = {"outcome": "OUTSIDE READ", "detail": str(error)}
            except AssertionError as error:
                cause = error.__cause__ or error
                record = {"outcome": "CRASH " + type(cause).__name__, "detail": str(error),
                          "trace": "".join(traceback.format_exception(cause))[-2000:]}
        record["index"] = index
        print(json.dumps(record), flush=True)


def run_batch(seed, first, count, timeout):
    """Run one batch in a subprocess; the records, and the index of a hanging example."""
    command = [sys.executable, __file__, "--worker", str(seed), str(first), str(count)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              cwd=REPO)
        out, died = done.stdout, done.returncode != 0
        err = done.stderr
    except subprocess.TimeoutExpired as expired:
        out = expired.stdout.decode() if isinstance(expired.stdout, bytes) else expired.stdout or ""
        died, err = None, ""
    records, started = [], None
    for line in out.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("start"):
            started = record["index"]
        else:
            records.append(record)
            started = None
    if died is None:  # the timeout: the last started example hangs
        records.append({"index": started, "outcome": "HANG"})
    elif died and started is not None:
        records.append({"index": started, "outcome": "CRASH subprocess died",
                        "detail": err[-2000:]})
    return records


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--examples", type=int, default=None, help="stop after this many")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--example-timeout", type=float, default=10.0)
    parser.add_argument("--worker", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0
    deadline = time.monotonic() + 60 * args.minutes
    start = time.monotonic()
    counts, findings, first = collections.Counter(), [], 0
    while time.monotonic() < deadline and (args.examples is None or first < args.examples):
        count = args.batch if args.examples is None else min(args.batch, args.examples - first)
        records = run_batch(args.seed, first, count, timeout=10 + args.example_timeout * count)
        for record in records:
            counts[record["outcome"]] += 1
            if record["outcome"].startswith(("CRASH", "HANG", "OUTSIDE")):
                findings.append(record)
        done = max((r["index"] for r in records if r["index"] is not None), default=first)
        first = max(done + 1, first + 1)
    elapsed = time.monotonic() - start
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    total = sum(counts.values())
    crashes = sum(v for k, v in counts.items() if k.startswith("CRASH"))
    print(f"seed {args.seed}: {total} examples in {elapsed / 60:.1f} min "
          f"({total / max(elapsed, 1e-9):.0f}/s)\n")
    print("| outcome | count |\n|---|---:|")
    for outcome, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"| {outcome} | {count} |")
    print(f"\n| crashes | {crashes} |\n|---|---:|\n| hangs | {counts['HANG']} |\n"
          f"| outside reads | {counts['OUTSIDE READ']} |\n"
          f"| largest RSS of a batch | {rss / 1024:.0f} MiB |")
    groups = collections.defaultdict(list)  # the findings by outcome and message
    for record in findings:
        detail = record.get("detail", "").splitlines()[:1]
        groups[(record["outcome"], detail[0][:200] if detail else "")].append(record)
    for (outcome, detail), records in list(groups.items())[:30]:
        first = records[0]
        print(f"\n{len(records)} x {outcome}: {detail}\n  first: example {first['index']} "
              f"(--seed {args.seed}); indices {[r['index'] for r in records[:10]]}\n"
              f"{first.get('trace', '')}")
    return 1 if findings else 0


if __name__ == "__main__":
    os.environ.setdefault("LRP_EXTERNAL_DATA", str(REPO.parent / "shared" / "data"))
    sys.exit(main())
