"""The one timing helper the benchmarks share: best wall time of a few repeats."""

import time


def best_seconds(function, repeats):
    """Fewest seconds `function()` took over `repeats` calls (the least disturbed by other work)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best
