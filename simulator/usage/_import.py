"""`import_usage`: usage files in, the model a scenario is written from out."""

from __future__ import annotations

import os
import zipfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ..scenario import estimate
from ._fit import Period
from ._model import ImportedModel, build_model, data_period
from ._problems import UsageError
from ._rows import UsageCalls, check_rows
from ._sources import read_source

#: Bytes of memory per byte of input, from `/usr/bin/time -f %M callsim import --no-report`
#: less ~150 MB of code: 6.7 for a 106 MB CSV of 1,007,758 short rows, 3.3 for a 254 MB one of
#: 863,276 rows written by `--cdr-format teams`, 2.5 for 53 MB of compact Graph JSON (100,709
#: rows), rounded up: the text columns and the typed ones beside them, JSON as Python objects.
MEMORY_PER_CSV_BYTE = 8
MEMORY_PER_JSON_BYTE = 6
BASE_MEMORY = 200 << 20  # Python, polars, numpy and matplotlib loaded


def import_usage(paths: Sequence[Path], *, utc_offset_min: int | None = None, org: str | None = None,
                 force: bool = False) -> ImportedModel:
    """Read, check and fit usage exports (CSV, zip, Graph JSON; several files are one import).

    `utc_offset_min`: the tenant's local clock, minutes east of UTC (None: inferred from the
    Start Times, else UTC); `org`: the org id (None: from the UPNs' domain); `force`: read
    even when the files look too large for this machine's memory.
    Raises `UsageError` for an export that cannot be imported.
    """
    if not force:
        refuse_too_large(paths)
    sources = [read_source(Path(path)) for path in paths]
    calls = check_rows(sources)
    return build_model(calls, choose_period(calls, utc_offset_min), org)


def choose_period(calls: UsageCalls, utc_offset_min: int | None) -> Period:
    """parameters.json's period (the union when several files give one), else the calls'
    days on the local clock; the local clock from the option, else the Start Times."""
    if utc_offset_min is not None:
        offset, said = utc_offset_min, "--utc-offset"
    else:
        written = Counter(calls.frame["offset_min"].to_list())
        offset = min(written, key=lambda o: (-written[o], o))
        said = ("the offset most Start Times are written with" if offset else
                "most Start Times are written in UTC and no --utc-offset was given: check")
    periods = [source.period for source in calls.sources if source.period is not None]
    if periods:
        start = min(p[0] for p in periods)
        end = max(p[1] for p in periods)
        return Period(int(start.timestamp() * 1000), int(end.timestamp() * 1000), offset,
                      "parameters.json", said)
    first, last = data_period(calls, offset)
    return Period(first, last, offset, "the calls: local midnight before the first to after the last", said)


def refuse_too_large(paths: Sequence[Path], available: int | None = None) -> None:
    """Raise `UsageError` when reading `paths` would take more than 80% of `available` bytes
    of memory (default: this machine's, as `callsim run` weighs a scenario; --force reads anyway)."""
    available = estimate.available_memory() if available is None else available
    if available is None:
        return
    needed = BASE_MEMORY
    largest, largest_size = None, -1
    for path in paths:
        size = _input_bytes(Path(path))
        needed += size * (MEMORY_PER_JSON_BYTE if _is_json(Path(path)) else MEMORY_PER_CSV_BYTE)
        if size > largest_size:
            largest, largest_size = path, size
    if needed > 0.8 * available:
        raise UsageError(str(largest), f"~{needed / 2**30:.1f} GiB of memory to import, more than 80% of "
                                       f"this machine's {available / 2**30:.1f} GiB available "
                                       "(--force or CALLSIM_FORCE=1 to import anyway)")


def _input_bytes(path: Path) -> int:
    """The bytes that will be parsed: a zip's members uncompressed."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return sum(info.file_size for info in archive.infolist())
        return os.stat(path).st_size
    except (OSError, zipfile.BadZipFile):
        return 0  # read_source names the problem


def _is_json(path: Path) -> bool:
    try:
        with open(path, "rb") as stream:
            return stream.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"[")
    except OSError:
        return False
