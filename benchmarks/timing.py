"""Interleaved timing: each contender takes one turn per round, in a rotated order, so that a
slow phase of a shared, noisy machine falls on all of them alike."""

from __future__ import annotations

import gc
import statistics
import time

__all__ = ["interleaved", "summary"]


def interleaved(contenders, rounds: int, warmup: int = 1,
                sync=lambda: None) -> dict[str, list[float]]:
    """``{name: [seconds per round]}``: ``warmup`` untimed calls each, then ``rounds`` rounds.
    ``sync()`` waits for queued device work (CUDA) before a timer stops."""
    for contender in contenders:
        for _ in range(warmup):
            contender.call()
    sync()
    times = {c.name: [] for c in contenders}
    for r in range(rounds):
        order = contenders[r % len(contenders):] + contenders[:r % len(contenders)]
        for contender in order:
            gc.collect()
            start = time.perf_counter()
            contender.call()
            sync()
            times[contender.name].append(time.perf_counter() - start)
    return times


def summary(samples: list[float]) -> dict:
    """Median, minimum, maximum and the interquartile spread relative to the median."""
    ordered = sorted(samples)
    median = statistics.median(ordered)
    if len(ordered) >= 4:
        q1, _, q3 = statistics.quantiles(ordered, n=4)
    else:
        q1, q3 = ordered[0], ordered[-1]
    return {"median": median, "min": ordered[0], "max": ordered[-1],
            "spread": (q3 - q1) / median if median else 0.0, "n": len(ordered)}
