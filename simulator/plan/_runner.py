"""The evaluator that runs the scenario: each probe is a batch of sweep runs (`run_many`).

Settings reach the scenario as sweep overrides of the org's `[orgs.credits]` table, so a probe
is exactly `callsim run SCENARIO --seed S --set orgs.ID.credits.initial=...` and can be
repeated by hand.  A baseline gives the org ample credit (`AMPLE` whole units, no recharge),
so no credit-caused cut can happen and what it spends is what its traffic costs; a baseline
up to an instant also shortens `simulation.duration` (a longer run starts with exactly the
calls of a shorter one).

An org the scenario gives no `[orgs.credits]` table (a `callsim import` leaves it commented
out) is planned as if it had one: each run's settings then reach the parsed document as that
whole table (`CreditsTable`), a single override, instead of key by key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ..sweep import Cluster, Override, RunSpec, RunSummary, run_many
from ._model import Outcome, Setting

AMPLE = 100_000_000  # whole units: beyond any org's spend a scenario can describe


class CreditsTable(dict):
    """An `[orgs.credits]` table put into the parsed scenario by one `Override`.

    Hashable, since sweep keys its points by their overrides, and read-only, since one object
    serves every run of the point (the loader reads it, nothing may change it).  Pickled as
    a plain dict's items, for Dask's workers.
    """

    def __init__(self, values: Mapping[str, object]) -> None:
        super().__init__(values)

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))

    def __reduce__(self) -> tuple[type, tuple[dict[str, object]]]:
        return CreditsTable, (dict(self),)

    def _read_only(self, *args: object, **kwargs: object) -> None:
        raise TypeError("a CreditsTable is read-only")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = __ior__ = _read_only  # type: ignore[assignment]


class RunFailed(Exception):
    """A run of the search failed (its seed and setting in one line): the plan stops, exit 1."""


class SweepEvaluator:
    """Runs one org's probes through `simulator.sweep.run_many`, on Dask.

    `fixed`: overrides every run carries (the card kept valid, say).  `add_credits`: the org
    has no `[orgs.credits]` table; each run's settings come as a whole `CreditsTable`.  `cluster`: an
    `open_cluster` shared by every stage of the search; without one, `scheduler` and `workers`
    go to each `run_many` as `callsim sweep` takes them (`SYNC`: in this process).
    """

    def __init__(self, scenario: Path, org: str, fixed: Sequence[Override] = (), *, add_credits: bool = False,
                 cluster: Cluster | None = None, scheduler: str | None = None, workers: int | None = None,
                 progress: bool = False) -> None:
        self.scenario, self.org, self.fixed, self.add_credits = scenario, org, tuple(fixed), add_credits
        self.cluster, self.scheduler, self.workers, self.progress = cluster, scheduler, workers, progress
        self.runs = 0

    def point(self, **credits: str | bool) -> tuple[Override, ...]:
        """The overrides of one run: `fixed`, then the org's credits settings."""
        if self.add_credits:
            return self.fixed + (Override(f"orgs.{self.org}.credits", CreditsTable(credits)),)  # type: ignore[arg-type]
        return self.fixed + tuple(Override(f"orgs.{self.org}.credits.{k}", v) for k, v in credits.items())

    def _ample(self) -> tuple[Override, ...]:
        return self.point(initial=str(AMPLE), auto_recharge=False)

    def baseline(self, seeds: Sequence[int], until_ms: int | None) -> list[Outcome]:
        point = self._ample()
        if until_ms is not None:
            point += (Override("simulation.duration", f"{until_ms}ms"),)
        return [self._outcome(r) for r in self._run([RunSpec(point, seed) for seed in seeds])]

    def trial(self, settings: Sequence[Setting], seeds: Sequence[int]) -> dict[Setting, list[Outcome]]:
        points = {s: self.point(initial=str(s.initial), auto_recharge=True, recharge_below=str(s.below),
                                recharge_amount=str(s.amount)) for s in settings}
        specs = [RunSpec(points[s], seed) for s in settings for seed in seeds]
        summaries = self._run(specs)
        n = len(seeds)
        return {s: [self._outcome(r) for r in summaries[i * n:(i + 1) * n]] for i, s in enumerate(settings)}

    def _run(self, specs: list[RunSpec]) -> list[RunSummary]:
        """The specs' summaries in order; a failed run raises RunFailed, Ctrl-C KeyboardInterrupt."""
        self.runs += len(specs)
        kwargs = {"cluster": self.cluster} if self.cluster is not None else {}
        result = run_many(self.scenario, specs, scheduler=self.scheduler, workers=self.workers,
                          progress=self.progress, keep_runs=None, **kwargs)
        if result.interrupted:
            raise KeyboardInterrupt
        if result.failures:
            raise RunFailed(str(result.failures[0]))
        return list(result.runs)

    def _outcome(self, summary: RunSummary) -> Outcome:
        # balance_exhausted is raised only by a refusal where credits were allowed to pay: > 0
        # iff the settings could have prevented a cut (docs/rating-rules.md)
        o = summary.orgs[self.org]
        return Outcome(seed=summary.seed, credit_cut=o.balance_exhausted > 0, cuts=o.calls_cut,
                       spent_micros=o.credits_spent_micros, purchased_micros=o.credits_purchased_micros,
                       recharges=o.recharges_succeeded, lowest_balance_micros=o.lowest_balance_micros)
