"""A run's memory follows its window, not its total: windows are cut by arrivals, and the
writer's queue is bounded in CDR rows, without changing a byte of the outputs.  A light
scenario runs in windows sized by its expected arrivals, again without changing a byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trio
import trio.testing

from rating_core import Step
from rating_core import CDR_DTYPES, CdrBatch
from rating_core import RatingEngine
from simulator.run import FIRST_WINDOW_PARTS, SHORTEST_WINDOW_MS, RunOptions, _StepQueue, _WindowRows, run_scenario
from simulator.scenario import parse_scenario
from simulator.switch import MAX_VIRTUAL_WINDOW_MS, VIRTUAL_WINDOW_MS, WindowReport, virtual_window_ms
from tests.scenarios import scenario_toml, staff

BUSY = scenario_toml(
    name="busy", seed=3, duration="20m",
    credits={"initial": "50.00", "auto_recharge": True, "recharge_below": "10.00", "recharge_amount": "20.00"},
    users=[staff(50, ["phone_system", "communications_credits"])],
    traffic=[{"type": "domestic", "calls_per_hour": 60000, "holding_mean": "2m"}],
)


def _run(out: Path, max_window_calls: int) -> list[int]:
    arrivals: list[int] = []
    options = RunOptions(out_dir=out, handle_sigint=False, max_window_calls=max_window_calls,
                         max_window_rows=None, observers=[lambda report: arrivals.append(report.arrivals)])
    trio.run(run_scenario, parse_scenario(BUSY), options)
    return arrivals


def test_windows_hold_at_most_max_window_calls_and_the_outputs_do_not_change(tmp_path: Path) -> None:
    whole = _run(tmp_path / "whole", max_window_calls=10**9)
    cut = _run(tmp_path / "cut", max_window_calls=1_000)
    assert len(whole) == 2 and whole[0] > 15_000  # one window of 20 minutes, then the end
    assert max(cut) <= 1_000 and len(cut) > 15
    for name in ("cdrs.csv", "cdrs.msgpack", "events.jsonl"):
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()


# 30 calls an hour for 40 days across a month's end: refills, recharges whenever a charge
# leaves less than 1.00, and a recharge that fails once the card has expired.
LIGHT = scenario_toml(
    name="light", seed=5, start="2026-11-10T00:00:00Z", duration="40d",
    credits={"initial": "1.00", "auto_recharge": True, "recharge_below": "1.00",
             "recharge_amount": "0.05", "card_expires": "2026-12-10"},
    users=[staff(3, ["phone_system", "communications_credits", "domestic_calling_plan"])],
    traffic=[{"type": "domestic", "calls_per_hour": 30, "holding_mean": "3m"}],
)


def _run_light(out: Path, window_ms: int | None) -> list[tuple[int, int]]:
    windows: list[tuple[int, int]] = []
    options = RunOptions(out_dir=out, handle_sigint=False, virtual_window_ms=window_ms,
                         observers=[lambda report: windows.append((report.t0_ms, report.t1_ms))])
    trio.run(run_scenario, parse_scenario(LIGHT), options)
    return windows


def test_a_light_scenario_runs_in_long_windows_and_the_outputs_do_not_change(tmp_path: Path,
                                                                             monkeypatch) -> None:
    inner: list[int] = []  # the rating core's own windows
    window = RatingEngine._window
    monkeypatch.setattr(RatingEngine, "_window", lambda self, t0, t1, *rest: (inner.append(t1 - t0), window(self, t0, t1, *rest))[1])
    hourly = _run_light(tmp_path / "hourly", VIRTUAL_WINDOW_MS)
    hourly_inner, inner[:] = len(inner), []
    sized = _run_light(tmp_path / "sized", None)
    # 40 days in weeks, then the end; the first windows a 16th of a week, doubled up to it
    assert FIRST_WINDOW_PARTS == 16 and len(hourly) > 40 * 24 and len(sized) <= 7 + 4
    assert max(t1 - t0 for t0, t1 in sized) == MAX_VIRTUAL_WINDOW_MS
    assert hourly_inner >= 40 * 24 and len(inner) < hourly_inner / 4  # ~2 calls connected: long spans
    for name in ("cdrs.csv", "cdrs.msgpack", "events.jsonl"):
        assert (tmp_path / "sized" / name).read_bytes() == (tmp_path / "hourly" / name).read_bytes()
    events = (tmp_path / "sized" / "events.jsonl").read_text()
    assert all(kind in events for kind in ("pools_refilled", "recharge_succeeded", "recharge_failed"))


def test_virtual_windows_hold_about_the_target_arrivals_between_an_hour_and_a_week() -> None:
    day = 24 * VIRTUAL_WINDOW_MS
    assert virtual_window_ms(10**7 * 24, day) == VIRTUAL_WINDOW_MS  # busy: cut by calls instead
    assert virtual_window_ms(16_384, 2 * day) == 2 * day  # the target's worth of arrivals
    assert virtual_window_ms(30 * 24 * 367, 367 * day) == MAX_VIRTUAL_WINDOW_MS
    assert virtual_window_ms(0, 367 * day) == MAX_VIRTUAL_WINDOW_MS  # no traffic


def _step(rows: int) -> Step:
    return Step(CdrBatch(*(np.zeros(rows, dtype=dtype) for dtype in CDR_DTYPES)))


def _queued(send: _StepQueue) -> list[Step]:
    """What the writer thread would take, up to the close (then None)."""
    taken = []
    send.write_all(taken.extend)
    return taken


async def test_the_switch_waits_while_the_writer_has_max_rows_queued(autojump_clock) -> None:
    send = _StepQueue(max_rows=10)
    await send.send(first := _step(6))
    await send.send(second := _step(6))  # 6 rows queued: room for more
    with trio.move_on_after(60) as waited:
        await send.send(_step(1))  # 12 rows queued: held back, however long
    assert waited.cancelled_caught
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send.send, third := _step(1))
        await trio.sleep(1)
        assert send._queued == 2  # still held back
        send.written(first)  # the writer is done with it: 6 rows queued, room again
    assert send._queued == 2 and send._rows == 7
    await send.aclose()
    assert _queued(send) == [first, second, third]


async def test_the_switch_waits_while_the_writer_has_max_steps_queued(autojump_clock) -> None:
    send = _StepQueue(max_rows=10, max_steps=3)
    steps = [_step(0) for _ in range(3)]
    for step in steps:
        await send.send(step)
    with trio.move_on_after(60) as waited:
        await send.send(_step(0))  # 3 steps queued, though no rows: held back
    assert waited.cancelled_caught
    send.written(steps[0])
    await send.send(last := _step(0))
    await send.aclose()
    assert _queued(send) == [*steps, last]


async def test_a_sent_step_is_in_the_writer_threads_queue_at_once() -> None:
    """The writer thread must be able to start on a window's output while the switch rates the
    next one, which it does without yielding to Trio: `send` puts the step in the thread's
    queue itself, never leaving it to a task that runs after the next window."""
    send = _StepQueue(max_rows=10)
    await send.send(step := _step(3))
    assert send._steps.get_nowait() is step


async def test_the_writer_thread_reports_each_written_step_to_the_switch() -> None:
    send = _StepQueue(max_rows=10)
    written: list[int] = []
    await send.send(_step(6))
    await send.send(_step(6))
    await send.aclose()
    await trio.to_thread.run_sync(send.write_all, lambda steps: written.append(len(steps[0].cdrs)))
    await trio.testing.wait_all_tasks_blocked()
    assert written == [6, 6] and send._rows == 0 and send._queued == 0


async def test_ledger_events_count_as_rows_the_writer_has_queued(autojump_clock) -> None:
    """An org recharging at every increment has tens of events a call: they are lines to
    write as CDRs are, so they hold the switch back too."""
    from rating_core import EventColumns

    def with_events(n: int) -> Step:
        z = np.zeros(n, dtype=np.int64)
        return Step(_step(0).cdrs, EventColumns(z, z, z.astype(np.int8), z, z, z.astype(np.int8)))

    send = _StepQueue(max_rows=10)
    await send.send(first := with_events(12))
    with trio.move_on_after(60) as waited:
        await send.send(_step(1))  # 12 event lines queued: held back
    assert waited.cancelled_caught
    send.written(first)
    await send.send(_step(1))
    assert send._queued == 1


# an org recharging at almost every increment: ~80 ledger events a call, ~260k in 30 minutes
RECHARGING = scenario_toml(
    name="recharging", seed=4, duration="30m",
    tariffs=[{"prefix": "1", "country": "US", "zone": "A", "per_minute": "0.06", "increment": "1/1"}],
    credits={"initial": "0", "auto_recharge": True, "recharge_below": "5.00", "recharge_amount": "0.001"},
    users=[staff(1, ["phone_system", "domestic_calling_plan", "communications_credits"])],
    traffic=[{"type": "domestic", "calls_per_hour": 6000, "holding_mean": "3m"}],
)


def _run_recharging(out: Path, max_window_rows: int | None) -> list[int]:
    rows: list[int] = []
    options = RunOptions(out_dir=out, handle_sigint=False, max_window_rows=max_window_rows,
                         observers=[lambda r: rows.append(len(r.step.cdrs) + len(r.step.events))])
    trio.run(run_scenario, parse_scenario(RECHARGING), options)
    return rows


def test_windows_are_cut_by_their_rows_and_the_outputs_do_not_change(tmp_path: Path) -> None:
    whole = _run_recharging(tmp_path / "whole", None)
    cut = _run_recharging(tmp_path / "cut", 20_000)
    assert len(whole) == 2 and whole[0] > 250_000  # one window of 30 minutes, then the end
    windows = sorted(cut[:-1])
    # about 20,000 rows a window, but for the one where the recharges began (pool minutes first)
    assert len(cut) > 8 and windows[-2] < 2 * 20_000 and windows[len(windows) // 2] <= 25_000
    for name in ("cdrs.csv", "cdrs.msgpack", "events.jsonl"):
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()


class _FakeSwitch:
    virtual_window_ms = 3_600_000


def _report(t0: int, t1: int, events: int, final: bool = False) -> WindowReport:
    from rating_core import EventColumns

    z = np.zeros(events, dtype=np.int64)
    step = Step(_step(0).cdrs, EventColumns(z, z, z.astype(np.int8), z, z, z.astype(np.int8)))
    return WindowReport(t0, t1, step, 0, 0.0, 0.0, final)


def test_window_rows_shorten_in_proportion_and_lengthen_by_doubling_up_to_the_sized_length() -> None:
    switch = _FakeSwitch()
    sizer = _WindowRows(switch, max_rows=1_000)  # type: ignore[arg-type]
    assert switch.virtual_window_ms == 3_600_000 // FIRST_WINDOW_PARTS
    sizer(_report(0, 200_000, 4_000))  # 4x too many rows: a quarter of the span
    assert switch.virtual_window_ms == 50_000
    sizer(_report(0, 50_000, 500))  # between a quarter and the whole: kept
    assert switch.virtual_window_ms == 50_000
    sizer(_report(0, 50_000, 100))  # under a quarter: doubled
    assert switch.virtual_window_ms == 100_000
    for _ in range(10):
        sizer(_report(0, 100_000, 0))
    assert switch.virtual_window_ms == 3_600_000  # never past the sized length
    sizer(_report(0, 3_600_000, 10**9))
    assert switch.virtual_window_ms == SHORTEST_WINDOW_MS  # however many rows
    sizer(_report(5, 5, 10**9, final=True))  # the end-of-run step: nothing to size
    assert switch.virtual_window_ms == SHORTEST_WINDOW_MS
