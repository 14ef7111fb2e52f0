"""Simulated time against Trio's clock.

`SimClock(speed=None)` is virtual time: the switch never waits, so a month
runs as fast as the machine rates it.  `SimClock(speed=N)` maps N simulated
seconds to one wall second of Trio's clock (which tests replace with
`trio.testing.MockClock`).  Rating decisions only ever use simulated
instants chosen by the switch, never a clock reading, which is why the
outputs are the same bytes at every speed.
"""

from __future__ import annotations

import trio


class SimClock:
    def __init__(self, speed: float | None = None) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._wall0: float | None = None

    @property
    def virtual(self) -> bool:
        return self.speed is None

    def start(self) -> None:
        """Simulated t = 0 is now."""
        self._wall0 = trio.current_time()

    def now_ms(self) -> int:
        """The simulated instant the wall clock has reached (virtual time: unbounded)."""
        if self.speed is None:
            return 2**62
        assert self._wall0 is not None, "start() the clock first"
        return int((trio.current_time() - self._wall0) * self.speed * 1000)

    def wall_of(self, sim_ms: int) -> float:
        """Trio time at which simulated instant `sim_ms` is due (speed mode)."""
        assert self._wall0 is not None and self.speed is not None
        return self._wall0 + sim_ms / 1000 / self.speed

    def lag_s(self, sim_ms: int) -> float:
        """How late, in wall seconds, an event due at `sim_ms` is being applied now."""
        if self.speed is None:
            return 0.0
        return max(0.0, trio.current_time() - self.wall_of(sim_ms))
