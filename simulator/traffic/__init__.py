"""Call arrivals of a scenario: generated `[[traffic]]` plus explicit `[[calls]]`, in call_id order.

Pure numpy: no Trio, no clock, no I/O.  The switch asks a `TrafficPlan` for the arrivals of
successive windows of simulated time and gets `Arrivals` batches whose `call_id`s follow
SPEC §3 (arrival order; ties at one instant: explicit calls in file order, then generated
calls in `[[traffic]]` order, each source in its own draw order).

General layout:

- `_plan`: `TrafficPlan` (windows, merging, numbering) and `expected_calls`.
- `_draws`: one source's calls, drawn block by block on a fixed grid: the arrival rate per
  grid cell (flat, or the hour's rate of a profile), holding times, callers.
- `_batch`: `SourceDraws`, the blocks of every source due in a window drawn in rounds: each
  source's generator calls as it alone would make them, the arrays built once for all.
- `_numbers`: the numbers a source dials (or, toll-free, is called from): destination
  prefixes completed with random digits, whole numbers, uniform or weighted picks.

Why it is built this way:

* **Same seed, same calls, whatever the caller does.**  One `PCG64(seed)` root generator is
  split with `spawn` into one child per traffic source, so a source's draws never depend on
  another source (adding a source does not change the others' calls).  Each source draws on a
  fixed grid of simulated time (`GRID_MS` cells, grouped into fixed draws of whole cells),
  never on the caller's window, so any sequence of `chunk` windows -- one minute, one hour,
  7 h 13 min, or the whole run at once -- returns exactly the same arrays, at any playback
  speed.  Draws are never cut at the end of the simulation either (calls at or after the end
  are dropped after drawing), so a longer run starts with exactly the calls of a shorter one.
* **Fast.**  Everything is drawn per draw block with whole-array numpy calls; there is no
  Python loop per call or per cell, and a rate profile costs one Poisson draw per local hour
  of a block.  Blocks hold about 16,384 expected calls (whatever the hour, with a profile),
  so a month of 1.4 M calls is ~100 block draws in all.  Quiet sources (~256 calls a block,
  a day to a week with a profile, to a year without) cost their generator calls, ~20 µs a
  block: a round turns the draws of all the sources due into calls with whole-array steps,
  so 10,000 one-user orgs draw in a few tenths of a second.  `TrafficPlan` also merges and numbers ahead in
  windows of about that size, so tiny `chunk` windows are mostly array slicing.  Drawn calls
  wait in time-sorted runs (one per round of draws, whatever sources drew in it), so a window
  costs its own calls and the sources that must draw for it, never a step per source.
* **Model** (docs/scenario.md, "How calls are drawn"): per run of a block's grid cells
  inside one local hour (a flat source: the whole block), a Poisson number of arrivals at
  uniform integer ms (a Poisson process at 1 ms resolution whose rate is constant within
  each local hour); holding times from the source's distribution, in whole
  ms, at least 1 ms; the user uniform among the source's users; the number from a weighted
  or uniform pick of the destinations.

A source with nothing to draw from -- a zero rate, no users (non toll-free), no candidate
prefix (no tariffs and no `destinations`, or `destinations = []`), or for toll-free no
`toll_free_numbers` of its org -- yields no calls instead of failing: the scenario is still
valid, that traffic simply cannot happen.  Its child generator is still spawned, so the other
sources' calls do not change.
"""

from ._draws import (GRID_MS, MAX_CELLS_PER_DRAW, MAX_FLAT_CELLS_PER_DRAW, QUIET_CALLS_PER_DRAW,
                     TARGET_CALLS_PER_DRAW)
from ._plan import TrafficPlan, expected_calls

__all__ = ["GRID_MS", "MAX_CELLS_PER_DRAW", "MAX_FLAT_CELLS_PER_DRAW", "QUIET_CALLS_PER_DRAW",
           "TARGET_CALLS_PER_DRAW", "TrafficPlan", "expected_calls"]
