"""A run's memory follows its window, not its total: windows are cut by arrivals, and the
writer's queue is bounded in CDR rows, without changing a byte of the outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trio

from rating_core import Step
from rating_core import CDR_DTYPES, CdrBatch
from simulator.run import RunOptions, _StepSender, run_scenario
from simulator.scenario import parse_scenario
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
                         observers=[lambda report: arrivals.append(report.arrivals)])
    trio.run(run_scenario, parse_scenario(BUSY), options)
    return arrivals


def test_windows_hold_at_most_max_window_calls_and_the_outputs_do_not_change(tmp_path: Path) -> None:
    whole = _run(tmp_path / "whole", max_window_calls=10**9)
    cut = _run(tmp_path / "cut", max_window_calls=1_000)
    assert len(whole) == 2 and whole[0] > 15_000  # one window of 20 minutes, then the end
    assert max(cut) <= 1_000 and len(cut) > 15
    for name in ("cdrs.csv", "cdrs.msgpack", "events.jsonl"):
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()


def _step(rows: int) -> Step:
    return Step(CdrBatch(*(np.zeros(rows, dtype=dtype) for dtype in CDR_DTYPES)))


async def test_the_switch_waits_while_the_writer_has_max_rows_queued(autojump_clock) -> None:
    channel, receive = trio.open_memory_channel[Step](64)
    send = _StepSender(channel, max_rows=10)
    await send.send(first := _step(6))
    await send.send(second := _step(6))  # 6 rows queued: room for more
    with trio.move_on_after(60) as waited:
        await send.send(_step(1))  # 12 rows queued: held back, however long
    assert waited.cancelled_caught
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send.send, _step(1))
        await trio.sleep(1)
        assert receive.statistics().current_buffer_used == 2
        send.written([first, second])  # the writer is done with them
    assert receive.statistics().current_buffer_used == 3
