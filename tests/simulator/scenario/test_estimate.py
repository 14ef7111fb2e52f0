"""The work estimate (simulator/scenario/estimate.py) and the refusal of what a machine cannot run."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from simulator import cli
from simulator.scenario import estimate
from simulator.scenario.estimate import Machine, Source, Workload
from simulator.scenario import ScenarioError, parse_scenario
from tests.scenarios import scenario_toml, staff

GIB = 1 << 30
DAY_MS = 86_400_000


def scenario_text(calls_per_hour: float = 120, holding: str = "3m", duration: str = "1d",
                  count: int = 50, groups: int = 1) -> str:
    """acme's `groups` groups of `count` US users, one domestic traffic source."""
    return scenario_toml(
        name="big", duration=duration,
        users=[staff(count, ("phone_system", "domestic_calling_plan"), group=f"g{i}") for i in range(groups)],
        traffic=[{"type": "domestic", "calls_per_hour": calls_per_hour, "holding_mean": holding}],
    )


def test_calls_peak_and_sizes_follow_rates_holding_and_users() -> None:
    work = Workload(
        duration_ms=DAY_MS,
        users=1_000,
        biggest_users="orgs[0].users[0].count",
        sources=(Source("traffic[0]", 3_600.0, 60_000), Source("traffic[1]", 360.0, 600_000)),
        explicit_calls=4,
    )
    est = estimate.estimate(work)
    assert est.calls == 3_960 * 24 + 4
    connected = 3_600 / 60 + 360 / 6  # Little's law: 60 + 60 calls connected on average
    assert est.peak_connected == pytest.approx(connected * 1.1 + 4 * connected**0.5 + 4)
    window_calls = 3_960 * 24 * estimate.WINDOW_TARGET_CALLS / est.calls  # ~4.1 h of arrivals
    assert est.window_calls == pytest.approx(window_calls)
    assert est.memory_bytes == pytest.approx(
        estimate.BASE_BYTES + 1_000 * estimate.USER_BYTES
        + est.peak_connected * estimate.CONNECTED_CALL_BYTES
        + window_calls * estimate.WINDOW_CALL_BYTES + 4 * estimate.EXPLICIT_CALL_BYTES
        # draw blocks: 3,600/h draws 274 one-minute cells of 60 calls ahead (the first block of
        # whole cells past 16,384 calls), 360/h a day's 8,640; the bigger block is being drawn
        + (16_440 + 8_640) * estimate.DRAWN_CALL_BYTES + 16_440 * estimate.DRAW_BYTES
        + 2 * estimate.SOURCE_BYTES
    )
    assert est.disk_bytes == est.calls * estimate.CDR_BYTES


def test_a_window_holds_at_most_its_cap_however_high_the_rate() -> None:
    work = Workload(DAY_MS, 1, "", (Source("traffic[0]", 1e9, 1_000),), 0)
    assert estimate.estimate(work).window_calls == estimate.WINDOW_CALLS


def test_the_estimate_sizes_windows_and_draw_blocks_as_the_run_does() -> None:
    from simulator import switch, traffic

    assert estimate.WINDOW_CALLS == switch.MAX_WINDOW_CALLS
    assert estimate.WINDOW_TARGET_CALLS == switch.WINDOW_TARGET_CALLS
    assert (estimate.WINDOW_MS, estimate.LONGEST_WINDOW_MS) == (switch.VIRTUAL_WINDOW_MS,
                                                                switch.MAX_VIRTUAL_WINDOW_MS)
    assert estimate.CALLS_PER_DRAW == traffic.TARGET_CALLS_PER_DRAW
    assert estimate.GRID_MS == traffic.GRID_MS
    assert estimate.MAX_CELLS_PER_DRAW == traffic.MAX_CELLS_PER_DRAW
    assert estimate.QUIET_CALLS_PER_DRAW == traffic.QUIET_CALLS_PER_DRAW
    assert estimate.MAX_FLAT_CELLS_PER_DRAW == traffic.MAX_FLAT_CELLS_PER_DRAW
    from simulator.traffic._draws import cells_per_draw

    for rate in (1e9, 1e6, 983_041.0, 600.0, 10.7, 10.0, 1.0, 0.01, 1e-6):  # each kind of block
        assert estimate._calls_per_draw(rate) == pytest.approx(cells_per_draw(rate) * rate / 60)


def test_many_sources_drawing_ahead_are_refused_naming_the_traffic() -> None:
    sources = tuple(Source(f"traffic[{i}]", 1_000.0, 60_000) for i in range(20_000))
    work = Workload(DAY_MS, 20_000, "orgs[0].users[0]", sources, 0)
    (refusal,) = estimate.refusals(work, Machine(memory_bytes=16 * GIB))
    place, problem = refusal
    assert place == "traffic"
    assert problem.startswith("20,000 traffic sources each draw their calls in blocks, ~328,000,000 calls "
                              "held ahead in all: ~20.0 GiB of memory")


def test_calls_are_connected_no_longer_than_the_run() -> None:
    work = Workload(3_600_000, 1, "", (Source("traffic[0]", 1_000.0, 100 * DAY_MS),), 0)
    assert estimate.estimate(work).peak_connected < 2_000  # 1,000 calls in the hour, not 2.4 M


def test_a_rate_this_machine_cannot_hold_is_refused_naming_the_field() -> None:
    text = scenario_text(calls_per_hour=1e9, holding="3m")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "big.toml", Machine(memory_bytes=16 * GIB))
    (problem,) = info.value.problems
    assert problem.located() == (
        "big.toml:27: traffic[0].calls_per_hour: 1e9 calls/h held 3m on average over 1d is "
        "~2.4e10 calls, ~55,028,284 connected at peak: ~24.7 GiB of memory, more than 80% of "
        "this machine's 16.0 GiB available (--force or CALLSIM_FORCE=1 to run anyway)"
    )


def test_the_same_rate_loads_without_a_machine_to_weigh_it_against() -> None:
    scenario = parse_scenario(scenario_text(calls_per_hour=1e9))
    assert scenario.workload is not None and scenario.workload.users == 50
    (warning,) = scenario.warnings
    assert str(warning) == (
        "traffic[0].calls_per_hour: ~2.4e10 calls take ~1.4 days to run at ~200,000 calls/s"
    )


def test_users_this_machine_cannot_hold_are_refused_at_the_biggest_group() -> None:
    text = scenario_text(count=1_000, groups=2).replace("count = 1000\n", "count = 900000\n", 1)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "big.toml", Machine(memory_bytes=512 << 20))
    (problem,) = info.value.problems
    assert str(problem).startswith(
        "orgs[0].users[0].count: 901,000 users in all: ~617.9 MiB of memory, more than 80% of "
        "this machine's 512.0 MiB available"
    )


def test_output_larger_than_the_free_disk_is_refused() -> None:
    text = scenario_text(calls_per_hour=1e6, holding="1s", duration="30d")
    machine = Machine(memory_bytes=64 * GIB, disk_bytes=10 * GIB, disk_path="out")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "big.toml", machine)
    assert [str(p) for p in info.value.problems] == [
        "traffic[0].calls_per_hour: ~720,000,000 calls write ~268.2 GiB of CDRs, more than 90% "
        "of the 10.0 GiB free at out (--force or CALLSIM_FORCE=1 to run anyway)"
    ]


def test_ten_million_users_are_refused_before_any_group_is_expanded() -> None:
    text = scenario_text(count=1_000_000, groups=10)
    tracemalloc.start()
    try:
        with pytest.raises(ScenarioError) as info:
            parse_scenario(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [str(p) for p in info.value.problems] == [
        "orgs[0].users[2].count: takes the users past the limit of 2,000,000 users in all "
        "(the file has 10,000,000)"
    ]
    assert peak < 20 << 20  # one group expanded would be hundreds of MB


def test_this_machine_reports_memory_and_the_disk_under_a_missing_out_dir(tmp_path) -> None:
    machine = estimate.this_machine(tmp_path / "not" / "yet")
    assert machine.memory_bytes is not None and machine.memory_bytes > 0
    assert machine.disk_bytes is not None and machine.disk_bytes > 0


# -- the command line ------------------------------------------------------------------------

# At 10^9 calls/h held an hour on average, a billion calls are connected at once: hundreds of
# GB, more than any machine the tests run on.
HUGE = scenario_text(calls_per_hour=1e9, holding="1h", duration="30d")


def test_validate_prints_the_estimate(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.toml"
    path.write_text(scenario_text())
    assert cli.main(["validate", str(path)]) == cli.EXIT_OK
    assert capsys.readouterr().out.splitlines()[1] == (
        "  estimate: ~2,880 calls, 50 users, ~16 connected at peak; ~102.4 MiB of memory, "
        "~1.1 MiB of output, under 1 s to run"
    )


@pytest.mark.parametrize("command", ["validate", "run", "check"])
def test_what_this_machine_cannot_run_exits_2_with_one_line(tmp_path, capsys, command) -> None:
    path, out = tmp_path / "s.toml", tmp_path / "out"
    path.write_text(HUGE)
    argv = [command, str(path)] + (["--out", str(out)] if command != "validate" else [])
    assert cli.main(argv) == cli.EXIT_USAGE
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"{path}:27: traffic[0].calls_per_hour: 1e9 calls/h held 1h ")
    if command != "validate":  # with an --out to weigh it against, the output is too big too
        assert lines[1].startswith(f"{path}:27: traffic[0].calls_per_hour: ~7.2e11 calls write ")
    assert len(lines) == (1 if command == "validate" else 2)
    assert all(line.endswith("(--force or CALLSIM_FORCE=1 to run anyway)") for line in lines)
    assert not out.exists()


def test_force_and_its_environment_variable_accept_it(tmp_path, capsys, monkeypatch) -> None:
    path = tmp_path / "s.toml"
    path.write_text(HUGE)
    assert cli.main(["validate", str(path), "--force"]) == cli.EXIT_OK
    err = capsys.readouterr().err.splitlines()
    assert err == [f"warning: {path}:27: traffic[0].calls_per_hour: ~7.2e11 calls take "
                   "~41.7 days to run at ~200,000 calls/s"]
    monkeypatch.setenv("CALLSIM_FORCE", "1")
    assert cli.main(["validate", str(path)]) == cli.EXIT_OK


def test_warnings_go_to_stderr_from_validate_and_run(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.toml"
    path.write_text(scenario_text().replace('type = "domestic"', 'type = "domestic"\n'
                                            'destinations = ["999"]'))
    expected = (f'warning: {path}:27: traffic[0].destinations[0]: no [[tariff]] prefix routes '
                '"999": its calls are all unroutable')
    assert cli.main(["validate", str(path)]) == cli.EXIT_OK
    assert capsys.readouterr().err.splitlines() == [expected]
    assert cli.main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == cli.EXIT_OK
    assert capsys.readouterr().err.splitlines()[0] == expected


def test_serve_weighs_only_the_users(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(estimate, "this_machine", lambda out=None: Machine(memory_bytes=512 << 20))
    path = tmp_path / "s.toml"
    path.write_text(HUGE)  # its traffic is ignored by `callsim serve`
    assert cli.load_checked(path, force=False, serving=True).workload.users == 50
    path.write_text(scenario_text(count=900_000))
    with pytest.raises(ScenarioError) as info:
        cli.load_checked(path, force=False, serving=True)
    (problem,) = info.value.problems
    assert problem.located().startswith(f"{path}:20: orgs[0].users[0].count: 900,000 users in all")



def test_explicit_calls_alone_are_named_when_their_output_is_too_big() -> None:
    work = Workload(DAY_MS, 1, "orgs[0].users[0]", (), 30_000)
    machine = Machine(memory_bytes=64 * GIB, disk_bytes=10 << 20, disk_path="out")
    assert estimate.refusals(work, machine) == [
        ("calls", "~30,000 calls write ~11.4 MiB of CDRs, more than 90% of the 10.0 MiB free at "
                  "out (--force or CALLSIM_FORCE=1 to run anyway)")
    ]
