"""`callsim bench`: the speed figures of the rating core, the pure-Python reference and
end-to-end runs (docs/benchmarks.md).

General layout: `_bench` times each part (`run_bench`); every end-to-end run is a fresh
process, `python -m simulator._bench_run`, so its peak memory is its own.
"""

from ._bench import run_bench

__all__ = ["run_bench"]
