"""The engine's tuning knobs: sizes that trade speed for memory, never results.

Every field changes only which path (bulk or stepped, memo or array passes,
watched rows or a full pass) computes an answer; SPEC §3 results are the same
for any positive values.  Tests pass extreme values to force the rare paths.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tuning:
    """Sizes of the rating engine's fast paths (`RatingEngine(setup, tuning=Tuning(...))`).

    Attributes:
      max_specials: special instants (a refused charge, a failing recharge) per org and
        window that the bulk charging handles before stepping the rest of the window one
        increment at a time.
      step_below: an org whose bulk pass paid fewer increments than this before its special
        instant is stepped one increment at a time for the rest of the window (0: only after
        `max_specials`).
      split_rows: increments to expand one row each in a window above which the window is
        charged as two halves.
      small_batch: arrival batches up to this size are admitted through the memo of earlier
        identical calls rather than the array passes (0: always the array passes).
      watch_ms: how far ahead of a full pass the call table watches the rows due soon.
      compile_after: instants listed and increments paid by the stepping loop, so far and
        foreseen until the run's end at the pace so far, above which the loop runs compiled
        with numba rather than by Python (0: compiled from the first; None: never, for
        real-time rating, which numba's load would stall).
      crossing_rows: an org that may recharge and pays every charge has its recharges found
        second by second (`_crossings`) rather than from one row per increment when its
        credit-paid increments in a window are at least this many times the cells that
        search needs: one a second of the window, 1,000 a second in which a recharge falls;
        or, for an org whose balance trails its trigger (`_crossings.by_millisecond`), a
        quarter of the window's milliseconds, windows of up to 2^21 ms (0: whenever it may).
      step_slice: increments and instants at most that the loop steps by Python in one call:
        a longer span is stepped in halves, the choice to compile made again for each.
    """

    max_specials: int = 16
    step_below: int = 256
    split_rows: int = 16_384
    small_batch: int = 256
    watch_ms: int = 1_000
    compile_after: int | None = 450_000
    step_slice: int = 50_000
    crossing_rows: int = 1
