"""How much work a scenario is, and whether this machine can do it.

A scenario file of a few lines can ask for 10^13 calls or ten million users; found out by
running, that is an out-of-memory kill after minutes of silence.  So the loader measures the
work from the checked values *before* it expands anything (`Workload`), `estimate` turns it
into calls, users, peak connected calls, memory, output size and run time, and `refusals`
compares that with what the machine has (`Machine`), naming the field that asks for most.

The memory model follows how a run holds its data: every user is an object for the whole run,
every connected call is a row in the switch's tables until it ends, each window of
simulated time holds its arrivals (at most `WINDOW_CALLS`, however high the rate), and each
traffic source holds the calls of its current draw block (about `CALLS_PER_DRAW`, more when one
minute of the source already has more).  Total calls do not stay in memory: they are streamed to the output files, so they cost disk and time.
The per-item sizes were measured with `/usr/bin/time -f %M callsim run` on scenarios that vary
one quantity at a time, and are rounded up.

This module is pure: numbers in, numbers and messages out.  `this_machine` is the one
function that looks at the machine.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from ..units import format_duration

__all__ = [
    "FORCE_ENV",
    "MEMORY_SHARE",
    "Machine",
    "Source",
    "WorkEstimate",
    "Workload",
    "estimate",
    "forced",
    "refusals",
    "this_machine",
    "warnings",
]

BASE_BYTES = 100 << 20  # interpreter, numpy, trio, pydantic: a one-call run peaks at ~63 MB
USER_BYTES = 600  # per user: 1 M users in a group took 525 MB more than one user
CONNECTED_CALL_BYTES = 400  # per call connected at once: 1.27 M took ~495 MB
WINDOW_CALL_BYTES = 600  # per arrival of the window being rated: 2 M took ~1.15 GB
ORG_BYTES = 5_500  # per org (its tables, pools, ledger rows): 10,000 orgs took 52 MB more
SOURCE_BYTES = 8_000  # per traffic source (generator, tables, draws): 10,000 took ~80 MB more
EXPLICIT_CALL_BYTES = 300  # an explicit [[calls]] entry is an object for the whole run
WINDOW_MS = 3_600_000  # a window of virtual time is at least this long ...
LONGEST_WINDOW_MS = 7 * 24 * 3_600_000  # ... at most this long ...
WINDOW_TARGET_CALLS = 16_384  # ... sized for this many expected arrivals ...
WINDOW_CALLS = 65_536  # ... and holds at most this many (switch's constants)
DRAWN_CALL_BYTES = 64  # per call drawn ahead by a source: an Arrivals row is 49 B
DRAW_BYTES = 200  # per call of the block being drawn, temporaries included
CALLS_PER_DRAW = 16_384  # a source draws blocks of about this many calls ...
GRID_MS = 60_000  # ... in whole grid cells ...
MAX_CELLS_PER_DRAW = 1_440  # ... at most a day of them ...
QUIET_CALLS_PER_DRAW = 256  # ... or, a source quieter than that, about this many calls ...
MAX_FLAT_CELLS_PER_DRAW = 525_600  # ... in at most a year (simulator.traffic's draw constants)
CDR_BYTES = 400  # per call on disk: cdrs.csv ~126 B + cdrs.msgpack ~265 B a row
CALLS_PER_SECOND = 200_000  # end-to-end rating speed the run time is estimated with ...
WINDOW_SECONDS = 0.0003  # ... plus this per window: 100 years of 1 h windows, 833 calls: 229 s
LONG_RUN_S = 3_600  # a run estimated to take longer than this gets a warning
MEMORY_SHARE = 0.8  # refuse beyond this share of the available memory: the rest is a margin
DISK_SHARE = 0.9  # ... and of the free disk space under --out
FORCE_ENV = "CALLSIM_FORCE"
MS_PER_HOUR = 3_600_000


@dataclass(frozen=True)
class Source:
    """One `[[traffic]]` source as the estimate sees it; `place` is its `traffic[i]`.

    `calls_per_hour` is its mean rate over the run (the calls it makes), `peak_per_hour` the
    rate of its busiest hour (the calls connected at once, the blocks it draws; the same as
    the mean without a rate profile), `rate_key` the key under `place` that sets the rate.
    """

    place: str
    calls_per_hour: float
    holding_mean_ms: int
    peak_per_hour: float | None = None  # None: calls_per_hour
    rate_key: str = "calls_per_hour"

    @property
    def peak(self) -> float:
        return self.calls_per_hour if self.peak_per_hour is None else self.peak_per_hour


@dataclass(frozen=True)
class Workload:
    """What a scenario asks for, read from its checked values before anything is expanded.

    `biggest_users` is the place of the `[[orgs.users]]` entry with the most users (the
    field to name when users are too many for the machine), or "" when there are none;
    `users_past_limit` the place of the entry that takes the users past the loader's limit
    in all (`_scenario_schema.MAX_USERS`), or "" when they stay within it.
    """

    duration_ms: int
    users: int
    biggest_users: str
    sources: tuple[Source, ...]
    explicit_calls: int
    orgs: int = 0
    users_past_limit: str = ""


@dataclass(frozen=True)
class WorkEstimate:
    """Expected size of a run.  Calls are floats: they are expectations, possibly huge."""

    users: int
    calls: float
    peak_connected: float
    window_calls: float
    memory_bytes: float
    disk_bytes: float
    run_seconds: float

    def describe(self) -> str:
        """One line for `callsim validate`: the figures a user weighs before a run."""
        return (
            f"~{_count(self.calls)} calls, {self.users:,} users, "
            f"~{_count(self.peak_connected)} connected at peak; "
            f"~{_bytes(self.memory_bytes)} of memory, ~{_bytes(self.disk_bytes)} of output, "
            f"{_seconds(self.run_seconds)} to run"
        )


@dataclass(frozen=True)
class Machine:
    """What a run may use: bytes of memory and of disk under the output directory.

    None means unknown (then nothing is refused for it).  `runs_traffic` is False for
    `callsim serve`, which ignores the scenario's traffic and calls: only its users count.
    """

    memory_bytes: int | None
    disk_bytes: int | None = None
    disk_path: str = ""
    runs_traffic: bool = True


def estimate(work: Workload) -> WorkEstimate:
    """The expected calls, peak connected calls, memory, output and time of a run."""
    hours = work.duration_ms / MS_PER_HOUR
    calls = sum(s.calls_per_hour * hours for s in work.sources) + work.explicit_calls
    connected = sum(_connected(s, work.duration_ms) for s in work.sources)
    # Little's law gives the mean; Poisson arrivals stray above it by a few standard
    # deviations at the peak, and every explicit call may be connected at once.
    peak = connected * 1.1 + 4 * math.sqrt(connected) + work.explicit_calls
    window_ms = _window_ms(calls, work.duration_ms)
    window = min(sum(s.peak for s in work.sources) * window_ms / MS_PER_HOUR, calls, WINDOW_CALLS)
    blocks = [_calls_per_draw(s.peak) for s in work.sources]
    memory = (
        BASE_BYTES
        + work.users * USER_BYTES
        + peak * CONNECTED_CALL_BYTES
        + window * WINDOW_CALL_BYTES
        + sum(blocks) * DRAWN_CALL_BYTES
        + max(blocks, default=0) * DRAW_BYTES
        + work.explicit_calls * EXPLICIT_CALL_BYTES
        + work.orgs * ORG_BYTES
        + len(work.sources) * SOURCE_BYTES
    )
    return WorkEstimate(
        users=work.users,
        calls=calls,
        peak_connected=peak,
        window_calls=window,
        memory_bytes=memory,
        disk_bytes=calls * CDR_BYTES,
        run_seconds=calls / CALLS_PER_SECOND + work.duration_ms / window_ms * WINDOW_SECONDS,
    )


def _window_ms(calls: float, duration_ms: int) -> float:
    """Length of the run's windows (switch.virtual_window_ms)."""
    if calls <= 0:
        return LONGEST_WINDOW_MS
    return min(LONGEST_WINDOW_MS, max(WINDOW_MS, duration_ms * WINDOW_TARGET_CALLS / calls))


def _calls_per_draw(calls_per_hour: float) -> float:
    """Expected calls of one draw block of a source (the blocks of simulator.traffic's flat
    sources, at its busiest rate: a profile's blocks hold no more calls)."""
    per_cell = calls_per_hour * GRID_MS / MS_PER_HOUR
    busy = CALLS_PER_DRAW / per_cell
    if busy <= MAX_CELLS_PER_DRAW:
        return per_cell * max(1, math.ceil(busy))
    quiet = math.ceil(min(QUIET_CALLS_PER_DRAW / per_cell, MAX_FLAT_CELLS_PER_DRAW))  # finite at 1e-306
    return per_cell * max(MAX_CELLS_PER_DRAW, quiet)


def _connected(source: Source, duration_ms: int) -> float:
    """Little's law, L = arrival rate x mean holding time, at the busiest hour's rate (a profile
    peaks there); no call is older than the run."""
    holding_h = min(source.holding_mean_ms, duration_ms) / MS_PER_HOUR
    return source.peak * holding_h


def refusals(work: Workload, machine: Machine) -> list[tuple[str, str]]:
    """(place, problem) for each limit of `machine` the run would exceed; [] when it fits.

    The place is the field that asks for most of the exceeded resource, so that the user
    knows what to lower.
    """
    found: list[tuple[str, str]] = []
    if not machine.runs_traffic:
        work = replace(work, sources=(), explicit_calls=0)
    est = estimate(work)
    force = f"(--force or {FORCE_ENV}=1 to run anyway)"
    if machine.memory_bytes is not None and est.memory_bytes > machine.memory_bytes * MEMORY_SHARE:
        place, cause = _memory_cause(work, est)
        found.append((place, f"{cause}: ~{_bytes(est.memory_bytes)} of memory, more than "
                             f"{MEMORY_SHARE:.0%} of this machine's "
                             f"{_bytes(machine.memory_bytes)} available {force}"))
    if machine.disk_bytes is not None and est.disk_bytes > machine.disk_bytes * DISK_SHARE:
        found.append((_calls_place(work, est),
                      f"~{_count(est.calls)} calls write ~{_bytes(est.disk_bytes)} of CDRs, more "
                      f"than {DISK_SHARE:.0%} of the {_bytes(machine.disk_bytes)} free at "
                      f"{machine.disk_path} {force}"))
    return found


def warnings(work: Workload) -> list[tuple[str, str]]:
    """(place, message) for a run that fits but would take very long."""
    est = estimate(work)
    # Stepping through windows is at most minutes (100 years): a long run is many calls.
    if est.run_seconds <= LONG_RUN_S or not work.sources:
        return []
    return [(_rate_place(_busiest(work)),
             f"~{_count(est.calls)} calls take {_seconds(est.run_seconds)} to run at "
             f"~{CALLS_PER_SECOND:,} calls/s")]


def _memory_cause(work: Workload, est: WorkEstimate) -> tuple[str, str]:
    """The field that asks for most of the memory, and what it asks for."""
    users = work.users * USER_BYTES
    calls = est.peak_connected * CONNECTED_CALL_BYTES + est.window_calls * WINDOW_CALL_BYTES
    drawn = sum(_calls_per_draw(s.peak) for s in work.sources)
    if drawn * DRAWN_CALL_BYTES >= max(calls, users):
        return "traffic", (f"{len(work.sources):,} traffic sources each draw their calls in "
                           f"blocks, ~{_count(drawn)} calls held ahead in all")
    if work.sources and calls >= users:
        busiest = _busiest(work)
        return (
            _rate_place(busiest),
            f"{_count(busiest.peak)} calls/h held "
            f"{format_duration(busiest.holding_mean_ms)} on average over "
            f"{format_duration(work.duration_ms)} is ~{_count(est.calls)} calls, "
            f"~{_count(est.peak_connected)} connected at peak",
        )
    return work.biggest_users or "orgs", f"{work.users:,} users in all"


def _calls_place(work: Workload, est: WorkEstimate) -> str:
    """The field that asks for most of the calls: the busiest source, or the explicit calls."""
    if work.sources and est.calls - work.explicit_calls >= work.explicit_calls:
        return _rate_place(_busiest(work))
    return "calls"


def _busiest(work: Workload) -> Source:
    return max(work.sources, key=lambda s: _connected(s, work.duration_ms) + s.calls_per_hour)


def _rate_place(source: Source) -> str:
    return f"{source.place}.{source.rate_key}"


def this_machine(out_dir: str | os.PathLike[str] | None = None) -> Machine:
    """Available memory (/proc/meminfo's MemAvailable, else free physical pages, and no more
    than a cgroup v2 limit leaves), and the free space of the file system `out_dir` would be on
    (its nearest existing ancestor)."""
    disk, where = None, ""
    if out_dir is not None:
        path = Path(out_dir).absolute()
        while not path.exists() and path != path.parent:
            path = path.parent
        try:
            disk, where = shutil.disk_usage(path).free, f"{out_dir}"
        except OSError:
            pass
    return Machine(memory_bytes=available_memory(), disk_bytes=disk, disk_path=where)


def available_memory() -> int | None:
    """The smaller of the system's and this container's (cgroup v2) memory still free."""
    found = [m for m in (_system_memory(), _cgroup_memory()) if m is not None]
    return min(found) if found else None


def _cgroup_memory() -> int | None:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        return max(int(limit) - int(used), 0)
    except (OSError, ValueError):
        return None


def _system_memory() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def forced(flag: bool) -> bool:
    """--force, or CALLSIM_FORCE set to anything but "" or "0": skip the machine's limits."""
    return flag or os.environ.get(FORCE_ENV, "") not in ("", "0")


def _count(n: float) -> str:
    """1234 -> "1,234"; 2.4e13 -> "2.4e13" (past a billion, digits stop being readable)."""
    if n < 1e9:
        return f"{round(n):,}"
    mantissa, exponent = f"{n:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _seconds(s: float) -> str:
    for unit, size in (("years", 365 * 86_400), ("days", 86_400), ("h", 3_600), ("min", 60)):
        if s >= size:
            return f"~{s / size:.1f} {unit}"
    return f"~{s:.0f} s" if s >= 1 else "under 1 s"
