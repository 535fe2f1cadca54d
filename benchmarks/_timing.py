"""Timing helpers shared by the benchmark scripts."""

import time


def best_of(fn, repeat: int) -> float:
    """The best wall-clock time of ``repeat`` calls of ``fn``, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
