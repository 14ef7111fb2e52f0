"""A run's output directory: one run at a time, no stale files, and a sign that it finished.

The promises (docs/outputs.md, "The output directory"):

1. A run owns its directory for its whole life: `OutDir.claim` takes an exclusive `flock` on the
   directory itself and writes the run's pid to DIR/.callsim.running.  A second run into the
   same directory is refused at once (`OutDirBusy`, naming that pid), so two runs never
   interleave their files.  The kernel drops the lock when the process ends, however it ends.
2. Before anything is written, the claim removes what an earlier run left there under callsim's
   own names (`STREAMS`, `REPLACED`, the report's charts) and nothing else, so a run that fails
   never sits beside a previous run's summary.json or report.  It does so only in a directory
   that held a callsim run (`_earlier_run`): a file of the user's that happens to bear one of
   those names is refused (`NotRunOutput`), never deleted.
3. summary.json is written last, to a temporary name then renamed (`_summary.SummaryBuilder.write`),
   and a run that ends, however it ends short of being killed, removes .callsim.running.  So a
   directory without summary.json holds a run that did not finish: still running (the lock is
   held), killed (.callsim.running is left, naming its pid) or failed.  `unfinished` says which,
   in one line, for `callsim report` and `callsim check`; `reading` holds a shared lock while a
   report reads, so no run starts over it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import weakref
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

RUNNING = ".callsim.running"  # the pid of the run that owns the directory, while it does
CDRS_CSV = "cdrs.csv"
CDRS_MSGPACK = "cdrs.msgpack"
EVENTS_JSONL = "events.jsonl"
SUMMARY_JSON = "summary.json"
SUMMARY_PARTIAL = ".summary.json.partial"  # summary.json before its rename
REPORT_HTML = "report.html"
#: Written through while the run goes on: a symbolic link under one of these names is the
#: user's (cdrs.csv on another disk, say) and is written through, not removed.
STREAMS = (CDRS_CSV, CDRS_MSGPACK, EVENTS_JSONL)
#: Replaced whole by a rename when written: removed whatever they are, directories excepted.
REPLACED = (SUMMARY_JSON, SUMMARY_PARTIAL, REPORT_HTML)
REPORT_DIR = "report"
REPORT_CHARTS = ("credit_balance.png", "pool_remaining.png", "active_calls.png", "calls_ended.png")
#: Keys every summary.json of callsim's has (`_summary.SummaryBuilder.finish`): a summary.json
#: with them marks a directory callsim wrote.
SUMMARY_KEYS = frozenset({"scenario", "seed", "complete", "orgs", "total"})

#: What `callsim sweep` writes in its --out directory (charts inline in sweep.html).
SWEEP_CSV = "sweep.csv"
SWEEP_JSON = "sweep.json"
SWEEP_HTML = "sweep.html"
SWEEP_OUTPUTS = (SWEEP_CSV, SWEEP_JSON, SWEEP_HTML)
#: Keys every sweep.json of callsim's has: a sweep.json with them marks a sweep's directory.
SWEEP_KEYS = frozenset({"scenario", "seeds", "points"})

#: flock errors that mean "this filesystem cannot lock", not "someone holds it": run unlocked.
_NO_LOCKING = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class OutDirBusy(Exception):
    """Another process holds the directory's lock; `pid` is the run's, when it wrote it."""

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f"another callsim run (pid {pid})" if pid else "another callsim process"
        super().__init__(f"{path}: in use by {holder}; wait for it to finish or choose another "
                         "directory")
        self.path = path
        self.pid = pid


class NotRunOutput(Exception):
    """`path` holds a file under one of callsim's names that no callsim run wrote."""

    def __init__(self, path: Path, name: str) -> None:
        super().__init__(f"{path}: holds {name}, which no callsim run wrote and a run would "
                         "overwrite; move it or choose another directory")
        self.path = path
        self.name = name


class RunNotFinished(Exception):
    """The directory holds a run that did not finish (or is still running): `path: problem`."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


_held: "weakref.WeakSet[OutDir]" = weakref.WeakSet()


def _close_in_child() -> None:
    # A forked child (a CDR file worker) gets a copy of the lock's descriptor; closing it there
    # leaves the lock to the run, so that it ends with the run, not with the slowest child.
    for claim in list(_held):
        fd, claim._fd = claim._fd, -1  # nothing in the child may use (or truncate) it later
        _held.discard(claim)
        with contextlib.suppress(OSError):
            os.close(fd)


os.register_at_fork(after_in_child=_close_in_child)


class OutDir:
    """An exclusive claim on an output directory, from `claim` until `release` (or `with`)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def claim(cls, path: Path, sweep: bool = False) -> "OutDir":
        """Create `path` if needed, lock it, write this pid, remove the outputs of earlier runs.

        Raises `OutDirBusy` when another process holds it, `NotRunOutput` when it holds a
        file under one of callsim's names but never held a callsim run (nothing is touched
        then, either), and OSError when it cannot be created, locked or cleared.  `sweep`: the
        directory of a `callsim sweep`, whose names are `SWEEP_OUTPUTS` (promises 1-2 alike).
        """
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutDirBusy(path, _running_pid(path)) from None
            except OSError as err:
                if err.errno not in _NO_LOCKING:
                    raise
            if not (_earlier_sweep(path) if sweep else _earlier_run(path)):
                names = SWEEP_OUTPUTS if sweep else _output_names()
                theirs = next((name for name in names if _holds_data(path / name)), None)
                if theirs is not None:
                    raise NotRunOutput(path, theirs)
            (path / RUNNING).write_text(f"{os.getpid()}\n", encoding="ascii")
            if sweep:
                for name in SWEEP_OUTPUTS:
                    _remove(path / name, links_too=True)
            else:
                remove_outputs(path)
        except BaseException:
            os.close(fd)
            raise
        claim = cls(path, fd)
        _held.add(claim)
        return claim

    def release(self) -> None:
        """Mark the run as ended (no .callsim.running) and unlock; safe to call twice."""
        if self._fd < 0:
            return
        _held.discard(self)
        fd, self._fd = self._fd, -1
        try:
            (self.path / RUNNING).unlink(missing_ok=True)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            pass  # closing below unlocks all the same
        finally:
            os.close(fd)

    def __enter__(self) -> "OutDir":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def __del__(self) -> None:  # a claim dropped without `release`: the same, when collected
        try:
            self.release()
        except Exception:  # at interpreter exit the modules may be gone; the kernel unlocks
            pass


def remove_outputs(path: Path) -> None:
    """Remove what a run (and `callsim report`) writes in `path`, and nothing else."""
    for name in REPLACED:
        _remove(path / name, links_too=True)
    for name in STREAMS:
        _remove(path / name, links_too=False)
    charts = path / REPORT_DIR
    if charts.is_dir() and not charts.is_symlink():
        for name in REPORT_CHARTS:
            _remove(charts / name, links_too=True)
        with contextlib.suppress(OSError):  # not empty: the user's files stay, and so does it
            charts.rmdir()


def _output_names() -> list[str]:
    return [*REPLACED, *STREAMS, *(f"{REPORT_DIR}/{chart}" for chart in REPORT_CHARTS)]


def _holds_data(path: Path) -> bool:
    """Whether clearing `path` before a run would lose something: a non-empty file (a stream's
    symbolic link is written through on purpose, so it does not count)."""
    if path.is_symlink() and path.name in STREAMS:
        return False
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


def _earlier_run(path: Path) -> bool:
    """Whether `path` held a callsim run: its marker (a run killed, or one that ended), a
    summary.json of callsim's, or a cdrs.csv that starts with callsim's header (a run that
    failed before its summary)."""
    from ._cdr_format import CSV_HEADER  # numpy and the CDR columns: only when a claim needs it

    if (path / RUNNING).exists():
        return True
    try:
        with open(path / SUMMARY_JSON, "rb") as summary:
            document = json.load(summary)
        if isinstance(document, dict) and SUMMARY_KEYS <= document.keys():
            return True
    except (OSError, ValueError):
        pass
    try:
        with open(path / CDRS_CSV, "rb") as cdrs:
            return cdrs.read(len(CSV_HEADER)) == CSV_HEADER
    except OSError:
        return False


def _earlier_sweep(path: Path) -> bool:
    """Whether `path` held a callsim sweep: its marker, or a sweep.json of callsim's."""
    if (path / RUNNING).exists():
        return True
    try:
        with open(path / SWEEP_JSON, "rb") as summary:
            document = json.load(summary)
        return isinstance(document, dict) and SWEEP_KEYS <= document.keys()
    except (OSError, ValueError):
        return False


def _remove(path: Path, *, links_too: bool) -> None:
    if path.is_symlink():
        if links_too:
            path.unlink()
    elif path.is_file():
        path.unlink()


def unfinished(path: Path) -> str | None:
    """Why `path` holds no finished run, in a few words, or None when summary.json is there
    (or when nothing of a run is there at all: the caller says "not a run directory")."""
    if (path / SUMMARY_JSON).exists():
        return None
    pid = _running_pid(path)
    if _locked(path):
        return _still_writing(pid)
    if (path / RUNNING).exists():
        who = f" (pid {pid})" if pid else ""
        return (f"no {SUMMARY_JSON}: the run{who} ended before it finished (killed?); "
                "its files are incomplete")
    if any((path / name).exists() for name in STREAMS):
        return f"no {SUMMARY_JSON}: the run that wrote it did not finish; its files are incomplete"
    return None


@contextlib.contextmanager
def reading(path: Path) -> Iterator[None]:
    """Hold a shared lock on `path` while a finished run's files are read (a run waiting to
    start there is refused meanwhile); raise `RunNotFinished` if the run did not finish."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:  # not a directory: the caller says so
        fd = -1
    try:
        if fd >= 0:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunNotFinished(path, _still_writing(_running_pid(path))) from None
            except OSError:
                pass  # a filesystem without locks: read it unlocked
        problem = unfinished(path)
        if problem is not None:
            raise RunNotFinished(path, problem)
        yield
    finally:
        if fd >= 0:
            os.close(fd)


def _still_writing(pid: int | None) -> str:
    who = f" (pid {pid})" if pid else ""
    return f"a callsim run{who} is still writing it; its files are incomplete until it ends"


def _locked(path: Path) -> bool:
    """Whether another process holds the directory's lock (a run writing there)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _running_pid(path: Path) -> int | None:
    try:
        text = (path / RUNNING).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def claim_for_command(out: Path, usage_error: type[Exception], sweep: bool = False) -> OutDir:
    """`OutDir.claim` for `--out` of a command: each refusal is one line, as `usage_error`."""
    if out.exists() and not out.is_dir():
        raise usage_error(f"--out {out}: exists and is not a directory")
    try:
        return OutDir.claim(out, sweep)
    except (OutDirBusy, NotRunOutput) as err:
        raise usage_error(f"--out {err}") from None
    except OSError as err:
        where = f" ({err.filename})" if err.filename and Path(err.filename) != out else ""
        raise usage_error(f"--out {out}: cannot use it as the output directory "
                          f"({err.strerror or err}{where})") from None
