"""``lrp conformance``: run the suite on an implementation from the command line.

    lrp conformance --impl SPEC [--examples N] [--seed S] [--properties P ...]
                    [--presets P ...] [--json FILE]

Prints the table (property × preset: pass, FAIL, n/a) and, for each failure, the smallest
counterexample hypothesis found as runnable torch code. Exit status 0 when every applicable
property holds, 1 when one fails, 2 for a usage error (unknown implementation, property or
preset). ``lrp_core.cli`` adds this command; the suite is imported only when it runs.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

__all__ = ["add_parser", "run_command"]


class UsageError(Exception):
    """A mistake in what was asked: exit status 2."""


def add_parser(commands) -> argparse.ArgumentParser:
    """Add the ``conformance`` command to an argparse sub-parser collection."""
    c = commands.add_parser(
        "conformance", help="check an LRP implementation against the properties LRP must have",
        description="Run the property-based conformance suite (hypothesis) on an LRP "
                    "implementation: a built-in (lrp_core-numpy, lrp_core-torch, "
                    "lrp_core-torch-cuda, lrp_core-array-api-strict, lrp_core-cupy, zennit, "
                    "zennit-defaults, captum) "
                    "or yours as "
                    "module:Class. Exit status: 0 all applicable properties hold, 1 one fails, "
                    "2 usage error.")
    c.add_argument("--impl", required=True, metavar="SPEC",
                   help="the implementation: a built-in name or module:Class")
    c.add_argument("--examples", type=int, default=25, metavar="N",
                   help="hypothesis examples per property and preset (default: 25)")
    c.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default: 0)")
    c.add_argument("--properties", nargs="+", default=None, metavar="P",
                   help="only these properties (default: all)")
    c.add_argument("--presets", nargs="+", default=None, metavar="P",
                   help="only these presets (default: all the implementation supports)")
    c.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON")
    c.add_argument("--quiet", action="store_true", help="no progress lines")
    c.set_defaults(run=run_command)
    return c


def run_command(args) -> int:
    """Run the suite as ``args`` say; returns the exit status."""
    try:
        from . import PRESET_NAMES, PROPERTIES, load_implementation, run
    except ImportError as error:  # hypothesis or torch missing
        print(f"lrp conformance: needs {error.name}: pip install 'lrp-core[conformance]'",
              file=sys.stderr)
        return 2
    try:
        if args.examples < 1:
            raise UsageError("--examples must be a positive integer")
        for name in args.properties or ():
            if name not in PROPERTIES:
                raise UsageError(f"unknown property {name!r}; known: {', '.join(PROPERTIES)}")
        for name in args.presets or ():
            if name not in PRESET_NAMES:
                raise UsageError(f"unknown preset {name!r}; known: {', '.join(PRESET_NAMES)}")
        try:
            impl = load_implementation(args.impl)
        except (ValueError, ImportError) as error:  # unknown, or its library/device is missing
            raise UsageError(str(error)) from None
    except UsageError as error:
        print(f"lrp conformance: error: {error}", file=sys.stderr)
        return 2

    def progress(outcome, done, total):
        if not args.quiet:
            note = f" ({outcome.seconds:.1f} s)" if outcome.seconds else ""
            print(f"[{done:>3}/{total}] {outcome.prop} / {outcome.preset}: {outcome.status}{note}",
                  file=sys.stderr, flush=True)

    report = run(impl, properties=args.properties, presets=args.presets, examples=args.examples,
                 seed=args.seed, progress=progress)
    print(f"lrp conformance: {impl.name}, {args.examples} examples per check, seed {args.seed}")
    print(report.table())
    if report.failures:
        print()
        print(report.failure_text())
    if args.json:
        pathlib.Path(args.json).write_text(report.as_json())
    failed = len(report.failures)
    print(f"\n{failed} failed" if failed else "\nevery applicable property holds")
    return 1 if failed else 0
