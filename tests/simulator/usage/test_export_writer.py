"""`--cdr-format teams`: the Teams PSTN usage export's bytes, from CDR batches and from a run."""

from __future__ import annotations

import csv
import errno
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from simulator.outputs import CdrWorkers, CdrWriter
from simulator.usage import EXPORT_COLUMNS, EXPORT_HEADER, TeamsExport, charge_text
from simulator.usage._export_writer import _SALT_CALL_ID, _SALT_OBJECT_ID, _SALT_USAGE_ID, ExportUser, guids

from ..outputs.test_outputs import ROWS, START, TABLES, make_batch, random_batch

HERE = Path(__file__).parent
REPO = HERE.parents[2]

# the users of TABLES: alice and 'bob "the builder"' of contoso (US), carol of "fab,rikam" (GB)
USERS = (
    ExportUser(0, "alice", "US", frozenset({"phone_system", "domestic_calling_plan", "communications_credits"})),
    ExportUser(0, 'bob "the builder"', "US", frozenset({"e5", "phone_system", "audio_conferencing"})),
    ExportUser(1, "carol", "GB", frozenset({"phone_system", "international_calling_plan"})),
)
# one more call: bob's dial-out to the UK from the dial-out pool, half a cent of credits
ROWS_PLUS = [*ROWS[:-1], (8, 0, 1, 3, 0, 442071234567, 1, 1, 200_000, 260_000, 60, 1, 60, 5_000, 1), ROWS[-1]]


def export_of(path: Path, seed: int = 7) -> TeamsExport:
    return TeamsExport(path, TABLES, START, "USD", seed, USERS, ("contoso.onmicrosoft.com", "fab,rikam.example"))


def write_export(path: Path, batches, seed: int = 7, workers: CdrWorkers | None = None) -> bytes:
    with CdrWriter(path.parent, TABLES, START, "USD", write_msgpack=False, buffer_rows=1,
                   workers=workers or False, extra_files=[export_of(path, seed)]) as writer:
        for batch in batches:
            writer.write(batch)
    return path.read_bytes()


def test_rows_byte_for_byte(tmp_path: Path) -> None:
    """Connected calls only, in cdrs.csv's order; every column as the vocabulary says, names
    with commas and quotes quoted (RFC 4180), UTF-8 with its mark, CRLF."""
    written = write_export(tmp_path / "PSTN.calls.t.csv", [make_batch(ROWS_PLUS)])
    assert written == (HERE / "expected_export.csv").read_bytes()


def test_the_bytes_do_not_depend_on_batching_or_on_the_worker(tmp_path: Path) -> None:
    batch = random_batch(40_000, seed=3)
    whole = write_export(tmp_path / "a" / "x.csv", [batch])
    pieces = write_export(tmp_path / "b" / "x.csv", [batch.take(slice(i, i + 7_000)) for i in range(0, 40_000, 7_000)])
    worker = write_export(tmp_path / "c" / "x.csv", [batch], workers=CdrWorkers(msgpack=False, extra=True))
    beside_csv = write_export(tmp_path / "d" / "x.csv", [batch], workers=CdrWorkers(msgpack=False))
    assert whole == pieces == worker == beside_csv
    assert whole.startswith(EXPORT_HEADER)


def test_a_spreadsheet_reader_sees_the_columns_and_one_row_per_connected_call(tmp_path: Path) -> None:
    batch = random_batch(5_000, seed=4)
    write_export(tmp_path / "x.csv", [batch])
    with open(tmp_path / "x.csv", newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(EXPORT_COLUMNS)
    connected = np.isin(batch.end_reason, (0, 1, 5))
    assert len(rows) == int(connected.sum())
    seconds = (batch.end_ms - batch.start_ms)[connected]
    assert [int(r["Duration Seconds"]) for r in rows] == ((seconds + 500) // 1000).tolist()
    assert len({r["UsageId"] for r in rows}) == len(rows)


def test_empty_run_leaves_the_header(tmp_path: Path) -> None:
    assert write_export(tmp_path / "x.csv", []) == EXPORT_HEADER


def test_the_seed_changes_the_guids_and_only_them(tmp_path: Path) -> None:
    a = write_export(tmp_path / "a.csv", [make_batch(ROWS)], seed=7).decode().splitlines()
    b = write_export(tmp_path / "b.csv", [make_batch(ROWS)], seed=8).decode().splitlines()
    assert a[0] == b[0]
    for row_a, row_b in zip(a[1:], b[1:]):
        assert row_a[:36] != row_b[:36] and row_a[74:].split(",", 3)[-1] == row_b[74:].split(",", 3)[-1]


def _reference_guid(seed: int, salt: int, value: int) -> str:
    """SplitMix64 in Python integers, laid out by the uuid module as a version-4 GUID."""
    def mix(x: int) -> int:
        x &= (1 << 64) - 1
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
        return x ^ (x >> 31)

    key = mix(seed * 0x9E3779B97F4A7C15 + salt)
    high = mix(value + key)
    low = mix(high ^ mix(key ^ 0x632BE59BD9B4E019))
    return str(uuid.UUID(bytes=high.to_bytes(8, "big") + low.to_bytes(8, "big"), version=4))


@pytest.mark.parametrize("seed", [0, 7, 2**63 - 1])
@pytest.mark.parametrize("salt", [_SALT_USAGE_ID, _SALT_CALL_ID, _SALT_OBJECT_ID])
def test_guids_are_splitmix_laid_out_as_version_4(seed: int, salt: int) -> None:
    ids = np.array([0, 1, 2, 3, 10**9, 2**62], dtype=np.int64)
    got = [bytes(row).decode() for row in guids(seed, salt, ids)]
    assert got == [_reference_guid(seed, salt, int(i)) for i in ids]
    assert len(set(got)) == len(got)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simulator", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_callsim_run_writes_it_beside_cdrs_csv_and_twice_the_same(tmp_path: Path) -> None:
    scenario = REPO / "scenarios" / "quickstart.toml"
    for out in ("a", "b"):
        done = run("run", str(scenario), "--out", str(tmp_path / out), "--quiet", "--cdr-format", "teams", cwd=REPO)
        assert done.returncode == 0, done.stderr
    export = tmp_path / "a" / "PSTN.calls.quickstart.csv"
    assert export.read_bytes() == (tmp_path / "b" / "PSTN.calls.quickstart.csv").read_bytes()
    with open(tmp_path / "a" / "cdrs.csv", newline="") as f:
        cdrs = list(csv.DictReader(f))
    with open(export, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    connected = [c for c in cdrs if c["end_reason"] in ("hangup", "dropped_balance_exhausted", "simulation_end")]
    assert len(rows) == len(connected) > 0
    assert [r["Destination Number"] for r in rows] == [c["to_number"] for c in connected]
    assert [r["Charge"] for r in rows] == [charge_text(int(Decimal(c["credits_charged"]) * 10**6)) for c in connected]
    plain = run("run", str(scenario), "--out", str(tmp_path / "c"), "--quiet", cwd=REPO)
    assert plain.returncode == 0 and not list((tmp_path / "c").glob("PSTN.calls.*"))
    assert (tmp_path / "c" / "cdrs.csv").read_bytes() == (tmp_path / "a" / "cdrs.csv").read_bytes()


def test_callsim_serve_writes_the_same_export_from_its_files_process(tmp_path: Path) -> None:
    from rating_core import Step
    from simulator.server._files import ServerFiles, ServerFilesProcess

    batches = [random_batch(1_500, seed=s) for s in range(4)]
    exports = {}
    for name, kind in (("thread", ServerFiles), ("process", ServerFilesProcess)):
        files = kind(tmp_path / name, TABLES, START, "USD", "demo", 7, False, [export_of(tmp_path / name / "x.csv")])
        for batch in batches:
            files.write(Step(batch, [], 0), True)
        files.close([0, 0], [0, 0, 0], True, 0)
        exports[name] = (tmp_path / name / "x.csv").read_bytes()
    assert exports["thread"] == exports["process"] == write_export(tmp_path / "run" / "x.csv", batches)


def test_a_full_disk_under_the_export_is_the_runs_write_error(tmp_path: Path) -> None:
    """Its worker's OSError reaches the writer's close, as cdrs.csv's would (the run: exit 1)."""
    from ..outputs.test_cdr_workers import failure_of

    (tmp_path / "x.csv").symlink_to("/dev/full")
    failure = failure_of(lambda: write_export(tmp_path / "x.csv", [random_batch(5_000, seed=1)],
                                              workers=CdrWorkers(msgpack=False, extra=True)))
    assert isinstance(failure, OSError) and failure.errno == errno.ENOSPC
