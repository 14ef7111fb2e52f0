"""`callsim bench`: the throughput figures we track, measured in one command.

1. Rating core: one window in which >= 1M connected calls over 1,000 orgs
   (sharing per-org pools) each pay one increment: increments paid per second.
2. The same timeline (admission, two boundaries, the end) rated by the
   sequential reference of the tests (`tests/reference.py`, present in a
   source checkout), for the speed-up ratio.
3. End to end: `callsim run` on enterprise_month.toml with all outputs,
   simulated calls per wall second, and the peak memory of runs over a week,
   two weeks and the month (flat means CDRs are streamed, not held).
4. Stress rows, end to end, target >= 200k calls/s each: an org recharging
   every ~5 s (benchmarks/stress_recharge.toml), one recharging at almost every
   instant (benchmarks/stress_recharge_every_instant.toml), one stuck below its trigger,
   each recharge smaller than one increment's cost so that about every other charge is
   refused (benchmarks/stress_recharge_below_increment.toml), the same with each recharge
   one increment's cost (benchmarks/stress_recharge_one_increment.toml) and with per-second
   billing (benchmarks/stress_per_second_stuck.toml), dead, exhausted and healthy
   orgs mixed (benchmarks/stress_mixed_orgs.toml), lots expiring with a rest among charges
   a year on (benchmarks/stress_lot_expiries.toml), one org billed per second with ~5,000
   calls connected recharging every ~0.25 s (benchmarks/stress_per_second_busy.toml), one
   with ~50,000 half-hour calls of 6/6 billing connected recharging every ~0.2 s
   (benchmarks/stress_long_calls.toml), and 10,000 orgs of one user
   and one traffic source each (written by benchmarks/stress_orgs.py), over 8 h and over
   2 h (each source still draws a day of calls a block: the run is mostly its setup and
   its sources' first blocks), and 10,000 such orgs stuck below their trigger or retrying
   an expired card every second over 8 h (`--mix stuck`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from rating_core import Arrivals, Credits, Org, Plans, RatingEngine, RatingSetup, Tariff, User

REPO = Path(__file__).resolve().parents[2]
ENTERPRISE = REPO / "scenarios" / "enterprise_month.toml"
BENCHMARKS = REPO / "benchmarks"
STRESS_TARGET = 200_000  # calls/s end to end the stress rows must reach, whatever the scenario
SWEEP_TARGET = 500_000  # calls/s of a sweep's in-memory run, per worker process
LICENSES = frozenset({"phone_system", "domestic_calling_plan", "communications_credits"})


def core_batch(n_calls: int, n_orgs: int, seed: int = 1) -> tuple[RatingSetup, Arrivals]:
    """n_calls answered at t = 0 over n_orgs orgs; pools big enough for two increments each."""
    rng = np.random.default_rng(seed)
    users_per_org = 10
    orgs = tuple(
        Org(f"org{o:04d}",
            tuple(User(f"u{i}", "US", LICENSES) for i in range(users_per_org)),
            credits=Credits(initial_micro=10**12))
        for o in range(n_orgs)
    )
    setup = RatingSetup(
        start=datetime(2026, 11, 1, tzinfo=timezone.utc), end_ms=60_001, currency="USD",
        plans=Plans(domestic_minutes={"default": 3000}),
        tariffs=(Tariff("1", 20_000, 60, 60, "US", "A"), Tariff("44", 35_000, 60, 60, "GB", "B")),
        toll_free_tariffs=(), orgs=orgs,
    )
    org = np.sort(rng.integers(0, n_orgs, n_calls)).astype(np.int32)
    gb = rng.random(n_calls) < 0.2  # some international calls: paid from credits
    to = np.where(gb, 442070000000, 12120000000) + rng.integers(0, 10**7, n_calls)
    arrivals = Arrivals(
        call_id=np.arange(1, n_calls + 1, dtype=np.int64),
        t_ms=np.zeros(n_calls, dtype=np.int64),
        org=org,
        user=(org * users_per_org + rng.integers(0, users_per_org, n_calls)).astype(np.int32),
        kind=np.zeros(n_calls, dtype=np.int8),
        to_number=to.astype(np.int64),
        from_number=np.zeros(n_calls, dtype=np.int64),
        holding_ms=np.full(n_calls, 10**9, dtype=np.int64),
    )
    return setup, arrivals


def bench_core(n_calls: int, n_orgs: int, repeats: int = 5) -> dict:
    setup, arrivals = core_batch(n_calls, n_orgs)
    best = float("inf")
    for _ in range(repeats):
        engine = RatingEngine(setup)
        engine.advance(arrivals, 1)  # answer every call and pay its first increment
        started = time.perf_counter()
        step = engine.advance(Arrivals.empty(), 60_001)  # one boundary at 60 s for every call
        best = min(best, time.perf_counter() - started)
        assert step.increments == n_calls, step.increments
    started = time.perf_counter()
    engine = RatingEngine(setup)
    engine.advance(arrivals, setup.end_ms)
    engine.finish()
    whole = time.perf_counter() - started
    return {"increments": n_calls, "batch_s": best, "repeats": repeats, "increments_per_s": n_calls / best,
            "timeline_s": whole, "timeline_increments": 2 * n_calls}


def _source_module(path: Path, name: str):
    """A module of the source checkout that is not part of the package (tests/, benchmarks/)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module


def bench_reference(n_calls: int, n_orgs: int) -> dict | None:
    path = REPO / "tests" / "reference.py"
    if not path.exists():
        return None
    module = _source_module(path, "callsim_reference")
    setup, arrivals = core_batch(n_calls, n_orgs)
    started = time.perf_counter()
    module.run_reference(setup, arrivals)
    return {"timeline_s": time.perf_counter() - started, "timeline_increments": 2 * n_calls}


def bench_e2e(scenario: Path) -> list[dict]:
    """Full run, then shorter runs to show that peak memory does not grow with the month."""
    return [_run_in_child(scenario, duration) for duration in (None, "15d", "7d")]


def _run_in_child(scenario: Path, duration: str | None = None) -> dict:
    """One `callsim run` of `scenario` in a fresh process (`_bench_run`): its JSON line, plus
    the whole process's seconds."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "simulator._bench_run", str(scenario), out]
        if duration:
            cmd.append(duration)
        started = time.perf_counter()  # the whole process: interpreter, imports, run, exit
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["process_s"] = time.perf_counter() - started
        return result


def bench_sweep_run(scenario: Path, repeats: int = 2) -> dict:
    """A sweep's run of `scenario` in memory (`sweep.summarise`: no files), best of `repeats`."""
    from ..scenario import load_scenario
    from ..sweep import summarise

    loaded = load_scenario(scenario)
    best, calls = float("inf"), 0
    for _ in range(repeats):
        started = time.perf_counter()
        calls = summarise(loaded).total.calls
        best = min(best, time.perf_counter() - started)
    return {"scenario": loaded.name, "calls": calls, "wall_s": best, "calls_per_s": calls / best}


def bench_stress() -> list[dict] | None:
    """The stress scenarios end to end, each in a fresh process (None outside a source checkout)."""
    script = BENCHMARKS / "stress_orgs.py"
    if not script.exists():
        return None
    stress_orgs = _source_module(script, "callsim_stress_orgs")
    # The first stepping run after an install builds numba's on-disk cache of the compiled
    # loop (~5 s): the one-increment row, run once more and not reported, builds it first.
    _run_in_child(BENCHMARKS / "stress_recharge_one_increment.toml")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        ten_thousand = []
        for name, duration, mix in (("stress_10k_orgs", "8h", "mixed"), ("stress_10k_orgs_2h", "2h", "mixed"),
                                    ("stress_10k_stuck", "8h", "stuck")):
            path = Path(tmp) / f"{name}.toml"
            path.write_text(stress_orgs.stress_orgs_toml(
                orgs=10_000, users=1, rate=10, duration=duration, name=name,
                args=f"{name}.toml --orgs 10000 --users 1 --calls-per-hour 10 --duration {duration} "
                     f"--name {name} --mix {mix}", mix=mix))
            ten_thousand.append(path)
        for scenario in (BENCHMARKS / "stress_recharge.toml", BENCHMARKS / "stress_recharge_every_instant.toml",
                         BENCHMARKS / "stress_recharge_below_increment.toml",
                         BENCHMARKS / "stress_recharge_one_increment.toml",
                         BENCHMARKS / "stress_per_second_stuck.toml",
                         BENCHMARKS / "stress_mixed_orgs.toml", BENCHMARKS / "stress_lot_expiries.toml",
                         BENCHMARKS / "stress_per_second_busy.toml", BENCHMARKS / "stress_long_calls.toml",
                         *ten_thousand):
            results.append(_run_in_child(scenario))
    return results


def run_bench(args: argparse.Namespace) -> int:
    core = bench_core(args.calls, args.orgs)
    print(f"rating core: {core['increments']:,} due increments over {args.orgs:,} orgs in "
          f"{core['batch_s'] * 1e3:.1f} ms (best of {core['repeats']}) = "
          f"{core['increments_per_s'] / 1e6:.1f} M increments/s")
    ref = bench_reference(args.calls, args.orgs)
    if ref:
        ratio = ref["timeline_s"] / core["timeline_s"]
        print(f"same timeline (admit {args.calls:,} calls, 2 increments each, end): core "
              f"{core['timeline_s']:.2f} s, sequential reference {ref['timeline_s']:.2f} s "
              f"= {ratio:.0f}x")
    else:
        print("sequential reference: tests/reference.py not found (not a source checkout)")
    if not args.skip_e2e:
        scenario = args.scenario or ENTERPRISE
        for r in bench_e2e(scenario):
            print(f"end to end {r['scenario']} ({r['duration']}): {r['calls']:,} calls in "
                  f"{r['wall_s']:.2f} s = {r['calls_per_s']:,.0f} calls/s "
                  f"(whole process {r['process_s']:.2f} s = {r['calls'] / r['process_s']:,.0f} calls/s), "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB (file workers: {r['workers_peak_rss_mb']:.0f} MB)")
    if not args.skip_e2e:
        r = bench_sweep_run(args.scenario or ENTERPRISE)
        verdict = "ok" if r["calls_per_s"] >= SWEEP_TARGET else "BELOW TARGET"
        print(f"sweep run {r['scenario']} in memory (no files): {r['calls']:,} calls in {r['wall_s']:.2f} s = "
              f"{r['calls_per_s']:,.0f} calls/s (target >= {SWEEP_TARGET:,} per worker process: {verdict})")
    if not (args.skip_e2e or args.skip_stress):  # the stress rows are end-to-end runs too
        stress = bench_stress()
        if stress is None:
            print("stress rows: benchmarks/ not found (not a source checkout)")
        for r in stress or ():
            verdict = "ok" if r["calls_per_s"] >= STRESS_TARGET else "BELOW TARGET"
            print(f"stress {r['scenario']}: {r['calls']:,} calls in {r['wall_s']:.2f} s = "
                  f"{r['calls_per_s']:,.0f} calls/s (target >= {STRESS_TARGET:,}: {verdict}; "
                  f"whole process {r['process_s']:.2f} s)")
    return 0
