"""Running the properties on an implementation: hypothesis per (property, preset), the table,
the shrunk counterexamples as runnable torch code, JSON.

    from lrp_conformance import run, load_implementation
    report = run(load_implementation("lrp_core-numpy"), examples=20)
    print(report.table())
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Unsatisfiable

from .properties import PROPERTIES, PropertyFailure
from .protocol import PRESET_NAMES

__all__ = ["Outcome", "Report", "run", "check_property", "applicability"]

PASS, FAIL, NOT_APPLICABLE = "pass", "FAIL", "n/a"


@dataclass
class Outcome:
    """The result of one property on one preset."""

    prop: str
    preset: str
    status: str            # "pass", "FAIL" or "n/a"
    reason: str = ""       # why n/a, or what failed
    code: str = ""         # the shrunk counterexample as a torch program
    extra_code: str = ""   # the equivalent network the property compared with, if any
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v not in ("", None)}


@dataclass
class Report:
    """Every outcome of one run."""

    implementation: str
    examples: int
    seed: int
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == FAIL]

    @property
    def passed(self) -> bool:
        return not self.failures

    def table(self) -> str:
        """Property × preset: pass, FAIL or n/a."""
        props = list(dict.fromkeys(o.prop for o in self.outcomes))
        presets = list(dict.fromkeys(o.preset for o in self.outcomes))
        cell = {(o.prop, o.preset): o.status for o in self.outcomes}
        width = max([len("property")] + [len(p) for p in props])
        header = f"{'property':<{width}}  " + "  ".join(presets)
        lines = [header, "-" * len(header)]
        for p in props:
            lines.append(f"{p:<{width}}  " + "  ".join(f"{cell.get((p, s), ''):^{len(s)}}"
                                                       for s in presets))
        return "\n".join(lines)

    def failure_text(self) -> str:
        blocks = []
        for o in self.failures:
            block = [f"== {o.prop} on {o.preset}: {o.reason}"]
            if o.code:
                block += ["-- the smallest counterexample found (runnable torch code):", o.code]
            if o.extra_code:
                block += ["-- the equivalent network it was compared with:", o.extra_code]
            blocks.append("\n".join(block))
        return "\n\n".join(blocks)

    def as_json(self) -> str:
        return json.dumps({"implementation": self.implementation, "examples": self.examples,
                           "seed": self.seed, "passed": self.passed,
                           "outcomes": [o.as_dict() for o in self.outcomes]}, indent=2)


def check_property(prop, impl, preset: str, examples: int = 20, seed: int = 0, *,
                   shrink: bool = True) -> Outcome:
    """One property on one preset of ``impl`` (hypothesis, ``examples`` examples from ``seed``;
    a failure is shrunk to the smallest counterexample unless ``shrink`` is false)."""
    failure: dict = {}
    phases = [Phase.generate, Phase.shrink] if shrink else [Phase.generate]

    @hypothesis_seed(seed)
    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), print_blob=False, phases=phases,
              report_multiple_bugs=False)
    @given(prop.cases(preset))
    def check(case):
        try:
            prop.check(impl, preset, case)
        except PropertyFailure as error:
            failure["last"] = error  # hypothesis runs the shrunk example last
            raise

    start = time.perf_counter()
    try:
        with np.errstate(all="ignore"):
            check()
    except PropertyFailure as error:
        error = failure.get("last", error)
        return Outcome(prop.name, preset, FAIL, error.message, error.case.to_code(),
                       error.extra_code, time.perf_counter() - start)
    except Unsatisfiable:
        return Outcome(prop.name, preset, NOT_APPLICABLE,
                       "no example could be checked (every input was unsupported or filtered out)",
                       seconds=time.perf_counter() - start)
    return Outcome(prop.name, preset, PASS, seconds=time.perf_counter() - start)


def applicability(prop, impl, preset: str) -> str:
    """Why ``prop`` does not apply to ``preset`` of ``impl`` ("" when it does)."""
    if preset not in impl.supports:
        return f"{impl.name} does not support the preset"
    if preset not in prop.presets:
        return "the property does not hold for this preset by design"
    return ""


def run(impl, *, properties=None, presets=None, examples: int = 20, seed: int = 0,
        shrink: bool = True, progress=None) -> Report:
    """Check ``properties`` (names; default all) on ``presets`` (default all) of ``impl``, each
    on ``examples`` hypothesis examples from ``seed`` (failures shrunk unless ``shrink`` is
    false). ``progress(outcome, done, total)`` is called after each check."""
    properties = list(PROPERTIES) if properties is None else list(properties)
    presets = list(PRESET_NAMES) if presets is None else list(presets)
    unknown = [p for p in properties if p not in PROPERTIES]
    if unknown:
        raise ValueError(f"unknown properties {unknown}; known: {', '.join(PROPERTIES)}")
    unknown = [p for p in presets if p not in PRESET_NAMES]
    if unknown:
        raise ValueError(f"unknown presets {unknown}; known: {', '.join(PRESET_NAMES)}")
    report = Report(impl.name, examples, seed)
    total = len(properties) * len(presets)
    for name in properties:
        prop = PROPERTIES[name]
        for preset in presets:
            why_not = applicability(prop, impl, preset)
            if why_not:
                outcome = Outcome(name, preset, NOT_APPLICABLE, why_not)
            else:
                outcome = check_property(prop, impl, preset, examples, seed, shrink=shrink)
            report.outcomes.append(outcome)
            if progress is not None:
                progress(outcome, len(report.outcomes), total)
    return report
